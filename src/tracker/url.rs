//! Tracker URLs: parsing `http://` and `udp://` announce URLs, and building the HTTP
//! announce query (info-hash and peer id percent-encoded as raw bytes).

use super::{AnnounceParams, TrackerError};
use std::fmt::Write;

/// The transports btmini speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HTTP/1.1 over TCP.
    Http,
    /// BEP 15 over UDP.
    Udp,
}

/// A parsed announce URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUrl {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (80 when an HTTP URL gives none).
    pub port: u16,
    /// Path and query, starting with `/` (HTTP only).
    pub path: String,
}

impl TrackerUrl {
    /// Parses an announce URL. `https://` gives [`TrackerError::Https`].
    pub fn parse(url: &str) -> Result<Self, TrackerError> {
        let bad = || TrackerError::BadUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "udp" => Scheme::Udp,
            "https" => return Err(TrackerError::Https),
            other => return Err(TrackerError::UnsupportedScheme(other.to_owned())),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let port = match (port, scheme) {
            (Some(p), _) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
            (None, Scheme::Http) => 80,
            (None, Scheme::Udp) => return Err(bad()),
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The HTTP request target for an announce: the URL's path with the announce parameters
    /// added to any query string it already has.
    pub fn announce_target(&self, p: &AnnounceParams) -> String {
        let mut s = self.path.clone();
        s.push(if s.contains('?') { '&' } else { '?' });
        s.push_str("info_hash=");
        percent_encode(&p.info_hash.0, &mut s);
        s.push_str("&peer_id=");
        percent_encode(&p.peer_id, &mut s);
        let _ = write!(
            s,
            "&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}&key={:08x}",
            p.port, p.uploaded, p.downloaded, p.left, p.numwant, p.key
        );
        if let Some(e) = p.event.as_query() {
            let _ = write!(s, "&event={e}");
        }
        if let Some(id) = &p.tracker_id {
            s.push_str("&trackerid=");
            percent_encode(id, &mut s);
        }
        if let Some(ip) = p.ipv6 {
            s.push_str("&ipv6=");
            percent_encode(ip.to_string().as_bytes(), &mut s);
        }
        s
    }
}

/// Appends `bytes` with everything but RFC 3986's unreserved characters as `%XX`.
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::tracker::AnnounceEvent;

    fn params() -> AnnounceParams {
        let mut h = [0u8; 20];
        h[0] = 0x12;
        h[1] = b'a';
        h[2] = b' ';
        h[19] = 0xff;
        AnnounceParams {
            info_hash: InfoHash(h),
            peer_id: *b"-BM0100-abcdefghij~.",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: AnnounceEvent::Started,
            numwant: 50,
            key: 0xdead_beef,
            tracker_id: None,
            ipv6: None,
        }
    }

    #[test]
    fn parses_http_udp_ipv6_and_refuses_the_rest() {
        let u = TrackerUrl::parse("http://tracker.example:6969/announce").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Http, "tracker.example", 6969, "/announce")
        );
        let u = TrackerUrl::parse("HTTP://t.example/a?passkey=x").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/a?passkey=x"));
        let u = TrackerUrl::parse("http://t.example?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
        let u = TrackerUrl::parse("udp://[::1]:1337/announce").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Udp, "::1", 1337)
        );
        let u = TrackerUrl::parse("udp://127.0.0.1:6969").unwrap();
        assert_eq!(u.path, "/");
        assert_eq!(TrackerUrl::parse("https://t/a"), Err(TrackerError::Https));
        assert_eq!(
            TrackerUrl::parse("wss://t/a"),
            Err(TrackerError::UnsupportedScheme("wss".into()))
        );
        for bad in [
            "nonsense",
            "udp://host",
            "http://:80/",
            "http://h:99999/",
            "http://h:0/",
            "http://[::1/",
        ] {
            assert!(
                matches!(TrackerUrl::parse(bad), Err(TrackerError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn announce_target_encodes_raw_bytes_and_keeps_the_query() {
        let u = TrackerUrl::parse("http://t.example/announce?passkey=abc").unwrap();
        let t = u.announce_target(&params());
        assert_eq!(
            t,
            "/announce?passkey=abc&info_hash=%12a%20%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%FF\
             &peer_id=-BM0100-abcdefghij~.&port=6881&uploaded=1&downloaded=2&left=3&compact=1\
             &numwant=50&key=deadbeef&event=started"
        );
        let mut p = params();
        p.event = AnnounceEvent::None;
        p.tracker_id = Some(b"id 1".to_vec());
        let t = TrackerUrl::parse("http://t/a").unwrap().announce_target(&p);
        assert!(t.starts_with("/a?info_hash="));
        assert!(!t.contains("event="));
        assert!(t.ends_with("&key=deadbeef&trackerid=id%201"));
        p.ipv6 = Some("2001:db8::7".parse().unwrap());
        let t = TrackerUrl::parse("http://t/a").unwrap().announce_target(&p);
        assert!(
            t.ends_with("&trackerid=id%201&ipv6=2001%3Adb8%3A%3A7"),
            "{t}"
        );
    }
}
