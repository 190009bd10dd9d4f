//! A session started from an info-hash: the metadata fetched from several peers one piece
//! at a time each, checked against the info-hash, handed to the shell, and what peers said
//! before it was known checked once it is; and what hostile metadata peers cannot do.

use super::*;
use crate::bencode::Item;
use crate::ext::fetch::{FetchError, MAX_SIZE};
use crate::ext::metadata::MetadataMsg;
use crate::ext::{self, ExtHandshake};

const BOTH: [u8; 8] = OUR_RESERVED;
/// Peers' own id for ut_metadata, which we must use to ask them.
const THEIR_UT_METADATA: u8 = 3;

/// A torrent of `pieces` 16 KiB pieces whose hashes are made up: the metadata is what
/// matters here (2,000 pieces make 40 KB of hashes, three metadata pieces).
fn torrent(pieces: usize) -> Metainfo {
    let hashes: Vec<u8> = (0..pieces * 20).map(|i| (i * 7 % 253) as u8).collect();
    let mut info = Item::dict();
    info.insert("name", Item::str("magnet"));
    info.insert("piece length", Item::Int(16384));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(pieces as i64 * 16384));
    let mut root = Item::dict();
    root.insert("info", info);
    Metainfo::from_bytes(&root.encode()).unwrap()
}

fn encode(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        wire::encode(m, &mut out);
    }
    out
}

fn metadata_msg(m: &MetadataMsg<'_>) -> Vec<u8> {
    encode(&[Message::Extended {
        id: ext::UT_METADATA,
        payload: &m.encode(),
    }])
}

/// What the session sent peer `key` since the last call, as messages (the handshake
/// skipped when there is one).
fn sent(s: &mut Session, key: usize, now: Instant) -> Vec<Message<'static>> {
    let out = s.tx(key).to_vec();
    s.sent(key, out.len(), now);
    let mut bytes: &[u8] = &out;
    if bytes.first() == Some(&19) {
        bytes = &bytes[wire::HANDSHAKE_LEN..];
    }
    let mut msgs = Vec::new();
    while let Some((_, n)) = wire::decode(bytes, 1 << 20).unwrap() {
        // Leaked: a test's few messages, kept as plain values for matching.
        let owned: &'static [u8] = Box::leak(bytes[..n].to_vec().into_boxed_slice());
        msgs.push(wire::decode(owned, 1 << 20).unwrap().unwrap().0);
        bytes = &bytes[n..];
    }
    msgs
}

/// The metadata pieces the session asked for in `msgs`.
fn asked(msgs: &[Message<'_>]) -> Vec<u32> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Extended { id, payload } if *id == THEIR_UT_METADATA => {
                match MetadataMsg::decode(payload).unwrap() {
                    Some(MetadataMsg::Request(p)) => Some(p),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

struct Magnet {
    s: Session,
    now: Instant,
    meta: Metainfo,
}

impl Magnet {
    fn new(pieces: usize) -> Self {
        let meta = torrent(pieces);
        let s = Session::from_info_hash(
            meta.info_hash.0,
            *b"-BM0100-magnettests0",
            Config::default(),
            3,
        );
        Self {
            s,
            now: Instant::now(),
            meta,
        }
    }

    /// A peer that dialled us, past the handshake, and its extended handshake stating
    /// `size` (or none).
    fn peer(&mut self, addr: &str, size: Option<u64>) -> usize {
        let key = self.s.accept(addr.parse().unwrap(), self.now).unwrap();
        let hs = Handshake {
            reserved: BOTH,
            info_hash: self.meta.info_hash.0,
            peer_id: [key as u8 + 1; 20],
        };
        self.s.received(key, &hs.encode(), self.now);
        let ext = ExtHandshake {
            ut_metadata: Some(THEIR_UT_METADATA),
            metadata_size: size,
            ..Default::default()
        };
        let payload = ext.encode();
        self.s.received(
            key,
            &encode(&[Message::Extended {
                id: 0,
                payload: &payload,
            }]),
            self.now,
        );
        key
    }

    fn size(&self) -> u64 {
        self.meta.info_bytes.len() as u64
    }

    fn piece(&self, i: u32) -> Vec<u8> {
        metadata_msg(&MetadataMsg::Data {
            piece: i,
            total_size: self.size(),
            data: ext::metadata::piece_of(&self.meta.info_bytes, i).unwrap(),
        })
    }

    fn closes(&mut self) -> Vec<(usize, CloseReason)> {
        let mut out = Vec::new();
        while let Some(a) = self.s.poll_action() {
            if let Action::Close { key, reason } = a {
                out.push((key, reason));
            }
        }
        out
    }
}

#[test]
fn the_metadata_comes_from_several_peers_one_request_each_and_is_handed_over_whole() {
    let mut m = Magnet::new(2000);
    assert_eq!(m.size().div_ceil(16384), 3);
    let a = m.peer("10.0.0.1:1", Some(m.size()));
    let b = m.peer("10.0.0.2:1", Some(m.size()));
    let now = m.now;
    let first_a = sent(&mut m.s, a, now);
    assert!(
        first_a.contains(&Message::HaveNone),
        "we have nothing: have_none"
    );
    let (pa, pb) = (asked(&first_a), asked(&sent(&mut m.s, b, now)));
    assert_eq!(
        (pa.len(), pb.len()),
        (1, 1),
        "one request in flight per peer"
    );
    assert_ne!(pa, pb, "different pieces from different peers");
    // Peer b answers first: it is asked for the last piece.
    let data = m.piece(pb[0]);
    m.s.received(b, &data, now);
    let next = asked(&sent(&mut m.s, b, now));
    assert_eq!(next.len(), 1);
    assert!(
        asked(&sent(&mut m.s, a, now)).is_empty(),
        "a still has its request"
    );
    for (k, p) in [(a, pa[0]), (b, next[0])] {
        let data = m.piece(p);
        m.s.received(k, &data, now);
    }
    let handed: Vec<Vec<u8>> = std::iter::from_fn(|| m.s.poll_action())
        .filter_map(|a| match a {
            Action::Metadata(info) => Some(info),
            _ => None,
        })
        .collect();
    assert_eq!(handed, vec![m.meta.info_bytes.to_vec()]);
    assert!(!m.s.has_metadata(), "until the shell installs it");
    assert!(m.s.metadata_status().is_none(), "the fetch is over");
}

#[test]
fn what_peers_said_before_the_metadata_counts_once_it_is_known() {
    let mut m = Magnet::new(20);
    let now = m.now;
    let a = m.peer("10.0.0.1:1", Some(m.size()));
    let b = m.peer("10.0.0.2:1", None);
    let c = m.peer("10.0.0.3:1", None);
    // a: pieces 0-7 by bitfield and 12 by HAVE; b: have_all; c: a HAVE past the end.
    m.s.received(
        a,
        &encode(&[Message::Bitfield(&[0xff, 0, 0]), Message::Have(12)]),
        now,
    );
    m.s.received(b, &encode(&[Message::HaveAll]), now);
    m.s.received(c, &encode(&[Message::Have(25)]), now);
    for k in [a, b, c] {
        sent(&mut m.s, k, now);
    }
    m.closes();
    m.s.set_metadata(&m.meta, Bitfield::new(20), now);
    assert!(m.s.has_metadata());
    let closed = m.closes();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        closed[0].0, c,
        "the peer whose HAVE does not fit is dropped"
    );
    assert_eq!(
        m.s.peers[a].has.ones().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7, 12]
    );
    assert!(m.s.peers[b].has.is_full());
    // Both are interesting now, and b (unchoked? not yet) gets our interest.
    assert!(sent(&mut m.s, a, now).contains(&Message::Interested));
    assert!(sent(&mut m.s, b, now).contains(&Message::Interested));
}

#[test]
fn metadata_that_fails_the_info_hash_bans_its_senders_and_is_fetched_again_from_others() {
    let mut m = Magnet::new(20);
    let now = m.now;
    let bad = m.peer("10.0.0.1:1", Some(m.size()));
    assert_eq!(asked(&sent(&mut m.s, bad, now)), [0]);
    let good = m.peer("10.0.0.2:1", Some(m.size()));
    assert!(
        asked(&sent(&mut m.s, good, now)).is_empty(),
        "the only piece is asked of bad"
    );
    let mut wrong = m.meta.info_bytes.to_vec();
    wrong[10] ^= 1;
    let msg = metadata_msg(&MetadataMsg::Data {
        piece: 0,
        total_size: m.size(),
        data: &wrong,
    });
    m.s.received(bad, &msg, now);
    assert_eq!(m.closes(), [(bad, CloseReason::BadMetadata)]);
    assert_eq!(
        asked(&sent(&mut m.s, good, now)),
        [0],
        "asked again, of the good one"
    );
    // Banned: it is not taken back when it calls again.
    assert!(m.s.accept("10.0.0.1:1".parse().unwrap(), now).is_none());
    let data = m.piece(0);
    m.s.received(good, &data, now);
    assert!(std::iter::from_fn(|| m.s.poll_action()).any(|a| matches!(a, Action::Metadata(_))));
}

#[test]
fn an_absurd_metadata_size_or_an_unasked_piece_drops_the_peer() {
    let mut m = Magnet::new(20);
    let huge = m.peer("10.0.0.1:1", Some(MAX_SIZE + 1));
    assert_eq!(
        m.closes(),
        [(
            huge,
            Violation::Metadata(FetchError::BadSize(MAX_SIZE + 1)).into()
        )]
    );
    let zero = m.peer("10.0.0.2:1", Some(0));
    assert_eq!(
        m.closes(),
        [(zero, Violation::Metadata(FetchError::BadSize(0)).into())]
    );
    let k = m.peer("10.0.0.3:1", Some(m.size()));
    let msg = metadata_msg(&MetadataMsg::Data {
        piece: 7,
        total_size: m.size(),
        data: &[0; 100],
    });
    m.s.received(k, &msg, m.now);
    assert_eq!(
        m.closes(),
        [(k, Violation::Metadata(FetchError::Unasked(7)).into())]
    );
}

#[test]
fn a_reject_storm_costs_no_memory_and_the_piece_goes_to_another_peer() {
    let mut m = Magnet::new(20);
    let now = m.now;
    let a = m.peer("10.0.0.1:1", Some(m.size()));
    let b = m.peer("10.0.0.2:1", Some(m.size()));
    assert_eq!(asked(&sent(&mut m.s, a, now)), [0]);
    sent(&mut m.s, b, now);
    let mut storm = Vec::new();
    for i in 0..10_000u32 {
        storm.extend(metadata_msg(&MetadataMsg::Reject(i % 3)));
    }
    m.s.received(a, &storm, now);
    assert!(m.closes().is_empty(), "rejects are allowed");
    assert_eq!(
        asked(&sent(&mut m.s, b, now)),
        [0],
        "the other peer is asked"
    );
    assert!(
        asked(&sent(&mut m.s, a, now)).is_empty(),
        "the rejecting peer rests"
    );
    assert!(m.s.peers[a].conn.rx.capacity() < 64 * 1024);
    assert!(m.s.tx(a).is_empty());
}

#[test]
fn a_peer_that_never_answers_times_out_and_another_is_asked() {
    let mut m = Magnet::new(20);
    let now = m.now;
    let a = m.peer("10.0.0.1:1", Some(m.size()));
    let b = m.peer("10.0.0.2:1", Some(m.size()));
    assert_eq!(asked(&sent(&mut m.s, a, now)), [0]);
    sent(&mut m.s, b, now);
    let later = now + ext::fetch::REQUEST_TIMEOUT + Duration::from_secs(1);
    m.s.handle_timeout(later);
    assert_eq!(asked(&sent(&mut m.s, b, later)), [0]);
}

#[test]
fn before_the_metadata_requests_are_rejected_and_so_is_a_request_for_metadata() {
    let mut m = Magnet::new(20);
    let now = m.now;
    let a = m.peer("10.0.0.1:1", Some(m.size()));
    sent(&mut m.s, a, now);
    let req = encode(&[Message::Request {
        index: 0,
        begin: 0,
        length: 16384,
    }]);
    m.s.received(a, &req, now);
    m.s.received(a, &metadata_msg(&MetadataMsg::Request(0)), now);
    let out = sent(&mut m.s, a, now);
    assert!(out.contains(&Message::Reject {
        index: 0,
        begin: 0,
        length: 16384
    }));
    let rejects: Vec<_> = out
        .iter()
        .filter_map(|msg| match msg {
            Message::Extended { payload, .. } => MetadataMsg::decode(payload).unwrap(),
            _ => None,
        })
        .collect();
    assert_eq!(rejects, [MetadataMsg::Reject(0)]);
    // Our extended handshake stated no metadata_size.
    assert!(m.closes().is_empty());
}

#[test]
fn early_haves_past_any_torrent_we_accept_drop_the_peer() {
    let mut m = Magnet::new(20);
    let a = m.peer("10.0.0.1:1", None);
    m.s.received(a, &encode(&[Message::Have(crate::peer::MAX_PIECES)]), m.now);
    assert_eq!(
        m.closes(),
        [(
            a,
            Violation::EarlyPieceTooLarge(crate::peer::MAX_PIECES).into()
        )]
    );
}

#[test]
fn a_magnet_whose_metadata_says_private_stops_pex() {
    let hashes = vec![7u8; 20 * 4];
    let mut info = Item::dict();
    info.insert("name", Item::str("private"));
    info.insert("piece length", Item::Int(16384));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(4 * 16384));
    info.insert("private", Item::Int(1));
    let mut root = Item::dict();
    root.insert("info", info);
    let meta = Metainfo::from_bytes(&root.encode()).unwrap();
    let mut m = Magnet::new(4);
    m.meta = meta;
    m.s = Session::from_info_hash(
        m.meta.info_hash.0,
        *b"-BM0100-magnettests0",
        Config::default(),
        3,
    );
    let now = m.now;
    // A peer that speaks PEX: its first PEX message is due at the next tick.
    let key = m.s.accept("10.0.0.1:1".parse().unwrap(), now).unwrap();
    let hs = Handshake {
        reserved: BOTH,
        info_hash: m.meta.info_hash.0,
        peer_id: [9; 20],
    };
    m.s.received(key, &hs.encode(), now);
    let payload = ExtHandshake {
        ut_pex: Some(5),
        ..Default::default()
    }
    .encode();
    m.s.received(
        key,
        &encode(&[Message::Extended {
            id: 0,
            payload: &payload,
        }]),
        now,
    );
    // Another peer, reachable (it states its listen port): what PEX would tell.
    let other = m.s.accept("10.0.0.2:1".parse().unwrap(), now).unwrap();
    m.s.received(
        other,
        &Handshake {
            peer_id: [8; 20],
            ..hs
        }
        .encode(),
        now,
    );
    let payload = ExtHandshake {
        port: Some(7000),
        ..Default::default()
    }
    .encode();
    m.s.received(
        other,
        &encode(&[Message::Extended {
            id: 0,
            payload: &payload,
        }]),
        now,
    );
    sent(&mut m.s, key, now);
    sent(&mut m.s, other, now);
    m.s.set_metadata(&m.meta, Bitfield::new(4), now);
    m.s.handle_timeout(now + Duration::from_secs(1));
    let out = sent(&mut m.s, key, now);
    assert!(
        !out.iter()
            .any(|msg| matches!(msg, Message::Extended { id: 5, .. })),
        "PEX for a private torrent: {out:?}"
    );
}
