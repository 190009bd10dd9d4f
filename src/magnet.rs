//! Magnet links (BEP 9): `magnet:?xt=urn:btih:HASH&dn=NAME&tr=URL&x.pe=HOST:PORT…`.
//!
//! The info-hash comes as 40 hex digits or 32 base32 characters (RFC 4648, either case);
//! `dn` is the suggested name, every `tr` a tracker (each its own tier, in the order given),
//! every `x.pe` a peer, every `ws` a web seed (kept, not used). Values are percent-decoded,
//! and `+` in `dn` is a space, as browsers write it. A v2 hash (`urn:btmh:`) beside a
//! `btih` is ignored; alone it is refused. Unknown keys are ignored, as BEP 9 asks. Each way a
//! magnet can be malformed has its own error.
//!
//! Not here: fetching the metadata the magnet names (BEP 9's `ut_metadata`) or resolving
//! the peers' host names.

use std::fmt;

/// A link longer than this is refused before it is parsed (real ones are well under 4 KiB;
/// a shell's argument limit is far above that).
pub const MAX_LEN: usize = 64 * 1024;

/// What a magnet link names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash.
    pub info_hash: [u8; 20],
    /// The suggested name (`dn`), if given.
    pub name: Option<String>,
    /// Tracker URLs (`tr`), each its own tier, in the order given, without duplicates.
    pub trackers: Vec<String>,
    /// Peers (`x.pe`), as `HOST:PORT`, without duplicates.
    pub peers: Vec<String>,
    /// Web seeds (`ws`), noted and not used.
    pub web_seeds: Vec<String>,
}

/// Why a magnet link cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MagnetError {
    /// It does not start with `magnet:?`.
    NotMagnet,
    /// Longer than [`MAX_LEN`].
    TooLong(usize),
    /// No `xt` parameter at all.
    NoTopic,
    /// Only a v2 (`urn:btmh:`) hash.
    V2Only,
    /// An `xt` that is neither `urn:btih:` nor `urn:btmh:`.
    UnknownTopic(String),
    /// A `btih` hash that is neither 40 hex digits nor 32 base32 characters.
    BadHashLength(usize),
    /// 40 characters that are not all hex digits.
    BadHex,
    /// 32 characters that are not all base32.
    BadBase32,
    /// Two different `btih` hashes.
    TwoHashes,
    /// A `%` not followed by two hex digits.
    BadEscape(String),
    /// A tracker or peer that is not UTF-8 once decoded.
    NotUtf8(&'static str),
    /// An `x.pe` that is not `HOST:PORT`.
    BadPeer(String),
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMagnet => f.write_str("not a magnet link (it must start with 'magnet:?')"),
            Self::TooLong(n) => write!(f, "magnet link of {n} bytes is too long"),
            Self::NoTopic => f.write_str("magnet link has no xt=urn:btih: (no info-hash)"),
            Self::V2Only => f.write_str(
                "v2-only magnet links (urn:btmh:) are not supported: a v1 hash (urn:btih:) is needed",
            ),
            Self::UnknownTopic(t) => write!(f, "magnet link has an unknown xt '{t}'"),
            Self::BadHashLength(n) => write!(
                f,
                "magnet info-hash has {n} characters: it must be 40 hex or 32 base32"
            ),
            Self::BadHex => f.write_str("magnet info-hash of 40 characters is not hex"),
            Self::BadBase32 => f.write_str("magnet info-hash of 32 characters is not base32"),
            Self::TwoHashes => f.write_str("magnet link names two different info-hashes"),
            Self::BadEscape(v) => write!(f, "magnet link has a bad %-escape in '{v}'"),
            Self::NotUtf8(what) => write!(f, "magnet link has a {what} that is not UTF-8"),
            Self::BadPeer(p) => write!(f, "magnet x.pe '{p}' is not HOST:PORT"),
        }
    }
}

impl std::error::Error for MagnetError {}

impl Magnet {
    /// Parses a magnet link.
    pub fn parse(link: &str) -> Result<Self, MagnetError> {
        if link.len() > MAX_LEN {
            return Err(MagnetError::TooLong(link.len()));
        }
        let query = link
            .get(..8)
            .filter(|s| s.eq_ignore_ascii_case("magnet:?"))
            .map(|_| &link[8..])
            .ok_or(MagnetError::NotMagnet)?;
        let mut hash: Option<[u8; 20]> = None;
        let mut v2 = false;
        let mut m = Magnet {
            info_hash: [0; 20],
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            // `xt.1`, `tr.2`: numbered forms of the same keys.
            let key = key.split_once('.').map_or(key, |(k, n)| {
                if n.bytes().all(|b| b.is_ascii_digit()) {
                    k
                } else {
                    key
                }
            });
            match key {
                "xt" => {
                    let value = decode(raw, false)?;
                    let value = String::from_utf8_lossy(&value);
                    if let Some(h) = strip_prefix_ci(&value, "urn:btih:") {
                        let h = parse_hash(h)?;
                        if hash.is_some_and(|old| old != h) {
                            return Err(MagnetError::TwoHashes);
                        }
                        hash = Some(h);
                    } else if strip_prefix_ci(&value, "urn:btmh:").is_some() {
                        v2 = true;
                    } else {
                        return Err(MagnetError::UnknownTopic(value.chars().take(80).collect()));
                    }
                }
                "dn" => {
                    let v = decode(raw, true)?;
                    m.name = Some(String::from_utf8_lossy(&v).into_owned());
                }
                "tr" => push_unique(&mut m.trackers, utf8(decode(raw, false)?, "tracker")?),
                "ws" => push_unique(&mut m.web_seeds, utf8(decode(raw, false)?, "web seed")?),
                "x.pe" => {
                    let p = utf8(decode(raw, false)?, "peer")?;
                    if !is_host_port(&p) {
                        return Err(MagnetError::BadPeer(p.chars().take(80).collect()));
                    }
                    push_unique(&mut m.peers, p);
                }
                _ => {}
            }
        }
        m.info_hash = match (hash, v2) {
            (Some(h), _) => h,
            (None, true) => return Err(MagnetError::V2Only),
            (None, false) => return Err(MagnetError::NoTopic),
        };
        Ok(m)
    }

    /// The link again, canonical: the hash in hex, then `dn`, every `tr`, `x.pe` and `ws`,
    /// each percent-encoded but for RFC 3986's unreserved characters.
    pub fn to_link(&self) -> String {
        let mut s = format!("magnet:?xt=urn:btih:{}", self.hex());
        let mut add = |key: &str, value: &str| {
            s.push('&');
            s.push_str(key);
            s.push('=');
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    s.push(char::from(b));
                } else {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
        };
        if let Some(n) = &self.name {
            add("dn", n);
        }
        for t in &self.trackers {
            add("tr", t);
        }
        for p in &self.peers {
            add("x.pe", p);
        }
        for w in &self.web_seeds {
            add("ws", w);
        }
        s
    }

    /// The info-hash as 40 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.info_hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &s[prefix.len()..])
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !v.is_empty() && !list.contains(&v) {
        list.push(v);
    }
}

fn utf8(v: Vec<u8>, what: &'static str) -> Result<String, MagnetError> {
    String::from_utf8(v).map_err(|_| MagnetError::NotUtf8(what))
}

/// Percent-decodes `raw`; `plus` turns `+` into a space.
fn decode(raw: &str, plus: bool) -> Result<Vec<u8>, MagnetError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                let Some(v) = hex else {
                    return Err(MagnetError::BadEscape(raw.chars().take(80).collect()));
                };
                out.push(v);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// 40 hex digits or 32 base32 characters.
fn parse_hash(h: &str) -> Result<[u8; 20], MagnetError> {
    let mut out = [0u8; 20];
    match h.len() {
        40 => out = crate::util::hash_from_hex(h).ok_or(MagnetError::BadHex)?,
        32 => {
            // RFC 4648 base32: 5 bits a character, 160 bits in all.
            let mut acc: u64 = 0;
            let mut bits = 0;
            let mut at = 0;
            for c in h.bytes() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(MagnetError::BadBase32),
                };
                acc = (acc << 5) | u64::from(v);
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    out[at] = (acc >> bits) as u8;
                    at += 1;
                }
            }
        }
        n => return Err(MagnetError::BadHashLength(n)),
    }
    Ok(out)
}

/// `HOST:PORT` with a port from 1 to 65535; an IPv6 host in brackets.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':') && !host.contains(char::is_whitespace)
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests;
