//! The daemon's torrents: each one's record (what survives a restart), whether it runs in
//! the host, and what it looked like when it last ran; and the RPC calls on them.

use super::DaemonOptions;
use super::fields::{self, View, status};
use super::state::{self, Record};
use crate::bitfield::Bitfield;
use crate::engine::{DownloadOptions, Phase, Status};
use crate::geometry::Geometry;
use crate::host::{AddError, Host, Source, TorrentId};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::rpc::call::{Action, Add, Call, IdRef, Ids, QueueMove};
use crate::selection::{Priority, Selection};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A torrent counts as recently active for this long after its last activity.
const RECENT: Duration = Duration::from_secs(60);

/// One torrent.
pub(super) struct Item {
    pub(super) rec: Record,
    /// Its id in the host while it runs.
    running: Option<TorrentId>,
    /// It is to run (started, or waiting for the host to let go of its last run).
    want_run: bool,
    /// Check the data on disk at the next start.
    verify: bool,
    /// What it looked like when it last ran.
    last: Option<Status>,
    /// Its verified pieces when it last ran.
    last_have: Option<Bitfield>,
    meta: Option<Arc<Metainfo>>,
    error: Option<String>,
    started: Option<u64>,
    active: Instant,
    /// Last upload (or the start): for the idle seed limit.
    last_upload: Instant,
    /// This run's bytes (down, up) of its session already counted in the totals.
    counted: (u64, u64),
    /// Stopped by a seed limit (`isFinished`).
    finished: bool,
}

impl Item {
    /// What its session moved since it was last counted, into `run`'s totals (each
    /// session counts from 0, so `counted` restarts with every run).
    fn count(&mut self, run: &mut state::Totals, st: &Status) {
        let (down, up) = (st.stats.downloaded, st.stats.uploaded);
        run.downloaded += down.saturating_sub(self.counted.0);
        run.uploaded += up.saturating_sub(self.counted.1);
        self.counted = (down.max(self.counted.0), up.max(self.counted.1));
    }

    /// Ends its run in the host, counted and its look kept; whether it ran.
    fn halt(&mut self, run: &mut state::Totals, host: &mut Host) -> bool {
        let Some(id) = self.running.take() else {
            return false;
        };
        self.last = host.status(id);
        self.last_have = host.session(id).map(|s| s.have().clone());
        if let Some(st) = self.last.take() {
            self.count(run, &st);
            self.last = Some(st);
        }
        host.remove(id);
        true
    }
}

/// A torrent's stored files (as the RPC counts them).
fn stored_files(m: &Metainfo) -> usize {
    m.files.iter().filter(|f| !f.padding).count()
}

/// `files` changed by `choice` for a torrent of `count` files. A priority leaves an unwanted
/// file unwanted; wanting a file that was not gives it normal priority.
fn choose_files(
    files: Selection,
    choice: &[(&'static str, Vec<u64>)],
    count: usize,
) -> Result<Selection, String> {
    let mut list = files.list(count);
    for (key, indices) in choice {
        let picked: Vec<usize> = if indices.is_empty() {
            (0..count).collect()
        } else {
            // An index past a 32-bit usize is out of range, not cut to one that is in it.
            indices
                .iter()
                .map(|&i| usize::try_from(i).unwrap_or(usize::MAX))
                .collect()
        };
        if picked.iter().any(|&i| i >= count) {
            return Err("file index out of range".into());
        }
        for i in picked {
            let p = &mut list[i];
            *p = match (*key, *p) {
                ("files-unwanted", _) => Priority::Skip,
                ("files-wanted", Priority::Skip) => Priority::Normal,
                ("files-wanted", p) | (_, p @ Priority::Skip) => p,
                ("priority-high", _) => Priority::High,
                ("priority-low", _) => Priority::Low,
                _ => Priority::Normal,
            };
        }
    }
    Ok(Selection::from_list(list))
}

/// Every torrent, in queue order.
pub(super) struct Items {
    list: Vec<Item>,
    next_id: u64,
    state: PathBuf,
    /// Ids removed, and when (for `recently-active`).
    removed: Vec<(u64, Instant)>,
    settings: state::Settings,
    /// When the daemon started (`secondsActive`).
    since: Instant,
    /// The runs before this one, and this one's so far.
    before: state::Totals,
    run: state::Totals,
    saved_totals: Instant,
    /// The daemon is stopping: nothing starts again.
    pub(super) stopping: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Items {
    /// The torrents the state folder records.
    pub(super) fn load(state: &Path) -> Self {
        let now = Instant::now();
        let list: Vec<Item> = state::load_all(state)
            .into_iter()
            .map(|rec| {
                let meta = if rec.magnet.is_none() {
                    std::fs::read(state::metainfo_path(state, &rec.info_hash))
                        .ok()
                        .and_then(|b| Metainfo::from_bytes(&b).ok())
                        .map(Arc::new)
                } else {
                    None
                };
                let error = (rec.magnet.is_none() && meta.is_none())
                    .then(|| "its .torrent is missing from the state folder".to_string());
                Item {
                    want_run: !rec.paused && error.is_none(),
                    rec,
                    running: None,
                    verify: false,
                    last: None,
                    last_have: None,
                    meta,
                    error,
                    started: None,
                    active: now,
                    last_upload: now,
                    counted: (0, 0),
                    finished: false,
                }
            })
            .collect();
        let next_id = list.iter().map(|i| i.rec.id).max().unwrap_or(0) + 1;
        Self {
            list,
            next_id,
            state: state.to_path_buf(),
            removed: Vec::new(),
            settings: state::Settings::load(state),
            since: now,
            before: state::Totals::load(state),
            run: state::Totals {
                sessions: 1,
                ..state::Totals::default()
            },
            saved_totals: now,
            stopping: false,
        }
    }

    /// How many torrents.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// Starts every torrent that is to run.
    pub(super) fn start_all(&mut self, host: &mut Host, opts: &DaemonOptions) {
        let (down, up) = self.settings.speed.bytes();
        host.set_global_rate_limits(down, up);
        for i in 0..self.list.len() {
            self.try_start(i, host, opts);
        }
    }

    fn try_start(&mut self, i: usize, host: &mut Host, opts: &DaemonOptions) {
        let item = &mut self.list[i];
        if !item.want_run || item.running.is_some() || self.stopping {
            return;
        }
        let source = match (&item.meta, &item.rec.magnet) {
            (Some(m), _) => Source::Torrent(m.clone()),
            (None, Some(link)) => match Magnet::parse(link) {
                Ok(m) => Source::Magnet(m),
                Err(e) => {
                    item.error = Some(e.to_string());
                    item.want_run = false;
                    return;
                }
            },
            (None, None) => return,
        };
        let mut dl = DownloadOptions {
            output: item.rec.download_dir.clone(),
            port: host.port(),
            bind: opts.bind,
            seed: true,
            min_share: 0.0,
            ..DownloadOptions::default()
        };
        dl.storage.force_recheck = item.verify;
        dl.files = item.rec.files.clone();
        // A check of the data on disk runs beside the other torrents and the RPC.
        dl.check_in_loop = true;
        (dl.session.down_limit, dl.session.up_limit) = item.rec.speed.bytes();
        match host.add(source, dl, &mut |_, _| {}) {
            Ok(id) => {
                item.running = Some(id);
                item.verify = false;
                item.error = None;
                item.started = Some(unix_now());
                item.active = Instant::now();
                item.last_upload = item.active;
                item.counted = (0, 0);
                item.finished = false;
            }
            // The host still stops its last run: try again next pass.
            Err(AddError::Duplicate(_)) => {}
            Err(AddError::Download(e)) => {
                log::warn!("{}: {e}", crate::util::printable(&item.rec.name));
                item.error = Some(e.to_string());
                item.want_run = false;
            }
        }
    }

    /// One pass: statuses read, completions and names recorded, failures taken, torrents
    /// waiting to start started.
    pub(super) fn tend(&mut self, host: &mut Host, opts: &DaemonOptions, now: Instant) {
        for i in 0..self.list.len() {
            let item = &mut self.list[i];
            if let Some(id) = item.running {
                let Some(st) = host.status(id) else {
                    item.running = None;
                    continue;
                };
                if st.stats.down_rate >= 1.0 || st.stats.up_rate >= 1.0 {
                    item.active = now;
                }
                item.count(&mut self.run, &st);
                if st.stats.up_rate >= 1.0 || st.phase != Phase::Seeding {
                    item.last_upload = now;
                }
                let mut dirty = false;
                if item.meta.is_none() {
                    if let Some(m) = host.metainfo(id) {
                        item.rec.name = m.name.clone();
                        item.meta = Some(m);
                        dirty = true;
                    }
                }
                if st.total > 0 && st.left_bytes == 0 && item.rec.done.is_none() {
                    item.rec.done = Some(unix_now());
                    dirty = true;
                }
                if st.phase == Phase::Finished {
                    if let Some(e) = host.take_error(id) {
                        item.error = Some(e.to_string());
                        item.want_run = false;
                    }
                    host.remove(id);
                    item.running = None;
                }
                // The seed limits: uploaded / size, or minutes without uploading.
                let (ratio, idle) = item.rec.seed.effective(&self.settings.seed);
                let reached = st.phase == Phase::Seeding
                    && st.total > 0
                    && (ratio.is_some_and(|r| st.uploaded as f64 >= r * st.total as f64)
                        || idle.is_some_and(|m| {
                            now.duration_since(item.last_upload) >= Duration::from_secs(m * 60)
                        }));
                if reached {
                    if let Some(id) = item.running.take() {
                        log::info!(
                            "{}: seed limit reached: stopped",
                            crate::util::printable(&item.rec.name)
                        );
                        host.remove(id);
                    }
                    item.want_run = false;
                    item.finished = true;
                    item.rec.paused = true;
                    dirty = true;
                }
                item.last = Some(st);
                if dirty {
                    let _ = item.rec.save(&self.state);
                }
            }
            self.try_start(i, host, opts);
        }
        self.removed
            .retain(|(_, at)| now.duration_since(*at) < RECENT);
        if now.duration_since(self.saved_totals) >= Duration::from_secs(60) {
            self.save_totals(now, Some(host.disk()));
        }
    }

    /// Keeps the totals of all runs, this one's so far included: on `disk`'s thread when
    /// given (the minute's save), else here (at exit).
    pub(super) fn save_totals(&mut self, now: Instant, disk: Option<&crate::storage::Disk>) {
        self.saved_totals = now;
        self.run.seconds = self.since.elapsed().as_secs();
        if let Err(e) = self.before.plus(self.run).save(&self.state, disk) {
            log::warn!("saving the statistics: {e}");
        }
    }

    fn find(&self, r: &IdRef) -> Option<usize> {
        self.list.iter().position(|i| match r {
            IdRef::Id(id) => i.rec.id == *id,
            IdRef::Hash(h) => i.rec.info_hash == *h,
        })
    }

    /// The indices `ids` names (unknown ones are skipped, as Transmission does).
    fn select(&self, ids: &Ids, now: Instant) -> Vec<usize> {
        match ids {
            Ids::All => (0..self.list.len()).collect(),
            Ids::RecentlyActive => (0..self.list.len())
                .filter(|&i| now.duration_since(self.list[i].active) < RECENT)
                .collect(),
            Ids::These(list) => {
                let mut v: Vec<usize> = list.iter().filter_map(|r| self.find(r)).collect();
                v.dedup();
                v
            }
        }
    }

    /// What torrent `i` looks like to the RPC; `per_file`: with each file's verified bytes.
    fn view(&self, i: usize, host: &Host, per_file: bool) -> View {
        let item = &self.list[i];
        let st = item
            .running
            .and_then(|id| host.status(id))
            .or_else(|| item.last.clone());
        let stats = st.as_ref().map(|s| s.stats);
        let running = item.running.is_some();
        let live = stats.filter(|_| running);
        let code = match (running, st.as_ref().map(|s| s.phase)) {
            (false, _) => status::STOPPED,
            (true, Some(Phase::Checking)) => status::CHECKING,
            // Seeding what it has, but files wanted later are still coming.
            (true, Some(Phase::Seeding)) if st.as_ref().is_some_and(|s| s.left_bytes > 0) => {
                status::DOWNLOADING
            }
            (true, Some(Phase::Seeding | Phase::Completing)) => status::SEEDING,
            (true, Some(Phase::Stopping | Phase::Finished)) => status::STOPPED,
            (true, _) => status::DOWNLOADING,
        };
        let magnet = match &item.rec.magnet {
            Some(l) => l.clone(),
            None => format!(
                "magnet:?xt=urn:btih:{}",
                crate::util::hex(&item.rec.info_hash)
            ),
        };
        View {
            id: item.rec.id,
            name: item.rec.name.clone(),
            info_hash: item.rec.info_hash,
            meta: item.meta.clone(),
            status: code,
            have: st.as_ref().map_or(0, |s| s.have_bytes),
            wanted: st.as_ref().map_or(0, |s| s.wanted_bytes),
            recheck: st
                .as_ref()
                .and_then(|s| s.checking)
                .filter(|_| running)
                .map_or(0.0, |(done, of)| f64::from(done) / f64::from(of.max(1))),
            left: st.as_ref().map_or(0, |s| s.left_bytes),
            files: item.rec.files.clone(),
            file_bytes: match (&item.meta, item.running.and_then(|id| host.session(id))) {
                _ if !per_file => Vec::new(),
                (Some(m), Some(s)) => Geometry::new(m).file_bytes(m.files.len(), s.have()),
                (Some(m), None) => item
                    .last_have
                    .as_ref()
                    .map(|h| Geometry::new(m).file_bytes(m.files.len(), h))
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            downloaded: stats.as_ref().map_or(0, |s| s.downloaded),
            uploaded: st.as_ref().map_or(0, |s| s.uploaded),
            corrupt: stats.as_ref().map_or(0, |s| s.wasted),
            // Rates and peers only while it runs; a stopped one keeps its byte counts.
            down_rate: live.map_or(0.0, |s| s.down_rate),
            up_rate: live.map_or(0.0, |s| s.up_rate),
            peers: live.map_or(0, |s| s.connected),
            sending: live.map_or(0, |s| s.sending_to_us),
            getting: live.map_or(0, |s| s.getting_from_us),
            error: item
                .error
                .clone()
                .or_else(|| st.as_ref().and_then(|s| s.error.clone())),
            download_dir: item.rec.download_dir.to_string_lossy().into_owned(),
            added: item.rec.added,
            done: item.rec.done,
            started: item.started,
            active: item
                .rec
                .added
                .max(unix_now().saturating_sub(item.active.elapsed().as_secs())),
            queue: i as u64,
            speed: item.rec.speed,
            seed: item.rec.seed,
            finished: item.finished,
            magnet,
            metadata_progress: st.as_ref().and_then(|s| s.metadata.as_ref()).map(|m| {
                if m.pieces.1 == 0 {
                    0.0
                } else {
                    m.pieces.0 as f64 / m.pieces.1 as f64
                }
            }),
        }
    }

    /// Carries out a call on the torrents.
    pub(super) fn call(
        &mut self,
        call: Call,
        host: &mut Host,
        opts: &DaemonOptions,
        now: Instant,
    ) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        match call {
            Call::TorrentGet { ids, fields, table } => {
                // Each file's verified bytes cost a pass over the pieces: only when asked.
                let per_file = fields.iter().any(|f| f == "files" || f == "fileStats");
                let views: Vec<View> = self
                    .select(&ids, now)
                    .into_iter()
                    .map(|i| self.view(i, host, per_file))
                    .collect();
                out.insert("torrents".into(), fields::torrents(&views, &fields, table));
                if ids == Ids::RecentlyActive {
                    let gone: Vec<Value> =
                        self.removed.iter().map(|(id, _)| (*id).into()).collect();
                    out.insert("removed".into(), Value::Array(gone));
                }
            }
            Call::TorrentAdd(add) => return self.add(add, host, opts, now),
            Call::TorrentAction(action, ids) => {
                for i in self.select(&ids, now) {
                    self.act(i, action, host, now);
                }
                for i in 0..self.list.len() {
                    self.try_start(i, host, opts);
                }
            }
            Call::TorrentRemove { ids, delete } => {
                let mut picked = self.select(&ids, now);
                picked.sort_unstable();
                for i in picked.into_iter().rev() {
                    self.remove(i, delete, host, now);
                }
            }
            Call::Queue(how, ids) => {
                let picked = self.select(&ids, now);
                self.queue_move(how, &picked);
            }
            Call::SessionGet(_) => return Ok(self.session_get(host, opts)),
            Call::SessionStats => return Ok(self.session_stats(host)),
            Call::SessionSet(args) => {
                let known = |k: &str| {
                    SESSION_SET.contains(&k)
                        || state::SESSION_KEYS.contains(&k)
                        || state::SESSION_SEED_KEYS.contains(&k)
                };
                if let Some(k) = args.keys().find(|k| !known(k)) {
                    return Err(format!("session-set: {k} is not supported by btmini yet"));
                }
                let mut next = self.settings.clone();
                next.speed.set(&args, state::SESSION_KEYS)?;
                next.seed.set(&args)?;
                if args.contains_key("start-added-torrents") {
                    next.start_added = crate::rpc::call::flag(&args, "start-added-torrents")?;
                }
                match args.get("download-dir") {
                    None => {}
                    Some(Value::String(d)) => {
                        let dir = PathBuf::from(d);
                        if dir.exists() && !dir.is_dir() {
                            return Err(format!("download-dir {d} is not a folder"));
                        }
                        next.download_dir = Some(dir);
                    }
                    Some(_) => return Err("download-dir is not a string".into()),
                }
                next.save(&self.state)?;
                self.settings = next;
            }
            Call::TorrentSet(ids, args) => {
                let known = |k: &str| {
                    k == "ids"
                        || state::TORRENT_KEYS.contains(&k)
                        || state::TORRENT_SEED_KEYS.contains(&k)
                        || crate::rpc::call::FILE_KEYS.contains(&k)
                };
                if let Some(k) = args.keys().find(|k| !known(k)) {
                    return Err(format!("torrent-set: {k} is not supported by btmini yet"));
                }
                let choice = crate::rpc::call::file_choice(&args)?;
                for i in self.select(&ids, now) {
                    let item = &mut self.list[i];
                    if !choice.is_empty() {
                        let Some(m) = &item.meta else {
                            return Err(
                                "torrent-set: a magnet's files are known only once its metadata is"
                                    .into(),
                            );
                        };
                        let files = choose_files(item.rec.files.clone(), &choice, stored_files(m))?;
                        if files != item.rec.files {
                            if let Some(id) = item.running {
                                host.set_files(id, files.clone())
                                    .map_err(|e| e.to_string())?;
                            }
                            item.rec.files = files;
                            item.rec.save(&self.state)?;
                        }
                    }
                    let mut seed = item.rec.seed;
                    seed.set(&args)?;
                    if seed != item.rec.seed {
                        item.rec.seed = seed;
                        item.rec.save(&self.state)?;
                    }
                    let mut speed = item.rec.speed;
                    speed.set(&args, state::TORRENT_KEYS)?;
                    if speed != item.rec.speed {
                        item.rec.speed = speed;
                        item.rec.save(&self.state)?;
                        if let Some(id) = item.running {
                            let (down, up) = speed.bytes();
                            host.set_rate_limits(id, down, up);
                        }
                    }
                }
            }
            Call::FreeSpace(path) => {
                let free = crate::storage::free_space(Path::new(&path))
                    .map_err(|e| format!("free-space {path}: {e}"))?;
                out.insert("path".into(), path.into());
                out.insert("size-bytes".into(), free.into());
            }
            Call::PortTest => {
                // Nothing outside can be asked here; say so rather than guess.
                return Err("port-test: btmini cannot test its port from outside".into());
            }
            Call::SessionClose => {}
        }
        Ok(out)
    }

    fn act(&mut self, i: usize, action: Action, host: &mut Host, now: Instant) {
        let (item, run) = (&mut self.list[i], &mut self.run);
        item.active = now;
        match action {
            Action::Start => {
                item.want_run = true;
                item.error = None;
                item.finished = false;
                if item.rec.paused {
                    item.rec.paused = false;
                    let _ = item.rec.save(&self.state);
                }
            }
            Action::Stop => {
                item.want_run = false;
                item.halt(run, host);
                if !item.rec.paused {
                    item.rec.paused = true;
                    let _ = item.rec.save(&self.state);
                }
            }
            Action::Verify => {
                // Stop, then start again with every piece hashed.
                item.verify = true;
                if item.halt(run, host) {
                    item.want_run = true;
                }
            }
            Action::Reannounce => {
                if let Some(id) = item.running {
                    host.reannounce(id);
                }
            }
        }
    }

    fn remove(&mut self, i: usize, delete: bool, host: &mut Host, now: Instant) {
        let mut item = self.list.remove(i);
        item.halt(&mut self.run, host);
        state::forget(&self.state, &item.rec.info_hash);
        if delete {
            if let Some(m) = &item.meta {
                let top = item.rec.download_dir.join(&m.name);
                let r = if m.multi_file {
                    std::fs::remove_dir_all(&top)
                } else {
                    std::fs::remove_file(&top)
                };
                if let Err(e) = r {
                    log::warn!("removing {}: {e}", top.display());
                }
                let _ =
                    std::fs::remove_file(crate::storage::sidecar_path(&item.rec.download_dir, m));
                let _ = std::fs::remove_file(crate::storage::parts_path(&item.rec.download_dir, m));
            }
            let saved = item.rec.download_dir.join(format!(
                ".btmini-{}.torrent",
                crate::util::hex(&item.rec.info_hash)
            ));
            let _ = std::fs::remove_file(saved);
        }
        self.removed.push((item.rec.id, now));
        self.renumber_queue();
    }

    fn queue_move(&mut self, how: QueueMove, picked: &[usize]) {
        let ids: Vec<u64> = picked.iter().map(|&i| self.list[i].rec.id).collect();
        for id in ids {
            let Some(i) = self.list.iter().position(|x| x.rec.id == id) else {
                continue;
            };
            let item = self.list.remove(i);
            let to = match how {
                QueueMove::Top => 0,
                QueueMove::Up => i.saturating_sub(1),
                QueueMove::Down => (i + 1).min(self.list.len()),
                QueueMove::Bottom => self.list.len(),
            };
            self.list.insert(to, item);
        }
        self.renumber_queue();
    }

    fn renumber_queue(&mut self) {
        for (q, item) in self.list.iter_mut().enumerate() {
            if item.rec.queue != q as u64 {
                item.rec.queue = q as u64;
                let _ = item.rec.save(&self.state);
            }
        }
    }

    fn add(
        &mut self,
        add: Add,
        host: &mut Host,
        opts: &DaemonOptions,
        now: Instant,
    ) -> Result<Map<String, Value>, String> {
        // What it is: a .torrent's bytes, a magnet, or a path to a .torrent.
        let (meta, magnet) = match (&add.metainfo, &add.filename) {
            (Some(bytes), _) => (Some(torrent_of(bytes)?), None),
            (None, Some(f)) if f.starts_with("magnet:") => {
                let m = Magnet::parse(f).map_err(|e| format!("invalid magnet link: {e}"))?;
                (None, Some(m))
            }
            (None, Some(f)) if f.contains("://") => {
                return Err(format!("btmini does not fetch torrents from URLs: {f}"));
            }
            (None, Some(f)) => {
                let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                (Some(torrent_of(&bytes)?), None)
            }
            (None, None) => return Err("no filename or metainfo specified".into()),
        };
        let (info_hash, name) = match (&meta, &magnet) {
            (Some((m, _)), _) => (m.info_hash.0, m.name.clone()),
            (None, Some(m)) => (m.info_hash, m.name.clone().unwrap_or_else(|| m.hex())),
            (None, None) => unreachable!("one of the two"),
        };
        let short = |id: u64, name: &str| {
            let mut t = Map::new();
            t.insert("id".into(), id.into());
            t.insert("name".into(), name.into());
            t.insert("hashString".into(), crate::util::hex(&info_hash).into());
            Value::Object(t)
        };
        if let Some(i) = self.list.iter().position(|x| x.rec.info_hash == info_hash) {
            let it = &self.list[i];
            let mut out = Map::new();
            out.insert("torrent-duplicate".into(), short(it.rec.id, &it.rec.name));
            return Ok(out);
        }
        let dir = match &add.download_dir {
            Some(d) => PathBuf::from(d),
            None => self.download_dir(opts),
        };
        let paused = add.paused || !self.settings.start_added;
        if dir.exists() && !dir.is_dir() {
            return Err(format!("download-dir {} is not a folder", dir.display()));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("download-dir {}: {e}", dir.display()))?;
        let rec = Record {
            id: self.next_id,
            info_hash,
            name: name.clone(),
            magnet: magnet.as_ref().map(Magnet::to_link),
            download_dir: dir,
            paused,
            added: unix_now(),
            done: None,
            queue: self.list.len() as u64,
            speed: state::Limits::default(),
            seed: state::SeedLimits::default(),
            files: match &meta {
                Some((m, _)) => choose_files(Selection::all(), &add.files, stored_files(m))?,
                // A magnet's files are not known yet: the choice is not kept.
                None => Selection::all(),
            },
        };
        // The metainfo first, then the record: a record on disk always has what it needs.
        if let Some((_, bytes)) = &meta {
            let path = state::metainfo_path(&self.state, &info_hash);
            std::fs::create_dir_all(path.parent().expect("in a folder"))
                .map_err(|e| format!("saving the torrent: {e}"))?;
            crate::storage::write_atomic(&path, bytes)
                .map_err(|e| format!("saving the torrent: {e}"))?;
        }
        rec.save(&self.state)
            .map_err(|e| format!("saving the torrent: {e}"))?;
        self.next_id += 1;
        self.run.files_added += 1;
        self.list.push(Item {
            want_run: !paused,
            rec,
            running: None,
            verify: false,
            last: None,
            last_have: None,
            meta: meta.map(|(m, _)| Arc::new(m)),
            error: None,
            started: None,
            active: now,
            last_upload: now,
            counted: (0, 0),
            finished: false,
        });
        let i = self.list.len() - 1;
        self.try_start(i, host, opts);
        let mut out = Map::new();
        out.insert("torrent-added".into(), short(self.list[i].rec.id, &name));
        Ok(out)
    }

    /// Where torrents go unless `torrent-add` says otherwise.
    fn download_dir(&self, opts: &DaemonOptions) -> PathBuf {
        self.settings
            .download_dir
            .clone()
            .unwrap_or_else(|| opts.output.clone())
    }

    fn session_get(&self, host: &Host, opts: &DaemonOptions) -> Map<String, Value> {
        let mut m = Map::new();
        let dir = self.download_dir(opts);
        let free = crate::storage::free_space(&dir).unwrap_or(0);
        let dir = dir.to_string_lossy().into_owned();
        let pairs: Vec<(&str, Value)> = vec![
            ("rpc-version", crate::rpc::RPC_VERSION.into()),
            ("rpc-version-minimum", crate::rpc::RPC_VERSION_MIN.into()),
            (
                "version",
                format!("3.00 (btmini {})", env!("CARGO_PKG_VERSION")).into(),
            ),
            ("session-id", Value::Null),
            ("download-dir", dir.into()),
            ("download-dir-free-space", free.into()),
            (
                "config-dir",
                opts.state_dir.to_string_lossy().into_owned().into(),
            ),
            ("peer-port", host.port().into()),
            ("peer-port-random-on-start", false.into()),
            ("port-forwarding-enabled", false.into()),
            ("dht-enabled", opts.dht.is_some().into()),
            ("pex-enabled", true.into()),
            ("lpd-enabled", false.into()),
            ("utp-enabled", opts.utp.into()),
            (
                "encryption",
                // Transmission's names: "tolerated" prefers plaintext, as `off` dials.
                match opts.encryption {
                    crate::mse::Policy::Prefer => "preferred",
                    crate::mse::Policy::Require => "required",
                    crate::mse::Policy::Off => "tolerated",
                }
                .into(),
            ),
            (
                "speed-limit-down-enabled",
                self.settings.speed.down_on.into(),
            ),
            ("speed-limit-up-enabled", self.settings.speed.up_on.into()),
            ("speed-limit-down", self.settings.speed.down.into()),
            ("speed-limit-up", self.settings.speed.up.into()),
            ("alt-speed-enabled", false.into()),
            ("alt-speed-down", 0.into()),
            ("alt-speed-up", 0.into()),
            ("seedRatioLimited", self.settings.seed.ratio_on.into()),
            ("seedRatioLimit", self.settings.seed.ratio.into()),
            ("idle-seeding-limit", self.settings.seed.idle.into()),
            ("alt-speed-time-enabled", false.into()),
            ("alt-speed-time-begin", 0.into()),
            ("alt-speed-time-end", 0.into()),
            ("alt-speed-time-day", 0.into()),
            (
                "peer-limit-global",
                crate::session::Config::default().max_peers.into(),
            ),
            (
                "peer-limit-per-torrent",
                crate::session::Config::default().max_peers.into(),
            ),
            (
                "idle-seeding-limit-enabled",
                self.settings.seed.idle_on.into(),
            ),
            ("download-queue-enabled", false.into()),
            ("seed-queue-enabled", false.into()),
            ("start-added-torrents", self.settings.start_added.into()),
            ("rename-partial-files", false.into()),
            ("incomplete-dir-enabled", false.into()),
            ("blocklist-enabled", false.into()),
            ("blocklist-size", 0.into()),
            ("blocklist-url", "".into()),
            ("units", units()),
        ];
        for (k, v) in pairs {
            if k == "session-id" {
                continue;
            }
            m.insert(k.into(), v);
        }
        m
    }

    fn session_stats(&self, host: &Host) -> Map<String, Value> {
        let views: Vec<View> = (0..self.list.len())
            .map(|i| self.view(i, host, false))
            .collect();
        let active = views.iter().filter(|v| v.status != status::STOPPED).count();
        let mut m = Map::new();
        m.insert("activeTorrentCount".into(), active.into());
        m.insert("pausedTorrentCount".into(), (views.len() - active).into());
        m.insert("torrentCount".into(), views.len().into());
        m.insert(
            "downloadSpeed".into(),
            (views.iter().map(|v| v.down_rate).sum::<f64>() as u64).into(),
        );
        m.insert(
            "uploadSpeed".into(),
            (views.iter().map(|v| v.up_rate).sum::<f64>() as u64).into(),
        );
        let run = state::Totals {
            seconds: self.since.elapsed().as_secs(),
            ..self.run
        };
        m.insert("current-stats".into(), Value::Object(run.to_json()));
        m.insert(
            "cumulative-stats".into(),
            Value::Object(self.before.plus(run).to_json()),
        );
        m
    }
}

/// The `session-set` fields btmini honours so far.
const SESSION_SET: &[&str] = &["start-added-torrents", "download-dir"];

/// The units Transmission reports (its clients print sizes with them).
fn units() -> Value {
    let list = |v: &[&str]| Value::Array(v.iter().map(|s| Value::from(*s)).collect());
    let mut m = Map::new();
    m.insert(
        "speed-units".into(),
        list(&["kB/s", "MB/s", "GB/s", "TB/s"]),
    );
    m.insert("speed-bytes".into(), 1000.into());
    m.insert("size-units".into(), list(&["kB", "MB", "GB", "TB"]));
    m.insert("size-bytes".into(), 1000.into());
    m.insert("memory-units".into(), list(&["KiB", "MiB", "GiB", "TiB"]));
    m.insert("memory-bytes".into(), 1024.into());
    Value::Object(m)
}

/// A `.torrent`'s bytes, checked.
fn torrent_of(bytes: &[u8]) -> Result<(Metainfo, Vec<u8>), String> {
    Metainfo::from_bytes(bytes)
        .map(|m| (m, bytes.to_vec()))
        .map_err(|e| format!("invalid or corrupt torrent file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_arguments_apply_wanted_first_and_check_their_indices() {
        use Priority::*;
        let all = Selection::all();
        let pick = |c: &[(&'static str, Vec<u64>)]| choose_files(all.clone(), c, 3);
        assert_eq!(
            pick(&[("files-unwanted", vec![1])]).unwrap().list(3),
            [Normal, Skip, Normal]
        );
        // An empty list means every file; a priority does not want an unwanted file.
        let none = pick(&[("files-unwanted", vec![]), ("priority-high", vec![0])]).unwrap();
        assert_eq!(none.list(3), [Skip, Skip, Skip]);
        let back = choose_files(
            none,
            &[("files-wanted", vec![0]), ("priority-low", vec![0, 2])],
            3,
        );
        assert_eq!(back.unwrap().list(3), [Low, Skip, Skip]);
        assert_eq!(
            pick(&[("files-wanted", vec![3])]),
            Err("file index out of range".to_string())
        );
    }
}
