//! `kill -9` at any instant (issue 9): btmini downloads a multi-file torrent from a
//! libtorrent seeder (rate-capped so a download lasts a few seconds) and is killed at random
//! moments, then restarted, over and over. After every kill, each piece the sidecar claims
//! must verify against the data on disk ("sidecar lies" must stay 0). Kills land in
//! start-up (every tenth run is killed within 30 ms), in the recheck a crash causes, mid-piece,
//! during sidecar writes and near the end. Once the kills are done, a last run completes the
//! download and the files are compared byte for byte. A download that completes before the
//! kills are done starts again from an empty folder.
//!
//! Bytes fetched twice = what the seeder uploaded − the torrent's size × downloads; a crash
//! may lose at most what arrived since the last flush.
//!
//! `cargo run --release --example torture -- [MiB] [KILLS]` (default 256 MiB, 100 kills).
//! Needs python3-libtorrent (Debian's /usr/bin/python3).

use btmini::geometry::Geometry;
use btmini::metainfo::Metainfo;
use btmini::storage::sidecar::Sidecar;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_payload(path: &Path, len: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    let mut rng = Rng(seed | 1);
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            let r = rng.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// The pieces the sidecar in `out` claims that do not verify (None: no sidecar yet).
fn sidecar_lies(meta: &Metainfo, geo: &Geometry, out: &Path) -> Option<Vec<u32>> {
    let bytes = std::fs::read(out.join(format!(".{}.btmini", meta.name))).ok()?;
    let sc = Sidecar::decode(&bytes).expect("a sidecar btmini wrote is always whole");
    let files: Vec<PathBuf> = meta
        .files
        .iter()
        .map(|f| f.path.iter().fold(out.to_path_buf(), |p, c| p.join(c)))
        .collect();
    let mut lies = Vec::new();
    for i in sc.have.ones() {
        let mut data = Vec::with_capacity(meta.piece_length as usize);
        for s in geo.spans(i) {
            let mut buf = vec![0u8; s.len as usize];
            let ok = std::fs::File::open(&files[s.file as usize])
                .and_then(|f| f.read_exact_at(&mut buf, s.offset))
                .is_ok();
            if !ok {
                buf.fill(0);
            }
            data.extend_from_slice(&buf);
        }
        if btmini::hash::sha1(&data) != meta.pieces[i as usize] {
            lies.push(i);
        }
    }
    Some(lies)
}

fn same_files(meta: &Metainfo, a: &Path, b: &Path) -> bool {
    meta.files.iter().all(|f| {
        let rel: PathBuf = f.path.iter().collect();
        std::fs::read(a.join(&rel)).ok() == std::fs::read(b.join(&rel)).ok()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(256, |a| a.parse().expect("MiB"));
    let kills: usize = args.next().map_or(100, |a| a.parse().expect("KILLS"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or(PathBuf::from(ROOT).join("target"), PathBuf::from);
    let btmini = target.join("release/btmini");
    assert!(
        Command::new("cargo")
            .args(["build", "--release", "--quiet"])
            .current_dir(ROOT)
            .status()
            .unwrap()
            .success()
    );
    let root = std::env::temp_dir().join(format!("btmini-torture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let total = mib << 20;
    // Multi-file: two big files with odd sizes, an empty one, a small one in a sub-folder.
    let sizes = [
        ("multi/a.bin", total * 6 / 10 + 12_345),
        ("multi/b.bin", total * 3 / 10 - 54_321),
        ("multi/c/empty", 0),
        ("multi/c/d.bin", total / 10 + 777),
    ];
    for (i, (name, len)) in sizes.iter().enumerate() {
        write_payload(&data.join(name), *len, 0x7047 + i as u64);
    }
    let torrent = root.join("t.torrent");
    let made = Command::new(&btmini)
        .arg("create")
        .arg(data.join("multi"))
        .arg("-o")
        .arg(&torrent)
        .args(["-l", "256K", "-q"])
        .status()
        .unwrap();
    assert!(made.success());
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let geo = Geometry::new(&meta);
    // The seeder, capped so one download takes about 4 s.
    let rate = (meta.total_length / 4).max(1 << 20);
    let mut seeder = Command::new("/usr/bin/python3")
        .arg(PathBuf::from(ROOT).join("tests/support/lt.py"))
        .arg("seed")
        .arg(&torrent)
        .arg(&data)
        .args(["127.0.0.2", &rate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent");
    let mut seeder_out = BufReader::new(seeder.stdout.take().unwrap());
    let mut line = String::new();
    seeder_out.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .expect("the seeder's ready line")
        .parse()
        .unwrap();
    let out = root.join("out");
    let mut rng = Rng(0x5eed_0000 ^ u64::from(std::process::id()));
    let (mut killed, mut lies, mut downloads, mut runs) = (0usize, 0usize, 1u64, 0usize);
    let started = Instant::now();
    let my_port = 40_000 + (std::process::id() % 1000) as u16 * 7;
    // Each run's debug log replaces the last one's, to show what a stuck run was doing.
    let log = root.join("run.log");
    let run = || {
        Command::new(&btmini)
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .args(["-v", "--min-share", "0", "--bind", "127.0.0.3", "--port"])
            .arg(my_port.to_string())
            .arg("--peer")
            .arg(format!("127.0.0.2:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    while killed < kills {
        runs += 1;
        let mut child = run();
        // Mostly within the first 0.8 s of a run; every tenth run during start-up.
        let delay = if runs % 10 == 0 {
            Duration::from_millis(rng.next() % 30)
        } else {
            Duration::from_millis(rng.next() % 800)
        };
        let t = Instant::now();
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if t.elapsed() >= delay {
                break false;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if finished {
            let ok = child.wait().unwrap().success() && same_files(&meta, &data, &out);
            assert!(ok, "run {runs} finished, but not with the right data");
            // Start over from nothing to go on killing.
            std::fs::remove_dir_all(&out).unwrap();
            downloads += 1;
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed += 1;
        if let Some(bad) = sidecar_lies(&meta, &geo, &out) {
            if !bad.is_empty() {
                eprintln!("kill {killed}: the sidecar claims pieces that do not verify: {bad:?}");
                lies += bad.len();
            }
        }
    }
    // The last run completes.
    let mut child = run();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("{}", lines[lines.len().saturating_sub(60)..].join("\n"));
            panic!("the last run did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let identical = status.success() && same_files(&meta, &data, &out);
    drop(seeder.stdin.take());
    let mut rest = String::new();
    seeder_out.read_to_string(&mut rest).unwrap();
    let _ = seeder.wait();
    let uploaded: u64 = rest
        .lines()
        .find_map(|l| l.trim().strip_prefix("uploaded "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let twice = uploaded.saturating_sub(meta.total_length * downloads);
    println!(
        "torture: {killed} kills in {runs} runs ({downloads} downloads of {} bytes) in {:.0} s",
        meta.total_length,
        started.elapsed().as_secs_f64()
    );
    println!("torture: sidecar lies: {lies}; final files identical: {identical}");
    println!(
        "torture: seeder uploaded {uploaded} bytes: {twice} fetched twice ({:.1} MiB, {:.2} MiB per kill)",
        twice as f64 / 1048576.0,
        twice as f64 / 1048576.0 / killed.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&root);
    if lies > 0 || !identical {
        std::process::exit(1);
    }
}
