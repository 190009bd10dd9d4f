//! The daemon's torrents on disk, so that they survive a restart and a `kill -9`: one
//! record per torrent, `STATE/torrents/HASH.json`, and for a torrent added from a
//! `.torrent` its bytes beside it, `HASH.torrent`. Each file is replaced atomically (a
//! temporary file, fsync, rename), so a crash leaves the old record or the new one; a
//! torrent whose record is written is one the RPC acknowledged.

use crate::selection::{Priority, Selection};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What the daemon keeps of one torrent.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its id in the RPC (stable across restarts).
    pub id: u64,
    /// Its info-hash.
    pub info_hash: [u8; 20],
    /// Its name, as last known.
    pub name: String,
    /// The magnet link it was added from (its metadata is saved in the download folder
    /// once fetched); `None`: added from a `.torrent`, kept as `HASH.torrent`.
    pub magnet: Option<String>,
    /// Where its data goes.
    pub download_dir: PathBuf,
    /// Stopped by the user.
    pub paused: bool,
    /// When it was added, and when it completed (seconds since the Unix epoch).
    pub added: u64,
    /// When it completed, if it has.
    pub done: Option<u64>,
    /// Its place in the queue (0 first).
    pub queue: u64,
    /// Its own speed limits.
    pub speed: Limits,
    /// Its seed limits.
    pub seed: SeedLimits,
    /// Which files are wanted, how urgently.
    pub files: Selection,
}

/// When a torrent stops seeding, as Transmission names it: a mode for the ratio and one for
/// idleness (0: the session's setting, 1: this torrent's, 2: no limit), and the limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeedLimits {
    /// `seedRatioMode`.
    pub ratio_mode: u8,
    /// `seedRatioLimit`: uploaded / size.
    pub ratio: f64,
    /// `seedIdleMode`.
    pub idle_mode: u8,
    /// `seedIdleLimit`, minutes without uploading.
    pub idle: u64,
}

/// The session's seed limits (`seedRatioLimit(ed)`, `idle-seeding-limit(-enabled)`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionSeed {
    /// The ratio applies.
    pub ratio_on: bool,
    /// The ratio.
    pub ratio: f64,
    /// The idle limit applies.
    pub idle_on: bool,
    /// Minutes.
    pub idle: u64,
}

impl SeedLimits {
    /// The ratio and idle minutes in force for a torrent, given the session's.
    pub fn effective(&self, session: &SessionSeed) -> (Option<f64>, Option<u64>) {
        let ratio = match self.ratio_mode {
            1 => Some(self.ratio),
            2 => None,
            _ => session.ratio_on.then_some(session.ratio),
        };
        let idle = match self.idle_mode {
            1 => Some(self.idle),
            2 => None,
            _ => session.idle_on.then_some(session.idle),
        };
        (ratio, idle)
    }

    /// Applies `torrent-set`'s seed fields.
    pub fn set(&mut self, args: &Map<String, Value>) -> Result<(), String> {
        let mut next = *self;
        for (key, mode) in [
            ("seedRatioMode", &mut next.ratio_mode),
            ("seedIdleMode", &mut next.idle_mode),
        ] {
            if let Some(v) = args.get(key) {
                *mode = v
                    .as_u64()
                    .filter(|m| *m <= 2)
                    .ok_or_else(|| format!("{key} is not 0, 1 or 2"))?
                    as u8;
            }
        }
        if let Some(v) = args.get("seedRatioLimit") {
            next.ratio = v
                .as_f64()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or("seedRatioLimit is not a ratio")?;
        }
        if let Some(v) = args.get("seedIdleLimit") {
            next.idle = v
                .as_u64()
                .ok_or("seedIdleLimit is not a number of minutes")?;
        }
        *self = next;
        Ok(())
    }
}

impl SessionSeed {
    /// Applies `session-set`'s seed fields.
    pub fn set(&mut self, args: &Map<String, Value>) -> Result<(), String> {
        let mut next = *self;
        if args.contains_key("seedRatioLimited") {
            next.ratio_on = crate::rpc::call::flag(args, "seedRatioLimited")?;
        }
        if let Some(v) = args.get("seedRatioLimit") {
            next.ratio = v
                .as_f64()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or("seedRatioLimit is not a ratio")?;
        }
        if args.contains_key("idle-seeding-limit-enabled") {
            next.idle_on = crate::rpc::call::flag(args, "idle-seeding-limit-enabled")?;
        }
        if let Some(v) = args.get("idle-seeding-limit") {
            next.idle = v
                .as_u64()
                .ok_or("idle-seeding-limit is not a number of minutes")?;
        }
        *self = next;
        Ok(())
    }
}

/// The torrent fields [`SeedLimits::set`] takes.
pub const TORRENT_SEED_KEYS: [&str; 4] = [
    "seedRatioMode",
    "seedRatioLimit",
    "seedIdleMode",
    "seedIdleLimit",
];
/// The session fields [`SessionSeed::set`] takes.
pub const SESSION_SEED_KEYS: [&str; 4] = [
    "seedRatioLimited",
    "seedRatioLimit",
    "idle-seeding-limit-enabled",
    "idle-seeding-limit",
];

/// The folder of the records.
fn dir(state: &Path) -> PathBuf {
    state.join("torrents")
}

/// A record's path.
pub fn record_path(state: &Path, info_hash: &[u8; 20]) -> PathBuf {
    dir(state).join(format!("{}.json", crate::util::hex(info_hash)))
}

/// The path of a `.torrent`-added torrent's metainfo.
pub fn metainfo_path(state: &Path, info_hash: &[u8; 20]) -> PathBuf {
    dir(state).join(format!("{}.torrent", crate::util::hex(info_hash)))
}

impl Record {
    fn to_json(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("id".into(), self.id.into());
        m.insert("hash".into(), crate::util::hex(&self.info_hash).into());
        m.insert("name".into(), self.name.clone().into());
        if let Some(link) = &self.magnet {
            m.insert("magnet".into(), link.clone().into());
        }
        m.insert(
            "download_dir".into(),
            self.download_dir.to_string_lossy().into_owned().into(),
        );
        m.insert("paused".into(), self.paused.into());
        m.insert("added".into(), self.added.into());
        if let Some(d) = self.done {
            m.insert("done".into(), d.into());
        }
        m.insert("queue".into(), self.queue.into());
        self.speed.write(&mut m, TORRENT_KEYS);
        m.insert("seedRatioMode".into(), self.seed.ratio_mode.into());
        m.insert("seedRatioLimit".into(), self.seed.ratio.into());
        m.insert("seedIdleMode".into(), self.seed.idle_mode.into());
        m.insert("seedIdleLimit".into(), self.seed.idle.into());
        if !self.files.is_all() {
            // By file: 0 not wanted, 1 low, 2 normal, 3 high.
            let list = self.files.list(self.files.len());
            let codes: Vec<Value> = list.iter().map(|&p| (p as u8).into()).collect();
            m.insert("files".into(), Value::Array(codes));
        }
        serde_json::to_vec_pretty(&Value::Object(m)).unwrap_or_default()
    }

    fn from_json(b: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(b).ok()?;
        let info_hash = crate::util::hash_from_hex(v.get("hash")?.as_str()?)?;
        Some(Self {
            id: v.get("id")?.as_u64()?,
            info_hash,
            name: v.get("name")?.as_str()?.to_string(),
            magnet: v.get("magnet").and_then(Value::as_str).map(str::to_string),
            download_dir: PathBuf::from(v.get("download_dir")?.as_str()?),
            paused: v.get("paused")?.as_bool()?,
            added: v.get("added")?.as_u64()?,
            done: v.get("done").and_then(Value::as_u64),
            queue: v.get("queue").and_then(Value::as_u64).unwrap_or(0),
            speed: Limits::read(&v, TORRENT_KEYS),
            seed: SeedLimits {
                ratio_mode: v
                    .get("seedRatioMode")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(2) as u8,
                ratio: v
                    .get("seedRatioLimit")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                idle_mode: v
                    .get("seedIdleMode")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(2) as u8,
                idle: v.get("seedIdleLimit").and_then(Value::as_u64).unwrap_or(0),
            },
            files: match v.get("files").and_then(Value::as_array) {
                None => Selection::all(),
                Some(codes) => Selection::from_list(
                    codes
                        .iter()
                        .map(|c| match c.as_u64() {
                            Some(0) => Priority::Skip,
                            Some(1) => Priority::Low,
                            Some(3) => Priority::High,
                            _ => Priority::Normal,
                        })
                        .collect(),
                ),
            },
        })
    }

    /// Writes the record (atomically).
    pub fn save(&self, state: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir(state))
            .map_err(|e| format!("{}: {e}", dir(state).display()))?;
        crate::storage::write_atomic(&record_path(state, &self.info_hash), &self.to_json())
            .map_err(|e| e.to_string())
    }
}

/// The session's settings that `session-set` changes, kept in `STATE/settings.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `start-added-torrents`.
    pub start_added: bool,
    /// `download-dir`, when set (else the daemon's `-o`).
    pub download_dir: Option<PathBuf>,
    /// `speed-limit-down` / `-up` (kB/s, k = 1000) and whether each is on.
    pub speed: Limits,
    /// The seed limits.
    pub seed: SessionSeed,
}

/// A pair of speed limits as the RPC names them: kB/s (k = 1000), each with its switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Download limit, kB/s.
    pub down: u64,
    /// It applies.
    pub down_on: bool,
    /// Upload limit, kB/s.
    pub up: u64,
    /// It applies.
    pub up_on: bool,
}

impl Limits {
    /// Bytes a second, down and up, for the host.
    pub fn bytes(&self) -> (Option<u64>, Option<u64>) {
        let b = |kb: u64, on: bool| on.then(|| kb.saturating_mul(1000).max(1));
        (b(self.down, self.down_on), b(self.up, self.up_on))
    }

    fn read(v: &Value, keys: [&str; 4]) -> Self {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        Self {
            down: n(keys[0]),
            down_on: on(keys[1]),
            up: n(keys[2]),
            up_on: on(keys[3]),
        }
    }

    fn write(&self, m: &mut Map<String, Value>, keys: [&str; 4]) {
        m.insert(keys[0].into(), self.down.into());
        m.insert(keys[1].into(), self.down_on.into());
        m.insert(keys[2].into(), self.up.into());
        m.insert(keys[3].into(), self.up_on.into());
    }

    /// Applies the RPC's fields named `keys` (down, down on, up, up on) from `args`.
    pub fn set(&mut self, args: &Map<String, Value>, keys: [&str; 4]) -> Result<(), String> {
        let n = |k: &str| match args.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{k} is not a number of kB/s")),
        };
        let on = |k: &str| match args.get(k) {
            None => Ok(None),
            Some(_) => crate::rpc::call::flag(args, k).map(Some),
        };
        let mut next = *self;
        if let Some(x) = n(keys[0])? {
            next.down = x;
        }
        if let Some(x) = on(keys[1])? {
            next.down_on = x;
        }
        if let Some(x) = n(keys[2])? {
            next.up = x;
        }
        if let Some(x) = on(keys[3])? {
            next.up_on = x;
        }
        *self = next;
        Ok(())
    }
}

/// The session's limit fields in the RPC and the settings file.
pub const SESSION_KEYS: [&str; 4] = [
    "speed-limit-down",
    "speed-limit-down-enabled",
    "speed-limit-up",
    "speed-limit-up-enabled",
];
/// A torrent's limit fields in the RPC and its record.
pub const TORRENT_KEYS: [&str; 4] = [
    "downloadLimit",
    "downloadLimited",
    "uploadLimit",
    "uploadLimited",
];

impl Default for Settings {
    fn default() -> Self {
        Self {
            start_added: true,
            download_dir: None,
            speed: Limits::default(),
            // Transmission's defaults: a ratio of 2 and 30 idle minutes, both off.
            seed: SessionSeed {
                ratio_on: false,
                ratio: 2.0,
                idle_on: false,
                idle: 30,
            },
        }
    }
}

impl Settings {
    /// The saved settings, or the defaults.
    pub fn load(state: &Path) -> Self {
        let Some(v) = std::fs::read(state.join("settings.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return Self::default();
        };
        Self {
            start_added: v
                .get("start-added-torrents")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            download_dir: v
                .get("download-dir")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            speed: Limits::read(&v, SESSION_KEYS),
            seed: SessionSeed {
                ratio_on: v
                    .get("seedRatioLimited")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                ratio: v
                    .get("seedRatioLimit")
                    .and_then(Value::as_f64)
                    .unwrap_or(2.0),
                idle_on: v
                    .get("idle-seeding-limit-enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                idle: v
                    .get("idle-seeding-limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(30),
            },
        }
    }

    /// Writes them (atomically).
    pub fn save(&self, state: &Path) -> Result<(), String> {
        let mut m = Map::new();
        m.insert("start-added-torrents".into(), self.start_added.into());
        if let Some(d) = &self.download_dir {
            m.insert(
                "download-dir".into(),
                d.to_string_lossy().into_owned().into(),
            );
        }
        self.speed.write(&mut m, SESSION_KEYS);
        m.insert("seedRatioLimited".into(), self.seed.ratio_on.into());
        m.insert("seedRatioLimit".into(), self.seed.ratio.into());
        m.insert(
            "idle-seeding-limit-enabled".into(),
            self.seed.idle_on.into(),
        );
        m.insert("idle-seeding-limit".into(), self.seed.idle.into());
        let bytes = serde_json::to_vec_pretty(&Value::Object(m)).unwrap_or_default();
        crate::storage::write_atomic(&state.join("settings.json"), &bytes)
            .map_err(|e| e.to_string())
    }
}

/// `session-stats` figures, this run's or all runs' (`STATE/stats.json` keeps the latter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Torrents added.
    pub files_added: u64,
    /// Daemon runs.
    pub sessions: u64,
    /// Seconds the daemon ran.
    pub seconds: u64,
}

impl Totals {
    /// The totals of the runs before this one.
    pub fn load(state: &Path) -> Self {
        let Some(v) = std::fs::read(state.join("stats.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            return Self::default();
        };
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            uploaded: n("uploadedBytes"),
            downloaded: n("downloadedBytes"),
            files_added: n("filesAdded"),
            sessions: n("sessionCount"),
            seconds: n("secondsActive"),
        }
    }

    /// The figures as `session-stats` names them.
    pub fn to_json(self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("uploadedBytes".into(), self.uploaded.into());
        m.insert("downloadedBytes".into(), self.downloaded.into());
        m.insert("filesAdded".into(), self.files_added.into());
        m.insert("sessionCount".into(), self.sessions.into());
        m.insert("secondsActive".into(), self.seconds.into());
        m
    }

    /// Writes them (atomically), here or, given `disk`, on its thread (failures are logged).
    pub fn save(self, state: &Path, disk: Option<&crate::storage::Disk>) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(&Value::Object(self.to_json())).unwrap_or_default();
        let path = state.join("stats.json");
        match disk {
            Some(disk) => {
                disk.save(path, bytes);
                Ok(())
            }
            None => crate::storage::write_atomic(&path, &bytes).map_err(|e| e.to_string()),
        }
    }

    /// These and `other`, added.
    pub fn plus(self, other: Self) -> Self {
        Self {
            uploaded: self.uploaded + other.uploaded,
            downloaded: self.downloaded + other.downloaded,
            files_added: self.files_added + other.files_added,
            sessions: self.sessions + other.sessions,
            seconds: self.seconds + other.seconds,
        }
    }
}

/// Every record in `state`, by queue order; a record that does not read is skipped with a
/// warning (and left on disk for a person to look at).
pub fn load_all(state: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir(state)) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .ok()
            .and_then(|b| Record::from_json(&b))
        {
            Some(r)
                if path.file_stem().and_then(|s| s.to_str())
                    == Some(crate::util::hex(&r.info_hash).as_str()) =>
            {
                out.push(r)
            }
            _ => log::warn!("{}: not a torrent record, skipped", path.display()),
        }
    }
    out.sort_by_key(|r| (r.queue, r.id));
    out
}

/// Forgets a torrent: its record and its metainfo.
pub fn forget(state: &Path, info_hash: &[u8; 20]) {
    let _ = std::fs::remove_file(record_path(state, info_hash));
    let _ = std::fs::remove_file(metainfo_path(state, info_hash));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_limits_follow_their_mode_and_check_types() {
        let session = SessionSeed {
            ratio_on: true,
            ratio: 2.0,
            idle_on: false,
            idle: 30,
        };
        let mut t = SeedLimits::default();
        assert_eq!(
            t.effective(&session),
            (Some(2.0), None),
            "mode 0: the session's"
        );
        let args = |j: &str| serde_json::from_str::<Map<String, Value>>(j).unwrap();
        t.set(&args(
            r#"{"seedRatioMode":1,"seedRatioLimit":0.5,"seedIdleMode":1,"seedIdleLimit":10}"#,
        ))
        .unwrap();
        assert_eq!(t.effective(&session), (Some(0.5), Some(10)));
        t.set(&args(r#"{"seedRatioMode":2}"#)).unwrap();
        assert_eq!(t.effective(&session).0, None, "mode 2: none");
        for bad in [
            r#"{"seedRatioMode":3}"#,
            r#"{"seedRatioLimit":-1}"#,
            r#"{"seedIdleLimit":"x"}"#,
        ] {
            let before = t;
            assert!(t.set(&args(bad)).is_err(), "{bad}");
            assert_eq!(t, before, "a refused set changes nothing");
        }
    }

    #[test]
    fn a_record_reads_back_and_a_broken_one_is_skipped() {
        let dir = std::env::temp_dir().join(format!("btmini-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = Record {
            id: 3,
            info_hash: [0xab; 20],
            name: "ünïcode name".into(),
            magnet: Some("magnet:?xt=urn:btih:abab".into()),
            download_dir: PathBuf::from("/data/x"),
            paused: true,
            added: 1_700_000_000,
            done: None,
            queue: 2,
            speed: Limits {
                down: 300,
                down_on: true,
                ..Limits::default()
            },
            seed: SeedLimits {
                ratio_mode: 1,
                ratio: 1.5,
                idle_mode: 2,
                idle: 0,
            },
            files: Selection::from_list(vec![Priority::Skip, Priority::High, Priority::Low]),
        };
        r.save(&dir).unwrap();
        let mut other = r.clone();
        other.info_hash = [1; 20];
        other.id = 4;
        other.queue = 0;
        other.magnet = None;
        other.done = Some(1_700_000_100);
        other.save(&dir).unwrap();
        std::fs::write(dir.join("torrents/broken.json"), b"{\"id\":").unwrap();
        // A record under another hash's name is not trusted either.
        std::fs::copy(
            record_path(&dir, &[1; 20]),
            dir.join("torrents")
                .join(format!("{}.json", "cd".repeat(20))),
        )
        .unwrap();
        assert_eq!(load_all(&dir), vec![other.clone(), r.clone()]);
        forget(&dir, &[1; 20]);
        assert_eq!(load_all(&dir), vec![r]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
