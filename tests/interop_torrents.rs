//! Torrents made by real tools (mktorrent, transmission-create, libtorrent) read the same in
//! btmini as in libtorrent, and torrents made by `btmini create` load and verify in libtorrent.

mod common;

use common::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const TRACKER: &str = "http://127.0.0.1:9/announce";

/// The fields both readers report, in a form that compares directly.
fn comparable(v: &Value) -> Value {
    let files: Vec<Value> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| json!([f["path"], f["size"], f["padding"]]))
        .collect();
    json!({
        "name": v["name"],
        "info_hash": v["info_hash"],
        "total_size": v["total_size"],
        "piece_length": v["piece_length"],
        "piece_count": v["piece_count"],
        "private": v["private"],
        "trackers": v["trackers"],
        "files": files,
    })
}

fn assert_same_as_libtorrent(torrent: &Path) -> Value {
    let ours = btmini_info(torrent);
    let theirs = libtorrent(&[OsStr::new("info"), torrent.as_os_str()]);
    assert_eq!(
        comparable(&ours),
        comparable(&theirs),
        "btmini and libtorrent disagree on {}",
        torrent.display()
    );
    ours
}

/// Every (tool, payload) torrent in a fresh folder.
fn tool_torrents(dir: &TempDir) -> Vec<(String, PathBuf)> {
    let payloads = [
        multi_file_payload(dir.path()),
        single_file_payload(dir.path()),
    ];
    let mut made = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let out = |tool: &str| dir.join(format!("{tool}-{i}.torrent"));

        let t = out("mktorrent");
        let mut mk = Command::new("mktorrent");
        mk.args(["-a", TRACKER, "-l", "15", "-c", "made by mktorrent"]);
        if i == 1 {
            mk.arg("-p");
        }
        run_ok(mk.arg("-o").arg(&t).arg(payload));
        made.push((format!("mktorrent {i}"), t));

        let t = out("transmission");
        let mut tc = Command::new("transmission-create");
        tc.args(["-t", TRACKER, "-t", "udp://127.0.0.1:9", "-s", "16"]);
        if i == 0 {
            tc.arg("-p");
        }
        run_ok(tc.arg("-o").arg(&t).arg(payload));
        made.push((format!("transmission-create {i}"), t));

        for mode in ["v1", "hybrid"] {
            let t = out(&format!("libtorrent-{mode}"));
            libtorrent_create(payload, &t, mode);
            made.push((format!("libtorrent {mode} {i}"), t));
        }
    }
    made
}

fn libtorrent_create(payload: &Path, out: &Path, mode: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    run_ok(
        Command::new(PYTHON)
            .arg(script)
            .arg("create")
            .arg(payload)
            .arg(out)
            .arg(mode)
            .arg(TRACKER),
    );
}

#[test]
fn info_of_real_tools_torrents_matches_libtorrent() {
    let dir = TempDir::new("tools");
    let made = tool_torrents(&dir);
    assert_eq!(made.len(), 8);
    let mut saw_padding = false;
    let mut saw_private = false;
    for (what, torrent) in &made {
        let info = assert_same_as_libtorrent(torrent);
        let files = info["files"].as_array().unwrap();
        saw_padding |= files.iter().any(|f| f["padding"] == true);
        saw_private |= info["private"] == true;
        // The human-readable form prints the same info-hash.
        let text = run_ok(btmini().arg("info").arg(torrent)).stdout;
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(info["info_hash"].as_str().unwrap()),
            "{what}: {text}"
        );
        // Hybrid torrents pad every file, the last included, to a piece boundary.
        if !what.contains("hybrid") {
            assert!(
                info["total_size"].as_u64().unwrap() % info["piece_length"].as_u64().unwrap() != 0,
                "{what}: the payloads are meant to end in a short piece"
            );
        }
    }
    assert!(
        saw_padding,
        "libtorrent's hybrid torrents carry BEP 47 padding files"
    );
    assert!(
        saw_private,
        "mktorrent -p and transmission-create -p set the private flag"
    );
}

#[test]
fn multi_file_layout_is_read_in_torrent_order() {
    let dir = TempDir::new("layout");
    let payload = multi_file_payload(dir.path());
    let t = dir.join("m.torrent");
    run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-o"])
            .arg(&t)
            .arg(&payload),
    );
    let info = btmini_info(&t);
    let paths: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert!(paths.contains(&"payload-ünï/sub/日本語.txt"));
    assert!(paths.contains(&"payload-ünï/empty.txt"));
    assert!(paths.contains(&"payload-ünï/.hidden"));
    assert_eq!(info["total_size"], 100_001 + 65_537 + 3_333 + 17 + 40_000);
}

/// btmini's own torrents: same info-hash in libtorrent, and libtorrent's full check of the
/// data finds every piece.
#[test]
fn btmini_create_loads_and_verifies_in_libtorrent() {
    let dir = TempDir::new("create");
    let payloads = [
        multi_file_payload(dir.path()),
        single_file_payload(dir.path()),
    ];
    let variants: [&[&str]; 3] = [
        &[],
        &[
            "-t",
            TRACKER,
            "-t",
            "udp://127.0.0.1:9",
            "--private",
            "-c",
            "ünï comment",
        ],
        &["-l", "16K", "-t", TRACKER],
    ];
    for (i, payload) in payloads.iter().enumerate() {
        for (j, extra) in variants.iter().enumerate() {
            let t = dir.join(format!("btmini-{i}-{j}.torrent"));
            run_ok(
                btmini()
                    .arg("create")
                    .arg(payload)
                    .arg("-o")
                    .arg(&t)
                    .args(*extra),
            );
            let ours = assert_same_as_libtorrent(&t);
            let checked = libtorrent(&[
                OsStr::new("recheck"),
                t.as_os_str(),
                payload.parent().unwrap().as_os_str(),
            ]);
            assert_eq!(checked["info_hash"], ours["info_hash"]);
            assert_eq!(checked["piece_count"], ours["piece_count"]);
            assert_eq!(
                checked["pieces_have"],
                ours["piece_count"],
                "libtorrent must verify every piece of {}: {checked}",
                t.display()
            );
        }
    }
}

/// The recheck above must be able to fail: damage one byte and libtorrent finds one bad piece.
#[test]
fn libtorrent_recheck_notices_damage() {
    let dir = TempDir::new("damage");
    let payload = single_file_payload(dir.path());
    let t = dir.join("s.torrent");
    run_ok(
        btmini()
            .arg("create")
            .arg(&payload)
            .arg("-o")
            .arg(&t)
            .args(["-l", "16K"]),
    );
    let mut data = std::fs::read(&payload).unwrap();
    data[500_000] ^= 0xff;
    std::fs::write(&payload, data).unwrap();
    let checked = libtorrent(&[OsStr::new("recheck"), t.as_os_str(), dir.path().as_os_str()]);
    assert_eq!(
        checked["pieces_have"].as_u64().unwrap() + 1,
        checked["piece_count"].as_u64().unwrap()
    );
}

#[test]
fn libtorrent_v2_only_torrent_gets_a_clear_error() {
    let dir = TempDir::new("v2");
    let payload = multi_file_payload(dir.path());
    let t = dir.join("v2.torrent");
    libtorrent_create(&payload, &t, "v2");
    let out = btmini().arg("info").arg(&t).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("v2-only torrent"), "{err}");
}
