use super::*;
use proptest::prelude::*;
use std::borrow::Cow;

fn err(input: &[u8]) -> DecodeError {
    decode(input).expect_err("input must be rejected")
}

#[test]
fn decodes_each_type_with_raw_spans() {
    let input = b"d3:bari-42e3:fool4:spami0eee";
    let v = decode(input).unwrap();
    assert_eq!(v.raw(), input);
    assert_eq!(v.get(b"bar").unwrap().as_int(), Some(-42));
    assert_eq!(v.get(b"bar").unwrap().raw(), b"i-42e");
    let foo = v.get(b"foo").unwrap();
    assert_eq!(foo.raw(), b"l4:spami0ee");
    let items = foo.as_list().unwrap();
    assert_eq!(items[0].as_bytes(), Some(&b"spam"[..]));
    assert_eq!(items[0].raw(), b"4:spam");
    assert_eq!(items[1].as_int(), Some(0));
    assert!(v.get(b"nope").is_none());
}

#[test]
fn integer_extremes() {
    assert_eq!(
        decode(b"i9223372036854775807e").unwrap().as_int(),
        Some(i64::MAX)
    );
    assert_eq!(
        decode(b"i-9223372036854775808e").unwrap().as_int(),
        Some(i64::MIN)
    );
    assert_eq!(
        err(b"i9223372036854775808e").kind,
        DecodeErrorKind::IntegerOverflow
    );
    assert_eq!(
        err(b"i-9223372036854775809e").kind,
        DecodeErrorKind::IntegerOverflow
    );
    assert_eq!(
        err(b"i99999999999999999999999999e").kind,
        DecodeErrorKind::IntegerOverflow
    );
}

#[test]
fn one_malformed_input_per_error_kind_with_offset() {
    use DecodeErrorKind::*;
    let cases: &[(&[u8], DecodeErrorKind, usize)] = &[
        (b"", UnexpectedEnd, 0),
        (b"l", UnexpectedEnd, 1),
        (b"i12", UnexpectedEnd, 3),
        (b"x", UnexpectedByte(b'x'), 0),
        (b"li1ee\xff", TrailingBytes, 5),
        (b"ie", BadInteger, 0),
        (b"i-e", BadInteger, 0),
        (b"i-0e", BadInteger, 0),
        (b"i03e", BadInteger, 0),
        (b"i1x2e", BadInteger, 2),
        (b"i1.5e", BadInteger, 2),
        (b"i99999999999999999999e", IntegerOverflow, 0),
        (b"03:abc", BadLength, 0),
        (b"3x:abc", BadLength, 1),
        (b"5:abc", LengthPastEnd, 0),
        (b"99999999999999999999999:a", LengthPastEnd, 0),
        (b"di1e1:ae", KeyNotBytes, 1),
        (b"dl1:ae1:ae", KeyNotBytes, 1),
        (b"d1:ai1e1:ai2ee", DuplicateKey, 7),
        (b"d1:bi1e1:ai2e1:bi3ee", DuplicateKey, 13),
        (b"i1ei2e", TrailingBytes, 3),
    ];
    for (input, kind, offset) in cases {
        let e = err(input);
        assert_eq!(
            (e.kind, e.offset),
            (*kind, *offset),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn error_message_names_offset() {
    assert_eq!(err(b"i03e").to_string(), "malformed integer at byte 0");
    assert_eq!(
        err(b"d3:abci1e").to_string(),
        "unexpected end of data at byte 9"
    );
}

#[test]
fn nesting_limit() {
    let ok = [b"l".repeat(MAX_DEPTH), b"e".repeat(MAX_DEPTH)].concat();
    assert!(decode(&ok).is_ok());
    let deep = [b"l".repeat(MAX_DEPTH + 1), b"e".repeat(MAX_DEPTH + 1)].concat();
    assert_eq!(
        err(&deep),
        DecodeError {
            kind: DecodeErrorKind::TooDeep,
            offset: MAX_DEPTH
        }
    );
    // Far deeper than any stack could take without the limit.
    let hostile = b"l".repeat(10_000);
    assert_eq!(err(&hostile).kind, DecodeErrorKind::TooDeep);
    let hostile = b"d1:a".repeat(10_000);
    assert_eq!(err(&hostile).kind, DecodeErrorKind::TooDeep);
}

#[test]
fn unsorted_keys_accepted_and_kept_in_input_order() {
    let v = decode(b"d1:bi1e1:ai2ee").unwrap();
    let keys: Vec<&[u8]> = v.as_dict().unwrap().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![&b"b"[..], &b"a"[..]]);
}

#[test]
fn decode_prefix_leaves_the_rest() {
    let (v, used) = decode_prefix(b"d1:ai1eeXYZ").unwrap();
    assert_eq!(used, 8);
    assert_eq!(v.get(b"a").unwrap().as_int(), Some(1));
}

#[test]
fn every_proper_prefix_of_a_value_is_incomplete() {
    let input = b"d4:infod6:lengthi10e4:name3:abce5:otherl0:i-1eee";
    decode(input).unwrap();
    for cut in 0..input.len() {
        let e = decode_prefix(&input[..cut]).expect_err("prefix must not decode");
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::UnexpectedEnd | DecodeErrorKind::LengthPastEnd
            ),
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn encoder_sorts_keys_and_writes_exact_bytes() {
    let mut d = Item::dict();
    d.insert("zeta", Item::Int(-7));
    d.insert("alpha", Item::List(vec![Item::str("x"), Item::Int(0)]));
    d.insert("", Item::bytes(b""));
    assert_eq!(d.encode(), b"d0:0:5:alphal1:xi0ee4:zetai-7ee");
}

#[test]
fn reencoding_a_sorted_input_is_byte_exact() {
    let input = b"d8:announce9:http://x/4:infod6:lengthi5e4:name1:aee";
    let v = decode(input).unwrap();
    assert_eq!(Item::from(&v).encode(), input);
}

fn item_strategy() -> impl Strategy<Value = Item<'static>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Item::Int),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(|b| Item::Bytes(Cow::Owned(b))),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Item::List),
            prop::collection::btree_map(
                prop::collection::vec(any::<u8>(), 0..8).prop_map(Cow::Owned),
                inner,
                0..8
            )
            .prop_map(Item::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(item in item_strategy()) {
        let bytes = item.encode();
        let value = decode(&bytes).unwrap();
        prop_assert_eq!(value.raw(), &bytes[..]);
        prop_assert_eq!(Item::from(&value), item);
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_values(
        item in item_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = item.encode();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(v) = decode(&bytes) {
            // Whatever decodes must span the whole input.
            prop_assert_eq!(v.raw().len(), bytes.len());
        }
    }
}
