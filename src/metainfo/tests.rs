use super::*;
use crate::bencode::Item;

/// A valid multi-file torrent: files of 5, 0 and 20 bytes in 8-byte pieces.
fn files_torrent(files: Vec<Item<'static>>, total: u64) -> Vec<u8> {
    let mut info = Item::dict();
    info.insert("name", Item::str("top"));
    info.insert("piece length", Item::Int(8));
    let pieces = vec![7u8; 20 * total.div_ceil(8) as usize];
    info.insert("pieces", Item::Bytes(pieces.into()));
    info.insert("files", Item::List(files));
    let mut root = Item::dict();
    root.insert("announce", Item::str("http://t/announce"));
    root.insert("info", info);
    root.encode()
}

fn file(path: &[&'static str], length: i64) -> Item<'static> {
    let mut d = Item::dict();
    d.insert("length", Item::Int(length));
    d.insert(
        "path",
        Item::List(path.iter().map(|c| Item::str(c)).collect()),
    );
    d
}

fn pad(length: i64) -> Item<'static> {
    let mut d = file(&[".pad", "x"], length);
    d.insert("attr", Item::str("p"));
    d
}

fn single(edit: impl FnOnce(&mut Item<'static>, &mut Item<'static>)) -> Vec<u8> {
    let mut info = Item::dict();
    info.insert("name", Item::str("file.bin"));
    info.insert("piece length", Item::Int(16384));
    info.insert("pieces", Item::Bytes(vec![1u8; 40].into()));
    info.insert("length", Item::Int(20000));
    let mut root = Item::dict();
    root.insert("announce", Item::str("http://t/announce"));
    edit(&mut root, &mut info);
    root.insert("info", info);
    root.encode()
}

fn refuse(bytes: &[u8]) -> MetainfoError {
    Metainfo::from_bytes(bytes).expect_err("torrent must be refused")
}

#[test]
fn single_file_fields() {
    let bytes = single(|root, info| {
        root.insert("comment", Item::str("c"));
        root.insert("created by", Item::str("me"));
        root.insert("creation date", Item::Int(1_700_000_000));
        info.insert("private", Item::Int(1));
    });
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.name, "file.bin");
    assert_eq!(m.total_length, 20000);
    assert_eq!(m.piece_count(), 2);
    assert_eq!(m.piece_size(0), 16384);
    assert_eq!(m.piece_size(1), 20000 - 16384);
    assert_eq!(m.piece_size(2), 0);
    assert!(m.private && !m.multi_file);
    assert_eq!(m.files[0].path, vec!["file.bin".to_string()]);
    assert_eq!(m.comment.as_deref(), Some("c"));
    assert_eq!(m.created_by.as_deref(), Some("me"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    assert_eq!(m.tiers(), vec![vec!["http://t/announce".to_string()]]);
}

#[test]
fn info_hash_is_over_the_raw_info_bytes() {
    // Keys out of order inside info: a re-encoding would sort them and change the hash.
    let bytes = b"d8:announce3:x:y4:infod6:lengthi3e12:piece lengthi16384e4:name1:a\
                  6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    let m = Metainfo::from_bytes(bytes).unwrap();
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let raw = &bytes[start..bytes.len() - 1];
    assert_eq!(m.info_hash.0, crate::hash::sha1(raw));
    let sorted = crate::bencode::Item::from(&crate::bencode::decode(raw).unwrap()).encode();
    assert_ne!(
        sorted, raw,
        "the test needs an info dict that re-encodes differently"
    );
}

#[test]
fn multi_file_offsets_padding_and_utf8_names() {
    let mut named = file(&["legacy-\u{fffd}"], 5);
    named.insert(
        "path.utf-8",
        Item::List(vec![Item::str("d"), Item::str("ünï.txt")]),
    );
    let files = vec![named, file(&["empty"], 0), pad(3), file(&["z"], 20)];
    let bytes = files_torrent(files, 28);
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert!(m.multi_file);
    let got: Vec<_> = m
        .files
        .iter()
        .map(|f| (f.display_path(), f.length, f.offset, f.padding))
        .collect();
    assert_eq!(
        got,
        vec![
            ("top/d/ünï.txt".to_string(), 5, 0, false),
            ("top/empty".to_string(), 0, 5, false),
            ("top/.pad/x".to_string(), 3, 5, true),
            ("top/z".to_string(), 20, 8, false),
        ]
    );
    assert_eq!(m.total_length, 28);
    assert_eq!(m.stored_length(), 25);
}

#[test]
fn name_utf8_preferred() {
    let bytes = single(|_, info| info.insert("name.utf-8", Item::str("ünï")));
    assert_eq!(Metainfo::from_bytes(&bytes).unwrap().name, "ünï");
}

#[test]
fn repeated_padding_paths_are_allowed() {
    let files = vec![file(&["a"], 5), pad(3), file(&["b"], 5), pad(3)];
    assert!(Metainfo::from_bytes(&files_torrent(files, 16)).is_ok());
}

#[test]
fn announce_list_tiers_skip_blanks() {
    let bytes = single(|root, _| {
        let tier = |urls: &[&'static str]| Item::List(urls.iter().map(|u| Item::str(u)).collect());
        root.insert(
            "announce-list",
            Item::List(vec![
                tier(&["http://a", " "]),
                tier(&[]),
                tier(&["udp://b:1", "http://c"]),
            ]),
        );
    });
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(
        m.tiers(),
        vec![
            vec!["http://a".to_string()],
            vec!["udp://b:1".to_string(), "http://c".to_string()]
        ]
    );
}

#[test]
fn hybrid_loads_as_v1_and_v2_only_is_refused() {
    let hybrid = single(|_, info| {
        info.insert("meta version", Item::Int(2));
        info.insert("file tree", Item::dict());
    });
    assert!(Metainfo::from_bytes(&hybrid).is_ok());

    let mut info = Item::dict();
    info.insert("name", Item::str("v2"));
    info.insert("piece length", Item::Int(16384));
    info.insert("meta version", Item::Int(2));
    info.insert("file tree", Item::dict());
    let mut root = Item::dict();
    root.insert("info", info);
    let e = refuse(&root.encode());
    assert_eq!(e, MetainfoError::V2Only);
    assert!(e.to_string().contains("v2-only"));
}

#[test]
fn one_malformed_torrent_per_error() {
    use MetainfoError as E;
    let wrong = |field, expected, found| E::WrongType {
        field,
        expected,
        found,
    };
    assert!(matches!(refuse(b"d4:info"), E::Bencode(_)));
    assert_eq!(refuse(b"li1ee"), E::NotADict);
    assert_eq!(refuse(b"de"), E::MissingField("info"));
    assert_eq!(
        refuse(b"d4:infoi1ee"),
        wrong("info", "dictionary", "integer")
    );
    let cases: Vec<(Vec<u8>, MetainfoError)> = vec![
        (
            single(|_, i| i.insert("name", Item::Int(1))),
            wrong("info.name", "byte string", "integer"),
        ),
        (
            single(|_, i| i.insert("piece length", Item::str("big"))),
            wrong("info.piece length", "integer", "byte string"),
        ),
        (
            single(|_, i| i.insert("piece length", Item::Int(0))),
            E::BadPieceLength(0),
        ),
        (
            single(|_, i| i.insert("piece length", Item::Int(-5))),
            E::BadPieceLength(-5),
        ),
        (
            single(|_, i| i.insert("piece length", Item::Int(1 << 40))),
            E::BadPieceLength(1 << 40),
        ),
        (
            single(|_, i| i.insert("pieces", Item::Bytes(vec![0; 39].into()))),
            E::PiecesNotMultipleOf20(39),
        ),
        (
            single(|_, i| i.insert("pieces", Item::Bytes(vec![0; 60].into()))),
            E::PieceCountMismatch {
                expected: 2,
                found: 3,
            },
        ),
        (
            single(|_, i| i.insert("length", Item::Int(40000))),
            E::PieceCountMismatch {
                expected: 3,
                found: 2,
            },
        ),
        (
            single(|_, i| i.insert("length", Item::Int(-1))),
            E::NegativeLength {
                path: "file.bin".into(),
                length: -1,
            },
        ),
        (
            single(|_, i| i.insert("files", Item::List(vec![]))),
            E::AmbiguousLayout,
        ),
        (single(|_, i| i.insert("length", Item::Int(0))), E::Empty),
        (
            single(|r, _| r.insert("announce", Item::Int(3))),
            wrong("announce", "byte string", "integer"),
        ),
        (
            single(|r, _| r.insert("announce-list", Item::List(vec![Item::str("x")]))),
            wrong("announce-list", "list of lists of strings", "byte string"),
        ),
        (
            single(|r, _| r.insert("creation date", Item::str("today"))),
            wrong("creation date", "integer", "byte string"),
        ),
        (files_torrent(vec![], 0), E::NoFiles),
        (files_torrent(vec![file(&["a"], 0)], 0), E::Empty),
        (
            files_torrent(vec![Item::Int(1)], 8),
            wrong("info.files[]", "dictionary", "integer"),
        ),
        (
            files_torrent(vec![file(&["a"], -3)], 8),
            E::NegativeLength {
                path: "top/a".into(),
                length: -3,
            },
        ),
        (
            files_torrent(
                vec![
                    file(&["a"], i64::MAX),
                    file(&["b"], i64::MAX),
                    file(&["c"], 4),
                ],
                8,
            ),
            E::TotalTooLarge,
        ),
        (
            files_torrent(vec![file(&["a"], 4), file(&["a"], 4)], 8),
            E::DuplicatePath("top/a".into()),
        ),
        (
            files_torrent(vec![file(&["a"], 4), file(&["a", "b"], 4)], 8),
            E::DuplicatePath("top/a".into()),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(refuse(&bytes), expected);
    }
    let mut no_path = Item::dict();
    no_path.insert("length", Item::Int(1));
    assert_eq!(
        refuse(&files_torrent(vec![no_path], 1)),
        E::MissingField("info.files[].path")
    );
    for missing in ["name", "piece length", "pieces"] {
        let bytes = single(|_, i| {
            if let Item::Dict(d) = i {
                d.remove(missing.as_bytes());
            }
        });
        assert!(matches!(refuse(&bytes), E::MissingField(f) if f.ends_with(missing)));
    }
}

#[test]
fn every_unsafe_path_form_is_refused() {
    use UnsafePathReason::*;
    let cases: &[(&[&'static str], UnsafePathReason)] = &[
        (&["..", "etc", "passwd"], ParentDir),
        (&["a", "..", "..", "x"], ParentDir),
        (&["", "etc", "passwd"], Absolute),
        (&["/etc", "passwd"], Absolute),
        (&["a", "", "b"], EmptyComponent),
        (&[""], EmptyComponent),
        (&[], EmptyComponent),
        (&["a\0b"], Nul),
        (&["a/b"], SlashInComponent),
        (&[".", "a"], CurrentDir),
    ];
    for (path, reason) in cases {
        let e = refuse(&files_torrent(vec![file(path, 8)], 8));
        assert!(
            matches!(&e, MetainfoError::UnsafePath { reason: r, .. } if r == reason),
            "{path:?}: {e}"
        );
    }
    for (name, reason) in [
        ("..", ParentDir),
        ("/abs", Absolute),
        ("", EmptyComponent),
        ("a/b", SlashInComponent),
    ] {
        let bytes = single(|_, i| i.insert("name", Item::str(name)));
        let e = refuse(&bytes);
        assert!(
            matches!(&e, MetainfoError::UnsafePath { reason: r, .. } if *r == reason),
            "name {name:?}: {e}"
        );
    }
    // An unsafe path.utf-8 is not a way around the check.
    let mut f = file(&["ok"], 8);
    f.insert("path.utf-8", Item::List(vec![Item::str("..")]));
    assert!(matches!(
        refuse(&files_torrent(vec![f], 8)),
        MetainfoError::UnsafePath {
            reason: ParentDir,
            ..
        }
    ));
}

#[test]
fn errors_read_well() {
    let e = refuse(&files_torrent(vec![file(&["..", "x"], 8)], 8));
    assert_eq!(e.to_string(), "unsafe path 'top/../x': '..' component");
    assert_eq!(
        refuse(b"d4:infod").to_string(),
        "not valid bencode: unexpected end of data at byte 8"
    );
}

proptest::proptest! {
    #[test]
    fn validation_never_panics_on_mutated_torrents(
        flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let files = vec![file(&["d", "a"], 5), file(&["empty"], 0), pad(3), file(&["z"], 20)];
        let mut bytes = files_torrent(files, 28);
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(m) = Metainfo::from_bytes(&bytes) {
            // Whatever passes validation is internally consistent.
            proptest::prop_assert_eq!(u64::from(m.piece_count()), m.total_length.div_ceil(m.piece_length));
            proptest::prop_assert!(m.files.iter().all(|f| f.path.iter().all(|c| !c.is_empty() && c != ".." && !c.contains('/'))));
        }
        let _ = Metainfo::from_bytes(&bytes[..cut.index(bytes.len())]);
    }
}
