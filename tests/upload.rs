//! Real clients downloading from a btmini seed: the data they get must be the data.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// btmini seeding the complete data in `data_dir`; stopped (SIGKILL) when dropped.
struct BtminiSeed {
    child: Child,
    port: u16,
}

impl Drop for BtminiSeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn btmini_seed(torrent: &Path, data_dir: &Path, ip: &str) -> BtminiSeed {
    let port = free_port();
    let mut child = btmini()
        .arg(torrent)
        .arg("-o")
        .arg(data_dir)
        .args(["--json", "--bind", ip, "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Seeding once the first status says so (after the recheck of the data).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "btmini did not start seeding");
        let line = lines.next().expect("status lines").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["phase"] == "seeding" {
            break;
        }
    }
    // Keep reading so that btmini never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    BtminiSeed { child, port }
}

/// libtorrent as it comes dials encrypted (MSE) and offers RC4 or plaintext after the
/// handshake; btmini (`--encryption prefer`, the default) answers plaintext, as libtorrent
/// itself answers such an offer. RC4 there cost the leecher three times the CPU (issue 25).
#[test]
fn libtorrent_downloads_from_a_btmini_seed() {
    let dir = TempDir::new("up-lt");
    let (data, torrent, _) = payload(&dir, &[]);
    let root = data.join("multi");
    let port = free_port();
    let seed = btmini_seeding(&torrent, &data, "127.0.0.11", port);
    let out = dir.join("lt-out");
    let v = lt_download("download", &torrent, &out, "127.0.0.12", port, "127.0.0.11");
    assert_eq!(v["seeding"], true, "{v}");
    same_files(&out.join("multi"), &root);
    // btmini's log, not lt.py's `rc4` (a download this small can end before libtorrent's
    // peer list is first read): with RC4 chosen this line says "RC4" instead.
    seed.wait_for("encrypted handshake done, plaintext after it");
}

/// Peers that insist on encryption dial btmini, which answers their MSE handshake: a
/// libtorrent with MSE forced both ways and RC4 only, and an aria2c with
/// `--bt-require-crypto --bt-min-crypto-level=arc4`; both download byte for byte.
#[test]
fn peers_that_require_encryption_download_from_a_btmini_seed() {
    let dir = TempDir::new("up-mse");
    let port = free_port();
    let (data, torrent, hash) = tracked_payload(&dir, &format!("http://127.0.0.1:{port}/announce"));
    let _tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let seed = btmini_seed(&torrent, &data, "127.0.0.21");
    let lt_out = dir.join("lt-out");
    let v = lt_download(
        "download_rc4",
        &torrent,
        &lt_out,
        "127.0.0.22",
        seed.port,
        "127.0.0.21",
    );
    assert_eq!(v["seeding"], true, "libtorrent, encryption forced: {v}");
    assert_eq!(v["rc4"], true, "the connection was not RC4: {v}");
    same_files(&lt_out.join("multi"), &data.join("multi"));

    let aria_out = dir.join("aria-out");
    aria2c_download(
        &aria_out,
        &torrent,
        &["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"],
    );
    same_files(&aria_out.join("multi"), &data.join("multi"));
}

/// lt.py's `mode` (`download`, `download_rc4`) on `ip` fetches `torrent` into `out` from
/// the btmini seed at `seed_ip:port`; its JSON report.
fn lt_download(
    mode: &str,
    torrent: &Path,
    out: &Path,
    ip: &str,
    port: u16,
    seed_ip: &str,
) -> serde_json::Value {
    let peer = format!("{seed_ip}:{port}");
    libtorrent(&[
        OsStr::new(mode),
        torrent.as_os_str(),
        out.as_os_str(),
        OsStr::new(ip),
        OsStr::new(&peer),
    ])
}

/// aria2c downloads `torrent` into `out` from its tracker's peers, with `extra` options;
/// fails the test unless it succeeds within 2 minutes.
fn aria2c_download(out: &Path, torrent: &Path, extra: &[&str]) {
    let aria = Command::new("aria2c")
        .arg("--dir")
        .arg(out)
        .args(["--seed-time=0", "--enable-dht=false", "--enable-dht6=false"])
        .args(["--bt-enable-lpd=false", "--enable-peer-exchange=false"])
        .args(["--summary-interval=0", "--quiet=true"])
        .args(extra)
        .arg(format!("--listen-port={}", free_port()))
        .arg(torrent)
        .spawn()
        .expect("aria2c");
    wait_ok(aria, "aria2c", Duration::from_secs(120));
}

/// A multi-file payload under `dir/data/multi` with a torrent naming `tracker`.
fn tracked_payload(
    dir: &TempDir,
    tracker: &str,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    payload(dir, &["-t", tracker])
}

/// A multi-file payload under `dir/data/multi` (an empty file among them) and its torrent,
/// made with `extra` options; returns the data folder, the torrent and its info-hash.
fn payload(dir: &TempDir, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let data = dir.join("data");
    let root = data.join("multi");
    write_file(&root.join("a.bin"), 11, 40_000);
    write_file(&root.join("b.empty"), 12, 0);
    write_file(&root.join("c/d.bin"), 13, 2_000_003);
    let torrent = dir.join("t.torrent");
    let mut args = vec!["-l", "32K"];
    args.extend(extra);
    make_torrent(&root, &torrent, &args);
    let hash = btmini_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    (data, torrent, hash)
}

fn same_files(a: &Path, b: &Path) {
    for f in ["a.bin", "c/d.bin"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// Waits for `child` to exit successfully, killing it after `limit`.
fn wait_ok(mut child: Child, what: &str, limit: Duration) {
    let s = wait_exit(&mut child, what, limit);
    assert!(s.success(), "{what} failed: {s}");
}

#[test]
fn libtorrent_and_aria2c_download_from_a_btmini_seed_through_opentracker() {
    let dir = TempDir::new("up-ot");
    let port = free_port();
    let (data, torrent, hash) = tracked_payload(&dir, &format!("http://127.0.0.1:{port}/announce"));
    let _tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let _seed = btmini_seed(&torrent, &data, "127.0.0.13");

    let lt_out = dir.join("lt-out");
    let v = libtorrent(&[
        OsStr::new("download"),
        torrent.as_os_str(),
        lt_out.as_os_str(),
        OsStr::new("127.0.0.14"),
    ]);
    assert_eq!(v["seeding"], true, "libtorrent: {v}");
    same_files(&lt_out.join("multi"), &data.join("multi"));

    let aria_out = dir.join("aria-out");
    aria2c_download(&aria_out, &torrent, &[]);
    same_files(&aria_out.join("multi"), &data.join("multi"));
}

#[test]
fn aria2c_fetches_a_magnets_metadata_and_data_from_a_btmini_seed() {
    let dir = TempDir::new("up-magnet");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let (data, torrent, hash) = tracked_payload(&dir, &url);
    let _tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let _seed = btmini_seed(&torrent, &data, "127.0.0.15");
    let magnet = format!("magnet:?xt=urn:btih:{hash}&tr={url}");
    let aria = |out: &Path, extra: &[&str]| {
        let child = Command::new("aria2c")
            .arg("--dir")
            .arg(out)
            .args(["--seed-time=0", "--enable-dht=false", "--enable-dht6=false"])
            .args(["--bt-enable-lpd=false", "--enable-peer-exchange=false"])
            .args(["--summary-interval=0", "--quiet=true"])
            .args(extra)
            .arg(format!("--log={}", out.with_extension("log").display()))
            .args(["--log-level=info"])
            .arg(format!("--listen-port={}", free_port()))
            .arg(&magnet)
            .spawn()
            .expect("aria2c");
        wait_ok(child, "aria2c", Duration::from_secs(120));
    };
    // The metadata alone, saved as a .torrent: btmini's info dictionary, byte for byte.
    let meta_out = dir.join("aria-metadata");
    // aria2c does not make the folder when it downloads no file.
    std::fs::create_dir_all(&meta_out).unwrap();
    aria(
        &meta_out,
        &["--bt-metadata-only=true", "--bt-save-metadata=true"],
    );
    let saved = std::fs::read(meta_out.join(format!("{hash}.torrent"))).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(meta_out.with_extension("log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!("no metadata saved ({e}):\n{}", tail.join("\n"))
    });
    let saved = btmini::metainfo::Metainfo::from_bytes(&saved).unwrap();
    let ours = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    assert_eq!(saved.info_bytes, ours.info_bytes);
    // Metadata and data.
    let out = dir.join("aria-magnet");
    aria(&out, &[]);
    same_files(&out.join("multi"), &data.join("multi"));
}

/// transmission never dials peers on loopback addresses: the btmini seed learns of it from
/// the tracker and dials it.
#[test]
fn transmission_downloads_from_a_btmini_seed_that_dials_it() {
    let dir = TempDir::new("up-tr");
    let port = free_port();
    let (data, torrent, hash) = tracked_payload(&dir, &format!("http://127.0.0.1:{port}/announce"));
    let tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let tr_out = dir.join("tr-out");
    std::fs::create_dir_all(&tr_out).unwrap();
    let tr_port = free_port();
    let transmission = Command::new("transmission-cli")
        .arg("-w")
        .arg(&tr_out)
        .args(["-p", &tr_port.to_string(), "-u", "-1", "-D"])
        .arg(&torrent)
        .env("TRANSMISSION_HOME", transmission_home(&dir.join("tr-home")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("transmission-cli");
    let mut transmission = Killed(transmission);
    tracker.wait_for_peer(&hash, tr_port);
    let _seed = btmini_seed(&torrent, &data, "127.0.0.15");
    // transmission-cli keeps running after it completes: wait for the files instead.
    let deadline = Instant::now() + Duration::from_secs(120);
    let want = std::fs::read(data.join("multi/c/d.bin")).unwrap();
    while std::fs::read(tr_out.join("multi/c/d.bin")).ok().as_ref() != Some(&want) {
        assert!(
            Instant::now() < deadline,
            "transmission did not get the data"
        );
        assert!(
            transmission.0.try_wait().unwrap().is_none(),
            "transmission exited"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    same_files(&tr_out.join("multi"), &data.join("multi"));
}

/// One slow seeder and three btmini leechers: the leechers trade pieces, and each one has
/// uploaded at least 10% of the torrent (the share rule) when it finishes.
#[test]
fn three_btmini_leechers_share_and_each_meets_the_share_rule() {
    let dir = TempDir::new("up-swarm");
    let port = free_port();
    let (data, torrent, hash) = tracked_payload(&dir, &format!("http://127.0.0.1:{port}/announce"));
    let total = 40_000 + 2_000_003u64;
    let _tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let _seeder = libtorrent_seeder(&torrent, &data, "127.0.0.2", Some(150_000));
    let leechers: Vec<(Child, std::path::PathBuf)> = (0..3)
        .map(|i| {
            let out = dir.join(format!("leecher-{i}"));
            let child = btmini()
                .arg(&torrent)
                .arg("-o")
                .arg(&out)
                .args(["--json", "--bind", &format!("127.0.0.{}", 21 + i)])
                .args(["--port", &free_port().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut results = Vec::new();
    for (mut child, out) in leechers {
        let stdout = child.stdout.take().unwrap();
        let last = std::thread::spawn(move || {
            let mut last = Value::Null;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                last = serde_json::from_str(&line).unwrap_or(last);
            }
            last
        });
        wait_ok(child, "btmini leecher", Duration::from_secs(120));
        results.push((last.join().unwrap(), out));
    }
    for (i, (last, out)) in results.iter().enumerate() {
        same_files(&out.join("multi"), &data.join("multi"));
        let uploaded = last["uploaded"].as_u64().unwrap();
        eprintln!("leecher {i}: uploaded {uploaded} of {total} bytes");
        assert!(
            uploaded * 10 >= total,
            "leecher {i} uploaded {uploaded} of {total} bytes: {last}"
        );
    }
}

/// A scripted leecher at 127.0.0.30: answers the handshake with an empty bitfield and then
/// never asks for anything, until the connection closes.
fn idle_leecher(info_hash: [u8; 20], pieces: u32) -> u16 {
    use btmini::wire::{self, Handshake, Message};
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.30:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut out = Handshake {
                    reserved: [0; 8],
                    info_hash,
                    peer_id: *b"-XX0000-idleidleidle",
                }
                .encode()
                .to_vec();
                wire::encode(
                    &Message::Bitfield(btmini::bitfield::Bitfield::new(pieces).as_bytes()),
                    &mut out,
                );
                if s.write_all(&out).is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// `dir/data/f.bin` of `len` seeded bytes, its torrent (`piece` long pieces) and the parsed
/// torrent.
fn single_torrent(
    dir: &TempDir,
    seed: u64,
    len: usize,
    piece: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    btmini::metainfo::Metainfo,
) {
    let data = dir.join("data");
    write_file(&data.join("f.bin"), seed, len);
    let torrent = dir.join("t.torrent");
    make_torrent(&data.join("f.bin"), &torrent, &["-l", piece]);
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    (data, torrent, meta)
}

#[test]
fn a_leecher_whose_leechers_never_ask_is_released_by_share_wait() {
    let dir = TempDir::new("up-wait");
    let (data, torrent, meta) = single_torrent(&dir, 21, 1_000_003, "32K");
    let idle = idle_leecher(meta.info_hash.0, meta.piece_count());
    let seeder = libtorrent_seeder(&torrent, &data, "127.0.0.2", None);
    let seed_port = seeder.port;
    let out = dir.join("out");
    let mut child = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&out)
        .args([
            "--json",
            "--bind",
            "127.0.0.31",
            "--port",
            &free_port().to_string(),
        ])
        .args(["--share-wait", "2"])
        .arg("--peer")
        .arg(format!("127.0.0.30:{idle}"))
        .arg("--peer")
        .arg(format!("127.0.0.2:{seed_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let statuses = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect::<Vec<_>>()
    });
    wait_ok(child, "btmini", Duration::from_secs(60));
    let statuses = statuses.join().unwrap();
    assert!(
        statuses.iter().any(|s| s["holding_last_piece"] == true),
        "the last piece was held while the idle leecher was connected"
    );
    let last = statuses.last().unwrap();
    assert_eq!(last["have_bytes"], last["total_bytes"], "{last}");
    assert_eq!(
        std::fs::read(out.join("f.bin")).unwrap(),
        std::fs::read(data.join("f.bin")).unwrap()
    );
}

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A peer that asks for 400 blocks and reads none of them: btmini stops reading blocks for
/// it once its send buffer holds 256 KiB, so its memory stays flat.
#[test]
fn a_slow_reader_does_not_grow_btmini_memory() {
    use btmini::wire::{self, Handshake, Message};
    use std::io::Write;
    let dir = TempDir::new("up-slow");
    let (data, torrent, meta) = single_torrent(&dir, 31, 8 << 20, "64K");
    let port = free_port();
    let mut child = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&data)
        .args([
            "--json",
            "--bind",
            "127.0.0.40",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_status =
        || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    while next_status()["phase"] != "seeding" {}
    let before = rss_anon_kib(pid);

    // The kernel's loopback buffers take a few MiB; past them btmini's own buffer fills.
    let mut s = std::net::TcpStream::connect(("127.0.0.40", port)).unwrap();
    let mut m = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: *b"-XX0000-slowslowslow",
    }
    .encode()
    .to_vec();
    wire::encode(&Message::Interested, &mut m);
    for i in 0..400u32 {
        let (index, begin) = (i / 4, (i % 4) * 16384);
        wire::encode(
            &Message::Request {
                index,
                begin,
                length: 16384,
            },
            &mut m,
        );
    }
    s.write_all(&m).unwrap();
    // Wait until btmini has queued all it will (its upload count stops moving).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = u64::MAX;
    let mut steady = 0;
    while steady < 4 {
        assert!(
            Instant::now() < deadline,
            "btmini's upload count never settled"
        );
        let up = next_status()["uploaded_this_run"].as_u64().unwrap();
        steady = if up == last { steady + 1 } else { 0 };
        last = up;
    }
    let after = rss_anon_kib(pid);
    eprintln!(
        "RssAnon {before} KiB before, {after} KiB after; {last} bytes queued of {}",
        400 * 16384
    );
    assert!(
        last > 0 && last < 400 * 16384,
        "some blocks queued, not all: {last}"
    );
    assert!(
        after < before + 2048,
        "anonymous memory grew from {before} KiB to {after} KiB for one slow reader"
    );
    drop(s);
    let _ = child.kill();
    let _ = child.wait();
}
