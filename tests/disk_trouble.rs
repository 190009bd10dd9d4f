//! Disk trouble while btmini runs (issue 9): a data file shortened by another program
//! under btmini's map. Reading a mapped page past a file's end raises SIGBUS, which would
//! kill the process; btmini must stop with a clear error instead, and the next start must
//! not trust the sidecar.

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
    let mut seed = btmini()
        .arg(&torrent)
        .arg("-o")
        .arg(&data)
        .args(["--bind", "127.0.0.3", "--port"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect(("127.0.0.3", port)).is_err() {
        assert!(Instant::now() < deadline, "the seed never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another program cuts the file to a third while it is mapped.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    // A libtorrent leecher asks for pieces, some of them past the new end.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    let mut leecher = Command::new(PYTHON)
        .arg(script)
        .arg("download")
        .arg(&torrent)
        .arg(dir.join("out"))
        .arg("127.0.0.4")
        .arg(format!("127.0.0.3:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = seed.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = seed.kill();
            let _ = leecher.kill();
            panic!("the seed went on serving a shortened file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = leecher.kill();
    let _ = leecher.wait();
    let mut err = String::new();
    seed.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.signal(), None, "killed by a signal: {err}");
    assert_eq!(status.code(), Some(1), "{err}");
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
