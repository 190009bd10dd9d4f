//! IPv6 on `::1` against libtorrent: btmini listens on both families with no `--bind`, or
//! on the IPv6 address it is given; it dials IPv6 peers from `--peer` and from a tracker's
//! `peers6`, over uTP and TCP, and tells HTTP trackers its IPv6 address (BEP 7's `ipv6=`).

mod common;

use common::*;
use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// libtorrent seeding on `::1`; `utp`: over uTP alone, else TCP alone.
fn lt_seed_v6(torrent: &Path, data: &Path, utp: bool) -> Seeder {
    let t = if utp { "utp" } else { "tcp" };
    lt_process_env(
        &[
            OsStr::new("seed"),
            torrent.as_os_str(),
            data.as_os_str(),
            OsStr::new("::1"),
        ],
        &[("LT_TRANSPORT", t)],
    )
}

#[test]
fn btmini_on_both_families_downloads_from_libtorrent_on_ipv6_over_utp_and_tcp() {
    for utp in [true, false] {
        let dir = TempDir::new("v6-from-lt");
        let (file, torrent) = single_file_torrent(dir.path(), 61, 1_500_007, &[]);
        let seeder = lt_seed_v6(&torrent, &dir.join("data"), utp);
        let out = dir.join("out");
        let peer = format!("[::1]:{}", seeder.port);
        // No --bind: IPv4 and IPv6 sockets both.
        let mut b = Logged::start(
            btmini()
                .arg(&torrent)
                .arg("-o")
                .arg(&out)
                .args(["--port", &free_port().to_string(), "--no-dht"])
                .args(["--peer", &peer]),
        );
        let log = b.finish_with(&out.join("single.bin"), &file);
        assert!(log.contains(&format!("{peer} is libtorrent")), "{log}");
        // Over TCP only when uTP was not answered: TCP dialled beside it won, or an ICMP
        // error said nothing listens.
        let tcp = log.contains("keeping TCP") || log.contains("over TCP");
        assert_eq!(tcp, !utp, "{log}");
    }
}

#[test]
fn libtorrent_on_ipv6_downloads_from_btmini_bound_to_ipv6() {
    let dir = TempDir::new("v6-to-lt");
    let (file, torrent) = single_file_torrent(dir.path(), 62, 1_500_013, &[]);
    let port = free_port();
    let seed = btmini_seeding(&torrent, &dir.join("data"), "::1", port);
    let out = dir.join("lt-out");
    let v = libtorrent(&[
        "download".as_ref(),
        torrent.as_os_str(),
        out.as_os_str(),
        "::1".as_ref(),
        format!("[::1]:{port}").as_ref(),
    ]);
    assert_eq!(v["seeding"], true, "{v}\n{}", seed.log());
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// An HTTP tracker on `[::1]` that answers every announce with `peers6` holding `peer`, and
/// passes each request's target to `requests`.
fn v6_tracker(peer: std::net::SocketAddrV6, requests: mpsc::Sender<String>) -> u16 {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let head = read_http_head(&mut s);
            let target = String::from_utf8_lossy(&head)
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let _ = requests.send(target);
            let mut peers6 = peer.ip().octets().to_vec();
            peers6.extend_from_slice(&peer.port().to_be_bytes());
            let mut body = b"d8:intervali1800e5:peers0:6:peers618:".to_vec();
            body.extend_from_slice(&peers6);
            body.push(b'e');
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

#[test]
fn a_tracker_s_peers6_are_dialled_and_it_hears_our_ipv6_address() {
    let dir = TempDir::new("v6-tracker");
    let file = dir.join("data/single.bin");
    write_file(&file, 63, 1_000_003);
    // The seeder first (its port goes into the tracker's replies), then the torrent naming
    // the tracker; libtorrent reads the torrent only to seed it, and never asks the tracker
    // (it is told nothing about it: the seed command takes its data and address).
    let plain = dir.join("plain.torrent");
    make_torrent(&file, &plain, &["-l", "64K"]);
    let (tx, rx) = mpsc::channel();
    // The tracker's URL is part of the torrent (and so of its info-hash only if private,
    // which it is not): the seeder seeds the same info-hash from the trackerless torrent.
    let seeder = lt_seed_v6(&plain, &dir.join("data"), false);
    let at = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, seeder.port, 0, 0);
    let tport = v6_tracker(at, tx);
    let torrent = dir.join("t.torrent");
    make_torrent(
        &file,
        &torrent,
        &["-l", "64K", "-t", &format!("http://[::1]:{tport}/announce")],
    );
    assert_eq!(hex_of(&plain), hex_of(&torrent));
    let out = dir.join("out");
    let mut b = Logged::start(btmini().arg(&torrent).arg("-o").arg(&out).args([
        "--bind",
        "::1",
        "--port",
        &free_port().to_string(),
        "--no-dht",
    ]));
    let log = b.finish_with(&out.join("single.bin"), &file);
    assert!(
        log.contains(&format!("[::1]:{} is libtorrent", seeder.port)),
        "{log}"
    );
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(first.contains("&ipv6=%3A%3A1"), "{first}");
}
