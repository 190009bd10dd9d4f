//! UDP trackers (BEP 15) without sockets: the packet codec, and an exchange that turns an
//! announce into datagrams to send, replies to check and timeouts to wait for.
//!
//! Retransmission: BEP 15 waits 15·2ⁿ seconds (15 s, 30 s, 60 s… up to an hour), which leaves
//! a person staring at a stalled start for minutes when a tracker is down. A tracker that is
//! up answers within a round trip, so btmini waits [`RETRY_SCHEDULE`] — 2 s, 4 s, 8 s — and
//! then gives up on that tracker for this round (the tiers move on to the next one, and the
//! announcer retries it later with backoff). A connection id is reused for its one minute.

use super::response::{AnnounceResponse, compact_v4, compact_v6};
use super::{AnnounceParams, TrackerError};
use std::time::{Duration, Instant};

/// Timeouts of each try; after the last one the exchange fails.
pub const RETRY_SCHEDULE: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// How long a connection id may be used (BEP 15: one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_ERROR: u32 = 3;

/// The connect request.
pub fn connect_request(transaction: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    b[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    b[12..].copy_from_slice(&transaction.to_be_bytes());
    b
}

/// The 98-byte announce request.
pub fn announce_request(connection_id: u64, transaction: u32, p: &AnnounceParams) -> Vec<u8> {
    let mut b = Vec::with_capacity(98);
    b.extend_from_slice(&connection_id.to_be_bytes());
    b.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    b.extend_from_slice(&transaction.to_be_bytes());
    b.extend_from_slice(&p.info_hash.0);
    b.extend_from_slice(&p.peer_id);
    b.extend_from_slice(&p.downloaded.to_be_bytes());
    b.extend_from_slice(&p.left.to_be_bytes());
    b.extend_from_slice(&p.uploaded.to_be_bytes());
    b.extend_from_slice(&p.event.as_udp().to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
    b.extend_from_slice(&p.key.to_be_bytes());
    b.extend_from_slice(&(p.numwant.min(i32::MAX as u32)).to_be_bytes());
    b.extend_from_slice(&p.port.to_be_bytes());
    b
}

/// A datagram from a tracker, checked against what we are waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A connection id.
    Connected(u64),
    /// The announce answer.
    Announced(AnnounceResponse),
}

/// Parses a reply to `transaction`; `Ok(None)` for a datagram that is not for us (wrong
/// transaction id, too short): it is ignored, as a stray or spoofed packet should be.
pub fn parse_reply(
    bytes: &[u8],
    transaction: u32,
    ipv6: bool,
) -> Result<Option<Reply>, TrackerError> {
    if bytes.len() < 8 {
        return Ok(None);
    }
    let action = u32::from_be_bytes(bytes[..4].try_into().expect("4"));
    let tid = u32::from_be_bytes(bytes[4..8].try_into().expect("4"));
    if tid != transaction {
        return Ok(None);
    }
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4"));
    match action {
        ACTION_CONNECT if bytes.len() >= 16 => Ok(Some(Reply::Connected(u64::from_be_bytes(
            bytes[8..16].try_into().expect("8"),
        )))),
        ACTION_ANNOUNCE if bytes.len() >= 20 => {
            let peers = if ipv6 {
                compact_v6(&bytes[20..])
            } else {
                compact_v4(&bytes[20..])
            }
            .map_err(TrackerError::BadResponse)?;
            Ok(Some(Reply::Announced(AnnounceResponse {
                interval: Some(be32(8)),
                min_interval: None,
                tracker_id: None,
                incomplete: Some(be32(12)),
                complete: Some(be32(16)),
                peers,
                warning: None,
            })))
        }
        ACTION_ERROR => Err(TrackerError::Failure(
            String::from_utf8_lossy(&bytes[8..]).into_owned(),
        )),
        // opentracker answers an announce for a torrent it does not serve this way.
        ACTION_CONNECT | ACTION_ANNOUNCE => Err(TrackerError::BadResponse(format!(
            "reply of only {} bytes (does the tracker serve this torrent?)",
            bytes.len()
        ))),
        _ => Err(TrackerError::BadResponse(format!(
            "action {action} with {} bytes",
            bytes.len()
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Announcing(u64),
}

/// One announce to one UDP tracker.
pub struct UdpExchange {
    params: AnnounceParams,
    ipv6: bool,
    stage: Stage,
    transaction: u32,
    attempt: usize,
    deadline: Instant,
    /// A datagram waiting to be sent.
    outgoing: Option<Vec<u8>>,
    /// The connection id and when it was obtained, to reuse on the next announce.
    connection: Option<(u64, Instant)>,
    next_tid: Box<dyn FnMut() -> u32 + Send>,
    schedule: &'static [Duration],
}

/// What the exchange says after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still going: send what [`UdpExchange::poll_transmit`] gives, wait for replies or the
    /// deadline.
    Pending,
    /// Finished.
    Done(Result<AnnounceResponse, TrackerError>),
}

impl UdpExchange {
    /// Starts an announce. `connection` is an id from an earlier exchange with the same
    /// tracker (reused while under a minute old); `next_tid` gives random transaction ids;
    /// `ipv6` says the tracker's address is IPv6, so its peers come in 18-byte form;
    /// `schedule` is the wait of each try ([`RETRY_SCHEDULE`] unless testing).
    pub fn new(
        now: Instant,
        params: AnnounceParams,
        ipv6: bool,
        connection: Option<(u64, Instant)>,
        mut next_tid: Box<dyn FnMut() -> u32 + Send>,
        schedule: &'static [Duration],
    ) -> Self {
        let transaction = next_tid();
        let mut x = Self {
            params,
            ipv6,
            stage: Stage::Connecting,
            transaction,
            attempt: 0,
            deadline: now + schedule[0],
            outgoing: None,
            connection: connection
                .filter(|&(_, at)| now.duration_since(at) < CONNECTION_ID_LIFETIME),
            next_tid,
            schedule,
        };
        if let Some((id, _)) = x.connection {
            x.stage = Stage::Announcing(id);
        }
        x.queue();
        x
    }

    fn queue(&mut self) {
        self.outgoing = Some(match self.stage {
            Stage::Connecting => connect_request(self.transaction).to_vec(),
            Stage::Announcing(id) => announce_request(id, self.transaction, &self.params),
        });
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outgoing.take()
    }

    /// When [`UdpExchange::handle_timeout`] should be called.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The connection id in use, for the next exchange with this tracker.
    pub fn connection(&self) -> Option<(u64, Instant)> {
        self.connection
    }

    /// Whether `bytes` answers our current request (its transaction id): on a socket shared
    /// by several exchanges, the one a datagram is for.
    pub fn expects(&self, bytes: &[u8]) -> bool {
        bytes.get(4..8) == Some(&self.transaction.to_be_bytes()[..])
    }

    /// A datagram arrived from the tracker's address.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Progress {
        match parse_reply(bytes, self.transaction, self.ipv6) {
            Ok(None) => Progress::Pending,
            Ok(Some(Reply::Connected(id))) if self.stage == Stage::Connecting => {
                self.connection = Some((id, now));
                self.stage = Stage::Announcing(id);
                self.transaction = (self.next_tid)();
                self.attempt = 0;
                self.deadline = now + self.schedule[0];
                self.queue();
                Progress::Pending
            }
            Ok(Some(Reply::Announced(r))) if matches!(self.stage, Stage::Announcing(_)) => {
                Progress::Done(Ok(r))
            }
            Ok(Some(_)) => Progress::Pending,
            Err(e) => Progress::Done(Err(e)),
        }
    }

    /// The deadline passed: send again, or give up after the last try.
    pub fn handle_timeout(&mut self, now: Instant) -> Progress {
        if now < self.deadline {
            return Progress::Pending;
        }
        self.attempt += 1;
        let Some(wait) = self.schedule.get(self.attempt) else {
            return Progress::Done(Err(TrackerError::Timeout(match self.stage {
                Stage::Connecting => "waiting for the UDP tracker to connect",
                Stage::Announcing(_) => "waiting for the UDP tracker's announce reply",
            })));
        };
        // A connection id may have expired while we waited: connect again.
        if let (Stage::Announcing(_), Some((_, at))) = (self.stage, self.connection) {
            if now.duration_since(at) >= CONNECTION_ID_LIFETIME {
                self.stage = Stage::Connecting;
                self.connection = None;
            }
        }
        self.transaction = (self.next_tid)();
        self.deadline = now + *wait;
        self.queue();
        Progress::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::tracker::AnnounceEvent;

    fn params() -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash([7; 20]),
            peer_id: *b"-BM0100-000000000000",
            port: 6881,
            uploaded: 3,
            downloaded: 2,
            left: 1,
            event: AnnounceEvent::Started,
            numwant: 50,
            key: 9,
            tracker_id: None,
            ipv6: None,
        }
    }

    fn tids() -> Box<dyn FnMut() -> u32 + Send> {
        let mut n = 100;
        Box::new(move || {
            n += 1;
            n
        })
    }

    fn reply(action: u32, tid: u32, rest: &[u8]) -> Vec<u8> {
        [&action.to_be_bytes()[..], &tid.to_be_bytes(), rest].concat()
    }

    #[test]
    fn request_layouts() {
        assert_eq!(
            connect_request(0x0102_0304),
            [
                0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
            ]
        );
        let a = announce_request(0xAABB, 5, &params());
        assert_eq!(a.len(), 98);
        assert_eq!(&a[..8], &0xAABBu64.to_be_bytes());
        assert_eq!(&a[8..16], &[0, 0, 0, 1, 0, 0, 0, 5]);
        assert_eq!(&a[16..36], &[7; 20]);
        assert_eq!(&a[80..84], &[0, 0, 0, 2], "event started");
        assert_eq!(&a[96..98], &6881u16.to_be_bytes());
    }

    #[test]
    fn connect_then_announce() {
        let t0 = Instant::now();
        let mut x = UdpExchange::new(t0, params(), false, None, tids(), &RETRY_SCHEDULE);
        assert_eq!(x.poll_transmit().unwrap(), connect_request(101));
        assert_eq!(x.poll_transmit(), None);
        // A stray datagram with another transaction id is ignored.
        assert_eq!(
            x.handle_datagram(t0, &reply(0, 999, &[0; 8])),
            Progress::Pending
        );
        assert_eq!(
            x.handle_datagram(t0, &reply(0, 101, &42u64.to_be_bytes())),
            Progress::Pending
        );
        let a = x.poll_transmit().unwrap();
        assert_eq!(a, announce_request(42, 102, &params()));
        let body = [
            &1800u32.to_be_bytes()[..],
            &3u32.to_be_bytes(),
            &4u32.to_be_bytes(),
            &[127, 0, 0, 2, 0x1a, 0xe1],
        ]
        .concat();
        let Progress::Done(Ok(r)) = x.handle_datagram(t0, &reply(1, 102, &body)) else {
            panic!("announce must finish");
        };
        assert_eq!(r.interval, Some(1800));
        assert_eq!((r.incomplete, r.complete), (Some(3), Some(4)));
        assert_eq!(r.peers, vec!["127.0.0.2:6881".parse().unwrap()]);
        assert_eq!(x.connection(), Some((42, t0)));
    }

    #[test]
    fn ipv6_peers_and_error_action() {
        let t0 = Instant::now();
        let mut x = UdpExchange::new(t0, params(), true, Some((5, t0)), tids(), &RETRY_SCHEDULE);
        assert_eq!(
            x.poll_transmit().unwrap(),
            announce_request(5, 101, &params()),
            "id reused"
        );
        let mut peer = vec![0u8; 15];
        peer.extend_from_slice(&[1, 0, 80]);
        let body = [&[0u8; 12][..], &peer].concat();
        let Progress::Done(Ok(r)) = x.handle_datagram(t0, &reply(1, 101, &body)) else {
            panic!()
        };
        assert_eq!(r.peers, vec!["[::1]:80".parse().unwrap()]);

        let mut x = UdpExchange::new(t0, params(), false, None, tids(), &RETRY_SCHEDULE);
        assert_eq!(
            x.handle_datagram(t0, &reply(3, 101, b"torrent not registered")),
            Progress::Done(Err(TrackerError::Failure("torrent not registered".into())))
        );
    }

    #[test]
    fn retransmits_on_schedule_then_gives_up() {
        let t0 = Instant::now();
        let mut x = UdpExchange::new(t0, params(), false, None, tids(), &RETRY_SCHEDULE);
        x.poll_transmit().unwrap();
        assert_eq!(
            x.handle_timeout(t0 + Duration::from_secs(1)),
            Progress::Pending
        );
        assert_eq!(x.poll_transmit(), None, "not before the deadline");
        let mut now = t0;
        for wait in RETRY_SCHEDULE.iter().take(RETRY_SCHEDULE.len() - 1) {
            now += *wait;
            assert_eq!(x.handle_timeout(now), Progress::Pending);
            assert!(x.poll_transmit().is_some(), "resent at {:?}", now - t0);
        }
        now += RETRY_SCHEDULE[RETRY_SCHEDULE.len() - 1];
        assert!(matches!(
            x.handle_timeout(now),
            Progress::Done(Err(TrackerError::Timeout(_)))
        ));
        assert_eq!(now - t0, Duration::from_secs(14));
    }

    #[test]
    fn expired_connection_ids_are_not_reused() {
        let t0 = Instant::now();
        let later = t0 + CONNECTION_ID_LIFETIME;
        let mut x = UdpExchange::new(
            later,
            params(),
            false,
            Some((5, t0)),
            tids(),
            &RETRY_SCHEDULE,
        );
        assert_eq!(x.poll_transmit().unwrap(), connect_request(101));
    }

    #[test]
    fn a_reply_cut_to_its_header_is_a_clear_error() {
        // What opentracker sends for a torrent it does not serve.
        let t0 = Instant::now();
        let mut x = UdpExchange::new(t0, params(), false, Some((5, t0)), tids(), &RETRY_SCHEDULE);
        assert!(matches!(
            x.handle_datagram(t0, &reply(1, 101, &[])),
            Progress::Done(Err(TrackerError::BadResponse(m))) if m.contains("only 8 bytes")
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let t0 = Instant::now();
        for len in 0..40 {
            let mut x = UdpExchange::new(t0, params(), false, None, tids(), &RETRY_SCHEDULE);
            let mut junk = vec![0xA5u8; len];
            if len >= 8 {
                junk[4..8].copy_from_slice(&101u32.to_be_bytes());
            }
            let _ = x.handle_datagram(t0, &junk);
        }
    }
}
