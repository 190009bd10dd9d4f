//! Encrypted connections (MSE/PE) against libtorrent, from btmini's side: it dials
//! encrypted, falls back to plaintext for a peer that cannot, and with `--encryption
//! require` refuses plaintext both ways. (Peers that dial btmini encrypted are in
//! upload.rs; Transmission and aria2c requiring encryption are in the interop matrix.)

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::Path;

/// libtorrent seeding `torrent` from `data` on `ip`, its encryption `LT_ENC` (rc4, off).
fn lt_seed(torrent: &Path, data: &Path, ip: &str, enc: &str) -> Seeder {
    lt_process_env(
        &[
            OsStr::new("seed"),
            torrent.as_os_str(),
            data.as_os_str(),
            OsStr::new(ip),
        ],
        &[("LT_ENC", enc)],
    )
}

/// btmini downloading `torrent` into `out` on `ip` from `peer` alone, logged, with `extra`
/// options.
fn btmini_from(
    torrent: &Path,
    out: &Path,
    ip: &str,
    port: u16,
    peer: String,
    extra: &[&str],
) -> Logged {
    Logged::start(
        btmini()
            .arg(torrent)
            .arg("-o")
            .arg(out)
            .args(["--bind", ip, "--port", &port.to_string()])
            .args(["--peer", &peer, "--no-dht"])
            .args(extra),
    )
}

/// A libtorrent that speaks nothing but MSE with RC4, both ways: btmini (encryption at its
/// default, prefer) dials it encrypted and downloads byte for byte, with RC4 chosen.
#[test]
fn btmini_downloads_from_a_libtorrent_that_requires_rc4() {
    let dir = TempDir::new("enc-lt-rc4");
    let (file, torrent) = single_file_torrent(dir.path(), 31, 1_500_007, &[]);
    let seeder = lt_seed(&torrent, &dir.join("data"), "127.0.0.31", "rc4");
    let out = dir.join("out");
    let peer = format!("127.0.0.31:{}", seeder.port);
    let mut b = btmini_from(&torrent, &out, "127.0.0.32", free_port(), peer, &[]);
    let log = b.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains("encrypted handshake done, RC4"), "{log}");
    assert!(!log.contains("in plaintext"), "{log}");
}

/// A libtorrent with MSE turned off closes an encrypted dial; btmini (prefer) dials it
/// again in plaintext at once and downloads from it.
#[test]
fn btmini_falls_back_to_plaintext_for_a_peer_without_mse() {
    let dir = TempDir::new("enc-lt-off");
    let (file, torrent) = single_file_torrent(dir.path(), 32, 1_000_003, &[]);
    let seeder = lt_seed(&torrent, &dir.join("data"), "127.0.0.33", "off");
    let out = dir.join("out");
    let peer = format!("127.0.0.33:{}", seeder.port);
    let mut b = btmini_from(&torrent, &out, "127.0.0.34", free_port(), peer, &[]);
    let log = b.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains("dialling it in plaintext"), "{log}");
    assert!(!log.contains("encrypted handshake done"), "{log}");
}

/// `--encryption require` against a libtorrent with MSE off: btmini's encrypted dial is
/// closed and not tried again in plaintext, and the libtorrent's plaintext dial to btmini
/// is refused; nothing is downloaded.
#[test]
fn encryption_require_refuses_a_plaintext_peer_both_ways() {
    let dir = TempDir::new("enc-require");
    let (_, torrent) = single_file_torrent(dir.path(), 33, 700_001, &[]);
    let mut seeder = lt_seed(&torrent, &dir.join("data"), "127.0.0.35", "off");
    let out = dir.join("out");
    let port = free_port();
    let peer = format!("127.0.0.35:{}", seeder.port);
    let b = btmini_from(
        &torrent,
        &out,
        "127.0.0.36",
        port,
        peer,
        &["--encryption", "require"],
    );
    b.wait_for(&format!("connection to 127.0.0.35:{} ended", seeder.port));
    seeder.command(&format!("connect 127.0.0.36:{port}"));
    b.wait_for("a plaintext peer: encryption is required");
    let log = b.log();
    assert!(!log.contains("in plaintext"), "{log}");
    assert!(!log.contains("handshake done"), "{log}");
    drop(b);
    let got = std::fs::read(out.join("single.bin")).unwrap_or_default();
    assert!(
        got.iter().all(|&x| x == 0),
        "bytes arrived from a plaintext peer"
    );
}
