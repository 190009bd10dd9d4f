//! KRPC, the DHT's message format (BEP 5, with BEP 32's `nodes6` and `want`): bencoded
//! dictionaries in single UDP datagrams. Bytes in, a [`Msg`] out, and back; no sockets.
//!
//! Decoding is strict about what it needs and lenient about the rest, as the BEP's "be
//! liberal in what you accept" asks of a port open to the internet: unknown keys are
//! ignored, a `nodes` string that is not a whole number of entries is an error, and every
//! size is bounded by the datagram's (at most [`MAX_DATAGRAM`] is read). A query that cannot
//! be decoded still yields its transaction id when it has one, so it can be answered with
//! a KRPC error ([`DecodeError::t`]).

use crate::bencode::{self, Item, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The largest datagram read; BEP 32 says to accept more than the 1,024 bytes one sends.
pub const MAX_DATAGRAM: usize = 8 * 1024;

/// Transaction ids longer than this are refused (clients use 2 to 8 bytes).
pub const MAX_T: usize = 32;

/// Tokens longer than this are refused (clients use 4 to 20 bytes).
pub const MAX_TOKEN: usize = 64;

/// KRPC error codes (BEP 5).
pub mod code {
    /// Generic error.
    pub const GENERIC: i64 = 201;
    /// Server error.
    pub const SERVER: i64 = 202;
    /// Protocol error: a malformed packet, an invalid argument or a bad token.
    pub const PROTOCOL: i64 = 203;
    /// Method unknown.
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// A node id or an info-hash: 160 bits, compared by XOR distance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 20]);

impl Id {
    /// The XOR distance to `other`, as a big-endian number that sorts as distances do.
    pub fn distance(&self, other: &Id) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        d
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix(&self, other: &Id) -> u32 {
        let d = self.distance(other);
        let mut n = 0;
        for b in d {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::util::hex(&self.0[..4]))?;
        f.write_str("…")
    }
}

/// A node's id and address, as `nodes` and `nodes6` carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Its id.
    pub id: Id,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Which address families a querier wants nodes of (BEP 32 `want`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`.
    pub v4: bool,
    /// `n6`.
    pub v6: bool,
}

/// A query's method and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping,
    /// `find_node`: the nodes closest to `target`.
    FindNode {
        /// The id sought.
        target: Id,
    },
    /// `get_peers`: peers of `info_hash`, or the closest nodes, and a token.
    GetPeers {
        /// The torrent.
        info_hash: Id,
    },
    /// `announce_peer`: the querier downloads `info_hash` on `port`.
    AnnouncePeer {
        /// The torrent.
        info_hash: Id,
        /// The port it gave (ignored when `implied_port`).
        port: u16,
        /// Use the datagram's source port instead (`implied_port` 1).
        implied_port: bool,
        /// The token from our `get_peers` reply.
        token: Vec<u8>,
    },
}

impl Query {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::FindNode { .. } => "find_node",
            Self::GetPeers { .. } => "get_peers",
            Self::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// A response's contents: whatever the method returns, all optional but the id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The responder's id.
    pub id: Option<Id>,
    /// Closest IPv4 nodes (`nodes`).
    pub nodes: Vec<NodeInfo>,
    /// Closest IPv6 nodes (`nodes6`).
    pub nodes6: Vec<NodeInfo>,
    /// Peers of the torrent (`values`).
    pub values: Vec<SocketAddr>,
    /// The token for a later `announce_peer`.
    pub token: Option<Vec<u8>>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `y` = `q`.
    Query {
        /// The querier's id.
        id: Id,
        /// Method and arguments.
        query: Query,
        /// BEP 32 `want`; empty: the querier's own family.
        want: Want,
        /// BEP 43 read-only: do not add the querier to the routing table.
        read_only: bool,
    },
    /// `y` = `r`.
    Response(Response),
    /// `y` = `e`.
    Error {
        /// 201–204, or anything.
        code: i64,
        /// The message, made printable.
        message: String,
    },
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// The transaction id, echoed in the reply.
    pub t: Vec<u8>,
    /// Query, response or error.
    pub body: Body,
    /// BEP 42's `ip`: the address of the node the reply goes to, as the replier sees it.
    pub ip: Option<SocketAddr>,
}

/// Why a datagram is not a KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The transaction id, when the message had a usable one: a query can then be answered
    /// with error 203 (or 204 for an unknown method).
    pub t: Option<Vec<u8>>,
    /// Whether it was a query (`y` = `q`): only a query is answered with an error.
    pub query: bool,
    /// Whether it was a query for a method we do not know.
    pub unknown_method: bool,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for DecodeError {}

fn err(t: Option<&[u8]>, what: impl Into<String>) -> DecodeError {
    DecodeError {
        t: t.map(<[u8]>::to_vec),
        query: false,
        unknown_method: false,
        what: what.into(),
    }
}

fn id_of(v: Option<&Value<'_>>) -> Option<Id> {
    v?.as_bytes()?.try_into().ok().map(Id)
}

/// Compact node entries: 26 bytes (IPv4) or 38 (IPv6) each.
fn compact_nodes(bytes: &[u8], v6: bool) -> Option<Vec<NodeInfo>> {
    let size = if v6 { 38 } else { 26 };
    if bytes.len() % size != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(size)
            .map(|c| NodeInfo {
                id: Id(c[..20].try_into().expect("20")),
                addr: compact_addr(&c[20..]).expect("6 or 18 bytes"),
            })
            .collect(),
    )
}

/// A compact address: 4 bytes and a port, or 16 and a port.
pub fn compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be_bytes([b[4], b[5]]),
            )))
        }
        18 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).ok()?);
            let port = u16::from_be_bytes([b[16], b[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)))
        }
        _ => None,
    }
}

/// The compact form of `addr` (6 or 18 bytes).
pub fn encode_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

impl Msg {
    /// Decodes one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Msg, DecodeError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(err(None, format!("a datagram of {} bytes", bytes.len())));
        }
        let v = bencode::decode(bytes).map_err(|e| err(None, format!("not bencode: {e}")))?;
        if v.as_dict().is_none() {
            return Err(err(None, "not a dictionary"));
        }
        let t = v
            .get(b"t")
            .and_then(Value::as_bytes)
            .filter(|t| t.len() <= MAX_T)
            .ok_or_else(|| err(None, "no transaction id"))?;
        let y = v
            .get(b"y")
            .and_then(Value::as_bytes)
            .ok_or_else(|| err(Some(t), "no message type"))?;
        let ip = v
            .get(b"ip")
            .and_then(Value::as_bytes)
            .and_then(compact_addr);
        let body = match y {
            b"q" => decode_query(&v, t).map_err(|mut e| {
                e.query = true;
                e
            })?,
            b"r" => Body::Response(decode_response(&v, t)?),
            b"e" => {
                let e = v.get(b"e").and_then(Value::as_list).unwrap_or(&[]);
                Body::Error {
                    code: e.first().and_then(Value::as_int).unwrap_or(code::GENERIC),
                    message: e
                        .get(1)
                        .and_then(Value::as_bytes)
                        .map(|m| {
                            crate::util::printable(&String::from_utf8_lossy(&m[..m.len().min(200)]))
                        })
                        .unwrap_or_default(),
                }
            }
            _ => return Err(err(Some(t), "unknown message type")),
        };
        Ok(Msg {
            t: t.to_vec(),
            body,
            ip,
        })
    }

    /// The datagram. Dictionary keys come out sorted, as bencode requires.
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Item::dict();
        d.insert("t", Item::bytes(&self.t));
        let mut ip = Vec::new();
        if let Some(a) = &self.ip {
            encode_addr(a, &mut ip);
            d.insert("ip", Item::Bytes(Cow::Owned(ip)));
        }
        match &self.body {
            Body::Query {
                id,
                query,
                want,
                read_only,
            } => {
                d.insert("y", Item::str("q"));
                d.insert("q", Item::str(query.method()));
                let mut a = Item::dict();
                a.insert("id", Item::bytes(&id.0));
                match query {
                    Query::Ping => {}
                    Query::FindNode { target } => a.insert("target", Item::bytes(&target.0)),
                    Query::GetPeers { info_hash } => {
                        a.insert("info_hash", Item::bytes(&info_hash.0))
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        a.insert("info_hash", Item::bytes(&info_hash.0));
                        a.insert("port", Item::Int(i64::from(*port)));
                        if *implied_port {
                            a.insert("implied_port", Item::Int(1));
                        }
                        a.insert("token", Item::bytes(token));
                    }
                }
                if want.v4 || want.v6 {
                    let mut w = Vec::new();
                    if want.v4 {
                        w.push(Item::str("n4"));
                    }
                    if want.v6 {
                        w.push(Item::str("n6"));
                    }
                    a.insert("want", Item::List(w));
                }
                d.insert("a", a);
                if *read_only {
                    d.insert("ro", Item::Int(1));
                }
            }
            Body::Response(r) => {
                d.insert("y", Item::str("r"));
                let mut m: BTreeMap<Cow<'_, [u8]>, Item<'_>> = BTreeMap::new();
                if let Some(id) = &r.id {
                    m.insert(Cow::Borrowed(b"id"), Item::Bytes(Cow::Owned(id.0.to_vec())));
                }
                for (key, list) in [(&b"nodes"[..], &r.nodes), (&b"nodes6"[..], &r.nodes6)] {
                    if !list.is_empty() {
                        let mut b = Vec::new();
                        for n in list {
                            b.extend_from_slice(&n.id.0);
                            encode_addr(&n.addr, &mut b);
                        }
                        m.insert(Cow::Borrowed(key), Item::Bytes(Cow::Owned(b)));
                    }
                }
                if let Some(tok) = &r.token {
                    m.insert(
                        Cow::Borrowed(b"token"),
                        Item::Bytes(Cow::Owned(tok.clone())),
                    );
                }
                if !r.values.is_empty() {
                    let vals = r
                        .values
                        .iter()
                        .map(|a| {
                            let mut b = Vec::new();
                            encode_addr(a, &mut b);
                            Item::Bytes(Cow::Owned(b))
                        })
                        .collect();
                    m.insert(Cow::Borrowed(b"values"), Item::List(vals));
                }
                d.insert("r", Item::Dict(m));
            }
            Body::Error { code, message } => {
                d.insert("y", Item::str("e"));
                d.insert("e", Item::List(vec![Item::Int(*code), Item::str(message)]));
            }
        }
        d.encode()
    }
}

fn decode_query(v: &Value<'_>, t: &[u8]) -> Result<Body, DecodeError> {
    let q = v
        .get(b"q")
        .and_then(Value::as_bytes)
        .ok_or_else(|| err(Some(t), "a query without a method"))?;
    let a = v
        .get(b"a")
        .filter(|a| a.as_dict().is_some())
        .ok_or_else(|| err(Some(t), "a query without arguments"))?;
    let id = id_of(a.get(b"id")).ok_or_else(|| err(Some(t), "a query without a 20-byte id"))?;
    let hash = |key: &[u8], name: &str| {
        id_of(a.get(key)).ok_or_else(|| err(Some(t), format!("{name} is not 20 bytes")))
    };
    let query = match q {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: hash(b"target", "target")?,
        },
        b"get_peers" => Query::GetPeers {
            info_hash: hash(b"info_hash", "info_hash")?,
        },
        b"announce_peer" => {
            let implied_port = a.get(b"implied_port").and_then(Value::as_int) == Some(1);
            let port = a
                .get(b"port")
                .and_then(Value::as_int)
                .and_then(|p| u16::try_from(p).ok());
            let port = match (port, implied_port) {
                (Some(p), _) => p,
                (None, true) => 0,
                (None, false) => return Err(err(Some(t), "announce_peer without a port")),
            };
            let token = a
                .get(b"token")
                .and_then(Value::as_bytes)
                .filter(|k| k.len() <= MAX_TOKEN)
                .ok_or_else(|| err(Some(t), "announce_peer without a token"))?;
            Query::AnnouncePeer {
                info_hash: hash(b"info_hash", "info_hash")?,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        other => {
            let mut e = err(
                Some(t),
                format!(
                    "unknown method {}",
                    crate::util::printable(&String::from_utf8_lossy(&other[..other.len().min(32)]))
                ),
            );
            e.unknown_method = true;
            return Err(e);
        }
    };
    let mut want = Want::default();
    for w in a.get(b"want").and_then(Value::as_list).unwrap_or(&[]) {
        match w.as_bytes() {
            Some(b"n4") => want.v4 = true,
            Some(b"n6") => want.v6 = true,
            _ => {}
        }
    }
    Ok(Body::Query {
        id,
        query,
        want,
        read_only: v.get(b"ro").and_then(Value::as_int) == Some(1),
    })
}

fn decode_response(v: &Value<'_>, t: &[u8]) -> Result<Response, DecodeError> {
    let r = v
        .get(b"r")
        .filter(|r| r.as_dict().is_some())
        .ok_or_else(|| err(Some(t), "a response without its dictionary"))?;
    let mut out = Response {
        id: id_of(r.get(b"id")),
        ..Response::default()
    };
    if out.id.is_none() {
        return Err(err(Some(t), "a response without a 20-byte id"));
    }
    for (key, v6) in [(&b"nodes"[..], false), (&b"nodes6"[..], true)] {
        if let Some(b) = r.get(key).and_then(Value::as_bytes) {
            let nodes =
                compact_nodes(b, v6).ok_or_else(|| err(Some(t), "nodes of a wrong length"))?;
            if v6 {
                out.nodes6 = nodes;
            } else {
                out.nodes = nodes;
            }
        }
    }
    if let Some(values) = r.get(b"values").and_then(Value::as_list) {
        // Entries of another size are skipped: some clients mix in garbage.
        out.values = values
            .iter()
            .filter_map(Value::as_bytes)
            .filter_map(compact_addr)
            .filter(|a| a.port() != 0)
            .collect();
    }
    out.token = r
        .get(b"token")
        .and_then(Value::as_bytes)
        .filter(|k| k.len() <= MAX_TOKEN)
        .map(<[u8]>::to_vec);
    Ok(out)
}

#[cfg(test)]
mod tests;
