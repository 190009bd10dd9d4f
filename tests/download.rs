//! `btmini FILE.torrent -o DIR` against real seeders: libtorrent (python3-libtorrent),
//! aria2c and transmission-cli, with `--peer` and through a real opentracker over HTTP and
//! UDP; a download stopped with SIGINT and resumed; a corrupt peer banned. Every wait has a
//! deadline; each client gets its own loopback address.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// Runs btmini with `--json` until it exits; returns its last status object.
fn btmini_download(torrent: &Path, out: &Path, ip: &str, extra: &[String]) -> Value {
    let mut child = btmini()
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--json", "--bind", ip, "--port", &free_port().to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut last = Value::Null;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            last = serde_json::from_str(&line).unwrap_or(last);
        }
        last
    });
    let status = wait_exit(&mut child, "btmini", LIMIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "btmini failed: {status}\n{stderr}");
    reader.join().unwrap()
}

/// `a` and `b` hold the same bytes: two files, or two folders file by file.
fn same_tree(a: &Path, b: &Path) {
    if a.is_file() {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}",
            b.display()
        );
        return;
    }
    let mut stack = vec![PathBuf::new()];
    let mut files = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(a.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                files += 1;
                let (x, y) = (
                    std::fs::read(a.join(&r)).unwrap(),
                    std::fs::read(b.join(&r)),
                );
                assert!(y.as_ref().is_ok_and(|y| *y == x), "{} differs", r.display());
            }
        }
    }
    assert!(files > 0);
}

/// A payload folder `dir/data` holding `name` (a file or a folder), its torrent and the
/// torrent's info-hash.
struct Payload {
    data: PathBuf,
    name: String,
    torrent: PathBuf,
    hash: String,
}

fn payload(dir: &TempDir, multi: bool, trackers: &[String], piece: &str) -> Payload {
    let data = dir.join("data");
    let name = if multi {
        let root = data.join("multi");
        // A 64 KiB piece covers a, the empty b, c and the start of d.
        write_file(&root.join("a.bin"), 1, 40_000);
        write_file(&root.join("b.empty"), 2, 0);
        write_file(&root.join("c.bin"), 3, 20_000);
        write_file(&root.join("sub/d.bin"), 4, 3_000_017);
        "multi".to_string()
    } else {
        write_file(&data.join("single.bin"), 5, 5_000_011);
        "single.bin".to_string()
    };
    let torrent = dir.join("p.torrent");
    let mut cmd = btmini();
    cmd.arg("create")
        .arg(data.join(&name))
        .arg("-o")
        .arg(&torrent)
        .args(["-l", piece, "-q"]);
    for t in trackers {
        cmd.args(["-t", t]);
    }
    run_ok(&mut cmd);
    let hash = btmini_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    Payload {
        data,
        name,
        torrent,
        hash,
    }
}

#[test]
fn from_libtorrent_with_peer_single_and_multi_file() {
    for multi in [false, true] {
        let dir = TempDir::new("dl-lt");
        let p = payload(&dir, multi, &[], "64K");
        let seeder = libtorrent_seeder(&p.torrent, &p.data, "127.0.0.2", None);
        let out = dir.join("out");
        let last = btmini_download(
            &p.torrent,
            &out,
            "127.0.0.3",
            &["--peer".into(), format!("127.0.0.2:{}", seeder.port)],
        );
        assert_eq!(last["phase"], "finished");
        assert_eq!(last["have_bytes"], last["total_bytes"]);
        same_tree(&p.data.join(&p.name), &out.join(&p.name));
        if multi {
            assert_eq!(
                std::fs::metadata(out.join("multi/b.empty")).unwrap().len(),
                0
            );
        }
    }
}

/// `--files 1,3` fetches the first and last files and not the middle one, which is never
/// created; run again without `--files`, the middle file is fetched and the pieces it shares
/// with the others come from the part file, not from the peer again.
#[test]
fn only_the_chosen_files_then_the_rest() {
    let dir = TempDir::new("dl-files");
    let root = dir.join("data/sel");
    three_file_payload(&root);
    let torrent = dir.join("sel.torrent");
    make_torrent(&root, &torrent, &["-l", "64K"]);
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    let peer = format!("127.0.0.2:{}", seeder.port);
    let out = dir.join("out");
    let args = |files: bool| {
        let mut a = vec!["--peer".to_string(), peer.clone()];
        if files {
            a.extend(["--files".to_string(), "1,3".to_string()]);
        }
        a
    };
    let last = btmini_download(&torrent, &out, "127.0.0.3", &args(true));
    assert_eq!(last["phase"], "finished");
    assert_eq!(last["left_bytes"], 0);
    let wanted = last["wanted_bytes"].as_u64().unwrap();
    assert!(wanted < 600_000, "wanted {wanted}");
    same_tree(&root.join("a.bin"), &out.join("sel/a.bin"));
    same_tree(&root.join("c.bin"), &out.join("sel/c.bin"));
    assert!(
        !out.join("sel/b.bin").exists(),
        "the unwanted file was created"
    );
    let downloaded = last["downloaded"].as_u64().unwrap();
    eprintln!("--files 1,3: {downloaded} bytes downloaded, {wanted} wanted");
    // One seeder: no block is asked twice, so nothing past the wanted pieces.
    assert!(
        downloaded <= wanted,
        "{downloaded} bytes for {wanted} wanted"
    );

    let last = btmini_download(&torrent, &out, "127.0.0.3", &args(false));
    assert_eq!(last["phase"], "finished");
    same_tree(&root, &out.join("sel"));
    assert!(!out.join(".sel.parts").exists(), "the part file stayed");
    // The 30 pieces inside b.bin and nothing more: the two it shares came along before.
    let downloaded = last["downloaded"].as_u64().unwrap();
    eprintln!("then all: {downloaded} bytes downloaded");
    assert!(
        downloaded <= 30 * 65_536,
        "{downloaded} bytes fetched for b.bin"
    );
}

#[test]
fn from_libtorrent_through_opentracker_over_http_and_udp() {
    for udp in [false, true] {
        let dir = TempDir::new("dl-ot");
        // The torrent names the tracker and the tracker lists the torrent: pick the port,
        // make the torrent, then start the tracker on that port.
        let port = free_port();
        let url = if udp {
            format!("udp://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}/announce")
        };
        let p = payload(&dir, true, &[url], "32K");
        let tracker = OpenTracker::start_on(port, std::slice::from_ref(&p.hash));
        let seeder = libtorrent_seeder(&p.torrent, &p.data, "127.0.0.2", None);
        let out = dir.join("out");
        let last = btmini_download(&p.torrent, &out, "127.0.0.4", &[]);
        assert_eq!(last["have_bytes"], last["total_bytes"], "{last}");
        same_tree(&p.data.join("multi"), &out.join("multi"));
        drop((seeder, tracker));
    }
}

/// Waits until something listens on 127.0.0.1:`port` (a seeder that checks its data first).
fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start seeding");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn aria2_seeder(p: &Payload) -> Seeder {
    let port = free_port();
    let child = Command::new("aria2c")
        .arg("--seed-ratio=0.0")
        .arg("--check-integrity=true")
        .arg("--bt-seed-unverified=false")
        .arg(format!("--listen-port={port}"))
        .args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
        ])
        .args([
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--quiet=true",
        ])
        .arg("--dir")
        .arg(&p.data)
        .arg(&p.torrent)
        .stdout(Stdio::null())
        .spawn()
        .expect("aria2c is installed (tools/test installs it)");
    wait_listening(port, "aria2c");
    Seeder {
        child,
        _stdin: None,
        port,
        out: None,
    }
}

fn transmission_seeder(p: &Payload, home: &Path) -> Seeder {
    let port = free_port();
    let child = Command::new("transmission-cli")
        .arg("-w")
        .arg(&p.data)
        .args(["-p", &port.to_string(), "-u", "-1", "-D"])
        .arg(&p.torrent)
        .env("TRANSMISSION_HOME", transmission_home(home))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("transmission-cli is installed");
    wait_listening(port, "transmission-cli");
    Seeder {
        child,
        _stdin: None,
        port,
        out: None,
    }
}

/// Each seeder twice: found through opentracker (HTTP), and named with `--peer` alone.
fn from_seeder(tag: &str, ip: &str, start: impl Fn(&Payload, &TempDir) -> Seeder) {
    for via_tracker in [true, false] {
        let dir = TempDir::new(tag);
        let port = free_port();
        let trackers = if via_tracker {
            vec![format!("http://127.0.0.1:{port}/announce")]
        } else {
            vec![]
        };
        let p = payload(&dir, true, &trackers, "64K");
        let tracker =
            via_tracker.then(|| OpenTracker::start_on(port, std::slice::from_ref(&p.hash)));
        let seeder = start(&p, &dir);
        if let Some(t) = &tracker {
            t.wait_for_peer(&p.hash, seeder.port);
        }
        let peer = if via_tracker {
            vec![]
        } else {
            vec!["--peer".to_string(), format!("127.0.0.1:{}", seeder.port)]
        };
        let out = dir.join("out");
        let last = btmini_download(&p.torrent, &out, ip, &peer);
        assert_eq!(
            last["have_bytes"], last["total_bytes"],
            "{tag}, tracker {via_tracker}"
        );
        same_tree(&p.data.join("multi"), &out.join("multi"));
        drop((seeder, tracker));
    }
}

#[test]
fn from_aria2c_through_opentracker_and_with_peer() {
    from_seeder("dl-aria2", "127.0.0.5", |p, _| aria2_seeder(p));
}

#[test]
fn from_transmission_cli_through_opentracker_and_with_peer() {
    from_seeder("dl-tr", "127.0.0.6", |p, dir| {
        transmission_seeder(p, &dir.join("tr-home"))
    });
}

/// Stopped with SIGINT half-way, started again: the second run fetches exactly what the
/// first had not verified — no verified piece twice.
#[test]
fn sigint_half_way_then_resume_fetches_no_verified_piece_twice() {
    let dir = TempDir::new("dl-resume");
    let p = payload(&dir, false, &[], "64K");
    // About 2.5 s for the whole payload, so there is a half-way to stop at.
    let seeder = libtorrent_seeder(&p.torrent, &p.data, "127.0.0.2", Some(2_000_000));
    let out = dir.join("out");
    let peer = format!("127.0.0.2:{}", seeder.port);
    let mut child = btmini()
        .arg(&p.torrent)
        .arg("-o")
        .arg(&out)
        .args([
            "--json",
            "--bind",
            "127.0.0.7",
            "--port",
            &free_port().to_string(),
        ])
        .args(["--peer", &peer])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let total = loop {
        let line = lines.next().expect("status lines until half-way").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let (have, total) = (
            v["have_bytes"].as_u64().unwrap(),
            v["total_bytes"].as_u64().unwrap(),
        );
        assert!(have < total, "finished before it could be interrupted");
        if have * 3 >= total {
            break total;
        }
    };
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let mut last = Value::Null;
    for line in lines.map_while(Result::ok) {
        last = serde_json::from_str(&line).unwrap_or(last);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGINT exits 0, got {status}");
    assert_eq!(last["phase"], "finished");
    let have1 = last["have_bytes"].as_u64().unwrap();
    assert!(have1 > 0 && have1 < total, "{last}");

    let second = btmini_download(&p.torrent, &out, "127.0.0.7", &["--peer".into(), peer]);
    assert_eq!(second["have_bytes"].as_u64(), Some(total));
    assert_eq!(
        second["downloaded"].as_u64().unwrap(),
        total - have1,
        "the second run fetched exactly the bytes the first had not verified"
    );
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(p.data.join("single.bin")).unwrap()
    );
}

/// A scripted peer that has every piece and answers every request with corrupt data.
fn corrupt_seeder(info_hash: [u8; 20], pieces: u32) -> (u16, std::thread::JoinHandle<u32>) {
    use btmini::wire::{self, Handshake, Message};
    let listener = std::net::TcpListener::bind("127.0.0.8:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        // Like any peer without MSE, it drops a connection that does not begin with a
        // plaintext handshake (btmini's encrypted dial) and takes the next.
        let mut s = loop {
            let Ok((mut s, _)) = listener.accept() else {
                return 0;
            };
            s.set_read_timeout(Some(LIMIT)).unwrap();
            let mut hs = [0u8; 68];
            if std::io::Read::read_exact(&mut s, &mut hs).is_err() {
                return 0;
            }
            if hs.starts_with(b"\x13BitTorrent protocol") {
                break s;
            }
        };
        let mut out = Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id: *b"-XX0000-corruptcorru",
        }
        .encode()
        .to_vec();
        wire::encode(
            &Message::Bitfield(btmini::bitfield::Bitfield::full(pieces).as_bytes()),
            &mut out,
        );
        wire::encode(&Message::Unchoke, &mut out);
        if s.write_all(&out).is_err() {
            return 0;
        }
        let mut rx = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => return served,
                Ok(n) => n,
            };
            rx.extend_from_slice(&buf[..n]);
            let mut reply = Vec::new();
            while let Ok(Some((m, used))) = wire::decode(&rx, 1 << 20) {
                if let Message::Request {
                    index,
                    begin,
                    length,
                } = m
                {
                    let junk = vec![0xAB; length as usize];
                    wire::encode(
                        &Message::Piece {
                            index,
                            begin,
                            data: &junk,
                        },
                        &mut reply,
                    );
                    served += 1;
                }
                rx.drain(..used);
            }
            if s.write_all(&reply).is_err() {
                return served;
            }
        }
    });
    (port, handle)
}

#[test]
fn a_peer_sending_corrupt_blocks_is_banned_and_the_download_completes() {
    let dir = TempDir::new("dl-corrupt");
    let p = payload(&dir, false, &[], "64K");
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(&p.torrent).unwrap()).unwrap();
    let (bad_port, bad) = corrupt_seeder(meta.info_hash.0, meta.piece_count());
    let good = libtorrent_seeder(&p.torrent, &p.data, "127.0.0.2", Some(4_000_000));
    let out = dir.join("out");
    let last = btmini_download(
        &p.torrent,
        &out,
        "127.0.0.9",
        &[
            "--peer".into(),
            format!("127.0.0.8:{bad_port}"),
            "--peer".into(),
            format!("127.0.0.2:{}", good.port),
        ],
    );
    assert_eq!(last["have_bytes"], last["total_bytes"]);
    assert_eq!(last["banned"], 1, "{last}");
    assert!(
        bad.join().unwrap() > 0,
        "the corrupt peer was asked for blocks"
    );
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(p.data.join("single.bin")).unwrap()
    );
}
