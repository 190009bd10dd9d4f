//! How fast can a verified piece get into a freshly reserved file? Measures the write
//! paths issue 8 asks about, on a 1 GiB file (or the MiB given as the first argument),
//! 1 MiB pieces, each run on a new fallocated file:
//!
//! - `map`: copy into a shared map (each first touch page-faults and zero-fills);
//! - `map+populate`: `MADV_POPULATE_WRITE` on the piece's range, then copy;
//! - `pwrite`: `pwrite` into the file's descriptor (the map is kept for reads).
//!
//! `cargo run --release --example write_paths [MiB]`. Five rounds, the paths interleaved;
//! prints MB/s of each path and the process's VmRSS after it (what it leaves mapped), then
//! the median of each path.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

const PIECE: usize = 1 << 20;

fn fresh(path: &str, len: u64) -> File {
    let _ = std::fs::remove_file(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create");
    // SAFETY: a plain system call on an open descriptor.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len as libc::off_t) };
    assert_eq!(rc, 0, "fallocate");
    f
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let len = mib << 20;
    let dir = std::env::var("TMPDIR").unwrap_or_else(|_| "/var/tmp".into());
    let path = format!("{dir}/btmini-write-paths.bin");
    let piece: Vec<u8> = (0..PIECE).map(|i| (i * 7 + 3) as u8).collect();
    let pieces = (len / PIECE as u64) as usize;
    let names = ["map", "map+populate", "pwrite"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..5 {
        // A different client first each round, so none always gets the coldest start.
        for k in 0..names.len() {
            let which = (k + round) % names.len();
            let name = names[which];
            let f = fresh(&path, len);
            // SAFETY: the file is ours, created above, and nothing else changes its size.
            let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.expect("map");
            let t = Instant::now();
            for p in 0..pieces {
                let at = p * PIECE;
                match name {
                    "map" => map[at..at + PIECE].copy_from_slice(&piece),
                    "map+populate" => {
                        map.advise_range(memmap2::Advice::PopulateWrite, at, PIECE)
                            .expect("MADV_POPULATE_WRITE");
                        map[at..at + PIECE].copy_from_slice(&piece);
                    }
                    _ => f.write_all_at(&piece, at as u64).expect("pwrite"),
                }
            }
            let secs = t.elapsed().as_secs_f64();
            let rate = len as f64 / secs / 1e6;
            rates[which].push(rate);
            println!(
                "round {} {name:>13}: {rate:7.0} MB/s  VmRSS after {:7} KiB",
                round + 1,
                vm_rss_kib()
            );
            drop(map);
            // Let writeback finish outside the timing, so it does not slow the next path.
            f.sync_all().expect("sync");
        }
    }
    for (name, r) in names.iter().zip(&mut rates) {
        r.sort_by(f64::total_cmp);
        println!("median {name:>13}: {:7.0} MB/s", r[r.len() / 2]);
    }
    let _ = std::fs::remove_file(&path);
}
