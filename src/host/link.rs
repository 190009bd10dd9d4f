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
    /// An outgoing link's encryption handshake, before the session's handshake goes out.
    pub(super) outgoing: Outgoing,
}

impl Link {
    /// Its MSE handshake ended in `est`: reads are decrypted from now on if RC4 was
    /// chosen. Returns the encryptor for the session's peer and the plaintext received so
    /// far (the initiator's initial payload, then what came after the handshake).
    pub(super) fn encrypted(
        &mut self,
        est: crate::mse::Established,
    ) -> (Option<crate::mse::Half>, Vec<u8>) {
        log::debug!(
            "{}: encrypted handshake done, {}",
            self.addr,
            if est.cipher.is_some() {
                "RC4"
            } else {
                "plaintext after it"
            }
        );
        let mut plain = est.initial;
        let mut rest = est.rest;
        let enc = est.cipher.map(|c| {
            let (e, mut d) = c.split();
            d.apply(&mut rest);
            self.decrypt = Some(d);
            e
        });
        plain.extend_from_slice(&rest);
        (enc, plain)
    }
}

/// What an outgoing link does once its connect is done.
#[derive(Default)]
pub(super) enum Outgoing {
    /// The session's (plaintext) handshake goes out: also every incoming link, and an
    /// outgoing one past its MSE handshake.
    #[default]
    Plain,
    /// An MSE handshake first, offering `methods`; with `fallback`, a peer that fails it
    /// is dialled again in plaintext.
    Encrypt { methods: u32, fallback: bool },
    /// The MSE handshake is under way.
    Handshake {
        mse: Box<crate::mse::Initiator>,
        fallback: bool,
    },
}
