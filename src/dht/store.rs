//! What this node keeps for others: the peers announced to it (bounded per torrent and in
//! all, expiring after 30 minutes), and the tokens that let a node announce (BEP 5: tied to
//! the asker's address, the port and the info-hash, from a secret that changes every 5
//! minutes; a token is accepted for two secrets, 5 to 10 minutes).

use super::krpc::Id;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An announced peer is forgotten after this.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Peers kept per torrent at most.
pub const MAX_PER_TORRENT: usize = 200;
/// Torrents kept at most.
pub const MAX_TORRENTS: usize = 2_000;
/// Peers kept at most over all torrents (about 1 MiB).
pub const MAX_PEERS: usize = 20_000;
/// Peers given in one reply at most (50 × 6 bytes keeps a reply under 1,024 bytes).
pub const MAX_VALUES: usize = 50;
/// The token secret changes this often.
pub const SECRET_EVERY: Duration = Duration::from_secs(5 * 60);

/// Announced peers by info-hash.
#[derive(Debug, Default)]
pub struct PeerStore {
    torrents: HashMap<Id, Vec<(SocketAddr, Instant)>>,
    /// Peers over all torrents.
    count: usize,
}

impl PeerStore {
    /// `peer` announced `info_hash` at `now`. Refused (false) when the store is full.
    pub fn announce(&mut self, info_hash: Id, peer: SocketAddr, now: Instant) -> bool {
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= MAX_TORRENTS {
            self.expire(now);
            if self.torrents.len() >= MAX_TORRENTS {
                return false;
            }
        }
        if self.count >= MAX_PEERS {
            self.expire(now);
        }
        let full = self.count >= MAX_PEERS;
        let peers = self.torrents.entry(info_hash).or_default();
        if let Some(p) = peers.iter_mut().find(|(a, _)| *a == peer) {
            p.1 = now;
            return true;
        }
        if full && peers.is_empty() {
            self.torrents.remove(&info_hash);
            return false;
        }
        if peers.len() >= MAX_PER_TORRENT || full {
            // The oldest announce makes room.
            let oldest = peers
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
                .expect("full");
            peers.swap_remove(oldest);
        } else {
            self.count += 1;
        }
        peers.push((peer, now));
        true
    }

    /// Up to [`MAX_VALUES`] live peers of `info_hash`, of the family of `v6`.
    pub fn peers(&self, info_hash: &Id, v6: bool, now: Instant) -> Vec<SocketAddr> {
        self.torrents.get(info_hash).map_or_else(Vec::new, |p| {
            p.iter()
                .filter(|(a, t)| a.is_ipv6() == v6 && now.duration_since(*t) < PEER_TTL)
                .map(|(a, _)| *a)
                .take(MAX_VALUES)
                .collect()
        })
    }

    /// Forgets what is older than [`PEER_TTL`].
    pub fn expire(&mut self, now: Instant) {
        self.torrents.retain(|_, p| {
            p.retain(|(_, t)| now.duration_since(*t) < PEER_TTL);
            !p.is_empty()
        });
        self.count = self.torrents.values().map(Vec::len).sum();
    }

    /// Peers kept, over all torrents.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no peer is kept.
    pub fn is_empty(&self) -> bool {
        self.torrents.is_empty()
    }
}

/// The token secrets.
#[derive(Debug)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    changed: Instant,
}

impl Tokens {
    /// Secrets from `random`.
    pub fn new(now: Instant, mut random: impl FnMut() -> [u8; 16]) -> Self {
        Self {
            current: random(),
            previous: random(),
            changed: now,
        }
    }

    /// A new secret when the current one is [`SECRET_EVERY`] old.
    pub fn rotate(&mut self, now: Instant, mut random: impl FnMut() -> [u8; 16]) {
        if now.duration_since(self.changed) >= SECRET_EVERY {
            self.previous = self.current;
            self.current = random();
            self.changed = now;
        }
    }

    fn make(secret: &[u8; 16], from: &SocketAddr, info_hash: &Id) -> Vec<u8> {
        let mut x = Vec::with_capacity(16 + 18 + 20);
        x.extend_from_slice(secret);
        super::krpc::encode_addr(from, &mut x);
        x.extend_from_slice(&info_hash.0);
        crate::hash::sha1(&x)[..8].to_vec()
    }

    /// The token for a `get_peers` from `from` about `info_hash`.
    pub fn token(&self, from: &SocketAddr, info_hash: &Id) -> Vec<u8> {
        Self::make(&self.current, from, info_hash)
    }

    /// Whether `token` is one we gave `from` for `info_hash` under this or the last secret.
    pub fn valid(&self, token: &[u8], from: &SocketAddr, info_hash: &Id) -> bool {
        token == Self::make(&self.current, from, info_hash)
            || token == Self::make(&self.previous, from, info_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tokens_are_tied_to_the_address_port_and_torrent_and_live_two_secrets() {
        let t0 = Instant::now();
        let mut n = 0u8;
        let mut random = || {
            n += 1;
            [n; 16]
        };
        let mut tokens = Tokens::new(t0, &mut random);
        let (from, ih) = (a("10.0.0.1:6881"), Id([1; 20]));
        let tok = tokens.token(&from, &ih);
        assert!(tokens.valid(&tok, &from, &ih));
        assert!(!tokens.valid(&tok, &a("10.0.0.2:6881"), &ih));
        assert!(!tokens.valid(&tok, &a("10.0.0.1:6882"), &ih));
        assert!(!tokens.valid(&tok, &from, &Id([2; 20])));
        tokens.rotate(t0 + SECRET_EVERY - Duration::from_secs(1), &mut random);
        tokens.rotate(t0 + SECRET_EVERY, &mut random);
        assert!(
            tokens.valid(&tok, &from, &ih),
            "5 minutes later, still good"
        );
        tokens.rotate(t0 + SECRET_EVERY * 2, &mut random);
        assert!(!tokens.valid(&tok, &from, &ih), "10 minutes later, gone");
    }

    #[test]
    fn the_peer_store_is_bounded_per_torrent_and_in_all_and_expires() {
        let t0 = Instant::now();
        let mut s = PeerStore::default();
        for i in 0..(MAX_PER_TORRENT + 10) as u32 {
            let peer = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1000));
            assert!(s.announce(Id([1; 20]), peer, t0 + Duration::from_millis(u64::from(i))));
        }
        assert_eq!(s.len(), MAX_PER_TORRENT);
        assert_eq!(s.peers(&Id([1; 20]), false, t0).len(), MAX_VALUES);
        for i in 0..MAX_TORRENTS as u32 {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&i.to_be_bytes());
            ih[19] = 9;
            s.announce(Id(ih), a("10.9.9.9:1"), t0);
        }
        assert!(!s.announce(Id([3; 20]), a("10.9.9.9:1"), t0), "full");
        assert!(s.len() <= MAX_PEERS);
        let later = t0 + PEER_TTL + Duration::from_secs(1);
        assert!(s.peers(&Id([1; 20]), false, later).is_empty());
        assert!(
            s.announce(Id([3; 20]), a("10.9.9.9:1"), later),
            "expired ones made room"
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_peers_over_all_torrents_stop_at_max_peers() {
        let t0 = Instant::now();
        let mut s = PeerStore::default();
        let mut refused = 0;
        for i in 0..(MAX_PEERS as u32 + 500) {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&(i / 100).to_be_bytes());
            let peer = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1));
            refused += usize::from(!s.announce(Id(ih), peer, t0));
        }
        assert_eq!(s.len(), MAX_PEERS);
        assert_eq!(refused, 500);
        // Room again once the old ones expire.
        let later = t0 + PEER_TTL;
        assert!(s.announce(Id([1; 20]), "10.9.9.9:1".parse().unwrap(), later));
        assert_eq!(s.len(), 1);
    }
}
