//! The command line as a user meets it: help, version, exit statuses, one-line errors, and
//! `btmini create` on real folders.

mod common;

use common::*;
use std::os::unix::fs::symlink;
use std::process::Command;

fn fails(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{cmd:?}: one line expected: {err}");
    assert!(err.starts_with("btmini: error: "), "{err}");
    err
}

#[test]
fn help_and_version() {
    let help = String::from_utf8(run_ok(btmini().arg("--help")).stdout).unwrap();
    assert!(help.contains("btmini info [--json] FILE.torrent"));
    assert!(help.contains("[default: ./downloads]"));
    let bare = String::from_utf8(run_ok(&mut btmini()).stdout).unwrap();
    assert_eq!(bare, help, "no arguments shows the help");
    let v = String::from_utf8(run_ok(btmini().arg("--version")).stdout).unwrap();
    assert_eq!(v, format!("btmini {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_command_lines_exit_2() {
    let e = fails(btmini().arg("--frobnicate"), 2);
    assert!(
        e.contains("invalid option '--frobnicate'") && e.contains("btmini --help"),
        "{e}"
    );
    fails(btmini().args(["info"]), 2);
    fails(btmini().args(["create", "x", "--piece-length", "big"]), 2);
}

#[test]
fn torrent_path_mistakes() {
    let dir = TempDir::new("cli-paths");
    let e = fails(btmini().arg("info").arg(dir.join("nope.torrent")), 1);
    assert!(
        e.contains("nope.torrent': No such file or directory"),
        "{e}"
    );
    let e = fails(btmini().arg("info").arg(dir.path()), 1);
    assert!(e.contains("is a folder, not a .torrent file"), "{e}");
    // One bad argument among several is an error before anything starts: no output
    // folder, no listening.
    let good = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
    let out = dir.join("out");
    let e = fails(
        btmini()
            .args([good, "magnet:?xt=urn:btih:0123", "-o"])
            .arg(&out),
        1,
    );
    assert!(e.contains("magnet info-hash has 4 characters"), "{e}");
    let e = fails(
        btmini()
            .arg(good)
            .arg(dir.join("nope.torrent"))
            .arg("-o")
            .arg(&out),
        1,
    );
    assert!(e.contains("No such file or directory"), "{e}");
    let e = fails(btmini().args([good, good, "-o"]).arg(&out), 1);
    assert!(
        e.contains("torrent 0123456789abcdef0123456789abcdef01234567 is given twice"),
        "{e}"
    );
    assert!(!out.exists(), "nothing started");
    // A malformed magnet says what is wrong with it, for info and download alike.
    for args in [
        &["info", "magnet:?xt=urn:btih:0123"][..],
        &["magnet:?xt=urn:btih:0123"],
    ] {
        let e = fails(btmini().args(args), 1);
        assert!(e.contains("magnet info-hash has 4 characters"), "{e}");
    }
    // The download form checks its torrent the same way.
    let e = fails(btmini().arg(dir.join("nope.torrent")), 1);
    assert!(e.contains("No such file or directory"), "{e}");
}

#[test]
fn create_names_the_output_after_the_data_and_refuses_to_overwrite() {
    let dir = TempDir::new("cli-create");
    let payload = multi_file_payload(dir.path());
    run_ok(btmini().current_dir(dir.path()).arg("create").arg(&payload));
    let t = dir.join("payload-ünï.torrent");
    let first = std::fs::read(&t).expect("NAME.torrent in the current folder");

    let e = fails(
        btmini().current_dir(dir.path()).arg("create").arg(&payload),
        1,
    );
    assert!(e.contains("already exists (use --force"), "{e}");
    assert_eq!(
        std::fs::read(&t).unwrap(),
        first,
        "the existing file is untouched"
    );

    run_ok(
        btmini()
            .current_dir(dir.path())
            .args(["create", "--force", "--comment", "second"])
            .arg(&payload),
    );
    assert_ne!(std::fs::read(&t).unwrap(), first);
    assert_eq!(btmini_info(&t)["comment"], "second");
}

#[test]
fn create_with_no_date_is_reproducible() {
    let dir = TempDir::new("cli-repro");
    let payload = single_file_payload(dir.path());
    let (a, b) = (dir.join("a.torrent"), dir.join("b.torrent"));
    for t in [&a, &b] {
        run_ok(
            btmini()
                .arg("create")
                .arg(&payload)
                .arg("--no-date")
                .arg("-o")
                .arg(t),
        );
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(btmini_info(&a)["creation_date"], serde_json::Value::Null);
}

#[test]
fn create_picks_a_piece_length_for_1000_to_2000_pieces() {
    let dir = TempDir::new("cli-auto");
    let f = dir.join("big.bin");
    // Sparse, so the test writes nothing: 40 MiB of zeros.
    std::fs::File::create(&f)
        .unwrap()
        .set_len(40 << 20)
        .unwrap();
    let t = dir.join("big.torrent");
    run_ok(btmini().arg("create").arg(&f).arg("-o").arg(&t));
    let info = btmini_info(&t);
    assert_eq!(info["piece_length"], 32 * 1024);
    assert_eq!(info["piece_count"], 1280);
}

#[test]
fn create_follows_symlinks_includes_hidden_files_and_refuses_loops() {
    let dir = TempDir::new("cli-links");
    let data = dir.join("data");
    write_file(&data.join(".hidden"), 1, 10);
    write_file(&dir.join("outside/real.bin"), 2, 20);
    symlink(dir.join("outside/real.bin"), data.join("link.bin")).unwrap();
    symlink(dir.join("outside"), data.join("linkdir")).unwrap();
    let t = dir.join("d.torrent");
    run_ok(btmini().arg("create").arg(&data).arg("-o").arg(&t));
    let info = btmini_info(&t);
    let files: Vec<(&str, u64)> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("data/.hidden", 10),
            ("data/link.bin", 20),
            ("data/linkdir/real.bin", 20)
        ]
    );

    symlink(&data, data.join("loop")).unwrap();
    let e = fails(
        btmini()
            .arg("create")
            .arg(&data)
            .arg("-o")
            .arg(dir.join("l.torrent")),
        1,
    );
    assert!(e.contains("symlink loop"), "{e}");
}

#[test]
fn create_mistakes() {
    let dir = TempDir::new("cli-create-bad");
    std::fs::create_dir(dir.join("empty")).unwrap();
    std::fs::write(dir.join("empty/zero"), b"").unwrap();
    let e = fails(btmini().arg("create").arg(dir.join("empty")), 1);
    assert!(e.contains("nothing to share"), "{e}");
    let e = fails(btmini().arg("create").arg(dir.join("missing")), 1);
    assert!(e.contains("No such file or directory"), "{e}");
    write_file(&dir.join("f"), 1, 100);
    let e = fails(
        btmini()
            .arg("create")
            .arg(dir.join("f"))
            .args(["-l", "3000"]),
        1,
    );
    assert!(e.contains("must be a power of two"), "{e}");
}

#[test]
fn the_readme_shows_the_same_options_as_help() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let help = btmini::cli::HELP;
    let usage = &help[help.find("USAGE:").unwrap()..];
    assert!(
        readme.contains(usage),
        "README's usage block differs from --help"
    );
}

#[test]
fn download_mistakes_get_one_line_that_says_what_to_do() {
    let dir = TempDir::new("cli-dl-mistakes");
    write_file(&dir.join("data/f.bin"), 1, 100_000);
    let t = dir.join("t.torrent");
    run_ok(
        btmini()
            .arg("create")
            .arg(dir.join("data/f.bin"))
            .arg("-o")
            .arg(&t)
            .arg("-q"),
    );
    let e = fails(btmini().arg(dir.join("data/f.bin")), 1);
    assert!(e.contains("is not a .torrent file"), "{e}");
    let e = fails(
        btmini()
            .arg(&t)
            .args(["-q", "-o", "/proc/btmini-test", "--port", "0"]),
        1,
    );
    assert!(e.contains("cannot create '/proc/btmini-test'"), "{e}");
    write_file(&dir.join("out/f.bin"), 2, 10);
    let e = fails(
        btmini()
            .arg(&t)
            .arg("-o")
            .arg(dir.join("out"))
            .args(["-q", "--port", "0"]),
        1,
    );
    assert!(
        e.contains("is 10 bytes but the torrent says 100000") && e.contains("--overwrite"),
        "{e}"
    );
    let e = fails(btmini().args(["--peer", "nonsense"]).arg(&t), 1);
    assert!(
        e.contains("--peer nonsense") && e.contains("HOST:PORT"),
        "{e}"
    );
}

#[test]
fn info_reads_a_magnet_link_as_text_and_json() {
    let link = "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=My+File.iso\
                &tr=udp%3A%2F%2Ft.example%3A1337&x.pe=10.0.0.2:6881";
    let out = run_ok(btmini().args(["info", link]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("name:          My File.iso"), "{text}");
    assert!(
        text.contains("info-hash:     c12fe1c06bba254a9dc9f519b335aa7c1367a88a"),
        "{text}"
    );
    assert!(text.contains("  1: udp://t.example:1337"), "{text}");
    assert!(text.contains("  1: 10.0.0.2:6881"), "{text}");
    let out = run_ok(btmini().args(["info", "--json", link]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["magnet"], true);
    assert_eq!(v["info_hash"], "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
    assert_eq!(v["name"], "My File.iso");
    assert_eq!(v["trackers"], serde_json::json!([["udp://t.example:1337"]]));
    assert_eq!(v["peers"], serde_json::json!(["10.0.0.2:6881"]));
}
