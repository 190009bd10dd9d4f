//! Crashes at any instant: a child process writing pieces through the storage layer is
//! `kill -9`ed at random moments, over and over; after every kill each piece the sidecar
//! claims must verify. The child is this same test binary, run for its ignored `child_*`
//! tests with the work described in environment variables.

mod common;

use btmini::create::{CreateOptions, create};
use btmini::metainfo::Metainfo;
use btmini::storage::sidecar::Sidecar;
use btmini::storage::{Resume, Storage, StorageOptions, WriteOutcome};
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const KILLS: usize = 60;

fn child(test: &str, envs: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn load(torrent: &Path) -> Arc<Metainfo> {
    Arc::new(Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap())
}

/// The writer: opens (rechecking if asked), then writes every missing piece from the payload
/// in a shuffled order, flushing as the storage layer's policy says, and reports each step on
/// stdout so the parent can pick a moment to kill it.
#[test]
#[ignore = "run as a child process by crash_at_random_moments_never_leaves_a_lying_sidecar"]
fn child_writer() {
    let var = |k| PathBuf::from(std::env::var_os(k).expect(k));
    let meta = load(&var("CRASH_TORRENT"));
    let payload = std::fs::File::open(var("CRASH_PAYLOAD")).unwrap();
    let seed: u64 = std::env::var("CRASH_SEED").unwrap().parse().unwrap();
    println!("step open");
    let mut st = Storage::open(meta.clone(), &var("CRASH_OUT"), StorageOptions::default()).unwrap();
    if let Resume::NeedsRecheck(_) = st.resume() {
        st.recheck(|done, _| {
            if done % 64 == 0 {
                println!("step recheck {done}");
            }
        })
        .unwrap();
    }
    let mut order: Vec<u32> = (0..meta.piece_count()).filter(|&i| !st.has(i)).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut buf = Vec::new();
    for i in order {
        buf.resize(meta.piece_size(i) as usize, 0);
        payload
            .read_exact_at(&mut buf, u64::from(i) * meta.piece_length)
            .unwrap();
        assert_eq!(st.write_piece(i, &buf).unwrap(), WriteOutcome::Written);
        println!("step wrote {i}");
        if st.wants_flush(Instant::now()) {
            st.flush().unwrap();
            println!("step flushed");
        }
    }
    st.flush().unwrap();
    println!("step done");
}

/// Every piece the sidecar claims must hash correctly from the files on disk.
fn sidecar_lies(meta: &Metainfo, out: &Path) -> Vec<u32> {
    let path = out.join(format!(".{}.btmini", meta.name));
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new(); // killed before the first flush
    };
    let sc = Sidecar::decode(&bytes).expect("the sidecar is replaced atomically, never torn");
    assert_eq!(sc.info_hash, meta.info_hash);
    let data = read_torrent_data(meta, out);
    sc.have
        .ones()
        .filter(|&i| {
            let start = (u64::from(i) * meta.piece_length) as usize;
            let piece = &data[start..start + meta.piece_size(i) as usize];
            btmini::hash::sha1(piece) != meta.pieces[i as usize]
        })
        .collect()
}

fn read_torrent_data(meta: &Metainfo, root: &Path) -> Vec<u8> {
    let mut data = Vec::with_capacity(meta.total_length as usize);
    for f in &meta.files {
        let path = f.path.iter().fold(root.to_owned(), |p, c| p.join(c));
        match std::fs::read(&path) {
            Ok(b) => data.extend(b),
            // Not created yet: killed during preparation.
            Err(_) => data.resize(data.len() + f.length as usize, 0),
        }
    }
    data
}

fn kill9(mut c: Child) {
    let _ = c.kill(); // SIGKILL
    let _ = c.wait();
}

#[test]
fn crash_at_random_moments_never_leaves_a_lying_sidecar() {
    let tmp = TempDir::new("crash");
    // Multi-file, 6 MiB in 16 KiB pieces: ~380 pieces, so a run sees several flushes.
    let payload_dir = tmp.join("data");
    for (i, len) in [2_000_000usize, 0, 1_500_000, 2_791_457]
        .into_iter()
        .enumerate()
    {
        write_file(&payload_dir.join(format!("f{i}")), i as u64 + 100, len);
    }
    let created = create(&CreateOptions {
        path: payload_dir.clone(),
        piece_length: Some(16384),
        ..Default::default()
    })
    .unwrap();
    let torrent = tmp.join("data.torrent");
    std::fs::write(&torrent, &created.bytes).unwrap();
    let meta = load(&torrent);
    // The child reads pieces from one file holding the whole torrent's data.
    let payload = tmp.join("payload.bin");
    std::fs::write(&payload, read_torrent_data(&meta, tmp.path())).unwrap();
    let out = tmp.join("out");

    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let (mut kills, mut runs, mut finished) = (0, 0, false);
    while kills < KILLS {
        runs += 1;
        let seed = next(u64::MAX).to_string();
        let mut c = child(
            "child_writer",
            &[
                ("CRASH_TORRENT", &torrent),
                ("CRASH_PAYLOAD", &payload),
                ("CRASH_OUT", &out),
            ],
        )
        .env("CRASH_SEED", &seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // Kill after a random number of steps: 0 is during start-up, small numbers during
        // open and recheck, large ones mid-download or never (the run completes).
        let target = next(meta.piece_count() as u64 + 40);
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut steps = 0;
        let mut done = false;
        while steps < target {
            match lines.next() {
                // libtest prints "test child_writer ... " just before the child's first line.
                Some(Ok(l)) if l.contains("step ") => {
                    steps += 1;
                    done |= l.ends_with("step done");
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        if done {
            finished = true;
            let _ = c.wait();
            // Start over from nothing so that the kills keep landing mid-download.
            assert_eq!(sidecar_lies(&meta, &out), Vec::<u32>::new());
            std::fs::remove_dir_all(&out).unwrap();
            continue;
        }
        kill9(c);
        kills += 1;
        let lies = sidecar_lies(&meta, &out);
        assert!(
            lies.is_empty(),
            "run {runs}: the sidecar claims unverified pieces {lies:?}"
        );
    }

    // Finally let it finish, and the files are the payload byte for byte.
    let status = child(
        "child_writer",
        &[
            ("CRASH_TORRENT", &torrent),
            ("CRASH_PAYLOAD", &payload),
            ("CRASH_OUT", &out),
        ],
    )
    .env("CRASH_SEED", "1")
    .stdout(Stdio::null())
    .status()
    .unwrap();
    assert!(status.success());
    assert_eq!(
        read_torrent_data(&meta, &out),
        std::fs::read(&payload).unwrap()
    );
    for i in 0..4 {
        assert_eq!(
            std::fs::read(out.join(format!("data/f{i}"))).unwrap(),
            std::fs::read(payload_dir.join(format!("f{i}"))).unwrap()
        );
    }
    eprintln!("{kills} kills in {runs} runs; a run completed before the end: {finished}");
}

/// With `RLIMIT_FSIZE` below the torrent's size, reserving space fails with a clear error
/// (EFBIG, reported like a full disk) instead of a SIGXFSZ or a later SIGBUS.
#[test]
#[ignore = "run as a child process by a_file_size_limit_is_a_clear_error"]
fn child_fsize_limited() {
    let var = |k| PathBuf::from(std::env::var_os(k).expect(k));
    btmini::storage::ignore_sigxfsz();
    let limit = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: setrlimit only reads the struct passed to it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    assert_eq!(rc, 0);
    let meta = load(&var("CRASH_TORRENT"));
    match Storage::open(meta, &var("CRASH_OUT"), StorageOptions::default()) {
        Ok(_) => println!("result opened"),
        Err(e) => println!("result {} | no space: {}", e, e.is_no_space()),
    }
}

#[test]
fn a_file_size_limit_is_a_clear_error() {
    let tmp = TempDir::new("fsize");
    let payload = tmp.join("three.bin");
    write_file(&payload, 9, 3 << 20);
    let created = create(&CreateOptions {
        path: payload,
        ..Default::default()
    })
    .unwrap();
    let torrent = tmp.join("t.torrent");
    std::fs::write(&torrent, created.bytes).unwrap();
    let out = child(
        "child_fsize_limited",
        &[("CRASH_TORRENT", &torrent), ("CRASH_OUT", &tmp.join("out"))],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child died: {:?} {stdout}",
        out.status
    );
    let result = stdout
        .lines()
        .find_map(|l| l.find("result ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no result line: {stdout}"));
    assert!(
        result.contains("cannot reserve 3145728 bytes for"),
        "{result}"
    );
    assert!(result.contains("File too large"), "{result}");
    assert!(result.ends_with("no space: true"), "{result}");
}
