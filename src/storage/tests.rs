use super::*;
use crate::bencode::Item;

fn temp_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("btmini-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Files of the given sizes named `f0000`…, content a function of the global offset, in
/// pieces of `piece` bytes; the torrent is named `name`.
fn torrent_of(name: &str, sizes: &[usize], piece: usize) -> (Arc<Metainfo>, Vec<u8>) {
    let total: usize = sizes.iter().sum();
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let pieces: Vec<u8> = data.chunks(piece).flat_map(crate::hash::sha1).collect();
    let files = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut d = Item::dict();
            d.insert("length", Item::Int(size as i64));
            d.insert(
                "path",
                Item::List(vec![Item::Bytes(format!("f{i:04}").into_bytes().into())]),
            );
            d
        })
        .collect();
    let mut info = Item::dict();
    info.insert("name", Item::str(name));
    info.insert("piece length", Item::Int(piece as i64));
    info.insert("pieces", Item::bytes(&pieces));
    info.insert("files", Item::List(files));
    let mut root = Item::dict();
    root.insert("info", info);
    (
        Arc::new(Metainfo::from_bytes(&root.encode()).unwrap()),
        data,
    )
}

/// `n` files of `size` bytes each, in pieces of `piece` bytes.
fn many_files(n: usize, size: usize, piece: usize) -> (Arc<Metainfo>, Vec<u8>) {
    torrent_of("many", &vec![size; n], piece)
}

#[test]
fn thousands_of_files_keep_a_bounded_number_open() {
    let dir = temp_dir("many");
    let (meta, data) = many_files(1000, 3000, 16384);
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    assert_eq!(st.resume(), &Resume::Fresh);
    for i in 0..meta.piece_count() {
        let p = &data[i as usize * 16384..][..meta.piece_size(i) as usize];
        assert_eq!(st.write_piece(i, p).unwrap(), WriteOutcome::Written);
        assert!(st.files.open_count() <= MAX_OPEN_FILES);
    }
    st.flush().unwrap();
    for (i, chunk) in data.chunks(3000).enumerate() {
        assert_eq!(
            std::fs::read(dir.join(format!("many/f{i:04}"))).unwrap(),
            chunk
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flush_policy_counts_pieces_and_time() {
    let dir = temp_dir("policy");
    let (meta, data) = many_files(1, 100 * 16384, 16384);
    let mut st = Storage::open(meta, &dir, StorageOptions::default()).unwrap();
    let t0 = Instant::now();
    assert!(!st.wants_flush(t0));
    st.write_piece(0, &data[..16384]).unwrap();
    assert!(!st.wants_flush(t0));
    assert!(!st.wants_flush(t0 + Duration::from_secs(4)));
    assert!(st.wants_flush(t0 + FLUSH_INTERVAL));
    st.flush().unwrap();
    assert!(!st.wants_flush(t0 + FLUSH_INTERVAL * 2));
    for i in 1..=FLUSH_PIECES {
        assert!(!st.wants_flush(t0 + FLUSH_INTERVAL * 2));
        st.write_piece(i, &data[i as usize * 16384..][..16384])
            .unwrap();
    }
    assert!(st.wants_flush(t0 + FLUSH_INTERVAL * 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Resident bytes of this process's mappings of `path`, from /proc/self/smaps (which, unlike
/// VmRSS, other tests running in parallel cannot disturb).
fn mapped_rss(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut ours = false;
    let mut kib = 0;
    for line in smaps.lines() {
        if let Some(first) = line.split_whitespace().next() {
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                ours = line.ends_with(name);
                continue;
            }
        }
        if ours {
            if let Some(v) = line.strip_prefix("Rss:") {
                kib += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    kib * 1024
}

#[test]
fn pages_read_through_the_map_are_released_and_nothing_is_lost() {
    let dir = temp_dir("release");
    let piece = 256 * 1024;
    let (meta, data) = many_files(1, 64 * piece, piece);
    let file = dir.join("many/f0000");
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    for i in 0..meta.piece_count() {
        let p = &data[i as usize * piece..][..piece];
        st.write_piece(i, p).unwrap();
    }
    assert_eq!(mapped_rss(&file), 0, "writes do not go through the map");
    st.flush().unwrap();
    // Serve all 16 MiB twice, block by block, as to a peer.
    let mut most = 0;
    for _ in 0..2 {
        for i in 0..meta.piece_count() {
            for b in 0..(piece as u32 / 16384) {
                let mut out = Vec::new();
                st.read_block(i, b * 16384, 16384, &mut out).unwrap();
                let at = i as usize * piece + b as usize * 16384;
                assert_eq!(out, &data[at..at + 16384]);
                most = most.max(mapped_rss(&file));
            }
        }
    }
    assert!(most > 0, "reads do go through the map");
    assert!(
        most <= files::RELEASE_BYTES + 64 * 1024,
        "{most} bytes of the map resident at most"
    );
    assert!(st.files.unreleased() < files::RELEASE_BYTES);
    // The released pages come back from the page cache, and from disk after a restart.
    drop(st);
    assert_eq!(std::fs::read(&file).unwrap(), data);
    let st = Storage::open(meta, &dir, StorageOptions::default()).unwrap();
    assert_eq!(st.resume(), &Resume::Trusted);
    assert!(st.have().is_full());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recheck_leaves_none_of_the_data_it_read_resident() {
    let dir = temp_dir("recheck-release");
    let piece = 64 * 1024;
    // Smaller than RELEASE_BYTES: only the recheck's own release lets it go.
    let (meta, data) = many_files(1, 16 * piece, piece);
    let file = dir.join("many/f0000");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &data).unwrap();
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    assert!(matches!(st.resume(), Resume::NeedsRecheck(_)));
    assert_eq!(st.recheck(|_, _| {}).unwrap(), meta.piece_count());
    assert_eq!(
        mapped_rss(&file),
        0,
        "the pages the check read are released"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files of 10,000, 40,000 and 7,000 bytes in 16 KiB pieces: piece 0 covers files 0 and 1,
/// pieces 1 and 2 file 1 alone, piece 3 files 1 and 2.
fn three_files() -> (Arc<Metainfo>, Vec<u8>) {
    torrent_of("sel", &[10_000, 40_000, 7_000], 16384)
}

fn piece_of(meta: &Metainfo, data: &[u8], i: u32) -> Vec<u8> {
    data[i as usize * 16384..][..meta.piece_size(i) as usize].to_vec()
}

/// Opens `dir` wanting `wanted`, writes every piece `pieces` names, and flushes.
fn fetch_selected(dir: &Path, wanted: &[bool], pieces: &[u32]) -> (Storage, Vec<u8>) {
    let (meta, data) = three_files();
    let mut st =
        Storage::open_selected(meta.clone(), dir, StorageOptions::default(), wanted).unwrap();
    for &i in pieces {
        let p = piece_of(&meta, &data, i);
        assert_eq!(st.write_piece(i, &p).unwrap(), WriteOutcome::Written);
    }
    st.flush().unwrap();
    (st, data)
}

#[test]
fn an_unwanted_file_is_not_created_and_its_share_of_wanted_pieces_is_kept_aside() {
    let dir = temp_dir("sel-basic");
    let (mut st, data) = fetch_selected(&dir, &[true, false, true], &[0, 3]);
    let root = dir.join("sel");
    assert!(
        !root.join("f0001").exists(),
        "the unwanted file was created"
    );
    assert_eq!(std::fs::read(root.join("f0000")).unwrap(), &data[..10_000]);
    assert_eq!(std::fs::read(root.join("f0002")).unwrap(), &data[50_000..]);
    let parts = parts_path(&dir, st.meta());
    let kept = std::fs::metadata(&parts).unwrap();
    assert!(kept.len() <= 2 * 16384, "part file of {} bytes", kept.len());
    // Piece 1 lies in the unwanted file alone (a piece started before the file was
    // deselected): there is nowhere to keep it.
    let meta = st.meta.clone();
    assert_eq!(
        st.write_piece(1, &piece_of(&meta, &data, 1)).unwrap(),
        WriteOutcome::Dropped
    );
    assert!(!st.has(1));
    drop(st);

    // A restart with the same selection trusts the sidecar and serves both pieces whole.
    let mut st = Storage::open_selected(
        meta.clone(),
        &dir,
        StorageOptions::default(),
        &[true, false, true],
    )
    .unwrap();
    assert_eq!(st.resume(), &Resume::Trusted);
    assert_eq!(st.have().ones().collect::<Vec<_>>(), vec![0, 3]);
    for i in [0, 3] {
        let mut out = Vec::new();
        st.read_block(i, 0, meta.piece_size(i) as u32, &mut out)
            .unwrap();
        assert_eq!(out, piece_of(&meta, &data, i));
    }
    // And a forced recheck finds them again, half of each in the part file.
    let opts = StorageOptions {
        force_recheck: true,
        ..StorageOptions::default()
    };
    let mut st = Storage::open_selected(meta, &dir, opts, &[true, false, true]).unwrap();
    assert_eq!(st.recheck(|_, _| {}).unwrap(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_wanted_later_takes_its_bytes_from_the_part_file_without_a_recheck() {
    for live in [false, true] {
        let dir = temp_dir(&format!("sel-later-{live}"));
        let (st, data) = fetch_selected(&dir, &[true, false, true], &[0, 3]);
        let meta = st.meta.clone();
        let mut st = if live {
            let mut st = st;
            st.set_wanted(&[true, true, true]).unwrap();
            st
        } else {
            drop(st);
            let st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
            assert_eq!(st.resume(), &Resume::Trusted, "no recheck");
            st
        };
        assert!(st.file_on_disk(1));
        assert!(!parts_path(&dir, &meta).exists(), "the part file is gone");
        for i in [1, 2] {
            let p = piece_of(&meta, &data, i);
            assert_eq!(st.write_piece(i, &p).unwrap(), WriteOutcome::Written);
        }
        st.flush().unwrap();
        drop(st);
        assert_eq!(
            std::fs::read(dir.join("sel/f0001")).unwrap(),
            &data[10_000..50_000]
        );
        let st = Storage::open(meta, &dir, StorageOptions::default()).unwrap();
        assert_eq!(st.resume(), &Resume::Trusted);
        assert!(st.have().is_full());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_lost_part_file_means_a_recheck_and_never_trusted_pieces() {
    let dir = temp_dir("sel-lost");
    let (st, _) = fetch_selected(&dir, &[true, false, true], &[0, 3]);
    let meta = st.meta.clone();
    drop(st);
    std::fs::remove_file(parts_path(&dir, &meta)).unwrap();
    let mut st =
        Storage::open_selected(meta, &dir, StorageOptions::default(), &[true, false, true])
            .unwrap();
    assert!(matches!(st.resume(), Resume::NeedsRecheck(_)));
    assert_eq!(st.recheck(|_, _| {}).unwrap(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sparse file of `len` bytes with `marks` (offset, bytes) written into it, in a file set
/// drawing on `budget`.
fn sparse_set(
    tag: &str,
    len: u64,
    marks: &[(u64, &[u8])],
    budget: &'static files::Budget,
) -> (PathBuf, files::FileSet) {
    let dir = temp_dir(tag);
    let path = dir.join("big");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    for &(at, bytes) in marks {
        std::os::unix::fs::FileExt::write_all_at(&f, bytes, at).unwrap();
    }
    let set = files::FileSet::new([(path, len, true, true)]).with_budget(budget);
    (dir, set)
}

fn read_all(set: &mut files::FileSet, at: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    set.read(0, at, len, &mut |b| out.extend_from_slice(b))
        .unwrap();
    out
}

#[test]
fn a_file_past_4_gib_is_read_through_windows_that_stay_within_the_budget() {
    static BUDGET: files::Budget = files::Budget::new(3 * files::WINDOW as usize);
    let len = 5u64 << 30;
    // A read across a window boundary, and marks past 2^32 (a 32-bit offset would wrap).
    let edge = files::WINDOW * 1000 - 5;
    let far = (4u64 << 30) + 12345;
    let marks: [(u64, &[u8]); 3] = [
        (edge, b"across-the-edge"),
        (far, b"past 4 GiB"),
        (len - 3, b"end"),
    ];
    let (dir, mut set) = sparse_set("windows", len, &marks, &BUDGET);
    assert_eq!(read_all(&mut set, edge, 15), b"across-the-edge");
    assert_eq!(set.windows(), 2, "the read mapped both windows it crosses");
    assert_eq!(read_all(&mut set, far, 10), b"past 4 GiB");
    assert_eq!(read_all(&mut set, len - 3, 3), b"end");
    assert_eq!(set.windows(), 3);
    assert_eq!(BUDGET.mapped(), 3 * files::WINDOW as usize);
    // A fourth window: the least recently used one is unmapped for it.
    let mid = 2u64 << 30;
    assert_eq!(read_all(&mut set, mid, 4), [0; 4]);
    assert_eq!(set.windows(), 3);
    assert!(BUDGET.mapped() <= 3 * files::WINDOW as usize);
    assert_eq!(read_all(&mut set, edge, 15), b"across-the-edge");
    set.release();
    assert_eq!(set.windows(), 0);
    assert_eq!(BUDGET.mapped(), 0, "unmapped windows give their bytes back");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_the_budget_held_elsewhere_reads_fall_back_to_pread() {
    static BUDGET: files::Budget = files::Budget::new(files::WINDOW as usize);
    let len = 3 * files::WINDOW;
    let marks: [(u64, &[u8]); 1] = [(files::WINDOW - 2, b"abcd")];
    let (dir, mut other) = sparse_set("budget-a", len, &[], &BUDGET);
    let (dir2, mut set) = sparse_set("budget-b", len, &marks, &BUDGET);
    // Another file set holds the whole budget.
    assert_eq!(read_all(&mut other, 0, 1), [0]);
    assert_eq!(BUDGET.mapped(), files::WINDOW as usize);
    assert_eq!(read_all(&mut set, files::WINDOW - 2, 4), b"abcd");
    assert_eq!(set.windows(), 0, "no window: read with pread");
    other.release();
    assert_eq!(read_all(&mut set, files::WINDOW - 2, 2), b"ab");
    assert_eq!(set.windows(), 1, "a window again once the budget has room");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// A storage writing on a disk thread of its own; the receiver hears each job's end.
fn with_disk(st: &mut Storage) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    st.use_disk(
        Disk::start(move || {
            let _ = tx.send(());
        })
        .unwrap(),
    );
    rx
}

#[test]
fn pieces_written_on_the_disk_thread_come_back_readable_and_are_recorded_after_their_sync() {
    let dir = temp_dir("disk-thread");
    let (meta, data) = many_files(3, 100_000, 16384);
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    let done = with_disk(&mut st);
    let n = meta.piece_count();
    let piece = |i: u32| data[i as usize * 16384..][..meta.piece_size(i) as usize].to_vec();
    // A bad piece is refused here, never queued.
    let mut bad = piece(0);
    bad[0] ^= 1;
    assert_eq!(
        st.submit_piece(0, bad.clone()).unwrap(),
        Submitted::Done(WriteOutcome::HashMismatch, bad)
    );
    for i in 0..n {
        assert_eq!(st.submit_piece(i, piece(i)).unwrap(), Submitted::Queued);
        assert!(!st.has(i), "not verified before it is written");
    }
    assert!(!st.is_durable());
    let mut got = Vec::new();
    while got.len() < n as usize {
        done.recv().unwrap();
        got.extend(st.take_written().unwrap());
    }
    got.sort();
    for (i, (index, buf)) in got.into_iter().enumerate() {
        assert_eq!(
            (index, buf),
            (i as u32, piece(i as u32)),
            "each buffer comes back"
        );
        let mut out = Vec::new();
        st.read_block(index, 0, 100, &mut out).unwrap();
        assert_eq!(out, piece(index)[..100]);
    }
    st.start_flush().unwrap();
    while !st.is_durable() {
        done.recv().unwrap();
        assert!(st.take_written().unwrap().is_empty());
    }
    drop(st);
    let st = Storage::open(meta, &dir, StorageOptions::default()).unwrap();
    assert_eq!(st.resume(), &Resume::Trusted);
    assert!(st.have().is_full());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_write_that_fails_on_the_disk_thread_is_an_error_and_the_piece_is_not_verified() {
    let dir = temp_dir("disk-thread-fail");
    let (meta, data) = many_files(1, 100_000, 16384);
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    let done = with_disk(&mut st);
    // Another program shortens the file: the thread's write refuses to grow it back.
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("many/f0000"))
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(
        st.submit_piece(1, data[16384..32768].to_vec()).unwrap(),
        Submitted::Queued
    );
    done.recv().unwrap();
    assert!(matches!(
        st.take_written(),
        Err(StorageError::Changed { .. })
    ));
    assert!(!st.has(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_that_fails_on_the_disk_thread_is_an_error_and_is_tried_again() {
    let dir = temp_dir("disk-thread-record");
    let (meta, data) = many_files(1, 100_000, 16384);
    let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    let done = with_disk(&mut st);
    // A folder where the sidecar's temporary file goes: its creation fails.
    let tmp = dir.join(".many.btmini.tmp");
    std::fs::create_dir(&tmp).unwrap();
    assert_eq!(
        st.submit_piece(0, data[..16384].to_vec()).unwrap(),
        Submitted::Queued
    );
    done.recv().unwrap();
    assert_eq!(st.take_written().unwrap().len(), 1);
    st.start_flush().unwrap();
    done.recv().unwrap();
    assert!(st.take_written().is_err(), "the failed record is an error");
    assert!(!st.is_durable(), "and nothing counts as recorded");
    std::fs::remove_dir(&tmp).unwrap();
    st.start_flush().unwrap();
    while !st.is_durable() {
        done.recv().unwrap();
        st.take_written().unwrap();
    }
    drop(st);
    let st = Storage::open(meta, &dir, StorageOptions::default()).unwrap();
    assert_eq!(st.resume(), &Resume::Trusted);
    assert!(st.has(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
