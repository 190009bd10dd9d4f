//! BEP 9's `ut_metadata` messages: a bencoded dictionary (`msg_type`, `piece`, and for data
//! `total_size`), followed, in a data message, by the raw bytes of one 16 KiB piece of the
//! `info` dictionary. A `msg_type` btmini does not know is ignored, as BEP 9 asks. Not here:
//! which requests to answer, and fetching metadata (see [`crate::session`]).

use super::ExtError;
use crate::bencode::{self, Item};

/// The size of a metadata piece; only the last one may be shorter.
pub const PIECE: usize = 16 * 1024;

/// One `ut_metadata` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMsg<'a> {
    /// `msg_type` 0: send me piece `piece`.
    Request(u32),
    /// `msg_type` 1: piece `piece` of metadata of `total_size` bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// The whole metadata's size.
        total_size: u64,
        /// The piece's bytes.
        data: &'a [u8],
    },
    /// `msg_type` 2: piece `piece` will not be sent.
    Reject(u32),
}

impl<'a> MetadataMsg<'a> {
    /// Decodes a `ut_metadata` payload; `Ok(None)` for a `msg_type` btmini does not know.
    pub fn decode(payload: &'a [u8]) -> Result<Option<Self>, ExtError> {
        let (v, used) = bencode::decode_prefix(payload).map_err(ExtError::Bencode)?;
        if v.as_dict().is_none() {
            return Err(ExtError::NotADict("a ut_metadata message"));
        }
        let int = |k: &[u8]| v.get(k).and_then(|x| x.as_int());
        let piece = int(b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(ExtError::BadMetadata("no valid piece"))?;
        Ok(match int(b"msg_type") {
            Some(0) => Some(Self::Request(piece)),
            Some(1) => Some(Self::Data {
                piece,
                total_size: int(b"total_size")
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or(ExtError::BadMetadata("data without a valid total_size"))?,
                data: &payload[used..],
            }),
            Some(2) => Some(Self::Reject(piece)),
            Some(_) => None,
            None => return Err(ExtError::BadMetadata("no msg_type")),
        })
    }

    /// The payload: the dictionary, then a data message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Item::dict();
        let (t, piece) = match *self {
            Self::Request(p) => (0, p),
            Self::Data {
                piece, total_size, ..
            } => {
                d.insert("total_size", Item::Int(total_size as i64));
                (1, piece)
            }
            Self::Reject(p) => (2, p),
        };
        d.insert("msg_type", Item::Int(t));
        d.insert("piece", Item::Int(i64::from(piece)));
        let mut out = d.encode();
        if let Self::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

/// Piece `piece` of `metadata`, if there is one.
pub fn piece_of(metadata: &[u8], piece: u32) -> Option<&[u8]> {
    let start = (piece as usize).checked_mul(PIECE)?;
    (start < metadata.len()).then(|| &metadata[start..(start + PIECE).min(metadata.len())])
}
