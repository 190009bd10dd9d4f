//! `.torrent` files (BEP 3 metainfo, BEP 12 announce-list, BEP 27 private, BEP 47 padding).
//!
//! [`Metainfo::from_bytes`] decodes and validates a whole torrent; everything it returns has
//! been checked: piece length in range, piece hashes matching the total size, file paths safe
//! to join under an output folder and unique. The info-hash is the SHA-1 of the raw `info`
//! bytes. Hybrid v1/v2 torrents (BEP 52) load as v1; v2-only torrents are refused.
//!
//! Not here: reading the file from disk (the caller does, with its own errors) and anything
//! about where the files go (the storage layer joins [`FileEntry::path`] under its folder).

mod error;
mod parse;

pub use error::{MetainfoError, UnsafePathReason};

use std::fmt;

/// The largest piece length accepted (128 MiB). Real torrents stay far below; a larger one
/// would make a single in-flight piece buffer unreasonable on a small machine.
pub const MAX_PIECE_LENGTH: u64 = 128 * 1024 * 1024;

/// A torrent's v1 info-hash: SHA-1 of the bencoded `info` dictionary as it appears in the file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        crate::util::hex(&self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// One file of the torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the output folder, first component the torrent's name: `[name]` for a
    /// single-file torrent, `[name, dir, …, file]` for a multi-file one. Every component is
    /// non-empty and holds no `/`, NUL, `.` or `..`.
    pub path: Vec<String>,
    /// Length in bytes (may be zero).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's concatenated data.
    pub offset: u64,
    /// A BEP 47 padding file: zeros that are hashed but never written to disk.
    pub padding: bool,
}

impl FileEntry {
    /// The path joined with `/`, for display.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

/// A validated torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` dictionary.
    pub info_hash: InfoHash,
    /// The suggested name: the file name (single-file) or the top folder (multi-file).
    pub name: String,
    /// Bytes per piece; every piece but the last is this long.
    pub piece_length: u64,
    /// SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// The files in torrent order, padding files included.
    pub files: Vec<FileEntry>,
    /// Whether the info dictionary used `files` (a folder) rather than `length`.
    pub multi_file: bool,
    /// BEP 27: only the torrent's trackers may be used to find peers.
    pub private: bool,
    /// Sum of all file lengths, padding included.
    pub total_length: u64,
    /// The `announce` URL, if any.
    pub announce: Option<String>,
    /// BEP 12 tiers from `announce-list`, empty tiers and blank URLs left out.
    pub announce_list: Vec<Vec<String>>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// The program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// The `info` dictionary exactly as it was in the file: the info-hash is over these
    /// bytes, and they are what `ut_metadata` (BEP 9) serves.
    pub info_bytes: std::sync::Arc<[u8]>,
}

/// `d` announce, announce-list, info `e`: a torrent file around raw `info` bytes.
fn torrent_file(info: &[u8], tiers: &[Vec<String>]) -> Vec<u8> {
    use crate::bencode::Item;
    let mut d = Item::dict();
    if let Some(first) = tiers.iter().flatten().next() {
        d.insert("announce", Item::str(first));
        let list = tiers
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| Item::List(t.iter().map(|u| Item::str(u)).collect()))
            .collect();
        d.insert("announce-list", Item::List(list));
    }
    d.insert("info", Item::Raw(std::borrow::Cow::Borrowed(info)));
    d.encode()
}

impl Metainfo {
    /// Decodes and validates a `.torrent` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        parse::parse(bytes)
    }

    /// Validates metadata fetched for a magnet link (BEP 9): the raw `info` dictionary,
    /// checked exactly as a `.torrent`'s (unsafe paths and all), with `tiers` as its trackers.
    pub fn from_info(info: &[u8], tiers: &[Vec<String>]) -> Result<Self, MetainfoError> {
        Self::from_bytes(&torrent_file(info, tiers))
    }

    /// This torrent as a `.torrent` file: its raw `info` bytes (so the info-hash is the
    /// same) with its trackers. What a magnet download keeps next to its sidecar.
    pub fn to_torrent_file(&self) -> Vec<u8> {
        torrent_file(&self.info_bytes, &self.tiers())
    }

    /// The trackers by tier as BEP 12 says to use them: `announce-list` when it has any
    /// URL, otherwise `announce` alone.
    pub fn tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else {
            self.announce.iter().map(|a| vec![a.clone()]).collect()
        }
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        // parse() refuses torrents with more than u32::MAX pieces.
        self.pieces.len() as u32
    }

    /// Length of piece `index` (the last one may be short); 0 for an index out of range.
    pub fn piece_size(&self, index: u32) -> u64 {
        let start = u64::from(index) * self.piece_length;
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }

    /// Bytes that are really stored on disk: the total without padding files.
    pub fn stored_length(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| f.length)
            .sum()
    }
}

#[cfg(test)]
mod tests;
