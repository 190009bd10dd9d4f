//! The library's host as an embedding program drives it: torrents added and removed while
//! the loop runs, each one's status read, and incoming connections attached by the
//! info-hash their handshake names (an unknown one is dropped).

mod common;

use btmini::engine::{DownloadOptions, Phase};
use btmini::host::{Host, HostOptions, Source};
use btmini::metainfo::Metainfo;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn load(torrent: &Path) -> Arc<Metainfo> {
    Arc::new(Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap())
}

/// Steps `host` until `done` says so; fails after [`LIMIT`].
fn step_until(host: &mut Host, what: &str, mut done: impl FnMut(&mut Host) -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done(host) {
        assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        host.step(Some(Duration::from_millis(50))).unwrap();
    }
}

fn handshake(info_hash: [u8; 20]) -> Vec<u8> {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&info_hash);
    h.extend_from_slice(b"-XX0000-hostteststst");
    h
}

#[test]
fn torrents_are_added_and_removed_while_the_loop_runs() {
    let dir = TempDir::new("host");
    let mut seeders = Vec::new();
    let mut torrents = Vec::new();
    for i in 0..2u64 {
        let sub = dir.join(format!("t{i}"));
        let (file, torrent) = single_file_torrent(&sub, 100 + i, 900_001, &[]);
        let s = libtorrent_seeder(&torrent, &sub.join("data"), "127.0.0.2", None);
        seeders.push(s);
        torrents.push((file, load(&torrent)));
    }
    let mut host = Host::new(HostOptions {
        port: 0,
        bind: Some("127.0.0.3".parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    let opts = |i: usize| DownloadOptions {
        output: dir.join(format!("out{i}")),
        peers: vec![format!("127.0.0.2:{}", seeders[i].port).parse().unwrap()],
        bind: Some("127.0.0.3".parse().unwrap()),
        min_share: 0.0,
        ..Default::default()
    };

    // The first torrent, downloaded and then removed.
    let a = host
        .add(
            Source::Torrent(torrents[0].1.clone()),
            opts(0),
            &mut |_, _| {},
        )
        .unwrap();
    step_until(&mut host, "torrent a", |h| {
        h.status(a).unwrap().phase == Phase::Finished
    });
    let s = host.status(a).unwrap();
    assert_eq!((s.have_bytes, s.total), (900_001, 900_001));
    assert!(host.take_error(a).is_none());

    // An incoming connection for a torrent the host does not have is dropped; one for a
    // torrent it has is answered with a handshake.
    let b = host
        .add(
            Source::Torrent(torrents[1].1.clone()),
            opts(1),
            &mut |_, _| {},
        )
        .unwrap();
    host.remove(a);
    step_until(&mut host, "a removed", |h| h.ids() == [b]);
    let port = host.port();
    let mut stranger = TcpStream::connect(("127.0.0.3", port)).unwrap();
    stranger.write_all(&handshake([0xee; 20])).unwrap();
    stranger.set_nonblocking(true).unwrap();
    let mut friend = TcpStream::connect(("127.0.0.3", port)).unwrap();
    friend
        .write_all(&handshake(torrents[1].1.info_hash.0))
        .unwrap();
    friend.set_nonblocking(true).unwrap();
    let (mut closed, mut answered) = (false, Vec::new());
    step_until(&mut host, "the two connections handled", |_| {
        let mut buf = [0u8; 256];
        if !closed {
            closed = match stranger.read(&mut buf) {
                Ok(0) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                Ok(_) => panic!("the stranger was answered"),
            };
        }
        if let Ok(n) = friend.read(&mut buf) {
            answered.extend_from_slice(&buf[..n]);
        }
        closed && answered.len() >= 68
    });
    assert_eq!(&answered[28..48], &torrents[1].1.info_hash.0);
    drop(friend);

    step_until(&mut host, "torrent b", |h| {
        h.status(b).unwrap().phase == Phase::Finished
    });
    for (i, (file, meta)) in torrents.iter().enumerate() {
        let got = dir.join(format!("out{i}")).join(&meta.name);
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(file).unwrap());
    }
    assert!(host.all_finished());
}

/// With `check_in_loop`, data on disk without a sidecar is hashed a slice per pass of the
/// loop (4 MiB), not in `add`: the torrent is Checking until the last slice, a peer for it
/// is turned away meanwhile, and the check finds exactly the pieces that are right.
#[test]
fn data_on_disk_is_checked_a_slice_per_pass_of_the_loop() {
    let dir = TempDir::new("host-check");
    // 12 MiB in 64 KiB pieces: 192 pieces, 64 a slice.
    let (file, torrent) = single_file_torrent(dir.path(), 7, 12 << 20, &[]);
    let meta = load(&torrent);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut data = std::fs::read(&file).unwrap();
    data[100 * 65_536 + 5] ^= 1; // piece 100 is wrong
    std::fs::write(out.join(&meta.name), &data).unwrap();
    let mut host = Host::new(HostOptions {
        port: 0,
        bind: Some("127.0.0.3".parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    let opts = DownloadOptions {
        output: out.clone(),
        bind: Some("127.0.0.3".parse().unwrap()),
        check_in_loop: true,
        ..Default::default()
    };
    let id = host
        .add(Source::Torrent(meta.clone()), opts, &mut |_, _| {
            panic!("no check in add")
        })
        .unwrap();
    let s = host.status(id).unwrap();
    assert_eq!((s.phase, s.checking), (Phase::Checking, Some((0, 192))));
    let mut peer = TcpStream::connect(("127.0.0.3", host.port())).unwrap();
    peer.write_all(&handshake(meta.info_hash.0)).unwrap();
    host.step(Some(Duration::ZERO)).unwrap();
    assert_eq!(host.status(id).unwrap().checking, Some((64, 192)));
    let mut passes = 1;
    step_until(&mut host, "the check", |h| {
        passes += 1;
        h.status(id).unwrap().phase != Phase::Checking
    });
    // 3 slices; the first pass after the last one sees it over.
    assert_eq!(passes, 4);
    let mut buf = [0u8; 68];
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    assert!(
        matches!(peer.read(&mut buf), Ok(0) | Err(_)),
        "a peer was let in while the data was being checked"
    );
    let s = host.status(id).unwrap();
    assert_eq!(s.phase, Phase::Downloading);
    let have: Vec<u32> = host.session(id).unwrap().have().ones().collect();
    assert_eq!(have.len(), 191);
    assert!(!have.contains(&100));
}
