//! A corpus of malformed torrents, made at test time: `btmini info` on each exits 1 with one
//! line naming the specific problem, and never panics.

mod common;

use btmini::bencode::Item;
use common::*;
use std::process::Command;

/// A valid single-file torrent's info dictionary, to be broken one field at a time.
fn info(edit: impl FnOnce(&mut Item<'static>)) -> Vec<u8> {
    let mut info = Item::dict();
    info.insert("name", Item::str("file.bin"));
    info.insert("piece length", Item::Int(16384));
    info.insert("pieces", Item::Bytes(vec![1u8; 40].into()));
    info.insert("length", Item::Int(20000));
    edit(&mut info);
    let mut root = Item::dict();
    root.insert("announce", Item::str("http://127.0.0.1:9/announce"));
    root.insert("info", info);
    root.encode()
}

fn files(paths: Vec<Vec<&'static str>>) -> Vec<u8> {
    info(|i| {
        if let Item::Dict(d) = i {
            d.remove(&b"length"[..]);
        }
        let list = paths
            .into_iter()
            .map(|p| {
                let mut f = Item::dict();
                f.insert("length", Item::Int(10000));
                f.insert("path", Item::List(p.into_iter().map(Item::str).collect()));
                f
            })
            .collect();
        i.insert("files", Item::List(list));
    })
}

/// Runs `btmini info` on `bytes` and returns its one line of error output.
fn info_error(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(format!("{name}.torrent"));
    std::fs::write(&path, bytes).unwrap();
    one_line_error(btmini().arg("info").arg(&path), name)
}

fn one_line_error(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit status, stderr {err}"
    );
    assert!(out.stdout.is_empty(), "{what}: printed to stdout");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{what}: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{what}: one line expected: {err}");
    assert!(err.starts_with("btmini: error: "), "{what}: {err}");
    err
}

#[test]
fn each_malformed_torrent_gets_its_specific_error() {
    let dir = TempDir::new("malformed");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty-file", vec![], "unexpected end of data at byte 0"),
        (
            "not-bencode",
            b"<html>404</html>".to_vec(),
            "unexpected byte '<' at byte 0",
        ),
        (
            "top-level-list",
            b"le".to_vec(),
            "the top level is not a dictionary",
        ),
        (
            "no-info",
            b"d8:announce3:abce".to_vec(),
            "missing field 'info'",
        ),
        (
            "info-wrong-type",
            b"d4:infoi1ee".to_vec(),
            "field 'info' must be a dictionary, found a integer",
        ),
        (
            "name-wrong-type",
            info(|i| i.insert("name", Item::List(vec![]))),
            "field 'info.name' must be a byte string, found a list",
        ),
        (
            "length-wrong-type",
            info(|i| i.insert("length", Item::str("20000"))),
            "field 'info.length' must be a integer",
        ),
        (
            "huge-integer",
            b"d4:infod6:lengthi99999999999999999999999999eee".to_vec(),
            "integer out of 64-bit range at byte 16",
        ),
        (
            "huge-string-length",
            b"d4:info99999999999999999999:xe".to_vec(),
            "byte-string length runs past the end of data at byte 7",
        ),
        (
            "deep-nesting",
            [
                b"d4:info".as_slice(),
                &b"l".repeat(10_000),
                &b"e".repeat(10_001),
            ]
            .concat(),
            "nesting deeper than 64 levels",
        ),
        (
            "leading-zero",
            b"d4:infoi01ee".to_vec(),
            "malformed integer at byte 7",
        ),
        (
            "negative-zero",
            b"d4:infoi-0ee".to_vec(),
            "malformed integer at byte 7",
        ),
        (
            "duplicate-key",
            b"d4:infode4:infodee".to_vec(),
            "duplicate dictionary key at byte 9",
        ),
        (
            "trailing-garbage",
            [info(|_| {}), b"xx".to_vec()].concat(),
            "trailing bytes",
        ),
        (
            "pieces-not-20",
            info(|i| i.insert("pieces", Item::Bytes(vec![0; 41].into()))),
            "'pieces' is 41 bytes long, not a multiple of 20",
        ),
        (
            "pieces-size-mismatch",
            info(|i| i.insert("length", Item::Int(100_000))),
            "the total size needs 7 pieces but 'pieces' holds 2 hashes",
        ),
        (
            "zero-piece-length",
            info(|i| i.insert("piece length", Item::Int(0))),
            "piece length 0 is out of range",
        ),
        (
            "absurd-piece-length",
            info(|i| i.insert("piece length", Item::Int(1 << 33))),
            "piece length 8589934592 is out of range",
        ),
        (
            "negative-length",
            info(|i| i.insert("length", Item::Int(-20000))),
            "file 'file.bin' has a negative length (-20000)",
        ),
        (
            "parent-dir",
            files(vec![vec!["..", "..", "etc", "passwd"]]),
            "unsafe path 'file.bin/../../etc/passwd': '..' component",
        ),
        (
            "absolute",
            files(vec![vec!["", "etc", "passwd"]]),
            "unsafe path 'file.bin//etc/passwd': absolute path",
        ),
        (
            "empty-component",
            files(vec![vec!["a", "", "b"]]),
            "empty path component",
        ),
        ("nul", files(vec![vec!["a\0b"]]), "NUL byte in a name"),
        (
            "slash",
            files(vec![vec!["a/../../b"]]),
            "'/' inside a path component",
        ),
        (
            "name-parent",
            info(|i| i.insert("name", Item::str(".."))),
            "unsafe path '..': '..' component",
        ),
        (
            "duplicate-path",
            files(vec![vec!["a"], vec!["a"]]),
            "path 'file.bin/a' is used by more than one file",
        ),
        (
            "file-over-folder",
            files(vec![vec!["a"], vec!["a", "b"]]),
            "path 'file.bin/a' is used by more than one file",
        ),
        (
            "v2-only",
            b"d4:infod9:file treede12:meta versioni2e4:name1:a12:piece lengthi16384eee".to_vec(),
            "v2-only torrent, which btmini does not support",
        ),
    ];
    for (name, bytes, expected) in cases {
        let err = info_error(&dir, name, &bytes);
        assert!(
            err.contains(expected),
            "{name}: expected '{expected}' in: {err}"
        );
        assert!(
            err.contains(&format!("{name}.torrent")),
            "{name}: names the file: {err}"
        );
    }
}

#[test]
fn every_truncation_of_a_real_torrent_is_refused_cleanly() {
    let dir = TempDir::new("truncated");
    let payload = multi_file_payload(dir.path());
    let t = dir.join("whole.torrent");
    run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-a", "http://127.0.0.1:9/a", "-o"])
            .arg(&t)
            .arg(&payload),
    );
    let whole = std::fs::read(&t).unwrap();
    // Every cut through the first 300 bytes (the structure), then a spread through the rest.
    let cuts = (0..whole.len().min(300)).chain((300..whole.len()).step_by(97));
    for cut in cuts {
        let path = dir.join("cut.torrent");
        std::fs::write(&path, &whole[..cut]).unwrap();
        let err = one_line_error(btmini().arg("info").arg(&path), &format!("cut at {cut}"));
        assert!(
            err.contains("unexpected end of data") || err.contains("runs past the end"),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_control_character_in_a_name_cannot_reach_the_terminal() {
    let dir = TempDir::new("escape");
    let bytes = info(|i| i.insert("name", Item::str("evil\x1b[2J..")));
    let path = dir.join("esc.torrent");
    std::fs::write(&path, bytes).unwrap();
    let out = run_ok(btmini().arg("info").arg(&path));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("evil\\u{1b}[2J.."), "{text}");
}
