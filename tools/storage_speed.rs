//! Write throughput through the storage layer (SHA-1 check + copy into the map) on a 1 GiB
//! single-file torrent, with the sidecar flushing as in a real download and with one flush
//! at the end only. `cargo run --release --example storage_speed -- [DIR] [MiB] [PIECE_KiB]`

use btmini::bencode::Item;
use btmini::metainfo::Metainfo;
use btmini::storage::{Storage, StorageOptions, WriteOutcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/storage_speed".into()));
    let mib: u64 = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let piece_kib: u64 = args.next().map_or(1024, |a| a.parse().expect("KiB"));
    let piece_len = piece_kib << 10;
    let total = mib << 20;
    let count = total.div_ceil(piece_len) as u32;

    // Piece i is a fixed random buffer with i in its first 8 bytes: distinct pieces without
    // holding 1 GiB in memory.
    let mut buf: Vec<u8> = (0..piece_len)
        .map(|i| ((i * 2_654_435_761) >> 13) as u8)
        .collect();
    let set = |buf: &mut Vec<u8>, i: u32| buf[..8].copy_from_slice(&u64::from(i).to_le_bytes());
    let mut hashes = Vec::with_capacity(20 * count as usize);
    let started = Instant::now();
    for i in 0..count {
        set(&mut buf, i);
        hashes.extend_from_slice(&btmini::hash::sha1(&buf));
    }
    let hash_secs = started.elapsed().as_secs_f64();
    let mut info = Item::dict();
    info.insert("name", Item::str("speed.bin"));
    info.insert("piece length", Item::Int(piece_len as i64));
    info.insert("pieces", Item::bytes(&hashes));
    info.insert("length", Item::Int(total as i64));
    let mut root = Item::dict();
    root.insert("info", info);
    let meta = Arc::new(Metainfo::from_bytes(&root.encode()).unwrap());
    let mb = |secs: f64| total as f64 / secs / 1e6;
    println!("SHA-1 alone: {:.0} MB/s", mb(hash_secs));

    for (label, policy) in [
        ("sidecar flushing as a download does", true),
        ("one flush at the end", false),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = Instant::now();
        let mut st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
        let open_secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut flushes = 0;
        for i in 0..count {
            set(&mut buf, i);
            assert_eq!(st.write_piece(i, &buf).unwrap(), WriteOutcome::Written);
            if policy && st.wants_flush(Instant::now()) {
                st.flush().unwrap();
                flushes += 1;
            }
        }
        let write_secs = t1.elapsed().as_secs_f64();
        st.flush().unwrap();
        let all_secs = t1.elapsed().as_secs_f64();
        println!(
            "{label}: open+reserve {open_secs:.3} s; writes {:.0} MB/s; writes+final flush \
             {:.0} MB/s ({flushes} flushes on the way)",
            mb(write_secs),
            mb(all_secs)
        );
    }
    // Resume: the sidecar is trusted, no hashing.
    let t = Instant::now();
    let st = Storage::open(meta.clone(), &dir, StorageOptions::default()).unwrap();
    println!(
        "resume of the complete torrent: {:.3} ms ({:?})",
        t.elapsed().as_secs_f64() * 1e3,
        st.resume()
    );
    drop(st);
    // Recheck: everything hashed again from the map (data in the page cache).
    let opts = StorageOptions {
        force_recheck: true,
        ..Default::default()
    };
    let mut st = Storage::open(meta.clone(), &dir, opts).unwrap();
    let t = Instant::now();
    let found = st.recheck(|_, _| {}).unwrap();
    println!(
        "recheck: {found}/{count} pieces at {:.0} MB/s",
        mb(t.elapsed().as_secs_f64())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
