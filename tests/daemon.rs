//! `btmini daemon` driven by Transmission's own `transmission-remote` (3.00): add, list,
//! stop, start, remove, remove-and-delete, on torrents it downloads from libtorrent
//! seeders through a tracker, byte for byte; restarts (SIGTERM and `kill -9`) keep every
//! torrent; and the RPC's front door: the session id handshake, basic auth, the Host check.
#![cfg(feature = "daemon")]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `transmission-remote 127.0.0.1:PORT ARGS…`'s standard output (its status checked).
fn remote(port: u16, args: &[&str]) -> String {
    let out = Command::new("transmission-remote")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("transmission-remote (transmission-cli)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "transmission-remote {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Polls `transmission-remote -l` until `cond` holds for its output (30 s at most).
fn wait_list(port: u16, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = remote(port, &["-l"]);
        if cond(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `btmini daemon -o out --rpc-port P --port Q --no-dht`; waits until it serves.
fn daemon(out: &Path, rpc: u16, extra: &[&str]) -> Logged {
    let mut cmd = btmini();
    cmd.arg("daemon")
        .arg("-o")
        .arg(out)
        .args([
            "--rpc-port",
            &rpc.to_string(),
            "--port",
            &free_port().to_string(),
        ])
        .arg("--no-dht")
        .args(extra);
    let d = Logged::start(&mut cmd);
    d.wait_for("RPC on http://");
    d
}

/// A torrent served by a libtorrent seeder through a local opentracker.
struct Served {
    file: std::path::PathBuf,
    torrent: std::path::PathBuf,
    hash: String,
    _tracker: OpenTracker,
    _seeder: Seeder,
}

fn served(dir: &Path, seed: u64, len: usize) -> Served {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let (file, torrent) = single_file_torrent(dir, seed, len, &[url]);
    serve(dir, file, torrent, port)
}

/// `file` (in `dir/data`) seeded by libtorrent through an opentracker on `port`, which
/// `torrent` names.
fn serve(dir: &Path, file: std::path::PathBuf, torrent: std::path::PathBuf, port: u16) -> Served {
    let hash = hex_of(&torrent);
    let tracker = OpenTracker::start_on(port, std::slice::from_ref(&hash));
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    tracker.wait_for_peer(&hash, seeder.port);
    Served {
        file,
        torrent,
        hash,
        _tracker: tracker,
        _seeder: seeder,
    }
}

#[test]
fn transmission_remote_drives_a_btmini_daemon_through_a_whole_life() {
    let dir = TempDir::new("daemon-life");
    let a = served(&dir.join("a"), 301, 1_500_011);
    let b = served(&dir.join("b"), 302, 900_007);
    let out = dir.join("out");
    let rpc = free_port();
    let d = daemon(&out, rpc, &[]);
    // Add one as a local path, the other as base64 metainfo (transmission-remote sends a
    // file it can read as metainfo; a path only it cannot read goes as a filename).
    assert!(remote(rpc, &["-a", a.torrent.to_str().unwrap()]).contains("success"));
    // Both are called single.bin: the second goes to a folder of its own (-w).
    let out_b = out.join("b");
    let added = remote(
        rpc,
        &[
            "-a",
            b.torrent.to_str().unwrap(),
            "-w",
            out_b.to_str().unwrap(),
        ],
    );
    assert!(added.contains("success"), "{added}");
    let list = wait_list(rpc, "both downloaded", |l| l.matches("100%").count() == 2);
    assert!(list.contains("single.bin"), "{list}");
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&a.file).unwrap()
    );
    assert_eq!(
        std::fs::read(out_b.join("single.bin")).unwrap(),
        std::fs::read(&b.file).unwrap()
    );
    let info = remote(rpc, &["-t", &a.hash, "-i"]);
    assert!(info.contains(&a.hash), "{info}");
    assert!(info.contains("Percent Done: 100%"), "{info}");
    // A duplicate add says so.
    let dup = remote(rpc, &["-a", a.torrent.to_str().unwrap()]);
    assert!(
        dup.contains("duplicate") || dup.contains("success"),
        "{dup}"
    );
    assert_eq!(remote(rpc, &["-l"]).matches("100%").count(), 2);
    // Stop and start.
    remote(rpc, &["-t", "1", "-S"]);
    wait_list(rpc, "torrent 1 stopped", |l| l.contains("Stopped"));
    remote(rpc, &["-t", "1", "-s"]);
    wait_list(rpc, "torrent 1 started", |l| !l.contains("Stopped"));
    // A byte changed behind its back while it seeds: -v checks the data again (in the loop,
    // beside the other torrent), finds the piece bad and fetches it again.
    let got = out.join("single.bin");
    let mut bytes = std::fs::read(&got).unwrap();
    bytes[700_000] ^= 0xff;
    std::fs::write(&got, &bytes).unwrap();
    remote(rpc, &["-t", "1", "-v"]);
    let original = std::fs::read(&a.file).unwrap();
    wait_list(rpc, "torrent 1 verified and mended", |l| {
        l.matches("100%").count() == 2 && std::fs::read(&got).unwrap() == original
    });
    // A restart (SIGTERM: a clean stop) keeps both, with their progress and ids, and the
    // statistics of the first run.
    let mut d = d;
    run_ok(Command::new("kill").args(["-TERM", &d.child.id().to_string()]));
    let status = wait_exit(&mut d.child, "btmini daemon", Duration::from_secs(30));
    assert!(status.success(), "{}", d.log());
    let d = daemon(&out, rpc, &[]);
    let stats = remote(rpc, &["-st"]);
    let total = &stats[stats.find("TOTAL").expect("a TOTAL section")..];
    assert!(total.contains("Started 2 times"), "{stats}");
    // 1,500,011 + 900,007 bytes, and the 64 KiB piece fetched again after -v.
    assert!(
        total.contains("Downloaded: 2.47 MB"),
        "both torrents' bytes: {stats}"
    );
    wait_list(rpc, "both back after a restart", |l| {
        l.matches("100%").count() == 2
    });
    for (id, t) in [("1", &a), ("2", &b)] {
        let info = remote(rpc, &["-t", id, "-i"]);
        assert!(
            info.contains(&t.hash) && info.contains("Percent Done: 100%"),
            "{info}"
        );
    }
    drop(d);
}

/// Bytes in `transmission-remote -i`'s "Downloaded:" line ("533.9 kB").
fn downloaded_of(info: &str) -> f64 {
    let line = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Downloaded: "))
        .unwrap_or_else(|| panic!("no Downloaded line: {info}"));
    let (n, unit) = line.split_once(' ').unwrap_or((line, "B"));
    let mult = match unit.trim() {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    n.parse::<f64>().unwrap_or_else(|_| panic!("{line}")) * mult
}

/// `transmission-remote -a … -G 1` adds a torrent without its middle file: that file is
/// neither created nor downloaded, the choice survives a restart, and `-g 1` later fetches
/// it (the pieces it shares with the others from the part file), byte for byte; `-ph`
/// shows in `-f`.
#[test]
fn transmission_remote_chooses_the_files_and_an_unwanted_one_is_not_downloaded() {
    let dir = TempDir::new("daemon-files");
    let root = dir.join("data/sel");
    three_file_payload(&root);
    let port = free_port();
    let torrent = dir.join("sel.torrent");
    let url = format!("http://127.0.0.1:{port}/announce");
    make_torrent(&root, &torrent, &["-l", "64K", "-t", &url]);
    let _served = serve(dir.path(), root.clone(), torrent.clone(), port);
    let out = dir.join("out");
    let rpc = free_port();
    let d = daemon(&out, rpc, &[]);
    let added = remote(rpc, &["-a", torrent.to_str().unwrap(), "-G", "1"]);
    assert!(added.contains("success"), "{added}");
    wait_list(rpc, "the wanted files", |l| l.contains("100%"));
    let same = |name: &str| {
        assert_eq!(
            std::fs::read(out.join("sel").join(name)).ok(),
            std::fs::read(root.join(name)).ok(),
            "{name}"
        );
    };
    same("a.bin");
    same("c.bin");
    assert!(
        !out.join("sel/b.bin").exists(),
        "the unwanted file was created"
    );
    let info = remote(rpc, &["-t", "1", "-i"]);
    let got = downloaded_of(&info);
    eprintln!("without b.bin: {got} bytes downloaded");
    assert!(got < 600_000.0, "{got} bytes downloaded:\n{info}");
    let files = remote(rpc, &["-t", "1", "-f"]);
    let row = |n: &str| {
        files
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{n}:")))
            .unwrap_or_else(|| panic!("no file {n}: {files}"))
            .to_string()
    };
    assert!(row("1").contains(" No "), "{files}");
    assert!(
        row("0").contains(" Yes ") && row("0").contains("100%"),
        "{files}"
    );

    // A restart keeps the choice.
    let mut d = d;
    run_ok(Command::new("kill").args(["-TERM", &d.child.id().to_string()]));
    wait_exit(&mut d.child, "btmini daemon", Duration::from_secs(30));
    let _d = daemon(&out, rpc, &[]);
    wait_list(rpc, "back after a restart", |l| l.contains("100%"));
    let files = remote(rpc, &["-t", "1", "-f"]);
    assert!(
        files
            .lines()
            .any(|l| l.trim_start().starts_with("1:") && l.contains(" No ")),
        "{files}"
    );
    assert!(!out.join("sel/b.bin").exists());

    // Now wanted, at high priority: fetched, and the whole torrent is there.
    remote(rpc, &["-t", "1", "-g", "1", "-ph", "1"]);
    let list = remote(rpc, &["-l"]);
    assert!(!list.contains("100%"), "more to fetch at once: {list}");
    wait_list(rpc, "the whole torrent", |l| l.contains("100%"));
    for name in ["a.bin", "b.bin", "c.bin"] {
        same(name);
    }
    assert!(!out.join(".sel.parts").exists(), "the part file stayed");
    let files = remote(rpc, &["-t", "1", "-f"]);
    assert!(
        files
            .lines()
            .any(|l| l.trim_start().starts_with("1:") && l.contains("High") && l.contains(" Yes ")),
        "{files}"
    );
    // This run fetched the 30 pieces inside b.bin (1.97 MB as shown), not the two it
    // shares with the others (32 pieces would show 2.10 MB).
    let got = downloaded_of(&remote(rpc, &["-t", "1", "-i"]));
    eprintln!("then b.bin: {got} bytes downloaded");
    assert!(got < 2.0e6, "{got}");
}

#[test]
fn a_killed_daemon_keeps_every_torrent_it_acknowledged_and_remove_and_delete_deletes() {
    let dir = TempDir::new("daemon-kill");
    let a = served(&dir.join("a"), 303, 1_000_003);
    let out = dir.join("out");
    let rpc = free_port();
    let mut d = daemon(&out, rpc, &[]);
    assert!(remote(rpc, &["-a", a.torrent.to_str().unwrap()]).contains("success"));
    // A paused one too: it stays paused.
    let magnet = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    assert!(remote(rpc, &["--start-paused", "-a", &magnet]).contains("success"));
    wait_list(rpc, "downloaded", |l| l.contains("100%"));
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&a.file).unwrap()
    );
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let _d = daemon(&out, rpc, &[]);
    let list = wait_list(rpc, "both back after kill -9", |l| {
        l.contains("100%") && l.contains("Stopped")
    });
    assert!(
        list.contains(&"ab".repeat(20)) || list.contains("Stopped"),
        "{list}"
    );
    // Remove the magnet; remove the other with its data.
    remote(rpc, &["-t", "2", "-r"]);
    remote(rpc, &["-t", "1", "--remove-and-delete"]);
    wait_list(rpc, "both removed", |l| {
        !l.contains("100%") && !l.contains("Stopped")
    });
    assert!(!out.join("single.bin").exists(), "the data is deleted");
    assert!(a.file.exists(), "the seeder's data is untouched");
}

/// One raw HTTP exchange with the daemon; the response's status line and headers, and body.
fn raw(port: u16, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn the_rpc_s_front_door_session_id_auth_host_check_and_bad_requests() {
    let dir = TempDir::new("daemon-door");
    let rpc = free_port();
    let _d = daemon(&dir.join("out"), rpc, &["--rpc-auth", "me:secret"]);
    let post = |headers: &str, body: &str| {
        raw(
            rpc,
            &format!(
                "POST /transmission/rpc/ HTTP/1.1\r\nHost: 127.0.0.1:{rpc}\r\n{headers}\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    // No credentials: 401 with the challenge curl needs.
    let (head, _) = post("", "{}");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    // Credentials, no session id: 409 and the id.
    let auth = "Authorization: Basic bWU6c2VjcmV0\r\n"; // me:secret
    let (head, _) = post(auth, "{}");
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");
    let sid = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Transmission-Session-Id: "))
        .unwrap()
        .to_string();
    let with = format!("{auth}X-Transmission-Session-Id: {sid}\r\n");
    // A call, its tag echoed.
    let (head, body) = post(&with, r#"{"method":"session-get","tag":42}"#);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"], "success");
    assert_eq!(v["tag"], 42);
    assert_eq!(v["arguments"]["rpc-version"], 16);
    // Malformed JSON, an unknown method, wrong types, a torrent that does not parse, a
    // magnet that does not parse, unknown ids: each an error result, the daemon still up.
    for (req, says) in [
        ("{not json", "no method"),
        (r#"{"method":"torrent-fly"}"#, "not recognized"),
        (
            r#"{"method":"torrent-get","arguments":{"fields":7}}"#,
            "not a list",
        ),
        (
            r#"{"method":"torrent-add","arguments":{"metainfo":"ZGU="}}"#,
            "invalid or corrupt",
        ),
        (
            r#"{"method":"torrent-add","arguments":{"filename":"magnet:?xt=urn:btih:zz"}}"#,
            "magnet",
        ),
        (
            r#"{"method":"torrent-add","arguments":{"filename":"/nonexistent.torrent"}}"#,
            "nonexistent",
        ),
        (
            r#"{"method":"torrent-add","arguments":{"filename":"magnet:?xt=urn:btih:0000000000000000000000000000000000000000","download-dir":"/etc/passwd"}}"#,
            "not a folder",
        ),
    ] {
        let (head, body) = post(&with, req);
        assert!(head.starts_with("HTTP/1.1 200"), "{req}: {head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["result"].as_str().unwrap();
        assert!(
            result != "success" && result.contains(says),
            "{req}: {result}"
        );
    }
    let (_, body) = post(
        &with,
        r#"{"method":"torrent-get","arguments":{"ids":[99],"fields":["id"]}}"#,
    );
    assert!(body.contains(r#""torrents":[]"#), "{body}");
    // A body over the cap is refused before it is read.
    let (head, _) = raw(
        rpc,
        &format!(
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n{with}Content-Length: 999999999\r\n\r\n"
        ),
    );
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[test]
fn without_a_password_a_host_name_is_refused_as_dns_rebinding() {
    let dir = TempDir::new("daemon-host");
    let rpc = free_port();
    let _d = daemon(&dir.join("out"), rpc, &[]);
    let (head, _) = raw(
        rpc,
        "POST /transmission/rpc HTTP/1.1\r\nHost: attacker.example:9091\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 421"), "{head}");
    // transmission-remote (which says 127.0.0.1) gets in.
    assert!(remote(rpc, &["-si"]).contains("RPC version: 16"));
}

#[test]
fn speed_limits_set_by_transmission_remote_are_kept_across_a_restart() {
    let dir = TempDir::new("daemon-limits");
    let (_, torrent) = single_file_torrent(&dir.join("t"), 305, 200_003, &[]);
    let out = dir.join("out");
    let rpc = free_port();
    let d = daemon(&out, rpc, &[]);
    assert!(remote(rpc, &["-a", torrent.to_str().unwrap()]).contains("success"));
    // Global (session-set, kB/s) and the torrent's own (torrent-set).
    remote(rpc, &["-d", "2000", "-u", "300"]);
    remote(rpc, &["-t", "1", "-d", "50"]);
    let check = || {
        let si = remote(rpc, &["-si"]);
        assert!(si.contains("Download speed limit: 2.00 MB/s"), "{si}");
        assert!(si.contains("Upload speed limit: 300 kB/s"), "{si}");
        let info = remote(rpc, &["-t", "1", "-i"]);
        assert!(info.contains("Download Limit: 50 kB/s"), "{info}");
        assert!(info.contains("Upload Limit: Unlimited"), "{info}");
    };
    check();
    drop(d);
    let _d = daemon(&out, rpc, &[]);
    check();
    // Off again; a field btmini does not take is an error, not a silent no.
    remote(rpc, &["-D", "-t", "1", "-D"]);
    assert!(remote(rpc, &["-si"]).contains("Download speed limit: Unlimited"));
    let out = Command::new("transmission-remote")
        .arg(format!("127.0.0.1:{rpc}"))
        .args(["-t", "1", "--bandwidth-high"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("not supported by btmini"), "{text}");
}

#[test]
fn the_transmission_rpc_python_package_drives_the_daemon() {
    let dir = TempDir::new("daemon-trpc");
    let a = served(&dir.join("a"), 307, 800_009);
    let out = dir.join("out");
    let rpc = free_port();
    let _d = daemon(&out, rpc, &["--rpc-auth", "user:pw"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/trpc.py");
    let run = Command::new("python3")
        .arg(script)
        .arg(rpc.to_string())
        .args(["user", "pw"])
        .arg(&a.torrent)
        .arg(&out)
        .output()
        .expect("python3 with transmission-rpc (tools/test installs it)");
    let text = String::from_utf8_lossy(&run.stdout);
    let got: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "trpc.py: {e}: {text}{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    assert_eq!(got["rpc_version"], 16, "{got}");
    assert_eq!(got["percent_done"], 1.0, "{got}");
    assert_eq!(got["hash"], a.hash.as_str(), "{got}");
    assert_eq!(got["files"], serde_json::json!(["single.bin"]), "{got}");
    assert_eq!(got["after_stop"], "stopped", "{got}");
    assert_ne!(got["after_start"], "stopped", "{got}");
    assert_eq!(
        got["download_limit"],
        serde_json::json!([40, true]),
        "{got}"
    );
    assert_eq!(got["after_remove"], 0, "{got}");
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&a.file).unwrap(),
        "downloaded byte for byte, and kept on remove"
    );
}

#[test]
fn transmission_s_own_web_client_in_headless_chromium_lists_a_torrent() {
    // Debian's transmission-common installs Transmission's web client here.
    let web = Path::new("/usr/share/transmission/web");
    assert!(
        web.join("index.html").exists(),
        "transmission-common's web client"
    );
    let dir = TempDir::new("daemon-web");
    let file = dir.join("t/web-listed-7f3a.bin");
    write_file(&file, 309, 300_007);
    let torrent = dir.join("t.torrent");
    make_torrent(&file, &torrent, &[]);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&file, out.join("web-listed-7f3a.bin")).unwrap();
    let rpc = free_port();
    let _d = daemon(&out, rpc, &["--web-ui", web.to_str().unwrap()]);
    assert!(remote(rpc, &["-a", torrent.to_str().unwrap()]).contains("success"));
    wait_list(rpc, "checked", |l| l.contains("100%"));
    // The page loads its scripts, does the session id handshake and torrent-get through
    // ../rpc, and renders the list; the DOM is dumped once the page is idle.
    let run = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("http://127.0.0.1:{rpc}/transmission/web/"))
        .output()
        .expect("chromium (tools/test installs it)");
    let dom = String::from_utf8_lossy(&run.stdout);
    assert!(
        dom.contains("torrent_name\">web-listed-7f3a.bin<"),
        "the list does not show the torrent:\n{}\n{}",
        &dom[..dom.len().min(3000)],
        String::from_utf8_lossy(&run.stderr)
    );
    // 100% done shows in its progress details.
    assert!(dom.contains("100%") || dom.contains("Seeding"), "{dom}");
}

#[test]
fn a_torrent_that_reaches_its_seed_ratio_stops_as_finished() {
    let dir = TempDir::new("daemon-ratio");
    let (file, torrent) = single_file_torrent(&dir.join("t"), 311, 700_001, &[]);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&file, out.join("single.bin")).unwrap();
    let (rpc, peers) = (free_port(), free_port());
    let _d = daemon(&out, rpc, &["--port", &peers.to_string()]);
    assert!(remote(rpc, &["-a", torrent.to_str().unwrap()]).contains("success"));
    wait_list(rpc, "checked", |l| l.contains("100%"));
    // Stop at a ratio of 0.5 (this torrent's own, torrent-set seedRatioMode 1).
    remote(rpc, &["-t", "1", "-sr", "0.5"]);
    let info = remote(rpc, &["-t", "1", "-i"]);
    assert!(info.contains("Ratio Limit: 0.5"), "{info}");
    assert!(!remote(rpc, &["-l"]).contains("Finished"));
    // A libtorrent leecher fetches it; once half is uploaded the daemon stops seeding (the
    // leecher does not get the rest from us).
    let _leecher = lt_leecher(
        &torrent,
        &dir.join("lt"),
        "127.0.0.4",
        &format!("127.0.0.1:{peers}"),
    );
    wait_list(rpc, "stopped by its seed ratio", |l| l.contains("Finished"));
    let info = remote(rpc, &["-t", "1", "-i"]);
    let ratio: f64 = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Ratio: "))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("{info}"));
    assert!(ratio >= 0.5, "stopped at a ratio of {ratio}: {info}");
    // The session's limit shows in -si; -srd hands the torrent back to it.
    remote(rpc, &["-gsr", "3"]);
    assert!(remote(rpc, &["-si"]).contains("Default seed ratio limit: 3.0"));
    remote(rpc, &["-t", "1", "-srd"]);
    assert!(remote(rpc, &["-t", "1", "-i"]).contains("Ratio Limit: Default"));
}
