//! Announce replies: the bencoded dictionary of an HTTP tracker (BEP 3), with compact IPv4
//! peers (BEP 23), a list of peer dictionaries, or compact IPv6 `peers6` (BEP 7).

use super::TrackerError;
use crate::bencode::{self, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a tracker answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: Option<u32>,
    /// Seconds the tracker wants between any two announces.
    pub min_interval: Option<u32>,
    /// To be sent back as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
    /// Seeders.
    pub complete: Option<u32>,
    /// Leechers.
    pub incomplete: Option<u32>,
    /// Peers, IPv4 and IPv6, port 0 left out.
    pub peers: Vec<SocketAddr>,
    /// A `warning message` to log.
    pub warning: Option<String>,
}

/// Parses an HTTP tracker's announce reply; a `failure reason` becomes
/// [`TrackerError::Failure`].
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let bad = |what: String| TrackerError::BadResponse(what);
    let root = bencode::decode(body).map_err(|e| bad(format!("not bencode ({e})")))?;
    if root.as_dict().is_none() {
        return Err(bad("not a dictionary".into()));
    }
    if let Some(r) = root.get(b"failure reason") {
        let r = r
            .as_bytes()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        return Err(TrackerError::Failure(r.into_owned()));
    }
    let num = |key: &[u8]| {
        root.get(key)
            .and_then(Value::as_int)
            .map(|i| i.clamp(0, i64::from(u32::MAX)) as u32)
    };
    let mut r = AnnounceResponse {
        interval: num(b"interval"),
        min_interval: num(b"min interval"),
        tracker_id: root
            .get(b"tracker id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
        complete: num(b"complete"),
        incomplete: num(b"incomplete"),
        peers: Vec::new(),
        warning: root
            .get(b"warning message")
            .and_then(Value::as_bytes)
            .map(|w| String::from_utf8_lossy(w).into_owned()),
    };
    match root.get(b"peers") {
        Some(p) if p.as_bytes().is_some() => {
            let bytes = p.as_bytes().unwrap_or_default();
            r.peers.extend(compact_v4(bytes).map_err(bad)?);
        }
        Some(p) if p.as_list().is_some() => {
            for d in p.as_list().unwrap_or_default() {
                let ip = d
                    .get(b"ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok());
                let port = d.get(b"port").and_then(Value::as_int);
                // Entries with host names or nonsense are skipped, not fatal.
                if let (Some(ip), Some(port @ 1..=65535)) = (ip, port) {
                    r.peers.push(SocketAddr::new(ip, port as u16));
                }
            }
        }
        Some(_) => return Err(bad("'peers' is neither a string nor a list".into())),
        None => {}
    }
    if let Some(p6) = root.get(b"peers6").and_then(Value::as_bytes) {
        r.peers.extend(compact_v6(p6).map_err(bad)?);
    }
    Ok(r)
}

/// BEP 23 compact IPv4 peers: 4 address bytes and 2 port bytes each, big-endian.
pub fn compact_v4(bytes: &[u8]) -> Result<Vec<SocketAddr>, String> {
    if bytes.len() % 6 != 0 {
        return Err(format!(
            "compact peers of {} bytes, not a multiple of 6",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(6)
        .map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            SocketAddr::new(ip.into(), u16::from_be_bytes([c[4], c[5]]))
        })
        .filter(|a| a.port() != 0)
        .collect())
}

/// BEP 7 compact IPv6 peers: 16 address bytes and 2 port bytes each.
pub fn compact_v6(bytes: &[u8]) -> Result<Vec<SocketAddr>, String> {
    if bytes.len() % 18 != 0 {
        return Err(format!(
            "compact IPv6 peers of {} bytes, not a multiple of 18",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(18)
        .map(|c| {
            let ip: [u8; 16] = c[..16].try_into().expect("16 bytes");
            SocketAddr::new(
                Ipv6Addr::from(ip).into(),
                u16::from_be_bytes([c[16], c[17]]),
            )
        })
        .filter(|a| a.port() != 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_reply_from_opentracker() {
        // Bytes as opentracker sent them to an announce on loopback.
        let body = b"d8:completei0e10:downloadedi0e10:incompletei1e8:intervali1846e\
                     12:min intervali923e5:peers6:\x7f\x00\x00\x01\x04\x57e";
        let r = parse_announce(body).unwrap();
        assert_eq!(r.interval, Some(1846));
        assert_eq!(r.min_interval, Some(923));
        assert_eq!((r.complete, r.incomplete), (Some(0), Some(1)));
        assert_eq!(r.peers, vec!["127.0.0.1:1111".parse().unwrap()]);
    }

    #[test]
    fn dictionary_peers_ipv6_tracker_id_and_warning() {
        let mut p6 = vec![0u8; 15];
        p6.extend_from_slice(&[1, 0x1a, 0xe1]);
        let mut body = b"d8:intervali60e5:peersld2:ip8:10.0.0.27:peer id20:aaaaaaaaaaaaaaaaaaaa\
                         4:porti6881eed2:ip11:example.com4:porti1eed2:ip3:::14:porti0eee6:peers618:"
            .to_vec();
        body.extend_from_slice(&p6);
        body.extend_from_slice(b"10:tracker id3:xyz15:warning message4:slowe");
        let r = parse_announce(&body).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "10.0.0.2:6881".parse().unwrap(),
                "[::1]:6881".parse().unwrap()
            ]
        );
        assert_eq!(r.tracker_id.as_deref(), Some(&b"xyz"[..]));
        assert_eq!(r.warning.as_deref(), Some("slow"));
    }

    #[test]
    fn failures_and_garbage() {
        assert_eq!(
            parse_announce(b"d14:failure reason8:not hereee"),
            Err(TrackerError::BadResponse(
                "not bencode (trailing bytes after the value at byte 29)".into()
            ))
        );
        assert_eq!(
            parse_announce(b"d14:failure reason8:not heree"),
            Err(TrackerError::Failure("not here".into()))
        );
        for garbage in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"le",
            b"d5:peersi1ee",
            b"d5:peers5:abcdee",
        ] {
            assert!(
                matches!(parse_announce(garbage), Err(TrackerError::BadResponse(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
