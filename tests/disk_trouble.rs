//! Disk trouble while btmini runs (issue 9). A data file shortened by another program under
//! btmini's map: reading a mapped page past a file's end raises SIGBUS, which would kill the
//! process; btmini must stop with a clear error instead, and the next start must not trust
//! the sidecar. A disk filled by another program mid-download: btmini's data blocks are
//! reserved, but its next sidecar write fails; it must stop with a clear error, its sidecar
//! must still tell the truth, and the next run must finish.

mod common;

use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_data_file_shortened_under_a_seed_stops_it_with_an_error_not_sigbus() {
    let dir = TempDir::new("disk-shortened");
    let (file, torrent) = single_file_torrent(dir.path(), 21, 3_000_017, &[]);
    let data = dir.join("data");
    // The seed checks the data (reading all of it through its map), then serves it.
    let port = free_port();
    let seed = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&data)
        .args(["--bind", "127.0.0.3", "--port"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log, line by line: it listens before its data is checked, so the file is cut
    // only once it says it seeds (else the cut comes before the check, and the check
    // refuses the file, which is another test's case).
    let mut seed = seed;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = seed.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + LIMIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the seed never said it seeds");
        if line.contains("seeding") {
            break;
        }
    }
    assert!(
        TcpStream::connect(("127.0.0.3", port)).is_ok(),
        "the seed listens"
    );
    // Another program cuts the file to a third while it is mapped.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    // A libtorrent leecher asks for pieces, some of them past the new end.
    let leecher = lt_leecher(
        &torrent,
        &dir.join("out"),
        "127.0.0.4",
        &format!("127.0.0.3:{port}"),
    );
    // The seed must stop on its own, with an error rather than a signal.
    let status = wait_exit(&mut seed, "btmini", LIMIT);
    let (code, signal) = (status.code(), status.signal());
    let err = reader.join().unwrap();
    drop(leecher);
    assert_eq!(signal, None, "killed by a signal: {err}");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is now 1000000 bytes, not 3000017: another program changed it"),
        "{err}"
    );
    // The next start does not trust the sidecar: the file has the wrong size.
    let out = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&data)
        .args(["--bind", "127.0.0.3", "--port"])
        .arg(free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1000000") && err.contains("3000017"), "{err}");
}

/// Every piece the sidecar in `out` claims verifies against the data there.
fn sidecar_tells_the_truth(torrent: &Path, out: &Path) -> usize {
    let meta = btmini::metainfo::Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let Ok(bytes) = std::fs::read(out.join(format!(".{}.btmini", meta.name))) else {
        return 0;
    };
    let sc = btmini::storage::sidecar::Sidecar::decode(&bytes).unwrap();
    let data = std::fs::read(out.join(&meta.name)).unwrap();
    let len = meta.piece_length as usize;
    for i in sc.have.ones() {
        let piece = &data[i as usize * len..((i as usize + 1) * len).min(data.len())];
        assert_eq!(
            btmini::hash::sha1(piece),
            meta.pieces[i as usize],
            "the sidecar claims piece {i}, which does not verify"
        );
    }
    sc.have.count() as usize
}

#[test]
fn a_disk_filled_by_another_program_stops_btmini_cleanly_and_the_next_run_finishes() {
    let dir = TempDir::new("disk-full");
    let size = 4_000_037;
    let (file, torrent) = single_file_torrent(dir.path(), 22, size, &[]);
    // 500 KB/s: the download lasts 8 s, so the first sidecar (after 5 s) comes before the end.
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", Some(500_000));
    let fs_ = Tmpfs::mount("8m");
    let out = fs_.0.join("out");
    let btmini_run = || leech(&torrent, &out, seeder.port);
    let mut bt = btmini_run();
    // Once a first sidecar is written, another program fills the file system.
    let deadline = Instant::now() + LIMIT;
    while sidecar_tells_the_truth(&torrent, &out) == 0 {
        assert!(Instant::now() < deadline, "no sidecar was written");
        assert!(bt.try_wait().unwrap().is_none(), "btmini ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut filler = std::fs::File::create(fs_.0.join("filler")).unwrap();
    let chunk = vec![7u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let (code, signal, err) = until_exit(bt);
    assert_eq!((code, signal), (Some(1), None), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let claimed = sidecar_tells_the_truth(&torrent, &out);
    // Space comes back; the next run checks the data (the files changed since the last
    // sidecar), fetches what is missing and records every piece. (If the first run had
    // stored every piece before its last sidecar write failed, the second one finds them all
    // and seeds until stopped: it is stopped here once the sidecar claims everything.)
    drop(filler);
    std::fs::remove_file(fs_.0.join("filler")).unwrap();
    let pieces = size.div_ceil(65536);
    let mut bt = btmini_run();
    while sidecar_tells_the_truth(&torrent, &out) < pieces {
        if Instant::now() > deadline + LIMIT {
            let _ = bt.kill();
            let mut e = String::new();
            bt.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("the second run did not record every piece: {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = bt.kill();
    let _ = bt.wait();
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    eprintln!("{claimed} pieces claimed when the disk filled up; first run said: {err}");
}

/// btmini downloading `torrent` into `out` from the seeder on 127.0.0.2:`port`.
fn leech(torrent: &Path, out: &Path, port: u16) -> std::process::Child {
    btmini()
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--min-share", "0", "--bind", "127.0.0.3", "--port"])
        .arg(free_port().to_string())
        .arg("--peer")
        .arg(format!("127.0.0.2:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs btmini until it exits on its own; returns its exit code, signal and stderr.
fn until_exit(mut bt: std::process::Child) -> (Option<i32>, Option<i32>, String) {
    let status = wait_exit(&mut bt, "btmini", LIMIT);
    let mut err = String::new();
    bt.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code(), status.signal(), err)
}

#[test]
fn a_read_only_output_folder_and_one_deleted_mid_run_give_clear_errors() {
    let dir = TempDir::new("disk-ro");
    let size = 4_000_037;
    let (_, torrent) = single_file_torrent(dir.path(), 23, size, &[]);
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", Some(500_000));
    let run = |out: &Path| leech(&torrent, out, seeder.port);
    // A read-only file system (root ignores permission bits, so a read-only mount).
    let fs_ = Tmpfs::mount("8m");
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs_.0.path())
        .status()
        .unwrap();
    assert!(remount.success());
    let (code, signal, err) = until_exit(run(&fs_.0.join("out")));
    assert_eq!((code, signal), (Some(1), None), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    eprintln!("read-only: {}", err.lines().last().unwrap_or(""));

    // The output folder deleted while btmini downloads into it: its next sidecar write
    // cannot happen, and it says so.
    let out = dir.join("out");
    let bt = run(&out);
    let deadline = Instant::now() + LIMIT;
    while !out.join("single.bin").exists() {
        assert!(Instant::now() < deadline, "btmini never created its file");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&out).unwrap();
    let (code, signal, err) = until_exit(bt);
    assert_eq!((code, signal), (Some(1), None), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    eprintln!("folder deleted: {}", err.lines().last().unwrap_or(""));
}
