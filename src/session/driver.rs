//! The shell's half of the session's drive contract, written once: every [`Action`] is
//! carried out through a [`Shell`] and its result fed back, and every peer the session
//! names gets its bytes written. The engine drives real sockets and storage through it;
//! the simulated swarms in the tests, the session fuzz target and `tools/swarm_scale.rs`
//! drive fakes through it. A new action is one new [`Shell`] method, which every shell must
//! then implement: none can fall out of step.

use super::{Action, Session};
use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;
use crate::peer::CloseReason;
use crate::picker::BlockRef;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What became of a dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dial {
    /// Under way: the shell calls [`Session::connected`] or [`Session::closed`] later.
    Started,
    /// Connected at once (simulations).
    Connected,
    /// Failed at once.
    Failed,
}

/// What became of a complete piece handed to [`Shell::store`].
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Done with now: whether its hash matched and it is stored; the buffer comes back.
    Now(bool, Vec<u8>),
    /// Its hash matched and it is on its way to disk: once it is written, the shell gives
    /// the buffer back with [`Session::recycle`] and reports it with
    /// [`Session::piece_result`] (`ok`, no contributor to blame).
    Later,
}

/// What [`Shell::metadata`] gives back: the torrent, its verified pieces, the pieces' tiers.
pub type Installed = (Arc<Metainfo>, Bitfield, Vec<u8>);

/// What a [`Shell`] does with the session's actions and bytes.
pub trait Shell {
    /// A fatal error (storage); per-peer trouble is never one.
    type Error;

    /// Opens a connection to `addr` for peer `key`.
    fn dial(&mut self, key: usize, addr: SocketAddr) -> Dial;

    /// The session closed peer `key` for `reason`: release its connection.
    fn close(&mut self, key: usize, reason: &CloseReason);

    /// Checks and stores piece `index`.
    fn store(&mut self, index: u32, data: Vec<u8>) -> Result<Stored, Self::Error>;

    /// Reads a verified block into `into` (cleared first).
    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), Self::Error>;

    /// The session wants more peers.
    fn want_peers(&mut self);

    /// Every piece is verified.
    fn completed(&mut self) -> Result<(), Self::Error>;

    /// A peer's DHT node is at `addr` (its `port` message): ping it.
    fn dht_node(&mut self, addr: SocketAddr);

    /// The metadata of a torrent started from its info-hash arrived (the raw `info`
    /// dictionary, already checked against the info-hash): validate it, open storage, and
    /// return the torrent, the pieces already verified on disk, which start the download,
    /// and the pieces' tiers ([`Session::set_piece_tiers`]; empty when every file is
    /// wanted alike).
    fn metadata(&mut self, info: Vec<u8>) -> Result<Installed, Self::Error>;

    /// Writes `bytes` to peer `key`: how many were taken (0: try again when writable), or
    /// `None` when the connection failed (the driver tells the session).
    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize>;
}

/// Carries out the session's actions until none is left; returns how many there were.
/// `buf` is scratch space for block reads, kept by the caller to spare allocations.
pub fn run_actions<S: Shell + ?Sized>(
    s: &mut Session,
    shell: &mut S,
    buf: &mut Vec<u8>,
    now: Instant,
) -> Result<usize, S::Error> {
    let mut n = 0;
    while let Some(a) = s.poll_action() {
        n += 1;
        match a {
            Action::Connect { key, addr } => match shell.dial(key, addr) {
                Dial::Started => {}
                Dial::Connected => s.connected(key, now),
                Dial::Failed => s.closed(key, now),
            },
            Action::Close { key, reason } => shell.close(key, &reason),
            Action::Verify(c) => {
                if let Stored::Now(ok, data) = shell.store(c.index, c.data)? {
                    // Recycled first: the result may start a new piece in this buffer.
                    s.recycle(data);
                    s.piece_result(c.index, ok, &c.contributors, now);
                }
            }
            Action::Read { key, block } => {
                buf.clear();
                shell.read(block, buf)?;
                s.block_read(key, block, buf, now);
            }
            Action::WantPeers => shell.want_peers(),
            Action::Completed => shell.completed()?,
            Action::DhtNode(addr) => shell.dht_node(addr),
            Action::Metadata(info) => {
                let (meta, have, tiers) = shell.metadata(info)?;
                s.set_piece_tiers(tiers, now);
                s.set_metadata(&meta, have, now);
            }
        }
    }
    Ok(n)
}

/// Carries out actions and writes them out, round after round, until no action is left
/// (writing lets the session queue more block reads: [`Session::sent`]), at most `rounds`
/// rounds; returns whether actions are still left. Stopping when a round *began* with no
/// action would leave the reads its write queued waiting for the peer's next message: a
/// seeder paced by its leecher's requests, one 256 KiB write per wakeup (issue 13).
pub fn drain<S: Shell + ?Sized>(
    s: &mut Session,
    shell: &mut S,
    buf: &mut Vec<u8>,
    now: Instant,
    rounds: usize,
) -> Result<bool, S::Error> {
    for _ in 0..rounds {
        run_actions(s, shell, buf, now)?;
        flush_writes(s, shell, now);
        if !s.has_actions() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes what the session queued, for the peers it names (no scan over every peer), each
/// until its bytes are gone or the shell takes no more.
pub fn flush_writes<S: Shell + ?Sized>(s: &mut Session, shell: &mut S, now: Instant) {
    while let Some(key) = s.next_to_send() {
        loop {
            let pending = s.tx(key);
            if pending.is_empty() {
                break;
            }
            match shell.write(key, pending) {
                Some(0) => break,
                Some(n) => s.sent(key, n, now),
                None => {
                    s.closed(key, now);
                    break;
                }
            }
        }
    }
}
