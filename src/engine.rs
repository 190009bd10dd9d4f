//! The I/O shell of a download: one mio poll drives the listen socket, the peer
//! connections, the trackers and the signals, and moves bytes and time into the
//! [`Session`]; storage checks and stores the pieces the session completes.
//!
//! ```text
//!  loop {
//!    poll(timeout = earliest of: tick, tracker deadline, status)
//!    events  -> accept / connect done / read -> Session::received / signal / tracker
//!    actions <- Session::poll_action: Connect, Close, Verify -> Storage, WantPeers, Completed
//!    write   -> each peer's Session::tx
//!    trackers.poll -> new peers; storage flush when due
//!  }
//! ```

use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;
use crate::peer::CloseReason;
use crate::picker::BlockRef;
use crate::session::driver::{self, Dial, Shell};
use crate::session::{Config, Session, Stats};
use crate::signals::Signals;
use crate::storage::{Resume, Storage, StorageError, StorageOptions, WriteOutcome};
use crate::tracker::io::Timeouts;
use crate::tracker::{AnnounceEvent, AnnounceParams, Trackers};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
const TRACKER_BASE: usize = 16;
const PEER_BASE: usize = 1024;
const TICK: Duration = Duration::from_secs(1);
/// After `completed`, how long exit waits for that announce before `stopped`.
const COMPLETED_WAIT: Duration = Duration::from_secs(3);
/// Ports tried after the one asked for, when it is taken.
const PORT_TRIES: u16 = 20;

/// What a download needs besides the torrent.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Where the data goes.
    pub output: PathBuf,
    /// Peers to connect to besides the trackers' (`--peer`).
    pub peers: Vec<SocketAddr>,
    /// Port to listen on; the next free one is taken if it is busy. 0: any.
    pub port: u16,
    /// Local address for the listener, outgoing connections and tracker requests.
    pub bind: Option<IpAddr>,
    /// Storage behaviour.
    pub storage: StorageOptions,
    /// Peer limits and timers.
    pub session: Config,
    /// Tracker time limits.
    pub tracker_timeouts: Timeouts,
    /// Stop on SIGINT/SIGTERM (the command line does; an embedding program may not want to).
    pub handle_signals: bool,
    /// After completing, seed until stopped.
    pub seed: bool,
    /// After completing, seed until uploaded ≥ this × the torrent's size.
    pub seed_ratio: Option<f64>,
    /// The share rule: upload this fraction of the torrent's size before fetching the last
    /// piece (0 turns it off; the wait for leechers is `session.share_wait`).
    pub min_share: f64,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            output: PathBuf::from("downloads"),
            peers: Vec::new(),
            port: 6881,
            bind: None,
            storage: StorageOptions::default(),
            session: Config::default(),
            tracker_timeouts: Timeouts::default(),
            handle_signals: false,
            seed: false,
            seed_ratio: None,
            min_share: 0.10,
        }
    }
}

/// Why a download could not go on.
#[derive(Debug)]
pub enum DownloadError {
    /// Preparing, writing or flushing the data failed.
    Storage(StorageError),
    /// No port could be listened on.
    Listen(u16, io::Error),
    /// The poll or another system resource failed.
    Io(io::Error),
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "{e}"),
            Self::Listen(port, e) => write!(
                f,
                "cannot listen on port {port} or the {PORT_TRIES} after it: {e} (choose another with --port)"
            ),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DownloadError {}

impl From<StorageError> for DownloadError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<io::Error> for DownloadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Where a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Fetching pieces.
    Downloading,
    /// Every piece verified; telling the trackers.
    Completing,
    /// Every piece verified; serving others until stopped or the seed ratio is met.
    Seeding,
    /// Stopping: data flushed, `stopped` being announced.
    Stopping,
    /// Done: [`Download::step`] returns true from now on.
    Finished,
}

/// A snapshot for the status line.
#[derive(Debug, Clone)]
pub struct Status {
    /// Where the download is.
    pub phase: Phase,
    /// The session's figures.
    pub stats: Stats,
    /// Torrent size.
    pub total: u64,
    /// Bytes verified.
    pub have_bytes: u64,
    /// Bytes uploaded over all runs.
    pub uploaded: u64,
    /// What the download is waiting for, when it is not moving.
    pub waiting: Option<String>,
    /// The trackers' last error, when every tracker failed.
    pub tracker_error: Option<String>,
    /// The port we listen on.
    pub port: u16,
}

struct Conn {
    stream: TcpStream,
    connected: bool,
    /// The peer, for the log (a reset socket no longer knows it).
    addr: SocketAddr,
}

/// The engine as the session's [`Shell`]: sockets on the poll, storage, trackers.
struct Io<'a> {
    poll: &'a Poll,
    conns: &'a mut HashMap<usize, Conn>,
    storage: &'a mut Storage,
    trackers: &'a mut Trackers,
    bind: Option<IpAddr>,
    now: Instant,
    /// The session reported completion; the download's phase changes after the actions.
    completed: bool,
}

impl Shell for Io<'_> {
    type Error = DownloadError;

    fn dial(&mut self, key: usize, addr: SocketAddr) -> Dial {
        let registered = crate::net::connect(addr, self.bind).and_then(|mut stream| {
            let token = Token(PEER_BASE + key);
            self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match registered {
            Ok(stream) => {
                let conn = Conn {
                    stream,
                    connected: false,
                    addr,
                };
                self.conns.insert(key, conn);
                Dial::Started
            }
            Err(e) => {
                log::debug!("connect to {addr}: {e}");
                Dial::Failed
            }
        }
    }

    fn close(&mut self, key: usize, reason: &CloseReason) {
        if let Some(mut c) = self.conns.remove(&key) {
            log::debug!("dropping {}: {reason}", c.addr);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        if *reason == CloseReason::Banned {
            log::warn!("{reason}");
        }
    }

    fn store(&mut self, index: u32, data: &[u8]) -> Result<bool, DownloadError> {
        Ok(match self.storage.write_piece(index, data)? {
            WriteOutcome::Written | WriteOutcome::AlreadyHave => true,
            WriteOutcome::HashMismatch => {
                log::warn!("piece {index} failed its hash check: fetching it again");
                false
            }
        })
    }

    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), DownloadError> {
        self.storage
            .read_block(block.index, block.begin, block.len, into)?;
        Ok(())
    }

    fn want_peers(&mut self) {
        self.trackers.want_more_peers(self.now);
    }

    fn completed(&mut self) -> Result<(), DownloadError> {
        self.completed = true;
        Ok(())
    }

    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize> {
        let conn = self.conns.get_mut(&key)?;
        if !conn.connected {
            return Some(0);
        }
        loop {
            let why = match conn.stream.write(bytes) {
                Ok(0) => "closed by the peer".to_string(),
                Ok(n) => return Some(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Some(0),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => e.to_string(),
            };
            let mut c = self.conns.remove(&key)?;
            log::debug!("connection to {} ended: {why}", c.addr);
            let _ = self.poll.registry().deregister(&mut c.stream);
            return None;
        }
    }
}

/// A torrent being downloaded.
pub struct Download {
    meta: Arc<Metainfo>,
    poll: Poll,
    events: Events,
    listener: TcpListener,
    port: u16,
    conns: HashMap<usize, Conn>,
    session: Session,
    storage: Storage,
    trackers: Trackers,
    signals: Option<Signals>,
    peer_id: [u8; 20],
    key: u32,
    next_tick: Instant,
    phase: Phase,
    completed_at: Option<Instant>,
    start_left: u64,
    bind: Option<IpAddr>,
    seed: bool,
    seed_ratio: Option<f64>,
    /// Upload bytes already added to storage's count.
    synced_up: u64,
    read_buf: Vec<u8>,
}

/// A fresh Azureus-style peer id: `-BM0100-` and 12 random characters.
pub fn new_peer_id() -> [u8; 20] {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = *b"-BM0100-000000000000";
    let mut r = crate::util::random_u64();
    for (i, b) in id[8..].iter_mut().enumerate() {
        if i == 6 {
            r = crate::util::random_u64();
        }
        *b = CHARS[(r % CHARS.len() as u64) as usize];
        r /= CHARS.len() as u64;
    }
    id
}

impl Download {
    /// Prepares the files (failing at once on a full disk), checks what is on disk when the
    /// sidecar cannot be trusted (`progress(done, total)` after each piece), opens the
    /// listen socket and gets ready to contact trackers and peers.
    pub fn new(
        meta: Arc<Metainfo>,
        opts: DownloadOptions,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Self, DownloadError> {
        let mut storage = Storage::open(meta.clone(), &opts.output, opts.storage)?;
        if let Resume::NeedsRecheck(why) = storage.resume().clone() {
            log::info!("checking the data on disk: {why}");
            let found = storage.recheck(progress)?;
            log::info!("{found} of {} pieces are already there", meta.piece_count());
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        // Signals are blocked before any thread (the resolver) starts, so it inherits that.
        let signals = if opts.handle_signals {
            let s = Signals::new()?;
            s.register(poll.registry(), SIGNALS)?;
            Some(s)
        } else {
            None
        };
        let (mut listener, port) = listen(opts.bind, opts.port)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        let peer_id = new_peer_id();
        let mut config = opts.session.clone();
        config.min_share_bytes = (opts.min_share.max(0.0) * meta.total_length as f64) as u64;
        let mut session = Session::new(
            &meta,
            storage.have().clone(),
            peer_id,
            config,
            crate::util::random_u64(),
        );
        session.set_uploaded_before(storage.uploaded());
        session.set_listen_port(port);
        let own_ip = opts.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        session.add_own_addr(SocketAddr::new(own_ip, port));
        session.add_own_addr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        let mut trackers = Trackers::new(
            meta.tiers(),
            waker,
            TRACKER_BASE,
            opts.tracker_timeouts,
            now,
        );
        trackers.set_bind(opts.bind);
        let start_left = session.left(meta.total_length);
        let mut d = Self {
            meta,
            poll,
            events: Events::with_capacity(256),
            listener,
            port,
            conns: HashMap::new(),
            session,
            storage,
            trackers,
            signals,
            peer_id,
            key: crate::util::random_u64() as u32,
            next_tick: now,
            phase: Phase::Downloading,
            completed_at: None,
            start_left,
            bind: opts.bind,
            seed: opts.seed,
            seed_ratio: opts.seed_ratio,
            synced_up: 0,
            read_buf: Vec::with_capacity(crate::wire::BLOCK as usize),
        };
        d.session.add_pinned_peers(opts.peers.iter().copied(), now);
        if d.session.is_complete() {
            log::info!(
                "all {} pieces are already verified: seeding",
                d.meta.piece_count()
            );
            d.phase = Phase::Seeding;
            d.session.set_seeding(true);
        }
        Ok(d)
    }
}

/// The listen socket: `port` on `bind`, or the next free port after it.
fn listen(bind: Option<IpAddr>, port: u16) -> Result<(TcpListener, u16), DownloadError> {
    let ip = bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut first_err = None;
    for p in (0..=PORT_TRIES).filter_map(|i| port.checked_add(i)) {
        match TcpListener::bind(SocketAddr::new(ip, p)) {
            Ok(l) => {
                let actual = l.local_addr()?.port();
                if p != port {
                    log::warn!("port {port} is taken: listening on {actual}");
                }
                return Ok((l, actual));
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse && port != 0 => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(DownloadError::Listen(port, e)),
        }
    }
    Err(DownloadError::Listen(
        port,
        first_err.unwrap_or_else(|| io::Error::from(ErrorKind::AddrInUse)),
    ))
}

impl Download {
    /// The port peers can reach us on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.session.have()
    }

    /// Asks the download to stop as on SIGINT: flush, announce `stopped`, finish.
    pub fn stop(&mut self) {
        if matches!(
            self.phase,
            Phase::Downloading | Phase::Completing | Phase::Seeding
        ) {
            self.begin_stop(Instant::now());
        }
    }

    /// Runs until the download is finished (complete, or stopped), calling `on_status`
    /// about twice a second.
    pub fn run(&mut self, mut on_status: impl FnMut(&Status)) -> Result<(), DownloadError> {
        let mut next_status = Instant::now();
        loop {
            let done = self.step(Some(Duration::from_millis(500)))?;
            let now = Instant::now();
            if done || now >= next_status {
                on_status(&self.status());
                next_status = now + Duration::from_millis(500);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// One pass of the loop: waits at most `timeout` for events, handles them, and returns
    /// whether the download is finished.
    pub fn step(&mut self, timeout: Option<Duration>) -> Result<bool, DownloadError> {
        if self.phase == Phase::Finished {
            return Ok(true);
        }
        let now = Instant::now();
        let mut wait = self.next_tick.saturating_duration_since(now);
        if let Some(t) = self.trackers.next_deadline() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        if let Some(t) = timeout {
            wait = wait.min(t);
        }
        if self.session.has_actions() {
            // Work is queued (the round limit below was reached): the socket readiness
            // that would wake us has been used up, so do not sleep.
            wait = Duration::ZERO;
        }
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for token in tokens {
            match token {
                LISTENER => self.accept(now),
                WAKER => self.trackers.handle_wake(self.poll.registry(), now),
                SIGNALS => {
                    let n = self.signals.as_mut().map_or(0, |s| s.pending());
                    if n > 0 {
                        self.on_signal(n, now)?;
                    }
                }
                t if self.trackers.owns(t) => {
                    self.trackers.handle_event(self.poll.registry(), t, now)
                }
                t if t.0 >= PEER_BASE => self.peer_event(t.0 - PEER_BASE, now)?,
                _ => {}
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.session.tick(now);
        }
        self.run_trackers(now);
        self.drain(now)?;
        let up = self.session.uploaded();
        self.storage.add_uploaded(up - self.synced_up);
        self.synced_up = up;
        if self.storage.wants_flush(now) {
            self.storage.flush()?;
        }
        self.advance_phase(now)?;
        Ok(self.phase == Phase::Finished)
    }

    fn on_signal(&mut self, n: u32, now: Instant) -> Result<(), DownloadError> {
        match self.phase {
            Phase::Downloading | Phase::Completing | Phase::Seeding if n == 1 => {
                log::info!("stopping (again to quit at once)");
                self.begin_stop(now);
            }
            _ => {
                // A second signal: the sidecar is already consistent, leave now.
                self.storage.flush()?;
                self.finish();
            }
        }
        Ok(())
    }

    fn begin_stop(&mut self, now: Instant) {
        if let Err(e) = self.storage.flush() {
            log::error!("{e}");
        }
        let params = self.announce_params(AnnounceEvent::Stopped);
        self.trackers.stop(self.poll.registry(), now, params);
        self.phase = Phase::Stopping;
    }

    fn finish(&mut self) {
        for (_, mut c) in self.conns.drain() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.phase = Phase::Finished;
    }

    fn advance_phase(&mut self, now: Instant) -> Result<(), DownloadError> {
        match self.phase {
            Phase::Completing => {
                let waited = self.completed_at.is_some_and(|t| now >= t + COMPLETED_WAIT);
                if waited || self.trackers.idle(now) {
                    self.begin_stop(now);
                }
            }
            Phase::Seeding => {
                let target = self.seed_ratio.map(|r| r * self.meta.total_length as f64);
                if target.is_some_and(|t| self.storage.uploaded() as f64 >= t) {
                    log::info!("seed ratio reached");
                    self.begin_stop(now);
                }
            }
            Phase::Stopping if self.trackers.stop_finished(now) => {
                self.storage.flush()?;
                self.finish();
            }
            _ => {}
        }
        Ok(())
    }

    fn announce_params(&self, event: AnnounceEvent) -> AnnounceParams {
        let left = self.session.left(self.meta.total_length);
        AnnounceParams {
            info_hash: self.meta.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: self.session.uploaded(),
            downloaded: self.start_left.saturating_sub(left),
            left,
            event,
            numwant: 50,
            key: self.key,
            tracker_id: None,
        }
    }

    fn run_trackers(&mut self, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        let params = self.announce_params(AnnounceEvent::None);
        let outcomes = self
            .trackers
            .poll(self.poll.registry(), now, |event| AnnounceParams {
                event,
                ..params.clone()
            });
        for o in outcomes {
            if let Some(w) = o.warning {
                log::warn!("tracker warning: {}", crate::util::printable(&w));
            }
            if let Some(e) = o.error {
                log::warn!("{e}");
            }
            if !o.peers.is_empty() {
                let shown: Vec<String> = o.peers.iter().take(8).map(|a| a.to_string()).collect();
                log::debug!("tracker gave {} peers: {}", o.peers.len(), shown.join(" "));
                self.session.add_peers(o.peers, now);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    if !matches!(self.phase, Phase::Downloading | Phase::Seeding) {
                        continue;
                    }
                    let Some(key) = self.session.accept(addr, now) else {
                        continue;
                    };
                    let token = Token(PEER_BASE + key);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            key,
                            Conn {
                                stream,
                                connected: true,
                                addr,
                            },
                        );
                    } else {
                        self.session.closed(key, now);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors and the like: try again on the next event.
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn peer_event(&mut self, key: usize, now: Instant) -> Result<(), DownloadError> {
        let Some(conn) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        // Readiness may mean the socket can take the bytes that did not fit before.
        self.session.want_send(key);
        if !conn.connected {
            match conn.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.drop_conn(key, &format!("connect failed: {e}"), now);
                    return Ok(());
                }
            }
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.connected = true;
                    self.session.connected(key, now);
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => {
                    self.drop_conn(key, &format!("connect failed: {e}"), now);
                    return Ok(());
                }
            }
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let Some(conn) = self.conns.get_mut(&key) else {
                return Ok(());
            };
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.drop_conn(key, "closed by the peer", now);
                    return Ok(());
                }
                Ok(n) => {
                    self.session.received(key, &buf[..n], now);
                    // Store completed pieces at once: reading a fast peer until its socket
                    // is empty would otherwise queue piece after piece in memory.
                    self.actions(now)?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_conn(key, &e.to_string(), now);
                    return Ok(());
                }
            }
        }
    }

    /// The connection ended (`why`, for the log): the session forgets the peer.
    fn drop_conn(&mut self, key: usize, why: &str, now: Instant) {
        if let Some(mut c) = self.conns.remove(&key) {
            log::debug!("connection to {} ended: {why}", c.addr);
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.session.closed(key, now);
    }

    /// The parts the session's actions work on, apart from the session.
    fn io(&mut self, now: Instant) -> (Io<'_>, &mut Session, &mut Vec<u8>) {
        (
            Io {
                poll: &self.poll,
                conns: &mut self.conns,
                storage: &mut self.storage,
                trackers: &mut self.trackers,
                bind: self.bind,
                now,
                completed: false,
            },
            &mut self.session,
            &mut self.read_buf,
        )
    }

    /// Carries out the session's actions; returns how many there were.
    fn actions(&mut self, now: Instant) -> Result<usize, DownloadError> {
        let (mut io, session, buf) = self.io(now);
        let n = driver::run_actions(session, &mut io, buf, now)?;
        if io.completed {
            self.on_completed(now)?;
        }
        Ok(n)
    }

    fn on_completed(&mut self, now: Instant) -> Result<(), DownloadError> {
        log::info!(
            "download complete: all {} pieces verified",
            self.meta.piece_count()
        );
        self.storage.flush()?;
        self.trackers.completed(now);
        self.completed_at = Some(now);
        if self.phase == Phase::Downloading {
            if self.seed || self.seed_ratio.is_some() {
                log::info!("seeding");
                self.phase = Phase::Seeding;
                self.session.set_seeding(true);
            } else {
                self.phase = Phase::Completing;
            }
        }
        Ok(())
    }

    /// Carries out actions and writes until no action is left (at most 64 rounds; `step`
    /// does not sleep while some are).
    fn drain(&mut self, now: Instant) -> Result<(), DownloadError> {
        let (mut io, session, buf) = self.io(now);
        driver::drain(session, &mut io, buf, now, 64)?;
        if io.completed {
            self.on_completed(now)?;
        }
        Ok(())
    }

    /// A snapshot for the status line.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let stats = self.session.stats(now);
        let total = self.meta.total_length;
        let have_bytes = total - self.session.left(total);
        let waiting = if self.phase != Phase::Downloading {
            None
        } else if let Some(why) = self.session.holding() {
            Some(why.to_string())
        } else if stats.connected == 0 && stats.connecting == 0 {
            Some(if self.trackers.has_trackers() {
                "waiting for peers from the trackers".to_string()
            } else {
                "waiting for peers (no trackers: give some with --peer)".to_string()
            })
        } else if stats.down_rate < 1.0 && stats.connected > 0 {
            Some("waiting for peers to send data".into())
        } else {
            None
        };
        let ts = self.trackers.status();
        Status {
            phase: self.phase,
            stats,
            total,
            have_bytes,
            uploaded: self.storage.uploaded(),
            waiting,
            tracker_error: ts.all_failing.then(|| ts.last_error.clone()).flatten(),
            port: self.port,
        }
    }
}
