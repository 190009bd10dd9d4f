//! The download session as a state machine: connections' bytes and the clock go in,
//! bytes to send and [`Action`]s come out. No sockets, files or clocks inside, so a whole
//! swarm can be simulated in a test.
//!
//! Drive contract (after str0m and quinn-proto): after every input —
//! [`Session::connected`], [`Session::received`], [`Session::closed`],
//! [`Session::accept`], [`Session::add_peers`], [`Session::piece_result`],
//! [`Session::handle_timeout`] — send what [`Session::tx`] holds for each peer
//! [`Session::next_to_send`] names, and drain [`Session::poll_action`] until it is empty.
//! Call [`Session::handle_timeout`] when [`Session::poll_timeout`] comes: there is no
//! periodic tick. No input costs work in proportion to the number of peers, except those
//! that concern them all (a verified piece is announced to every peer; the timers and the
//! choke round).
//!
//! Here: peers, dialling and redialling, pieces, timers. `session/receive.rs` acts on what
//! peers send, `session/upload.rs` serves them and chokes, `session/extensions.rs` speaks
//! BEP 10 and PEX, and [`driver`] carries out the actions for every shell.

use crate::bitfield::Bitfield;
use crate::ext::ExtHandshake;
use crate::ext::fetch::MetadataFetch;
use crate::ext::pex::{self, Pex};
use crate::metainfo::Metainfo;
use crate::peer::{CloseReason, Input, OUR_RESERVED, Peer, Stage, Timers, Violation};
use crate::picker::{BlockRef, Complete, Picker};
use crate::wire::{self, Handshake, Message};
pub use magnet::MetadataStatus;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Limits and timers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections at most.
    pub max_peers: usize,
    /// Outgoing connects under way at most.
    pub max_half_open: usize,
    /// Time allowed for a TCP connect and the handshake.
    pub connect_timeout: Duration,
    /// A request not answered in this time is asked again elsewhere.
    pub request_timeout: Duration,
    /// Send a keep-alive after this long without sending.
    pub keepalive: Duration,
    /// A peer silent this long is not alive.
    pub dead_after: Duration,
    /// Bytes of partial pieces held at most (at least two pieces).
    pub max_partial_bytes: u64,
    /// A peer blamed for this many failed pieces is banned.
    pub ban_strikes: u32,
    /// Peers unchoked by rate at each choke round (plus one optimistic unchoke).
    pub upload_slots: usize,
    /// Requests a peer may have queued with us (our BEP 10 `reqq`): more are refused, with
    /// a BEP 6 reject to a peer that speaks Fast, and cost no memory.
    pub reqq: usize,
    /// Peer addresses remembered at most (from trackers, PEX and connections): more are
    /// ignored until some are forgotten.
    pub max_known: usize,
    /// Exchange peers with PEX (BEP 11); never for a private torrent.
    pub pex: bool,
    /// Blocks are read for a peer only while its send buffer holds less than this, so a
    /// slow reader costs at most this much memory.
    pub tx_high_water: usize,
    /// The share rule: the last piece is not fetched until this many bytes are uploaded
    /// (over all runs). 0 turns it off.
    pub min_share_bytes: u64,
    /// The rule is let go when connected leechers have asked for nothing for this long.
    pub share_wait: Duration,
    /// Download limit, bytes a second (requests are paced); `None`: none.
    pub down_limit: Option<u64>,
    /// Upload limit, bytes a second (blocks are read for peers at this pace); `None`: none.
    pub up_limit: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_peers: 50,
            max_half_open: 8,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(90),
            dead_after: Duration::from_secs(120),
            max_partial_bytes: 4 << 20,
            ban_strikes: 2,
            upload_slots: 4,
            reqq: 500,
            max_known: 20_000,
            pex: true,
            tx_high_water: 256 * 1024,
            min_share_bytes: 0,
            share_wait: Duration::from_secs(60),
            down_limit: None,
            up_limit: None,
        }
    }
}

/// What the shell must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to `addr` for peer `key`; report with [`Session::connected`]
    /// or [`Session::closed`].
    Connect {
        /// The peer's key.
        key: usize,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Close peer `key`'s connection (its state is already gone).
    Close {
        /// The peer's key.
        key: usize,
        /// Why.
        reason: CloseReason,
    },
    /// Check and store a complete piece; report with [`Session::piece_result`].
    Verify(Complete),
    /// Read a verified block for peer `key`; answer with [`Session::block_read`].
    Read {
        /// The peer's key.
        key: usize,
        /// The block.
        block: BlockRef,
    },
    /// Over half the peers are dead or none are left: ask the tracker for more.
    WantPeers,
    /// Every piece is verified.
    Completed,
    /// A peer's `port` message (BEP 5): its DHT node is at this address; ping it.
    DhtNode(SocketAddr),
    /// The metadata of a torrent started from its info-hash arrived and hashes to it: the
    /// raw `info` dictionary. Validate it as a torrent's, open storage, and call
    /// [`Session::set_metadata`] (or give up on the torrent if it is invalid).
    Metadata(Vec<u8>),
}

#[derive(Debug, Clone, Copy, Default)]
struct Known {
    failures: u32,
    retry_at: Option<Instant>,
    banned: bool,
    connected: bool,
    /// Among the candidates (or their backoff list) already.
    queued: bool,
    /// Named by the user (`--peer`): dialled again whenever the connection ends, however
    /// often it failed, since nothing else will name it again.
    pinned: bool,
}

/// Figures for the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Pieces verified.
    pub have: u32,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Payload bytes received this run.
    pub downloaded: u64,
    /// Bytes received that were thrown away (duplicates, failed pieces).
    pub wasted: u64,
    /// Connections with a finished handshake.
    pub connected: usize,
    /// Of those, heard from in the last two minutes.
    pub alive: usize,
    /// Connects under way.
    pub connecting: usize,
    /// Addresses waiting to be tried.
    pub candidates: usize,
    /// Download rate, bytes per second.
    pub down_rate: f64,
    /// Payload bytes sent this run.
    pub uploaded: u64,
    /// Upload rate, bytes per second.
    pub up_rate: f64,
    /// Connected peers that lack pieces (leechers).
    pub leechers: usize,
    /// Connected peers we are receiving from (a download rate above zero).
    pub sending_to_us: usize,
    /// Connected peers we are sending to (an upload rate above zero).
    pub getting_from_us: usize,
    /// Peers banned for bad data.
    pub banned: usize,
}

/// One torrent's peers and pieces.
pub struct Session {
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    /// PEX allowed: on in the config and the torrent is not private (BEP 27).
    pex: bool,
    /// Our listen port, stated in the extended handshake.
    listen_port: Option<u16>,
    /// We prefer encrypted connections: `e` in the extended handshake.
    prefers_encryption: bool,
    /// Our DHT node's UDP port, when it serves this torrent (BEP 5): the handshake sets
    /// the DHT bit, and peers that set it get a `port` message.
    dht_port: Option<u16>,
    /// The raw `info` dictionary, served to magnet clients (BEP 9); empty until known.
    metadata: std::sync::Arc<[u8]>,
    /// The metadata fetch (BEP 9) of a torrent started from its info-hash, until it is done.
    fetch: Option<MetadataFetch>,
    piece_count: u32,
    piece_length: u64,
    max_msg: u32,
    config: Config,
    peers: Slab<Peer>,
    picker: Picker,
    candidates: VecDeque<SocketAddr>,
    /// Candidates still in their retry backoff; back among the candidates at `backoff_due`.
    backoff: Vec<SocketAddr>,
    /// The earliest moment one of `backoff` may be dialled again.
    backoff_due: Option<Instant>,
    known: HashMap<SocketAddr, Known>,
    own: Vec<SocketAddr>,
    actions: VecDeque<Action>,
    downloaded: u64,
    wasted: u64,
    completed: bool,
    /// Each piece's tier for the picker (see [`Picker::set_tiers`]); empty: all normal.
    tiers: Vec<u8>,
    /// Keep dialling after completion (seeding).
    seeding: bool,
    /// When [`Session::handle_timeout`] last ran: what was due by then was handled (or
    /// deliberately left), so it is not due again.
    last_timeout: Option<Instant>,
    /// The rate limits' buckets, refilled as time passes.
    down_bucket: rate::TokenBucket,
    up_bucket: rate::TokenBucket,
    /// With no peer and no candidate, when to ask the shell for peers again.
    want_peers_at: Option<Instant>,
    uploaded: u64,
    last_choke: Option<Instant>,
    last_optimistic: Option<Instant>,
    optimistic: Option<usize>,
    rng: u64,
    /// Bytes uploaded in earlier runs (from the sidecar), for the share rule.
    uploaded_before: u64,
    /// Why the last piece is held, while it is.
    holding: Option<String>,
    /// When the share rule started holding the last piece.
    hold_since: Option<Instant>,
    /// When the share rule's wait runs out, while it holds.
    hold_until: Option<Instant>,
    /// The rule was let go for good (`--share-wait` ran out).
    share_released: bool,
    /// Peers that may have bytes to send, so the shell never scans them all.
    outbox: VecDeque<usize>,
    /// Peers in [`Stage::Connecting`].
    half_open: usize,
    /// Peers we do not choke.
    unchoked: usize,
}

/// A peer we dialled is dialled again after a connection that ended this many times in a row
/// without delivering a block (after 30, 60, 120 s); pinned peers are redialled without limit.
const DIAL_RETRIES: u32 = 3;

/// The longest wait before a redial.
const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// In endgame, a peer is asked for blocks already asked of others only while it has fewer
/// than this many requests out.
const ENDGAME_OUTSTANDING: usize = 4;

/// Time between our PEX messages to a peer (BEP 11: at most one a minute).
const PEX_INTERVAL: Duration = Duration::from_secs(60);

/// Addresses added (and dropped) in one PEX message at most, as Transmission and the BEP's
/// note have it.
const PEX_MAX: usize = 50;

/// Pieces in the allowed-fast set we grant a peer that speaks Fast (BEP 6's k).
const ALLOWED_FAST: usize = 10;

/// Seconds between choke rounds, and between optimistic unchokes.
const CHOKE_ROUND: Duration = Duration::from_secs(10);
const OPTIMISTIC_ROUND: Duration = Duration::from_secs(30);

/// With no peer and no candidate left, the shell is asked for peers this often.
const STARVED_ASK: Duration = Duration::from_secs(5);

impl Session {
    /// A session for `meta` with the pieces in `have` already verified.
    pub fn new(
        meta: &Metainfo,
        have: Bitfield,
        peer_id: [u8; 20],
        config: Config,
        seed: u64,
    ) -> Self {
        let mut s = Self::from_info_hash(meta.info_hash.0, peer_id, config, seed);
        s.fetch = None;
        s.install(meta, have);
        s
    }

    /// A session for a torrent known only by its info-hash (a magnet link): it connects to
    /// peers, keeps what they say they have (bounded, see [`crate::peer::MAX_PIECES`]),
    /// fetches the metadata from those that offer it (BEP 9) and hands it over as
    /// [`Action::Metadata`]; [`Session::set_metadata`] then starts the download.
    pub fn from_info_hash(
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        config: Config,
        seed: u64,
    ) -> Self {
        let (config_down, config_up) = (config.down_limit, config.up_limit);
        Self {
            info_hash,
            peer_id,
            pex: config.pex,
            listen_port: None,
            prefers_encryption: false,
            dht_port: None,
            metadata: std::sync::Arc::from(Vec::new()),
            fetch: Some(MetadataFetch::new(info_hash)),
            piece_count: 0,
            piece_length: 0,
            max_msg: wire::max_message_len(crate::peer::MAX_PIECES),
            config,
            peers: Slab::new(),
            picker: Picker::new(1, 0, Bitfield::new(0), seed),
            candidates: VecDeque::new(),
            backoff: Vec::new(),
            backoff_due: None,
            known: HashMap::new(),
            own: Vec::new(),
            actions: VecDeque::new(),
            downloaded: 0,
            wasted: 0,
            completed: false,
            tiers: Vec::new(),
            seeding: false,
            last_timeout: None,
            down_bucket: rate::TokenBucket::new(config_down),
            up_bucket: rate::TokenBucket::new(config_up),
            want_peers_at: None,
            uploaded: 0,
            last_choke: None,
            last_optimistic: None,
            optimistic: None,
            rng: seed | 1,
            uploaded_before: 0,
            holding: None,
            hold_since: None,
            hold_until: None,
            share_released: false,
            outbox: VecDeque::new(),
            half_open: 0,
            unchoked: 0,
        }
    }

    fn install(&mut self, meta: &Metainfo, have: Bitfield) {
        let count = meta.piece_count();
        self.pex = self.config.pex && !meta.private;
        self.metadata = meta.info_bytes.clone();
        self.piece_count = count;
        self.piece_length = meta.piece_length;
        self.max_msg = wire::max_message_len(count);
        self.picker = Picker::new(meta.piece_length, meta.total_length, have, self.rng);
        if !self.tiers.is_empty() {
            self.picker.set_tiers(&self.tiers);
        }
        self.completed = self.picker.is_done();
    }

    /// Starts the download over from `have`, the pieces a check of the data on disk found
    /// after the session was made (before any peer was let in).
    pub fn restart_from(&mut self, have: Bitfield, now: Instant) {
        let total = self.picker.total();
        self.picker = Picker::new(self.piece_length, total, have, self.rng);
        if !self.tiers.is_empty() {
            self.picker.set_tiers(&self.tiers);
        }
        self.completed = self.picker.is_done();
        self.fill_all(now);
        self.wake_dialling(now);
    }

    /// After the session may have gone from complete to wanting more: candidates queued
    /// while it was complete are dialled now, and with none, the shell is asked for peers
    /// at once (no tick would do either later).
    fn wake_dialling(&mut self, now: Instant) {
        self.connect_more(now);
        if !self.completed && self.peers.is_empty() && self.candidates.is_empty() {
            self.want_peers_at = Some(now);
        }
    }

    /// Gives each piece its tier (0 high, 1 normal, 2 low, [`crate::picker::SKIP`]: not
    /// wanted; see [`crate::selection::Selection::piece_tiers`]), before or after the
    /// metadata is known. Interest in each peer follows at once; when every wanted piece is
    /// already verified the session completes, and when more is wanted it downloads again.
    pub fn set_piece_tiers(&mut self, tiers: Vec<u8>, now: Instant) {
        self.tiers = tiers;
        if !self.has_metadata() {
            return;
        }
        self.picker.set_tiers(&self.tiers);
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for k in keys {
            let p = &self.peers[k];
            let interesting = p.has.ones().filter(|&i| self.picker.wants(i)).count() as u32;
            self.peers[k].interesting = interesting;
            if self.peers[k].is_active() {
                self.update_interest(k);
            }
        }
        let done = self.picker.is_done();
        if done && !self.completed {
            self.actions.push_back(Action::Completed);
        }
        self.completed = done;
        self.fill_all(now);
        self.wake_dialling(now);
        self.want_send_all();
    }

    /// This torrent's share of the process's limits (a host with several torrents divides
    /// them): connections, connects under way, bytes of partial pieces. Connections over a
    /// lowered limit are not closed; fewer new ones are made.
    pub fn set_limits(&mut self, max_peers: usize, max_half_open: usize, max_partial_bytes: u64) {
        self.config.max_peers = max_peers.max(1);
        self.config.max_half_open = max_half_open.max(1);
        self.config.max_partial_bytes = max_partial_bytes;
    }

    /// The info-hash.
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    /// The share rule's bytes (see [`Config::min_share_bytes`]), set once the size is known.
    pub fn set_min_share(&mut self, bytes: u64) {
        self.config.min_share_bytes = bytes;
    }

    /// After completion, go on dialling peers (the tracker's leechers) and serving them.
    pub fn set_seeding(&mut self, on: bool) {
        self.seeding = on;
    }

    /// Payload bytes sent this run.
    pub fn uploaded(&self) -> u64 {
        self.uploaded
    }

    /// Our listen port, told to peers in the extended handshake (`p`).
    pub fn set_listen_port(&mut self, port: u16) {
        self.listen_port = Some(port);
    }

    /// We prefer (or require) encrypted connections: the extended handshake says so (`e`),
    /// as Transmission's does unless it prefers plaintext.
    pub fn set_prefers_encryption(&mut self, on: bool) {
        self.prefers_encryption = on;
    }

    /// How peer `key` is connected, as only the shell knows: through an MSE handshake
    /// (`mse`), over uTP (`utp`). PEX tells other peers so (flags 0x01 and 0x04, BEP 11).
    pub fn set_transport(&mut self, key: usize, mse: bool, utp: bool) {
        if let Some(p) = self.peers.get_mut(key) {
            p.conn.transport_flags =
                if mse { pex::FLAG_ENCRYPTION } else { 0 } | if utp { pex::FLAG_UTP } else { 0 };
        }
    }

    /// Our DHT node's UDP port (BEP 5), or `None` when the DHT does not serve this torrent
    /// (off, or a private torrent).
    pub fn set_dht_port(&mut self, port: Option<u16>) {
        self.dht_port = port;
    }

    /// Our own listening address, never to be dialled (trackers list it among the peers).
    pub fn add_own_addr(&mut self, addr: SocketAddr) {
        self.own.push(addr);
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.has_metadata() && self.picker.have().is_full()
    }

    /// Bytes of the wanted pieces (all of them unless some files are not wanted), and of
    /// those not verified yet: Transmission's `sizeWhenDone` and `leftUntilDone`. (0, 0)
    /// while the metadata is not known.
    pub fn wanted_bytes(&self) -> (u64, u64) {
        if !self.has_metadata() {
            return (0, 0);
        }
        self.picker.wanted_bytes()
    }

    /// Whether every wanted piece is verified (all of them, unless some files are not
    /// wanted).
    pub fn is_done(&self) -> bool {
        self.has_metadata() && self.picker.is_done()
    }

    /// Bytes still missing.
    pub fn left(&self, total: u64) -> u64 {
        if self.piece_count == 0 {
            // No metadata yet: everything is missing.
            return total;
        }
        let have = self.picker.have();
        let full = u64::from(have.count()) * self.piece_length;
        // The last piece may be short.
        let last = self.piece_count - 1;
        let short = if have.get(last) {
            self.piece_length * u64::from(self.piece_count) - total
        } else {
            0
        };
        total - (full - short)
    }

    /// Peer addresses from a tracker.
    pub fn add_peers(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, now: Instant) {
        self.add(addrs, false, now);
    }

    /// Peer addresses the user named: like [`Session::add_peers`], but dialled again after
    /// every failure or disconnect (with a backoff of at most two minutes).
    pub fn add_pinned_peers(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, now: Instant) {
        self.add(addrs, true, now);
    }

    fn add(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, pinned: bool, now: Instant) {
        for addr in addrs {
            if self.own.contains(&addr) || addr.port() == 0 {
                continue;
            }
            if self.known.len() >= self.config.max_known && !self.known.contains_key(&addr) {
                continue;
            }
            let k = self.known.entry(addr).or_default();
            k.pinned |= pinned;
            if k.banned || k.connected || k.queued {
                continue;
            }
            if k.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            k.queued = true;
            self.candidates.push_back(addr);
        }
        self.connect_more(now);
    }

    /// An incoming connection; `None` if it must be closed at once (full, banned, ourselves).
    pub fn accept(&mut self, addr: SocketAddr, now: Instant) -> Option<usize> {
        let banned = self.known.get(&addr).is_some_and(|k| k.banned);
        if banned || self.peers.len() >= self.config.max_peers {
            return None;
        }
        self.known.entry(addr).or_default().connected = true;
        Some(
            self.peers
                .insert(Peer::new(addr, false, self.piece_count, now)),
        )
    }

    /// Our connect to peer `key` succeeded: send the handshake.
    pub fn connected(&mut self, key: usize, now: Instant) {
        let hs = self.handshake();
        if let Some(p) = self.peers.get_mut(key) {
            if p.conn.stage == Stage::Connecting {
                self.half_open -= 1;
            }
            p.conn.connected(&hs, now);
            self.want_send(key);
        }
    }

    fn handshake(&self) -> [u8; wire::HANDSHAKE_LEN] {
        let mut reserved = OUR_RESERVED;
        if self.dht_port.is_some() {
            let (byte, bit) = wire::RESERVED_DHT;
            reserved[byte] |= bit;
        }
        Handshake {
            reserved,
            info_hash: self.info_hash,
            peer_id: self.peer_id,
        }
        .encode()
    }

    /// The next peer that may have bytes to send ([`Session::tx`]); each peer is named
    /// once until new bytes are queued for it or [`Session::want_send`] is called.
    pub fn next_to_send(&mut self) -> Option<usize> {
        while let Some(key) = self.outbox.pop_front() {
            if let Some(p) = self.peers.get_mut(key) {
                p.queued = false;
                if !p.conn.pending().is_empty() {
                    return Some(key);
                }
            }
        }
        None
    }

    /// Puts peer `key` back in the send list (its socket became writable again).
    pub fn want_send(&mut self, key: usize) {
        if let Some(p) = self.peers.get_mut(key) {
            if !p.queued {
                p.queued = true;
                self.outbox.push_back(key);
            }
        }
    }

    fn want_send_all(&mut self) {
        for (key, p) in self.peers.iter_mut() {
            if !p.queued {
                p.queued = true;
                self.outbox.push_back(key);
            }
        }
    }

    /// Peer `key` came through an MSE handshake that chose RC4: what is queued for it from
    /// now on is encrypted with `enc` (the shell decrypts what it reads from it). Call it
    /// right after [`Session::accept`], before any byte of the peer's.
    pub fn set_encryptor(&mut self, key: usize, enc: crate::mse::Half) {
        if let Some(p) = self.peers.get_mut(key) {
            p.conn.set_encryptor(enc);
        }
    }

    /// Bytes waiting to be sent to peer `key`.
    pub fn tx(&self, key: usize) -> &[u8] {
        self.peers.get(key).map_or(&[], |p| p.conn.pending())
    }

    /// `n` bytes of [`Session::tx`] were sent.
    pub fn sent(&mut self, key: usize, n: usize, now: Instant) {
        if let Some(p) = self.peers.get_mut(key) {
            p.conn.consume(n);
            p.conn.last_sent = now;
            self.serve(key);
        }
    }

    /// The connection to peer `key` ended (closed by the peer, an error, a failed connect).
    pub fn closed(&mut self, key: usize, now: Instant) {
        self.remove(key, true, now);
        self.connect_more(now);
    }

    /// Forgets peer `key`; one we dialled is dialled again later if `redial` allows.
    fn remove(&mut self, key: usize, redial: bool, now: Instant) -> Option<Peer> {
        let p = self.peers.try_remove(key)?;
        if let Some(f) = self.fetch.as_mut() {
            f.remove_peer(key);
        }
        if p.conn.stage == Stage::Connecting {
            self.half_open -= 1;
        }
        if !p.conn.am_choking {
            self.unchoked -= 1;
        }
        self.picker.remove_available(&p.has);
        for (r, _) in &p.conn.requests {
            self.picker.cancel(*r);
        }
        let k = self.known.entry(p.conn.addr).or_default();
        k.connected = false;
        if p.is_active() && p.downloaded > 0 {
            k.failures = 0;
        } else {
            k.failures += 1;
        }
        let backoff = (Duration::from_secs(15) * (1 << k.failures.min(3))).min(MAX_BACKOFF);
        k.retry_at = Some(now + backoff);
        // A peer we dialled is dialled again after its backoff (a few times, unless pinned):
        // a tracker names a peer once per announce, which for a seed may be half an hour
        // away, and a peer named on the command line is never named again. Two seeds have
        // nothing to say to each other.
        let useless = self.completed && p.is_seed();
        let retry = p.conn.outgoing
            && (redial && k.failures <= DIAL_RETRIES || k.pinned)
            && !useless
            && !k.banned
            && !k.queued
            && !self.own.contains(&p.conn.addr);
        if retry {
            k.queued = true;
            self.backoff.push(p.conn.addr);
            let t = now + backoff;
            self.backoff_due = Some(self.backoff_due.map_or(t, |d| d.min(t)));
        }
        if self.peers.is_empty() && self.candidates.is_empty() && self.want_peers_at.is_none() {
            // The last peer went: ask for more at once (handle_timeout does).
            self.want_peers_at = Some(now);
        }
        Some(p)
    }

    /// Closes peer `key`. One that broke the protocol or was banned is not dialled again on
    /// the session's own account (a tracker may still name it again).
    fn close(&mut self, key: usize, reason: CloseReason, now: Instant) {
        let redial = !reason.is_misbehaviour();
        if self.remove(key, redial, now).is_some() {
            self.actions.push_back(Action::Close { key, reason });
        }
    }

    fn update_interest(&mut self, key: usize) {
        let p = &mut self.peers[key];
        p.conn.set_interested(p.interesting > 0);
    }

    fn max_partial(&self) -> usize {
        let by_bytes = (self.config.max_partial_bytes / self.piece_length.max(1)) as usize;
        by_bytes.max(2)
    }

    /// Keeps peer `key`'s request pipeline full.
    fn fill(&mut self, key: usize, now: Instant) {
        // Decide about the share rule before any new piece is picked.
        self.update_hold(now);
        self.fill_peer(key, now);
    }

    /// [`Session::fill`] for every peer, the share rule decided once (near the end it
    /// looks at every peer).
    fn fill_all(&mut self, now: Instant) {
        self.update_hold(now);
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.fill_peer(k, now);
        }
    }

    /// The pipeline part of [`Session::fill`], the share rule already decided.
    fn fill_peer(&mut self, key: usize, now: Instant) {
        let max_partial = self.max_partial();
        let p = &mut self.peers[key];
        if !p.is_active() || !p.conn.am_interested {
            return;
        }
        // While it chokes us, only the pieces it allows (BEP 6) may be asked for.
        let allowed;
        let has = if p.conn.peer_choking {
            if p.conn.allowed_in.is_empty() {
                return;
            }
            let mut a = Bitfield::new(self.piece_count);
            for &i in &p.conn.allowed_in {
                if p.has.get(i) {
                    a.set(i);
                }
            }
            allowed = a;
            &allowed
        } else {
            &p.has
        };
        let depth = p.conn.pipeline(p.rate.get(now));
        while p.conn.requests.len() < depth && self.down_bucket.open() {
            // Endgame duplicates go only to a peer that is nearly idle: that is where they
            // help, and it keeps each pick's scan short.
            let endgame = p.conn.requests.len() < ENDGAME_OUTSTANDING;
            let conn = &p.conn;
            let Some(r) = self
                .picker
                .pick(has, max_partial, endgame, |r| conn.asked(r))
            else {
                break;
            };
            self.down_bucket.take(u64::from(r.len));
            p.conn.request(r, now);
        }
    }

    /// Sets the rate limits, bytes a second (`None`: none); what waited on the old ones
    /// goes on at once.
    pub fn set_rate_limits(&mut self, down: Option<u64>, up: Option<u64>, now: Instant) {
        self.config.down_limit = down;
        self.config.up_limit = up;
        self.down_bucket.set_rate(down);
        self.up_bucket.set_rate(up);
        self.refill_buckets(now, true);
    }

    /// Refills the buckets and lets what waited on them go: downloads if the download is
    /// limited, uploads if the upload is (or both, `anyway`).
    fn refill_buckets(&mut self, now: Instant, anyway: bool) {
        self.down_bucket.refill(now);
        self.up_bucket.refill(now);
        if self.down_bucket.rate().is_some() || anyway {
            self.fill_all(now);
        }
        if self.up_bucket.rate().is_some() || anyway {
            let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
            for k in keys {
                self.serve(k);
            }
        }
    }

    /// The rate limits in force: down, up.
    pub fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        (self.down_bucket.rate(), self.up_bucket.rate())
    }

    /// The buffer of a piece from [`Action::Verify`], once storage is done with it: it is
    /// reused for a later piece. Call it before [`Session::piece_result`], which may start
    /// one.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.picker.recycle(buf);
    }

    /// Storage checked piece `index` (from [`Action::Verify`]): `ok` if its hash matched
    /// and it was written; `contributors` are the peers that sent it.
    pub fn piece_result(&mut self, index: u32, ok: bool, contributors: &[usize], now: Instant) {
        if !ok && !self.picker.is_wanted(index) {
            // Not kept because it is no longer wanted (storage had nowhere to put it):
            // nobody is to blame.
            self.picker.failed(index);
            return;
        }
        if !ok {
            self.picker.failed(index);
            self.wasted += self.piece_length;
            for &k in contributors {
                let Some(p) = self.peers.get_mut(k) else {
                    continue;
                };
                p.strikes += 1;
                if p.strikes >= self.config.ban_strikes {
                    let addr = p.conn.addr;
                    self.known.entry(addr).or_default().banned = true;
                    self.close(k, CloseReason::Banned, now);
                }
            }
            self.fill_all(now);
            self.want_send_all();
            return;
        }
        self.picker.verified(index);
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for k in keys {
            let p = &mut self.peers[k];
            if !p.is_active() {
                continue;
            }
            if p.has.get(index) {
                // A peer that has the piece learns nothing from a HAVE (it cannot make us
                // more interesting to it), so none is sent: with many seeds that is most
                // of the HAVE traffic.
                p.interesting = p.interesting.saturating_sub(1);
                self.update_interest(k);
            } else {
                p.conn.send(&Message::Have(index));
            }
            self.want_send(k);
        }
        // The stored piece's buffer is free again: a new piece may be started.
        self.fill_all(now);
        if self.picker.is_done() && !self.completed {
            self.completed = true;
            self.actions.push_back(Action::Completed);
        }
    }

    /// Timers: connect and request timeouts, keep-alives, liveness, the choke round, the
    /// rate limits' buckets, redials, the metadata fetch's requests. Call it when
    /// [`Session::poll_timeout`] comes (earlier does no harm).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_timeout = Some(now);
        let cfg = self.config.clone();
        let mut expired = Vec::new();
        let mut dead = Vec::new();
        let mut refill = Vec::new();
        let mut pex_due = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            let c = &mut p.conn;
            if c.stage != Stage::Active {
                if now.duration_since(c.since) >= cfg.connect_timeout {
                    expired.push(k);
                }
                continue;
            }
            if now.duration_since(c.last_sent) >= cfg.keepalive && c.pending().is_empty() {
                c.send(&Message::KeepAlive);
            }
            if !c.alive(now, cfg.dead_after) {
                dead.push(k);
            }
            if c.pex_due.is_some_and(|t| now >= t) {
                pex_due.push(k);
            }
            let late = c.expire(now, cfg.request_timeout);
            if !late.is_empty() {
                for r in late {
                    self.picker.cancel(r);
                }
                refill.push(k);
            }
        }
        for k in expired {
            self.close(k, CloseReason::HandshakeTimeout, now);
        }
        for k in pex_due {
            self.send_pex(k, now);
        }
        self.fetch_tick(now);
        let active = self.peers.iter().filter(|(_, p)| p.is_active()).count();
        if !dead.is_empty() && dead.len() * 2 > active {
            for k in dead {
                self.close(k, CloseReason::Silent, now);
            }
            self.actions.push_back(Action::WantPeers);
        }
        if !refill.is_empty() {
            self.update_hold(now);
            for k in refill {
                if self.peers.contains(k) {
                    self.fill_peer(k, now);
                }
            }
        }
        if self
            .last_choke
            .is_none_or(|t| now.duration_since(t) >= CHOKE_ROUND)
        {
            self.last_choke = Some(now);
            self.choke_round(now);
        }
        // The share rule may have let go (a wait ran out): ask for the last piece now.
        if self.holding.is_some() {
            self.update_hold(now);
            if self.holding.is_none() {
                self.fill_all(now);
            }
        }
        self.refill_buckets(now, false);
        if self.backoff_due.is_some_and(|t| t <= now) {
            self.backoff_due = None;
            self.candidates.extend(self.backoff.drain(..));
        }
        self.connect_more(now);
        if self.peers.is_empty() && self.candidates.is_empty() && !self.completed {
            // Asked again every few seconds while it lasts; the trackers keep to their
            // minimum interval.
            if self.want_peers_at.is_none_or(|t| t <= now) {
                self.want_peers_at = Some(now + STARVED_ASK);
                self.actions.push_back(Action::WantPeers);
            }
        } else {
            self.want_peers_at = None;
        }
        self.want_send_all();
    }

    fn connect_more(&mut self, now: Instant) {
        if self.completed && !self.seeding {
            return;
        }
        let mut room = self
            .config
            .max_half_open
            .saturating_sub(self.half_open)
            .min(self.config.max_peers.saturating_sub(self.peers.len()));
        let mut deferred = Vec::new();
        while room > 0 {
            let Some(addr) = self.candidates.pop_front() else {
                break;
            };
            let k = self.known.entry(addr).or_default();
            if k.banned || k.connected {
                k.queued = false;
                continue;
            }
            if let Some(t) = k.retry_at.filter(|&t| t > now) {
                self.backoff_due = Some(self.backoff_due.map_or(t, |d| d.min(t)));
                deferred.push(addr);
                continue;
            }
            k.queued = false;
            k.connected = true;
            let key = self
                .peers
                .insert(Peer::new(addr, true, self.piece_count, now));
            self.half_open += 1;
            self.actions.push_back(Action::Connect { key, addr });
            room -= 1;
        }
        // Addresses in backoff wait for the first of them to be due, so a long list of them
        // is not walked again on every message.
        self.backoff.extend(deferred);
    }

    /// The earliest moment something is due, for [`Session::handle_timeout`]: a
    /// connection's timer (a handshake's or a request's time limit, a keep-alive, a PEX
    /// message, silence), the choke round, a redial, a rate limit's bucket opening, the
    /// share rule's wait, the metadata fetch's requests, asking for peers again. Never a
    /// moment the last `handle_timeout` already covered, so a shell that sleeps until then
    /// never spins. O(peers and their requests).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let after = self.last_timeout;
        let t = Timers {
            handshake: self.config.connect_timeout,
            keepalive: self.config.keepalive,
            request: self.config.request_timeout,
            dead_after: self.config.dead_after,
        };
        let peers = self
            .peers
            .iter()
            .filter_map(|(_, p)| p.conn.deadline(&t, after));
        // The first round comes with the first peer; then every CHOKE_ROUND.
        let choke = match self.last_choke {
            Some(c) => Some(c + CHOKE_ROUND),
            None => self.peers.iter().map(|(_, p)| p.conn.since).min(),
        };
        [
            choke,
            self.fetch.as_ref().and_then(|f| f.poll_timeout()),
            self.backoff_due,
            self.hold_until,
            self.want_peers_at,
            self.down_bucket.ready_at(),
            self.up_bucket.ready_at(),
        ]
        .into_iter()
        .flatten()
        .chain(peers)
        .filter(|d| after.is_none_or(|a| *d > a))
        .min()
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether actions are waiting for [`Session::poll_action`].
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// Figures for the status line.
    pub fn stats(&self, now: Instant) -> Stats {
        let active = || self.peers.iter().filter(|(_, p)| p.is_active());
        Stats {
            have: self.picker.have().count(),
            pieces: self.piece_count,
            downloaded: self.downloaded,
            wasted: self.wasted,
            connected: active().count(),
            alive: active()
                .filter(|(_, p)| p.conn.alive(now, self.config.dead_after))
                .count(),
            connecting: self.peers.len() - active().count(),
            candidates: self.candidates.len() + self.backoff.len(),
            down_rate: active().map(|(_, p)| p.rate.get(now)).sum(),
            uploaded: self.uploaded,
            up_rate: active().map(|(_, p)| p.up_rate.get(now)).sum(),
            leechers: active().filter(|(_, p)| !p.is_seed()).count(),
            sending_to_us: active().filter(|(_, p)| p.rate.get(now) > 0.0).count(),
            getting_from_us: active().filter(|(_, p)| p.up_rate.get(now) > 0.0).count(),
            banned: self.known.values().filter(|k| k.banned).count(),
        }
    }
}

pub mod driver;
mod extensions;
mod magnet;
pub mod rate;
mod receive;
mod upload;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ext_tests;

#[cfg(test)]
mod magnet_tests;
