//! Fetching a torrent's metadata from peers (BEP 9), sans I/O: which peer to ask for which
//! 16 KiB piece, what to make of the answers, and when the whole is verified against the
//! info-hash. Peers are the session's keys; time comes in as `now`.
//!
//! The rules, from what real clients do:
//! - One request in flight per peer (rtorrent 0.9.8 stops reading a connection that asks for
//!   two metadata pieces at once), several peers at once.
//! - The size is the first `metadata_size` a peer states, refused over [`MAX_SIZE`] (libtorrent
//!   allows 30 MiB, rqbit 32 MiB); a peer stating another size is not asked.
//! - A piece of the wrong length or for a piece never asked of that peer is the peer's
//!   fault ([`FetchError`]): the session drops it.
//! - A reject frees the piece for another peer and rests the rejecting peer for a minute; a
//!   request unanswered for [`REQUEST_TIMEOUT`] is asked of another peer, and that peer rests.
//! - When every piece is in, the SHA-1 of the whole must be the info-hash. If not and one
//!   peer sent it all, that peer is returned to be banned. If several did, nobody can tell
//!   which lied, and banning them all would let one liar get every good peer banned: the
//!   fetch starts over *solo*, the whole from one peer at a time, so the next wrong hash
//!   names its one sender.
//!
//! Not here: sending the requests (the connection's `ut_metadata`), validating the metadata
//! as a torrent (see [`crate::metainfo`]).

use super::metadata::PIECE;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The largest metadata accepted.
pub const MAX_SIZE: u64 = 32 * 1024 * 1024;

/// A request unanswered this long is asked elsewhere.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer that rejected or did not answer is not asked again.
pub const REST: Duration = Duration::from_secs(60);

/// A peer sent metadata that breaks BEP 9: drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// A `metadata_size` of 0 or over [`MAX_SIZE`].
    BadSize(u64),
    /// Data for a piece we did not ask of it.
    Unasked(u32),
    /// A piece whose length or `total_size` is not what the size says.
    BadPiece(u32),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSize(n) => write!(f, "metadata_size {n} (0, or over {MAX_SIZE})"),
            Self::Unasked(i) => write!(f, "metadata piece {i}, which we did not ask for"),
            Self::BadPiece(i) => write!(f, "metadata piece {i} of the wrong size"),
        }
    }
}

/// What [`MetadataFetch::on_data`] made of a piece.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More pieces are needed.
    More,
    /// Every piece arrived and the whole hashes to the info-hash: the raw `info` bytes.
    Done(Vec<u8>),
    /// Every piece arrived but the hash is wrong; the fetch starts over. The peer named
    /// sent all of it (ban it); `None` when several did, and the fetch goes solo.
    WrongHash(Option<usize>),
}

#[derive(Debug, Default)]
struct PeerState {
    /// The piece asked of it, and when.
    asked: Option<(u32, Instant)>,
    /// Not asked again before this.
    rest_until: Option<Instant>,
}

/// The metadata fetch of one torrent.
#[derive(Debug)]
pub struct MetadataFetch {
    info_hash: [u8; 20],
    size: Option<u64>,
    /// Each piece's bytes once it arrived, and who sent it.
    pieces: Vec<Option<(Vec<u8>, usize)>>,
    peers: HashMap<usize, PeerState>,
    /// After a wrong hash from several senders: every piece from one peer, `owner`.
    solo: bool,
    owner: Option<usize>,
}

impl MetadataFetch {
    /// A fetch of the metadata that hashes to `info_hash`.
    pub fn new(info_hash: [u8; 20]) -> Self {
        Self {
            info_hash,
            size: None,
            pieces: Vec::new(),
            peers: HashMap::new(),
            solo: false,
            owner: None,
        }
    }

    /// Peer `key` offers `ut_metadata` with `size` bytes: it may be asked, if its size is
    /// the one the fetch uses. An absurd size is an error.
    pub fn add_peer(&mut self, key: usize, size: u64) -> Result<(), FetchError> {
        if size == 0 || size > MAX_SIZE {
            return Err(FetchError::BadSize(size));
        }
        if self.size.is_none() {
            self.size = Some(size);
            self.pieces = vec![None; (size as usize).div_ceil(PIECE)];
        }
        if self.size == Some(size) {
            self.peers.entry(key).or_default();
        }
        Ok(())
    }

    /// Peer `key` is gone: what it was asked is free again.
    pub fn remove_peer(&mut self, key: usize) {
        self.peers.remove(&key);
        self.release(key);
    }

    /// In solo mode, a peer that stops answering gives up the fetch: what it sent is
    /// dropped, so the next owner's whole is its own.
    fn release(&mut self, key: usize) {
        if self.owner == Some(key) {
            self.owner = None;
            self.pieces.iter_mut().for_each(|p| *p = None);
        }
    }

    /// The next piece to ask peer `key` for, if it may be asked now (one request in flight
    /// per peer); the caller sends it.
    pub fn next_request(&mut self, key: usize, now: Instant) -> Option<u32> {
        let busy: Vec<u32> = self
            .peers
            .values()
            .filter_map(|p| p.asked.map(|(i, _)| i))
            .collect();
        if self.solo && self.owner.is_some_and(|o| o != key) {
            return None;
        }
        let p = self.peers.get_mut(&key)?;
        if p.asked.is_some() || p.rest_until.is_some_and(|t| now < t) {
            return None;
        }
        let index = (0..self.pieces.len())
            .find(|&i| self.pieces[i].is_none() && !busy.contains(&(i as u32)))?
            as u32;
        p.asked = Some((index, now));
        if self.solo {
            self.owner = Some(key);
        }
        Some(index)
    }

    /// Piece `index` from peer `key`.
    pub fn on_data(
        &mut self,
        key: usize,
        index: u32,
        total_size: u64,
        data: &[u8],
    ) -> Result<Progress, FetchError> {
        let p = self.peers.get_mut(&key).ok_or(FetchError::Unasked(index))?;
        if p.asked.map(|(i, _)| i) != Some(index) {
            return Err(FetchError::Unasked(index));
        }
        p.asked = None;
        let size = self.size.unwrap_or(0);
        let start = index as usize * PIECE;
        let want = (size as usize).saturating_sub(start).min(PIECE);
        if total_size != size || data.len() != want {
            return Err(FetchError::BadPiece(index));
        }
        self.pieces[index as usize] = Some((data.to_vec(), key));
        if self.pieces.iter().any(Option::is_none) {
            return Ok(Progress::More);
        }
        let mut whole = Vec::with_capacity(size as usize);
        let mut senders = Vec::new();
        for (bytes, from) in self.pieces.iter().flatten() {
            whole.extend_from_slice(bytes);
            if !senders.contains(from) {
                senders.push(*from);
            }
        }
        if crate::hash::sha1(&whole) == self.info_hash {
            return Ok(Progress::Done(whole));
        }
        self.pieces.iter_mut().for_each(|p| *p = None);
        self.owner = None;
        if let [one] = senders[..] {
            self.peers.remove(&one);
            return Ok(Progress::WrongHash(Some(one)));
        }
        self.solo = true;
        Ok(Progress::WrongHash(None))
    }

    /// Peer `key` rejected piece `index`: another peer will be asked; this one rests.
    pub fn on_reject(&mut self, key: usize, index: u32, now: Instant) {
        if let Some(p) = self.peers.get_mut(&key) {
            if p.asked.map(|(i, _)| i) == Some(index) {
                p.asked = None;
                p.rest_until = Some(now + REST);
                self.release(key);
            }
        }
    }

    /// Requests older than [`REQUEST_TIMEOUT`] are withdrawn, their peers rested; returns
    /// whether any was.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut late = Vec::new();
        for (&k, p) in self.peers.iter_mut() {
            if p.asked
                .is_some_and(|(_, t)| now.duration_since(t) >= REQUEST_TIMEOUT)
            {
                p.asked = None;
                p.rest_until = Some(now + REST);
                late.push(k);
            }
        }
        for &k in &late {
            self.release(k);
        }
        !late.is_empty()
    }

    /// The next moment something is due: a request's time limit or a rest's end.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.asked.map(|(_, t)| t + REQUEST_TIMEOUT).or(p.rest_until))
            .min()
    }

    /// The metadata's size, once a peer stated one.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Pieces in so far, of how many.
    pub fn progress(&self) -> (usize, usize) {
        let have = self.pieces.iter().filter(|p| p.is_some()).count();
        (have, self.pieces.len())
    }
}

#[cfg(test)]
mod tests;
