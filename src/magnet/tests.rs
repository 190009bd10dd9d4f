use super::*;

const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
const B32: &str = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";

fn hash() -> [u8; 20] {
    let mut h = [0u8; 20];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&HEX[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

#[test]
fn reads_every_part_of_a_full_link() {
    let link = format!(
        "magnet:?xt=urn:btih:{HEX}&dn=Ubuntu+24.04%20desktop&tr=http%3A%2F%2Ft.example%3A6969%2Fannounce\
         &tr=udp://u.example:1337&x.pe=10.0.0.2:6881&x.pe=[fd00::2]:7000&ws=http://w.example/f&so=0-3&kt=x"
    );
    let m = Magnet::parse(&link).unwrap();
    assert_eq!(m.info_hash, hash());
    assert_eq!(m.hex(), HEX);
    assert_eq!(m.name.as_deref(), Some("Ubuntu 24.04 desktop"));
    assert_eq!(
        m.trackers,
        ["http://t.example:6969/announce", "udp://u.example:1337"]
    );
    assert_eq!(m.peers, ["10.0.0.2:6881", "[fd00::2]:7000"]);
    assert_eq!(m.web_seeds, ["http://w.example/f"]);
}

#[test]
fn base32_hex_case_and_numbered_keys() {
    let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{B32}")).unwrap();
    let b = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{}", HEX.to_uppercase())).unwrap();
    let c = Magnet::parse(&format!("magnet:?xt.1=urn:btih:{}", B32.to_lowercase())).unwrap();
    assert_eq!(a.info_hash, hash());
    assert_eq!(b.info_hash, hash());
    assert_eq!(c.info_hash, hash());
    assert_eq!(a.name, None);
    assert!(a.trackers.is_empty() && a.peers.is_empty());
}

#[test]
fn a_v2_hash_beside_a_v1_one_is_ignored_alone_it_is_refused() {
    let btmh = "urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
    let m = Magnet::parse(&format!("magnet:?xt={btmh}&xt=urn:btih:{HEX}")).unwrap();
    assert_eq!(m.info_hash, hash());
    assert_eq!(
        Magnet::parse(&format!("magnet:?xt={btmh}&dn=x")),
        Err(MagnetError::V2Only)
    );
}

#[test]
fn every_malformed_link_has_its_own_error() {
    let cases: Vec<(String, MagnetError)> = vec![
        ("http://x/".into(), MagnetError::NotMagnet),
        ("magnet:".into(), MagnetError::NotMagnet),
        ("magnet:?dn=x&tr=http://t/".into(), MagnetError::NoTopic),
        (
            "magnet:?xt=urn:sha1:abc".into(),
            MagnetError::UnknownTopic("urn:sha1:abc".into()),
        ),
        (
            "magnet:?xt=urn:btih:abc".into(),
            MagnetError::BadHashLength(3),
        ),
        (
            format!("magnet:?xt=urn:btih:{}", "g".repeat(40)),
            MagnetError::BadHex,
        ),
        (
            format!("magnet:?xt=urn:btih:{}", "1".repeat(32)),
            MagnetError::BadBase32,
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40)),
            MagnetError::TwoHashes,
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&dn=a%2"),
            MagnetError::BadEscape("a%2".into()),
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&tr=%ff%fe"),
            MagnetError::NotUtf8("tracker"),
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&x.pe=10.0.0.1"),
            MagnetError::BadPeer("10.0.0.1".into()),
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&x.pe=h:0"),
            MagnetError::BadPeer("h:0".into()),
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&x.pe=fd00::1:80"),
            MagnetError::BadPeer("fd00::1:80".into()),
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&dn={}", "x".repeat(MAX_LEN)),
            MagnetError::TooLong(MAX_LEN + 64),
        ),
    ];
    for (link, expected) in cases {
        assert_eq!(Magnet::parse(&link), Err(expected), "{link:.80}");
    }
}

#[test]
fn duplicates_are_kept_once_and_the_same_hash_twice_is_fine() {
    let link = format!(
        "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{B32}&tr=udp://a:1&tr=udp://a:1&x.pe=h:1&x.pe=h:1"
    );
    let m = Magnet::parse(&link).unwrap();
    assert_eq!(m.trackers, ["udp://a:1"]);
    assert_eq!(m.peers, ["h:1"]);
}

#[test]
fn no_prefix_or_cut_of_a_link_panics() {
    let link = format!("magnet:?xt=urn:btih:{HEX}&dn=a%20b&tr=udp%3A%2F%2Fa%3A1&x.pe=[::1]:2");
    for n in 0..=link.len() {
        if let Some(s) = link.get(..n) {
            let _ = Magnet::parse(s);
        }
    }
}

#[test]
fn the_canonical_link_reads_back_the_same() {
    let link = format!(
        "magnet:?xt=urn:btih:{B32}&dn=a+b%2Bc%26d&tr=http://t/a?x=1%26y=2&x.pe=[fd00::2]:7000&ws=w"
    );
    let m = Magnet::parse(&link).unwrap();
    assert_eq!(m.name.as_deref(), Some("a b+c&d"));
    assert_eq!(m.trackers, ["http://t/a?x=1&y=2"]);
    let again = m.to_link();
    assert!(again.starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=a%20b%2Bc%26d")));
    assert_eq!(Magnet::parse(&again).unwrap(), m);
}
