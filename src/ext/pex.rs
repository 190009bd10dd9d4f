//! BEP 11, peer exchange (`ut_pex`): the message's dictionary of compact address lists, both
//! ways. IPv4 lists are 6 bytes an address (`added`, `dropped`), IPv6 ones 18 (`added6`,
//! `dropped6`); `added.f` / `added6.f` hold one flag byte per added address.
//!
//! A message with more than [`MAX_ADDRESSES`] addresses in all is refused whole: real clients
//! send at most 50 (Transmission) or 100 (libtorrent) a message, so thousands mean a hostile
//! peer. Addresses with port 0 are skipped. Not here: how often a message may come, and which
//! addresses are worth passing on (see [`crate::peer`] and [`crate::session`]).

use super::ExtError;
use crate::bencode::{self, Item};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The most addresses (added and dropped, both families) one message may carry.
pub const MAX_ADDRESSES: usize = 300;

/// Flag: the peer prefers encryption. btmini never sets it (it does not speak MSE yet).
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// Flag: the peer is a seed.
pub const FLAG_SEED: u8 = 0x02;
/// Flag: the peer supports uTP.
pub const FLAG_UTP: u8 = 0x04;
/// Flag: the peer is reachable (a connection to it was made from outside).
pub const FLAG_CONNECTABLE: u8 = 0x10;

/// One PEX message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pex {
    /// Peers connected since the last message, with their flags.
    pub added: Vec<(SocketAddr, u8)>,
    /// Peers gone since the last message.
    pub dropped: Vec<SocketAddr>,
}

impl Pex {
    /// Decodes a `ut_pex` payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtError> {
        let v = bencode::decode(payload).map_err(ExtError::Bencode)?;
        if v.as_dict().is_none() {
            return Err(ExtError::NotADict("a ut_pex message"));
        }
        let list = |key: &'static str, width: usize| -> Result<&[u8], ExtError> {
            let b = v
                .get(key.as_bytes())
                .and_then(|x| x.as_bytes())
                .unwrap_or(&[]);
            if b.len() % width != 0 {
                return Err(ExtError::BadCompactList(key, b.len()));
            }
            Ok(b)
        };
        let (a4, d4) = (list("added", 6)?, list("dropped", 6)?);
        let (a6, d6) = (list("added6", 18)?, list("dropped6", 18)?);
        let total = a4.len() / 6 + d4.len() / 6 + a6.len() / 18 + d6.len() / 18;
        if total > MAX_ADDRESSES {
            return Err(ExtError::TooManyAddresses(total));
        }
        let flags = |key: &[u8]| v.get(key).and_then(|x| x.as_bytes()).unwrap_or(&[]);
        let (f4, f6) = (flags(b"added.f"), flags(b"added6.f"));
        let mut pex = Self::default();
        for (i, c) in a4.chunks_exact(6).enumerate() {
            if let Some(a) = v4(c) {
                pex.added.push((a, f4.get(i).copied().unwrap_or(0)));
            }
        }
        for (i, c) in a6.chunks_exact(18).enumerate() {
            if let Some(a) = v6(c) {
                pex.added.push((a, f6.get(i).copied().unwrap_or(0)));
            }
        }
        pex.dropped.extend(d4.chunks_exact(6).filter_map(v4));
        pex.dropped.extend(d6.chunks_exact(18).filter_map(v6));
        Ok(pex)
    }

    /// The bencoded payload. Empty lists are left out, as libtorrent does, except `added`
    /// and `dropped`, which some clients expect.
    pub fn encode(&self) -> Vec<u8> {
        let mut lists: [Vec<u8>; 6] = Default::default();
        let [a4, f4, a6, f6, d4, d6] = &mut lists;
        for &(addr, flags) in &self.added {
            match addr {
                SocketAddr::V4(_) => {
                    compact(addr, a4);
                    f4.push(flags);
                }
                SocketAddr::V6(_) => {
                    compact(addr, a6);
                    f6.push(flags);
                }
            }
        }
        for &addr in &self.dropped {
            compact(addr, if addr.is_ipv4() { &mut *d4 } else { &mut *d6 });
        }
        let mut d = Item::dict();
        d.insert("added", Item::bytes(a4));
        d.insert("added.f", Item::bytes(f4));
        d.insert("dropped", Item::bytes(d4));
        if !a6.is_empty() {
            d.insert("added6", Item::bytes(a6));
            d.insert("added6.f", Item::bytes(f6));
        }
        if !d6.is_empty() {
            d.insert("dropped6", Item::bytes(d6));
        }
        d.encode()
    }
}

fn v4(c: &[u8]) -> Option<SocketAddr> {
    let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
    let port = u16::from_be_bytes([c[4], c[5]]);
    (port != 0).then(|| SocketAddr::new(IpAddr::V4(ip), port))
}

fn v6(c: &[u8]) -> Option<SocketAddr> {
    let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&c[..16]).ok()?);
    let port = u16::from_be_bytes([c[16], c[17]]);
    (port != 0).then(|| SocketAddr::new(IpAddr::V6(ip), port))
}

fn compact(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}
