//! A peer as the session sees it: its `Connection` (the protocol of one connection: the
//! handshake, codec, extensions and request accounting) plus what is about the torrent —
//! the pieces it has, what we want of them, its rates, its strikes for bad data.

mod close;
mod connection;
pub(crate) mod early;

pub use close::{CloseReason, Violation};
pub(crate) use connection::{Connection, Input, Queued, Timers};
pub use connection::{FLOOD_FACTOR, OUR_RESERVED, PEX_BURST, Stage, allowed_fast_set};
pub(crate) use early::EarlyHas;
pub use early::MAX_PIECES;

use crate::bitfield::Bitfield;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Exponentially smoothed bytes per second, over whole-second windows that are closed as
/// time is seen to pass (by [`Rate::add`] and [`Rate::get`]): nothing needs to tick it, and a
/// peer gone quiet reads as slowing down without being touched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    /// Bytes counted in the open window.
    pending: u64,
    per_sec: f64,
    /// Where the open window began; `None` before the first byte.
    window: Option<Instant>,
}

/// The weight of the newest window in the smoothed rate.
const RATE_NEW: f64 = 0.4;

impl Rate {
    /// Counts `n` bytes at `now`.
    pub fn add(&mut self, n: u64, now: Instant) {
        *self = self.at(now);
        self.window.get_or_insert(now);
        self.pending += n;
    }

    /// Bytes per second as of `now`.
    pub fn get(&self, now: Instant) -> f64 {
        self.at(now).per_sec
    }

    /// The rate with every window that ended by `now` folded in.
    fn at(&self, now: Instant) -> Self {
        let Some(start) = self.window else {
            return *self;
        };
        let windows = now.saturating_duration_since(start).as_secs();
        if windows == 0 {
            return *self;
        }
        let mut per_sec = (1.0 - RATE_NEW) * self.per_sec + RATE_NEW * self.pending as f64;
        // Each window after the first was empty; after 60 of them nothing is left.
        for _ in 1..windows.min(60) {
            per_sec *= 1.0 - RATE_NEW;
        }
        if windows >= 60 {
            per_sec = 0.0;
        }
        Self {
            pending: 0,
            per_sec,
            window: Some(start + Duration::from_secs(windows)),
        }
    }
}

/// A connected (or connecting) peer.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The connection's protocol state.
    pub(crate) conn: Connection,
    /// Pieces it has.
    pub(crate) has: Bitfield,
    /// Pieces it has that we still want.
    pub(crate) interesting: u32,
    /// Payload bytes it sent us.
    pub(crate) downloaded: u64,
    /// Download rate from it.
    pub(crate) rate: Rate,
    /// Pieces it helped with that failed their hash.
    pub(crate) strikes: u32,
    /// Payload bytes we sent it.
    pub(crate) uploaded: u64,
    /// Upload rate to it.
    pub(crate) up_rate: Rate,
    /// When it last asked us for a block.
    pub(crate) last_request: Option<Instant>,
    /// In the session's list of peers with bytes to send.
    pub(crate) queued: bool,
    /// What it said it has before the metadata was known (magnets).
    pub(crate) early: EarlyHas,
}

impl Peer {
    /// A new connection to or from `addr` with a torrent of `pieces` pieces.
    pub(crate) fn new(addr: SocketAddr, outgoing: bool, pieces: u32, now: Instant) -> Self {
        Self {
            conn: Connection::new(addr, outgoing, now),
            has: Bitfield::new(pieces),
            interesting: 0,
            downloaded: 0,
            rate: Rate::default(),
            strikes: 0,
            uploaded: 0,
            up_rate: Rate::default(),
            last_request: None,
            queued: false,
            early: EarlyHas::default(),
        }
    }

    /// Whether it has every piece.
    pub(crate) fn is_seed(&self) -> bool {
        // Before the metadata is known the bitfield has no bits, and says nothing.
        !self.has.is_empty() && self.has.is_full()
    }

    /// Whether its handshake is done.
    pub(crate) fn is_active(&self) -> bool {
        self.conn.stage == Stage::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_follows_a_steady_flow_and_falls_once_it_stops_with_no_tick() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        // 100 kB every 100 ms for 20 s: 1 MB/s.
        for i in 0..200u64 {
            r.add(100_000, t0 + Duration::from_millis(100 * i));
        }
        let steady = r.get(t0 + Duration::from_secs(20));
        assert!((steady - 1e6).abs() < 1e4, "{steady}");
        // Nothing more arrives: read a few seconds later, it has fallen, and a minute
        // later it is nothing.
        let later = r.get(t0 + Duration::from_secs(23));
        assert!(later < 0.3 * steady, "{later}");
        assert_eq!(r.get(t0 + Duration::from_secs(90)), 0.0);
        // Reading does not change it.
        assert_eq!(r.get(t0 + Duration::from_secs(20)), steady);
    }
}
