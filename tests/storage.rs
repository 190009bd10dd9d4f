//! The storage layer on real files: layout, resume, recheck, detection of changed data,
//! large files, and a file system that is too small.

mod common;

use btmini::create::{CreateOptions, create};
use btmini::metainfo::Metainfo;
use btmini::storage::sidecar::Sidecar;
use btmini::storage::{Allocation, Resume, Storage, StorageError, StorageOptions, WriteOutcome};
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn torrent_of(payload: &Path, piece_length: u64) -> (Arc<Metainfo>, Vec<u8>) {
    let created = create(&CreateOptions {
        path: payload.to_owned(),
        piece_length: Some(piece_length),
        ..Default::default()
    })
    .unwrap();
    (
        Arc::new(Metainfo::from_bytes(&created.bytes).unwrap()),
        created.bytes,
    )
}

/// The torrent's data, files concatenated in torrent order, read from under `root`.
fn torrent_data(meta: &Metainfo, root: &Path) -> Vec<u8> {
    let mut data = Vec::new();
    for f in &meta.files {
        let path = f.path.iter().fold(root.to_owned(), |p, c| p.join(c));
        data.extend(fs::read(path).unwrap());
    }
    data
}

fn piece<'a>(meta: &Metainfo, data: &'a [u8], i: u32) -> &'a [u8] {
    let start = (u64::from(i) * meta.piece_length) as usize;
    &data[start..start + meta.piece_size(i) as usize]
}

fn open(meta: &Arc<Metainfo>, dir: &Path) -> Storage {
    Storage::open(meta.clone(), dir, StorageOptions::default()).unwrap()
}

/// Files a (10,000 B), b (empty), c (3,000 B), d (50,000 B): with 16 KiB pieces, piece 0 is
/// all of a, all of c and the start of d.
fn three_file_payload(root: &Path) -> std::path::PathBuf {
    let dir = root.join("span");
    write_file(&dir.join("a"), 11, 10_000);
    write_file(&dir.join("b"), 12, 0);
    write_file(&dir.join("c"), 13, 3_000);
    write_file(&dir.join("sub/d"), 14, 50_000);
    dir
}

#[test]
fn multi_file_round_trip_with_a_piece_across_three_files() {
    let tmp = TempDir::new("st-roundtrip");
    let payload = three_file_payload(tmp.path());
    let (meta, torrent) = torrent_of(&payload, 16384);
    let data = torrent_data(&meta, tmp.path());
    let out = tmp.join("out");
    let mut st = open(&meta, &out);
    assert_eq!(st.resume(), &Resume::Fresh);
    // Before anything is written: full size, blocks reserved, empty file created.
    for name in ["a", "c", "sub/d"] {
        let m = fs::metadata(out.join("span").join(name)).unwrap();
        assert_eq!(m.len(), fs::metadata(payload.join(name)).unwrap().len());
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&m) * 512 >= m.len(),
            "{name} is sparse"
        );
    }
    assert_eq!(fs::metadata(out.join("span/b")).unwrap().len(), 0);

    // Backwards, so no piece is helped by its neighbour.
    for i in (0..meta.piece_count()).rev() {
        assert_eq!(
            st.write_piece(i, piece(&meta, &data, i)).unwrap(),
            WriteOutcome::Written
        );
    }
    assert_eq!(
        st.write_piece(0, piece(&meta, &data, 0)).unwrap(),
        WriteOutcome::AlreadyHave
    );
    // A block crossing from a through c into d reads back the same.
    let mut block = Vec::new();
    st.read_block(0, 9_000, 5_000, &mut block).unwrap();
    assert_eq!(block, &data[9_000..14_000]);
    st.flush().unwrap();
    drop(st);
    for name in ["a", "b", "c", "sub/d"] {
        assert_eq!(
            fs::read(out.join("span").join(name)).unwrap(),
            fs::read(payload.join(name)).unwrap(),
            "{name}"
        );
    }
    // libtorrent agrees that the layout and the data are right.
    let t = tmp.join("span.torrent");
    fs::write(&t, torrent).unwrap();
    let checked = libtorrent(&[OsStr::new("recheck"), t.as_os_str(), out.as_os_str()]);
    assert_eq!(checked["pieces_have"], meta.piece_count());
}

#[test]
fn bad_pieces_are_never_written_and_unverified_pieces_never_read() {
    let tmp = TempDir::new("st-bad");
    let payload = three_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    let data = torrent_data(&meta, tmp.path());
    let out = tmp.join("out");
    let mut st = open(&meta, &out);
    let mut bad = piece(&meta, &data, 1).to_vec();
    bad[100] ^= 1;
    assert_eq!(st.write_piece(1, &bad).unwrap(), WriteOutcome::HashMismatch);
    assert!(!st.has(1));
    let on_disk = fs::read(out.join("span/sub/d")).unwrap();
    assert!(
        on_disk.iter().all(|&b| b == 0),
        "a mismatched piece left bytes on disk"
    );
    assert!(matches!(
        st.read_block(1, 0, 16384, &mut Vec::new()),
        Err(StorageError::NotVerified(1))
    ));
    assert!(matches!(
        st.write_piece(99, &bad),
        Err(StorageError::OutOfRange)
    ));
    assert!(matches!(
        st.write_piece(1, &bad[..100]),
        Err(StorageError::OutOfRange)
    ));
    st.write_piece(0, piece(&meta, &data, 0)).unwrap();
    assert!(matches!(
        st.read_block(0, 16000, 1000, &mut Vec::new()),
        Err(StorageError::OutOfRange)
    ));
}

/// Writes pieces `0..n` (every other one) and flushes: a clean stop.
fn partial(meta: &Arc<Metainfo>, data: &[u8], out: &Path) -> Vec<u32> {
    let mut st = open(meta, out);
    let written: Vec<u32> = (0..meta.piece_count()).step_by(2).collect();
    for &i in &written {
        st.write_piece(i, piece(meta, data, i)).unwrap();
    }
    st.add_uploaded(12345);
    st.flush().unwrap();
    written
}

#[test]
fn resume_trusts_exactly_the_recorded_pieces_without_hashing() {
    let tmp = TempDir::new("st-resume");
    let payload = multi_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    let data = torrent_data(&meta, tmp.path());
    let out = tmp.join("out");
    let written = partial(&meta, &data, &out);

    let st = open(&meta, &out);
    assert_eq!(st.resume(), &Resume::Trusted);
    assert_eq!(st.have().ones().collect::<Vec<_>>(), written);
    assert_eq!(st.uploaded(), 12345);
    drop(st);

    // Proof that nothing was hashed: damage a recorded piece but keep the file's time, and
    // the sidecar is still trusted.
    let file = out.join("payload-ünï/a.bin");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let st = open(&meta, &out);
    assert_eq!(st.resume(), &Resume::Trusted);
    assert!(st.has(0));
}

#[test]
fn a_data_file_altered_after_the_sidecar_is_detected() {
    let tmp = TempDir::new("st-altered");
    let payload = multi_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    let data = torrent_data(&meta, tmp.path());
    let out = tmp.join("out");
    let written = partial(&meta, &data, &out);

    // Another program rewrites one byte of piece 0, later (file times have a granularity
    // of a few milliseconds, so a test that rewrote at once could keep the same time).
    let file = out.join("payload-ünï/a.bin");
    let recorded = fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let later = recorded + std::time::Duration::from_secs(1);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let mut st = open(&meta, &out);
    let Resume::NeedsRecheck(why) = st.resume().clone() else {
        panic!("an altered file must not be trusted");
    };
    assert!(why.contains("changed since the sidecar"), "{why}");
    assert_eq!(st.uploaded(), 12345, "the upload count survives a recheck");
    let mut calls = 0;
    let found = st
        .recheck(|done, total| {
            calls += 1;
            assert!(done <= total);
        })
        .unwrap();
    assert_eq!(calls, meta.piece_count());
    let expected: Vec<u32> = written.into_iter().filter(|&i| i != 0).collect();
    assert_eq!(found as usize, expected.len());
    assert_eq!(st.have().ones().collect::<Vec<_>>(), expected);
    drop(st);
    // The recheck's result is recorded: the next start trusts it.
    let st = open(&meta, &out);
    assert_eq!(st.resume(), &Resume::Trusted);
    assert_eq!(st.have().ones().collect::<Vec<_>>(), expected);
}

#[test]
fn corrupt_truncated_or_foreign_sidecars_lead_to_a_recheck_that_finds_the_valid_pieces() {
    let tmp = TempDir::new("st-sidecar");
    let payload = multi_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    let (other, _) = torrent_of(&single_file_payload(tmp.path()), 16384);
    let data = torrent_data(&meta, tmp.path());
    let out = tmp.join("out");
    let written = partial(&meta, &data, &out);
    let sidecar = out.join(".payload-ünï.btmini");
    let good = fs::read(&sidecar).unwrap();
    let decoded = Sidecar::decode(&good).unwrap();
    let mut foreign = decoded.clone();
    foreign.info_hash = other.info_hash;

    let mut flipped = good.clone();
    flipped[60] ^= 0x10;
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("corrupt", Some(flipped), "damaged (checksum mismatch)"),
        (
            "truncated",
            Some(good[..good.len() / 2].to_vec()),
            "damaged",
        ),
        ("empty", Some(vec![]), "damaged"),
        (
            "foreign",
            Some(foreign.encode()),
            "belongs to another torrent",
        ),
        ("missing", None, "no sidecar"),
    ];
    for (what, bytes, reason) in cases {
        match &bytes {
            Some(b) => fs::write(&sidecar, b).unwrap(),
            None => fs::remove_file(&sidecar).unwrap(),
        }
        let mut st = open(&meta, &out);
        match st.resume() {
            Resume::NeedsRecheck(why) => assert!(why.contains(reason), "{what}: {why}"),
            r => panic!("{what}: {r:?}"),
        }
        st.recheck(|_, _| {}).unwrap();
        assert_eq!(st.have().ones().collect::<Vec<_>>(), written, "{what}");
        // Put the known sidecar back for the next case.
        drop(st);
        fs::write(&sidecar, &good).unwrap();
    }
    // --recheck on a good sidecar.
    let st = Storage::open(
        meta.clone(),
        &out,
        StorageOptions {
            force_recheck: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(st.resume(), Resume::NeedsRecheck(w) if w.contains("asked")));
}

#[test]
fn wrong_size_files_are_refused_unless_overwrite() {
    let tmp = TempDir::new("st-size");
    let payload = three_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    let out = tmp.join("out");
    write_file(&out.join("span/c"), 1, 2_999);
    let e = Storage::open(meta.clone(), &out, StorageOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            StorageError::WrongSize {
                expected: 3000,
                found: 2999,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("span/c' is 2999 bytes but the torrent says 3000"),
        "{e}"
    );
    assert!(e.to_string().contains("--overwrite"), "{e}");
    let opts = StorageOptions {
        overwrite: true,
        ..Default::default()
    };
    let st = Storage::open(meta.clone(), &out, opts).unwrap();
    assert!(matches!(st.resume(), Resume::NeedsRecheck(_)));
    assert_eq!(fs::metadata(out.join("span/c")).unwrap().len(), 3000);
    // A folder where a file must go.
    let out2 = tmp.join("out2");
    fs::create_dir_all(out2.join("span/a")).unwrap();
    let e = Storage::open(meta, &out2, StorageOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::NotAFile(_)), "{e}");
}

#[test]
fn existing_complete_data_is_kept_and_found_by_recheck() {
    let tmp = TempDir::new("st-seed");
    let payload = three_file_payload(tmp.path());
    let (meta, _) = torrent_of(&payload, 16384);
    // The data is already there (seeding what you made): open it in place.
    let mut st = open(&meta, tmp.path());
    assert!(matches!(st.resume(), Resume::NeedsRecheck(_)));
    assert_eq!(st.recheck(|_, _| {}).unwrap(), meta.piece_count());
    assert!(st.have().is_full());
    drop(st);
    assert_eq!(
        fs::read(payload.join("a")).unwrap(),
        seeded_bytes(11, 10_000)
    );
}

#[test]
fn a_file_over_4_gib_maps_and_writes_at_a_high_offset() {
    use btmini::bencode::Item;
    let tmp = TempDir::new("st-big");
    let piece_length: u64 = 4 << 20;
    let total: u64 = (5 << 30) + 12345;
    let count = total.div_ceil(piece_length);
    // The pieces we write: one just past 4 GiB and the short last one.
    let high = ((4u64 << 30) / piece_length + 1) as u32;
    let last = (count - 1) as u32;
    let block = |i: u32| -> Vec<u8> {
        let size = if i == last {
            total - u64::from(last) * piece_length
        } else {
            piece_length
        };
        seeded_bytes(u64::from(i), size as usize)
    };
    let mut hashes = vec![0u8; 20 * count as usize];
    for i in [high, last] {
        let h = btmini::hash::sha1(&block(i));
        hashes[20 * i as usize..][..20].copy_from_slice(&h);
    }
    let mut info = Item::dict();
    info.insert("name", Item::str("big.bin"));
    info.insert("piece length", Item::Int(piece_length as i64));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(total as i64));
    let mut root = Item::dict();
    root.insert("info", info);
    let meta = Arc::new(Metainfo::from_bytes(&root.encode()).unwrap());
    let opts = StorageOptions {
        allocation: Allocation::Sparse,
        ..Default::default()
    };
    let mut st = Storage::open(meta, tmp.path(), opts).unwrap();
    for i in [high, last] {
        assert_eq!(st.write_piece(i, &block(i)).unwrap(), WriteOutcome::Written);
    }
    st.flush().unwrap();
    let mut back = Vec::new();
    st.read_block(last, 0, 12345, &mut back).unwrap();
    assert_eq!(back, block(last));
    drop(st);
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(tmp.join("big.bin")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), total);
    let mut buf = vec![0u8; piece_length as usize];
    f.read_exact_at(&mut buf, u64::from(high) * piece_length)
        .unwrap();
    assert_eq!(buf, block(high));
}

#[test]
fn a_too_small_file_system_gives_a_clear_error_before_anything_is_created() {
    let tmp = TempDir::new("st-full");
    let payload = tmp.join("four.bin");
    write_file(&payload, 3, 4 << 20);
    let (meta, _) = torrent_of(&payload, 16384);
    let fs_ = Tmpfs::mount("2m");
    let out = fs_.0.join("out");
    let e = Storage::open(meta, &out, StorageOptions::default())
        .err()
        .unwrap();
    let StorageError::NoRoom { needed, free, .. } = e else {
        panic!("expected NoRoom, got {e}");
    };
    assert_eq!(needed, 4 << 20);
    assert!(free <= 2 << 20);
    assert!(e.to_string().starts_with("not enough disk space in"), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("needs {needed} more bytes, {free} are free"))
    );
    let created: Vec<_> = fs::read_dir(&out).map(|d| d.collect()).unwrap_or_default();
    assert!(
        created.is_empty(),
        "no data file may be created when there is no room"
    );
}

/// libtorrent's hybrid torrents pad every file to a piece boundary (BEP 47): the padding is
/// hashed as zeros but never created on disk, and libtorrent verifies the result.
#[test]
fn padding_files_are_never_written() {
    let tmp = TempDir::new("st-pad");
    let payload = multi_file_payload(tmp.path());
    let t = tmp.join("hybrid.torrent");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    run_ok(
        Command::new(PYTHON)
            .arg(script)
            .arg("create")
            .arg(&payload)
            .arg(&t)
            .arg("hybrid"),
    );
    let meta = Arc::new(Metainfo::from_bytes(&fs::read(&t).unwrap()).unwrap());
    assert!(meta.files.iter().any(|f| f.padding && f.length > 0));
    let mut data = Vec::new();
    for f in &meta.files {
        if f.padding {
            data.resize(data.len() + f.length as usize, 0);
        } else {
            let path = f.path.iter().fold(tmp.path().to_owned(), |p, c| p.join(c));
            data.extend(fs::read(path).unwrap());
        }
    }
    let out = tmp.join("out");
    let mut st = open(&meta, &out);
    for i in 0..meta.piece_count() {
        assert_eq!(
            st.write_piece(i, piece(&meta, &data, i)).unwrap(),
            WriteOutcome::Written
        );
    }
    // A block that runs into padding reads back its zeros.
    let last_of_a = meta.files.iter().position(|f| f.padding).unwrap() - 1;
    let a = &meta.files[last_of_a];
    let end = a.offset + a.length;
    let (index, begin) = (
        (end / meta.piece_length) as u32,
        (end % meta.piece_length) as u32,
    );
    let mut block = Vec::new();
    st.read_block(index, begin - 10, 20, &mut block).unwrap();
    assert_eq!(&block[10..], &[0u8; 10]);
    st.flush().unwrap();
    drop(st);
    let mut on_disk = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                on_disk.push(p.strip_prefix(&out).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(!on_disk.iter().any(|p| p.contains(".pad")), "{on_disk:?}");
    assert_eq!(
        on_disk.len(),
        meta.files.iter().filter(|f| !f.padding).count() + 1,
        "{on_disk:?}"
    );
    let checked = libtorrent(&[OsStr::new("recheck"), t.as_os_str(), out.as_os_str()]);
    assert_eq!(checked["pieces_have"], meta.piece_count());
}
