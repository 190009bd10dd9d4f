//! Does the session's cost per message stay flat as the swarm grows? Downloads a
//! 100,000-piece torrent (16 KiB pieces, 1.6 GB simulated) from N seeds through the pure
//! [`Session`], on a simulated clock: the fake seeds answer every request with a zero
//! block and the "storage" accepts every piece without hashing, so what is timed is the
//! session alone (handshakes, bitfields, requests, blocks, HAVEs to every peer, timers).
//!
//! `cargo run --release --example swarm_scale -- [PIECES] [PEERS...]`
//! (default: 100000 pieces; 50 100 250 500 peers). Prints per run the session's time per
//! message (requests out, blocks in), per verified piece (which owes a HAVE to every peer
//! that lacks it: O(peers) by the protocol), per peer set up (its 12.5 KB bitfield), per
//! `poll_timeout` (which the host asks once a pass of its loop: O(peers)) and per
//! `handle_timeout`, as a Markdown table. As in the host, the timers run when
//! `poll_timeout` says they are due; each pass of the simulation is 20 ms.

use btmini::bencode::Item;
use btmini::bitfield::Bitfield;
use btmini::metainfo::Metainfo;
use btmini::peer::CloseReason;
use btmini::picker::BlockRef;
use btmini::session::driver::{self, Dial, Shell, Stored};
use btmini::session::{Config, Session};
use btmini::wire::{self, Handshake, Message};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PIECE: usize = 16 * 1024;

/// A seed that has everything and answers every request at once.
struct Seed {
    rx: Vec<u8>,
    shaken: bool,
}

fn torrent(pieces: usize) -> Metainfo {
    let hashes = vec![0x5au8; pieces * 20];
    let mut info = Item::dict();
    info.insert("name", Item::str("scale"));
    info.insert("piece length", Item::Int(PIECE as i64));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int((pieces * PIECE) as i64));
    let mut root = Item::dict();
    root.insert("info", info);
    Metainfo::from_bytes(&root.encode()).expect("a valid torrent")
}

/// Where the session's time went.
#[derive(Default)]
struct Run {
    /// Messages the session took in and gave out after the handshakes.
    messages: u64,
    /// Time in the session handling them (received, sent, next_to_send, poll_action).
    message_time: Duration,
    /// Time in `piece_result`: the HAVE to every peer that lacks the piece.
    piece_time: Duration,
    pieces: u64,
    /// Connecting, handshakes and bitfields (a 12.5 KB bitfield per peer).
    setup_time: Duration,
    /// Time in `handle_timeout` (timers, choke rounds), and how many.
    tick_time: Duration,
    ticks: u64,
    /// Time in `poll_timeout`, asked once a pass, and how many.
    poll_time: Duration,
    polls: u64,
    wall: Duration,
}

fn timed<T>(into: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *into += t.elapsed();
    r
}

/// The fake seeds and storage, as the session's shell.
struct Swarm {
    seeds: HashMap<usize, Seed>,
    /// Pieces stored since the last look.
    stored: u64,
    complete: bool,
}

impl Shell for Swarm {
    type Error = std::convert::Infallible;

    fn dial(&mut self, key: usize, _: SocketAddr) -> Dial {
        self.seeds.insert(
            key,
            Seed {
                rx: Vec::new(),
                shaken: false,
            },
        );
        Dial::Connected
    }

    fn close(&mut self, key: usize, reason: &CloseReason) {
        panic!("peer {key} dropped: {reason}");
    }

    fn store(&mut self, _: u32, data: Vec<u8>) -> Result<Stored, Self::Error> {
        self.stored += 1;
        Ok(Stored::Now(true, data))
    }

    fn read(&mut self, _: BlockRef, _: &mut Vec<u8>) -> Result<(), Self::Error> {
        Ok(())
    }

    fn want_peers(&mut self) {}

    fn dht_node(&mut self, _: SocketAddr) {}

    fn completed(&mut self) -> Result<(), Self::Error> {
        self.complete = true;
        Ok(())
    }

    fn metadata(&mut self, _: Vec<u8>) -> Result<driver::Installed, Self::Error> {
        unreachable!("a session made from a torrent fetches no metadata")
    }

    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize> {
        let seed = self.seeds.get_mut(&key).expect("a connected seed");
        seed.rx.extend_from_slice(bytes);
        Some(bytes.len())
    }
}

fn run(meta: &Metainfo, peers: usize) -> Run {
    let zeros = vec![0u8; PIECE];
    let config = Config {
        max_peers: peers,
        max_half_open: peers,
        ..Config::default()
    };
    let mut now = Instant::now();
    let mut s = Session::new(meta, Bitfield::new(meta.piece_count()), [7; 20], config, 1);
    let full = Bitfield::full(meta.piece_count());
    let mut swarm = Swarm {
        seeds: HashMap::new(),
        stored: 0,
        complete: false,
    };
    let mut r = Run::default();
    let started = Instant::now();
    let addrs: Vec<_> = (0..peers)
        .map(|i| {
            format!("10.{}.{}.1:6881", i / 250, i % 250)
                .parse()
                .unwrap()
        })
        .collect();
    timed(&mut r.setup_time, || s.add_peers(addrs, now));
    let mut reply = Vec::new();
    let mut buf = Vec::new();
    while !swarm.complete {
        // A round of actions that stored pieces is counted as their time: it is the HAVE
        // to every peer and the refill that a verified piece costs.
        let t = Instant::now();
        let Ok(acted) = driver::run_actions(&mut s, &mut swarm, &mut buf, now);
        if swarm.stored > 0 {
            r.piece_time += t.elapsed();
            r.pieces += std::mem::take(&mut swarm.stored);
        } else {
            r.message_time += t.elapsed();
        }
        let mut moved = acted > 0;
        timed(&mut r.message_time, || {
            driver::flush_writes(&mut s, &mut swarm, now)
        });
        let keys: Vec<usize> = swarm.seeds.keys().copied().collect();
        for key in keys {
            let seed = swarm.seeds.get_mut(&key).expect("a seed");
            if seed.rx.is_empty() {
                continue;
            }
            moved = true;
            reply.clear();
            let handshake = !seed.shaken && seed.rx.len() >= wire::HANDSHAKE_LEN;
            if handshake {
                seed.rx.drain(..wire::HANDSHAKE_LEN);
                seed.shaken = true;
                let mut id = [1u8; 20];
                id[..8].copy_from_slice(&(key as u64).to_be_bytes());
                let hs = Handshake {
                    reserved: [0; 8],
                    info_hash: meta.info_hash.0,
                    peer_id: id,
                };
                reply.extend_from_slice(&hs.encode());
                wire::encode(&Message::Bitfield(full.as_bytes()), &mut reply);
                wire::encode(&Message::Unchoke, &mut reply);
            }
            let mut at = 0;
            while let Some((m, used)) = wire::decode(&seed.rx[at..], 1 << 20).expect("valid") {
                at += used;
                r.messages += 1;
                if let Message::Request {
                    index,
                    begin,
                    length,
                } = m
                {
                    let data = &zeros[..length as usize];
                    wire::encode(&Message::Piece { index, begin, data }, &mut reply);
                    r.messages += 1;
                }
            }
            seed.rx.drain(..at);
            if handshake {
                timed(&mut r.setup_time, || s.received(key, &reply, now));
            } else if !reply.is_empty() {
                timed(&mut r.message_time, || s.received(key, &reply, now));
            }
        }
        now += Duration::from_millis(20);
        r.polls += 1;
        let due = timed(&mut r.poll_time, || s.poll_timeout());
        if due.is_none_or(|d| d <= now) {
            r.ticks += 1;
            timed(&mut r.tick_time, || s.handle_timeout(now));
        }
        assert!(moved || swarm.complete, "the simulation stalled");
    }
    r.wall = started.elapsed();
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pieces: usize = args.next().map_or(100_000, |a| a.parse().expect("PIECES"));
    let mut peer_counts: Vec<usize> = args.map(|a| a.parse().expect("PEERS")).collect();
    if peer_counts.is_empty() {
        peer_counts = vec![50, 100, 250, 500];
    }
    let meta = torrent(pieces);
    println!("{pieces} pieces of {} KiB, every peer a seed", PIECE / 1024);
    println!(
        "| peers | messages | ns/message | pieces | ns/piece (HAVEs) | setup ms/peer | µs/poll_timeout | timeouts | µs/handle_timeout | wall s |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    // The first run pays for faulting in the heap; it warms up and is not shown.
    run(&meta, peer_counts[0]);
    for peers in peer_counts {
        let r = run(&meta, peers);
        let per = |d: Duration, n: u64| d.as_nanos() as f64 / n.max(1) as f64;
        println!(
            "| {peers} | {} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.2} |",
            r.messages,
            per(r.message_time, r.messages),
            r.pieces,
            per(r.piece_time, r.pieces),
            per(r.setup_time, peers as u64) / 1e6,
            per(r.poll_time, r.polls) / 1e3,
            r.ticks,
            per(r.tick_time, r.ticks) / 1e3,
            r.wall.as_secs_f64()
        );
    }
}
