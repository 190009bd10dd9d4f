use super::pex::{self, Pex};
use super::*;
use std::net::SocketAddr;

/// An extended handshake as libtorrent 2.0 sends it (keys as in a capture; values ours).
const LT: &[u8] = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei1234e1:pi6881e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.0.8.06:yourip4:\x0a\x4d\x00\x02e";

#[test]
fn reads_a_libtorrent_handshake() {
    let h = ExtHandshake::decode(LT).unwrap();
    assert_eq!(h.ut_pex, Some(1));
    assert_eq!(h.ut_metadata, Some(2));
    assert_eq!(h.port, Some(6881));
    assert_eq!(h.reqq, Some(500));
    assert_eq!(h.metadata_size, Some(1234));
    assert_eq!(h.client.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(h.yourip, Some("10.77.0.2".parse().unwrap()));
    assert!(!h.upload_only);
    assert!(!h.encryption);
}

#[test]
fn our_handshake_round_trips_with_sorted_keys() {
    let h = ExtHandshake {
        ut_pex: Some(UT_PEX),
        ut_metadata: Some(UT_METADATA),
        port: Some(6881),
        client: Some("btmini 0.1.0".into()),
        reqq: Some(500),
        yourip: Some("10.0.0.1".parse().unwrap()),
        metadata_size: None,
        upload_only: false,
        encryption: true,
    };
    let b = h.encode();
    assert_eq!(
        b,
        b"d1:ei1e1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e4:reqqi500e1:v12:btmini 0.1.06:yourip4:\x0a\x00\x00\x01e"
            .to_vec()
    );
    assert_eq!(ExtHandshake::decode(&b).unwrap(), h);
}

#[test]
fn wrong_types_are_ignored_and_ids_are_deltas() {
    let h =
        ExtHandshake::decode(b"d1:md6:ut_pexi300e11:ut_metadata1:xe1:p3:abc4:reqqi-5ee").unwrap();
    assert_eq!(h, ExtHandshake::default());
    let mut r = Registry::default();
    r.apply(ExtHandshake::decode(LT).unwrap());
    assert_eq!((r.ut_pex, r.ut_metadata, r.reqq), (1, 2, Some(500)));
    // A later handshake turns ut_pex off and says nothing else.
    r.apply(ExtHandshake::decode(b"d1:md6:ut_pexi0eee").unwrap());
    assert_eq!((r.ut_pex, r.ut_metadata, r.reqq), (0, 2, Some(500)));
}

#[test]
fn hostile_handshakes_are_errors() {
    let big = format!("d1:v{}:{}e", MAX_HANDSHAKE, "x".repeat(MAX_HANDSHAKE));
    assert!(matches!(
        ExtHandshake::decode(big.as_bytes()),
        Err(ExtError::HandshakeTooLarge(_))
    ));
    assert!(matches!(
        ExtHandshake::decode(b"d1:md6:ut_pexi1e"),
        Err(ExtError::Bencode(_))
    ));
    assert!(matches!(
        ExtHandshake::decode(b"li1ee"),
        Err(ExtError::NotADict(_))
    ));
    // Every cut of a good handshake is an error or a handshake, never a panic.
    for n in 0..LT.len() {
        let _ = ExtHandshake::decode(&LT[..n]);
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn pex_exact_bytes_and_round_trip() {
    let p = Pex {
        added: vec![(
            addr("10.0.0.1:6881"),
            pex::FLAG_SEED | pex::FLAG_CONNECTABLE,
        )],
        dropped: vec![addr("10.0.0.2:80")],
    };
    let b = p.encode();
    assert_eq!(
        b,
        b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x127:dropped6:\x0a\x00\x00\x02\x00\x50e"
            .to_vec()
    );
    assert_eq!(Pex::decode(&b).unwrap(), p);
    let six = Pex {
        added: vec![(addr("[fd00::2]:7000"), 0), (addr("10.0.0.3:1"), 0)],
        dropped: vec![addr("[fd00::3]:7001")],
    };
    let back = Pex::decode(&six.encode()).unwrap();
    assert_eq!(back.added.len(), 2);
    assert!(back.added.contains(&(addr("[fd00::2]:7000"), 0)));
    assert_eq!(back.dropped, six.dropped);
}

#[test]
fn pex_flags_may_be_missing_and_port_zero_is_skipped() {
    let p = Pex::decode(b"d5:added12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x00e").unwrap();
    assert_eq!(p.added, vec![(addr("10.0.0.1:6881"), 0)]);
}

#[test]
fn hostile_pex_messages_are_errors() {
    assert!(matches!(
        Pex::decode(b"d5:added5:12345e"),
        Err(ExtError::BadCompactList("added", 5))
    ));
    let many = vec![1u8; 6 * 10_000];
    let mut d = crate::bencode::Item::dict();
    d.insert("added", crate::bencode::Item::bytes(&many));
    assert!(matches!(
        Pex::decode(&d.encode()),
        Err(ExtError::TooManyAddresses(10_000))
    ));
    assert!(matches!(Pex::decode(b"i5e"), Err(ExtError::NotADict(_))));
    assert!(matches!(
        Pex::decode(b"d5:added"),
        Err(ExtError::Bencode(_))
    ));
}

#[test]
fn metadata_messages_exact_bytes_and_round_trip() {
    use metadata::{MetadataMsg, piece_of};
    let req = MetadataMsg::Request(3);
    assert_eq!(req.encode(), b"d8:msg_typei0e5:piecei3ee".to_vec());
    assert_eq!(MetadataMsg::decode(&req.encode()), Ok(Some(req)));
    let rej = MetadataMsg::Reject(3);
    assert_eq!(rej.encode(), b"d8:msg_typei2e5:piecei3ee".to_vec());
    let data = MetadataMsg::Data {
        piece: 1,
        total_size: 16384 + 5,
        data: b"12345",
    };
    let bytes = data.encode();
    assert_eq!(
        bytes,
        b"d8:msg_typei1e5:piecei1e10:total_sizei16389ee12345".to_vec()
    );
    assert_eq!(MetadataMsg::decode(&bytes), Ok(Some(data)));
    // Unknown types are ignored; a missing piece, type or size is an error.
    assert_eq!(MetadataMsg::decode(b"d8:msg_typei7e5:piecei0ee"), Ok(None));
    assert!(MetadataMsg::decode(b"d8:msg_typei0ee").is_err());
    assert!(MetadataMsg::decode(b"d5:piecei0ee").is_err());
    assert!(MetadataMsg::decode(b"d8:msg_typei1e5:piecei0ee").is_err());
    assert!(MetadataMsg::decode(b"d8:msg_typei0e5:piecei-1ee").is_err());
    assert!(MetadataMsg::decode(b"le").is_err());
    let meta = vec![7u8; 16384 * 2 + 10];
    assert_eq!(piece_of(&meta, 0).map(<[u8]>::len), Some(16384));
    assert_eq!(piece_of(&meta, 2).map(<[u8]>::len), Some(10));
    assert_eq!(piece_of(&meta, 3), None);
    assert_eq!(piece_of(&meta, u32::MAX), None);
}
