//! When to announce, to which tracker, with which event: a state machine with time passed
//! in, so its schedule is tested without clocks or sockets.
//!
//! - `started` first; regular updates every `interval` (never sooner than `min interval`);
//!   an earlier one when the client needs more peers, still respecting `min interval`;
//!   `completed` once; `stopped` at exit to the tracker that last answered.
//! - A round tries the trackers in BEP 12 order; a tracker that fails is backed off
//!   (30 s, doubling up to 30 min) and the round moves on to the next one at once; one that
//!   answers is moved to the front of its tier.
//! - All trackers failing is not fatal: the round is retried when the first backoff ends,
//!   and [`Announcer::status`] says so.

use super::response::AnnounceResponse;
use super::tiers::{Slot, Tiers};
use super::{AnnounceEvent, TrackerError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Interval when a tracker gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);
/// Bounds on a tracker's interval, against trackers that ask for floods or for silence.
const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(30);
const INTERVAL_CEILING: Duration = Duration::from_secs(4 * 3600);
/// `min interval` when the tracker gives none.
const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(120);
/// First backoff after a failure; doubles with each failure in a row.
const BACKOFF_START: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// An announce to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The tracker's URL.
    pub url: String,
    /// The event to send.
    pub event: AnnounceEvent,
    /// The tracker id this tracker gave us, to send back.
    pub tracker_id: Option<Vec<u8>>,
}

/// What came of an announce, for the caller to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Peers to try.
    pub peers: Vec<SocketAddr>,
    /// The tracker's warning, to log.
    pub warning: Option<String>,
    /// The failure, to log (the round goes on with the next tracker).
    pub error: Option<String>,
}

/// How the trackers are doing, for the status line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Seeders and leechers from the last answer.
    pub swarm: Option<(u32, u32)>,
    /// The last error, with the tracker's URL.
    pub last_error: Option<String>,
    /// Every tracker failed in the last round.
    pub all_failing: bool,
    /// Some tracker answered at least once.
    pub ever_answered: bool,
}

#[derive(Debug, Clone)]
struct InFlight {
    slot: Slot,
    url: String,
    event: AnnounceEvent,
}

/// The announce schedule for one torrent.
#[derive(Debug)]
pub struct Announcer {
    tiers: Tiers,
    next_round: Option<Instant>,
    /// Trackers already tried in the current round.
    tried: Vec<String>,
    in_flight: Option<InFlight>,
    backoff: HashMap<String, (u32, Instant)>,
    tracker_ids: HashMap<String, Vec<u8>>,
    interval: Duration,
    min_interval: Duration,
    last_answer: Option<Instant>,
    answered_by: Option<String>,
    started_acknowledged: bool,
    completed_requested: bool,
    completed_pending: bool,
    status: Status,
}

impl Announcer {
    /// A schedule over `tiers` whose first round (`started`) is due at `now`.
    pub fn new(tiers: Vec<Vec<String>>, now: Instant, rand: impl FnMut() -> u64) -> Self {
        Self {
            tiers: Tiers::new(tiers, rand),
            next_round: Some(now),
            tried: Vec::new(),
            in_flight: None,
            backoff: HashMap::new(),
            tracker_ids: HashMap::new(),
            interval: DEFAULT_INTERVAL,
            min_interval: DEFAULT_MIN_INTERVAL,
            last_answer: None,
            answered_by: None,
            started_acknowledged: false,
            completed_requested: false,
            completed_pending: false,
            status: Status::default(),
        }
    }

    /// How the trackers are doing.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether there are trackers at all.
    pub fn has_trackers(&self) -> bool {
        !self.tiers.is_empty()
    }

    /// Whether an announce is under way.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The next announce to start, if one is due and none is under way.
    pub fn poll(&mut self, now: Instant) -> Option<Job> {
        if self.in_flight.is_some() || self.next_round.is_none_or(|t| now < t) {
            return None;
        }
        let event = if !self.started_acknowledged {
            AnnounceEvent::Started
        } else if self.completed_pending {
            AnnounceEvent::Completed
        } else {
            AnnounceEvent::None
        };
        let candidate = self
            .tiers
            .order()
            .find(|(_, url)| {
                !self.tried.iter().any(|t| t == url)
                    && self
                        .backoff
                        .get(*url)
                        .is_none_or(|&(_, until)| until <= now)
            })
            .map(|(slot, url)| (slot, url.to_owned()));
        let Some((slot, url)) = candidate else {
            // The round is over and nobody answered: wait for the first backoff to end.
            self.tried.clear();
            self.status.all_failing = true;
            self.next_round = Some(
                self.backoff
                    .values()
                    .map(|&(_, until)| until)
                    .min()
                    .unwrap_or(now + BACKOFF_START)
                    .max(now),
            );
            if self.tiers.is_empty() {
                self.next_round = None;
            }
            return None;
        };
        self.tried.push(url.clone());
        self.in_flight = Some(InFlight {
            slot,
            url: url.clone(),
            event,
        });
        Some(Job {
            tracker_id: self.tracker_ids.get(&url).cloned(),
            url,
            event,
        })
    }

    /// The result of the job [`Announcer::poll`] gave last.
    pub fn handle_result(
        &mut self,
        now: Instant,
        result: Result<AnnounceResponse, TrackerError>,
    ) -> Outcome {
        let Some(job) = self.in_flight.take() else {
            return Outcome::default();
        };
        match result {
            Ok(r) => {
                self.tiers.promote(job.slot);
                self.backoff.remove(&job.url);
                self.tried.clear();
                if let Some(id) = r.tracker_id {
                    self.tracker_ids.insert(job.url.clone(), id);
                }
                let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
                self.interval = secs(r.interval)
                    .unwrap_or(DEFAULT_INTERVAL)
                    .clamp(MIN_INTERVAL_FLOOR, INTERVAL_CEILING);
                self.min_interval = secs(r.min_interval)
                    .unwrap_or(DEFAULT_MIN_INTERVAL)
                    .clamp(MIN_INTERVAL_FLOOR, self.interval);
                self.last_answer = Some(now);
                self.answered_by = Some(job.url);
                match job.event {
                    AnnounceEvent::Started => self.started_acknowledged = true,
                    AnnounceEvent::Completed => self.completed_pending = false,
                    _ => {}
                }
                // A `completed` still owed goes out at once, not an interval later.
                self.next_round = Some(if self.completed_pending {
                    now
                } else {
                    now + self.interval
                });
                self.status.swarm = r.complete.zip(r.incomplete);
                self.status.all_failing = false;
                self.status.ever_answered = true;
                Outcome {
                    peers: r.peers,
                    warning: r.warning,
                    error: None,
                }
            }
            Err(e) => {
                let failures = self.backoff.get(&job.url).map_or(0, |b| b.0) + 1;
                let wait = BACKOFF_START
                    .saturating_mul(1 << (failures - 1).min(10))
                    .min(BACKOFF_MAX);
                self.backoff.insert(job.url.clone(), (failures, now + wait));
                let text = format!("{}: {e}", job.url);
                self.status.last_error = Some(text.clone());
                // Go on with the next tracker of the round at once.
                self.next_round = Some(now);
                Outcome {
                    error: Some(text),
                    ..Outcome::default()
                }
            }
        }
    }

    /// The client needs more peers (over half of them are dead): announce as soon as
    /// `min interval` allows.
    pub fn want_more_peers(&mut self, now: Instant) {
        let allowed = self
            .last_answer
            .map_or(now, |t| t + self.min_interval)
            .max(now);
        if self.next_round.is_none_or(|t| t > allowed) {
            self.next_round = Some(allowed);
        }
    }

    /// The download finished: announce `completed` (once) now.
    pub fn completed(&mut self, now: Instant) {
        if self.completed_requested {
            return;
        }
        self.completed_requested = true;
        self.completed_pending = true;
        if self.started_acknowledged && self.in_flight.is_none() {
            self.next_round = Some(now);
        }
    }

    /// The `stopped` announce to make at exit: to the tracker that last answered, if any.
    /// Ends the schedule.
    pub fn stop(&mut self) -> Option<Job> {
        self.next_round = None;
        self.in_flight = None;
        let url = self.answered_by.clone()?;
        Some(Job {
            tracker_id: self.tracker_ids.get(&url).cloned(),
            url,
            event: AnnounceEvent::Stopped,
        })
    }

    /// When [`Announcer::poll`] will next have something, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            None
        } else {
            self.next_round
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "http://a/announce";
    const B: &str = "udp://b:1";
    const C: &str = "http://c/announce";

    fn answer(
        interval: u32,
        min: Option<u32>,
        peers: &[&str],
    ) -> Result<AnnounceResponse, TrackerError> {
        Ok(AnnounceResponse {
            interval: Some(interval),
            min_interval: min,
            complete: Some(1),
            incomplete: Some(2),
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        })
    }

    fn fail() -> Result<AnnounceResponse, TrackerError> {
        Err(TrackerError::Failure("no".into()))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Tiers [A, B] then [C], not shuffled: u64::MAX % 2 == 1 keeps a two-tracker tier in
    /// order (the shuffle swaps index 1 with itself).
    fn announcer(t0: Instant) -> Announcer {
        Announcer::new(vec![vec![A.into(), B.into()], vec![C.into()]], t0, || {
            u64::MAX
        })
    }

    #[test]
    fn started_then_regular_updates_at_the_interval() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let job = a.poll(t0).unwrap();
        assert_eq!(job.event, AnnounceEvent::Started);
        assert!(a.poll(t0).is_none(), "one at a time");
        let out = a.handle_result(t0, answer(900, Some(300), &["10.0.0.1:1"]));
        assert_eq!(out.peers.len(), 1);
        assert_eq!(a.status().swarm, Some((1, 2)));
        assert!(a.poll(t0 + secs(899)).is_none());
        assert_eq!(a.next_deadline(), Some(t0 + secs(900)));
        let job = a.poll(t0 + secs(900)).unwrap();
        assert_eq!((job.url.as_str(), job.event), (A, AnnounceEvent::None));
    }

    #[test]
    fn failing_trackers_are_skipped_within_a_round_and_backed_off() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let first = a.poll(t0).unwrap();
        assert_eq!(first.url, A);
        let out = a.handle_result(t0, fail());
        assert!(
            out.error
                .unwrap()
                .contains("http://a/announce: tracker says: no")
        );
        let second = a.poll(t0).unwrap();
        assert_eq!(
            (second.url.as_str(), second.event),
            (B, AnnounceEvent::Started)
        );
        a.handle_result(t0, answer(1800, None, &[]));
        // B answered: it moves in front of A in tier 1.
        let next = a.poll(t0 + secs(1800)).unwrap();
        assert_eq!(next.url, B);
        a.handle_result(t0 + secs(1800), fail());
        // A's backoff (30 s) is long over, so A is next in the same round.
        assert_eq!(a.poll(t0 + secs(1800)).unwrap().url, A);
    }

    #[test]
    fn all_failing_is_not_fatal_and_retries_after_backoff() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        for url in [A, B, C] {
            assert_eq!(a.poll(t0).unwrap().url, url);
            a.handle_result(t0, fail());
        }
        assert!(a.poll(t0).is_none());
        assert!(a.status().all_failing);
        assert_eq!(a.next_deadline(), Some(t0 + BACKOFF_START));
        let t1 = t0 + BACKOFF_START;
        for url in [A, B, C] {
            let job = a.poll(t1).unwrap();
            assert_eq!((job.url.as_str(), job.event), (url, AnnounceEvent::Started));
            a.handle_result(t1, fail());
        }
        assert!(a.poll(t1).is_none());
        assert_eq!(
            a.next_deadline(),
            Some(t1 + BACKOFF_START * 2),
            "backoff doubles"
        );
        let t2 = t1 + BACKOFF_START * 2;
        a.poll(t2).unwrap();
        a.handle_result(t2, answer(600, None, &[]));
        assert!(!a.status().all_failing);
        assert!(a.status().last_error.is_some());
    }

    #[test]
    fn more_peers_respects_min_interval() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        a.poll(t0).unwrap();
        a.handle_result(t0, answer(1800, Some(300), &[]));
        a.want_more_peers(t0 + secs(10));
        assert_eq!(a.next_deadline(), Some(t0 + secs(300)));
        assert!(a.poll(t0 + secs(299)).is_none());
        assert_eq!(a.poll(t0 + secs(300)).unwrap().event, AnnounceEvent::None);
        a.handle_result(t0 + secs(300), answer(1800, Some(300), &[]));
        a.want_more_peers(t0 + secs(1000));
        assert_eq!(
            a.next_deadline(),
            Some(t0 + secs(1000)),
            "min interval already passed"
        );
    }

    #[test]
    fn tracker_intervals_are_bounded() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        a.poll(t0).unwrap();
        a.handle_result(t0, answer(1, Some(0), &[]));
        assert_eq!(a.next_deadline(), Some(t0 + MIN_INTERVAL_FLOOR));
    }

    #[test]
    fn completed_once_then_stopped_to_the_last_tracker_that_answered() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        a.poll(t0).unwrap();
        a.handle_result(t0, fail());
        a.poll(t0).unwrap(); // B
        let mut r = answer(1800, None, &[]).unwrap();
        r.tracker_id = Some(b"tid".to_vec());
        a.handle_result(t0, Ok(r));
        a.completed(t0 + secs(5));
        let job = a.poll(t0 + secs(5)).unwrap();
        assert_eq!((job.url.as_str(), job.event), (B, AnnounceEvent::Completed));
        assert_eq!(job.tracker_id.as_deref(), Some(&b"tid"[..]));
        a.handle_result(t0 + secs(5), answer(1800, None, &[]));
        a.completed(t0 + secs(6));
        assert!(a.poll(t0 + secs(6)).is_none(), "completed is sent once");
        let stop = a.stop().unwrap();
        assert_eq!((stop.url.as_str(), stop.event), (B, AnnounceEvent::Stopped));
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn completed_before_started_was_acknowledged_waits_for_it() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        a.completed(t0);
        assert_eq!(a.poll(t0).unwrap().event, AnnounceEvent::Started);
        a.handle_result(t0, answer(1800, None, &[]));
        assert_eq!(a.poll(t0).unwrap().event, AnnounceEvent::Completed);
    }

    #[test]
    fn no_trackers_means_no_announces_and_nothing_to_stop() {
        let t0 = Instant::now();
        let mut a = Announcer::new(vec![], t0, || 0);
        assert!(!a.has_trackers());
        assert!(a.poll(t0).is_none());
        assert_eq!(a.next_deadline(), None);
        assert!(a.stop().is_none());
    }
}
