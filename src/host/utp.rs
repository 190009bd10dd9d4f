//! The host's side of uTP: datagrams from the shared UDP socket to their connections by
//! connection id, SYNs into new links, each pass's timeouts and sends, and connections we
//! closed while their FIN goes out. The protocol is `crate::utp`'s; this only moves
//! datagrams.

use super::link::{Link, Outgoing, Owner, Transport};
use super::{Host, PerSecond};
use crate::utp::{Stream, packet};
use mio::net::UdpSocket;
use slab::Slab;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Incoming uTP connections started a second, at most (a SYN flood costs a link each until
/// its handshake is due, and a SYN-ACK).
const SYNS_PER_SECOND: u32 = 100;

/// Connections we closed that still send their last bytes and FIN, at most; past it a
/// closed connection is reset at once.
const MAX_CLOSING: usize = 256;

/// How long a closed connection may take to have its FIN acknowledged before it is reset.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A connection we closed: its link is gone, the stream sends what was queued, then a FIN,
/// and is forgotten once the FIN is acknowledged (or the peer ends it, or time runs out).
struct Closing {
    stream: Box<Stream>,
    udp: Arc<UdpSocket>,
    until: Instant,
}

/// The process's uTP: whether it is on, the sockets, and which link each connection is.
pub(super) struct UtpNet {
    /// Off with `--no-utp`: SYNs are dropped and every dial is TCP.
    pub(super) on: bool,
    /// (peer, our receive id) → link. Entries of links gone are dropped when met, and swept
    /// whenever the map has doubled since the last sweep (so it stays within twice the
    /// live links, at O(1) a link).
    ids: HashMap<(SocketAddr, u16), usize>,
    /// The map's size after the last sweep.
    swept: usize,
    /// Connections closed by us, by (peer, our receive id), until their FIN is acknowledged.
    closing: HashMap<(SocketAddr, u16), Closing>,
    v4: Option<Arc<UdpSocket>>,
    v6: Option<Arc<UdpSocket>>,
    syns: PerSecond,
}

impl UtpNet {
    pub(super) fn new(on: bool, sockets: [Option<Arc<UdpSocket>>; 2]) -> Self {
        let [v4, v6] = sockets;
        Self {
            on,
            ids: HashMap::new(),
            swept: 0,
            closing: HashMap::new(),
            v4,
            v6,
            syns: PerSecond::new(SYNS_PER_SECOND),
        }
    }

    /// The socket for a peer at `addr`, if we have one of its family.
    pub(super) fn socket_for(&self, addr: &SocketAddr) -> Option<&Arc<UdpSocket>> {
        if addr.is_ipv6() {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }

    /// Whether a dial to `addr` can go over uTP: it is on, and a socket of the peer's
    /// family is open.
    pub(super) fn can_dial(&self, addr: &SocketAddr) -> bool {
        self.on && self.socket_for(addr).is_some()
    }

    /// A new uTP link to `addr` (after [`UtpNet::can_dial`]), dialled: its SYN goes out at
    /// the end of the pass, and TCP is dialled beside it at `race` if it is not answered by
    /// then.
    pub(super) fn dial(
        &mut self,
        links: &mut Slab<Link>,
        addr: SocketAddr,
        owner: Owner,
        outgoing: Outgoing,
        now: Instant,
        race: Instant,
    ) -> usize {
        let udp = self
            .socket_for(&addr)
            .expect("can_dial said there is one")
            .clone();
        // Our receive id: the peer's packets carry it (its SYN the id before it).
        let id = loop {
            let id = crate::util::random_u64() as u16;
            if !self.ids.contains_key(&(addr, id)) {
                break id;
            }
        };
        let seq = crate::util::random_u64() as u16;
        let link = links.insert(Link {
            transport: Transport::Utp {
                stream: Box::new(Stream::connect(id, seq, now)),
                udp,
            },
            connected: false,
            addr,
            owner,
            decrypt: None,
            outgoing,
            race: super::link::Race::Due(race),
        });
        self.remember(links, (addr, id), link);
        link
    }

    /// Names `link` by (peer, receive id).
    pub(super) fn remember(&mut self, links: &mut Slab<Link>, key: (SocketAddr, u16), link: usize) {
        self.ids.insert(key, link);
        if self.ids.len() >= 2 * self.swept.max(32) {
            self.sweep(links);
            self.swept = self.ids.len();
        }
    }

    /// The link `(from, id)` names, if it still does.
    fn find(&mut self, links: &mut Slab<Link>, from: SocketAddr, id: u16) -> Option<usize> {
        let &k = self.ids.get(&(from, id))?;
        let live = links
            .get_mut(k)
            .filter(|l| l.addr == from)
            .and_then(|l| l.utp())
            .is_some_and(|s| s.recv_id() == id);
        if !live {
            self.ids.remove(&(from, id));
            return None;
        }
        Some(k)
    }

    /// Lets go of link `l`, taken out of the links: a uTP connection that is up closes as
    /// BEP 29 has it, with a FIN after what was queued, kept here until the FIN is
    /// acknowledged; anything else as [`Link::release`] does (a RESET for uTP).
    pub(super) fn let_go(&mut self, mut l: Link, registry: &mio::Registry, now: Instant) {
        let addr = l.addr;
        match l.transport {
            Transport::Utp { mut stream, udp }
                if stream.is_connected() && self.closing.len() < MAX_CLOSING =>
            {
                stream.close();
                let key = (addr, stream.recv_id());
                self.ids.remove(&key);
                self.closing.insert(
                    key,
                    Closing {
                        stream,
                        udp,
                        until: now + CLOSE_WAIT,
                    },
                );
            }
            _ => l.release(registry, now),
        }
    }

    /// A datagram for a connection we closed, if it is one: taken in (what it carries is
    /// dropped), answered, and the connection forgotten once it is over.
    fn closing_datagram(
        &mut self,
        key: (SocketAddr, u16),
        p: &packet::Packet<'_>,
        now: Instant,
    ) -> bool {
        let Some(c) = self.closing.get_mut(&key) else {
            return false;
        };
        c.stream.handle(now, p);
        self.drive_closing(now, Some(key));
        true
    }

    /// Timeouts and sends of the closed connections (or of one), and forgets those that
    /// are over: FIN acknowledged, ended by the peer, or out of time (then reset).
    fn drive_closing(&mut self, now: Instant, only: Option<(SocketAddr, u16)>) {
        let mut buf = Vec::new();
        let mut sink = Vec::new();
        self.closing.retain(|&(addr, id), c| {
            if only.is_some_and(|k| k != (addr, id)) {
                return true;
            }
            if c.stream.poll_timeout().is_some_and(|t| t <= now) {
                c.stream.handle_timeout(now);
            }
            c.stream.read(&mut sink);
            sink.clear();
            if now >= c.until {
                if c.stream.reset_packet(now, &mut buf) {
                    let _ = c.udp.send_to(&buf, addr);
                }
                log::debug!("{addr}: uTP close not acknowledged in time: reset");
                return false;
            }
            while c.stream.poll_transmit(now, &mut buf) {
                if c.udp.send_to(&buf, addr).is_err() {
                    break;
                }
            }
            let over = c.stream.error().is_some() || c.stream.fin_acked();
            if over {
                log::debug!("{addr}: uTP connection closed");
            }
            !over
        });
    }

    /// The earliest moment a closed connection has something due.
    fn closing_deadline(&self) -> Option<Instant> {
        self.closing
            .values()
            .flat_map(|c| [c.stream.poll_timeout(), Some(c.until)])
            .flatten()
            .min()
    }

    /// Forgets the ids of links gone (a link's slot may be taken by another since).
    fn sweep(&mut self, links: &mut Slab<Link>) {
        self.ids.retain(|&(from, id), &mut k| {
            links
                .get_mut(k)
                .filter(|l| l.addr == from)
                .and_then(|l| l.utp())
                .is_some_and(|s| s.recv_id() == id)
        });
    }
}

impl Host {
    /// A datagram that [`packet::is_utp`] says is uTP: to its connection, or, a SYN, a new
    /// incoming link; anything else is dropped.
    pub(super) fn utp_datagram(&mut self, from: SocketAddr, d: &[u8], now: Instant) {
        let p = match packet::decode(d) {
            Ok(p) => p,
            Err(e) => return log::debug!("{from}: {e}"),
        };
        let syn = p.header.ty == packet::Type::Syn;
        // A SYN names the id the dialler receives on; we receive on the next.
        let id = if syn {
            p.header.conn_id.wrapping_add(1)
        } else {
            p.header.conn_id
        };
        if let Some(link) = self.utp.find(&mut self.links, from, id) {
            if let Some(s) = self.links[link].utp() {
                s.handle(now, &p);
            }
            return self.utp_progress(link, now);
        }
        if self.utp.closing_datagram((from, id), &p, now) {
            return;
        }
        if !syn {
            return log::trace!("{from}: a uTP packet for no connection");
        }
        if !self.utp.on {
            return log::debug!("{from}: a uTP SYN, and uTP is off");
        }
        if self.unattached >= super::link::MAX_UNATTACHED || !self.utp.syns.allow(now) {
            return log::debug!("{from}: too many connections without a handshake");
        }
        let Some(udp) = self.utp.socket_for(&from).cloned() else {
            return;
        };
        let seq = crate::util::random_u64() as u16;
        let stream = Stream::accept(&p, seq, now);
        let link = self.links.insert(Link {
            transport: Transport::Utp {
                stream: Box::new(stream),
                udp,
            },
            connected: true,
            addr: from,
            owner: Owner::Unattached {
                rx: Vec::new(),
                since: now,
                mse: None,
            },
            decrypt: None,
            outgoing: Outgoing::Plain,
            race: super::link::Race::None,
        });
        self.unattached += 1;
        self.utp.remember(&mut self.links, (from, id), link);
        log::debug!("{from}: uTP connection accepted");
    }

    /// After a uTP link's stream took a packet or a timeout: a dial answered continues as
    /// a TCP connect would, bytes received go where a TCP read's would, and a stream that
    /// ended closes its link (a dial never answered falls back to TCP).
    pub(super) fn utp_progress(&mut self, link: usize, now: Instant) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let Some(s) = l.utp() else {
            return;
        };
        let (connected, error) = (s.is_connected(), s.error());
        let mut data = std::mem::take(&mut self.utp_rx);
        s.read(&mut data);
        if !l.connected {
            if connected {
                l.connected = true;
                l.drop_race(self.poll.registry());
                let (addr, rtt) = (l.addr, l.utp().and_then(|s| s.rtt()));
                if let Owner::Peer { torrent, .. } = l.owner {
                    if let Some(t) = self.torrents.get_mut(torrent) {
                        t.paths.utp_answered(addr, rtt);
                    }
                }
                self.connect_done(link, now);
            } else if error.is_some() {
                self.utp_rx = data;
                return self.dial_tcp_instead(link, now);
            }
        }
        if !data.is_empty() {
            if let Some(l) = self.links.get_mut(link) {
                if let Some(d) = &mut l.decrypt {
                    d.apply(&mut data);
                }
            }
            self.received(link, &data, now);
        }
        data.clear();
        self.utp_rx = data;
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        if let Some(e) = error {
            return self.close_link(link, &e.to_string(), now);
        }
        // ACKs may have made room: the session may write again.
        if let Owner::Peer { torrent, key } = l.owner {
            if let Some(t) = self.torrents.get_mut(torrent) {
                t.session.want_send(key);
            }
        }
    }

    /// A uTP dial the peer never answered: the same peer is dialled over TCP instead (or
    /// the TCP dial racing it goes on alone), for the same session peer, and over TCP from
    /// now on.
    fn dial_tcp_instead(&mut self, link: usize, now: Instant) {
        let addr = self.links[link].addr;
        if let Owner::Peer { torrent, .. } = self.links[link].owner {
            if let Some(t) = self.torrents.get_mut(torrent) {
                t.paths.tcp_answered(addr);
            }
        }
        if self.race_takes_over(link, now) {
            return log::debug!("{addr}: no answer over uTP: the TCP dial beside it goes on");
        }
        log::debug!("{addr}: no answer over uTP: dialling it over TCP");
        if !self.redial_tcp(link) {
            self.close_link(link, "no answer over uTP, and TCP failed", now);
        }
    }

    /// An ICMP error says nothing listens (or nothing is reachable) at `to`: uTP dials
    /// there not yet answered go over TCP at once.
    pub(super) fn utp_unreachable(&mut self, to: SocketAddr, now: Instant) {
        let dials: Vec<usize> = self
            .links
            .iter_mut()
            .filter(|(_, l)| l.addr == to && !l.connected)
            .filter_map(|(k, l)| l.utp().map(|_| k))
            .collect();
        for k in dials {
            log::debug!("{to}: unreachable over uTP");
            self.dial_tcp_instead(k, now);
        }
    }

    /// Each pass: uTP timeouts that are due, then every uTP link's datagrams out.
    pub(super) fn drive_utp(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .links
            .iter_mut()
            .filter_map(|(k, l)| {
                let s = l.utp()?;
                s.poll_timeout().is_some_and(|t| t <= now).then_some(k)
            })
            .collect();
        for k in due {
            if let Some(l) = self.links.get_mut(k) {
                let addr = l.addr;
                if let Some(s) = l.utp() {
                    s.handle_timeout(now);
                    log::trace!("{addr}: uTP timeout: {s:?}");
                }
            }
            self.utp_progress(k, now);
        }
        let mut buf = std::mem::take(&mut self.utp_tx);
        for (_, l) in self.links.iter_mut() {
            l.flush_utp(now, &mut buf);
        }
        self.utp_tx = buf;
        if !self.utp.closing.is_empty() {
            self.utp.drive_closing(now, None);
        }
    }

    /// The earliest uTP timeout.
    pub(super) fn utp_deadline(&mut self) -> Option<Instant> {
        let closing = self.utp.closing_deadline();
        self.links
            .iter_mut()
            .filter_map(|(_, l)| l.utp().and_then(|s| s.poll_timeout()))
            .chain(closing)
            .min()
    }
}
