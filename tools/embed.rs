//! Embedding btmini: a program that owns the loop and the torrents. It starts a host,
//! adds each torrent or magnet link given, steps the loop itself, reads each torrent's
//! status, and while the loop runs removes the torrents that are complete and adds the
//! next ones from its queue — what a daemon does when a user adds or removes a torrent.
//!
//! `cargo run --release --example embed -- OUT_DIR [--peer HOST:PORT] TORRENT|MAGNET...`
//!
//! At most two torrents run at once; the others wait in the queue.

use btmini::engine::{DownloadOptions, Phase};
use btmini::host::{Host, HostOptions, Source};
use btmini::magnet::Magnet;
use btmini::metainfo::Metainfo;
use std::collections::VecDeque;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

const AT_ONCE: usize = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: VecDeque<String> = std::env::args().skip(1).collect();
    let out = args
        .pop_front()
        .ok_or("usage: embed OUT_DIR [--peer HOST:PORT] TORRENT|MAGNET...")?;
    let mut peers = Vec::new();
    while args.front().is_some_and(|a| a == "--peer") {
        args.pop_front();
        peers.push(args.pop_front().ok_or("--peer HOST:PORT")?.parse()?);
    }
    let mut queue = VecDeque::new();
    for a in args {
        queue.push_back(if a.starts_with("magnet:") {
            Source::Magnet(Magnet::parse(&a)?)
        } else {
            Source::Torrent(Arc::new(Metainfo::from_bytes(&std::fs::read(&a)?)?))
        });
    }
    let opts = DownloadOptions {
        output: out.into(),
        peers,
        ..Default::default()
    };
    let mut host = Host::new(HostOptions {
        port: 0, // any free port
        ..Default::default()
    })?;
    let mut done = 0;
    loop {
        // Start queued torrents while there is room.
        while host.ids().len() < AT_ONCE {
            let Some(source) = queue.pop_front() else {
                break;
            };
            let id = host.add(source, opts.clone(), &mut |_, _| {})?;
            println!("added #{id}");
        }
        if host.ids().is_empty() {
            break;
        }
        // The program owns the loop: each step waits at most 200 ms.
        host.step(Some(Duration::from_millis(200)))?;
        for id in host.ids() {
            let Some(s) = host.status(id) else { continue };
            if let Some(m) = s.metadata {
                println!("#{id} {}: metadata {}/{}", s.name, m.pieces.0, m.pieces.1);
            } else if s.phase == Phase::Finished {
                if let Some(e) = host.take_error(id) {
                    println!("#{id} {}: failed: {e}", s.name);
                } else {
                    println!(
                        "#{id} {}: {} of {} bytes, removed",
                        s.name, s.have_bytes, s.total
                    );
                    done += 1;
                }
                // Removing a finished torrent drops it at the next step.
                host.remove(id);
            }
        }
    }
    println!("{done} torrents complete");
    Ok(())
}
