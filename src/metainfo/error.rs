//! Why a torrent was refused.

use crate::bencode::DecodeError;
use std::fmt;

/// A torrent that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    /// The file is not valid bencode.
    Bencode(DecodeError),
    /// The top-level value is not a dictionary.
    NotADict,
    /// A required field is absent.
    MissingField(&'static str),
    /// A field has the wrong bencode type.
    WrongType {
        /// The field, e.g. `info.piece length`.
        field: &'static str,
        /// The type it must have.
        expected: &'static str,
        /// The type it has.
        found: &'static str,
    },
    /// `info` has neither `pieces` nor v1 files but does have BEP 52 v2 fields.
    V2Only,
    /// `piece length` is zero, negative or larger than [`super::MAX_PIECE_LENGTH`].
    BadPieceLength(i64),
    /// The `pieces` string's length is not a multiple of 20.
    PiecesNotMultipleOf20(usize),
    /// The number of piece hashes does not match the total size.
    PieceCountMismatch {
        /// Pieces the total size calls for.
        expected: u64,
        /// Piece hashes present.
        found: u64,
    },
    /// Both `length` and `files`, or neither.
    AmbiguousLayout,
    /// `files` is an empty list.
    NoFiles,
    /// All files together hold no bytes.
    Empty,
    /// A file length is negative.
    NegativeLength {
        /// The file's path as given.
        path: String,
        /// The length found.
        length: i64,
    },
    /// The lengths add up past what 64 bits hold.
    TotalTooLarge,
    /// A name or path that is not safe to create under the output folder.
    UnsafePath {
        /// The path as given, components joined with `/`.
        path: String,
        /// What makes it unsafe.
        reason: UnsafePathReason,
    },
    /// Two files with the same path, or a file whose path is another file's folder.
    DuplicatePath(String),
}

/// What makes a path unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePathReason {
    /// Starts at the root (an empty first component or a leading `/`).
    Absolute,
    /// A `..` component, which would climb out of the output folder.
    ParentDir,
    /// A `.` component.
    CurrentDir,
    /// An empty component (or an empty path list or name).
    EmptyComponent,
    /// A NUL byte, which no file name may hold.
    Nul,
    /// A `/` inside one component.
    SlashInComponent,
}

impl fmt::Display for UnsafePathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Absolute => "absolute path",
            Self::ParentDir => "'..' component",
            Self::CurrentDir => "'.' component",
            Self::EmptyComponent => "empty path component",
            Self::Nul => "NUL byte in a name",
            Self::SlashInComponent => "'/' inside a path component",
        })
    }
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bencode(e) => write!(f, "not valid bencode: {e}"),
            Self::NotADict => f.write_str("not a torrent: the top level is not a dictionary"),
            Self::MissingField(name) => write!(f, "missing field '{name}'"),
            Self::WrongType {
                field,
                expected,
                found,
            } => write!(f, "field '{field}' must be a {expected}, found a {found}"),
            Self::V2Only => f.write_str(
                "this is a BitTorrent v2-only torrent, which btmini does not support \
                 (v1 and hybrid torrents work)",
            ),
            Self::BadPieceLength(n) => write!(
                f,
                "piece length {n} is out of range (1 to {} bytes)",
                super::MAX_PIECE_LENGTH
            ),
            Self::PiecesNotMultipleOf20(n) => {
                write!(f, "'pieces' is {n} bytes long, not a multiple of 20")
            }
            Self::PieceCountMismatch { expected, found } => write!(
                f,
                "the total size needs {expected} pieces but 'pieces' holds {found} hashes"
            ),
            Self::AmbiguousLayout => {
                f.write_str("'info' must have exactly one of 'length' and 'files'")
            }
            Self::NoFiles => f.write_str("'files' is empty"),
            Self::Empty => f.write_str("the torrent holds no data (total size 0)"),
            Self::NegativeLength { path, length } => {
                write!(f, "file '{path}' has a negative length ({length})")
            }
            Self::TotalTooLarge => f.write_str("the file sizes add up to more than 2^64 bytes"),
            Self::UnsafePath { path, reason } => write!(f, "unsafe path '{path}': {reason}"),
            Self::DuplicatePath(p) => write!(f, "path '{p}' is used by more than one file"),
        }
    }
}

impl std::error::Error for MetainfoError {}

impl From<DecodeError> for MetainfoError {
    fn from(e: DecodeError) -> Self {
        Self::Bencode(e)
    }
}
