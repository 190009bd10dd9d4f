//! One peer connection's state: where the handshake is, the four choke/interest flags, the
//! peer's pieces, our requests to it, its rate and when it was last heard. Bytes come in
//! through [`Peer::rx`] and go out through [`Peer::tx`]; the session decides what they mean.

use crate::bitfield::Bitfield;
use crate::picker::BlockRef;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Our outgoing TCP connect is under way.
    Connecting,
    /// Waiting for the peer's handshake.
    Handshake,
    /// Handshakes exchanged: messages flow.
    Active,
}

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

/// A peer connection.
#[derive(Debug)]
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// We dialled it.
    pub outgoing: bool,
    /// Handshake progress.
    pub stage: Stage,
    /// Its peer id, once the handshake arrived.
    pub peer_id: Option<[u8; 20]>,
    /// Bytes received and not yet parsed.
    pub rx: Vec<u8>,
    /// Bytes to send.
    pub tx: Vec<u8>,
    /// We choke it (it may not download from us).
    pub am_choking: bool,
    /// We want something it has.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It wants something we have.
    pub peer_interested: bool,
    /// Pieces it has.
    pub has: Bitfield,
    /// Pieces it has that we still want.
    pub interesting: u32,
    /// Our requests to it, with when they were sent.
    pub requests: Vec<(BlockRef, Instant)>,
    /// When it connected (or we started connecting).
    pub since: Instant,
    /// Last bytes from it.
    pub last_heard: Instant,
    /// Last bytes to it.
    pub last_sent: Instant,
    /// Payload bytes it sent us.
    pub downloaded: u64,
    /// Download rate from it.
    pub rate: Rate,
    /// Blocks it sent that were not asked for.
    pub unasked: u32,
    /// Requests we withdrew (cancelled, timed out, discarded by its choke) whose blocks
    /// may still arrive: that many unasked blocks are not held against it.
    pub withdrawn: u32,
    /// Pieces it helped with that failed their hash.
    pub strikes: u32,
    /// Its requests to us, waiting to be read from storage and sent.
    pub upload_queue: VecDeque<BlockRef>,
    /// Reads asked of the shell and not yet answered.
    pub reading: usize,
    /// Payload bytes we sent it.
    pub uploaded: u64,
    /// Upload rate to it.
    pub up_rate: Rate,
    /// When it last asked us for a block.
    pub last_request: Option<Instant>,
    /// In the session's list of peers with bytes to send.
    pub queued: bool,
}

impl Peer {
    /// A new connection to or from `addr` with a torrent of `pieces` pieces.
    pub fn new(addr: SocketAddr, outgoing: bool, pieces: u32, now: Instant) -> Self {
        Self {
            addr,
            outgoing,
            stage: if outgoing {
                Stage::Connecting
            } else {
                Stage::Handshake
            },
            peer_id: None,
            rx: Vec::new(),
            tx: Vec::new(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            has: Bitfield::new(pieces),
            interesting: 0,
            requests: Vec::new(),
            since: now,
            last_heard: now,
            last_sent: now,
            downloaded: 0,
            rate: Rate::default(),
            unasked: 0,
            withdrawn: 0,
            strikes: 0,
            upload_queue: VecDeque::new(),
            reading: 0,
            uploaded: 0,
            up_rate: Rate::default(),
            last_request: None,
            queued: false,
        }
    }

    /// Whether it has been heard from within `window`.
    pub fn alive(&self, now: Instant, window: Duration) -> bool {
        now.duration_since(self.last_heard) < window
    }

    /// Whether it has every piece.
    pub fn is_seed(&self) -> bool {
        self.has.is_full()
    }

    /// Whether we have a request out for `r`.
    pub fn asked(&self, r: BlockRef) -> bool {
        self.requests.iter().any(|(q, _)| *q == r)
    }

    /// How many requests to keep in flight: enough for about two seconds at its rate,
    /// at least 8 and at most 250.
    pub fn pipeline(&self) -> usize {
        let per_two_secs = self.rate.get() * 2.0 / f64::from(crate::wire::BLOCK);
        (per_two_secs as usize).clamp(8, 250)
    }
}
