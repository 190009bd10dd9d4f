//! uTP (BEP 29) against libtorrent with TCP turned off both ways: btmini downloads from it
//! and seeds to it, also through a relay that adds delay and loses 1% of the datagrams;
//! `--no-utp` cannot reach it.

mod common;

use common::*;
use std::ffi::OsStr;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// libtorrent seeding `torrent` from `data` on `ip` over uTP only.
fn lt_utp_seed(torrent: &Path, data: &Path, ip: &str) -> Seeder {
    lt_process_env(
        &[
            OsStr::new("seed"),
            torrent.as_os_str(),
            data.as_os_str(),
            OsStr::new(ip),
        ],
        &[("LT_TRANSPORT", "utp")],
    )
}

/// btmini downloading `torrent` into `out` on `ip` from `peer` alone, logged.
fn btmini_from(torrent: &Path, out: &Path, ip: &str, peer: &str, extra: &[&str]) -> Logged {
    Logged::start(
        btmini()
            .arg(torrent)
            .arg("-o")
            .arg(out)
            .args(["--bind", ip, "--port", &free_port().to_string()])
            .args(["--peer", peer, "--no-dht"])
            .args(extra),
    )
}

#[test]
fn btmini_downloads_from_a_libtorrent_that_speaks_only_utp() {
    let dir = TempDir::new("utp-from-lt");
    let (file, torrent) = single_file_torrent(dir.path(), 41, 3_000_017, &[]);
    let seeder = lt_utp_seed(&torrent, &dir.join("data"), "127.0.0.41");
    let out = dir.join("out");
    let peer = format!("127.0.0.41:{}", seeder.port);
    let mut b = btmini_from(&torrent, &out, "127.0.0.42", &peer, &[]);
    let log = b.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains(&format!("{peer} is libtorrent")), "{log}");
    assert!(!log.contains("over TCP"), "{log}");
}

#[test]
fn a_libtorrent_that_speaks_only_utp_downloads_from_a_btmini_seed() {
    let dir = TempDir::new("utp-to-lt");
    let (file, torrent) = single_file_torrent(dir.path(), 42, 3_000_029, &[]);
    let port = free_port();
    let seed = btmini_seeding(&torrent, &dir.join("data"), "127.0.0.43", port);
    let out = dir.join("lt-out");
    let mut lt = std::process::Command::new(PYTHON);
    lt.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py"))
        .args(["download".as_ref(), torrent.as_os_str(), out.as_os_str()])
        .args(["127.0.0.44", &format!("127.0.0.43:{port}")])
        .env("LT_TRANSPORT", "utp");
    let got = run_ok(&mut lt);
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(v["seeding"], true, "{v}\n{}", seed.log());
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    seed.wait_for("uTP connection accepted");
}

#[test]
fn without_utp_a_utp_only_peer_is_out_of_reach() {
    let dir = TempDir::new("utp-off");
    let (_, torrent) = single_file_torrent(dir.path(), 43, 500_009, &[]);
    let seeder = lt_utp_seed(&torrent, &dir.join("data"), "127.0.0.45");
    let out = dir.join("out");
    let peer = format!("127.0.0.45:{}", seeder.port);
    let b = btmini_from(&torrent, &out, "127.0.0.46", &peer, &["--no-utp"]);
    // libtorrent with TCP off accepts a TCP connection and closes it.
    b.wait_for(&format!("connection to {peer} ended"));
    assert!(!b.log().contains("is libtorrent"), "{}", b.log());
    drop(b);
    let got = std::fs::read(out.join("single.bin")).unwrap_or_default();
    assert!(got.iter().all(|&x| x == 0), "bytes arrived without uTP");
}

/// A libtorrent with uTP off (TCP only, its UDP port open and silent, so no ICMP error
/// comes): btmini dials uTP and, unanswered after a moment, TCP beside it, which wins; the
/// uTP dial's own 3-second fallback never comes into it (issue 25: it cost every first
/// contact with such a peer 3 s).
#[test]
fn a_tcp_only_peer_is_reached_by_tcp_dialled_beside_the_unanswered_utp_dial() {
    let dir = TempDir::new("utp-race");
    let (file, torrent) = single_file_torrent(dir.path(), 44, 1_000_003, &[]);
    let seeder = lt_process(&[
        OsStr::new("seed"),
        torrent.as_os_str(),
        dir.join("data").as_os_str(),
        OsStr::new("127.0.0.50"),
    ]);
    let out = dir.join("out");
    let peer = format!("127.0.0.50:{}", seeder.port);
    let mut b = btmini_from(&torrent, &out, "127.0.0.51", &peer, &[]);
    let log = b.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains("dialling TCP beside it"), "{log}");
    assert!(
        log.contains("TCP answered before uTP: keeping TCP"),
        "{log}"
    );
    assert!(!log.contains("no answer over uTP:"), "{log}");
}

/// A UDP relay between a client and `to`: each datagram waits `delay` and every 100th is
/// dropped, both ways. Returns its address and a switch that stops it; counts the drops.
fn relay(
    ip: &str,
    to: SocketAddr,
    delay: Duration,
) -> (SocketAddr, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let outer = UdpSocket::bind((ip, 0)).unwrap();
    let inner = UdpSocket::bind((ip, 0)).unwrap();
    let addr = outer.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (s, d) = (stop.clone(), dropped.clone());
    std::thread::spawn(move || {
        outer.set_nonblocking(true).unwrap();
        inner.set_nonblocking(true).unwrap();
        let mut client: Option<SocketAddr> = None;
        // (when due, towards the seeder?, bytes)
        let mut queue: std::collections::VecDeque<(Instant, bool, Vec<u8>)> = Default::default();
        let mut n = 0usize;
        let mut buf = [0u8; 65536];
        while !s.load(Ordering::Relaxed) {
            let mut idle = true;
            while let Ok((len, from)) = outer.recv_from(&mut buf) {
                client = Some(from);
                queue.push_back((Instant::now() + delay, true, buf[..len].to_vec()));
                idle = false;
            }
            while let Ok((len, _)) = inner.recv_from(&mut buf) {
                queue.push_back((Instant::now() + delay, false, buf[..len].to_vec()));
                idle = false;
            }
            while queue.front().is_some_and(|q| q.0 <= Instant::now()) {
                let (_, up, bytes) = queue.pop_front().unwrap();
                n += 1;
                if n % 100 == 0 {
                    d.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = match (up, client) {
                    (true, _) => inner.send_to(&bytes, to),
                    (false, Some(c)) => outer.send_to(&bytes, c),
                    (false, None) => continue,
                };
            }
            if idle {
                // The relay's own pacing (it is the path, not a wait for the test).
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    (addr, stop, dropped)
}

#[test]
fn a_download_over_utp_completes_through_delay_and_one_percent_loss() {
    let dir = TempDir::new("utp-relay");
    let (file, torrent) = single_file_torrent(dir.path(), 44, 2_000_003, &[]);
    let seeder = lt_utp_seed(&torrent, &dir.join("data"), "127.0.0.47");
    let to: SocketAddr = format!("127.0.0.47:{}", seeder.port).parse().unwrap();
    let (via, stop, dropped) = relay("127.0.0.48", to, Duration::from_millis(20));
    let out = dir.join("out");
    let mut b = btmini_from(&torrent, &out, "127.0.0.49", &via.to_string(), &[]);
    let log = b.finish_with(&out.join("single.bin"), &file);
    stop.store(true, Ordering::Relaxed);
    assert!(log.contains(&format!("{via} is libtorrent")), "{log}");
    assert!(
        dropped.load(Ordering::Relaxed) >= 10,
        "the relay lost {} datagrams",
        dropped.load(Ordering::Relaxed)
    );
}

#[test]
fn btmini_ends_a_utp_connection_with_a_fin_that_is_acknowledged_not_a_reset() {
    use btmini::utp::{Stream, UtpError, packet};
    let dir = TempDir::new("utp-fin");
    let (_, torrent) = single_file_torrent(dir.path(), 45, 100_000, &[]);
    let port = free_port();
    let seed = btmini_seeding(&torrent, &dir.join("data"), "127.0.0.45", port);
    let to: SocketAddr = format!("127.0.0.45:{port}").parse().unwrap();
    // A uTP peer of our own making (the sans-IO stream on a real socket) that sends a
    // handshake for a torrent btmini does not have: btmini drops the connection.
    let sock = UdpSocket::bind("127.0.0.46:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    let mut s = Stream::connect(4242, 7, start);
    let mut handshake = b"\x13BitTorrent protocol".to_vec();
    handshake.extend_from_slice(&[0; 8]);
    handshake.extend_from_slice(&[0xEE; 20]);
    handshake.extend_from_slice(b"-XX0000-fin-test-000");
    let (mut written, mut types) = (false, Vec::new());
    let mut buf = Vec::new();
    let mut rx = [0u8; 2048];
    while s.error().is_none() && start.elapsed() < Duration::from_secs(20) {
        let now = Instant::now();
        if s.is_connected() && !written {
            assert_eq!(s.write(&handshake), handshake.len());
            written = true;
        }
        while s.poll_transmit(now, &mut buf) {
            sock.send_to(&buf, to).unwrap();
        }
        match sock.recv_from(&mut rx) {
            Ok((n, _)) => {
                let p = packet::decode(&rx[..n]).unwrap();
                types.push(p.header.ty);
                s.handle(Instant::now(), &p);
            }
            Err(_) => {
                if s.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                    s.handle_timeout(Instant::now());
                }
            }
        }
    }
    // Our ACK of its FIN goes out, and btmini forgets the connection.
    while s.poll_transmit(Instant::now(), &mut buf) {
        sock.send_to(&buf, to).unwrap();
    }
    assert_eq!(s.error(), Some(UtpError::Eof), "{types:?}\n{}", seed.log());
    assert!(types.contains(&packet::Type::Fin));
    assert!(!types.contains(&packet::Type::Reset), "{types:?}");
    seed.wait_for("uTP connection closed");
}
