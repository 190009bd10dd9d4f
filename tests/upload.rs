//! Real clients downloading from a btmini seed: the data they get must be the data.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// btmini seeding the complete data in `data_dir`; stopped (SIGKILL) when dropped.
struct BtminiSeed {
    child: Child,
    port: u16,
}

impl Drop for BtminiSeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn btmini_seed(torrent: &Path, data_dir: &Path, ip: &str) -> BtminiSeed {
    let port = free_port();
    let mut child = btmini()
        .arg(torrent)
        .arg("-o")
        .arg(data_dir)
        .args(["--json", "--bind", ip, "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Seeding once the first status says so (after the recheck of the data).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "btmini did not start seeding");
        let line = lines.next().expect("status lines").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["phase"] == "seeding" {
            break;
        }
    }
    // Keep reading so that btmini never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    BtminiSeed { child, port }
}

#[test]
fn libtorrent_downloads_from_a_btmini_seed() {
    let dir = TempDir::new("up-lt");
    let data = dir.join("data");
    let root = data.join("multi");
    write_file(&root.join("a.bin"), 1, 40_000);
    write_file(&root.join("b.empty"), 2, 0);
    write_file(&root.join("c/d.bin"), 3, 3_000_017);
    let torrent = dir.join("t.torrent");
    run_ok(
        btmini()
            .arg("create")
            .arg(&root)
            .arg("-o")
            .arg(&torrent)
            .args(["-l", "64K", "-q"]),
    );
    let seed = btmini_seed(&torrent, &data, "127.0.0.11");
    let out = dir.join("lt-out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    let result = run_ok(
        Command::new(PYTHON)
            .arg(script)
            .arg("download")
            .arg(&torrent)
            .arg(&out)
            .arg("127.0.0.12")
            .arg(format!("127.0.0.11:{}", seed.port)),
    );
    let v: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(v["seeding"], true, "{v}");
    for f in ["a.bin", "c/d.bin"] {
        assert_eq!(
            std::fs::read(out.join("multi").join(f)).unwrap(),
            std::fs::read(root.join(f)).unwrap(),
            "{f}"
        );
    }
}
