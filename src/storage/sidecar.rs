//! The sidecar file (`DIR/.NAME.btmini`) that records which pieces are verified and durably
//! on disk, so that a restart resumes without re-hashing.
//!
//! Format, version 1, integers little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `BTMINIsc` |
//! | 4 | format version (1) |
//! | 20 | info-hash |
//! | 4 | piece count |
//! | 4 | stamp count N: stored files (padding files are not stored), then the part file if any |
//! | 8 | bytes uploaded, over every run |
//! | 20 × N | per stamp: size (8), mtime seconds (8, signed), mtime nanoseconds (4); a file not on disk (not wanted) has size 2⁶⁴ − 1 and time 0 |
//! | ⌈pieces / 8⌉ | bitfield, BEP 3 bit order |
//! | 20 | SHA-1 of every byte before it |
//!
//! This module only encodes and decodes; [`super::Storage`] decides when it is written (after
//! the data it claims is flushed) and replaces it atomically.

use crate::bitfield::{Bitfield, BitfieldError};
use crate::metainfo::InfoHash;
use std::fmt;

const MAGIC: &[u8; 8] = b"BTMINIsc";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 20 + 4 + 4 + 8;
const STAMP: usize = 20;

/// Size and modification time of one data file when the sidecar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
}

impl FileStamp {
    /// The stamp of a file that is not on disk.
    pub const ABSENT: Self = Self {
        size: u64::MAX,
        mtime_sec: 0,
        mtime_nsec: 0,
    };
}

/// A sidecar's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The torrent it belongs to.
    pub info_hash: InfoHash,
    /// Stamps of the stored files, in torrent order.
    pub files: Vec<FileStamp>,
    /// Bytes uploaded to peers in all runs so far.
    pub uploaded: u64,
    /// Pieces verified and durably on disk.
    pub have: Bitfield,
}

/// Why a sidecar cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarError {
    /// Shorter than its own header says it must be, or longer.
    WrongLength,
    /// Not a btmini sidecar.
    BadMagic,
    /// Written by a newer btmini.
    UnsupportedVersion(u32),
    /// The checksum does not match: the file is damaged.
    BadChecksum,
    /// The bitfield has bits past the last piece.
    Bitfield(BitfieldError),
}

impl fmt::Display for SidecarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength => f.write_str("truncated or over-long"),
            Self::BadMagic => f.write_str("not a btmini sidecar"),
            Self::UnsupportedVersion(v) => write!(f, "format version {v} is not supported"),
            Self::BadChecksum => f.write_str("checksum mismatch"),
            Self::Bitfield(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SidecarError {}

impl Sidecar {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + STAMP * self.files.len() + 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&self.have.len().to_le_bytes());
        // One stamp per file of a torrent: fewer than 2^32.
        let files = u32::try_from(self.files.len()).expect("fewer than 2^32 files");
        out.extend_from_slice(&files.to_le_bytes());
        out.extend_from_slice(&self.uploaded.to_le_bytes());
        for f in &self.files {
            out.extend_from_slice(&f.size.to_le_bytes());
            out.extend_from_slice(&f.mtime_sec.to_le_bytes());
            out.extend_from_slice(&f.mtime_nsec.to_le_bytes());
        }
        out.extend_from_slice(self.have.as_bytes());
        let sum = crate::hash::sha1(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses and checks a sidecar file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SidecarError> {
        if bytes.len() < HEADER + 20 {
            return Err(SidecarError::WrongLength);
        }
        if &bytes[..8] != MAGIC {
            return Err(SidecarError::BadMagic);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 20);
        if crate::hash::sha1(body) != sum {
            return Err(SidecarError::BadChecksum);
        }
        let mut r = Reader(&body[8..]);
        let version = r.u32();
        if version != VERSION {
            return Err(SidecarError::UnsupportedVersion(version));
        }
        let info_hash = InfoHash(r.take(20).try_into().expect("20 bytes"));
        let pieces = r.u32();
        let nfiles = r.u32() as usize;
        let uploaded = r.u64();
        let want = (pieces as usize).div_ceil(8) as u64 + STAMP as u64 * nfiles as u64;
        if r.0.len() as u64 != want {
            return Err(SidecarError::WrongLength);
        }
        let files = (0..nfiles)
            .map(|_| FileStamp {
                size: r.u64(),
                mtime_sec: r.u64() as i64,
                mtime_nsec: r.u32(),
            })
            .collect();
        let have = Bitfield::from_bytes(pieces, r.0).map_err(SidecarError::Bitfield)?;
        Ok(Self {
            info_hash,
            files,
            uploaded,
            have,
        })
    }
}

/// Reads fixed-size fields from a slice whose length has been checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sidecar {
        let mut have = Bitfield::new(11);
        have.set(0);
        have.set(10);
        Sidecar {
            info_hash: InfoHash([0xab; 20]),
            files: vec![
                FileStamp {
                    size: 5 << 30,
                    mtime_sec: 1_700_000_000,
                    mtime_nsec: 123,
                },
                FileStamp {
                    size: 0,
                    mtime_sec: -1,
                    mtime_nsec: 0,
                },
            ],
            uploaded: 42,
            have,
        }
    }

    #[test]
    fn round_trip_and_exact_layout() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(bytes.len(), HEADER + 2 * STAMP + 2 + 20);
        assert_eq!(&bytes[..12], b"BTMINIsc\x01\0\0\0");
        assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 20], &[0x80, 0x20]);
        assert_eq!(Sidecar::decode(&bytes), Ok(s));
    }

    #[test]
    fn every_corruption_is_caught() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(Sidecar::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(Sidecar::decode(&bad).is_err(), "flip at {i}");
        }
        let mut other = bytes.clone();
        other[0] = b'X';
        assert_eq!(Sidecar::decode(&other), Err(SidecarError::BadMagic));
    }

    #[test]
    fn newer_versions_and_lying_lengths_are_refused() {
        let reseal = |mut body: Vec<u8>| {
            body.truncate(body.len() - 20);
            let sum = crate::hash::sha1(&body);
            body.extend_from_slice(&sum);
            body
        };
        let mut v2 = sample().encode();
        v2[8] = 2;
        assert_eq!(
            Sidecar::decode(&reseal(v2)),
            Err(SidecarError::UnsupportedVersion(2))
        );
        let mut many = sample().encode();
        many[36] = 200; // claims 200 files
        assert_eq!(
            Sidecar::decode(&reseal(many)),
            Err(SidecarError::WrongLength)
        );
        let mut spare = sample().encode();
        let at = spare.len() - 21;
        spare[at] |= 1; // a bit past piece 10
        assert!(matches!(
            Sidecar::decode(&reseal(spare)),
            Err(SidecarError::Bitfield(BitfieldError::SpareBitsSet))
        ));
    }
}
