//! What each fuzz target feeds btmini and what it checks, shared by the cargo-fuzz targets
//! (`tools/fuzz/fuzz_targets/`, nightly) and the corpus replay that `cargo test` runs on
//! stable (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and panics only
//! when btmini does, or when one of the properties stated in it does not hold.

use btmini::bencode::{self, Kind, Value};
use btmini::bitfield::Bitfield;
use btmini::ext::metadata::MetadataMsg;
use btmini::ext::pex::{self, Pex};
use btmini::ext::{ExtHandshake, Registry};
use btmini::geometry::Geometry;
use btmini::magnet::Magnet;
use btmini::metainfo::Metainfo;
use btmini::peer::CloseReason;
use btmini::picker::BlockRef;
use btmini::session::driver::{self, Dial, Shell, Stored};
use btmini::session::{Config, Session};
use btmini::storage::sidecar::Sidecar;
use btmini::tracker::http::ResponseReader;
use btmini::tracker::{response, udp};
use btmini::wire::{self, Handshake, Message};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A target: arbitrary bytes in, a panic for a bug.
pub(crate) type Target = fn(&[u8]);

/// The fuzz targets by name, in the order of `tools/fuzz/Cargo.toml`.
pub(crate) const TARGETS: &[(&str, Target)] = &[
    ("bencode", bencode),
    ("metainfo", metainfo),
    ("wire", wire),
    ("session", session),
    ("tracker_response", tracker_response),
    ("http_response", http_response),
    ("udp_reply", udp_reply),
    ("sidecar", sidecar),
    ("ext_handshake", ext_handshake),
    ("ut_pex", ut_pex),
    ("magnet", magnet),
    ("ut_metadata", ut_metadata),
    ("krpc", krpc),
    ("dht_node", dht_node),
    ("mse", mse),
    ("utp_packet", utp_packet),
    ("utp_stream", utp_stream),
    // The RPC is in builds with the `daemon` feature (btmini's, or this crate's own when
    // fuzzing, on by default).
    #[cfg(feature = "daemon")]
    ("rpc_http", rpc_http),
    #[cfg(feature = "daemon")]
    ("rpc_call", rpc_call),
];

/// Writes `v` back as bencode, keys in the order they came.
fn reencode(v: &Value<'_>, out: &mut Vec<u8>) {
    match v.kind() {
        Kind::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Kind::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Kind::List(items) => {
            out.push(b'l');
            items.iter().for_each(|i| reencode(i, out));
            out.push(b'e');
        }
        Kind::Dict(entries) => {
            out.push(b'd');
            for (k, v) in entries {
                out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                out.extend_from_slice(k);
                reencode(v, out);
            }
            out.push(b'e');
        }
    }
}

/// Bencode: whatever decodes is canonical (writing it back gives the same bytes, at every
/// level), and a prefix decode agrees with a whole decode.
pub(crate) fn bencode(data: &[u8]) {
    if let Ok((v, n)) = bencode::decode_prefix(data) {
        assert_eq!(v.raw(), &data[..n]);
        let mut out = Vec::new();
        reencode(&v, &mut out);
        assert_eq!(out, v.raw(), "not written back as read");
        assert_eq!(bencode::decode(&data[..n]).as_ref(), Ok(&v));
        assert_eq!(bencode::decode(data).is_ok(), n == data.len());
    } else {
        assert!(bencode::decode(data).is_err());
    }
}

/// A `.torrent`: a torrent that parses is consistent (piece count fits the length, files
/// tile the data, paths are safe, the info-hash is over the raw `info`), and its pieces
/// map onto its files without gaps.
pub(crate) fn metainfo(data: &[u8]) {
    let Ok(meta) = Metainfo::from_bytes(data) else {
        return;
    };
    let count = u64::from(meta.piece_count());
    assert!(count > 0 && meta.piece_length > 0);
    assert!(meta.total_length > (count - 1) * meta.piece_length);
    assert!(meta.total_length <= count * meta.piece_length);
    let mut offset = 0;
    for f in &meta.files {
        assert_eq!(f.offset, offset);
        offset += f.length;
        assert!(!f.path.is_empty());
        for c in &f.path {
            assert!(
                !c.is_empty() && c != "." && c != "..",
                "unsafe path {:?}",
                f.path
            );
            assert!(
                !c.contains('/') && !c.contains('\0'),
                "unsafe path {:?}",
                f.path
            );
        }
    }
    assert_eq!(offset, meta.total_length);
    let root = bencode::decode(data).expect("it parsed");
    let info = root.get(b"info").expect("it has an info dictionary");
    assert_eq!(btmini::hash::sha1(info.raw()), meta.info_hash.0);
    let geo = Geometry::new(&meta);
    let last = meta.piece_count() - 1;
    for i in [0, last / 2, last] {
        let spans = geo.spans(i);
        let len: u64 = spans.iter().map(|s| u64::from(s.len)).sum();
        assert_eq!(len, meta.piece_size(i), "spans of piece {i}");
        for s in spans {
            let f = &meta.files[s.file as usize];
            assert!(s.offset + u64::from(s.len) <= f.length);
        }
    }
}

/// The peer wire codec: the handshake and every message decoded from a stream are written
/// back byte for byte (unknown ids aside), and nothing is read past a length prefix.
pub(crate) fn wire(data: &[u8]) {
    let Some((&pieces, mut buf)) = data.split_first() else {
        return;
    };
    if let Ok(Some(h)) = Handshake::decode(buf) {
        assert_eq!(h.encode()[..], buf[..wire::HANDSHAKE_LEN]);
        buf = &buf[wire::HANDSHAKE_LEN..];
    }
    let max = wire::max_message_len(u32::from(pieces) * 997);
    while let Ok(Some((msg, n))) = wire::decode(buf, max) {
        assert!(n >= 4 && n <= buf.len() && n <= max as usize + 4);
        if !matches!(msg, Message::Unknown(_)) {
            let mut out = Vec::new();
            wire::encode(&msg, &mut out);
            assert_eq!(out, buf[..n], "{msg:?} not written back as read");
        }
        buf = &buf[n..];
    }
}

/// The torrent the session target downloads: 5 pieces of 32 KiB, the last one short.
/// Made once: hashing it for every input would be most of the work.
fn small_torrent() -> &'static (Metainfo, Vec<u8>) {
    static TORRENT: std::sync::OnceLock<(Metainfo, Vec<u8>)> = std::sync::OnceLock::new();
    TORRENT.get_or_init(make_small_torrent)
}

fn make_small_torrent() -> (Metainfo, Vec<u8>) {
    const PIECE: usize = 32 * 1024;
    let data: Vec<u8> = (0..5 * PIECE - 1000)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let hashes: Vec<u8> = data.chunks(PIECE).flat_map(btmini::hash::sha1).collect();
    let mut info = bencode::Item::dict();
    info.insert("name", bencode::Item::str("fuzz"));
    info.insert("piece length", bencode::Item::Int(PIECE as i64));
    info.insert("pieces", bencode::Item::bytes(&hashes));
    info.insert("length", bencode::Item::Int(data.len() as i64));
    let mut root = bencode::Item::dict();
    root.insert("info", info);
    (Metainfo::from_bytes(&root.encode()).expect("valid"), data)
}

/// Takes `n` bytes off the front of `input` (fewer at its end).
fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (a, b) = input.split_at(n.min(input.len()));
    *input = b;
    a
}

/// The session target's shell: two fake peers, hashing "storage" that remembers what it
/// verified, reads checked against it, writes cut to a budget when the script asks.
struct FuzzShell<'a> {
    meta: &'a Metainfo,
    content: &'a [u8],
    remotes: [Remote; 2],
    verified: Bitfield,
    completed: bool,
    /// Bytes the current round of writes may still take; `None`: all.
    budget: Option<usize>,
}

impl Shell for FuzzShell<'_> {
    type Error = std::convert::Infallible;

    fn dial(&mut self, key: usize, _: SocketAddr) -> Dial {
        self.remotes[1] = Remote::new(Some(key));
        Dial::Connected
    }

    fn close(&mut self, key: usize, _: &CloseReason) {
        for r in &mut self.remotes {
            if r.key == Some(key) {
                *r = Remote::new(None);
            }
        }
    }

    fn store(&mut self, index: u32, data: Vec<u8>) -> Result<Stored, Self::Error> {
        let ok = btmini::hash::sha1(&data) == self.meta.pieces[index as usize];
        if ok {
            self.verified.set(index);
        }
        Ok(Stored::Now(ok, data))
    }

    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), Self::Error> {
        assert!(
            self.verified.get(block.index),
            "a read of an unverified piece"
        );
        let start = u64::from(block.index) * self.meta.piece_length + u64::from(block.begin);
        let end = start + u64::from(block.len);
        assert!(end <= self.meta.total_length, "a read past the end");
        into.extend_from_slice(&self.content[start as usize..end as usize]);
        Ok(())
    }

    fn want_peers(&mut self) {}

    fn dht_node(&mut self, _: SocketAddr) {}

    fn completed(&mut self) -> Result<(), Self::Error> {
        self.completed = true;
        Ok(())
    }

    fn metadata(
        &mut self,
        info: Vec<u8>,
    ) -> Result<btmini::session::driver::Installed, Self::Error> {
        // The session checked it against the info-hash: it is this torrent's.
        let meta = Metainfo::from_info(&info, &[]).expect("hash-checked metadata");
        assert_eq!(meta.info_hash, self.meta.info_hash);
        Ok((std::sync::Arc::new(meta), self.verified.clone(), Vec::new()))
    }

    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize> {
        let n = self.budget.map_or(bytes.len(), |b| b.min(bytes.len()));
        if let Some(b) = &mut self.budget {
            *b -= n;
        }
        if let Some(r) = self.remotes.iter_mut().find(|r| r.key == Some(key)) {
            r.got(&bytes[..n], self.meta, self.content);
        }
        Some(n)
    }
}

/// What the session target's fake peer has seen of btmini.
#[derive(Default)]
struct Remote {
    key: Option<usize>,
    /// We sent it our handshake.
    shaken: bool,
    /// Bytes btmini sent it, not yet parsed.
    out: Vec<u8>,
    /// btmini's handshake has been parsed off `out`.
    heard: bool,
    /// btmini's requests, oldest first, not yet answered or cancelled.
    asked: std::collections::VecDeque<(u32, u32)>,
}

impl Remote {
    fn new(key: Option<usize>) -> Self {
        Self {
            key,
            ..Self::default()
        }
    }

    /// Takes what btmini sent: its requests are noted (and must lie inside the torrent),
    /// and every block it uploads must hold the torrent's data.
    fn got(&mut self, bytes: &[u8], meta: &Metainfo, content: &[u8]) {
        self.out.extend_from_slice(bytes);
        if !self.heard {
            if self.out.len() < wire::HANDSHAKE_LEN {
                return;
            }
            self.out.drain(..wire::HANDSHAKE_LEN);
            self.heard = true;
        }
        let mut used = 0;
        while let Ok(Some((msg, n))) = wire::decode(&self.out[used..], u32::MAX) {
            match msg {
                Message::Request {
                    index,
                    begin,
                    length,
                } => {
                    let end = u64::from(begin) + u64::from(length);
                    assert!(length > 0 && end <= meta.piece_size(index), "a bad request");
                    self.asked.push_back((index, begin));
                }
                Message::Piece { index, begin, data } => {
                    let start = u64::from(index) * meta.piece_length + u64::from(begin);
                    let at = start as usize;
                    assert_eq!(content.get(at..at + data.len()), Some(data), "a bad upload");
                }
                Message::Cancel { index, begin, .. } => self.asked.retain(|a| *a != (index, begin)),
                _ => {}
            }
            used += n;
        }
        self.out.drain(..used);
    }
}

/// A session with two peers (one that dialled us, one we dialled), driven by a script in
/// the input: raw bytes to a peer, well-formed messages (blocks with the torrent's real or
/// damaged data, for what btmini asked or not, so pieces complete and fail), time passing,
/// writes draining, peers leaving; or, started from the info-hash alone, the metadata
/// offered, sent (right or damaged), rejected and asked for first. The shell's part is
/// played as the engine plays it:
/// hashes checked, blocks read, connects succeeding. Checked: nothing panics, verified
/// pieces are only ever ones whose data hashed right, only verified pieces are read,
/// completion means every piece, and a peer's send buffer stays bounded.
pub(crate) fn session(data: &[u8]) {
    let (meta, content) = small_torrent();
    let content = content.as_slice();
    let Some((&setup, mut input)) = data.split_first() else {
        return;
    };
    let count = meta.piece_count();
    let mut have = Bitfield::new(count);
    for i in 0..count {
        if setup & (1 << i) != 0 && setup & 0x80 != 0 {
            have.set(i);
        }
    }
    let config = Config {
        min_share_bytes: u64::from(setup & 0x20) * 1000,
        ..Config::default()
    };
    let high_water = config.tx_high_water;
    // Without the have bits, bit 0 starts from the info-hash alone (a magnet link): the
    // metadata comes from the peers' ut_metadata answers, right or damaged.
    let magnet = setup & 0x81 == 0x01;
    let mut s = if magnet {
        Session::from_info_hash(meta.info_hash.0, [b'f'; 20], config, 7)
    } else {
        Session::new(meta, have.clone(), [b'f'; 20], config, 7)
    };
    s.set_seeding(setup & 0x40 != 0);
    let mut now = Instant::now();
    let incoming: SocketAddr = "10.1.0.1:6881".parse().unwrap();
    let outgoing: SocketAddr = "10.1.0.2:6881".parse().unwrap();
    let mut shell = FuzzShell {
        meta,
        content,
        remotes: [Remote::new(s.accept(incoming, now)), Remote::new(None)],
        verified: have,
        completed: false,
        budget: None,
    };
    let mut buf = Vec::new();
    s.add_pinned_peers([outgoing], now);
    // The peer that dialled us speaks plain BEP 3, the one we dial BEP 10 and Fast.
    let handshake = |id: u8| {
        Handshake {
            reserved: if id == 1 {
                [0; 8]
            } else {
                btmini::peer::OUR_RESERVED
            },
            info_hash: meta.info_hash.0,
            peer_id: [id; 20],
        }
        .encode()
    };
    loop {
        // The shell's part, played by the driver the engine uses.
        let Ok(_) = driver::run_actions(&mut s, &mut shell, &mut buf, now);
        if std::mem::take(&mut shell.completed) {
            assert!(shell.verified.is_full() && s.is_complete());
        }
        if s.has_metadata() {
            assert_eq!(
                s.have(),
                &shell.verified,
                "the session's pieces are the verified ones"
            );
        } else {
            assert!(!s.is_complete() && s.have().is_empty());
        }
        let remotes = &mut shell.remotes;
        for key in remotes.iter().filter_map(|r| r.key) {
            assert!(
                s.tx(key).len() <= high_water + 64 * 1024,
                "an unbounded send buffer"
            );
        }
        let Some((&op, rest)) = input.split_first() else {
            return;
        };
        input = rest;
        let which = usize::from(op & 1);
        let r = &mut remotes[which];
        let Some(key) = r.key else {
            // Gone: a new connection takes its place (we are dialled again; our dial is
            // retried by the session after its backoff).
            if which == 0 {
                *r = Remote::new(s.accept(incoming, now));
            }
            continue;
        };
        // Most scripts talk to a peer past its handshake: the fuzzer cannot guess the hash.
        if !r.shaken && op & 0x80 == 0 {
            r.shaken = true;
            s.received(key, &handshake(which as u8 + 1), now);
            continue;
        }
        match (op >> 1) & 7 {
            0..=2 => {
                let n = usize::from(take(&mut input, 1).first().copied().unwrap_or(0));
                s.received(key, take(&mut input, n * 4), now);
            }
            3 => {
                // A block, its data right unless asked otherwise: the one btmini asked for
                // first, or any.
                let b = take(&mut input, 4);
                let any = (
                    u32::from(b.first().copied().unwrap_or(0)) % (count + 1),
                    u32::from(b.get(1).copied().unwrap_or(0) & 3) * 16384,
                );
                let asked = if b.get(3).is_some_and(|x| x & 1 == 0) {
                    r.asked.pop_front()
                } else {
                    None
                };
                let (index, begin) = asked.unwrap_or(any);
                let start = (u64::from(index) * meta.piece_length + u64::from(begin)) as usize;
                let end = (start + 16384).min(content.len());
                let mut block = content.get(start..end).unwrap_or(&[]).to_vec();
                if b.get(2).is_some_and(|x| x & 1 != 0) && !block.is_empty() {
                    block[0] ^= 1;
                }
                let mut bytes = Vec::new();
                let msg = Message::Piece {
                    index,
                    begin,
                    data: &block,
                };
                wire::encode(&msg, &mut bytes);
                s.received(key, &bytes, now);
            }
            4 => {
                // A well-formed message of any other kind.
                let b = take(&mut input, 5);
                let at = |i: usize| u32::from(b.get(i).copied().unwrap_or(0));
                let bits = [at(1) as u8];
                let pex_msg = Pex {
                    added: vec![(SocketAddr::from(([10, 2, 0, at(1) as u8], 6881)), 0)],
                    dropped: vec![],
                }
                .encode();
                let info = &meta.info_bytes;
                let ext_hs = format!(
                    "d1:md11:ut_metadatai3ee13:metadata_sizei{}ee",
                    if at(1) & 1 == 0 {
                        info.len() as u32
                    } else {
                        at(2) * 1000
                    }
                );
                let mut piece = btmini::ext::metadata::piece_of(info, at(1) % 2)
                    .unwrap_or(&[])
                    .to_vec();
                if at(2) & 1 != 0 && !piece.is_empty() {
                    piece[0] ^= 1;
                }
                let meta_msg = match at(3) % 3 {
                    0 => MetadataMsg::Data {
                        piece: at(1) % 2,
                        total_size: info.len() as u64,
                        data: &piece,
                    },
                    1 => MetadataMsg::Reject(at(1) % 2),
                    _ => MetadataMsg::Request(at(1) % 2),
                }
                .encode();
                let msg = match at(0) % 15 {
                    13 => Message::Extended {
                        id: 0,
                        payload: ext_hs.as_bytes(),
                    },
                    14 => Message::Extended {
                        id: btmini::ext::UT_METADATA,
                        payload: &meta_msg,
                    },
                    8 => Message::HaveAll,
                    9 => Message::Reject {
                        index: at(1) % (count + 1),
                        begin: (at(2) & 3) * 16384,
                        length: 16384,
                    },
                    10 => Message::AllowedFast(at(1) % (count + 1)),
                    11 => Message::Extended {
                        id: 0,
                        payload: b"d1:md6:ut_pexi1ee4:reqqi4ee",
                    },
                    12 => Message::Extended {
                        id: btmini::ext::UT_PEX,
                        payload: &pex_msg,
                    },
                    0 => Message::Choke,
                    1 => Message::Unchoke,
                    2 => Message::Interested,
                    3 => Message::NotInterested,
                    4 => Message::Have(at(1) % (count + 1)),
                    5 => Message::Bitfield(&bits),
                    6 => Message::Request {
                        index: at(1) % (count + 1),
                        begin: (at(2) & 3) * 16384,
                        length: if at(3) & 1 == 0 { 16384 } else { at(4) * 97 },
                    },
                    _ => Message::Cancel {
                        index: at(1) % (count + 1),
                        begin: (at(2) & 3) * 16384,
                        length: 16384,
                    },
                };
                let mut bytes = Vec::new();
                wire::encode(&msg, &mut bytes);
                s.received(key, &bytes, now);
            }
            5 => {
                let secs = take(&mut input, 1).first().copied().unwrap_or(1);
                now += Duration::from_secs(u64::from(secs));
                s.handle_timeout(now);
            }
            6 => {
                // Writes: everything the session queued goes out (or part, if asked).
                let part = take(&mut input, 1).first().copied();
                shell.budget = part.map(|p| usize::from(p) * 1024);
                driver::flush_writes(&mut s, &mut shell, now);
            }
            _ => {
                *r = Remote::new(None);
                s.closed(key, now);
            }
        }
    }
}

/// An HTTP tracker's announce body: a reply that parses has only real ports, and garbage
/// gives an error, never a panic.
pub(crate) fn tracker_response(data: &[u8]) {
    if let Ok(r) = response::parse_announce(data) {
        assert!(r.peers.iter().all(|p| p.port() != 0));
    }
    let _ = response::compact_v4(data);
    let _ = response::compact_v6(data);
}

/// The HTTP response reader, fed the input in pieces whose sizes the input's first byte
/// picks: the result does not depend on how the bytes were split.
pub(crate) fn http_response(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut r = ResponseReader::new();
        match r.feed(body) {
            Ok(None) => Some(r.eof()),
            Ok(Some(resp)) => Some(Ok(resp)),
            Err(_) => None,
        }
    };
    let mut r = ResponseReader::new();
    let mut split = None;
    for chunk in body.chunks(usize::from(step).max(1)) {
        match r.feed(chunk) {
            Ok(None) => {}
            Ok(Some(resp)) => {
                split = Some(Some(Ok(resp)));
                break;
            }
            Err(_) => {
                split = Some(None);
                break;
            }
        }
    }
    let split = split.unwrap_or_else(|| Some(r.eof()));
    match (&whole, &split) {
        (Some(Ok(a)), Some(Ok(b))) => assert_eq!(a, b),
        (Some(Ok(_)), _) | (_, Some(Ok(_))) => {
            panic!("fed whole: {whole:?}; fed in steps of {step}: {split:?}")
        }
        _ => {}
    }
}

/// A UDP tracker's datagram, for a connect or an announce, IPv4 or IPv6: checked against
/// its transaction id, never a panic; an announce reply keeps every peer it lists.
pub(crate) fn udp_reply(data: &[u8]) {
    let tid = data
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()));
    for ipv6 in [false, true] {
        if let Ok(Some(udp::Reply::Announced(r))) = udp::parse_reply(data, tid, ipv6) {
            let each = if ipv6 { 18 } else { 6 };
            assert!(r.peers.len() <= (data.len() - 20) / each);
        }
        let _ = udp::parse_reply(data, tid.wrapping_add(1), ipv6);
    }
}

/// The resume sidecar, with its checksum made right so the fuzzer gets past it: what
/// decodes is written back byte for byte.
pub(crate) fn sidecar(data: &[u8]) {
    let _ = Sidecar::decode(data);
    let mut fixed = data.to_vec();
    fixed.extend_from_slice(&btmini::hash::sha1(data));
    if let Ok(sc) = Sidecar::decode(&fixed) {
        assert_eq!(sc.encode(), fixed);
    }
}

/// The extended handshake (BEP 10): what decodes writes back and decodes to the same thing,
/// and a registry takes it in.
pub(crate) fn ext_handshake(data: &[u8]) {
    if let Ok(h) = ExtHandshake::decode(data) {
        let again = ExtHandshake::decode(&h.encode()).expect("our own handshake decodes");
        assert_eq!(again, h);
        let mut r = Registry::default();
        r.apply(h);
        assert!(r.shaken);
    }
}

/// A `ut_pex` message (BEP 11): at most the stated number of addresses, none with port 0,
/// and what decodes writes back and decodes to the same lists.
pub(crate) fn ut_pex(data: &[u8]) {
    if let Ok(p) = Pex::decode(data) {
        assert!(p.added.len() + p.dropped.len() <= pex::MAX_ADDRESSES);
        assert!(p.added.iter().all(|(a, _)| a.port() != 0));
        assert!(p.dropped.iter().all(|a| a.port() != 0));
        assert_eq!(
            Pex::decode(&p.encode()).expect("our own message decodes"),
            p
        );
    }
}

/// A magnet link: what parses has a hash and peers of the form HOST:PORT, and its canonical
/// link parses back to the same thing; nothing else panics.
pub(crate) fn magnet(data: &[u8]) {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Magnet::parse(link) {
        assert_eq!(m.hex().len(), 40);
        assert!(m.peers.iter().all(|p| p.rsplit_once(':').is_some()));
        assert_eq!(
            Magnet::parse(&m.to_link()).expect("the canonical link parses"),
            m
        );
    }
}

/// A `ut_metadata` message (BEP 9): what decodes writes back and decodes the same.
pub(crate) fn ut_metadata(data: &[u8]) {
    if let Ok(Some(m)) = MetadataMsg::decode(data) {
        let bytes = m.encode();
        assert_eq!(
            MetadataMsg::decode(&bytes).expect("our own message decodes"),
            Some(m)
        );
    }
}

/// A KRPC datagram: what decodes encodes to a datagram that decodes to the same message
/// (error texts aside, which are made printable), and nothing panics.
pub(crate) fn krpc(data: &[u8]) {
    use btmini::dht::krpc::{Body, Msg};
    let Ok(m) = Msg::decode(data) else {
        return;
    };
    let again = Msg::decode(&m.encode()).expect("our own encoding decodes");
    match (&m.body, &again.body) {
        (Body::Error { code: a, .. }, Body::Error { code: b, .. }) => assert_eq!(a, b),
        _ => assert_eq!(again, m),
    }
}

/// A DHT node fed arbitrary datagrams from a handful of sources, with time passing: every
/// datagram it sends is a KRPC message of at most 1,024 bytes, one input never makes it
/// send more than a reply and a ping, and nothing panics.
pub(crate) fn dht_node(data: &[u8]) {
    use btmini::dht::Id;
    use btmini::dht::krpc::Msg;
    use btmini::dht::node::{Config, Node};
    let start = Instant::now();
    let mut now = start;
    let config = Config {
        dual_stack: true,
        ..Config::default()
    };
    let mut node = Node::new(Id([0x55; 20]), config, now, 11);
    let boot = ["10.9.0.1:6881", "[fd00::1]:6881"].map(|a| a.parse().unwrap());
    node.bootstrap(&boot, now);
    node.get_peers(Id([0x42; 20]), Some(6881), now);
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        let l = take(&mut input, 2);
        let len = usize::from(u16::from_be_bytes([
            l.first().copied().unwrap_or(0),
            l.get(1).copied().unwrap_or(0),
        ])) % 1500;
        let datagram = take(&mut input, len);
        let port = 6881 + u16::from(op >> 6);
        let from = if op & 0x08 != 0 {
            SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(op % 4 + 1)], port))
        } else {
            SocketAddr::from(([10, 9, 0, op % 4 + 1], port))
        };
        if op & 0x20 != 0 {
            now += Duration::from_millis(u64::from(op & 0x1f) * 250);
            node.handle_timeout(now);
        }
        node.handle_datagram(now, from, datagram);
        let mut sent = 0;
        while let Some((_, bytes)) = node.poll_transmit() {
            assert!(bytes.len() <= 1024, "a datagram of {} bytes", bytes.len());
            Msg::decode(&bytes).expect("what the node sends decodes");
            sent += 1;
        }
        // A reply, a ping to a new querier, a lookup's next queries (ALPHA) and pings to
        // the other family's nodes (K) at most, or what the timeouts let out.
        assert!(sent <= 2 + 3 + 8 + 64, "{sent} datagrams for one input");
        while node.poll_event().is_some() {}
    }
    assert!(node.table().len() <= 160 * 8 && node.table6().len() <= 160 * 8);
    assert!(node.table().entries().all(|e| e.info.addr.is_ipv4()));
    assert!(node.table6().entries().all(|e| e.info.addr.is_ipv6()));
}

/// The RPC's request reader, fed in pieces whose sizes the first byte picks: the same
/// requests (or the same refusal) however the bytes were split, and never more held than
/// the caps allow.
#[cfg(feature = "daemon")]
pub(crate) fn rpc_http(data: &[u8]) {
    use btmini::rpc::http::{MAX_BODY, MAX_HEAD, RequestReader};
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let read = |step: usize| {
        let mut r = RequestReader::new();
        let mut got = Vec::new();
        for chunk in body.chunks(step.max(1)) {
            r.feed(chunk);
            loop {
                match r.take() {
                    Ok(Some(req)) => got.push(Ok(req)),
                    Ok(None) => break,
                    Err(e) => {
                        got.push(Err(e));
                        return got;
                    }
                }
            }
            // Held: a head in the making, or one request's body, and one read at most.
            assert!(r.buffered() <= MAX_HEAD + MAX_BODY + step.max(1));
        }
        got
    };
    let whole = read(body.len());
    let split = read(usize::from(step));
    // A refusal may come sooner when the bytes come one by one (a head over the cap is
    // seen before its end): compare the requests read before it.
    let ok = |v: &Vec<Result<btmini::rpc::http::Request, btmini::rpc::http::HttpError>>| {
        v.iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ok(&whole), ok(&split));
    let n = a.len().min(b.len());
    assert_eq!(a[..n], b[..n], "fed whole and in steps of {step}");
    for req in a.iter().chain(&b) {
        assert!(req.body.len() <= MAX_BODY);
    }
}

/// The RPC's JSON: any bytes give a call or an error, and the reply to it is JSON that
/// echoes a numeric tag.
#[cfg(feature = "daemon")]
pub(crate) fn rpc_call(data: &[u8]) {
    use btmini::rpc::call;
    let r = call::parse(data);
    let tag = r.tag.clone();
    let reply = call::reply(r.call.map(|_| serde_json::Map::new()), r.tag);
    let v: serde_json::Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    assert!(v["result"].is_string());
    if let Some(t) = tag {
        assert_eq!(v["tag"], t);
    }
}

/// The MSE handshake. With the first byte's top bit, the bytes go straight to a responder
/// and to an initiator (garbage before and instead of a handshake). Otherwise a real
/// initiator and responder shake hands, with the first four bytes choosing the methods,
/// the pads and the delivery size, and the rest XORed into the initiator's bytes as they go:
/// RC4 is a XOR stream, so flips of the ciphertext are flips of the fields inside it.
pub(crate) fn mse(data: &[u8]) {
    use btmini::mse::{Initiator, Responder, req2};
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let ih = [7u8; 20];
    let lookup = |k: &[u8; 20]| (*k == req2(&ih)).then_some(ih);
    let chunk = usize::from(head[3]).max(1);
    if head[0] & 0x80 != 0 {
        let mut b = Responder::new(3, [2; 20], b"", b"");
        let mut a = Initiator::new(ih, 3, b"", [1; 20], b"", b"");
        for piece in rest.chunks(chunk) {
            let _ = b.handle(piece, lookup);
            let _ = a.handle(piece);
        }
        return;
    }
    let pad = usize::from(head[2]) * 2;
    let ia = &rest[..rest.len().min(68)];
    let mut a = Initiator::new(
        ih,
        u32::from(head[0] & 3),
        ia,
        [1; 20],
        &vec![0x11; pad],
        &vec![0x22; pad / 2],
    );
    let mut b = Responder::new(
        u32::from(head[1] & 3),
        [2; 20],
        &vec![0x33; pad / 3],
        &vec![0x44; pad / 4],
    );
    let mut flips = rest.iter().copied();
    let (mut done_a, mut done_b) = (false, false);
    for _ in 0..8 {
        let mut out = a.take_output();
        for (byte, f) in out.iter_mut().zip(&mut flips) {
            *byte ^= f;
        }
        for piece in out.chunks(chunk) {
            match b.handle(piece, lookup) {
                Err(_) => return,
                Ok(Some(e)) => {
                    assert_eq!(e.info_hash, ih);
                    done_b = true;
                }
                Ok(None) => {}
            }
        }
        for piece in b.take_output().chunks(chunk) {
            match a.handle(piece) {
                Err(_) => return,
                Ok(Some(_)) => done_a = true,
                Ok(None) => {}
            }
        }
        if done_a && done_b {
            return;
        }
    }
}

/// The uTP packet codec: what decodes encodes back to a datagram that decodes the same.
pub(crate) fn utp_packet(data: &[u8]) {
    use btmini::utp::packet::{decode, encode};
    let Ok(p) = decode(data) else {
        return;
    };
    assert!(p.sack.is_none_or(|s| !s.is_empty() && s.len() <= 32));
    // A selective ACK is sent in multiples of 4 bytes: pad what was read.
    let sack = p.sack.map(|s| {
        let mut v = s.to_vec();
        v.resize(s.len().div_ceil(4) * 4, 0);
        v
    });
    let mut out = Vec::new();
    encode(&p.header, sack.as_deref(), p.payload, &mut out);
    let q = decode(&out).expect("what we encode decodes");
    assert_eq!(q.header, p.header);
    assert_eq!(q.payload, p.payload);
}

/// A uTP connection fed hostile datagrams: the first byte picks dialling or answering a
/// SYN, then each datagram is a length byte and its bytes, with the clock moving by the
/// next byte's milliseconds. Whatever comes, it never holds more than its bounds and
/// always stops having datagrams to send.
pub(crate) fn utp_stream(data: &[u8]) {
    use btmini::utp::packet::{self, Header, Type, decode};
    use btmini::utp::{RECV_WINDOW, SEND_BUFFER, Stream};
    use std::time::{Duration, Instant};
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = if mode & 1 == 0 {
        Stream::connect(100, u16::from(mode) << 8, now)
    } else {
        let syn = Header {
            ty: Type::Syn,
            conn_id: 99,
            timestamp: 0,
            timestamp_diff: 0,
            wnd_size: u32::from(mode) << 12,
            seq_nr: u16::from(mode),
            ack_nr: 0,
        };
        let mut d = Vec::new();
        packet::encode(&syn, None, &[], &mut d);
        Stream::accept(&decode(&d).unwrap(), 1000, now)
    };
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let payload = vec![0x5a; 3000];
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (d, tail) = tail.split_at(len);
        rest = tail;
        if let Some((&ms, tail)) = rest.split_first() {
            now += Duration::from_millis(u64::from(ms) * 7);
            rest = tail;
        }
        s.write(&payload);
        if let Ok(p) = decode(d) {
            s.handle(now, &p);
        }
        s.handle_timeout(now);
        let mut sent = 0;
        while s.poll_transmit(now, &mut buf) {
            sent += 1;
            assert!(
                buf.len() <= btmini::utp::MAX_DATAGRAM,
                "a datagram of {}",
                buf.len()
            );
            assert!(sent < 10_000, "poll_transmit never stops");
        }
        s.read(&mut got);
        got.clear();
        assert!(s.held() <= RECV_WINDOW);
        assert!(s.buffered() <= SEND_BUFFER);
    }
}
