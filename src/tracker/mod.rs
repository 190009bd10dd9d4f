//! Trackers: announcing over HTTP (BEP 3, BEP 23 compact peers, BEP 7 IPv6 peers) and UDP
//! (BEP 15), with BEP 12 tiers.
//!
//! Pure parts, tested without sockets: [`url`] (tracker URLs and announce query strings),
//! [`response`] (announce replies), [`http`] (the HTTP/1.1 exchange: request bytes out,
//! response parsed with httparse, Content-Length, chunked or close-delimited, size-capped),
//! [`udp`] (the BEP 15 codec and exchange with its retransmission schedule), [`tiers`] and
//! [`announcer`] (which tracker to ask, with which event, and when).
//!
//! The I/O shell is [`io::TrackerIo`]: nonblocking sockets registered with the caller's mio
//! poll, host names resolved on a helper thread that wakes the poll through a `mio::Waker`,
//! so no tracker can stall the loop.

pub mod announcer;
pub mod http;
pub mod io;
pub mod response;
pub mod tiers;
pub mod trackers;
pub mod udp;
pub mod url;

pub use trackers::Trackers;

use crate::metainfo::InfoHash;
use std::fmt;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// A regular update.
    None,
    /// The first announce of a run.
    Started,
    /// The download just finished (sent once).
    Completed,
    /// The client is leaving.
    Stopped,
}

impl AnnounceEvent {
    /// The HTTP `event` value; `None` for a regular update, which leaves it out.
    pub fn as_query(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Started => Some("started"),
            Self::Completed => Some("completed"),
            Self::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code.
    pub fn as_udp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }
}

/// What an announce tells the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// The port we accept peers on.
    pub port: u16,
    /// Bytes uploaded this run.
    pub uploaded: u64,
    /// Bytes downloaded this run.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// The event.
    pub event: AnnounceEvent,
    /// Peers wanted.
    pub numwant: u32,
    /// A random key that identifies us across IP changes.
    pub key: u32,
    /// The `tracker id` a tracker gave us earlier, sent back to it.
    pub tracker_id: Option<Vec<u8>>,
    /// Our IPv6 address, told to HTTP trackers as BEP 7's `ipv6=` so that one reached
    /// over IPv4 lists us to IPv6 peers too.
    pub ipv6: Option<std::net::Ipv6Addr>,
}

/// Why an announce failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerError {
    /// The tracker answered with a `failure reason` (or a BEP 15 error).
    Failure(String),
    /// `https://` trackers need TLS, which btmini does not have.
    Https,
    /// A scheme other than http and udp.
    UnsupportedScheme(String),
    /// The URL cannot be parsed.
    BadUrl(String),
    /// The host name did not resolve.
    Resolve(String),
    /// Connecting, sending or receiving failed.
    Network(String),
    /// A stage took longer than its limit.
    Timeout(&'static str),
    /// The reply is not a valid announce response.
    BadResponse(String),
    /// The reply was larger than the cap.
    TooLarge(usize),
    /// An HTTP status other than 200, or too many redirects.
    Http(String),
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failure(r) => write!(f, "tracker says: {}", crate::util::printable(r)),
            Self::Https => f.write_str("https trackers are not supported (no TLS in btmini)"),
            Self::UnsupportedScheme(s) => write!(f, "unsupported tracker scheme '{s}'"),
            Self::BadUrl(u) => write!(f, "bad tracker URL '{u}'"),
            Self::Resolve(e) => write!(f, "cannot resolve host: {e}"),
            Self::Network(e) => write!(f, "network error: {e}"),
            Self::Timeout(stage) => write!(f, "timed out while {stage}"),
            Self::BadResponse(e) => write!(f, "bad response: {e}"),
            Self::TooLarge(n) => write!(f, "response larger than {n} bytes"),
            Self::Http(e) => write!(f, "HTTP: {e}"),
        }
    }
}

impl std::error::Error for TrackerError {}
