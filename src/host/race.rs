//! Dialling a peer over uTP and TCP the way happy eyeballs (RFC 8305) dials two address
//! families: uTP first, then TCP as well when uTP has not answered after a short delay; the
//! first transport to connect carries the connection, the other is let go.
//!
//! Why: a peer whose UDP port is open but does not speak uTP (libtorrent with uTP off), or
//! sits behind a firewall that drops rather than rejects, sends no ICMP error, so a uTP dial
//! alone waits out its SYN retries (3 s) before TCP is tried: 3 s on every first contact.
//! libtorrent dials uTP first and tries TCP only after its connect timeout; Transmission
//! dials uTP only to peers known to speak it (PEX flag 0x04, an incoming uTP connection) and
//! misses the uTP-only ones it has not heard of that way. Racing keeps uTP for every peer
//! that answers it (it gets through NATs and yields to other traffic) at the cost of a
//! second SYN to peers that are slow to answer uTP.
//!
//! The race is decided at connect, as RFC 8305 decides it, not at the BitTorrent handshake:
//! the session's handshake (or MSE's) goes over one connection only. The delay follows RFC
//! 8305: [`FIRST_DELAY`] (its recommended minimum) for a peer never reached, twice its uTP
//! round trip once one is known, within [`MIN_DELAY`] and [`MAX_DELAY`]; for a peer on the
//! local network (loopback, private, link-local addresses), whose round trip is well under a
//! millisecond, [`LAN_DELAY`] at least. A short delay rarely changes the winner: uTP's SYN
//! left first, so a peer that speaks uTP answers it before TCP unless the SYN was lost; what
//! it costs is a TCP connect, let go at once, to a far peer. A peer that answered TCP first
//! is dialled over TCP from then on.

use super::Host;
use super::link::{Race, Transport};
use mio::Interest;
use mio::Token;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a uTP dial to a peer never reached waits before TCP is dialled beside it
/// (RFC 8305's recommended minimum connection attempt delay; 250 ms, its default, costs a
/// TCP-only seeder's whole 1 GiB download 7% here).
pub(super) const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The shortest wait for a peer whose round trip is known (RFC 8305's minimum: shorter
/// waits add connections where packets are being lost).
pub(super) const MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest (RFC 8305's maximum).
pub(super) const MAX_DELAY: Duration = Duration::from_secs(2);
/// The wait for a peer on the local network: twice RFC 8305's absolute minimum (10 ms), and
/// tens of its round trips. A 1 GiB download from a TCP-only seeder on loopback takes 1.8 s
/// here: 100 ms was 7% of it.
pub(super) const LAN_DELAY: Duration = Duration::from_millis(20);

/// Peers remembered per torrent, at most (forgetting costs one race each).
const MAX_REMEMBERED: usize = 4096;

/// What one torrent learned of how its peers can be reached.
#[derive(Debug, Default)]
pub(super) struct Paths {
    /// Peers that answered TCP and not uTP: dialled over TCP alone.
    tcp: HashSet<SocketAddr>,
    /// Peers that answered uTP, with the round trip it measured.
    utp: HashMap<SocketAddr, Duration>,
}

impl Paths {
    /// Whether `addr` is dialled over TCP alone.
    pub(super) fn tcp_only(&self, addr: &SocketAddr) -> bool {
        self.tcp.contains(addr)
    }

    /// How long a uTP dial to `addr` goes alone before TCP is dialled beside it.
    pub(super) fn race_delay(&self, addr: &SocketAddr) -> Duration {
        let (first, min) = if crate::util::on_local_network(addr.ip()) {
            (LAN_DELAY, LAN_DELAY)
        } else {
            (FIRST_DELAY, MIN_DELAY)
        };
        self.utp
            .get(addr)
            .map_or(first, |rtt| (*rtt * 2).clamp(min, MAX_DELAY))
    }

    /// `addr` answered uTP, in `rtt` when the stream measured one.
    pub(super) fn utp_answered(&mut self, addr: SocketAddr, rtt: Option<Duration>) {
        self.tcp.remove(&addr);
        if let Some(rtt) = rtt {
            if self.utp.len() >= MAX_REMEMBERED {
                self.utp.clear();
            }
            self.utp.insert(addr, rtt);
        }
    }

    /// `addr` answered TCP first, or not over uTP at all: TCP alone from now on.
    pub(super) fn tcp_answered(&mut self, addr: SocketAddr) {
        self.utp.remove(&addr);
        if self.tcp.len() >= MAX_REMEMBERED {
            self.tcp.clear();
        }
        self.tcp.insert(addr);
    }
}

impl Host {
    /// The earliest moment a uTP dial is due to be raced by TCP.
    pub(super) fn race_deadline(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|(_, l)| match l.race {
                Race::Due(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Dials TCP beside every uTP dial whose delay is over and that is still unanswered.
    pub(super) fn start_races(&mut self, now: Instant) {
        let bind = self.opts.bind;
        let registry = self.poll.registry();
        for (k, l) in self.links.iter_mut() {
            let Race::Due(at) = l.race else { continue };
            if at > now {
                continue;
            }
            l.race = Race::None;
            if l.connected {
                continue;
            }
            let Ok(mut tcp) = crate::net::connect_peer(l.addr, bind) else {
                continue;
            };
            let token = Token(super::RACE_BASE + k);
            if registry
                .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
                .is_ok()
            {
                log::debug!("{}: no answer over uTP yet: dialling TCP beside it", l.addr);
                l.race = Race::Tcp(tcp);
            }
        }
    }

    /// Readiness of link `link`'s racing TCP connect: connected, it takes the link over (the
    /// uTP dial is let go, the peer is dialled over TCP from now on); failed, it is dropped
    /// and the uTP dial goes on alone.
    pub(super) fn race_event(&mut self, link: usize, now: Instant) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let Race::Tcp(tcp) = &l.race else { return };
        match super::link::connect_state(tcp) {
            None => return,
            Some(Err(e)) => {
                l.drop_race(self.poll.registry());
                return log::debug!("{}: TCP beside uTP failed: {e}", l.addr);
            }
            Some(Ok(())) => {}
        }
        if !self.race_takes_over(link, now) {
            return;
        }
        let l = &mut self.links[link];
        log::debug!("{}: TCP answered before uTP: keeping TCP", l.addr);
        l.connected = true;
        if let super::link::Owner::Peer { torrent, .. } = l.owner {
            if let Some(t) = self.torrents.get_mut(torrent) {
                t.paths.tcp_answered(l.addr);
            }
        }
        self.connect_done(link, now);
    }

    /// Link `link`'s racing TCP dial, if it has one, takes the uTP dial's place (given up,
    /// with a RESET): its transport from now on, under the link's own token. Whether it had
    /// one (and it could be re-registered).
    pub(super) fn race_takes_over(&mut self, link: usize, now: Instant) -> bool {
        let l = &mut self.links[link];
        let Race::Tcp(mut tcp) = std::mem::take(&mut l.race) else {
            return false;
        };
        let registry = self.poll.registry();
        // Re-registering reports its readiness again, so nothing that came meanwhile is
        // missed.
        let token = Token(super::PEER_BASE + link);
        if registry
            .reregister(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return false;
        }
        l.release(registry, now);
        l.transport = Transport::Tcp(tcp);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_on_the_local_network_is_raced_sooner() {
        let p = Paths::default();
        for lan in [
            "127.0.0.2:1",
            "192.168.1.9:1",
            "10.1.2.3:1",
            "[fd00::5]:1",
            "[fe80::1]:1",
        ] {
            assert_eq!(p.race_delay(&lan.parse().unwrap()), LAN_DELAY, "{lan}");
        }
        let mut p = p;
        let lan: SocketAddr = "192.168.1.9:6881".parse().unwrap();
        p.utp_answered(lan, Some(Duration::from_millis(30)));
        assert_eq!(
            p.race_delay(&lan),
            Duration::from_millis(60),
            "a slow LAN (Wi-Fi)"
        );
        assert_eq!(
            p.race_delay(&"[2001:db8::1]:1".parse().unwrap()),
            FIRST_DELAY
        );
    }

    #[test]
    fn the_delay_is_twice_the_round_trip_once_known_and_tcp_wins_for_good() {
        let mut p = Paths::default();
        let a: SocketAddr = "203.0.113.7:6881".parse().unwrap();
        assert_eq!(p.race_delay(&a), FIRST_DELAY);
        p.utp_answered(a, Some(Duration::from_millis(180)));
        assert_eq!(p.race_delay(&a), Duration::from_millis(360));
        p.utp_answered(a, Some(Duration::from_millis(1)));
        assert_eq!(p.race_delay(&a), MIN_DELAY, "a LAN's round trip");
        p.utp_answered(a, Some(Duration::from_secs(3)));
        assert_eq!(p.race_delay(&a), MAX_DELAY);
        assert!(!p.tcp_only(&a));
        p.tcp_answered(a);
        assert!(p.tcp_only(&a));
        assert_eq!(
            p.race_delay(&a),
            FIRST_DELAY,
            "its uTP round trip is forgotten"
        );
        p.utp_answered(a, None);
        assert!(!p.tcp_only(&a), "it answered uTP after all");
    }
}
