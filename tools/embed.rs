//! Embedding btmini: a program that downloads a torrent by driving the loop itself, one
//! step at a time, and prints its own progress.
//!
//! `cargo run --release --example embed -- FILE.torrent OUT_DIR [HOST:PORT]`

use btmini::engine::{Download, DownloadOptions};
use btmini::metainfo::Metainfo;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(torrent), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: embed FILE.torrent OUT_DIR [HOST:PORT]".into());
    };
    let meta = Arc::new(Metainfo::from_bytes(&std::fs::read(&torrent)?)?);
    let opts = DownloadOptions {
        output: out.into(),
        peers: args.map(|p| p.parse()).collect::<Result<_, _>>()?,
        port: 0, // any free port
        ..Default::default()
    };
    let mut download = Download::new(meta, opts, &mut |done, total| {
        eprintln!("checking {done}/{total}");
    })?;
    // The embedding program owns the loop: each step waits at most 200 ms, so it can do its
    // own work in between (here: print a line now and then).
    let mut last = 0;
    while !download.step(Some(Duration::from_millis(200)))? {
        let s = download.status();
        let pct = s.have_bytes * 100 / s.total.max(1);
        if pct != last {
            last = pct;
            println!("{pct}% from {} peers", s.stats.connected);
        }
    }
    println!(
        "finished: {} of {} bytes",
        download.status().have_bytes,
        download.status().total
    );
    Ok(())
}
