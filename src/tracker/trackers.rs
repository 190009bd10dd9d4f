//! The schedule and the sockets together, as the engine uses them: one torrent's trackers,
//! announced to when [`Announcer`] says, through [`TrackerIo`], with `stopped` sent at exit
//! within a bounded wait.

use super::announcer::{Announcer, Outcome, Status};
use super::io::{JobId, Resolver, Timeouts, TrackerIo};
use super::{AnnounceEvent, AnnounceParams};
use mio::{Registry, Token};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long exit waits for the `stopped` announce.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// One torrent's trackers.
pub struct Trackers {
    announcer: Announcer,
    io: TrackerIo,
    current: Option<JobId>,
    stopping: Option<(Option<JobId>, Instant)>,
}

impl Trackers {
    /// Trackers by tier; the first announce (`started`) is due at `now`. Tokens and resolver as
    /// for [`TrackerIo::new`].
    pub fn new(
        tiers: Vec<Vec<String>>,
        resolver: Arc<Resolver>,
        token_base: usize,
        timeouts: Timeouts,
        now: Instant,
    ) -> Self {
        Self {
            announcer: Announcer::new(tiers, now, crate::util::random_u64),
            io: TrackerIo::new(resolver, token_base, timeouts),
            current: None,
            stopping: None,
        }
    }

    /// Sends every announce from this local address (`--bind`).
    pub fn set_bind(&mut self, ip: Option<std::net::IpAddr>) {
        self.io.set_bind(ip);
    }

    /// Whether no announce is under way or due (used to let `completed` go out before exit).
    pub fn idle(&self, now: Instant) -> bool {
        self.current.is_none() && self.announcer.next_deadline().is_none_or(|t| t > now)
    }

    /// Whether `token` is one of ours.
    pub fn owns(&self, token: Token) -> bool {
        self.io.owns(token)
    }

    /// Sends UDP announces from the host's shared socket (see [`TrackerIo::set_udp`]).
    pub fn set_udp(&mut self, socket: Arc<mio::net::UdpSocket>) {
        self.io.set_udp(socket);
    }

    /// A datagram from the shared socket: whether it was a reply to one of our announces.
    pub fn handle_datagram(
        &mut self,
        registry: &Registry,
        from: std::net::SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> bool {
        self.io.handle_datagram(registry, from, bytes, now)
    }

    /// A readiness event for one of our tokens.
    pub fn handle_event(&mut self, registry: &Registry, token: Token, now: Instant) {
        self.io.handle_event(registry, token, now);
    }

    /// The waker fired (a host name was resolved).
    pub fn handle_wake(&mut self, registry: &Registry, now: Instant) {
        self.io.handle_wake(registry, now);
    }

    /// Runs timeouts, collects finished announces and starts the next one if it is due.
    /// `params(event)` gives the current figures for an announce. Returns what the finished
    /// announces brought.
    pub fn poll(
        &mut self,
        registry: &Registry,
        now: Instant,
        mut params: impl FnMut(AnnounceEvent) -> AnnounceParams,
    ) -> Vec<Outcome> {
        self.io.handle_timeouts(registry, now);
        let mut outcomes = Vec::new();
        while let Some((id, result)) = self.io.poll_done() {
            if Some(id) == self.current {
                self.current = None;
                outcomes.push(self.announcer.handle_result(now, result));
            } else if let Some((stop_id, _)) = &mut self.stopping {
                if *stop_id == Some(id) {
                    *stop_id = None;
                }
            }
        }
        if self.stopping.is_none() {
            // A failure moves the round on at once, so start as many as are due.
            while self.current.is_none() {
                let Some(job) = self.announcer.poll(now) else {
                    break;
                };
                let mut p = params(job.event);
                p.event = job.event;
                p.tracker_id = job.tracker_id;
                self.current = Some(self.io.announce(registry, now, &job.url, p));
                if let Some((id, result)) = self.io.poll_done() {
                    // Failed without touching the network (a bad URL, https).
                    debug_assert_eq!(Some(id), self.current);
                    self.current = None;
                    outcomes.push(self.announcer.handle_result(now, result));
                }
            }
        }
        outcomes
    }

    /// When [`Trackers::poll`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let stop = self.stopping.and_then(|(id, until)| id.map(|_| until));
        [
            self.io.next_deadline(),
            self.announcer.next_deadline(),
            stop,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// More peers are needed: announce early (respecting `min interval`).
    pub fn want_more_peers(&mut self, now: Instant) {
        self.announcer.want_more_peers(now);
    }

    /// The download finished: send `completed` once.
    pub fn completed(&mut self, now: Instant) {
        self.announcer.completed(now);
    }

    /// Starts the exit: abandons any announce under way and sends `stopped` to the tracker
    /// that last answered. Then poll until [`Trackers::stop_finished`].
    pub fn stop(&mut self, registry: &Registry, now: Instant, params: AnnounceParams) {
        if let Some(id) = self.current.take() {
            self.io.cancel(registry, id);
        }
        let id = self.announcer.stop().map(|job| {
            let mut p = params;
            p.event = AnnounceEvent::Stopped;
            p.tracker_id = job.tracker_id;
            self.io.announce(registry, now, &job.url, p)
        });
        self.stopping = Some((id, now + STOP_WAIT));
    }

    /// Whether exit may go on: `stopped` answered, failed, or [`STOP_WAIT`] passed.
    pub fn stop_finished(&self, now: Instant) -> bool {
        match self.stopping {
            Some((None, _)) => true,
            Some((Some(_), until)) => now >= until,
            None => false,
        }
    }

    /// How the trackers are doing.
    pub fn status(&self) -> &Status {
        self.announcer.status()
    }

    /// Whether the torrent has any tracker.
    pub fn has_trackers(&self) -> bool {
        self.announcer.has_trackers()
    }
}
