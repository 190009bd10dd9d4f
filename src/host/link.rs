//! A link: one connection the host owns (TCP, or uTP over the shared UDP socket), and whom
//! it belongs to. An incoming link belongs to no torrent until its handshake names an
//! info-hash; the host then hands it to that torrent's session with the bytes read so far.

use crate::utp;
use mio::net::{TcpStream, UdpSocket};
use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::Arc;
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

/// What carries a link's bytes.
pub(super) enum Transport {
    /// A TCP socket, registered with the poll under the link's token.
    Tcp(TcpStream),
    /// A uTP connection on a shared UDP socket (the host hands it its datagrams).
    Utp {
        stream: Box<utp::Stream>,
        udp: Arc<UdpSocket>,
    },
}

/// One connection.
pub(super) struct Link {
    pub(super) transport: Transport,
    /// The connect finished (always, for incoming links; for uTP, the SYN was answered).
    pub(super) connected: bool,
    /// The peer, for the log (a reset socket no longer knows it).
    pub(super) addr: SocketAddr,
    pub(super) owner: Owner,
    /// RC4 for what is read, after an MSE handshake that chose it (the session's peer
    /// encrypts what it queues with the other half).
    pub(super) decrypt: Option<crate::mse::Half>,
    /// An outgoing link's encryption handshake, before the session's handshake goes out.
    pub(super) outgoing: Outgoing,
    /// A uTP dial's TCP twin (`race.rs`).
    pub(super) race: Race,
}

/// A uTP dial's TCP twin, dialled beside it when uTP is slow to answer (`race.rs`).
#[derive(Default)]
pub(super) enum Race {
    /// None: a TCP link, an incoming one, or a uTP dial past its race.
    #[default]
    None,
    /// TCP is dialled beside the uTP dial at this moment, unless it is answered first.
    Due(Instant),
    /// Dialled, registered under the link's race token, not yet connected.
    Tcp(TcpStream),
}

impl Link {
    /// A uTP link's stream.
    pub(super) fn utp(&mut self) -> Option<&mut utp::Stream> {
        match &mut self.transport {
            Transport::Utp { stream, .. } => Some(stream),
            Transport::Tcp(_) => None,
        }
    }

    /// Writes all of `data` now (a handshake's few hundred bytes, which a fresh
    /// connection always takes), or fails.
    pub(super) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.transport {
            Transport::Tcp(s) => s.write_all(data),
            Transport::Utp { stream, .. } => match stream.write(data) {
                n if n == data.len() => Ok(()),
                _ => Err(ErrorKind::WouldBlock.into()),
            },
        }
    }

    /// Writes what it can of `data`: the bytes taken (0: try again when there is room), or
    /// why the connection is over.
    pub(super) fn write(&mut self, data: &[u8]) -> Result<usize, String> {
        match &mut self.transport {
            Transport::Tcp(s) => loop {
                return match s.write(data) {
                    Ok(0) => Err("closed by the peer".into()),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => Err(e.to_string()),
                };
            },
            Transport::Utp { stream, .. } => match stream.error() {
                Some(e) => Err(e.to_string()),
                None => Ok(stream.write(data)),
            },
        }
    }

    /// Lets go of the connection: a TCP socket leaves the poll (and closes when dropped); a
    /// uTP one tells the peer with a RESET, and its racing TCP dial is dropped.
    pub(super) fn release(&mut self, registry: &mio::Registry, now: Instant) {
        self.drop_race(registry);
        match &mut self.transport {
            Transport::Tcp(s) => {
                let _ = registry.deregister(s);
            }
            Transport::Utp { stream, udp } => {
                let mut d = Vec::new();
                if stream.reset_packet(now, &mut d) {
                    let _ = udp.send_to(&d, self.addr);
                }
            }
        }
    }

    /// Drops the racing TCP dial, if there is one.
    pub(super) fn drop_race(&mut self, registry: &mio::Registry) {
        if let Race::Tcp(mut tcp) = std::mem::take(&mut self.race) {
            let _ = registry.deregister(&mut tcp);
        }
    }

    /// Sends what a uTP link has to send; a datagram the socket cannot take now is lost as
    /// on the path (the stream resends it).
    pub(super) fn flush_utp(&mut self, now: Instant, buf: &mut Vec<u8>) {
        if let Transport::Utp { stream, udp } = &mut self.transport {
            while stream.poll_transmit(now, buf) {
                if let Err(e) = udp.send_to(buf, self.addr) {
                    // Lost, as on the path: the stream resends it.
                    if e.kind() != ErrorKind::WouldBlock {
                        log::debug!("uTP to {}: {e}", self.addr);
                    }
                    break;
                }
            }
        }
    }

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

/// Where a nonblocking TCP connect stands, once it reports readiness: `None` still under
/// way, else connected or why not.
pub(super) fn connect_state(stream: &TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(None) => match stream.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        },
        Ok(Some(e)) | Err(e) => Some(Err(e)),
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
