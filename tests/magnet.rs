//! Magnet links (BEP 9) against libtorrent: btmini fetches the metadata and then the data,
//! by a hex or base32 info-hash, from peers named only by `x.pe` or only by a tracker, into
//! the place the `.torrent` would have put it; several torrents and a magnet in one process;
//! a stop during the metadata fetch and a stop in the data each resumed by the same command; a
//! peer that serves wrong metadata is banned. aria2c and transmission seeders, over HTTP
//! and UDP trackers, are in `tools/interop`'s matrix.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The base32 form of a hex info-hash (RFC 4648, no padding: 20 bytes are 32 characters).
fn base32(hex: &str) -> String {
    let bytes: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let v = chunk.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        for k in (0..8).rev() {
            out.push(alphabet[(v >> (5 * k) & 31) as usize] as char);
        }
    }
    out
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// btmini on 127.0.0.3 with these arguments (sources first), logging at -v.
fn btmini_on(args: &[String], out: &Path, port: u16) -> Logged {
    let mut cmd = btmini();
    cmd.args(args)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.3", "--min-share", "0", "--port"])
        .arg(port.to_string());
    Logged::start(&mut cmd)
}

fn same_tree(got: &Path, want: &Path) {
    for entry in std::fs::read_dir(want).unwrap() {
        let entry = entry.unwrap();
        let (w, g) = (entry.path(), got.join(entry.file_name()));
        if w.is_dir() {
            same_tree(&g, &w);
        } else {
            assert_eq!(
                std::fs::read(&g).unwrap_or_default(),
                std::fs::read(&w).unwrap(),
                "{} differs",
                g.display()
            );
        }
    }
}

#[test]
fn a_hex_magnet_with_only_x_pe_downloads_from_libtorrent_and_keeps_the_metadata() {
    let dir = TempDir::new("magnet-xpe");
    let (file, torrent) = single_file_torrent(dir.path(), 61, 2_000_003, &[]);
    let hex = hex_of(&torrent);
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    let link = format!(
        "magnet:?xt=urn:btih:{hex}&dn=single.bin&x.pe=127.0.0.2:{}",
        seeder.port
    );
    let out = dir.join("out");
    let mut bt = btmini_on(&[link], &out, free_port());
    let got_metadata = bt.wait_for("metadata received");
    let log = bt.finish_with(&out.join("single.bin"), &file);
    eprintln!("time to metadata: {got_metadata}");
    // The metadata is kept next to the sidecar: a torrent btmini info reads, the same hash.
    let saved = out.join(format!(".btmini-{hex}.torrent"));
    assert_eq!(hex_of(&saved), hex, "{log}");
    assert_eq!(
        btmini_info(&saved)["name"],
        btmini_info(&torrent)["name"],
        "{log}"
    );
}

/// A torrent of `file` (16 KiB pieces) naming `tracker`.
fn tracked_torrent(file: &Path, torrent: &Path, tracker: &str) -> String {
    make_torrent(file, torrent, &["-l", "16K", "-t", tracker]);
    hex_of(torrent)
}

#[test]
fn a_base32_multi_file_magnet_through_a_tracker_lands_where_the_torrent_would_put_it() {
    let dir = TempDir::new("magnet-tracker");
    let payload = multi_file_payload(dir.path());
    // The torrent names the tracker and the tracker lists the torrent: the port first.
    let tport = free_port();
    let url = format!("http://127.0.0.1:{tport}/announce");
    let torrent = dir.join("m.torrent");
    let hex = tracked_torrent(&payload, &torrent, &url);
    let tracker = OpenTracker::start_on(tport, std::slice::from_ref(&hex));
    let seeder = libtorrent_seeder(&torrent, dir.path(), "127.0.0.2", None);
    tracker.wait_for_peer(&hex, seeder.port);
    let link = format!("magnet:?xt=urn:btih:{}&dn=x&tr={}", base32(&hex), pct(&url));
    let out = dir.join("out");
    let mut bt = btmini_on(&[link], &out, free_port());
    let status = wait_exit(&mut bt.child, "btmini", LOGGED_LIMIT);
    assert!(status.success(), "{}", bt.log());
    let name = payload.file_name().unwrap();
    same_tree(&out.join(name), &payload);
    // Under the torrent's own name, as the .torrent would have it, not the magnet's dn.
    assert!(!out.join("x").exists());
}

#[test]
fn two_torrents_and_a_magnet_download_in_one_process_on_one_port_and_one_resolver() {
    let dir = TempDir::new("magnet-many");
    let tport = free_port();
    // A host name, so each torrent's announces need the resolver.
    let url = format!("http://localhost:{tport}/announce");
    let mut files = Vec::new();
    let mut torrents = Vec::new();
    let mut hashes = Vec::new();
    for (i, len) in [(0u64, 1_500_007usize), (1, 700_001), (2, 2_100_003)] {
        let file = dir.join(format!("data/file{i}.bin"));
        write_file(&file, 70 + i, len);
        let torrent = dir.join(format!("t{i}.torrent"));
        hashes.push(tracked_torrent(&file, &torrent, &url));
        files.push(file);
        torrents.push(torrent);
    }
    let tracker = OpenTracker::start_on(tport, &hashes);
    let mut seeders = Vec::new();
    for (i, t) in torrents.iter().enumerate() {
        let s = libtorrent_seeder(t, &dir.join("data"), "127.0.0.2", None);
        tracker.wait_for_peer(&hashes[i], s.port);
        seeders.push(s);
    }
    let out = dir.join("out");
    let args = vec![
        torrents[0].display().to_string(),
        torrents[1].display().to_string(),
        format!("magnet:?xt=urn:btih:{}&tr={}", hashes[2], pct(&url)),
        // Seeding keeps the process (and its resolver) until it is stopped.
        "--seed".to_string(),
    ];
    let mut bt = btmini_on(&args, &out, free_port());
    let deadline = Instant::now() + LOGGED_LIMIT;
    while bt.log().matches("download complete").count() < 3 {
        assert!(Instant::now() < deadline, "{}", bt.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Three torrents' trackers, one resolver thread, one disk thread for every torrent's
    // writes: the process has three threads.
    let threads = std::fs::read_to_string(format!("/proc/{}/status", bt.child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        .expect("btmini seeds until stopped");
    interrupt(&bt);
    let status = wait_exit(&mut bt.child, "btmini", LOGGED_LIMIT);
    let log = bt.log();
    assert!(status.success(), "{log}");
    assert_eq!(
        threads, "3",
        "the loop, one resolver, one disk thread: {log}"
    );
    assert_eq!(log.matches("listening on port").count(), 1, "{log}");
    assert_eq!(log.matches("download complete").count(), 3, "{log}");
    for f in &files {
        let got = out.join(f.file_name().unwrap());
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(f).unwrap());
    }
}

/// Sends SIGINT to btmini.
fn interrupt(bt: &Logged) {
    run_ok(Command::new("kill").args(["-INT", &bt.child.id().to_string()]));
}

#[test]
fn a_stop_during_the_metadata_fetch_and_a_stop_in_the_data_each_resume_with_the_same_command() {
    let dir = TempDir::new("magnet-resume");
    let tport = free_port();
    let url = format!("http://127.0.0.1:{tport}/announce");
    let file = dir.join("data/r.bin");
    write_file(&file, 81, 4_000_037);
    let torrent = dir.join("r.torrent");
    let hex = tracked_torrent(&file, &torrent, &url);
    let tracker = OpenTracker::start_on(tport, std::slice::from_ref(&hex));
    // A peer that offers the metadata and never sends it, and (later) a seeder through
    // the tracker.
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let (asked_tx, asked) = std::sync::mpsc::channel();
    let (silent, silent_done) = metadata_peer(
        meta.info_hash.0,
        meta.info_bytes.len(),
        Script::Silent(asked_tx),
    );
    let link = format!(
        "magnet:?xt=urn:btih:{hex}&tr={}&x.pe=127.0.0.6:{silent}",
        pct(&url)
    );
    let out = dir.join("out");
    let port = free_port();
    let saved = out.join(format!(".btmini-{hex}.torrent"));

    // 1. Stopped during the metadata fetch: a piece asked for, none received.
    let mut bt = btmini_on(std::slice::from_ref(&link), &out, port);
    asked
        .recv_timeout(LOGGED_LIMIT)
        .unwrap_or_else(|_| panic!("metadata never asked for: {}", bt.log()));
    interrupt(&bt);
    let status = wait_exit(&mut bt.child, "btmini", LOGGED_LIMIT);
    assert!(status.success(), "SIGINT exits 0: {}", bt.log());
    assert!(silent_done.join().unwrap());
    assert!(!saved.exists(), "no metadata to keep yet");

    // 2. A seeder held to 1 MB/s: stopped in the data, once a piece is on disk.
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", Some(1_000_000));
    tracker.wait_for_peer(&hex, seeder.port);
    let mut bt = btmini_on(std::slice::from_ref(&link), &out, port);
    bt.wait_for("metadata received");
    let sidecar = out.join(".r.bin.btmini");
    let deadline = Instant::now() + LOGGED_LIMIT;
    while verified(&sidecar) == 0 {
        assert!(Instant::now() < deadline, "no piece verified: {}", bt.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    interrupt(&bt);
    let status = wait_exit(&mut bt.child, "btmini", LOGGED_LIMIT);
    let first = bt.log();
    assert!(status.success(), "{first}");
    assert!(first.contains("stopped at"), "{first}");
    let kept = verified(&sidecar);
    assert!(kept > 0);
    assert_eq!(hex_of(&saved), hex);

    // 3. The same command: the metadata from disk, the verified pieces trusted.
    let mut bt = btmini_on(&[link], &out, port);
    let log = bt.finish_with(&out.join("r.bin"), &file);
    assert!(log.contains("metadata from an earlier run"), "{log}");
    assert!(!log.contains("metadata received"), "fetched again: {log}");
    assert!(
        !log.contains("checking the data on disk"),
        "rehashed: {log}"
    );
}

/// Pieces a sidecar records as verified (0 while there is none).
fn verified(sidecar: &Path) -> u32 {
    std::fs::read(sidecar)
        .ok()
        .and_then(|b| btmini::storage::sidecar::Sidecar::decode(&b).ok())
        .map_or(0, |s| s.have.count())
}

/// A scripted peer on 127.0.0.6 that has the torrent (have_all) and offers its metadata,
/// but serves every metadata piece as junk. Just before its first answer it tells btmini of
/// `good` by PEX, so btmini asks the liar first (it knows no one else then) and only then
/// meets the good peer.
fn lying_metadata_peer(
    info_hash: [u8; 20],
    size: usize,
    good: std::net::SocketAddrV4,
) -> (u16, std::thread::JoinHandle<bool>) {
    metadata_peer(info_hash, size, Script::Lie(good))
}

/// What a scripted metadata peer does when asked for a piece.
enum Script {
    /// Tell of this good peer by PEX, then answer junk.
    Lie(std::net::SocketAddrV4),
    /// Say so on the channel, and never answer.
    Silent(std::sync::mpsc::Sender<()>),
    /// Tell of this good peer by PEX, reject the piece 20,000 times over, then send a
    /// piece never asked for.
    Storm(std::net::SocketAddrV4),
}

/// A scripted peer on 127.0.0.6 that has the torrent (have_all), offers its metadata
/// (`size` bytes), takes one connection and follows `script` when asked for metadata.
/// Returns its port, and whether it was asked.
fn metadata_peer(
    info_hash: [u8; 20],
    size: usize,
    script: Script,
) -> (u16, std::thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.6:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // Like any peer without MSE, it drops a connection that does not begin with a
        // plaintext handshake (btmini's encrypted dial) and takes the next.
        let mut s = loop {
            let Ok((mut s, _)) = listener.accept() else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut hs = [0u8; 68];
            if s.read_exact(&mut hs).is_err() {
                return false;
            }
            if hs.starts_with(b"\x13BitTorrent protocol") {
                break s;
            }
        };
        let mut ours = vec![19];
        ours.extend_from_slice(b"BitTorrent protocol");
        ours.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        ours.extend_from_slice(&info_hash);
        ours.extend_from_slice(b"-XX0000-liarliarliar");
        let ext = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{size}ee");
        let msg = |id: u8, payload: &[u8]| {
            let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
            m.push(id);
            m.extend_from_slice(payload);
            m
        };
        let mut out = ours;
        out.extend(msg(20, &[&[0u8][..], ext.as_bytes()].concat()));
        out.extend(msg(0x0e, &[])); // have_all
        s.write_all(&out).unwrap();
        // Answer metadata requests (ext id 3, ours) with bad data, as btmini's id 2.
        let mut served = false;
        loop {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).is_err() {
                return served;
            }
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            if s.read_exact(&mut body).is_err() {
                return served;
            }
            if body.len() < 2 || body[0] != 20 || body[1] != 3 {
                continue;
            }
            let (good, storm) = match &script {
                Script::Lie(good) => (*good, false),
                Script::Storm(good) => (*good, true),
                Script::Silent(asked) => {
                    let _ = asked.send(());
                    served = true;
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&body[2..]).to_string();
            let piece: usize = text
                .split("5:piecei")
                .nth(1)
                .and_then(|t| t.split('e').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut pex = b"\x01d5:added6:".to_vec();
            pex.extend_from_slice(&good.ip().octets());
            pex.extend_from_slice(&good.port().to_be_bytes());
            pex.push(b'e');
            // The PEX first: once the junk is read btmini drops us, with what follows.
            let mut answer = if served { Vec::new() } else { msg(20, &pex) };
            let (piece, len) = if storm {
                let reject = format!("d8:msg_typei2e5:piecei{piece}ee");
                let reject = msg(20, &[&[2u8][..], reject.as_bytes()].concat());
                for _ in 0..20_000 {
                    answer.extend_from_slice(&reject);
                }
                (7, 100)
            } else {
                (piece, (size - piece * 16384).min(16384))
            };
            let head = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{size}ee");
            let mut payload = vec![2u8];
            payload.extend_from_slice(head.as_bytes());
            payload.extend(std::iter::repeat_n(0x5a, len));
            answer.extend(msg(20, &payload));
            if s.write_all(&answer).is_err() {
                return served;
            }
            served = true;
        }
    });
    (port, handle)
}

#[test]
fn a_peer_serving_wrong_metadata_is_banned_and_the_download_completes_from_a_good_one() {
    let dir = TempDir::new("magnet-liar");
    let (file, torrent) = single_file_torrent(dir.path(), 91, 1_000_003, &[]);
    let hex = hex_of(&torrent);
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    let good = std::net::SocketAddrV4::new([127, 0, 0, 2].into(), seeder.port);
    let (liar, served) = lying_metadata_peer(meta.info_hash.0, meta.info_bytes.len(), good);
    let link = format!("magnet:?xt=urn:btih:{hex}&x.pe=127.0.0.6:{liar}");
    let out = dir.join("out");
    let mut bt = btmini_on(&[link], &out, free_port());
    let log = bt.finish_with(&out.join("single.bin"), &file);
    assert!(served.join().unwrap(), "the liar was asked and answered");
    assert!(
        log.contains("banned: sent metadata that failed the info-hash"),
        "{log}"
    );
    let banned = log.find("failed the info-hash").unwrap();
    let received = log.find("metadata received").unwrap();
    assert!(
        banned < received,
        "the good metadata came after the ban: {log}"
    );
}

#[test]
fn an_absurd_metadata_size_and_a_reject_storm_with_an_unasked_piece_drop_their_peers() {
    let dir = TempDir::new("magnet-storm");
    let (file, torrent) = single_file_torrent(dir.path(), 93, 1_000_003, &[]);
    let hex = hex_of(&torrent);
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    let good = std::net::SocketAddrV4::new([127, 0, 0, 2].into(), seeder.port);
    // One peer states a metadata size of 1 TiB; the other rejects 20,000 times, then
    // sends metadata piece 7 (there is one piece), and tells of the good seeder by PEX.
    let (never_tx, _never) = std::sync::mpsc::channel();
    let (absurd, absurd_done) = metadata_peer(meta.info_hash.0, 1 << 40, Script::Silent(never_tx));
    let (storm, storm_done) =
        metadata_peer(meta.info_hash.0, meta.info_bytes.len(), Script::Storm(good));
    let link = format!("magnet:?xt=urn:btih:{hex}&x.pe=127.0.0.6:{absurd}&x.pe=127.0.0.6:{storm}");
    let out = dir.join("out");
    let mut bt = btmini_on(&[link], &out, free_port());
    bt.wait_for("metadata received");
    let hwm = std::fs::read_to_string(format!("/proc/{}/status", bt.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        });
    let log = bt.finish_with(&out.join("single.bin"), &file);
    assert!(
        !absurd_done.join().unwrap(),
        "the absurd peer is never asked"
    );
    assert!(storm_done.join().unwrap(), "the storm peer was asked");
    assert!(log.contains("metadata_size 1099511627776"), "{log}");
    assert!(
        log.contains("metadata piece 7, which we did not ask for"),
        "{log}"
    );
    if let Some(kb) = hwm {
        assert!(kb < 32 * 1024, "peak RSS {kb} kB after the storm");
    }
}
