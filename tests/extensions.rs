//! BEP 10, 6 and 11 against libtorrent: btmini finds a seeder it can only learn of through a
//! libtorrent peer's PEX, and a libtorrent seeder that speaks Fast announces itself with
//! have_all and rejects btmini's requests when it chokes, which btmini then asks of another
//! seeder at once instead of waiting for them to time out.

mod common;

use common::*;

/// btmini downloading `torrent` into `out` on 127.0.0.3 from the `peers` it is told of.
fn leecher(torrent: &std::path::Path, out: &std::path::Path, peers: &[String]) -> Logged {
    leecher_with(torrent, out, peers, &[], free_port())
}

fn leecher_with(
    torrent: &std::path::Path,
    out: &std::path::Path,
    peers: &[String],
    extra: &[&str],
    port: u16,
) -> Logged {
    let mut cmd = btmini();
    cmd.arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--bind", "127.0.0.3", "--min-share", "0", "--port"])
        .arg(port.to_string())
        .args(extra);
    for p in peers {
        cmd.arg("--peer").arg(p);
    }
    Logged::start(&mut cmd)
}

#[test]
fn btmini_finds_the_only_seeder_through_pex_from_a_libtorrent_peer() {
    let dir = TempDir::new("pex");
    let (file, torrent) = single_file_torrent(dir.path(), 41, 3_000_017, &[]);
    // The seeder S: no tracker lists it and btmini is not told of it.
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", None);
    // The peer L: a leecher held to 1 KB/s that dials S; btmini knows only L.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut lpeer = libtorrent_peer(&torrent, &empty, "127.0.0.4");
    lpeer.command(&format!("connect 127.0.0.2:{}", seeder.port));
    // Its first PEX message lists the peers it has then; later ones come a minute apart.
    assert_eq!(lpeer.read_line().trim(), "connected");
    let mut bt = leecher(
        &torrent,
        &dir.join("out"),
        &[format!("127.0.0.4:{}", lpeer.port)],
    );
    let log = bt.finish_with(&dir.join("out/single.bin"), &file);
    assert!(
        log.contains("PEX from 127.0.0.4"),
        "no PEX in the log:\n{log}"
    );
    // btmini dials the seeder PEX named; the seeder, told of btmini by L's PEX in turn,
    // may dial it first (from another port).
    assert!(
        log.contains(&format!("127.0.0.2:{}", seeder.port)) || log.contains(" 127.0.0.2:"),
        "never talked to the seeder:\n{log}"
    );
    eprintln!("{}", bt.log());
}

#[test]
fn a_choking_libtorrent_seeder_sends_have_all_and_rejects_and_btmini_asks_elsewhere() {
    let dir = TempDir::new("fast");
    let (file, torrent) = single_file_torrent(dir.path(), 43, 6_000_011, &[]);
    // Two seeders, slow enough that the download is still going when the first chokes.
    let data = dir.join("data");
    let mut choker = libtorrent_seeder(&torrent, &data, "127.0.0.2", Some(500_000));
    let other = libtorrent_seeder(&torrent, &data, "127.0.0.5", Some(500_000));
    let mut bt = leecher(
        &torrent,
        &dir.join("out"),
        &[
            format!("127.0.0.2:{}", choker.port),
            format!("127.0.0.5:{}", other.port),
        ],
    );
    eprintln!(
        "{}",
        bt.wait_for(&format!(
            "127.0.0.2:{} has every piece (have_all)",
            choker.port
        ))
    );
    choker.command("choke");
    // Its rejects free our requests at once, to be asked of the other seeder.
    eprintln!("{}", bt.wait_for("rejects our requests (BEP 6)"));
    let log = bt.finish_with(&dir.join("out/single.bin"), &file);
    assert!(
        !log.contains("dropping 127.0.0.2"),
        "btmini dropped the choking seeder:\n{log}"
    );
}

#[test]
fn a_libtorrent_leecher_learns_of_a_seeder_through_btminis_pex() {
    let dir = TempDir::new("pex-out");
    let (file, torrent) = single_file_torrent(dir.path(), 47, 6_000_011, &[]);
    // L <- btmini -> S: btmini downloads from S; L knows only btmini.
    let seeder = libtorrent_seeder(&torrent, &dir.join("data"), "127.0.0.2", Some(500_000));
    let port = free_port();
    let bt = leecher_with(
        &torrent,
        &dir.join("out"),
        &[format!("127.0.0.2:{}", seeder.port)],
        &["--seed"],
        port,
    );
    bt.wait_for(&format!("127.0.0.2:{} has every piece", seeder.port));
    let leecher = dir.join("leecher");
    let out = libtorrent(&[
        "download".as_ref(),
        torrent.as_os_str(),
        leecher.as_os_str(),
        "127.0.0.4".as_ref(),
        format!("127.0.0.3:{port}").as_ref(),
    ]);
    assert_eq!(out["seeding"], true, "{out}\n{}", bt.log());
    assert_eq!(
        std::fs::read(leecher.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let learnt: Vec<&str> = out["pex_sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        learnt.contains(&format!("127.0.0.2:{}", seeder.port).as_str()),
        "libtorrent did not learn of the seeder from btmini: {out}\n{}",
        bt.log()
    );
}

#[test]
fn libtorrent_fetches_a_magnets_metadata_and_data_from_a_btmini_seed() {
    let dir = TempDir::new("serve-metadata");
    // 3 MB in 64 KiB pieces: an info dictionary of about 1 KB; a private torrent, which
    // BEP 9 lets btmini serve too.
    let file = dir.join("data").join("single.bin");
    write_file(&file, 53, 3_000_017);
    let torrent = dir.join("p.torrent");
    make_torrent(&file, &torrent, &["-l", "64K", "--private"]);
    let hex = btmini_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = free_port();
    let bt = leecher_with(&torrent, &dir.join("data"), &[], &["--seed"], port);
    bt.wait_for("seeding");
    let out = dir.join("magnet-out");
    let got = libtorrent(&[
        "magnet".as_ref(),
        format!("magnet:?xt=urn:btih:{hex}").as_ref(),
        out.as_os_str(),
        "127.0.0.4".as_ref(),
        format!("127.0.0.3:{port}").as_ref(),
    ]);
    assert_eq!(got["has_metadata"], true, "{got}\n{}", bt.log());
    assert_eq!(got["seeding"], true, "{got}\n{}", bt.log());
    assert_eq!(
        std::fs::read(out.join("single.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    eprintln!(
        "libtorrent had the metadata after {} s",
        got["metadata_seconds"]
    );
}
