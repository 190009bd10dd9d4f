//! One torrent in a host: its session, its storage (once the metadata is known), its
//! trackers, and the map from its session's peer keys to the host's links. [`Io`] is the
//! torrent's [`Shell`]: the session's actions carried out on the host's poll and links.

use super::link::{Link, Outgoing, Owner, Transport};
use super::utp::UtpNet;
use crate::engine::{DownloadError, DownloadOptions, Phase, Status};
use crate::metainfo::Metainfo;
use crate::mse::Policy;
use crate::peer::CloseReason;
use crate::picker::BlockRef;
use crate::session::Session;
use crate::session::driver::{self, Dial, Installed, Shell, Stored};
use crate::storage::{Disk, Resume, Storage, Submitted, WriteOutcome};
use crate::tracker::{AnnounceEvent, AnnounceParams, Trackers};
use mio::{Interest, Poll, Token};
use slab::Slab;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ticks whose peak rate stands for a torrent's need (see `share.rs`).
const RATE_TICKS: usize = 3;

/// Bytes a checking torrent hashes per pass of the loop: a few milliseconds, so the other
/// torrents and the RPC go on meanwhile.
const CHECK_SLICE: u64 = 4 << 20;

/// After `completed`, how long a torrent waits for that announce before `stopped`.
const COMPLETED_WAIT: Duration = Duration::from_secs(3);

/// What `left` says to trackers while the size is unknown (a magnet without metadata): not
/// 0, which would make us a seed that trackers give no seeds to.
const LEFT_UNKNOWN: u64 = 16 * 1024;

/// Where a magnet download keeps the metadata it fetched, next to the sidecars: readable
/// with `btmini info`, and what lets the same command resume without any peer.
pub fn saved_metainfo_path(dir: &std::path::Path, info_hash: &[u8; 20]) -> PathBuf {
    dir.join(format!(".btmini-{}.torrent", crate::util::hex(info_hash)))
}

/// One torrent.
pub(super) struct Torrent {
    pub(super) info_hash: [u8; 20],
    /// The name to show: the torrent's, or the magnet's `dn` (or the info-hash) until the
    /// metadata is known.
    pub(super) name: String,
    pub(super) meta: Option<Arc<Metainfo>>,
    /// The trackers a magnet named, kept in the saved metainfo.
    pub(super) tiers: Vec<Vec<String>>,
    pub(super) session: Session,
    pub(super) storage: Option<Storage>,
    pub(super) trackers: Trackers,
    /// Session peer key → host link key.
    pub(super) links: HashMap<usize, usize>,
    pub(super) opts: DownloadOptions,
    pub(super) phase: Phase,
    pub(super) completed_at: Option<Instant>,
    pub(super) start_left: Option<u64>,
    pub(super) synced_up: u64,
    /// The announce `key`.
    pub(super) key: u32,
    /// Why it failed, once it did (it is then finished).
    pub(super) error: Option<DownloadError>,
    /// Dropped from the host once finished.
    pub(super) remove_when_finished: bool,
    /// When it next asks the DHT for peers.
    pub(super) dht_next: Instant,
    /// How often it asked.
    pub(super) dht_asks: u32,
    /// DHT nodes its peers told of (`port` messages), for the host to ping.
    pub(super) dht_pings: Vec<SocketAddr>,
    /// Bytes a second down and up over each of the last [`RATE_TICKS`] ticks, newest last,
    /// for sharing the global limits.
    pub(super) recent: Vec<(f64, f64)>,
    /// The session's byte counts (down, up) at the last measure, and when.
    pub(super) measured: Option<(u64, u64, Instant)>,
    /// The process's `--encryption`.
    pub(super) encryption: crate::mse::Policy,
    /// Peers that failed an MSE handshake and then spoke plaintext: dialled in plaintext
    /// from then on (bounded like the session's known peers).
    pub(super) plain_peers: HashSet<SocketAddr>,
    /// How its peers answered: uTP's round trips, and the peers dialled over TCP alone.
    pub(super) paths: super::race::Paths,
    /// Our IPv6 address for HTTP trackers (BEP 7), when we have one.
    pub(super) own_ipv6: Option<std::net::Ipv6Addr>,
}

/// A torrent's session actions carried out on the host's poll and links.
pub(super) struct Io<'a> {
    pub(super) poll: &'a Poll,
    pub(super) all_links: &'a mut Slab<Link>,
    pub(super) torrent_id: usize,
    pub(super) links: &'a mut HashMap<usize, usize>,
    pub(super) storage: &'a mut Option<Storage>,
    pub(super) meta: &'a mut Option<Arc<Metainfo>>,
    pub(super) tiers: &'a [Vec<String>],
    pub(super) trackers: &'a mut Trackers,
    pub(super) disk: &'a Disk,
    pub(super) opts: &'a DownloadOptions,
    pub(super) now: Instant,
    pub(super) peer_base: usize,
    /// The session reported completion; the phase changes after the actions.
    pub(super) completed: bool,
    /// DHT nodes peers told of, for the host to ping.
    pub(super) dht_pings: &'a mut Vec<SocketAddr>,
    pub(super) encryption: crate::mse::Policy,
    pub(super) plain_peers: &'a mut HashSet<SocketAddr>,
    pub(super) paths: &'a super::race::Paths,
    pub(super) utp: &'a mut UtpNet,
}

/// Peer `addr` failed an encrypted dial: `set` says to dial it in plaintext
/// from now on.
pub(super) fn remember(set: &mut HashSet<SocketAddr>, addr: SocketAddr) {
    // Bounded: forgetting them all costs one failed attempt each.
    if set.len() >= MAX_REMEMBERED {
        set.clear();
    }
    set.insert(addr);
}

/// Peers remembered per torrent as speaking plaintext only.
const MAX_REMEMBERED: usize = 4096;

impl Io<'_> {
    fn storage(&mut self) -> Result<&mut Storage, DownloadError> {
        self.storage.as_mut().ok_or(DownloadError::NoMetadata)
    }
}

impl Shell for Io<'_> {
    type Error = DownloadError;

    /// uTP first (as libtorrent and Transmission dial: it is what gets through NATs
    /// and yields to other traffic), with TCP dialled beside it when uTP is slow to answer
    /// (`race.rs`); TCP alone for a peer that answered TCP first before, or when uTP is
    /// off. MSE first unless it is off or the peer failed it before.
    fn dial(&mut self, key: usize, addr: SocketAddr) -> Dial {
        let outgoing = match self.encryption {
            Policy::Off => Outgoing::Plain,
            Policy::Prefer if self.plain_peers.contains(&addr) => Outgoing::Plain,
            p => Outgoing::Encrypt {
                methods: p.methods(),
                fallback: p == Policy::Prefer,
            },
        };
        let owner = Owner::Peer {
            torrent: self.torrent_id,
            key,
        };
        if !self.paths.tcp_only(&addr) && self.utp.can_dial(&addr) {
            let race = self.now + self.paths.race_delay(&addr);
            let link = self
                .utp
                .dial(self.all_links, addr, owner, outgoing, self.now, race);
            self.links.insert(key, link);
            return Dial::Started;
        }
        let Ok(mut stream) = crate::net::connect_peer(addr, self.opts.bind).inspect_err(|e| {
            log::debug!("connect to {addr}: {e}");
        }) else {
            return Dial::Failed;
        };
        let entry = self.all_links.vacant_entry();
        let token = Token(self.peer_base + entry.key());
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::debug!("connect to {addr}: {e}");
            return Dial::Failed;
        }
        let link = entry.key();
        entry.insert(Link {
            transport: Transport::Tcp(stream),
            connected: false,
            addr,
            owner,
            decrypt: None,
            outgoing,
            race: super::link::Race::None,
        });
        self.links.insert(key, link);
        Dial::Started
    }

    fn close(&mut self, key: usize, reason: &CloseReason) {
        if let Some(link) = self.links.remove(&key) {
            if let Some(c) = self.all_links.try_remove(link) {
                log::debug!("dropping {}: {reason}", c.addr);
                if let Outgoing::Handshake {
                    fallback: true,
                    mse,
                } = &c.outgoing
                {
                    // Its time ran out in the MSE handshake with no key from it:
                    // plaintext next time.
                    if !mse.heard() {
                        remember(self.plain_peers, c.addr);
                    }
                }
                self.utp.let_go(c, self.poll.registry(), self.now);
            }
        }
        if matches!(reason, CloseReason::Banned | CloseReason::BadMetadata) {
            log::warn!("{reason}");
        }
    }

    fn store(&mut self, index: u32, data: Vec<u8>) -> Result<Stored, DownloadError> {
        let (outcome, data) = match self.storage()?.submit_piece(index, data)? {
            Submitted::Queued => return Ok(Stored::Later),
            Submitted::Done(outcome, data) => (outcome, data),
        };
        let ok = match outcome {
            WriteOutcome::Written | WriteOutcome::AlreadyHave => true,
            WriteOutcome::HashMismatch => {
                log::warn!("piece {index} failed its hash check: fetching it again");
                false
            }
            WriteOutcome::Dropped => {
                log::debug!("piece {index} is in files no longer wanted: dropped");
                false
            }
        };
        Ok(Stored::Now(ok, data))
    }

    fn read(&mut self, block: BlockRef, into: &mut Vec<u8>) -> Result<(), DownloadError> {
        self.storage()?
            .read_block(block.index, block.begin, block.len, into)?;
        Ok(())
    }

    fn want_peers(&mut self) {
        self.trackers.want_more_peers(self.now);
    }

    fn dht_node(&mut self, addr: SocketAddr) {
        // The host pings it after the pass (the node is the host's); a few at most.
        if self.dht_pings.len() < 64 {
            self.dht_pings.push(addr);
        }
    }

    fn completed(&mut self) -> Result<(), DownloadError> {
        self.completed = true;
        Ok(())
    }

    fn metadata(&mut self, info: Vec<u8>) -> Result<Installed, DownloadError> {
        let meta =
            Arc::new(Metainfo::from_info(&info, self.tiers).map_err(DownloadError::Metadata)?);
        let path = saved_metainfo_path(&self.opts.output, &meta.info_hash.0);
        std::fs::create_dir_all(&self.opts.output)
            .map_err(|e| DownloadError::SaveMetadata(path.clone(), e))?;
        // On the disk thread: a crash before it lands costs a fetch of the metadata again.
        self.disk.save(path.clone(), meta.to_torrent_file());
        log::info!(
            "metadata: {} ({}, {} pieces), saved in {}",
            crate::util::printable(&meta.name),
            crate::util::human_bytes(meta.total_length),
            meta.piece_count(),
            path.display()
        );
        let storage = open_storage(&meta, self.opts, self.disk, &mut |_, _| {})?;
        let have = storage.have().clone();
        *self.storage = Some(storage);
        *self.meta = Some(meta.clone());
        let tiers = self.opts.files.piece_tiers(&meta);
        Ok((meta, have, tiers))
    }

    fn write(&mut self, key: usize, bytes: &[u8]) -> Option<usize> {
        let link = *self.links.get(&key)?;
        let conn = self.all_links.get_mut(link)?;
        if !conn.connected {
            return Some(0);
        }
        match conn.write(bytes) {
            Ok(n) => Some(n),
            Err(why) => {
                self.links.remove(&key);
                let c = self.all_links.remove(link);
                log::debug!("connection to {} ended: {why}", c.addr);
                self.utp.let_go(c, self.poll.registry(), self.now);
                None
            }
        }
    }
}

/// Opens a torrent's storage, checking the data on disk when the sidecar cannot be trusted.
pub(super) fn open_storage(
    meta: &Arc<Metainfo>,
    opts: &DownloadOptions,
    disk: &Disk,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Storage, DownloadError> {
    let stored = meta.files.iter().filter(|f| !f.padding).count();
    opts.files.check(stored).map_err(DownloadError::Selection)?;
    let wanted = opts.files.wanted_files(meta);
    let mut storage = Storage::open_selected(meta.clone(), &opts.output, opts.storage, &wanted)?;
    if let Resume::NeedsRecheck(why) = storage.resume().clone() {
        log::info!("checking the data on disk: {why}");
        if opts.check_in_loop {
            // The host hashes it a slice per pass (Phase::Checking).
            storage.begin_recheck();
        } else {
            let found = storage.recheck(progress)?;
            log::info!("{found} of {} pieces are already there", meta.piece_count());
        }
    }
    // Writes and records go to the disk thread from now on (a check above, done before
    // the loop runs, recorded inline).
    storage.use_disk(disk.clone());
    Ok(storage)
}

impl Torrent {
    /// The parts the session's actions work on, and the session.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn io<'a>(
        &'a mut self,
        id: usize,
        poll: &'a Poll,
        all_links: &'a mut Slab<Link>,
        utp: &'a mut UtpNet,
        disk: &'a Disk,
        peer_base: usize,
        now: Instant,
    ) -> (Io<'a>, &'a mut Session) {
        (
            Io {
                poll,
                all_links,
                torrent_id: id,
                links: &mut self.links,
                storage: &mut self.storage,
                meta: &mut self.meta,
                tiers: &self.tiers,
                trackers: &mut self.trackers,
                disk,
                opts: &self.opts,
                now,
                peer_base,
                completed: false,
                dht_pings: &mut self.dht_pings,
                encryption: self.encryption,
                plain_peers: &mut self.plain_peers,
                paths: &self.paths,
                utp,
            },
            &mut self.session,
        )
    }

    /// Carries out the session's actions, and with `writes` its writes too, round after
    /// round until none is left (64 rounds at most); then what they changed: the metadata
    /// installed, completion. Pieces the disk thread wrote since the last call are
    /// reported to the session first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn drain(
        &mut self,
        id: usize,
        poll: &Poll,
        all_links: &mut Slab<Link>,
        utp: &mut UtpNet,
        disk: &Disk,
        peer_base: usize,
        buf: &mut Vec<u8>,
        now: Instant,
        writes: bool,
    ) -> Result<(), DownloadError> {
        self.take_written(now)?;
        let had_meta = self.meta.is_some();
        let (mut io, session) = self.io(id, poll, all_links, utp, disk, peer_base, now);
        let result = if writes {
            driver::drain(session, &mut io, buf, now, 64).map(|_| ())
        } else {
            driver::run_actions(session, &mut io, buf, now).map(|_| ())
        };
        let completed = io.completed;
        if !had_meta && self.meta.is_some() {
            self.on_metadata();
        }
        result?;
        if completed {
            self.on_completed(now)?;
        }
        Ok(())
    }

    /// Pieces the disk thread wrote: verified and readable now, their buffers back to the
    /// session.
    fn take_written(&mut self, now: Instant) -> Result<(), DownloadError> {
        let Some(s) = &mut self.storage else {
            return Ok(());
        };
        for (index, buf) in s.take_written()? {
            // Recycled first: the result may start a new piece in this buffer.
            self.session.recycle(buf);
            self.session.piece_result(index, true, &[], now);
        }
        Ok(())
    }

    fn on_metadata(&mut self) {
        let meta = self.meta.clone().expect("just set");
        self.name = meta.name.clone();
        if meta.private {
            // BEP 27: no DHT for a private torrent, not even the port message.
            self.session.set_dht_port(None);
        }
        let config_min_share = (self.opts.min_share.max(0.0) * meta.total_length as f64) as u64;
        self.session.set_min_share(config_min_share);
        if let Some(s) = &self.storage {
            self.session.set_uploaded_before(s.uploaded());
        }
        self.start_left = Some(self.session.left(meta.total_length));
    }

    pub(super) fn on_completed(&mut self, now: Instant) -> Result<(), DownloadError> {
        let Some(meta) = &self.meta else {
            return Ok(());
        };
        let name = crate::util::printable(&meta.name);
        if self.session.is_complete() {
            log::info!(
                "{name}: download complete, all {} pieces verified",
                meta.piece_count()
            );
            self.trackers.completed(now);
        } else {
            log::info!(
                "{name}: the wanted files are complete ({} of {} pieces verified)",
                self.session.have().count(),
                meta.piece_count()
            );
        }
        if let Some(s) = &mut self.storage {
            s.start_flush()?;
        }
        self.completed_at = Some(now);
        if self.phase == Phase::Downloading {
            if self.opts.seed || self.opts.seed_ratio.is_some() {
                log::info!("seeding");
                self.phase = Phase::Seeding;
                self.session.set_seeding(true);
            } else {
                self.phase = Phase::Completing;
            }
        }
        Ok(())
    }

    /// Hashes the next slice of a check of the data on disk; once it is over, the session
    /// starts from the pieces found (no peer has been let in yet) and the torrent
    /// downloads, or seeds what is wanted.
    pub(super) fn check_some(&mut self, now: Instant) -> Result<(), DownloadError> {
        let (Some(storage), Some(meta)) = (&mut self.storage, &self.meta) else {
            return Err(DownloadError::NoMetadata);
        };
        let Some(found) = storage.recheck_some(CHECK_SLICE)? else {
            return Ok(());
        };
        log::info!(
            "{}: {found} of {} pieces are already there",
            crate::util::printable(&meta.name),
            meta.piece_count()
        );
        self.session.restart_from(storage.have().clone(), now);
        self.start_left = Some(self.session.left(meta.total_length));
        if self.session.is_done() {
            self.phase = Phase::Seeding;
            self.session.set_seeding(true);
        } else {
            self.phase = Phase::Downloading;
        }
        Ok(())
    }

    /// Measures its rates over the time since the last measure (from the byte counts, not
    /// the smoothed peer rates, so a second's use is what it was).
    pub(super) fn measure_rates(&mut self, now: Instant) {
        let st = self.session.stats(now);
        if let Some((down, up, at)) = self.measured {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 {
                if self.recent.len() == RATE_TICKS {
                    self.recent.remove(0);
                }
                self.recent.push((
                    st.downloaded.saturating_sub(down) as f64 / dt,
                    st.uploaded.saturating_sub(up) as f64 / dt,
                ));
            }
        }
        self.measured = Some((st.downloaded, st.uploaded, now));
    }

    /// Its need for sharing the global limits, down and up: the peak of the last ticks, so a
    /// tick that ran long or a peer that paused does not make it look as if it needed less.
    pub(super) fn peak_rates(&self) -> (f64, f64) {
        self.recent
            .iter()
            .fold((0.0, 0.0), |m, r| (r.0.max(m.0), r.1.max(m.1)))
    }

    /// Stops it: a running torrent flushes and announces `stopped` first; one still checking
    /// its data (no tracker has heard of it, nothing is verified yet) finishes at once.
    pub(super) fn stop(&mut self, poll: &Poll, port: u16, now: Instant) {
        match self.phase {
            Phase::Checking => self.phase = Phase::Finished,
            Phase::Downloading | Phase::Completing | Phase::Seeding => {
                self.begin_stop(poll, port, now);
            }
            Phase::Stopping | Phase::Finished => {}
        }
    }

    /// Starts a flush, announces `stopped`, and waits for that (bounded) before finishing.
    pub(super) fn begin_stop(&mut self, poll: &Poll, port: u16, now: Instant) {
        if let Some(s) = &mut self.storage {
            if let Err(e) = s.start_flush() {
                log::error!("{e}");
            }
        }
        let params = self.announce_params(AnnounceEvent::Stopped, port);
        self.trackers.stop(poll.registry(), now, params);
        self.phase = Phase::Stopping;
    }

    /// Moves the phase on: exit after completing, stop at the seed ratio, finish once
    /// `stopped` went out and every verified piece is recorded durably. Returns whether the
    /// torrent's links are to be closed: it finished, or it waits for its last record (no
    /// more transfers meanwhile, so that record holds everything).
    pub(super) fn advance_phase(
        &mut self,
        poll: &Poll,
        port: u16,
        now: Instant,
    ) -> Result<bool, DownloadError> {
        match self.phase {
            Phase::Completing => {
                let waited = self.completed_at.is_some_and(|t| now >= t + COMPLETED_WAIT);
                if waited || self.trackers.idle(now) {
                    self.begin_stop(poll, port, now);
                }
            }
            Phase::Seeding => {
                let total = self.meta.as_ref().map_or(0, |m| m.total_length) as f64;
                let target = self.opts.seed_ratio.map(|r| r * total);
                let up = self.storage.as_ref().map_or(0, |s| s.uploaded()) as f64;
                if target.is_some_and(|t| up >= t) {
                    log::info!("seed ratio reached");
                    self.begin_stop(poll, port, now);
                }
            }
            Phase::Stopping if self.trackers.stop_finished(now) => {
                if let Some(s) = &mut self.storage {
                    s.start_flush()?;
                    if !s.is_durable() {
                        return Ok(true);
                    }
                }
                self.phase = Phase::Finished;
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    /// Upload counted by the session, added to storage's total (kept in the sidecar);
    /// storage flushed when due.
    pub(super) fn sync_storage(&mut self, now: Instant) -> Result<(), DownloadError> {
        let up = self.session.uploaded();
        if let Some(s) = &mut self.storage {
            s.add_uploaded(up - self.synced_up);
            self.synced_up = up;
            if s.wants_flush(now) {
                s.start_flush()?;
            }
        }
        Ok(())
    }

    pub(super) fn announce_params(&self, event: AnnounceEvent, port: u16) -> AnnounceParams {
        let (left, downloaded) = match &self.meta {
            Some(m) => {
                let left = self.session.left(m.total_length);
                (left, self.start_left.unwrap_or(left).saturating_sub(left))
            }
            None => (LEFT_UNKNOWN, 0),
        };
        AnnounceParams {
            info_hash: crate::metainfo::InfoHash(self.info_hash),
            peer_id: self.session.peer_id(),
            port,
            uploaded: self.session.uploaded(),
            downloaded,
            left,
            event,
            numwant: 50,
            key: self.key,
            tracker_id: None,
            ipv6: self.own_ipv6,
        }
    }

    /// Runs the trackers; the peers they gave join the candidates.
    pub(super) fn run_trackers(&mut self, poll: &Poll, port: u16, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        let params = self.announce_params(AnnounceEvent::None, port);
        let outcomes = self
            .trackers
            .poll(poll.registry(), now, |event| AnnounceParams {
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

    /// A snapshot for the status line.
    pub(super) fn status(&self, port: u16) -> Status {
        let now = Instant::now();
        let stats = self.session.stats(now);
        let total = self.meta.as_ref().map_or(0, |m| m.total_length);
        let have_bytes = total - self.session.left(total);
        let (wanted_bytes, left_bytes) = self.session.wanted_bytes();
        let metadata = self.session.metadata_status();
        let waiting = if self.phase != Phase::Downloading {
            None
        } else if let Some(m) = metadata {
            Some(if m.pieces.1 > 0 {
                format!(
                    "fetching the metadata: {}/{} pieces, {} peers have it",
                    m.pieces.0, m.pieces.1, m.offering
                )
            } else if stats.connected > 0 {
                format!(
                    "waiting for the metadata: none of {} peers offers it yet",
                    stats.connected
                )
            } else if self.trackers.has_trackers() {
                "waiting for peers with the metadata from the trackers".to_string()
            } else {
                "waiting for peers with the metadata (give some with --peer)".to_string()
            })
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
            name: self.name.clone(),
            info_hash: self.info_hash,
            phase: self.phase,
            stats,
            total,
            have_bytes,
            checking: self.storage.as_ref().and_then(|s| s.recheck_progress()),
            wanted_bytes,
            left_bytes,
            uploaded: self.storage.as_ref().map_or(0, |s| s.uploaded()),
            waiting,
            tracker_error: ts.all_failing.then(|| ts.last_error.clone()).flatten(),
            port,
            metadata,
            error: self.error.as_ref().map(|e| e.to_string()),
        }
    }

    /// The link of peer `key` ended: the session forgets the peer.
    pub(super) fn link_closed(&mut self, key: usize, now: Instant) {
        self.links.remove(&key);
        self.session.closed(key, now);
    }
}
