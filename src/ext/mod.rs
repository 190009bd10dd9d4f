//! BEP 10, the extension protocol: the extended handshake's dictionary, both ways, and the
//! registry of what a peer offers. The payloads of the extensions themselves are in
//! [`pex`] (BEP 11) and [`metadata`] (BEP 9's `ut_metadata`).
//!
//! Decoding is defensive: the dictionary is capped at [`MAX_HANDSHAKE`] bytes before it is
//! parsed, bencode must be well formed and a dictionary, a key of the wrong type is ignored
//! as an unknown key would be, and strings a person sees (the client name) are cut short.
//! Not here: the per-connection state that uses these (see [`crate::peer`]).

pub mod fetch;
pub mod metadata;
pub mod pex;

use crate::bencode::{self, Item};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The largest extended handshake accepted, in bytes. Real ones are a few hundred bytes
/// (libtorrent's, with every extension, is under 300); a larger one is a hostile peer.
pub const MAX_HANDSHAKE: usize = 16 * 1024;

/// Our extended message id for `ut_pex` (what peers use when they send it to us).
pub const UT_PEX: u8 = 1;
/// Our extended message id for `ut_metadata`.
pub const UT_METADATA: u8 = 2;

/// The client names shown are cut to this many characters.
const MAX_CLIENT: usize = 64;

/// A malformed extended message; the peer that sent it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtError {
    /// An extended handshake over [`MAX_HANDSHAKE`] bytes.
    HandshakeTooLarge(usize),
    /// The payload is not bencoded data.
    Bencode(bencode::DecodeError),
    /// The payload is bencoded but not a dictionary.
    NotADict(&'static str),
    /// A compact address list whose length is not a multiple of one address.
    BadCompactList(&'static str, usize),
    /// More addresses in one PEX message than any real client sends.
    TooManyAddresses(usize),
    /// A `ut_metadata` message without what its type needs.
    BadMetadata(&'static str),
}

impl fmt::Display for ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HandshakeTooLarge(n) => write!(
                f,
                "extended handshake of {n} bytes (at most {MAX_HANDSHAKE})"
            ),
            Self::Bencode(e) => write!(f, "malformed extended message: {e}"),
            Self::NotADict(what) => write!(f, "{what} is not a dictionary"),
            Self::BadCompactList(key, n) => write!(f, "PEX `{key}` of {n} bytes"),
            Self::TooManyAddresses(n) => write!(f, "PEX message with {n} addresses"),
            Self::BadMetadata(what) => write!(f, "ut_metadata message with {what}"),
        }
    }
}

impl std::error::Error for ExtError {}

/// The extended handshake (message 20, id 0): what a peer offers and says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The id it wants `ut_pex` sent with: `Some(0)` turns the extension off.
    pub ut_pex: Option<u8>,
    /// The id it wants `ut_metadata` sent with: `Some(0)` turns the extension off.
    pub ut_metadata: Option<u8>,
    /// Its listen port (`p`).
    pub port: Option<u16>,
    /// Its client name and version (`v`), cut short and made printable.
    pub client: Option<String>,
    /// How many outstanding requests it accepts (`reqq`).
    pub reqq: Option<u32>,
    /// Our address as it sees it (`yourip`).
    pub yourip: Option<IpAddr>,
    /// The size of the info dictionary (`metadata_size`, BEP 9).
    pub metadata_size: Option<u64>,
    /// It only uploads (`upload_only`, BEP 21).
    pub upload_only: bool,
    /// It prefers encrypted connections (`e`, the field BEP 11's PEX flag 0x01 refers to):
    /// Transmission sends it unless it prefers plaintext, and flags such peers 0x01 in its
    /// PEX messages; libtorrent 2.0 neither sends nor reads it.
    pub encryption: bool,
}

impl ExtHandshake {
    /// Decodes the payload of an extended handshake.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtError> {
        if payload.len() > MAX_HANDSHAKE {
            return Err(ExtError::HandshakeTooLarge(payload.len()));
        }
        let v = bencode::decode(payload).map_err(ExtError::Bencode)?;
        if v.as_dict().is_none() {
            return Err(ExtError::NotADict("the extended handshake"));
        }
        let int = |k: &[u8]| v.get(k).and_then(|x| x.as_int());
        let mut h = Self::default();
        if let Some(m) = v.get(b"m").and_then(|m| m.as_dict()) {
            for (name, id) in m {
                let Some(id) = id.as_int().and_then(|i| u8::try_from(i).ok()) else {
                    continue;
                };
                match *name {
                    b"ut_pex" => h.ut_pex = Some(id),
                    b"ut_metadata" => h.ut_metadata = Some(id),
                    _ => {}
                }
            }
        }
        h.port = int(b"p")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        h.reqq = int(b"reqq")
            .and_then(|q| u32::try_from(q).ok())
            .filter(|&q| q > 0);
        h.metadata_size = int(b"metadata_size").and_then(|s| u64::try_from(s).ok());
        h.upload_only = int(b"upload_only").is_some_and(|u| u != 0);
        h.encryption = int(b"e").is_some_and(|e| e != 0);
        h.client = v.get(b"v").and_then(|c| c.as_bytes()).map(|c| {
            let s = crate::util::printable(&String::from_utf8_lossy(c));
            s.chars().take(MAX_CLIENT).collect()
        });
        h.yourip = v
            .get(b"yourip")
            .and_then(|y| y.as_bytes())
            .and_then(|b| match b.len() {
                4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
                16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
                _ => None,
            });
        Ok(h)
    }

    /// The bencoded dictionary (sorted keys), as the payload of message 20 with id 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Item::dict();
        if let Some(id) = self.ut_pex {
            m.insert("ut_pex", Item::Int(i64::from(id)));
        }
        if let Some(id) = self.ut_metadata {
            m.insert("ut_metadata", Item::Int(i64::from(id)));
        }
        let mut d = Item::dict();
        d.insert("m", m);
        if let Some(p) = self.port {
            d.insert("p", Item::Int(i64::from(p)));
        }
        if let Some(q) = self.reqq {
            d.insert("reqq", Item::Int(i64::from(q)));
        }
        if let Some(s) = self.metadata_size {
            d.insert("metadata_size", Item::Int(s as i64));
        }
        if self.upload_only {
            d.insert("upload_only", Item::Int(1));
        }
        if self.encryption {
            d.insert("e", Item::Int(1));
        }
        let ip;
        if let Some(addr) = self.yourip {
            ip = match addr {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            d.insert("yourip", Item::bytes(&ip));
        }
        if let Some(c) = &self.client {
            d.insert("v", Item::str(c));
        }
        d.encode()
    }
}

/// What a peer offers, kept across its extended handshakes (a later one changes only what it
/// names, BEP 10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// The id to send `ut_pex` with; 0: not offered.
    pub ut_pex: u8,
    /// The id to send `ut_metadata` with; 0: not offered.
    pub ut_metadata: u8,
    /// Its `reqq`, if it gave one.
    pub reqq: Option<u32>,
    /// Its listen port, if it gave one.
    pub port: Option<u16>,
    /// Its client name, if it gave one.
    pub client: Option<String>,
    /// Its `metadata_size`, if it gave one.
    pub metadata_size: Option<u64>,
    /// It said it prefers encryption (`e`) in one of its extended handshakes.
    pub encryption: bool,
    /// It has sent at least one extended handshake.
    pub shaken: bool,
}

impl Registry {
    /// Takes in a (first or later) extended handshake.
    pub fn apply(&mut self, h: ExtHandshake) {
        self.shaken = true;
        if let Some(id) = h.ut_pex {
            self.ut_pex = id;
        }
        if let Some(id) = h.ut_metadata {
            self.ut_metadata = id;
        }
        self.reqq = h.reqq.or(self.reqq);
        self.port = h.port.or(self.port);
        self.client = h.client.or(self.client.take());
        self.metadata_size = h.metadata_size.or(self.metadata_size);
        self.encryption |= h.encryption;
    }
}

#[cfg(test)]
mod tests;
