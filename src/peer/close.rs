//! Why the session ends a connection: a typed reason, so the shell and the tests decide by
//! variant (a ban is logged as a warning, a protocol breach is not dialled again), never by
//! the text.

use crate::bitfield::BitfieldError;
use crate::ext::ExtError;
use crate::ext::fetch::FetchError;
use crate::wire::WireError;
use std::fmt;

/// Why the session closed a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The handshake named another torrent.
    OtherTorrent,
    /// We connected to ourselves.
    Ourselves,
    /// The TCP connect or the handshake took too long.
    HandshakeTimeout,
    /// Silent for two minutes while most peers were.
    Silent,
    /// Sent pieces that failed their hash check (as many times as the ban takes).
    Banned,
    /// Broke the protocol: not dialled again unless the user named it.
    Protocol(Violation),
    /// Sent metadata pieces (BEP 9) whose whole did not hash to the info-hash.
    BadMetadata,
}

/// How a peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A message the codec refused.
    Wire(WireError),
    /// A bitfield of the wrong size or with spare bits set.
    Bitfield(BitfieldError),
    /// A message about a piece index past the last piece.
    NoSuchPiece {
        /// Which message.
        message: &'static str,
        /// The index.
        index: u32,
    },
    /// A request for a piece we do not have, from a peer without the Fast extension.
    NotVerified(u32),
    /// A request that is not a block of its piece.
    BadRequest {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
        /// Length.
        len: u32,
    },
    /// A block that does not fit its piece.
    BadBlock {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
    },
    /// Too many blocks that were never asked for.
    UnaskedBlocks,
    /// Requests far past the queue it was told of (`reqq`), without pause: see
    /// [`crate::peer::FLOOD_FACTOR`].
    RequestFlood(u32),
    /// A BEP 6 message from a peer that did not set the Fast bit.
    FastWithoutBit(&'static str),
    /// A reject for a request we never made (BEP 6 says close).
    UnexpectedReject,
    /// An extended message from a peer that did not set the BEP 10 bit.
    ExtendedWithoutBit,
    /// An extended message with an id we never offered.
    UnknownExtension(u8),
    /// A malformed extended message.
    Extension(ExtError),
    /// PEX messages faster than one a minute allows (more than
    /// [`crate::peer::PEX_BURST`] in 60 s).
    PexFlood,
    /// A metadata (BEP 9) message that breaks the protocol: an absurd size, a piece never
    /// asked for or of the wrong length.
    Metadata(FetchError),
    /// Before the metadata was known, a HAVE or bitfield past the largest torrent we accept.
    EarlyPieceTooLarge(u32),
}

impl CloseReason {
    /// Whether the peer broke the protocol or was banned: such a peer is not dialled again
    /// on the session's own account.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(self, Self::Protocol(_) | Self::Banned | Self::BadMetadata)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherTorrent => f.write_str("handshake for another torrent"),
            Self::Ourselves => f.write_str("connected to ourselves"),
            Self::HandshakeTimeout => f.write_str("connect or handshake timed out"),
            Self::Silent => f.write_str("not alive (silent for 2 minutes)"),
            Self::Banned => f.write_str("banned: sent pieces that failed their hash"),
            Self::Protocol(v) => v.fmt(f),
            Self::BadMetadata => f.write_str("banned: sent metadata that failed the info-hash"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => e.fmt(f),
            Self::Bitfield(e) => e.fmt(f),
            Self::NoSuchPiece { message, index } => {
                write!(f, "{message} for piece {index}, which does not exist")
            }
            Self::NotVerified(i) => write!(f, "requested piece {i}, which we have not verified"),
            Self::BadRequest { index, begin, len } => {
                write!(f, "request {index}:{begin}+{len} is not a valid block")
            }
            Self::BadBlock { index, begin } => {
                write!(f, "block {index}:{begin} does not fit its piece")
            }
            Self::UnaskedBlocks => f.write_str("too many blocks that were not asked for"),
            Self::RequestFlood(n) => {
                write!(f, "flooding us with requests ({n} in a row past its queue)")
            }
            Self::FastWithoutBit(m) => write!(f, "{m} without the Fast extension"),
            Self::UnexpectedReject => f.write_str("reject for a request we never made"),
            Self::ExtendedWithoutBit => {
                f.write_str("extended message without the extension protocol bit")
            }
            Self::UnknownExtension(id) => {
                write!(f, "extended message {id}, which we never offered")
            }
            Self::Extension(e) => e.fmt(f),
            Self::PexFlood => f.write_str("PEX messages more often than once a minute"),
            Self::Metadata(e) => e.fmt(f),
            Self::EarlyPieceTooLarge(i) => {
                write!(f, "said it has piece {i}, past any torrent we accept")
            }
        }
    }
}

impl From<Violation> for CloseReason {
    fn from(v: Violation) -> Self {
        Self::Protocol(v)
    }
}

impl From<WireError> for CloseReason {
    fn from(e: WireError) -> Self {
        Self::Protocol(Violation::Wire(e))
    }
}

impl From<ExtError> for CloseReason {
    fn from(e: ExtError) -> Self {
        Self::Protocol(Violation::Extension(e))
    }
}
