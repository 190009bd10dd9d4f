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

/// Our side of the handshake against libtorrent's, 2,000 times: a side that drops the
/// leading zeros of a 96-byte value fails about one handshake in 256, so 2,000 in a row pass
/// only if every value is whole. libtorrent 2.0.8 itself drops them from the shared secret
/// when it hashes its `req3` mask (`compute_secret` exports it unpadded): each handshake that
/// fails must be one whose secret begins with a zero byte, and every other one must end in
/// libtorrent's BitTorrent handshake, decrypted.
#[test]
fn two_thousand_encrypted_handshakes_with_libtorrent() {
    let dir = TempDir::new("enc-2000");
    let (_, torrent) = single_file_torrent(dir.path(), 34, 100_003, &[]);
    let seeder = lt_seed(&torrent, &dir.join("data"), "127.0.0.37", "rc4");
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let ih = meta.info_hash.0;
    let port = seeder.port;
    // Eight at a time (libtorrent takes some 50 ms to answer each).
    let threads: Vec<_> = (0..8u32)
        .map(|t| std::thread::spawn(move || handshakes(ih, port, t * 250..(t + 1) * 250)))
        .collect();
    let (mut ok, mut zero, mut zero_failed) = (0, 0, 0);
    for t in threads {
        let (a, b, c) = t.join().unwrap();
        (ok, zero, zero_failed) = (ok + a, zero + b, zero_failed + c);
    }
    eprintln!(
        "{ok} of 2000 succeeded; {zero} secrets began with a zero byte, {zero_failed} of them failed"
    );
    assert_eq!(ok + zero_failed, 2000);
}

/// Handshakes numbered `range` with the libtorrent at 127.0.0.37:`port`: how many ended in
/// its BitTorrent handshake, how many secrets began with a zero byte, and how many of those
/// failed (no other may).
fn handshakes(ih: [u8; 20], port: u16, range: std::ops::Range<u32>) -> (usize, usize, usize) {
    use btmini::mse::{Initiator, RC4, fresh};
    use std::io::{Read, Write};
    let mut ours = btmini::wire::Handshake {
        reserved: [0; 8],
        info_hash: ih,
        peer_id: *b"-XX0000-000000000000",
    };
    let mut buf = [0u8; 4096];
    let (mut ok, mut zero_failed, mut zero) = (0, 0, 0);
    'each: for i in range {
        ours.peer_id[8..18].copy_from_slice(format!("{i:010}").as_bytes());
        let mut s = std::net::TcpStream::connect(("127.0.0.37", port)).unwrap();
        // Steps 1 and 3 are small writes a round trip apart: no Nagle wait between them.
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let (x, pad_a, pad_c) = fresh();
        let mut a = Initiator::new(ih, RC4, &ours.encode(), x, &pad_a, &pad_c);
        s.write_all(&a.take_output()).unwrap();
        let est = loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                assert_eq!(
                    a.secret_starts_with_zero(),
                    Some(true),
                    "handshake {i}: libtorrent closed the connection, the secret whole"
                );
                zero_failed += 1;
                zero += 1;
                continue 'each;
            }
            let r = a.handle(&buf[..n]);
            s.write_all(&a.take_output()).unwrap();
            if let Some(e) = r.unwrap_or_else(|e| panic!("handshake {i}: {e}")) {
                zero += usize::from(a.secret_starts_with_zero() == Some(true));
                break e;
            }
        };
        let (_, mut dec) = est.cipher.expect("RC4 chosen").split();
        let mut theirs = est.rest;
        dec.apply(&mut theirs);
        while theirs.len() < 68 {
            let n = s.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "handshake {i}: closed before its BitTorrent handshake"
            );
            let mut more = buf[..n].to_vec();
            dec.apply(&mut more);
            theirs.extend_from_slice(&more);
        }
        assert_eq!(
            btmini::wire::Handshake::info_hash_of(&theirs).unwrap(),
            Some(ih),
            "handshake {i}"
        );
        ok += 1;
    }
    (ok, zero, zero_failed)
}
