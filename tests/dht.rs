//! The DHT against libtorrent's, on loopback: btmini finds a libtorrent seeder through the
//! DHT alone (a magnet with no tracker and no peer, bootstrapped from a libtorrent node that
//! is not the seeder); a libtorrent leecher bootstrapped only from btmini's node finds a
//! btmini seeder through it; aria2c's DHT and btmini's find each other's torrents; a restart
//! bootstraps from the saved nodes; the same over IPv6 (BEP 32) on ::1, both ways; and
//! Transmission's DHT (jech/dht) and btmini's find each other's torrents, in a network
//! namespace (tests/support/tr_dht.py: Transmission ignores 127.0.0.0/8 and waits for 9
//! nodes).
//! libtorrent needs an explicit IP for its DHT, and a raised rate limit on loopback
//! (tests/support/lt.py, `dht_session`).

mod common;

use common::*;

/// btmini on 127.0.0.3:`port` downloading a magnet with no tracker and no peer, its DHT
/// bootstrapped only from `boot`.
fn magnet_via_dht(hex: &str, out: &std::path::Path, port: u16, boot: &str) -> Logged {
    magnet_via_dht_on(Some("127.0.0.3"), hex, out, port, boot)
}

/// The same on `bind`; `None`: every address of both families.
fn magnet_via_dht_on(
    bind: Option<&str>,
    hex: &str,
    out: &std::path::Path,
    port: u16,
    boot: &str,
) -> Logged {
    let mut cmd = btmini();
    cmd.arg(format!("magnet:?xt=urn:btih:{hex}"))
        .arg("-o")
        .arg(out);
    if let Some(ip) = bind {
        cmd.args(["--bind", ip]);
    }
    cmd.args(["--min-share", "0", "--port"])
        .arg(port.to_string())
        .args(["--dht-node", boot]);
    Logged::start(&mut cmd)
}

/// A libtorrent DHT node on `node_ip`, and a libtorrent seeder of `torrent` (data in
/// `dir/data`) on `seed_ip` that announces itself through it; the node's address, and
/// both.
fn lt_node_and_seeder(
    node_ip: &str,
    seed_ip: &str,
    torrent: &std::path::Path,
    dir: &std::path::Path,
) -> (String, Seeder, Seeder) {
    let node = lt_process(&["dht_node".as_ref(), node_ip.as_ref()]);
    let boot = if node_ip.contains(':') {
        format!("[{node_ip}]:{}", node.port)
    } else {
        format!("{node_ip}:{}", node.port)
    };
    let seeder = lt_process(&[
        "dht_seed".as_ref(),
        torrent.as_os_str(),
        dir.join("data").as_os_str(),
        seed_ip.as_ref(),
        boot.as_ref(),
    ]);
    (boot, node, seeder)
}

#[test]
fn btmini_finds_a_libtorrent_seeder_through_the_dht_alone() {
    let dir = TempDir::new("dht-from-lt");
    let (file, torrent) = single_file_torrent(dir.path(), 111, 2_000_003, &[]);
    let hex = hex_of(&torrent);
    let (boot, _node, seeder) = lt_node_and_seeder("127.0.0.4", "127.0.0.2", &torrent, dir.path());
    let out = dir.join("out");
    let mut bt = magnet_via_dht(&hex, &out, free_port(), &boot);
    let log = bt.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains("the DHT gave"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.2:{} is libtorrent", seeder.port)),
        "the seeder came from the DHT: {log}"
    );
}

#[test]
fn a_libtorrent_leecher_bootstrapped_only_from_btmini_finds_a_btmini_seeder_through_the_dht() {
    // btmini on 127.0.0.3 (it knows its address: --bind), the leecher on 127.0.0.5.
    lt_leecher_finds_btmini_through_its_node("127.0.0.4", Some("127.0.0.3"), "127.0.0.5", 113);
}

/// btmini seeds (on `bind`, or every address) with its DHT bootstrapped from a libtorrent
/// node on `node_ip`, which btmini announces its torrent through; a libtorrent leecher on
/// `leech_ip` that knows only btmini's node (at `bind`, or the node's family's loopback)
/// finds btmini through the DHT and downloads the torrent whole.
fn lt_leecher_finds_btmini_through_its_node(
    node_ip: &str,
    bind: Option<&str>,
    leech_ip: &str,
    seed: u64,
) {
    let dir = TempDir::new("dht-to-lt");
    let (file, torrent) = single_file_torrent(dir.path(), seed, 1_500_003, &[]);
    let hex = hex_of(&torrent);
    let node = lt_process(&["dht_node".as_ref(), node_ip.as_ref()]);
    let at = |ip: &str, port: u16| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let port = free_port();
    let mut cmd = btmini();
    cmd.arg(&torrent).arg("-o").arg(dir.join("data"));
    if let Some(ip) = bind {
        cmd.args(["--bind", ip]);
    }
    cmd.args(["--seed", "--port"])
        .arg(port.to_string())
        .args(["--dht-node", &at(node_ip, node.port)]);
    let bt = Logged::start(&mut cmd);
    bt.wait_for("DHT lookup of");
    let out = dir.join("lt-out");
    let btmini_ip = bind.unwrap_or(if node_ip.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    });
    let got = libtorrent(&[
        "dht_download".as_ref(),
        format!("magnet:?xt=urn:btih:{hex}").as_ref(),
        out.as_os_str(),
        leech_ip.as_ref(),
        at(btmini_ip, port).as_ref(),
    ]);
    assert_eq!(got["seeding"], true, "{got}\n{}", bt.log());
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // peer_info.source: 2 is the DHT. btmini's node lists btmini itself for the torrent
    // it seeds, so the leecher's first lookup finds it.
    assert!(
        sources_of(&got).iter().any(|s| s & 2 != 0),
        "libtorrent did not find btmini through the DHT: {got}\n{}",
        bt.log()
    );
    drop(node);
}

/// aria2c seeding `torrent` from `data` with its DHT on at UDP `dht_port`, bootstrapped
/// from `entry`; its TCP port is returned with the child.
fn aria2_dht(args: &[&str], dht_port: u16, entry: &str, dir: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    let child = std::process::Command::new("aria2c")
        .args([
            "--enable-dht=true",
            "--enable-dht6=false",
            &format!("--dht-listen-port={dht_port}"),
            &format!("--dht-entry-point={entry}"),
            &format!("--listen-port={port}"),
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--quiet=true",
        ])
        .arg(format!(
            "--dht-file-path={}",
            dir.join("aria2-dht.dat").display()
        ))
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("aria2c (tools/test installs it)");
    (Killed(child), port)
}

#[test]
fn btmini_finds_an_aria2c_seeder_through_the_dht_and_aria2c_finds_a_btmini_seeder() {
    let dir = TempDir::new("dht-aria2");
    let (file, torrent) = single_file_torrent(dir.path(), 117, 2_000_003, &[]);
    let hex = hex_of(&torrent);
    let data = dir.join("data");

    // aria2c seeds; btmini, bootstrapped only from aria2c's DHT node, downloads.
    let (bt_port, aria_dht) = (free_port(), free_port());
    let (_aria, aria_port) = aria2_dht(
        &[
            "-V",
            "--seed-ratio=0.0",
            "--dir",
            data.to_str().unwrap(),
            torrent.to_str().unwrap(),
        ],
        aria_dht,
        &format!("127.0.0.3:{bt_port}"),
        dir.path(),
    );
    let out = dir.join("out");
    let mut bt = magnet_via_dht(&hex, &out, bt_port, &format!("127.0.0.1:{aria_dht}"));
    let log = bt.finish_with(&out.join("single.bin"), &file);
    assert!(log.contains("the DHT gave"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{aria_port} is aria2")),
        "{log}"
    );

    // btmini seeds; aria2c, bootstrapped only from btmini's node, downloads.
    let seed_port = free_port();
    let mut cmd = btmini();
    cmd.arg(&torrent)
        .arg("-o")
        .arg(&data)
        .args(["--bind", "127.0.0.3", "--seed", "--no-pex", "--port"])
        .arg(seed_port.to_string());
    let seed = Logged::start(&mut cmd);
    seed.wait_for("listening on port");
    let got = dir.join("aria-out");
    let (mut aria, _) = aria2_dht(
        &[
            "--seed-time=0",
            "--dir",
            got.to_str().unwrap(),
            &format!("magnet:?xt=urn:btih:{hex}"),
        ],
        free_port(),
        &format!("127.0.0.3:{seed_port}"),
        dir.path(),
    );
    let status = wait_exit(&mut aria.0, "aria2c", LOGGED_LIMIT);
    assert!(status.success(), "aria2c: {status}\n{}", seed.log());
    assert_eq!(
        std::fs::read(got.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

#[test]
fn a_restart_bootstraps_from_the_nodes_it_saved_without_any_given_node() {
    let dir = TempDir::new("dht-restart");
    let node = lt_process(&["dht_node".as_ref(), "127.0.0.4".as_ref()]);
    let boot = format!("127.0.0.4:{}", node.port);
    let mut seeders = Vec::new();
    let mut torrents = Vec::new();
    for i in 0..2u64 {
        let sub = dir.join(format!("t{i}"));
        let (file, torrent) = single_file_torrent(&sub, 120 + i, 700_001, &[]);
        seeders.push(lt_process(&[
            "dht_seed".as_ref(),
            torrent.as_os_str(),
            sub.join("data").as_os_str(),
            "127.0.0.2".as_ref(),
            boot.as_ref(),
        ]));
        torrents.push((file, hex_of(&torrent)));
    }
    let out = dir.join("out");
    // The first run is given the node, and saves what it learnt when it ends.
    let mut bt = magnet_via_dht(&torrents[0].1, &out, free_port(), &boot);
    bt.finish_with(&out.join("single.bin"), &torrents[0].0);
    assert!(out.join(".btmini-dht.dat").exists());
    std::fs::remove_file(out.join("single.bin")).unwrap();
    // The second, into the same folder, is given no node: only the well-known routers,
    // which cannot be reached here, and the saved nodes.
    let out2 = out;
    let mut cmd = btmini();
    cmd.arg(format!("magnet:?xt=urn:btih:{}", torrents[1].1))
        .arg("-o")
        .arg(&out2)
        .args(["--bind", "127.0.0.3", "--min-share", "0", "--port"])
        .arg(free_port().to_string());
    let mut bt = Logged::start(&mut cmd);
    let log = bt.finish_with(&out2.join("single.bin"), &torrents[1].0);
    assert!(
        log.contains("saved nodes)") && !log.contains("(0 saved nodes)"),
        "{log}"
    );
    assert!(log.contains("the DHT gave"), "{log}");
    drop(seeders);
}

/// The sources libtorrent's `dht_download` saw its peers come from (`peer_info.source`).
fn sources_of(got: &serde_json::Value) -> Vec<i64> {
    got["peer_sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_i64())
        .collect()
}

#[test]
fn btmini_finds_a_libtorrent_seeder_through_the_ipv6_dht() {
    let dir = TempDir::new("dht6-from-lt");
    let (file, torrent) = single_file_torrent(dir.path(), 117, 1_000_003, &[]);
    let hex = hex_of(&torrent);
    let (boot, _node, seeder) = lt_node_and_seeder("::1", "::1", &torrent, dir.path());
    // No --bind: btmini listens on both families, its DHT on IPv4 and IPv6.
    let out = dir.join("out");
    let mut bt = magnet_via_dht_on(None, &hex, &out, free_port(), &boot);
    let log = bt.finish_with(&out.join("single.bin"), &file);
    assert!(
        log.contains(&format!("[::1]:{} is libtorrent", seeder.port)),
        "the seeder came from the IPv6 DHT: {log}"
    );
}

#[test]
fn a_libtorrent_leecher_on_ipv6_finds_a_btmini_seeder_through_btmini_s_ipv6_node() {
    // No --bind: btmini listens on [::] too, and its node learns its IPv6 address from
    // the `ip` field of libtorrent's replies.
    lt_leecher_finds_btmini_through_its_node("::1", None, "::1", 119);
}

#[test]
fn transmission_and_btmini_find_each_other_through_the_dht_in_a_network_namespace() {
    let dir = TempDir::new("dht-transmission");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tr_dht.py");
    // Root makes the namespace directly; others need an unprivileged user namespace.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(if root { &["-n"][..] } else { &["-r", "-n"][..] })
        .arg(PYTHON)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_btmini"))
        .arg(dir.path());
    let out = cmd.output().expect("unshare and python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let got: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "tr_dht.py: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let log = |k: &str| got[k].as_str().unwrap_or("").to_string();
    // Transmission, given only A's info-hash, found btmini's seed through the DHT.
    assert_eq!(
        got["tr_got_a"],
        true,
        "transmission: {}\nseed: {}\npeers: {}",
        log("tr_log"),
        log("seed_log"),
        log("tr_peers_a")
    );
    assert!(
        log("tr_peers_a").contains("10.77.0.2"),
        "{}",
        log("tr_peers_a")
    );
    // btmini, given only B's info-hash, found Transmission through the DHT.
    assert_eq!(got["btmini_got_b"], true, "{}", log("leech_log"));
    let leech = log("leech_log");
    assert!(leech.contains("the DHT gave"), "{leech}");
    assert!(leech.contains("is Transmission"), "{leech}");
}
