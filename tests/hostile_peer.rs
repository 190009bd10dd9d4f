//! Hostile peers against the real btmini (issue 9): scripted peers talking raw bytes attack
//! a btmini that is downloading from a libtorrent seeder. Each attacker must be dropped (or,
//! for requests while choked, ignored); the download must finish from the good peer, byte
//! for byte; btmini's own memory stays bounded and nothing panics.

mod common;

use common::*;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// btmini's time limit for a handshake (its connect timeout), plus slack.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(20);

/// The reserved bits of a peer that speaks BEP 10 and Fast.
const EXTENSIONS: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];

fn handshake(info_hash: &[u8; 20], id: u8) -> Vec<u8> {
    handshake_with(info_hash, id, [0; 8])
}

fn handshake_with(info_hash: &[u8; 20], id: u8, reserved: [u8; 8]) -> Vec<u8> {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&reserved);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(&[id; 20]);
    h
}

fn msg(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

/// An extended message (BEP 10) with extended id `id`.
fn ext(id: u8, payload: &[u8]) -> Vec<u8> {
    msg(20, &[&[id][..], payload].concat())
}

/// A PEX message (btmini's ut_pex id is 1) listing `n` addresses.
fn pex(n: usize) -> Vec<u8> {
    let addrs: Vec<u8> = (0..n)
        .flat_map(|i| [10, 9, (i >> 8) as u8, i as u8, 0x1a, 0xe1])
        .collect();
    let mut d = format!("d5:added{}:", addrs.len()).into_bytes();
    d.extend_from_slice(&addrs);
    d.push(b'e');
    ext(1, &d)
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Whether btmini closes `s` before `limit` runs out (reading and discarding what it sends).
fn closed_by_btmini(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Connects to btmini and completes the handshake with `id` as our peer id.
fn shaken(port: u16, info_hash: &[u8; 20], id: u8) -> TcpStream {
    shaken_with(port, info_hash, id, [0; 8])
}

/// [`shaken`], with `reserved` bits in the handshake.
fn shaken_with(port: u16, info_hash: &[u8; 20], id: u8, reserved: [u8; 8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.3", port)).unwrap();
    s.write_all(&handshake_with(info_hash, id, reserved))
        .unwrap();
    s
}

struct Btmini {
    child: Child,
    last: Arc<Mutex<serde_json::Value>>,
}

impl Btmini {
    fn status(&self) -> serde_json::Value {
        self.last.lock().unwrap().clone()
    }

    fn anon_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("RssAnon:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Btmini {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hostile_peers_are_dropped_while_the_download_goes_on() {
    let dir = TempDir::new("hostile-peer");
    let size = 6_000_011;
    let (file, torrent) = single_file_torrent(dir.path(), 31, size, &[]);
    let data = dir.join("data");
    let hex = btmini_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let pieces = size.div_ceil(65536) as u32;
    // The good peer, slowed to 1 MB/s so the download lasts while the attacks run.
    let seeder = libtorrent_seeder(&torrent, &data, "127.0.0.2", Some(1_000_000));
    let port = free_port();
    let mut child = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(dir.join("out"))
        // No share rule: the attackers count as leechers, and it would hold the last piece
        // for them for a minute.
        .args([
            "--json",
            "--seed",
            "--min-share",
            "0",
            "--bind",
            "127.0.0.3",
            "--port",
        ])
        .arg(port.to_string())
        .arg("--peer")
        .arg(format!("127.0.0.2:{}", seeder.port))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let last = Arc::new(Mutex::new(serde_json::Value::Null));
    let stdout = child.stdout.take().unwrap();
    let sink = last.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                *sink.lock().unwrap() = v;
            }
        }
    });
    let bt = Btmini { child, last };
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect(("127.0.0.3", port)).is_err() {
        assert!(Instant::now() < deadline, "btmini never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut peak = 0;

    // Each case: what the attacker sends after its handshake, and why btmini drops it.
    let bitfield_len = pieces.div_ceil(8) as usize;
    // 92 pieces: the last byte's 4 spare bits are set too.
    assert_ne!(pieces % 8, 0);
    let spare = vec![0xff; bitfield_len];
    let ext_handshake = ext(0, b"d1:md6:ut_pexi1ee4:reqqi250ee");
    let big_handshake = [b"d1:v16500:".to_vec(), vec![b'x'; 16_500], b"e".to_vec()].concat();
    // Peers that speak BEP 10 and Fast, and abuse them.
    let ext_cases: Vec<(&str, Vec<u8>)> = vec![
        ("an extended handshake of 16.5 KB", ext(0, &big_handshake)),
        (
            "malformed bencode in its extended handshake",
            ext(0, b"d1:md6:ut_pexi1e"),
        ),
        ("an extended message btmini never offered", ext(9, b"de")),
        (
            "a PEX message with 10,000 addresses",
            [ext_handshake.clone(), pex(10_000)].concat(),
        ),
        (
            "a PEX message with 1,000 addresses",
            [ext_handshake.clone(), pex(1000)].concat(),
        ),
        (
            "PEX messages one after another",
            [ext_handshake.clone(), pex(5), pex(5), pex(5), pex(5)].concat(),
        ),
        (
            "a reject for a request never made",
            msg(0x10, &u32s(&[0, 0, 16384])),
        ),
    ];
    // Each attacker: its handshake (`id`, `reserved`), then `bytes`; btmini must hang up.
    let mut attack = |id: u8, reserved: [u8; 8], what: &str, bytes: &[u8]| {
        let mut s = shaken_with(port, &info_hash, id, reserved);
        let _ = s.write_all(bytes);
        let t = Instant::now();
        assert!(
            closed_by_btmini(&mut s, LIMIT),
            "btmini kept a peer that sent {what}"
        );
        eprintln!("{what}: dropped after {:?}", t.elapsed());
        peak = peak.max(bt.anon_kib());
    };
    for (i, (what, bytes)) in ext_cases.iter().enumerate() {
        attack(60 + i as u8, EXTENSIONS, what, bytes);
    }
    // Fast and extended messages from a peer that set neither bit.
    attack(80, [0; 8], "have_all without the Fast bit", &msg(0x0E, &[]));
    attack(
        81,
        [0; 8],
        "an extended handshake without the BEP 10 bit",
        &ext_handshake,
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 4 GiB length prefix", vec![0xff, 0xff, 0xff, 0xff, 7]),
        (
            "a bitfield one byte short",
            msg(5, &vec![0xff; bitfield_len - 1]),
        ),
        ("a bitfield with its spare bits set", msg(5, &spare)),
        ("a have past the last piece", msg(4, &u32s(&[pieces]))),
        (
            "a request past the last piece",
            msg(6, &u32s(&[pieces + 5, 0, 16384])),
        ),
        (
            "a block of a piece that does not exist",
            msg(7, &[u32s(&[pieces, 0]), vec![0; 16]].concat()),
        ),
        (
            "a stream of blocks nobody asked for",
            (0..100)
                .flat_map(|_| msg(7, &[u32s(&[1, 0]), vec![0; 16384]].concat()))
                .collect(),
        ),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        attack(100 + i as u8, [0; 8], what, bytes);
    }

    // 10,000 requests at once from a peer btmini chokes: ignored (BEP 3), not stored.
    let mut flood = shaken(port, &info_hash, 90);
    let reqs: Vec<u8> = (0..10_000u32)
        .flat_map(|i| msg(6, &u32s(&[i % pieces, 0, 16384])))
        .collect();
    flood.write_all(&reqs).unwrap();

    // A peer that connects and never speaks, and one that sends its handshake one byte per
    // second (68 s in all): both dropped at btmini's handshake time limit (10 s).
    let mut silent = TcpStream::connect(("127.0.0.3", port)).unwrap();
    let mut slow = TcpStream::connect(("127.0.0.3", port)).unwrap();
    let dripping = {
        let mut s = slow.try_clone().unwrap();
        let bytes = handshake(&info_hash, 91);
        // The attack's own pace, not a wait for btmini: it stops when btmini hangs up.
        std::thread::spawn(move || {
            let mut sent = 0;
            for b in bytes {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            sent
        })
    };

    // 1,000 connections at once: btmini takes what its peer limit allows, closes the rest,
    // and goes on downloading.
    let crowd: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.3", port)).ok())
        .collect();
    assert!(crowd.len() > 900, "only {} connections opened", crowd.len());
    peak = peak.max(bt.anon_kib());

    let t = Instant::now();
    assert!(
        closed_by_btmini(&mut silent, HANDSHAKE_LIMIT),
        "a silent peer was kept"
    );
    eprintln!("silent peer: dropped after {:?}", t.elapsed());
    assert!(
        closed_by_btmini(&mut slow, HANDSHAKE_LIMIT),
        "a peer sending its handshake a byte per second was kept"
    );
    let dripped = dripping.join().unwrap();
    eprintln!("slow handshake: dropped after {dripped} of 68 bytes");
    assert!(dripped < 68, "the whole handshake got through");
    drop(crowd);

    // The download finishes from the good peer.
    let t = Instant::now();
    loop {
        let st = bt.status();
        peak = peak.max(bt.anon_kib());
        if st["pieces_have"] == st["pieces"] && st["pieces"].as_u64() == Some(pieces.into()) {
            break;
        }
        assert!(
            Instant::now() < deadline + LIMIT,
            "the download did not finish: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("download finished {:?} later", t.elapsed());
    assert_eq!(
        std::fs::read(dir.join("out/single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // The bound (stated in the README): piece buffers (4 MiB at most, two pieces at least),
    // each peer's buffers (about 64 KiB, 50 peers at most), the request queue of unchoked
    // peers (500 at most each). 16 MiB is far above what that adds up to here.
    assert!(peak < 16 * 1024, "RssAnon peaked at {peak} KiB");
    eprintln!("peak RssAnon {peak} KiB");
    drop(flood);
    drop(seeder);
}
