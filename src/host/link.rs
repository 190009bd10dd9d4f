//! A link: one TCP connection the host owns, and whom it belongs to. An incoming link
//! belongs to no torrent until its handshake names an info-hash; the host then hands it to
//! that torrent's session with the bytes read so far.

use mio::net::TcpStream;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Incoming links waiting for their handshake's info-hash, at most.
pub(super) const MAX_UNATTACHED: usize = 64;

/// How long an incoming link may take to name its torrent.
pub(super) const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Whose a link is.
#[derive(Debug)]
pub(super) enum Owner {
    /// Incoming, its handshake not yet read far enough to name a torrent: the bytes so far
    /// (at most 48 are needed; more may have come in the same read), or, when its first
    /// bytes were not a BitTorrent handshake, the MSE handshake under way.
    Unattached {
        rx: Vec<u8>,
        since: Instant,
        mse: Option<Box<crate::mse::Responder>>,
    },
    /// Torrent `torrent`'s session's peer `key`.
    Peer { torrent: usize, key: usize },
}

/// One TCP connection.
pub(super) struct Link {
    pub(super) stream: TcpStream,
    /// The connect finished (always, for incoming links).
    pub(super) connected: bool,
    /// The peer, for the log (a reset socket no longer knows it).
    pub(super) addr: SocketAddr,
    pub(super) owner: Owner,
    /// RC4 for what is read, after an MSE handshake that chose it (the session's peer
    /// encrypts what it queues with the other half).
    pub(super) decrypt: Option<crate::mse::Half>,
}
