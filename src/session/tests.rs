//! The session in a simulated swarm: fake peers speak the wire protocol in memory, the
//! "storage" checks hashes, and time is simulated.

use super::*;
use crate::bencode::Item;
use crate::bitfield::BitfieldError;
use crate::wire::WireError;
use std::sync::Arc;

const PIECE: usize = 32 * 1024;

fn torrent(pieces: usize, tail: usize) -> (Arc<Metainfo>, Vec<u8>) {
    let len = pieces * PIECE - tail;
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
    let hashes: Vec<u8> = data.chunks(PIECE).flat_map(crate::hash::sha1).collect();
    let mut info = Item::dict();
    info.insert("name", Item::str("sim"));
    info.insert("piece length", Item::Int(PIECE as i64));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(len as i64));
    let mut root = Item::dict();
    root.insert("info", info);
    (
        Arc::new(Metainfo::from_bytes(&root.encode()).unwrap()),
        data,
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Seeder,
    Corrupt,
    /// Handshakes, then never sends another byte.
    Silent,
    WrongHash,
    /// A leecher with nothing that never asks for anything.
    Idle,
}

struct Fake {
    kind: Kind,
    rx: Vec<u8>,
    shaken: bool,
    served: usize,
}

impl Fake {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            rx: Vec::new(),
            shaken: false,
            served: 0,
        }
    }

    fn respond(&mut self, meta: &Metainfo, data: &[u8], bytes: &[u8]) -> Vec<u8> {
        self.rx.extend_from_slice(bytes);
        let mut out = Vec::new();
        if !self.shaken {
            if self.rx.len() < wire::HANDSHAKE_LEN {
                return out;
            }
            self.rx.drain(..wire::HANDSHAKE_LEN);
            self.shaken = true;
            let mut hash = meta.info_hash.0;
            if self.kind == Kind::WrongHash {
                hash[0] ^= 1;
            }
            out.extend_from_slice(
                &Handshake {
                    reserved: [0; 8],
                    info_hash: hash,
                    peer_id: [self.kind as u8 + 1; 20],
                }
                .encode(),
            );
            if self.kind == Kind::Silent {
                return out;
            }
            if self.kind == Kind::Idle {
                let none = Bitfield::new(meta.piece_count());
                wire::encode(&Message::Bitfield(none.as_bytes()), &mut out);
                return out;
            }
            wire::encode(
                &Message::Bitfield(Bitfield::full(meta.piece_count()).as_bytes()),
                &mut out,
            );
            wire::encode(&Message::Unchoke, &mut out);
        }
        if matches!(self.kind, Kind::Silent | Kind::Idle) {
            self.rx.clear();
            return out;
        }
        while let Some((m, n)) = wire::decode(&self.rx, 1 << 20).unwrap() {
            if let Message::Request {
                index,
                begin,
                length,
            } = m
            {
                let start = index as usize * PIECE + begin as usize;
                let mut block = data[start..start + length as usize].to_vec();
                if self.kind == Kind::Corrupt {
                    block[0] ^= 0xff;
                }
                self.served += 1;
                wire::encode(
                    &Message::Piece {
                        index,
                        begin,
                        data: &block,
                    },
                    &mut out,
                );
            }
            self.rx.drain(..n);
        }
        out
    }
}

/// The simulated network and storage: the session's [`driver::Shell`] in these tests.
struct Net {
    meta: Arc<Metainfo>,
    data: Vec<u8>,
    fakes: HashMap<SocketAddr, Fake>,
    conns: HashMap<usize, SocketAddr>,
    closed: Vec<(SocketAddr, CloseReason)>,
    completed: bool,
    want_peers: usize,
    verified: u32,
    /// The fakes' answers, delivered after the writes.
    replies: Vec<(usize, Vec<u8>)>,
    wrote: bool,
    /// The session handed over fetched metadata.
    got_metadata: bool,
    /// DHT nodes peers told of (`port` messages).
    dht_nodes: Vec<SocketAddr>,
    /// A disk that falls behind: verified pieces wait here, unwritten, until the test lets
    /// them go ([`driver::Stored::Later`]).
    slow_disk: Option<Vec<(u32, Vec<u8>)>>,
}

impl driver::Shell for Net {
    type Error = std::convert::Infallible;

    fn dial(&mut self, key: usize, addr: SocketAddr) -> driver::Dial {
        self.conns.insert(key, addr);
        driver::Dial::Connected
    }

    fn close(&mut self, key: usize, reason: &CloseReason) {
        let addr = self.conns.remove(&key).unwrap();
        self.closed.push((addr, reason.clone()));
    }

    fn store(&mut self, index: u32, data: Vec<u8>) -> Result<driver::Stored, Self::Error> {
        let ok = crate::hash::sha1(&data) == self.meta.pieces[index as usize];
        self.verified += u32::from(ok);
        if let (true, Some(waiting)) = (ok, &mut self.slow_disk) {
            waiting.push((index, data));
            return Ok(driver::Stored::Later);
        }
        Ok(driver::Stored::Now(ok, data))
    }

    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), Self::Error> {
        let start = block.index as usize * PIECE + block.begin as usize;
        into.extend_from_slice(&self.data[start..start + block.len as usize]);
        Ok(())
    }

    fn want_peers(&mut self) {
        self.want_peers += 1;
    }

    fn dht_node(&mut self, addr: SocketAddr) {
        self.dht_nodes.push(addr);
    }

    fn completed(&mut self) -> Result<(), Self::Error> {
        self.completed = true;
        Ok(())
    }

    fn metadata(&mut self, info: Vec<u8>) -> Result<driver::Installed, Self::Error> {
        let meta = Metainfo::from_info(&info, &[]).expect("the fakes serve valid metadata");
        assert_eq!(meta.info_hash, self.meta.info_hash);
        self.got_metadata = true;
        Ok((
            Arc::new(meta),
            Bitfield::new(self.meta.piece_count()),
            Vec::new(),
        ))
    }

    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize> {
        self.wrote = true;
        let addr = self.conns[&key];
        let reply = self
            .fakes
            .get_mut(&addr)
            .unwrap()
            .respond(&self.meta, &self.data, bytes);
        if !reply.is_empty() {
            self.replies.push((key, reply));
        }
        Some(bytes.len())
    }
}

struct Sim {
    s: Session,
    net: Net,
    now: Instant,
}

impl std::ops::Deref for Sim {
    type Target = Net;
    fn deref(&self) -> &Net {
        &self.net
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Net {
        &mut self.net
    }
}

impl Sim {
    fn new(pieces: usize, kinds: &[Kind]) -> Self {
        Self::with(pieces, kinds, Config::default())
    }

    fn with(pieces: usize, kinds: &[Kind], config: Config) -> Self {
        let (meta, data) = torrent(pieces, 1000);
        let s = Session::new(
            &meta,
            Bitfield::new(meta.piece_count()),
            *b"-BM0100-simulation00",
            config,
            42,
        );
        let mut sim = Sim {
            s,
            net: Net {
                meta,
                data,
                fakes: HashMap::new(),
                conns: HashMap::new(),
                closed: Vec::new(),
                completed: false,
                want_peers: 0,
                verified: 0,
                replies: Vec::new(),
                wrote: false,
                got_metadata: false,
                dht_nodes: Vec::new(),
                slow_disk: None,
            },
            now: Instant::now(),
        };
        let addrs: Vec<SocketAddr> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let a: SocketAddr = format!("10.0.0.{}:6881", i + 1).parse().unwrap();
                sim.fakes.insert(a, Fake::new(*k));
                a
            })
            .collect();
        sim.s.add_peers(addrs, sim.now);
        sim
    }

    /// Moves bytes and actions until nothing happens. Only the peers the session names are
    /// written to, as in the engine: a write it forgets to announce stalls the simulation
    /// and fails the test.
    fn settle(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..10_000 {
            let Ok(acted) = driver::run_actions(&mut self.s, &mut self.net, &mut buf, self.now);
            self.net.wrote = false;
            driver::flush_writes(&mut self.s, &mut self.net, self.now);
            let moved = acted > 0 || self.net.wrote;
            for (key, reply) in std::mem::take(&mut self.net.replies) {
                self.s.received(key, &reply, self.now);
            }
            if !moved {
                return;
            }
        }
        panic!("the simulation did not settle");
    }
}

#[test]
fn downloads_everything_from_one_seeder() {
    let mut sim = Sim::new(20, &[Kind::Seeder]);
    sim.settle();
    assert!(sim.completed);
    assert_eq!(sim.verified, 20);
    assert!(sim.s.is_complete());
    let stats = sim.s.stats(sim.now);
    assert_eq!(stats.downloaded, sim.data.len() as u64);
    assert_eq!(stats.wasted, 0);
    assert_eq!(sim.s.left(sim.data.len() as u64), 0);
}

/// Backpressure: pieces on their way to a disk that falls behind keep their buffers, which
/// count in the piece-buffer budget, so no block is requested past it; each piece written
/// lets one more in, and the download completes at the disk's pace.
#[test]
fn a_disk_that_falls_behind_holds_the_requests_to_the_piece_buffer_budget() {
    let config = Config {
        max_partial_bytes: 4 * PIECE as u64,
        ..Config::default()
    };
    let mut sim = Sim::with(20, &[Kind::Seeder, Kind::Seeder], config);
    sim.slow_disk = Some(Vec::new());
    sim.settle();
    let blocks_per_piece = PIECE / wire::BLOCK as usize;
    let served = |sim: &Sim| sim.fakes.values().map(|f| f.served).sum::<usize>();
    assert_eq!(
        sim.slow_disk.as_ref().unwrap().len(),
        4,
        "the budget: 4 pieces"
    );
    assert_eq!(served(&sim), 4 * blocks_per_piece, "no block asked past it");
    let mut written = 0;
    while let Some((index, buf)) = sim.slow_disk.as_mut().unwrap().pop() {
        assert!(!sim.completed);
        let now = sim.now;
        sim.s.recycle(buf);
        sim.s.piece_result(index, true, &[], now);
        written += 1;
        sim.settle();
        let held = sim.slow_disk.as_ref().unwrap().len();
        assert!(held <= 4, "{held} pieces held");
    }
    assert!(sim.completed);
    assert_eq!(written, 20);
    assert!(sim.s.is_complete());
}

#[test]
fn only_wanted_pieces_are_fetched_and_wanting_more_resumes_the_download() {
    use crate::picker::SKIP;
    let mut sim = Sim::new(20, &[Kind::Seeder]);
    // Pieces 5..15 not wanted, 0..5 low, the rest high.
    let tiers: Vec<u8> = (0..20)
        .map(|i| match i {
            0..5 => 2,
            5..15 => SKIP,
            _ => 0,
        })
        .collect();
    let now = sim.now;
    sim.s.set_piece_tiers(tiers, now);
    sim.settle();
    assert!(sim.completed, "done with the wanted pieces");
    assert!(sim.s.is_done() && !sim.s.is_complete());
    let have: Vec<u32> = sim.s.have().ones().collect();
    assert_eq!(have, (0..5).chain(15..20).collect::<Vec<u32>>());
    let p = PIECE as u64;
    assert_eq!(sim.s.stats(now).downloaded, 10 * p - 1000);
    assert_eq!(sim.s.wanted_bytes(), (10 * p - 1000, 0));
    // The seeder is no longer interesting: we told it so.
    assert!(sim.s.peers.iter().all(|(_, p)| !p.conn.am_interested));

    sim.completed = false;
    sim.s.set_piece_tiers(Vec::new(), now);
    assert!(!sim.s.is_done());
    sim.settle();
    assert!(sim.completed && sim.s.is_complete());
    assert_eq!(sim.s.stats(now).downloaded, 20 * p - 1000);
}

#[test]
fn a_corrupt_peer_is_banned_and_the_good_one_finishes() {
    let mut sim = Sim::new(30, &[Kind::Corrupt, Kind::Seeder]);
    sim.settle();
    assert!(sim.completed, "download finished from the good peer");
    let bad: SocketAddr = "10.0.0.1:6881".parse().unwrap();
    assert!(
        sim.closed
            .iter()
            .any(|(a, r)| *a == bad && *r == CloseReason::Banned),
        "{:?}",
        sim.closed
    );
    assert_eq!(sim.s.stats(sim.now).banned, 1);
    // A banned peer is never dialled again.
    sim.s.add_peers([bad], sim.now + Duration::from_secs(3600));
    assert!(sim.s.poll_action().is_none());
}

#[test]
fn wrong_torrent_and_self_connections_are_dropped() {
    let mut sim = Sim::new(4, &[Kind::WrongHash]);
    sim.settle();
    assert_eq!(sim.closed.len(), 1);
    assert_eq!(sim.closed[0].1, CloseReason::OtherTorrent);

    let (meta, _) = torrent(4, 0);
    let id = *b"-BM0100-selfselfself";
    let mut s = Session::new(&meta, Bitfield::new(4), id, Config::default(), 1);
    let now = Instant::now();
    let key = s.accept("10.0.0.9:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: id,
    };
    s.received(key, &hs.encode(), now);
    assert!(matches!(
        s.poll_action(),
        Some(Action::Close {
            reason: CloseReason::Ourselves,
            ..
        })
    ));
    // Its address is now known as ours and never dialled.
    s.add_peers(["10.0.0.9:1".parse().unwrap()], now);
    assert!(s.poll_action().is_none());
}

fn active_peer(pieces: usize) -> (Session, usize, Instant) {
    let (meta, _) = torrent(pieces, 0);
    let mut s = Session::new(
        &meta,
        Bitfield::new(meta.piece_count()),
        *b"-BM0100-hostile00000",
        Config::default(),
        1,
    );
    let now = Instant::now();
    let key = s.accept("10.0.0.7:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: [9; 20],
    };
    s.received(key, &hs.encode(), now);
    assert!(s.poll_action().is_none());
    (s, key, now)
}

fn closed_because(s: &mut Session) -> CloseReason {
    match s.poll_action() {
        Some(Action::Close { reason, .. }) => reason,
        other => panic!("expected a close, got {other:?}"),
    }
}

#[test]
fn hostile_messages_drop_the_peer_not_the_client() {
    let no_such = |message, index| Violation::NoSuchPiece { message, index };
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (
            vec![0xff, 0xff, 0xff, 0xff],
            Violation::Wire(WireError::TooLong(u32::MAX)),
        ),
        (
            [&[0, 0, 0, 2, 5][..], &[0xff]].concat(),
            Violation::Bitfield(BitfieldError::WrongLength {
                expected: 2,
                found: 1,
            }),
        ),
        (
            [&[0, 0, 0, 3, 5][..], &[0xff, 0xff]].concat(),
            Violation::Bitfield(BitfieldError::SpareBitsSet),
        ),
        (
            {
                let mut m = Vec::new();
                wire::encode(&Message::Have(10), &mut m);
                m
            },
            no_such("have", 10),
        ),
        (
            {
                let mut m = Vec::new();
                wire::encode(
                    &Message::Request {
                        index: 99,
                        begin: 0,
                        length: 16384,
                    },
                    &mut m,
                );
                m
            },
            no_such("request", 99),
        ),
        (
            {
                let mut m = Vec::new();
                wire::encode(
                    &Message::Piece {
                        index: 77,
                        begin: 0,
                        data: b"x",
                    },
                    &mut m,
                );
                m
            },
            no_such("block", 77),
        ),
        (
            b"\x13BitTorrent protocol".to_vec(),
            Violation::Wire(WireError::TooLong(0x1342_6974)),
        ),
        (
            // Fast and extended messages from a peer that set neither bit.
            vec![0, 0, 0, 1, 0x0E],
            Violation::FastWithoutBit("have_all"),
        ),
        (vec![0, 0, 0, 3, 20, 0, b'x'], Violation::ExtendedWithoutBit),
    ];
    for (bytes, expected) in cases {
        let (mut s, key, now) = active_peer(10);
        s.received(key, &bytes, now);
        assert_eq!(closed_because(&mut s), CloseReason::Protocol(expected));
        assert_eq!(s.stats(now).connected, 0);
    }
}

#[test]
fn blocks_of_withdrawn_requests_are_forgiven_but_no_more() {
    let (mut s, key, now) = active_peer(10);
    let mut m = Vec::new();
    wire::encode(&Message::Bitfield(Bitfield::full(10).as_bytes()), &mut m);
    wire::encode(&Message::Unchoke, &mut m);
    s.received(key, &m, now);
    let asked: Vec<BlockRef> = s.peers[key].conn.requests.iter().map(|(r, _)| *r).collect();
    assert!(asked.len() >= 8);
    // It chokes us, which discards our requests; its blocks in flight still arrive.
    let mut m = Vec::new();
    wire::encode(&Message::Choke, &mut m);
    for r in &asked {
        let data = vec![0; r.len as usize];
        wire::encode(
            &Message::Piece {
                index: r.index,
                begin: r.begin,
                data: &data,
            },
            &mut m,
        );
    }
    s.received(key, &m, now);
    assert!(
        s.poll_action().is_none(),
        "late blocks are not misbehaviour"
    );
    // Beyond those, 65 blocks nobody asked for are.
    let mut m = Vec::new();
    for _ in 0..65 {
        wire::encode(
            &Message::Piece {
                index: asked[0].index,
                begin: asked[0].begin,
                data: &vec![0; asked[0].len as usize],
            },
            &mut m,
        );
    }
    s.received(key, &m, now);
    assert_eq!(
        closed_because(&mut s),
        CloseReason::Protocol(Violation::UnaskedBlocks)
    );
}

#[test]
fn a_stream_of_unasked_blocks_is_dropped() {
    let (mut s, key, now) = active_peer(10);
    let mut m = Vec::new();
    for _ in 0..100 {
        wire::encode(
            &Message::Piece {
                index: 1,
                begin: 0,
                data: &[0; 16],
            },
            &mut m,
        );
    }
    s.received(key, &m, now);
    assert_eq!(
        closed_because(&mut s),
        CloseReason::Protocol(Violation::UnaskedBlocks)
    );
}

#[test]
fn silent_peers_are_dropped_after_two_minutes_and_more_are_asked_for() {
    let mut sim = Sim::new(8, &[Kind::Silent, Kind::Silent, Kind::Silent]);
    sim.settle();
    assert_eq!(sim.s.stats(sim.now).connected, 3);
    sim.now += Duration::from_secs(119);
    sim.s.handle_timeout(sim.now);
    sim.settle();
    assert_eq!(sim.s.stats(sim.now).alive, 3);
    sim.now += Duration::from_secs(1);
    sim.s.handle_timeout(sim.now);
    assert_eq!(sim.s.stats(sim.now).alive, 0);
    sim.settle();
    assert_eq!(sim.closed.len(), 3);
    assert!(sim.closed.iter().all(|(_, r)| *r == CloseReason::Silent));
    assert!(sim.want_peers >= 1);
}

#[test]
fn keepalives_are_sent_after_90_quiet_seconds() {
    let (mut s, key, now) = active_peer(10);
    s.sent(key, s.tx(key).len(), now);
    s.handle_timeout(now + Duration::from_secs(89));
    assert!(s.tx(key).is_empty());
    s.handle_timeout(now + Duration::from_secs(90));
    assert_eq!(s.tx(key), &[0, 0, 0, 0]);
}

#[test]
fn lost_requests_time_out_and_go_to_another_peer() {
    let mut sim = Sim::new(6, &[Kind::Seeder]);
    // Let the first peer handshake and get its requests, but never deliver the blocks.
    let (key, addr) = loop {
        if let Action::Connect { key, addr } = sim.s.poll_action().unwrap() {
            break (key, addr);
        }
    };
    sim.s.connected(key, sim.now);
    let hs = sim.s.tx(key).to_vec();
    sim.s.sent(key, hs.len(), sim.now);
    let net = &mut sim.net;
    let reply = net
        .fakes
        .get_mut(&addr)
        .unwrap()
        .respond(&net.meta, &net.data, &hs);
    sim.s.received(key, &reply, sim.now);
    let asked = sim.s.tx(key).to_vec();
    sim.s.sent(key, asked.len(), sim.now);
    assert!(asked.len() > 17, "requests were sent");
    // 30 s later they are given up and asked of a second seeder, which completes.
    sim.now += Duration::from_secs(31);
    sim.fakes
        .insert("10.0.0.2:6881".parse().unwrap(), Fake::new(Kind::Seeder));
    sim.conns.insert(key, addr);
    // The first peer stays connected and silent from now on.
    let mut silent = Fake::new(Kind::Silent);
    silent.shaken = true;
    sim.fakes.insert(addr, silent);
    sim.s.add_peers(["10.0.0.2:6881".parse().unwrap()], sim.now);
    sim.s.handle_timeout(sim.now);
    sim.settle();
    assert!(sim.completed);
}

/// A complete session and one connected leecher that has sent its handshake and interest.
fn seeding_session() -> (Session, usize, Instant, Vec<u8>, Arc<Metainfo>) {
    let (meta, data) = torrent(6, 1000);
    let have = Bitfield::full(meta.piece_count());
    let mut s = Session::new(&meta, have, *b"-BM0100-seedseedseed", Config::default(), 3);
    let now = Instant::now();
    let key = s.accept("10.0.0.20:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: [7; 20],
    };
    let mut m = hs.encode().to_vec();
    wire::encode(&Message::Bitfield(Bitfield::new(6).as_bytes()), &mut m);
    wire::encode(&Message::Interested, &mut m);
    s.received(key, &m, now);
    (s, key, now, data, meta)
}

fn request(index: u32, begin: u32, length: u32) -> Vec<u8> {
    let mut m = Vec::new();
    wire::encode(
        &Message::Request {
            index,
            begin,
            length,
        },
        &mut m,
    );
    m
}

/// Carries out Read actions from `data` and returns the messages sent to `key`.
fn serve_all(s: &mut Session, key: usize, data: &[u8], now: Instant) -> Vec<(u32, u32, Vec<u8>)> {
    let mut pieces = Vec::new();
    loop {
        let mut moved = false;
        while let Some(a) = s.poll_action() {
            if let Action::Read { key: k, block } = a {
                let start = block.index as usize * PIECE + block.begin as usize;
                s.block_read(k, block, &data[start..start + block.len as usize], now);
                moved = true;
            }
        }
        let tx = s.tx(key).to_vec();
        if !tx.is_empty() {
            moved = true;
            s.sent(key, tx.len(), now);
            let mut at = 0;
            while let Some((m, n)) = wire::decode(&tx[at..], 1 << 20).unwrap() {
                if let Message::Piece { index, begin, data } = m {
                    pieces.push((index, begin, data.to_vec()));
                }
                at += n;
            }
        }
        if !moved {
            return pieces;
        }
    }
}

#[test]
fn a_seed_unchokes_an_interested_leecher_and_serves_verified_blocks() {
    let (mut s, key, now, data, _) = seeding_session();
    // The handshake, our bitfield and an unchoke are queued.
    let tx = s.tx(key).to_vec();
    assert!(tx.ends_with(&[0, 0, 0, 1, 1]), "unchoke sent");
    s.sent(key, tx.len(), now);
    s.received(
        key,
        &[request(0, 0, 16384), request(5, 16384, 16384 - 1000)].concat(),
        now,
    );
    let got = serve_all(&mut s, key, &data, now);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (0, 0, data[..16384].to_vec()));
    let last = 5 * PIECE + 16384;
    assert_eq!(got[1].2, data[last..last + 16384 - 1000].to_vec());
    assert_eq!(s.uploaded(), 16384 * 2 - 1000);
}

#[test]
fn a_cancelled_request_that_is_still_queued_is_not_served() {
    let (mut s, key, now, data, _) = seeding_session();
    s.sent(key, s.tx(key).len(), now);
    // Twenty requests: fifteen go to storage at once, the last five wait in the queue.
    let mut reqs = Vec::new();
    for _ in 0..2 {
        for i in 0..5u32 {
            reqs.extend(request(i, 0, 16384));
            reqs.extend(request(i, 16384, 16384));
        }
    }
    let mut cancel = Vec::new();
    wire::encode(
        &Message::Cancel {
            index: 4,
            begin: 16384,
            length: 16384,
        },
        &mut cancel,
    );
    s.received(key, &[reqs, cancel].concat(), now);
    let got = serve_all(&mut s, key, &data, now);
    let served = got
        .iter()
        .filter(|(i, b, _)| *i == 4 && *b == 16384)
        .count();
    assert_eq!(got.len(), 19, "one of the twenty was cancelled");
    assert_eq!(
        served, 1,
        "the queued copy was cancelled, the one already read was sent"
    );
}

#[test]
fn a_slow_reader_gets_no_more_than_the_high_water_mark_buffered() {
    let (mut s, key, now, data, _) = seeding_session();
    s.sent(key, s.tx(key).len(), now);
    let mut reqs = Vec::new();
    for i in 0..6u32 {
        reqs.extend(request(i, 0, 16384));
        reqs.extend(request(i, 16384, if i == 5 { 16384 - 1000 } else { 16384 }));
    }
    for _ in 0..30 {
        s.received(key, &reqs, now);
        while let Some(a) = s.poll_action() {
            if let Action::Read { key: k, block } = a {
                let start = block.index as usize * PIECE + block.begin as usize;
                s.block_read(k, block, &data[start..start + block.len as usize], now);
            }
        }
        // Never sent: the peer reads nothing.
        assert!(
            s.tx(key).len() <= Config::default().tx_high_water,
            "{}",
            s.tx(key).len()
        );
    }
}

#[test]
fn unverified_and_invalid_requests_and_floods_drop_the_peer() {
    let bad = |index, begin, len| Violation::BadRequest { index, begin, len };
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (request(0, 0, 32 * 1024), bad(0, 0, 32 * 1024)),
        (request(5, 16384, 16384), bad(5, 16384, 16384)),
        (
            request(9, 0, 16384),
            Violation::NoSuchPiece {
                message: "request",
                index: 9,
            },
        ),
        // 500 are taken (15 go to storage at once, the high-water mark; the rest queue
        // up), the next ones refused; 4 x 500 refused in a row is a flood.
        (
            request(0, 0, 16384).repeat(2500),
            Violation::RequestFlood(2000),
        ),
    ];
    for (bytes, expected) in cases {
        let (mut s, key, now, _, _) = seeding_session();
        s.received(key, &bytes, now);
        let reason = loop {
            match s.poll_action() {
                Some(Action::Close { reason, .. }) => break reason,
                Some(_) => {}
                None => panic!("expected a close for {expected}"),
            }
        };
        assert_eq!(reason, CloseReason::Protocol(expected));
    }
    // A leecher asking a leecher for a piece it does not have.
    let (meta, _) = torrent(4, 0);
    let mut s = Session::new(
        &meta,
        Bitfield::new(4),
        *b"-BM0100-leechleech00",
        Config::default(),
        1,
    );
    let now = Instant::now();
    let key = s.accept("10.0.0.21:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: [8; 20],
    };
    let mut m = hs.encode().to_vec();
    wire::encode(&Message::Interested, &mut m);
    m.extend(request(0, 0, 16384));
    s.received(key, &m, now);
    assert!(
        matches!(s.poll_action(), Some(Action::Close { reason, .. }) if reason == CloseReason::Protocol(Violation::NotVerified(0)))
    );
}

#[test]
fn requests_while_choked_are_ignored() {
    let (meta, _) = torrent(4, 0);
    // Nobody gets a regular slot.
    let cfg = Config {
        upload_slots: 0,
        ..Config::default()
    };
    let mut s = Session::new(&meta, Bitfield::full(4), *b"-BM0100-chokechoke00", cfg, 1);
    let now = Instant::now();
    let key = s.accept("10.0.0.22:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: [0; 8],
        info_hash: meta.info_hash.0,
        peer_id: [9; 20],
    };
    s.received(key, &hs.encode(), now);
    // Not interested, so not unchoked: its requests are dropped without a reply.
    s.received(key, &request(0, 0, 16384), now);
    assert!(s.poll_action().is_none());
    assert_eq!(s.stats(now).connected, 1);
}

fn share_rule() -> Config {
    Config {
        min_share_bytes: 100_000,
        share_wait: Duration::from_secs(60),
        ..Config::default()
    }
}

#[test]
fn share_rule_lets_go_at_once_when_every_peer_is_a_seed() {
    let mut sim = Sim::with(10, &[Kind::Seeder, Kind::Seeder], share_rule());
    sim.settle();
    assert!(sim.completed);
    assert!(sim.s.holding().is_none());
}

#[test]
fn share_rule_holds_the_last_piece_until_the_wait_for_leechers_runs_out() {
    let mut sim = Sim::with(10, &[Kind::Seeder, Kind::Idle], share_rule());
    sim.settle();
    assert!(
        !sim.completed,
        "the last piece is held while a leecher is connected"
    );
    assert_eq!(sim.s.have().count(), 9);
    assert!(
        sim.s
            .holding()
            .unwrap()
            .starts_with("holding the last piece")
    );
    sim.now += Duration::from_secs(59);
    sim.s.handle_timeout(sim.now);
    sim.settle();
    assert!(!sim.completed);
    sim.now += Duration::from_secs(1);
    sim.s.handle_timeout(sim.now);
    sim.settle();
    assert!(
        sim.completed,
        "released after --share-wait without a request"
    );
}

#[test]
fn share_rule_is_met_by_uploads_from_earlier_runs() {
    let mut sim = Sim::with(10, &[Kind::Seeder, Kind::Idle], share_rule());
    sim.s.set_uploaded_before(100_000);
    sim.settle();
    assert!(sim.completed);
}

#[test]
fn a_later_bitfield_replaces_the_first_as_aria2c_sends_it() {
    let (mut s, key, now) = active_peer(10);
    let mut first = Bitfield::new(10);
    first.set(0);
    let mut second = Bitfield::new(10);
    second.set(1);
    second.set(2);
    let mut m = Vec::new();
    wire::encode(&Message::Bitfield(first.as_bytes()), &mut m);
    wire::encode(&Message::Bitfield(second.as_bytes()), &mut m);
    s.received(key, &m, now);
    assert!(s.poll_action().is_none(), "not a reason to drop the peer");
    assert_eq!(s.peers[key].has.ones().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.peers[key].interesting, 2);
}

/// How a dialled peer's connection ends in [`redials`].
#[derive(Clone, Copy)]
enum Ending {
    /// The connect fails.
    Refused,
    /// The peer handshakes, sends its bitfield (all pieces if `seed`), then closes.
    AfterHandshake { seed: bool },
    /// The peer handshakes, then breaks the protocol (a 4 GiB length prefix).
    Garbage,
}

/// The times (seconds from the start) at which one address is dialled over ten minutes of
/// 30 s ticks, each connection ending as `ending` says.
fn redials(pinned: bool, complete: bool, ending: Ending) -> Vec<u64> {
    let (meta, _) = torrent(4, 0);
    let have = if complete {
        Bitfield::full(meta.piece_count())
    } else {
        Bitfield::new(meta.piece_count())
    };
    let mut s = Session::new(&meta, have, *b"-BM0100-redial000000", Config::default(), 3);
    s.set_seeding(true);
    let addr: SocketAddr = "10.0.0.9:6881".parse().unwrap();
    let start = Instant::now();
    let mut now = start;
    if pinned {
        s.add_pinned_peers([addr], now);
    } else {
        s.add_peers([addr], now);
    }
    let mut dials = Vec::new();
    for _ in 0..20 {
        while let Some(a) = s.poll_action() {
            let Action::Connect { key, addr: a } = a else {
                continue;
            };
            assert_eq!(a, addr);
            dials.push((now - start).as_secs());
            if let Ending::Garbage = ending {
                s.connected(key, now);
                let hs = Handshake {
                    reserved: [0; 8],
                    info_hash: meta.info_hash.0,
                    peer_id: [7; 20],
                };
                s.received(key, &hs.encode(), now);
                s.received(key, &[0xff; 5], now);
                assert!(
                    matches!(s.poll_action(), Some(Action::Close { .. })),
                    "dropped for the garbage"
                );
                continue;
            }
            if let Ending::AfterHandshake { seed } = ending {
                s.connected(key, now);
                let hs = Handshake {
                    reserved: [0; 8],
                    info_hash: meta.info_hash.0,
                    peer_id: [7; 20],
                };
                let mut bytes = hs.encode().to_vec();
                let bits = if seed {
                    Bitfield::full(meta.piece_count())
                } else {
                    Bitfield::new(meta.piece_count())
                };
                wire::encode(&Message::Bitfield(bits.as_bytes()), &mut bytes);
                s.received(key, &bytes, now);
            }
            s.closed(key, now);
        }
        now += Duration::from_secs(30);
        s.handle_timeout(now);
    }
    dials
}

#[test]
fn a_failed_dial_is_tried_again_after_its_backoff_a_few_times() {
    let dials = redials(false, false, Ending::Refused);
    assert_eq!(dials, [0, 30, 90, 210], "the first dial and its retries");
    assert_eq!(dials.len() as u32, 1 + DIAL_RETRIES);
}

#[test]
fn a_peer_that_hangs_up_after_its_handshake_is_dialled_again() {
    let dials = redials(false, false, Ending::AfterHandshake { seed: true });
    assert_eq!(dials, [0, 30, 90, 210]);
}

#[test]
fn a_peer_that_broke_the_protocol_is_not_dialled_again_unless_pinned() {
    assert_eq!(redials(false, false, Ending::Garbage), [0]);
}

#[test]
fn a_pinned_peer_is_dialled_again_for_as_long_as_it_takes() {
    let endings = [
        Ending::Refused,
        Ending::AfterHandshake { seed: true },
        Ending::Garbage,
    ];
    for ending in endings {
        let dials = redials(true, false, ending);
        // Backoffs of 30, 60, then 120 s at most, with no end.
        assert_eq!(dials, [0, 30, 90, 210, 330, 450, 570]);
    }
}

#[test]
fn a_seed_does_not_redial_a_seed() {
    let dials = redials(true, true, Ending::AfterHandshake { seed: true });
    assert_eq!(dials, [0]);
    // A leecher it is.
    let dials = redials(false, true, Ending::AfterHandshake { seed: false });
    assert_eq!(dials, [0, 30, 90, 210]);
}

/// A shell that takes every byte written and reads blocks from `data`.
struct Sink<'a> {
    data: &'a [u8],
    out: Vec<u8>,
}

impl driver::Shell for Sink<'_> {
    type Error = std::convert::Infallible;

    fn dial(&mut self, _: usize, _: SocketAddr) -> driver::Dial {
        driver::Dial::Failed
    }

    fn close(&mut self, _: usize, reason: &CloseReason) {
        panic!("closed: {reason}");
    }

    fn store(&mut self, _: u32, data: Vec<u8>) -> Result<driver::Stored, Self::Error> {
        Ok(driver::Stored::Now(true, data))
    }

    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), Self::Error> {
        let start = block.index as usize * PIECE + block.begin as usize;
        into.extend_from_slice(&self.data[start..start + block.len as usize]);
        Ok(())
    }

    fn want_peers(&mut self) {}

    fn dht_node(&mut self, _: SocketAddr) {}

    fn completed(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn metadata(&mut self, _: Vec<u8>) -> Result<driver::Installed, Self::Error> {
        unreachable!("a session made from a torrent fetches no metadata")
    }

    fn write(&mut self, _: usize, bytes: &[u8]) -> Option<usize> {
        self.out.extend_from_slice(bytes);
        Some(bytes.len())
    }
}

#[test]
fn one_drain_serves_every_queued_request_while_the_socket_takes_it() {
    let (mut s, key, now, data, _) = seeding_session();
    while s.poll_action().is_some() {}
    s.sent(key, s.tx(key).len(), now);
    // 100 requests in one read; 16 blocks fit under the high-water mark at a time.
    let mut asks = Vec::new();
    for i in 0..100u32 {
        let b = i % 12;
        let (index, begin) = (b / 2, (b % 2) * 16384);
        let len = if b == 11 { 16384 - 1000 } else { 16384 };
        asks.extend(request(index, begin, len));
    }
    s.received(key, &asks, now);
    let mut shell = Sink {
        data: &data,
        out: Vec::new(),
    };
    let mut buf = Vec::new();
    // The engine runs the actions after every read, then drains before it sleeps: the
    // first round of the drain begins with no action, and its write queues the next reads.
    let Ok(_) = driver::run_actions(&mut s, &mut shell, &mut buf, now);
    let Ok(left) = driver::drain(&mut s, &mut shell, &mut buf, now, 64);
    assert!(!left && !s.has_actions());
    let mut blocks = 0;
    let mut at = 0;
    while let Some((m, n)) = wire::decode(&shell.out[at..], 1 << 20).unwrap() {
        at += n;
        blocks += usize::from(matches!(m, Message::Piece { .. }));
    }
    assert_eq!(blocks, 100, "every request served before the shell sleeps");
}

#[test]
fn a_download_limit_paces_requests_to_the_rate() {
    let rate = 100_000u64;
    let config = Config {
        down_limit: Some(rate),
        ..Config::default()
    };
    let mut sim = Sim::with(64, &[Kind::Seeder], config);
    sim.settle();
    let start = sim.now;
    for secs in 1..=10u64 {
        sim.now = start + Duration::from_secs(secs);
        let now = sim.now;
        sim.s.handle_timeout(now);
        sim.settle();
        let got = sim.s.stats(now).downloaded;
        // A second's worth banked at the start, one block of debt: never more.
        let most = rate * (secs + 1) + 16_384;
        assert!(got <= most, "{got} bytes after {secs} s at {rate} B/s");
        assert!(
            got >= rate * secs - 2 * PIECE as u64,
            "{got} bytes after {secs} s: stalled"
        );
    }
    assert!(!sim.completed, "2 MiB at 100 kB/s takes more than 10 s");
    // Lifted, the rest comes at once.
    sim.s.set_rate_limits(None, None, sim.now);
    let now = sim.now + Duration::from_secs(1);
    sim.now = now;
    sim.s.handle_timeout(now);
    sim.settle();
    assert!(sim.completed);
}

#[test]
fn an_upload_limit_paces_the_blocks_read_for_peers() {
    let (mut s, key, now, data, _) = seeding_session();
    let rate = 50_000u64;
    s.set_rate_limits(None, Some(rate), now);
    let tx = s.tx(key).to_vec();
    s.sent(key, tx.len(), now);
    // 12 blocks asked for at once (the whole 6-piece torrent; the last block is short).
    let asks: Vec<u8> = (0..6u32)
        .flat_map(|i| {
            let second = if i == 5 { 16384 - 1000 } else { 16384 };
            [request(i, 0, 16384), request(i, 16384, second)].concat()
        })
        .collect();
    s.received(key, &asks, now);
    let mut served = serve_all(&mut s, key, &data, now).len() as u64;
    assert!(served * 16_384 <= rate + 16_384, "{served} blocks at once");
    for secs in 1..=3u64 {
        let t = now + Duration::from_secs(secs);
        s.handle_timeout(t);
        served += serve_all(&mut s, key, &data, t).len() as u64;
        assert!(
            served * 16_384 <= rate * (secs + 1) + 16_384,
            "{served} blocks after {secs} s"
        );
    }
    assert!(served >= 9, "{served} blocks in 3 s at 50 kB/s");
}

#[test]
fn driven_only_at_its_deadlines_a_session_keeps_its_timers_and_never_spins() {
    let mut sim = Sim::new(8, &[Kind::Silent, Kind::Silent, Kind::Idle]);
    sim.settle();
    assert_eq!(sim.s.stats(sim.now).connected, 3);
    let t0 = sim.now;
    // The first round is due with the first peer.
    assert_eq!(sim.s.poll_timeout(), Some(t0));
    sim.s.handle_timeout(sim.now);
    sim.settle();
    let mut wakes = 0;
    let mut all_closed_at = None;
    while sim.now < t0 + Duration::from_secs(600) {
        let due = sim.s.poll_timeout().expect("the choke round is always due");
        assert!(
            due > sim.now,
            "a deadline already handled came back: it would spin"
        );
        sim.now = due;
        sim.s.handle_timeout(sim.now);
        sim.settle();
        wakes += 1;
        if sim.closed.len() == 3 && all_closed_at.is_none() {
            all_closed_at = Some(sim.now - t0);
        }
    }
    // Silent from the handshake on: dropped at two minutes to the millisecond, not at
    // the next tick after.
    assert_eq!(all_closed_at, Some(Duration::from_secs(120)));
    assert!(
        sim.closed[..3]
            .iter()
            .all(|(_, r)| *r == CloseReason::Silent)
    );
    // Each is dialled again three times after its backoff (the simulation never answers),
    // each dial given up at its handshake's time limit.
    assert_eq!(sim.closed.len(), 12, "{:?}", sim.closed);
    assert!(
        sim.closed[3..]
            .iter()
            .all(|(_, r)| *r == CloseReason::HandshakeTimeout)
    );
    // With nobody left, peers are asked for every 5 s.
    assert!((80..=100).contains(&sim.want_peers), "{}", sim.want_peers);
    // Choke rounds every 10 s, keep-alives, the closings, redials, the asks for peers: no tick.
    assert!(wakes < 160, "{wakes} wakes in 10 minutes");
}
