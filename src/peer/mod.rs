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

/// Exponentially smoothed bytes per second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pending: u64,
    per_sec: f64,
}

impl Rate {
    /// Counts `n` bytes.
    pub fn add(&mut self, n: u64) {
        self.pending += n;
    }

    /// Folds what was counted over the last `dt` into the rate.
    pub fn tick(&mut self, dt: Duration) {
        let secs = dt.as_secs_f64();
        if secs > 0.0 {
            let now = self.pending as f64 / secs;
            self.per_sec = 0.6 * self.per_sec + 0.4 * now;
            self.pending = 0;
        }
    }

    /// Bytes per second.
    pub fn get(&self) -> f64 {
        self.per_sec
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
