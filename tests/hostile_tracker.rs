//! A hostile tracker (issue 9): its reply lists 10,000 peers, all but one of which refuse
//! connections, and our own address among them. btmini must still find the one real seeder
//! (libtorrent), never dial itself, and keep its memory bounded.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// Serves every announce with what `body` holds at the time, until the test process ends;
/// the seeder (127.0.0.2) gets no peers, so it never dials btmini: btmini must find it.
fn fake_tracker(body: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            read_http_head(&mut s);
            let from_seeder = s
                .peer_addr()
                .is_ok_and(|a| a.ip() == Ipv4Addr::new(127, 0, 0, 2));
            let body = if from_seeder {
                b"d8:intervali1800e5:peers0:e".to_vec()
            } else {
                body.lock().unwrap().clone()
            };
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

fn compact(ip: Ipv4Addr, port: u16) -> [u8; 6] {
    let mut p = [0u8; 6];
    p[..4].copy_from_slice(&ip.octets());
    p[4..].copy_from_slice(&port.to_be_bytes());
    p
}

#[test]
fn ten_thousand_peers_that_refuse_and_our_own_address() {
    let dir = TempDir::new("hostile-tracker");
    let my_port = free_port();
    // The tracker's port goes into the torrent, the seeder's into the tracker's reply: the
    // reply is filled in once the seeder listens.
    let body = Arc::new(Mutex::new(Vec::new()));
    let tport = fake_tracker(body.clone());
    let url = format!("http://127.0.0.1:{tport}/announce");
    let (_, torrent) = single_file_torrent(dir.path(), 9, 3_000_017, &[url]);
    let data = dir.join("data");
    let seeder = libtorrent_seeder(&torrent, &data, "127.0.0.2", None);
    // 10,000 peers: our own listening address first, 9,998 addresses where nothing listens
    // (loopback answers them with a reset at once), and the seeder near the end.
    let mut peers = Vec::new();
    peers.extend_from_slice(&compact(Ipv4Addr::new(127, 0, 0, 3), my_port));
    for i in 0..9_998u32 {
        let ip = Ipv4Addr::new(127, 1, (i >> 8) as u8, (i & 0xff) as u8);
        peers.extend_from_slice(&compact(ip, 9));
        if i == 9_000 {
            peers.extend_from_slice(&compact(Ipv4Addr::new(127, 0, 0, 2), seeder.port));
        }
    }
    assert_eq!(peers.len(), 6 * 10_000);
    let mut b = format!("d8:intervali1800e5:peers{}:", peers.len()).into_bytes();
    b.extend_from_slice(&peers);
    b.push(b'e');
    *body.lock().unwrap() = b;

    let out = dir.join("out");
    let mut child = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&out)
        .args(["--json", "-v", "--bind", "127.0.0.3", "--port"])
        .arg(my_port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        BufReader::new(stderr).read_to_string(&mut s).unwrap();
        s
    });
    let stdout = child.stdout.take().unwrap();
    let statuses = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + LIMIT;
    let mut peak_anon_kib = 0u64;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "btmini did not finish in {LIMIT:?}"
        );
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = st
                .lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_anon_kib = peak_anon_kib.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = log.join().unwrap();
    let statuses = statuses.join().unwrap();
    assert!(status.success(), "btmini failed: {status}\n{log}");
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(data.join("single.bin")).unwrap()
    );
    assert!(log.contains("tracker gave 10000 peers"), "{log}");
    assert!(
        !log.contains("connected to ourselves"),
        "btmini dialled its own address"
    );
    assert!(!statuses.is_empty(), "no status lines");
    // The bound: the addresses cost tens of bytes each; nothing per address is buffered.
    assert!(
        peak_anon_kib < 16 * 1024,
        "RssAnon peaked at {peak_anon_kib} KiB with 10,000 addresses"
    );
    eprintln!("peak RssAnon {peak_anon_kib} KiB");
    drop(seeder);
}
