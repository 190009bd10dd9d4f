//! The speed limit for `btmini create`: this build's SHA-1 hashing a buffer already in memory, in
//! pieces of the given length. `cargo run --release --example sha1_speed -- [MiB] [PIECE]`

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let piece: usize = args
        .next()
        .map_or(1 << 20, |a| a.parse().expect("piece bytes"));
    // 64 MiB of non-zero data, hashed over and over: the speed of SHA-1 does not depend on
    // the bytes, and a small buffer keeps memory out of the measurement.
    let chunk: Vec<u8> = (0..64usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let total = mib << 20;
    let started = Instant::now();
    let mut done = 0;
    let mut sink = 0u8;
    while done < total {
        for p in chunk.chunks(piece) {
            sink ^= btmini::hash::sha1(p)[0];
        }
        done += chunk.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} MiB in {secs:.3} s = {:.0} MB/s (checksum byte {sink})",
        btmini::hash::IMPLEMENTATION,
        done >> 20,
        done as f64 / secs / 1e6
    );
}
