//! The host: one process's poll, listen socket, signals and links, shared by any number
//! of torrents. A torrent comes from a `.torrent` or from a magnet link's info-hash alone,
//! and can be added and removed while the loop runs.
//!
//! ```text
//!  loop {
//!    poll(timeout = earliest of: tick, every torrent's tracker deadline)
//!    listener -> new link, unattached until its handshake names an info-hash
//!    link     -> connect done / read -> its torrent's Session (or attach it to one)
//!    tracker token, waker, UDP datagram -> that torrent's trackers
//!    signals -> stop every torrent
//!    each torrent: trackers, then its session's actions and writes (session::driver)
//!  }
//! ```
//!
//! Limits that are the process's (connections, connects under way, piece-buffer memory)
//! are shared fairly: each torrent gets an equal part, set again whenever one is added or
//! removed. One resolver thread serves every torrent's trackers (started on the first host
//! name), and one UDP socket, at the listen port's number, carries their UDP announces
//! (replies told apart by address and transaction id); only a tracker of the other address
//! family (IPv6) gets a socket of its own.

mod dht;
mod link;
mod race;
mod share;
mod torrent;
mod utp;

pub use dht::{DhtOptions, ROUTERS};
pub use torrent::saved_metainfo_path;

use crate::engine::{DownloadError, DownloadOptions, Phase, Status};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::selection::Selection;
use crate::session::{Config, Session};
use crate::signals::Signals;
use crate::tracker::Trackers;
use crate::tracker::io::{MAX_JOBS, Resolver, Timeouts};
use crate::wire::Handshake;
use link::{ATTACH_TIMEOUT, Link, MAX_UNATTACHED, Owner, Transport};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use socket2::{Domain, Socket, Type};
use std::collections::{HashMap, HashSet};
use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use torrent::Torrent;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
const UDP: Token = Token(3);
const UDP6: Token = Token(4);
const LISTENER6: Token = Token(5);
const TRACKER_BASE: usize = 16;
/// Links' tokens start here; below it, each torrent's trackers have [`MAX_JOBS`] tokens.
const PEER_BASE: usize = 1 << 24;
/// A uTP dial's racing TCP connect (`race.rs`) has its link's number from here.
const RACE_BASE: usize = 1 << 29;
/// Tokens from here up belong to the program that embeds the host: it registers its own
/// sources with [`Host::registry`], and [`Host::take_external`] hands their events back.
/// Below 2^31, so that it fits a 32-bit `usize` and leaves links 2^30 - 2^24 tokens.
pub const EXTERNAL_BASE: usize = 1 << 30;
/// How often the process-wide rate limits are shared out again among the torrents, while
/// there are any.
const SHARE_EVERY: Duration = Duration::from_secs(1);
/// Ports tried after the one asked for, when it is taken.
const PORT_TRIES: u16 = 20;

/// What the whole process shares.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Port to listen on; the next free one is taken if it is busy. 0: any.
    pub port: u16,
    /// Local address for the listener (and each torrent's connections and trackers).
    pub bind: Option<IpAddr>,
    /// Stop every torrent on SIGINT/SIGTERM.
    pub handle_signals: bool,
    /// The process's limits, divided among the torrents: `max_peers`, `max_half_open`,
    /// `max_partial_bytes` (the rest of a torrent's [`Config`] is its own).
    pub limits: Config,
    /// Tracker time limits.
    pub tracker_timeouts: Timeouts,
    /// The DHT (BEP 5) on the UDP socket, for every torrent that is not private; `None`:
    /// off.
    pub dht: Option<DhtOptions>,
    /// Encryption (MSE) both ways.
    pub encryption: crate::mse::Policy,
    /// uTP (BEP 29) both ways, on the UDP socket at the listen port's number.
    pub utp: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            port: 6881,
            bind: None,
            handle_signals: false,
            limits: Config::default(),
            tracker_timeouts: Timeouts::default(),
            dht: None,
            encryption: crate::mse::Policy::Prefer,
            utp: true,
        }
    }
}

impl HostOptions {
    /// The host's part of a single download's options.
    pub fn from_download(o: &DownloadOptions) -> Self {
        Self {
            port: o.port,
            bind: o.bind,
            handle_signals: o.handle_signals,
            limits: o.session.clone(),
            tracker_timeouts: o.tracker_timeouts,
            dht: None,
            encryption: o.encryption,
            utp: o.utp,
        }
    }
}

/// What a torrent starts from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A `.torrent`.
    Torrent(Arc<Metainfo>),
    /// A magnet link: the metadata is fetched from peers (BEP 9), unless an earlier run
    /// saved it in the output folder.
    Magnet(Magnet),
}

/// A torrent's handle in its host.
pub type TorrentId = usize;

/// Why a torrent could not be added.
#[derive(Debug)]
pub enum AddError {
    /// The host has that torrent already.
    Duplicate(String),
    /// Its storage could not be prepared.
    Download(DownloadError),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Duplicate(h) => write!(f, "torrent {h} is there already"),
            Self::Download(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AddError {}

/// Incoming MSE handshakes started a second, at most (each costs a few milliseconds of
/// CPU for its two exponentiations).
const MSE_PER_SECOND: u32 = 50;
/// The first bytes of a plaintext BitTorrent handshake.
const PLAIN_PREFIX: [u8; 20] = *b"\x13BitTorrent protocol";

/// A cap on events a second (fixed one-second windows).
struct PerSecond {
    max: u32,
    since: Option<Instant>,
    n: u32,
}

impl PerSecond {
    fn new(max: u32) -> Self {
        Self {
            max,
            since: None,
            n: 0,
        }
    }

    /// Whether one more event may happen at `now` (it is counted if so).
    fn allow(&mut self, now: Instant) -> bool {
        if self
            .since
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.since = Some(now);
            self.n = 0;
        }
        if self.n >= self.max {
            return false;
        }
        self.n += 1;
        true
    }
}

/// One process's torrents on one poll.
pub struct Host {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    /// `[::]:port`, v6-only, when no address is bound and the system has IPv6.
    listener6: Option<TcpListener>,
    port: u16,
    /// The one UDP socket, at the listen port's number: every torrent's UDP trackers (and
    /// the DHT and uTP to come).
    udp: Arc<UdpSocket>,
    /// The DHT's IPv6 socket (BEP 32), at the same port, when the DHT is on, no address is
    /// bound and the system has IPv6.
    udp6: Option<Arc<UdpSocket>>,
    /// uTP connections on those sockets.
    utp: utp::UtpNet,
    /// Our IPv6 address, for HTTP trackers (BEP 7): `--bind`'s, or the one the system would
    /// use to reach the IPv6 internet; none when we listen on no IPv6 socket.
    own_ipv6: Option<std::net::Ipv6Addr>,
    /// Scratch buffers for uTP's bytes received and datagrams sent.
    utp_rx: Vec<u8>,
    utp_tx: Vec<u8>,
    /// The UDP read buffer.
    udp_buf: Vec<u8>,
    resolver: Arc<Resolver>,
    /// The disk thread: every torrent's piece writes and sidecar records, off the loop.
    disk: crate::storage::Disk,
    dht: Option<dht::Dht>,
    /// A torrent waits to ask the DHT until the node knows some nodes.
    dht_waiting: bool,
    signals: Option<Signals>,
    opts: HostOptions,
    peer_id: [u8; 20],
    links: Slab<Link>,
    unattached: usize,
    /// Incoming MSE handshakes started in the current second.
    mse_started: PerSecond,
    torrents: Slab<Torrent>,
    by_hash: HashMap<[u8; 20], TorrentId>,
    /// When the global rate limits are shared out next; `None` without global limits.
    next_share: Option<Instant>,
    read_buf: Vec<u8>,
    /// Events of the embedder's tokens, since the last [`Host::take_external`].
    external: Vec<(Token, bool, bool)>,
    /// Signals received (SIGINT/SIGTERM), when the host handles them.
    signals_seen: u32,
}

impl Host {
    /// Opens the poll and the listen socket, and the signals if asked.
    pub fn new(opts: HostOptions) -> Result<Self, DownloadError> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        // Signals are blocked before any thread (a resolver) starts, so it inherits that.
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
        // With no address bound, IPv6 too: a listener and the DHT's socket (BEP 32) of its
        // own at the same port, each v6-only, so that IPv4 stays on the sockets above.
        let mut listener6 = match opts.bind {
            None => v6_socket(port, Type::STREAM).map(|s| {
                s.listen(1024)?;
                Ok::<_, io::Error>(TcpListener::from_std(s.into()))
            }),
            Some(_) => None,
        }
        .and_then(|l| l.inspect_err(|e| log::debug!("no IPv6 listener: {e}")).ok());
        if let Some(l) = &mut listener6 {
            poll.registry().register(l, LISTENER6, Interest::READABLE)?;
        }
        let mut udp = udp_socket(opts.bind, port)?;
        poll.registry()
            .register(&mut udp, UDP, Interest::READABLE)?;
        let disk = {
            let waker = waker.clone();
            crate::storage::Disk::start(move || {
                // A failed wake only delays the answer to the next pass.
                let _ = waker.wake();
            })?
        };
        let resolver = Resolver::new(waker);
        let now = Instant::now();
        // IPv6 datagrams (the DHT's, uTP's) on a socket of their own, as the listener.
        let mut udp6 = match (opts.dht.is_some() || opts.utp, &listener6) {
            (true, Some(_)) => v6_socket(port, Type::DGRAM).map(|s| UdpSocket::from_std(s.into())),
            _ => None,
        };
        if let Some(u) = &mut udp6 {
            poll.registry().register(u, UDP6, Interest::READABLE)?;
        }
        // The families the DHT can send to: the main socket's, and IPv6 on its own socket.
        let families = [
            udp.local_addr()?.is_ipv4(),
            udp6.is_some() || opts.bind.is_some_and(|b| b.is_ipv6()),
        ];
        let mut dht = opts
            .dht
            .clone()
            .map(|d| dht::Dht::start(d, &resolver, families, now));
        if let (Some(d), Some(ip)) = (&mut dht, opts.bind) {
            d.node.set_own_ip(ip);
        }
        crate::net::queue_icmp_errors(&udp, udp.local_addr()?.is_ipv6());
        if let Some(u) = &udp6 {
            crate::net::queue_icmp_errors(u, true);
        }
        if opts.utp {
            for u in std::iter::once(&udp).chain(&udp6) {
                crate::net::grow_udp_buffers(u);
            }
        }
        let udp = Arc::new(udp);
        let udp6 = udp6.map(Arc::new);
        let main_v6 = udp.local_addr()?.is_ipv6();
        let utp = utp::UtpNet::new(
            opts.utp,
            if main_v6 {
                [None, Some(udp.clone())]
            } else {
                [Some(udp.clone()), udp6.clone()]
            },
        );
        let own_ipv6 = match opts.bind {
            Some(IpAddr::V6(ip)) => Some(ip),
            Some(IpAddr::V4(_)) => None,
            None if listener6.is_some() => crate::net::global_ipv6(),
            None => None,
        };
        Ok(Self {
            poll,
            events: Events::with_capacity(256),
            listener,
            listener6,
            port,
            udp,
            udp6,
            utp,
            own_ipv6,
            utp_rx: Vec::new(),
            udp_buf: Vec::new(),
            utp_tx: Vec::new(),
            resolver,
            disk,
            dht,
            dht_waiting: false,
            signals,
            opts,
            peer_id: crate::engine::new_peer_id(),
            links: Slab::new(),
            unattached: 0,
            mse_started: PerSecond::new(MSE_PER_SECOND),
            torrents: Slab::new(),
            by_hash: HashMap::new(),
            next_share: None,
            read_buf: Vec::with_capacity(crate::wire::BLOCK as usize),
            external: Vec::new(),
            signals_seen: 0,
        })
    }

    /// The port peers can reach us on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Our peer id (one for every torrent).
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    /// Adds a torrent. From a `.torrent` (or a magnet whose metadata an earlier run saved
    /// in `opts.output`), storage is opened first, and the data on disk checked when the
    /// sidecar cannot be trusted (`progress(done, total)` after each piece); a full disk
    /// fails here. From a magnet, storage waits for the metadata.
    pub fn add(
        &mut self,
        source: Source,
        opts: DownloadOptions,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<TorrentId, AddError> {
        let (info_hash, mut name, mut meta, tiers, magnet_peers) = match source {
            Source::Torrent(m) => (
                m.info_hash.0,
                m.name.clone(),
                Some(m.clone()),
                m.tiers(),
                vec![],
            ),
            Source::Magnet(m) => {
                let name = m.name.clone().unwrap_or_else(|| m.hex());
                let tiers: Vec<Vec<String>> = m.trackers.iter().map(|t| vec![t.clone()]).collect();
                let mut peers = Vec::new();
                for p in &m.peers {
                    match p.parse::<SocketAddr>() {
                        Ok(a) => peers.push(a),
                        // Resolving would block the loop: the command line resolves them.
                        Err(_) => log::warn!("x.pe {p}: not an IP address and port, skipped"),
                    }
                }
                (m.info_hash, name, None, tiers, peers)
            }
        };
        if self.by_hash.contains_key(&info_hash) {
            return Err(AddError::Duplicate(crate::util::hex(&info_hash)));
        }
        if meta.is_none() {
            let saved = saved_metainfo_path(&opts.output, &info_hash);
            if let Ok(bytes) = std::fs::read(&saved) {
                match Metainfo::from_bytes(&bytes) {
                    Ok(m) if m.info_hash.0 == info_hash => {
                        log::info!("metadata from an earlier run: {}", saved.display());
                        name = m.name.clone();
                        meta = Some(Arc::new(m));
                    }
                    _ => log::warn!(
                        "{} is not this torrent's: fetching the metadata",
                        saved.display()
                    ),
                }
            }
        }
        let storage = match &meta {
            Some(m) => Some(
                torrent::open_storage(m, &opts, &self.disk, progress)
                    .map_err(AddError::Download)?,
            ),
            None => None,
        };
        let now = Instant::now();
        let entry = self.torrents.vacant_entry();
        let id = entry.key();
        let seed = crate::util::random_u64();
        let mut session = match (&meta, &storage) {
            (Some(m), Some(s)) => {
                let mut config = opts.session.clone();
                config.min_share_bytes = (opts.min_share.max(0.0) * m.total_length as f64) as u64;
                let mut session = Session::new(m, s.have().clone(), self.peer_id, config, seed);
                session.set_uploaded_before(s.uploaded());
                session.set_piece_tiers(opts.files.piece_tiers(m), now);
                session
            }
            _ => Session::from_info_hash(info_hash, self.peer_id, opts.session.clone(), seed),
        };
        session.set_listen_port(self.port);
        session.set_prefers_encryption(self.opts.encryption != crate::mse::Policy::Off);
        let private = meta.as_ref().is_some_and(|m| m.private);
        session.set_dht_port((self.dht.is_some() && !private).then_some(self.port));
        let own_ip = opts.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        session.add_own_addr(SocketAddr::new(own_ip, self.port));
        session.add_own_addr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port));
        let mut trackers = Trackers::new(
            tiers.clone(),
            self.resolver.clone(),
            TRACKER_BASE + id * MAX_JOBS,
            self.opts.tracker_timeouts,
            now,
        );
        trackers.set_bind(opts.bind);
        trackers.set_udp(self.udp.clone());
        let start_left = meta.as_ref().map(|m| session.left(m.total_length));
        session.add_pinned_peers(opts.peers.iter().chain(&magnet_peers).copied(), now);
        // Its timers start now (a session with no peer yet asks for some at once).
        session.handle_timeout(now);
        let mut t = Torrent {
            info_hash,
            name,
            meta,
            tiers,
            session,
            storage,
            trackers,
            links: HashMap::new(),
            opts,
            phase: Phase::Downloading,
            completed_at: None,
            start_left,
            synced_up: 0,
            key: crate::util::random_u64() as u32,
            error: None,
            remove_when_finished: false,
            dht_next: now,
            dht_asks: 0,
            dht_pings: Vec::new(),
            recent: Vec::new(),
            measured: None,
            encryption: self.opts.encryption,
            plain_peers: HashSet::new(),
            paths: race::Paths::default(),
            own_ipv6: self.own_ipv6,
        };
        if t.storage
            .as_ref()
            .is_some_and(|s| s.recheck_progress().is_some())
        {
            t.phase = Phase::Checking;
        } else if t.session.is_done() {
            log::info!(
                "{}: all {} wanted pieces are already verified: seeding",
                crate::util::printable(&t.name),
                t.session.have().count()
            );
            t.phase = Phase::Seeding;
            t.session.set_seeding(true);
        }
        entry.insert(t);
        self.by_hash.insert(info_hash, id);
        self.share_limits();
        Ok(id)
    }

    /// Stops torrent `id` (flush, announce `stopped`) and drops it once that is done.
    pub fn remove(&mut self, id: TorrentId) {
        let now = Instant::now();
        let port = self.port;
        if let Some(t) = self.torrents.get_mut(id) {
            t.remove_when_finished = true;
            t.stop(&self.poll, port, now);
        }
    }

    /// Asks every torrent to stop as on SIGINT: flush, announce `stopped`, finish.
    pub fn stop(&mut self) {
        let now = Instant::now();
        for (_, t) in self.torrents.iter_mut() {
            t.stop(&self.poll, self.port, now);
        }
    }

    /// The disk thread, for the embedder's own files ([`crate::storage::Disk::save`]): a
    /// write that must not stop the loop.
    pub fn disk(&self) -> &crate::storage::Disk {
        &self.disk
    }

    /// The poll's registry, for the embedder's own sources (tokens from [`EXTERNAL_BASE`]).
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// The embedder's tokens that had events in the last [`Host::step`]: (token, readable,
    /// writable).
    pub fn take_external(&mut self) -> Vec<(Token, bool, bool)> {
        std::mem::take(&mut self.external)
    }

    /// SIGINT/SIGTERM received so far (with `handle_signals`): the first stops every
    /// torrent cleanly, the second at once.
    pub fn signals(&self) -> u32 {
        self.signals_seen
    }

    /// The torrents' ids, in the order they were added (ids are reused after removal).
    pub fn ids(&self) -> Vec<TorrentId> {
        self.torrents.iter().map(|(id, _)| id).collect()
    }

    /// Torrent `id`'s status, if it is there.
    pub fn status(&self, id: TorrentId) -> Option<Status> {
        self.torrents.get(id).map(|t| t.status(self.port))
    }

    /// Torrent `id`'s metadata, once known.
    pub fn metainfo(&self, id: TorrentId) -> Option<Arc<Metainfo>> {
        self.torrents.get(id)?.meta.clone()
    }

    /// Torrent `id`'s session (verified pieces, figures).
    pub fn session(&self, id: TorrentId) -> Option<&Session> {
        self.torrents.get(id).map(|t| &t.session)
    }

    /// Why torrent `id` failed, taking the error (it is finished, and stays until removed).
    pub fn take_error(&mut self, id: TorrentId) -> Option<DownloadError> {
        self.torrents.get_mut(id)?.error.take()
    }

    /// Whether every torrent is finished (complete and stopped, stopped, or failed).
    pub fn all_finished(&self) -> bool {
        self.torrents
            .iter()
            .all(|(_, t)| t.phase == Phase::Finished)
    }

    /// Each torrent's part of the process's limits; a rate limit of its own applies too
    /// (the lower one wins). The process's rates are split equally, as the rest.
    fn share_limits(&mut self) {
        let n = self.torrents.len().max(1);
        let l = &self.opts.limits;
        // The global rates by need (share.rs), from each torrent's last second.
        let uses = |up: bool| -> Vec<share::Use> {
            self.torrents
                .iter()
                .map(|(_, t)| {
                    let (had, own) = if up {
                        (t.session.rate_limits().1, t.opts.session.up_limit)
                    } else {
                        (t.session.rate_limits().0, t.opts.session.down_limit)
                    };
                    share::Use {
                        used: if up {
                            t.peak_rates().1
                        } else {
                            t.peak_rates().0
                        },
                        had,
                        own,
                    }
                })
                .collect()
        };
        let down = l.down_limit.map(|g| share::split(g, &uses(false)));
        let up = l.up_limit.map(|g| share::split(g, &uses(true)));
        let share = |global: Option<&Vec<u64>>, k: usize, own: Option<u64>| match (
            global.map(|g| g[k]),
            own,
        ) {
            (Some(g), Some(o)) => Some(g.min(o)),
            (g, o) => g.or(o),
        };
        for (k, (_, t)) in self.torrents.iter_mut().enumerate() {
            t.session.set_limits(
                l.max_peers.div_ceil(n),
                l.max_half_open.div_ceil(n),
                l.max_partial_bytes / n as u64,
            );
            let own = &t.opts.session;
            let limits = (
                share(down.as_ref(), k, own.down_limit),
                share(up.as_ref(), k, own.up_limit),
            );
            if t.session.rate_limits() != limits {
                t.session
                    .set_rate_limits(limits.0, limits.1, Instant::now());
            }
        }
    }

    /// Asks torrent `id`'s trackers for peers as soon as their `min interval` allows, and
    /// the DHT at the next pass.
    pub fn reannounce(&mut self, id: TorrentId) {
        let now = Instant::now();
        if let Some(t) = self.torrents.get_mut(id) {
            t.trackers.want_more_peers(now);
            t.dht_next = now;
        }
    }

    /// Wants torrent `id`'s files as `files` says from now on: a newly wanted file is
    /// created (taking its share of verified pieces from the part file), and the download
    /// goes on or completes accordingly. Before the metadata is known, the choice waits for
    /// it. A selection that names a file the torrent lacks is refused, and nothing changes.
    pub fn set_files(&mut self, id: TorrentId, files: Selection) -> Result<(), DownloadError> {
        let Some(t) = self.torrents.get_mut(id) else {
            return Ok(());
        };
        if let Some(meta) = &t.meta {
            let stored = meta.files.iter().filter(|f| !f.padding).count();
            files.check(stored).map_err(DownloadError::Selection)?;
            if let Some(s) = &mut t.storage {
                s.set_wanted(&files.wanted_files(meta))?;
            }
            t.session
                .set_piece_tiers(files.piece_tiers(meta), Instant::now());
        }
        t.opts.files = files;
        Ok(())
    }

    /// The process's rate limits, bytes a second, shared among the torrents.
    pub fn set_global_rate_limits(&mut self, down: Option<u64>, up: Option<u64>) {
        self.opts.limits.down_limit = down;
        self.opts.limits.up_limit = up;
        self.share_limits();
    }

    /// Torrent `id`'s own rate limits, bytes a second.
    pub fn set_rate_limits(&mut self, id: TorrentId, down: Option<u64>, up: Option<u64>) {
        if let Some(t) = self.torrents.get_mut(id) {
            t.opts.session.down_limit = down;
            t.opts.session.up_limit = up;
        }
        self.share_limits();
    }

    /// Runs until every torrent is finished, calling `on_status` about twice a second.
    pub fn run(&mut self, mut on_status: impl FnMut(&Host)) -> Result<(), DownloadError> {
        let mut next_status = Instant::now();
        loop {
            let done = self.step(Some(Duration::from_millis(500)))?;
            let now = Instant::now();
            if done || now >= next_status {
                on_status(self);
                next_status = now + Duration::from_millis(500);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// One pass of the loop: waits at most `timeout` for events, handles them, and returns
    /// whether every torrent is finished. Only the poll failing is an error; a torrent's
    /// own failure (its storage) finishes that torrent, with [`Host::take_error`] saying why.
    pub fn step(&mut self, timeout: Option<Duration>) -> Result<bool, DownloadError> {
        let now = Instant::now();
        let shared = self.opts.limits.down_limit.is_some() || self.opts.limits.up_limit.is_some();
        if shared != self.next_share.is_some() {
            self.next_share = shared.then_some(now);
        }
        // No tick: the loop sleeps until the earliest deadline of all it drives.
        let mut wait = Duration::MAX;
        let mut timers = Vec::with_capacity(self.torrents.len());
        for (id, t) in self.torrents.iter() {
            let due = t.session.poll_timeout();
            timers.push((id, due));
            for d in [t.trackers.next_deadline(), due].into_iter().flatten() {
                wait = wait.min(d.saturating_duration_since(now));
            }
            if t.session.has_actions() || t.phase == Phase::Checking {
                // Work is queued (a round limit was reached, or a check goes on): the
                // readiness that would wake us has been used up, so do not sleep.
                wait = Duration::ZERO;
            }
        }
        if let Some(d) = &self.dht {
            wait = wait.min(d.node.poll_timeout().saturating_duration_since(now));
        }
        for d in [
            self.utp_deadline(),
            self.race_deadline(),
            self.dht_ask_due(now),
            self.unattached_due(),
            self.next_share,
        ]
        .into_iter()
        .flatten()
        {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(t) = timeout {
            wait = wait.min(t);
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
                LISTENER => self.accept(false, now),
                LISTENER6 => self.accept(true, now),
                UDP => self.udp_readable(false, now),
                UDP6 => self.udp_readable(true, now),
                WAKER => {
                    for (_, t) in self.torrents.iter_mut() {
                        t.trackers.handle_wake(self.poll.registry(), now);
                    }
                    if let Some(d) = &mut self.dht {
                        d.resolved(now);
                    }
                }
                SIGNALS => {
                    let n = self.signals.as_mut().map_or(0, |s| s.pending());
                    self.signals_seen += n;
                    if n > 0 {
                        self.on_signal(n, now);
                    }
                }
                Token(t) if t >= EXTERNAL_BASE => {
                    let e = self.events.iter().find(|e| e.token() == token);
                    let (r, w) = e.map_or((true, true), |e| {
                        (
                            e.is_readable() || e.is_read_closed() || e.is_error(),
                            e.is_writable() || e.is_write_closed() || e.is_error(),
                        )
                    });
                    self.external.push((token, r, w));
                }
                Token(t) if t >= RACE_BASE => self.race_event(t - RACE_BASE, now),
                Token(t) if t >= PEER_BASE => self.link_event(t - PEER_BASE, now),
                Token(t) if t >= TRACKER_BASE => {
                    let id = (t - TRACKER_BASE) / MAX_JOBS;
                    if let Some(tr) = self.torrents.get_mut(id) {
                        tr.trackers.handle_event(self.poll.registry(), token, now);
                    }
                }
                _ => {}
            }
        }
        for (id, due) in timers {
            if let (Some(t), Some(true)) = (self.torrents.get_mut(id), due.map(|d| d <= now)) {
                t.session.handle_timeout(now);
            }
        }
        if self.next_share.is_some_and(|t| t <= now) {
            self.next_share = Some(now + SHARE_EVERY);
            for (_, t) in self.torrents.iter_mut() {
                t.measure_rates(now);
            }
            self.share_limits();
        }
        if self.unattached_due().is_some_and(|t| t <= now) {
            self.expire_unattached(now);
        }
        if self.race_deadline().is_some_and(|t| t <= now) {
            self.start_races(now);
        }
        // A torrent waits for the node to know some nodes: ask as soon as it does (one
        // check a pass while it waits, none after).
        let dht_ready = self.dht_waiting && self.dht.as_ref().is_some_and(|d| d.node.knows_nodes());
        if dht_ready || self.dht_ask_due(now).is_some_and(|t| t <= now) {
            self.ask_dht(now);
        }
        if let Some(d) = &mut self.dht {
            if now >= d.node.poll_timeout() {
                d.node.handle_timeout(now);
            }
        }
        let ids = self.ids();
        for id in ids {
            self.pass(id, now);
        }
        self.drive_utp(now);
        if let Some(d) = &mut self.dht {
            for (_, t) in self.torrents.iter_mut() {
                for addr in t.dht_pings.drain(..) {
                    d.node.ping(addr, now);
                }
            }
        } else {
            for (_, t) in self.torrents.iter_mut() {
                t.dht_pings.clear();
            }
        }
        self.flush_dht(now);
        let done = self.all_finished();
        if let (true, Some(d)) = (done, &mut self.dht) {
            // The process is about to end: saved here, not queued.
            d.save(now, true, None);
        }
        Ok(done)
    }

    /// A torrent's part of a pass: trackers, actions and writes, storage, phase.
    fn pass(&mut self, id: TorrentId, now: Instant) {
        let port = self.port;
        let Some(t) = self.torrents.get_mut(id) else {
            return;
        };
        if t.phase == Phase::Finished {
            if t.remove_when_finished {
                self.drop_torrent(id);
            }
            return;
        }
        if t.phase == Phase::Checking {
            if let Err(e) = t.check_some(now) {
                self.fail(id, e);
            }
            return;
        }
        t.run_trackers(&self.poll, port, now);
        let result = t
            .drain(
                id,
                &self.poll,
                &mut self.links,
                &mut self.utp,
                &self.disk,
                PEER_BASE,
                &mut self.read_buf,
                now,
                true,
            )
            .and_then(|()| t.sync_storage(now))
            .and_then(|()| t.advance_phase(&self.poll, port, now));
        match result {
            Ok(true) => self.close_links_of(id),
            Ok(false) => {}
            Err(e) => self.fail(id, e),
        }
    }

    /// Torrent `id` cannot go on (its storage failed, its metadata is invalid): it is
    /// finished, with the error kept for [`Host::take_error`].
    fn fail(&mut self, id: TorrentId, e: DownloadError) {
        if let Some(t) = self.torrents.get_mut(id) {
            log::error!("{}: {e}", crate::util::printable(&t.name));
            if let Some(s) = &mut t.storage {
                // The sidecar is what it was at the last flush; try to record more.
                let _ = s.flush();
            }
            t.error = Some(e);
            t.phase = Phase::Finished;
        }
        self.close_links_of(id);
    }

    fn close_links_of(&mut self, id: TorrentId) {
        let Some(t) = self.torrents.get_mut(id) else {
            return;
        };
        for (_, link) in t.links.drain() {
            if let Some(l) = self.links.try_remove(link) {
                self.utp.let_go(l, self.poll.registry(), Instant::now());
            }
        }
    }

    fn drop_torrent(&mut self, id: TorrentId) {
        self.close_links_of(id);
        let t = self.torrents.remove(id);
        if let Some(d) = &mut self.dht {
            d.node.serve(crate::dht::Id(t.info_hash), None);
        }
        self.by_hash.remove(&t.info_hash);
        self.share_limits();
    }

    fn on_signal(&mut self, n: u32, now: Instant) {
        let running = self.torrents.iter().any(|(_, t)| {
            matches!(
                t.phase,
                Phase::Checking | Phase::Downloading | Phase::Completing | Phase::Seeding
            )
        });
        if n == 1 && running {
            log::info!("stopping (again to quit at once)");
            for (_, t) in self.torrents.iter_mut() {
                t.stop(&self.poll, self.port, now);
            }
            return;
        }
        // A second signal: the sidecars are consistent already; leave now.
        let ids = self.ids();
        for id in ids {
            let t = &mut self.torrents[id];
            if t.phase != Phase::Finished {
                if let Some(Err(e)) = t.storage.as_mut().map(|s| s.flush()) {
                    log::error!("{e}");
                }
                t.phase = Phase::Finished;
            }
            self.close_links_of(id);
        }
    }

    fn accept(&mut self, v6: bool, now: Instant) {
        let listener = match (&self.listener6, v6) {
            (Some(l), true) => l,
            (None, true) => return,
            (_, false) => &self.listener,
        };
        loop {
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.unattached >= MAX_UNATTACHED {
                        log::debug!("{addr}: too many connections without a handshake");
                        continue;
                    }
                    crate::net::no_delay(&stream);
                    let entry = self.links.vacant_entry();
                    let token = Token(PEER_BASE + entry.key());
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.unattached += 1;
                        entry.insert(Link {
                            transport: Transport::Tcp(stream),
                            connected: true,
                            addr,
                            owner: Owner::Unattached {
                                rx: Vec::new(),
                                since: now,
                                mse: None,
                            },
                            decrypt: None,
                            outgoing: link::Outgoing::Plain,
                            race: link::Race::None,
                        });
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

    /// Each running torrent that is not private asks the DHT for peers when its time has
    /// come (at start, then after 5, 10, 20, 40 s and every minute while it has few peers, every 15 minutes after),
    /// announcing our port; not before the node knows some nodes.
    /// When the DHT is asked for a torrent's peers next (or its state saved, or a torrent
    /// that stopped or is checking taken off what the node serves); `None` without a DHT.
    fn dht_ask_due(&self, now: Instant) -> Option<Instant> {
        let d = self.dht.as_ref()?;
        let mut due = d.save_due();
        for (_, t) in self.torrents.iter() {
            let eligible = !t.meta.as_ref().is_some_and(|m| m.private)
                && matches!(t.phase, Phase::Downloading | Phase::Seeding);
            let at = if !eligible {
                d.node.serves(crate::dht::Id(t.info_hash)).then_some(now)
            } else if self.dht_waiting {
                // Asked as soon as the node knows some (see `step`).
                None
            } else {
                Some(t.dht_next)
            };
            due = [due, at].into_iter().flatten().min();
        }
        due
    }

    fn ask_dht(&mut self, now: Instant) {
        let Some(d) = &mut self.dht else {
            return;
        };
        d.save(now, false, Some(&self.disk));
        let ready = d.node.knows_nodes();
        let mut waiting = false;
        for (_, t) in self.torrents.iter_mut() {
            let private = t.meta.as_ref().is_some_and(|m| m.private);
            if private || !matches!(t.phase, Phase::Downloading | Phase::Seeding) {
                d.node.serve(crate::dht::Id(t.info_hash), None);
                continue;
            }
            if now < t.dht_next {
                continue;
            }
            if !ready {
                waiting = true;
                continue;
            }
            let short = t.phase == Phase::Downloading && t.session.stats(now).connected < 5;
            // While short of peers: again after 5 s, 10 s, 20 s… up to a minute (a seeder
            // may announce itself just after our first lookup).
            t.dht_next = now
                + if short {
                    (Duration::from_secs(5) * (1 << t.dht_asks.min(4)))
                        .min(dht::ASK_EVERY_WHEN_SHORT)
                } else {
                    dht::ANNOUNCE_EVERY
                };
            t.dht_asks += 1;
            log::debug!(
                "{}: asking the DHT for peers",
                crate::util::printable(&t.name)
            );
            d.node.serve(crate::dht::Id(t.info_hash), Some(self.port));
            d.node
                .get_peers(crate::dht::Id(t.info_hash), Some(self.port), now);
        }
        self.dht_waiting = waiting;
    }

    /// Sends what the DHT node wants sent, and hands the peers it found to their torrents.
    fn flush_dht(&mut self, now: Instant) {
        let Some(d) = &mut self.dht else {
            return;
        };
        while let Some((to, bytes)) = d.node.poll_transmit() {
            // A datagram that cannot go now is like one lost: the node sends again.
            let _ = match &self.udp6 {
                Some(u) if to.is_ipv6() => u.send_to(&bytes, to),
                _ => self.udp.send_to(&bytes, to),
            };
        }
        for e in d.events() {
            match e {
                crate::dht::Event::Peers { info_hash, peers } => {
                    if let Some(t) = self
                        .by_hash
                        .get(&info_hash.0)
                        .and_then(|&id| self.torrents.get_mut(id))
                    {
                        log::debug!(
                            "the DHT gave {} peers of {}",
                            peers.len(),
                            crate::util::printable(&t.name)
                        );
                        t.session.add_peers(peers, now);
                    }
                }
                crate::dht::Event::LookupDone {
                    target,
                    closest,
                    queries,
                    announced,
                    rounds,
                } => log::debug!(
                    "DHT lookup of {:?}: {} queries in {rounds} rounds, {} closest nodes, \
                     announced to {announced}",
                    target,
                    queries,
                    closest.len()
                ),
            }
        }
    }

    /// Datagrams on the shared UDP socket (or the DHT's IPv6 one, `v6`), read to
    /// `WouldBlock`: KRPC (a bencoded dictionary, `d…`) goes to the DHT node, the rest to
    /// the torrent whose tracker exchange it answers; others are dropped.
    fn udp_readable(&mut self, v6: bool, now: Instant) {
        let sock = match (&self.udp6, v6) {
            (Some(u), true) => u.clone(),
            (_, true) => return,
            (_, false) => self.udp.clone(),
        };
        // Kept across calls: one datagram at a time, as large as any peer's uTP packet
        // (on loopback's MTU too).
        let mut buf = std::mem::take(&mut self.udp_buf);
        buf.resize(64 * 1024, 0);
        // ICMP errors first: a uTP dial to where nothing listens fails now. (The error
        // queue makes the socket readable without a datagram, and `recv_from` does not
        // always report it: one `recvmsg` per wakeup reads it.)
        for to in crate::net::icmp_unreachable(&sock) {
            self.utp_unreachable(to, now);
        }
        self.read_datagrams(&sock, &mut buf, now);
        self.udp_buf = buf;
    }

    fn read_datagrams(&mut self, sock: &UdpSocket, buf: &mut [u8], now: Instant) {
        loop {
            match sock.recv_from(buf) {
                Ok((n, from)) => {
                    let d = &buf[..n];
                    if crate::utp::packet::is_utp(d) {
                        self.utp_datagram(from, d, now);
                        continue;
                    }
                    if let (Some(b'd'), Some(dht)) = (d.first(), &mut self.dht) {
                        dht.node.handle_datagram(now, from, d);
                        continue;
                    }
                    let registry = self.poll.registry();
                    if !self
                        .torrents
                        .iter_mut()
                        .any(|(_, t)| t.trackers.handle_datagram(registry, from, d, now))
                    {
                        log::debug!("a datagram from {from} nobody expects: dropped");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // An ICMP error's notice (refused, unreachable): the errors themselves
                    // are queued, and a uTP dial to where nothing listens fails now.
                    let unreachable = crate::net::icmp_unreachable(sock);
                    if unreachable.is_empty() {
                        log::debug!("UDP socket: {e}");
                        return;
                    }
                    for to in unreachable {
                        self.utp_unreachable(to, now);
                    }
                }
            }
        }
    }

    /// Incoming links that did not name a torrent in time are closed.
    /// When the oldest link still waiting for a handshake runs out of time. O(links), and
    /// only while there are such links.
    fn unattached_due(&self) -> Option<Instant> {
        if self.unattached == 0 {
            return None;
        }
        self.links
            .iter()
            .filter_map(|(_, l)| match l.owner {
                Owner::Unattached { since, .. } => Some(since + ATTACH_TIMEOUT),
                _ => None,
            })
            .min()
    }

    fn expire_unattached(&mut self, now: Instant) {
        let late: Vec<usize> = self
            .links
            .iter()
            .filter(|(_, l)| {
                matches!(l.owner, Owner::Unattached { since, .. } if now.duration_since(since) >= ATTACH_TIMEOUT)
            })
            .map(|(k, _)| k)
            .collect();
        for k in late {
            self.close_unattached(k, "no handshake in time");
        }
    }

    fn close_unattached(&mut self, link: usize, why: &str) {
        let l = self.links.remove(link);
        self.unattached -= 1;
        log::debug!("dropping {}: {why}", l.addr);
        self.utp.let_go(l, self.poll.registry(), Instant::now());
    }

    /// Readiness on a TCP link: finish its connect, read it to `WouldBlock`, attach it to
    /// a torrent once its handshake names one.
    fn link_event(&mut self, link: usize, now: Instant) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let Transport::Tcp(stream) = &mut l.transport else {
            return;
        };
        if let Owner::Peer { torrent, key } = l.owner {
            let Some(t) = self.torrents.get_mut(torrent) else {
                return;
            };
            // Readiness may mean the socket can take the bytes that did not fit before.
            t.session.want_send(key);
            if !l.connected {
                match link::connect_state(stream) {
                    None => return,
                    Some(Err(e)) => {
                        self.close_link(link, &format!("connect failed: {e}"), now);
                        return;
                    }
                    Some(Ok(())) => {}
                }
                l.connected = true;
                self.connect_done(link, now);
            }
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let Some(l) = self.links.get_mut(link) else {
                return;
            };
            let Transport::Tcp(stream) = &mut l.transport else {
                return;
            };
            if !l.connected {
                // Dialled again in plaintext after a failed MSE handshake: a new socket.
                return;
            }
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.close_link(link, "closed by the peer", now);
                    return;
                }
                Ok(n) => {
                    // An encrypted link is decrypted here, in the read buffer, once.
                    if let Some(d) = &mut l.decrypt {
                        d.apply(&mut buf[..n]);
                    }
                    self.received(link, &buf[..n], now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_link(link, &e.to_string(), now);
                    return;
                }
            }
        }
    }

    /// A link we dialled is connected (TCP, or uTP's SYN answered): MSE begins, or the
    /// session's handshake goes out.
    fn connect_done(&mut self, link: usize, now: Instant) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let Owner::Peer { torrent, key } = l.owner else {
            return;
        };
        let Some(t) = self.torrents.get_mut(torrent) else {
            return;
        };
        match std::mem::take(&mut l.outgoing) {
            link::Outgoing::Encrypt { methods, fallback } => {
                // MSE first: step 1 goes out (at most 608 bytes, which a fresh connection
                // always takes); the session's handshake waits for the end.
                let (x, pad_a, pad_c) = crate::mse::fresh();
                let mut mse =
                    crate::mse::Initiator::new(t.info_hash, methods, &[], x, &pad_a, &pad_c);
                let out = mse.take_output();
                l.outgoing = link::Outgoing::Handshake {
                    mse: Box::new(mse),
                    fallback,
                };
                if let Err(e) = l.write_all(&out) {
                    self.close_link(link, &format!("encryption handshake: {e}"), now);
                }
            }
            other => {
                l.outgoing = other;
                let utp = l.utp().is_some();
                t.session.set_transport(key, false, utp);
                t.session.connected(key, now);
            }
        }
    }

    /// Bytes read from a link.
    fn received(&mut self, link: usize, data: &[u8], now: Instant) {
        let l = &mut self.links[link];
        let (torrent, key) = match &mut l.owner {
            Owner::Peer { torrent, key } => {
                if let link::Outgoing::Handshake { .. } = l.outgoing {
                    return self.mse_dial_received(link, data, now);
                }
                (*torrent, *key)
            }
            Owner::Unattached { mse: Some(_), .. } => return self.mse_received(link, data, now),
            Owner::Unattached { rx, .. } => {
                rx.extend_from_slice(data);
                // `\x13BitTorrent protocol`, or as much of it as has come.
                let plain = rx
                    .iter()
                    .zip(std::iter::once(&19u8).chain(crate::wire::PROTOCOL))
                    .all(|(a, b)| a == b);
                if !plain {
                    // Not a BitTorrent handshake: an encrypted one (MSE) begins.
                    let rx = std::mem::take(rx);
                    return self.start_mse(link, &rx, now);
                }
                if self.opts.encryption == crate::mse::Policy::Require {
                    return self.close_unattached(link, "a plaintext peer: encryption is required");
                }
                match Handshake::info_hash_of(rx) {
                    Ok(None) => return,
                    Err(e) => return self.close_unattached(link, &e.to_string()),
                    Ok(Some(hash)) => {
                        let rx = std::mem::take(rx);
                        self.attach(link, hash, rx, None, false, now);
                        return;
                    }
                }
            }
        };
        let Some(t) = self.torrents.get_mut(torrent) else {
            return;
        };
        t.session.received(key, data, now);
        // Store completed pieces at once: reading a fast peer until its socket is empty
        // would otherwise queue piece after piece in memory.
        let result = t.drain(
            torrent,
            &self.poll,
            &mut self.links,
            &mut self.utp,
            &self.disk,
            PEER_BASE,
            &mut self.read_buf,
            now,
            false,
        );
        if let Err(e) = result {
            self.fail(torrent, e);
        }
    }

    /// An incoming link began with something other than a BitTorrent handshake: an MSE
    /// handshake starts (if the flood cap allows), with `rx`, the bytes so far.
    fn start_mse(&mut self, link: usize, rx: &[u8], now: Instant) {
        if self.opts.encryption == crate::mse::Policy::Off {
            return self.close_unattached(link, "not a BitTorrent handshake (encryption is off)");
        }
        // Each costs two 768-bit exponentiations: a flood of them is capped.
        if !self.mse_started.allow(now) {
            return self.close_unattached(link, "too many encrypted handshakes at once");
        }
        let (x, pad_b, pad_d) = crate::mse::fresh();
        let responder =
            crate::mse::Responder::new(self.opts.encryption.methods(), x, &pad_b, &pad_d);
        if let Owner::Unattached { mse, .. } = &mut self.links[link].owner {
            *mse = Some(Box::new(responder));
        }
        self.mse_received(link, rx, now);
    }

    /// Bytes of an incoming MSE handshake: our replies go out at once (a few hundred bytes,
    /// which a fresh socket always takes); once it is over, the link is attached to the
    /// torrent it named, with RC4 on both sides if that was chosen.
    fn mse_received(&mut self, link: usize, data: &[u8], now: Instant) {
        let hashes: Vec<[u8; 20]> = self.by_hash.keys().copied().collect();
        let l = &mut self.links[link];
        let Owner::Unattached { mse: Some(r), .. } = &mut l.owner else {
            return;
        };
        let result = r.handle(data, |k| {
            hashes.iter().find(|h| crate::mse::req2(h) == *k).copied()
        });
        let out = r.take_output();
        if !out.is_empty() {
            if let Err(e) = l.write_all(&out) {
                return self.close_unattached(link, &format!("encryption handshake: {e}"));
            }
        }
        let est = match result {
            Ok(None) => return,
            Err(e) => return self.close_unattached(link, &e.to_string()),
            Ok(Some(est)) => est,
        };
        let hash = est.info_hash;
        let (enc, plain) = l.encrypted(est);
        self.attach(link, hash, plain, enc, true, now);
    }

    /// Bytes of the MSE handshake of a link we dialled: our step 3 goes out when their key
    /// comes; once it is over, the session's handshake is queued (encrypted if RC4 was
    /// chosen) and what came after it is the peer's.
    fn mse_dial_received(&mut self, link: usize, data: &[u8], now: Instant) {
        let l = &mut self.links[link];
        let (Owner::Peer { torrent, key }, link::Outgoing::Handshake { mse, .. }) =
            (&l.owner, &mut l.outgoing)
        else {
            return;
        };
        let (torrent, key) = (*torrent, *key);
        // A peer that answers with a plaintext handshake does not speak MSE (its key would
        // begin with these 20 bytes once in 2^160).
        if !mse.heard() && data.starts_with(&PLAIN_PREFIX) {
            return self.close_link(link, "the peer answered in plaintext", now);
        }
        let result = mse.handle(data);
        let out = mse.take_output();
        if !out.is_empty() {
            if let Err(e) = l.write_all(&out) {
                return self.close_link(link, &format!("encryption handshake: {e}"), now);
            }
        }
        let est = match result {
            Ok(None) => return,
            Err(e) => return self.close_link(link, &e.to_string(), now),
            Ok(Some(est)) => est,
        };
        l.outgoing = link::Outgoing::Plain;
        let utp = l.utp().is_some();
        let (enc, rest) = l.encrypted(est);
        let Some(t) = self.torrents.get_mut(torrent) else {
            return;
        };
        if let Some(e) = enc {
            t.session.set_encryptor(key, e);
        }
        t.session.set_transport(key, true, utp);
        t.session.connected(key, now);
        if !rest.is_empty() {
            self.received(link, &rest, now);
        }
    }

    /// A link we dialled failed its MSE handshake and may fall back: the same peer is
    /// dialled again, in plaintext, for the same session peer (whose connect time limit
    /// still runs). Returns whether the new connect started.
    fn redial_plain(&mut self, link: usize) -> bool {
        if !self.redial_tcp(link) {
            return false;
        }
        let l = &mut self.links[link];
        l.outgoing = link::Outgoing::Plain;
        log::debug!(
            "{}: no encrypted handshake: dialling it in plaintext",
            l.addr
        );
        if let Owner::Peer { torrent, .. } = l.owner {
            if let Some(t) = self.torrents.get_mut(torrent) {
                torrent::remember(&mut t.plain_peers, l.addr);
            }
        }
        true
    }

    /// Link `link` (one we dialled) is dialled again over TCP, the old connection let go;
    /// whether the connect started.
    fn redial_tcp(&mut self, link: usize) -> bool {
        let bind = self.opts.bind;
        let l = &mut self.links[link];
        let Ok(mut stream) = crate::net::connect_peer(l.addr, bind) else {
            return false;
        };
        let registry = self.poll.registry();
        l.release(registry, Instant::now());
        if registry
            .register(
                &mut stream,
                Token(PEER_BASE + link),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return false;
        }
        l.transport = Transport::Tcp(stream);
        l.connected = false;
        l.decrypt = None;
        true
    }

    /// An incoming link's handshake named `hash`: it becomes a peer of that torrent, which
    /// gets the bytes read so far (and, after an MSE handshake (`mse`) that chose RC4,
    /// encrypts what it sends with `enc`).
    fn attach(
        &mut self,
        link: usize,
        hash: [u8; 20],
        rx: Vec<u8>,
        enc: Option<crate::mse::Half>,
        mse: bool,
        now: Instant,
    ) {
        let addr = self.links[link].addr;
        let found = self.by_hash.get(&hash).copied().and_then(|id| {
            let t = &mut self.torrents[id];
            if !matches!(t.phase, Phase::Downloading | Phase::Seeding) {
                return None;
            }
            t.session.accept(addr, now).map(|key| (id, key))
        });
        let Some((id, key)) = found else {
            return self.close_unattached(link, "not one of our torrents, or no room");
        };
        self.unattached -= 1;
        let utp = self.links[link].utp().is_some();
        let session = &mut self.torrents[id].session;
        if let Some(e) = enc {
            session.set_encryptor(key, e);
        }
        session.set_transport(key, mse, utp);
        self.links[link].owner = Owner::Peer { torrent: id, key };
        self.torrents[id].links.insert(key, link);
        self.received(link, &rx, now);
    }

    /// The link ended (`why`, for the log); its torrent's session forgets the peer.
    fn close_link(&mut self, link: usize, why: &str, now: Instant) {
        // Plaintext next only for a peer that never answered with a key: one that did
        // speaks MSE, and failed for another reason (libtorrent's one in 256).
        let fallback = matches!(
            self.links.get(link).map(|l| &l.outgoing),
            Some(link::Outgoing::Handshake { fallback: true, mse }) if !mse.heard()
        );
        if let Some(link::Outgoing::Handshake { mse, .. }) =
            self.links.get(link).map(|l| &l.outgoing)
        {
            if mse.secret_starts_with_zero() == Some(true) {
                log::debug!(
                    "{}: the shared secret began with a zero byte, which libtorrent mishashes",
                    self.links[link].addr
                );
            }
        }
        if fallback {
            log::debug!(
                "encrypted handshake with {} failed: {why}",
                self.links[link].addr
            );
            if self.redial_plain(link) {
                return;
            }
        }
        let Some(l) = self.links.try_remove(link) else {
            return;
        };
        log::debug!("connection to {} ended: {why}", l.addr);
        let peer = match l.owner {
            Owner::Unattached { .. } => None,
            Owner::Peer { torrent, key } => Some((torrent, key)),
        };
        self.utp.let_go(l, self.poll.registry(), now);
        match peer {
            None => self.unattached -= 1,
            Some((torrent, key)) => {
                if let Some(t) = self.torrents.get_mut(torrent) {
                    t.link_closed(key, now);
                }
            }
        }
    }
}

/// The UDP socket: the listen port's number on `bind`, or any port when that is taken.
fn udp_socket(bind: Option<IpAddr>, port: u16) -> Result<UdpSocket, DownloadError> {
    let ip = bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match UdpSocket::bind(SocketAddr::new(ip, port)) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            log::warn!("UDP port {port} is taken: using another for UDP trackers");
            Ok(UdpSocket::bind(SocketAddr::new(ip, 0))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A nonblocking v6-only socket bound to `[::]:port` (so that IPv4 stays on the socket
/// bound to 0.0.0.0 at the same port); `None` when the system has no IPv6 or the port is
/// taken there.
fn v6_socket(port: u16, ty: Type) -> Option<Socket> {
    let open = || -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, ty, None)?;
        s.set_only_v6(true)?;
        s.set_nonblocking(true)?;
        if ty == Type::STREAM {
            s.set_reuse_address(true)?;
        }
        s.bind(&SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok(s)
    };
    open()
        .inspect_err(|e| log::debug!("no IPv6 socket at port {port}: {e}"))
        .ok()
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

#[cfg(test)]
mod per_second_tests {
    use super::*;

    #[test]
    fn at_most_max_a_second() {
        let t0 = Instant::now();
        let mut cap = PerSecond::new(3);
        let allowed = (0..10).filter(|_| cap.allow(t0)).count();
        assert_eq!(allowed, 3);
        assert!(!cap.allow(t0 + Duration::from_millis(999)));
        assert!(cap.allow(t0 + Duration::from_secs(1)));
    }
}
