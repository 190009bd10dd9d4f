//! The session with peers that speak BEP 10, BEP 6 and BEP 11: what it sends them, how it
//! reads what they send, and what it refuses.

use super::*;
use crate::bencode::{self, Item};
use crate::ext::{self, ExtError};
use std::sync::Arc;

const PIECE: usize = 32 * 1024;
const BOTH: [u8; 8] = OUR_RESERVED;

fn torrent(pieces: usize, private: bool) -> Arc<Metainfo> {
    let data: Vec<u8> = (0..pieces * PIECE).map(|i| (i % 251) as u8).collect();
    let hashes: Vec<u8> = data.chunks(PIECE).flat_map(crate::hash::sha1).collect();
    let mut info = Item::dict();
    info.insert("name", Item::str("ext"));
    info.insert("piece length", Item::Int(PIECE as i64));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(data.len() as i64));
    if private {
        info.insert("private", Item::Int(1));
    }
    let mut root = Item::dict();
    root.insert("info", info);
    Arc::new(Metainfo::from_bytes(&root.encode()).unwrap())
}

/// Everything the session queued for `key`, as if sent.
fn drain(s: &mut Session, key: usize, now: Instant) -> Vec<u8> {
    let out = s.tx(key).to_vec();
    s.sent(key, out.len(), now);
    out
}

/// The messages in `bytes` (after a handshake, when `handshake`).
fn messages(mut bytes: &[u8], handshake: bool) -> Vec<Message<'_>> {
    if handshake {
        bytes = &bytes[wire::HANDSHAKE_LEN..];
    }
    let mut out = Vec::new();
    while let Some((m, n)) = wire::decode(bytes, 1 << 20).unwrap() {
        out.push(m);
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty());
    out
}

fn encode(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        wire::encode(m, &mut out);
    }
    out
}

fn ext_msg(id: u8, payload: &[u8]) -> Vec<u8> {
    encode(&[Message::Extended { id, payload }])
}

/// A session (complete, or with nothing) and a peer at `addr` that dialled it with
/// `reserved`, its handshake done; returns what the session sent it.
fn session_with(
    meta: &Arc<Metainfo>,
    complete: bool,
    reserved: [u8; 8],
    addr: &str,
    config: Config,
) -> (Session, usize, Instant, Vec<u8>) {
    let n = meta.piece_count();
    let have = if complete {
        Bitfield::full(n)
    } else {
        Bitfield::new(n)
    };
    let mut s = Session::new(meta, have, *b"-BM0100-extensions00", config, 5);
    s.set_listen_port(6881);
    let now = Instant::now();
    let key = s.accept(addr.parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved,
        info_hash: meta.info_hash.0,
        peer_id: [3; 20],
    };
    s.received(key, &hs.encode(), now);
    let out = drain(&mut s, key, now);
    (s, key, now, out)
}

#[test]
fn a_fast_extended_peer_gets_our_handshake_have_all_and_allowed_fast() {
    let meta = torrent(40, false);
    let (_, _, _, out) = session_with(&meta, true, BOTH, "10.0.0.5:5000", Config::default());
    let hs = Handshake::decode(&out).unwrap().unwrap();
    assert_eq!(hs.reserved, OUR_RESERVED);
    assert!(wire::has_bit(&hs.reserved, wire::RESERVED_FAST));
    assert!(wire::has_bit(&hs.reserved, wire::RESERVED_LTEP));
    let msgs = messages(&out, true);
    let Message::Extended { id: 0, payload } = msgs[0] else {
        panic!("the extended handshake first, got {:?}", msgs[0]);
    };
    let h = ext::ExtHandshake::decode(payload).unwrap();
    assert_eq!(h.ut_pex, Some(ext::UT_PEX));
    assert_eq!(h.ut_metadata, Some(ext::UT_METADATA));
    assert_eq!(h.reqq, Some(500));
    assert_eq!(h.port, Some(6881));
    assert_eq!(h.yourip, Some("10.0.0.5".parse().unwrap()));
    assert!(h.client.unwrap().starts_with("btmini "));
    assert!(!h.encryption, "`e` only when encryption is preferred");
    assert_eq!(msgs[1], Message::HaveAll);
    let allowed: Vec<u32> = msgs[2..]
        .iter()
        .map(|m| match m {
            Message::AllowedFast(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        allowed,
        crate::peer::allowed_fast_set([10, 0, 0, 5], &meta.info_hash.0, 40, 10)
    );
}

#[test]
fn a_plain_peer_gets_a_bitfield_and_no_extension_messages() {
    let meta = torrent(10, false);
    let (_, _, _, out) = session_with(&meta, true, [0; 8], "10.0.0.5:5000", Config::default());
    let msgs = messages(&out, true);
    assert_eq!(msgs, [Message::Bitfield(Bitfield::full(10).as_bytes())]);
    // With nothing to offer, a plain peer gets no bitfield, a Fast one have_none.
    let (_, _, _, out) = session_with(&meta, false, [0; 8], "10.0.0.5:5000", Config::default());
    assert!(messages(&out, true).is_empty());
    let fast_only = {
        let mut r = [0u8; 8];
        r[7] = 0x04;
        r
    };
    let (_, _, _, out) = session_with(&meta, false, fast_only, "10.0.0.5:5000", Config::default());
    assert_eq!(messages(&out, true), [Message::HaveNone]);
}

#[test]
fn a_private_torrent_offers_no_pex_and_refuses_it() {
    let meta = torrent(10, true);
    let (mut s, key, now, out) =
        session_with(&meta, true, BOTH, "10.0.0.5:5000", Config::default());
    let Message::Extended { id: 0, payload } = messages(&out, true)[0] else {
        panic!("no extended handshake");
    };
    let h = ext::ExtHandshake::decode(payload).unwrap();
    assert_eq!(h.ut_pex, None);
    s.received(key, &ext_msg(ext::UT_PEX, b"d5:added0:e"), now);
    assert_eq!(
        closed_because(&mut s),
        CloseReason::Protocol(Violation::UnknownExtension(ext::UT_PEX))
    );
}

fn closed_because(s: &mut Session) -> CloseReason {
    loop {
        match s.poll_action() {
            Some(Action::Close { reason, .. }) => return reason,
            Some(_) => {}
            None => panic!("expected a close"),
        }
    }
}

#[test]
fn hostile_extended_messages_drop_the_peer() {
    let meta = torrent(10, false);
    // Over the handshake's cap, under the message's.
    let big = format!("d1:v16500:{}e", "x".repeat(16_500));
    let cases: Vec<(Vec<u8>, Violation)> = vec![
        (
            ext_msg(0, big.as_bytes()),
            Violation::Extension(ExtError::HandshakeTooLarge(big.len())),
        ),
        (
            ext_msg(0, b"d1:md6:ut_pexi1e"),
            Violation::Extension(ExtError::Bencode(
                bencode::decode(b"d1:md6:ut_pexi1e").unwrap_err(),
            )),
        ),
        (ext_msg(7, b"de"), Violation::UnknownExtension(7)),
        (
            ext_msg(ext::UT_PEX, b"d5:added5:12345e"),
            Violation::Extension(ExtError::BadCompactList("added", 5)),
        ),
        (
            {
                let many = vec![7u8; 6 * 400];
                let mut d = Item::dict();
                d.insert("added", Item::bytes(&many));
                ext_msg(ext::UT_PEX, &d.encode())
            },
            Violation::Extension(ExtError::TooManyAddresses(400)),
        ),
        (
            encode(&[Message::Reject {
                index: 1,
                begin: 0,
                length: 16384,
            }]),
            Violation::UnexpectedReject,
        ),
    ];
    for (bytes, expected) in cases {
        let (mut s, key, now, _) =
            session_with(&meta, false, BOTH, "10.0.0.5:5000", Config::default());
        s.received(key, &bytes, now);
        assert_eq!(closed_because(&mut s), CloseReason::Protocol(expected));
        assert_eq!(s.stats(now).connected, 0);
    }
    // A PEX message with 10,000 addresses does not even fit a message.
    let many = vec![7u8; 6 * 10_000];
    let mut d = Item::dict();
    d.insert("added", Item::bytes(&many));
    let (mut s, key, now, _) = session_with(&meta, false, BOTH, "10.0.0.5:5000", Config::default());
    s.received(key, &ext_msg(ext::UT_PEX, &d.encode()), now);
    assert!(matches!(
        closed_because(&mut s),
        CloseReason::Protocol(Violation::Wire(wire::WireError::TooLong(_)))
    ));
}

#[test]
fn requests_past_our_reqq_are_rejected_and_cost_no_memory() {
    let meta = torrent(10, false);
    let (mut s, key, now, _) = session_with(&meta, true, BOTH, "10.0.0.5:5000", Config::default());
    s.received(key, &encode(&[Message::HaveNone, Message::Interested]), now);
    let unchoke = drain(&mut s, key, now);
    assert_eq!(messages(&unchoke, false), [Message::Unchoke]);
    let mut asks = Vec::new();
    for i in 0..600u32 {
        let (index, begin) = (i % 10, (i / 10 % 2) * 16384);
        asks.extend(encode(&[Message::Request {
            index,
            begin,
            length: 16384,
        }]));
    }
    s.received(key, &asks, now);
    let p = &s.peers[key].conn;
    assert_eq!(
        p.upload_queue.len() + p.reading,
        500,
        "the queue it was told of"
    );
    // The 100 past it are rejected, none served yet (the reads are the shell's).
    let rejects = messages(s.tx(key), false)
        .iter()
        .filter(|m| matches!(m, Message::Reject { .. }))
        .count();
    assert_eq!(rejects, 100);
    assert!(s.stats(now).connected == 1, "refused, not dropped");
}

#[test]
fn a_choke_from_a_fast_peer_keeps_our_requests_until_it_rejects_them() {
    let meta = torrent(10, false);
    let (mut s, key, now, _) = session_with(&meta, false, BOTH, "10.0.0.5:5000", Config::default());
    s.received(key, &encode(&[Message::HaveAll, Message::Unchoke]), now);
    let out = drain(&mut s, key, now);
    let asked: Vec<BlockRef> = messages(&out, false)
        .iter()
        .filter_map(|m| match *m {
            Message::Request {
                index,
                begin,
                length,
            } => Some(BlockRef {
                index,
                begin,
                len: length,
            }),
            _ => None,
        })
        .collect();
    assert!(asked.len() >= 8);
    s.received(key, &encode(&[Message::Choke]), now);
    assert_eq!(s.peers[key].conn.requests.len(), asked.len(), "still out");
    let rejects: Vec<Message> = asked
        .iter()
        .map(|r| Message::Reject {
            index: r.index,
            begin: r.begin,
            length: r.len,
        })
        .collect();
    s.received(key, &encode(&rejects), now);
    assert!(s.peers[key].conn.requests.is_empty());
    assert!(
        s.poll_action().is_none(),
        "rejects of our requests are fine"
    );
    // Every rejected block can be asked for again: it lets us fetch piece 3 while choked.
    s.received(key, &encode(&[Message::AllowedFast(3)]), now);
    let out = drain(&mut s, key, now);
    let again: Vec<u32> = messages(&out, false)
        .iter()
        .filter_map(|m| match m {
            Message::Request { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(again, [3, 3], "both blocks of piece 3, nothing else");
    // Without Fast, a choke withdraws everything (BEP 3) — the older test covers it.
}

#[test]
fn a_choked_fast_peer_is_rejected_except_for_its_allowed_fast_pieces() {
    let meta = torrent(40, false);
    let cfg = Config {
        upload_slots: 0,
        ..Config::default()
    };
    let (mut s, key, now, out) = session_with(&meta, true, BOTH, "10.0.0.5:5000", cfg);
    let allowed = match messages(&out, true)[2] {
        Message::AllowedFast(i) => i,
        ref other => panic!("{other:?}"),
    };
    let other = (0..40)
        .find(|i| !s.peers[key].conn.allowed_out.contains(i))
        .unwrap();
    s.received(key, &request(other), now);
    s.received(key, &request(allowed), now);
    assert_eq!(
        messages(s.tx(key), false),
        [Message::Reject {
            index: other,
            begin: 0,
            length: 16384
        }]
    );
    assert!(
        matches!(s.poll_action(), Some(Action::Read { block, .. }) if block.index == allowed),
        "the allowed-fast piece is read for it"
    );
}

fn request(index: u32) -> Vec<u8> {
    encode(&[Message::Request {
        index,
        begin: 0,
        length: 16384,
    }])
}

#[test]
fn the_pipeline_never_passes_the_peers_reqq() {
    let meta = torrent(40, false);
    let (mut s, key, now, _) = session_with(&meta, false, BOTH, "10.0.0.5:5000", Config::default());
    s.received(key, &ext_msg(0, b"d4:reqqi3ee"), now);
    s.received(key, &encode(&[Message::HaveAll, Message::Unchoke]), now);
    assert_eq!(s.peers[key].conn.requests.len(), 3);
}

/// A seed with a peer we dialled (10.0.0.1:7000), one that dialled us and stated its port
/// (10.0.0.2, port 7002), one that dialled us and stated none (10.0.0.3), and the PEX
/// peer (10.0.0.4) that offers `ut_pex`.
fn pex_swarm() -> (Session, [usize; 4], Instant) {
    let meta = torrent(10, false);
    let mut s = Session::new(
        &meta,
        Bitfield::new(10),
        *b"-BM0100-pexpexpexpex",
        Config::default(),
        5,
    );
    let now = Instant::now();
    let hs = |id: u8| {
        Handshake {
            reserved: BOTH,
            info_hash: meta.info_hash.0,
            peer_id: [id; 20],
        }
        .encode()
    };
    s.add_peers(["10.0.0.1:7000".parse().unwrap()], now);
    let Some(Action::Connect { key: k1, .. }) = s.poll_action() else {
        panic!("a dial");
    };
    s.connected(k1, now);
    s.received(k1, &hs(1), now);
    let k2 = s.accept("10.0.0.2:40000".parse().unwrap(), now).unwrap();
    s.received(k2, &hs(2), now);
    s.received(k2, &ext_msg(0, b"d1:pi7002ee"), now);
    let k3 = s.accept("10.0.0.3:40001".parse().unwrap(), now).unwrap();
    s.received(k3, &hs(3), now);
    let k4 = s.accept("10.0.0.4:40002".parse().unwrap(), now).unwrap();
    s.received(k4, &hs(4), now);
    s.received(k4, &ext_msg(0, b"d1:md6:ut_pexi9eee"), now);
    for k in [k1, k2, k3, k4] {
        drain(&mut s, k, now);
    }
    (s, [k1, k2, k3, k4], now)
}

fn pex_sent(s: &mut Session, key: usize, now: Instant) -> Vec<crate::ext::pex::Pex> {
    let out = drain(s, key, now);
    messages(&out, false)
        .iter()
        .filter_map(|m| match *m {
            Message::Extended { id: 9, payload } => Some(Pex::decode(payload).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn pex_tells_reachable_peers_at_most_once_a_minute() {
    let (mut s, [k1, _, _, k4], mut now) = pex_swarm();
    s.handle_timeout(now);
    let first = pex_sent(&mut s, k4, now);
    assert_eq!(first.len(), 1, "the first message goes at once");
    let mut added: Vec<(SocketAddr, u8)> = first[0].added.clone();
    added.sort();
    assert_eq!(
        added,
        [
            ("10.0.0.1:7000".parse().unwrap(), pex::FLAG_CONNECTABLE),
            ("10.0.0.2:7002".parse().unwrap(), 0),
        ],
        "the dialled peer and the one with a stated port; not the unreachable one, not itself"
    );
    // A peer leaves: nothing is said until the minute is over.
    s.closed(k1, now);
    for _ in 0..59 {
        now += Duration::from_secs(1);
        s.handle_timeout(now);
        assert!(pex_sent(&mut s, k4, now).is_empty());
    }
    now += Duration::from_secs(1);
    s.handle_timeout(now);
    let next = pex_sent(&mut s, k4, now);
    assert_eq!(next.len(), 1);
    assert!(next[0].added.is_empty());
    assert_eq!(next[0].dropped, ["10.0.0.1:7000".parse().unwrap()]);
    // Nothing changed since: no message at all.
    now += Duration::from_secs(61);
    s.handle_timeout(now);
    assert!(pex_sent(&mut s, k4, now).is_empty());
}

#[test]
fn pex_from_a_peer_gives_candidates_and_a_flood_drops_it() {
    let (mut s, [.., k4], now) = pex_swarm();
    while s.poll_action().is_some() {}
    let msg = Pex {
        added: vec![
            ("10.0.0.50:6881".parse().unwrap(), 0),
            ("10.0.0.51:6881".parse().unwrap(), pex::FLAG_SEED),
            ("[2001:db8::50]:6881".parse().unwrap(), pex::FLAG_UTP),
        ],
        dropped: vec![],
    };
    let payload = msg.encode();
    // The IPv6 one travels in `added6` (BEP 11), and is dialled like the others.
    assert!(payload.windows(8).any(|w| w == b"6:added6"));
    s.received(k4, &ext_msg(ext::UT_PEX, &payload), now);
    let mut dialled = Vec::new();
    while let Some(a) = s.poll_action() {
        if let Action::Connect { addr, .. } = a {
            dialled.push(addr.to_string());
        }
    }
    assert_eq!(
        dialled,
        ["10.0.0.50:6881", "10.0.0.51:6881", "[2001:db8::50]:6881"]
    );
    // Three messages in a minute are allowed; the fourth is a flood.
    s.received(k4, &ext_msg(ext::UT_PEX, &Pex::default().encode()), now);
    s.received(k4, &ext_msg(ext::UT_PEX, &Pex::default().encode()), now);
    assert!(s.poll_action().is_none());
    s.received(k4, &ext_msg(ext::UT_PEX, &Pex::default().encode()), now);
    assert_eq!(
        closed_because(&mut s),
        CloseReason::Protocol(Violation::PexFlood)
    );
}

#[test]
fn a_seed_does_not_dial_the_seeds_pex_names() {
    let meta = torrent(10, false);
    let (mut s, key, now, _) = session_with(&meta, true, BOTH, "10.0.0.5:5000", Config::default());
    s.set_seeding(true);
    let msg = Pex {
        added: vec![
            ("10.0.0.50:6881".parse().unwrap(), pex::FLAG_SEED),
            ("10.0.0.51:6881".parse().unwrap(), 0),
        ],
        dropped: vec![],
    };
    s.received(key, &ext_msg(ext::UT_PEX, &msg.encode()), now);
    let dialled: Vec<SocketAddr> = std::iter::from_fn(|| s.poll_action())
        .filter_map(|a| match a {
            Action::Connect { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(dialled, ["10.0.0.51:6881".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn extended_messages_split_byte_by_byte_read_the_same() {
    let meta = torrent(10, false);
    let bytes = [
        ext_msg(0, b"d1:md6:ut_pexi9ee1:pi7002e4:reqqi3ee"),
        encode(&[Message::HaveAll, Message::Unchoke]),
        ext_msg(
            ext::UT_PEX,
            &Pex {
                added: vec![("10.0.0.60:6881".parse().unwrap(), 0)],
                dropped: vec![],
            }
            .encode(),
        ),
    ]
    .concat();
    let (mut s, key, now, _) = session_with(&meta, false, BOTH, "10.0.0.5:5000", Config::default());
    for b in &bytes {
        s.received(key, std::slice::from_ref(b), now);
    }
    let c = &s.peers[key].conn;
    assert_eq!(
        (c.ext.ut_pex, c.ext.port, c.ext.reqq),
        (9, Some(7002), Some(3))
    );
    assert_eq!(c.requests.len(), 3, "the pipeline at its reqq");
    let dialled: Vec<SocketAddr> = std::iter::from_fn(|| s.poll_action())
        .filter_map(|a| match a {
            Action::Connect { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(dialled, ["10.0.0.60:6881".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn metadata_is_served_from_the_raw_info_bytes_and_bounded() {
    use crate::ext::metadata::MetadataMsg;
    // 2,000 pieces: an info dictionary of about 40 KB, three metadata pieces.
    let meta = torrent(2000, true);
    let (mut s, key, now, out) =
        session_with(&meta, true, BOTH, "10.0.0.5:5000", Config::default());
    let Message::Extended { id: 0, payload } = messages(&out, true)[0] else {
        panic!("no extended handshake");
    };
    let h = ext::ExtHandshake::decode(payload).unwrap();
    assert_eq!(h.metadata_size, Some(meta.info_bytes.len() as u64));
    s.received(key, &ext_msg(0, b"d1:md11:ut_metadatai5eee"), now);
    let ask = |p| ext_msg(ext::UT_METADATA, &MetadataMsg::Request(p).encode());
    // Every piece, as a magnet client fetches them (private torrents too, BEP 9).
    let mut got = Vec::new();
    for p in 0..3 {
        s.received(key, &ask(p), now);
        let out = drain(&mut s, key, now);
        let msgs = messages(&out, false);
        let [Message::Extended { id: 5, payload }] = msgs[..] else {
            panic!("{msgs:?}");
        };
        let Ok(Some(MetadataMsg::Data {
            piece,
            total_size,
            data,
        })) = MetadataMsg::decode(payload)
        else {
            panic!("not data");
        };
        assert_eq!((piece, total_size), (p, meta.info_bytes.len() as u64));
        got.extend_from_slice(data);
    }
    assert_eq!(got, &meta.info_bytes[..]);
    assert_eq!(crate::hash::sha1(&got), meta.info_hash.0);
    // Past the end: a reject.
    s.received(key, &ask(3), now);
    let out = drain(&mut s, key, now);
    assert_eq!(
        messages(&out, false),
        [Message::Extended {
            id: 5,
            payload: &MetadataMsg::Reject(3).encode()
        }]
    );
    // A peer that asks and never reads: its buffer stops at the high-water mark, and the
    // rest of its requests are rejected.
    for _ in 0..100 {
        s.received(key, &ask(0), now);
    }
    assert!(s.tx(key).len() <= Config::default().tx_high_water);
    assert!(s.poll_action().is_none(), "not a reason to drop it");
}

#[test]
fn with_the_dht_on_the_handshake_sets_its_bit_a_dht_peer_gets_our_port_and_its_port_is_pinged() {
    let meta = torrent(4, false);
    let mut s = Session::new(
        &meta,
        Bitfield::new(4),
        *b"-BM0100-extensions00",
        Config::default(),
        5,
    );
    s.set_dht_port(Some(6881));
    let now = Instant::now();
    let key = s.accept("10.0.0.5:5000".parse().unwrap(), now).unwrap();
    let mut reserved = [0u8; 8];
    reserved[7] |= 0x01; // the DHT bit only
    let hs = Handshake {
        reserved,
        info_hash: meta.info_hash.0,
        peer_id: [3; 20],
    };
    s.received(key, &hs.encode(), now);
    let out = drain(&mut s, key, now);
    let ours = Handshake::decode(&out).unwrap().unwrap();
    assert!(wire::has_bit(&ours.reserved, wire::RESERVED_DHT));
    assert!(messages(&out, true).contains(&Message::Port(6881)));
    while s.poll_action().is_some() {}
    s.received(
        key,
        &encode(&[Message::Port(7000), Message::Port(7001)]),
        now,
    );
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert_eq!(
        actions,
        [Action::DhtNode("10.0.0.5:7000".parse().unwrap())],
        "one per connection"
    );
}

#[test]
fn with_the_dht_off_no_dht_bit_no_port_message_and_a_peers_port_is_ignored() {
    let meta = torrent(4, false);
    let mut reserved = BOTH;
    reserved[7] |= 0x01;
    let (mut s, key, now, out) =
        session_with(&meta, false, reserved, "10.0.0.5:5000", Config::default());
    let ours = Handshake::decode(&out).unwrap().unwrap();
    assert!(!wire::has_bit(&ours.reserved, wire::RESERVED_DHT));
    assert!(
        !messages(&out, true)
            .iter()
            .any(|m| matches!(m, Message::Port(_)))
    );
    while s.poll_action().is_some() {}
    s.received(key, &encode(&[Message::Port(7000)]), now);
    assert!(s.poll_action().is_none());
}

#[test]
fn pex_flags_say_which_peers_speak_mse_and_which_came_over_utp() {
    let (mut s, [k1, k2, _, k4], now) = pex_swarm();
    // k1 (dialled) came through an MSE handshake over uTP; k2 says it prefers encryption.
    s.set_transport(k1, true, true);
    s.received(k2, &ext_msg(0, b"d1:ei1e1:pi7002ee"), now);
    s.handle_timeout(now);
    let sent = pex_sent(&mut s, k4, now);
    let mut added = sent[0].added.clone();
    added.sort();
    assert_eq!(
        added,
        [
            (
                "10.0.0.1:7000".parse().unwrap(),
                pex::FLAG_ENCRYPTION | pex::FLAG_UTP | pex::FLAG_CONNECTABLE
            ),
            ("10.0.0.2:7002".parse().unwrap(), pex::FLAG_ENCRYPTION),
        ]
    );
}

#[test]
fn a_session_that_prefers_encryption_says_so_in_its_extended_handshake() {
    let meta = torrent(10, false);
    let mut s = Session::new(&meta, Bitfield::full(10), [7; 20], Config::default(), 5);
    s.set_prefers_encryption(true);
    let now = Instant::now();
    let key = s.accept("10.0.0.5:5000".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: BOTH,
        info_hash: meta.info_hash.0,
        peer_id: [3; 20],
    };
    s.received(key, &hs.encode(), now);
    let out = drain(&mut s, key, now);
    let Message::Extended { id: 0, payload } = messages(&out, true)[0] else {
        panic!("the extended handshake first");
    };
    assert!(ext::ExtHandshake::decode(payload).unwrap().encryption);
}
