use super::*;

const A: Id = Id(*b"abcdefghij0123456789");
const M: Id = Id(*b"mnopqrstuvwxyz123456");

fn query(q: Query) -> Msg {
    Msg {
        t: b"aa".to_vec(),
        body: Body::Query {
            id: A,
            query: q,
            want: Want::default(),
            read_only: false,
        },
        ip: None,
    }
}

/// The examples of BEP 5, byte for byte both ways.
#[test]
fn the_bep_5_examples_decode_and_encode_byte_for_byte() {
    let cases: Vec<(&[u8], Msg)> = vec![
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            query(Query::Ping),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
            query(Query::FindNode { target: M }),
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
            query(Query::GetPeers { info_hash: M }),
        ),
        (
            b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
            query(Query::AnnouncePeer {
                info_hash: M,
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec(),
            }),
        ),
        (
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
            Msg {
                t: b"aa".to_vec(),
                body: Body::Response(Response {
                    id: Some(M),
                    ..Response::default()
                }),
                ip: None,
            },
        ),
        (
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            Msg {
                t: b"aa".to_vec(),
                body: Body::Error {
                    code: 201,
                    message: "A Generic Error Ocurred".into(),
                },
                ip: None,
            },
        ),
    ];
    for (bytes, msg) in cases {
        assert_eq!(
            Msg::decode(bytes).unwrap(),
            msg,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(msg.encode(), bytes);
    }
}

#[test]
fn a_get_peers_reply_with_values_nodes_and_a_token_round_trips() {
    let msg = Msg {
        t: vec![1, 2],
        body: Body::Response(Response {
            id: Some(M),
            nodes: vec![NodeInfo {
                id: A,
                addr: "10.0.0.1:6881".parse().unwrap(),
            }],
            nodes6: vec![NodeInfo {
                id: M,
                addr: "[2001:db8::1]:7000".parse().unwrap(),
            }],
            values: vec![
                "10.0.0.9:51413".parse().unwrap(),
                "[::1]:1".parse().unwrap(),
            ],
            token: Some(b"tok".to_vec()),
        }),
        ip: Some("192.0.2.7:6881".parse().unwrap()),
    };
    let bytes = msg.encode();
    assert_eq!(Msg::decode(&bytes).unwrap(), msg);
    // ip, nodes, nodes6, token, values: sorted keys.
    let s = String::from_utf8_lossy(&bytes);
    assert!(s.find("5:nodes26:").unwrap() < s.find("6:nodes638:").unwrap());
}

#[test]
fn want_and_read_only_are_read_and_written() {
    let mut m = query(Query::FindNode { target: M });
    if let Body::Query {
        want, read_only, ..
    } = &mut m.body
    {
        *want = Want { v4: true, v6: true };
        *read_only = true;
    }
    assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
}

#[test]
fn each_malformed_message_gets_its_error_and_a_query_keeps_its_transaction_id() {
    let cases: &[(&[u8], bool, &str)] = &[
        (b"garbage", false, "not bencode"),
        (b"li1ee", false, "not a dictionary"),
        (b"d1:y1:qe", false, "no transaction id"),
        (b"d1:t2:aae", true, "no message type"),
        (b"d1:t2:aa1:y1:xe", true, "unknown message type"),
        (b"d1:t2:aa1:y1:qe", true, "a query without a method"),
        (b"d1:q4:ping1:t2:aa1:y1:qe", true, "a query without arguments"),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", true, "a query without a 20-byte id"),
        (
            b"d1:ad2:id20:abcdefghij01234567896:target2:xxe1:q9:find_node1:t2:aa1:y1:qe",
            true,
            "target is not 20 bytes",
        ),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234565:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
            true,
            "announce_peer without a port",
        ),
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:aa1:y1:qe",
            true,
            "unknown method vote",
        ),
        (b"d1:rd2:id2:xxe1:t2:aa1:y1:re", true, "a response without a 20-byte id"),
        (
            b"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes3:abce1:t2:aa1:y1:re",
            true,
            "nodes of a wrong length",
        ),
    ];
    for &(bytes, has_t, what) in cases {
        let e = Msg::decode(bytes).unwrap_err();
        assert!(
            e.what.contains(what),
            "{}: {e}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(e.t.is_some(), has_t, "{what}");
    }
    let e = Msg::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:aa1:y1:qe").unwrap_err();
    assert!(e.unknown_method);
    let long_t = format!("d1:t{}:{}1:y1:re", MAX_T + 1, "x".repeat(MAX_T + 1));
    assert!(Msg::decode(long_t.as_bytes()).unwrap_err().t.is_none());
    assert!(Msg::decode(&vec![b'x'; MAX_DATAGRAM + 1]).is_err());
}

#[test]
fn values_of_odd_sizes_and_port_zero_are_skipped() {
    let bytes = b"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesl6:\x0a\x00\x00\x01\x1a\xe13:abc6:\x0a\x00\x00\x02\x00\x00ee1:t2:aa1:y1:re";
    let Body::Response(r) = Msg::decode(bytes).unwrap().body else {
        panic!("a response");
    };
    assert_eq!(r.values, ["10.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn distance_and_common_prefix() {
    let a = Id([0; 20]);
    let mut b = Id([0; 20]);
    assert_eq!(a.common_prefix(&b), 160);
    b.0[0] = 0x80;
    assert_eq!(a.common_prefix(&b), 0);
    b.0[0] = 0;
    b.0[2] = 0x10;
    assert_eq!(a.common_prefix(&b), 19);
    assert_eq!(a.distance(&b)[2], 0x10);
}
