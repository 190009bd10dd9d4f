//! `torrent-get`'s fields, from what the daemon knows of a torrent. Field names and
//! meanings are the RPC spec's; a field btmini has no value for is left out, as
//! Transmission leaves out fields it does not know.

use crate::metainfo::Metainfo;
use crate::selection::{Priority, Selection};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Transmission's torrent status codes.
pub mod status {
    /// Stopped.
    pub const STOPPED: i64 = 0;
    /// Checking the data on disk.
    pub const CHECKING: i64 = 2;
    /// Downloading.
    pub const DOWNLOADING: i64 = 4;
    /// Seeding.
    pub const SEEDING: i64 = 6;
}

/// What one torrent looks like to `torrent-get`.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// RPC id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Info-hash.
    pub info_hash: [u8; 20],
    /// The metadata, once known.
    pub meta: Option<Arc<Metainfo>>,
    /// A status code of [`status`].
    pub status: i64,
    /// Verified bytes.
    pub have: u64,
    /// How far a check of the data on disk is (0–1; `recheckProgress`).
    pub recheck: f64,
    /// Bytes of the wanted pieces (`sizeWhenDone`).
    pub wanted: u64,
    /// Of those, bytes not verified yet (`leftUntilDone`).
    pub left: u64,
    /// Which files are wanted, how urgently.
    pub files: Selection,
    /// Verified bytes of each file, by index in [`Metainfo::files`] (empty if unknown).
    pub file_bytes: Vec<u64>,
    /// Bytes downloaded this run and before (what the sidecar knows), and uploaded.
    pub downloaded: u64,
    /// Bytes uploaded over all runs.
    pub uploaded: u64,
    /// Bytes that failed their hash.
    pub corrupt: u64,
    /// Rates, bytes a second.
    pub down_rate: f64,
    /// Upload rate, bytes a second.
    pub up_rate: f64,
    /// Peers connected.
    pub peers: usize,
    /// Peers we receive from.
    pub sending: usize,
    /// Peers we send to.
    pub getting: usize,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Where its data goes.
    pub download_dir: String,
    /// Seconds since the epoch: added, completed, started, last active.
    pub added: u64,
    /// Completed.
    pub done: Option<u64>,
    /// Started (this run).
    pub started: Option<u64>,
    /// Last active.
    pub active: u64,
    /// Queue position.
    pub queue: u64,
    /// Its own speed limits.
    pub speed: super::state::Limits,
    /// Its seed limits.
    pub seed: super::state::SeedLimits,
    /// A seed limit stopped it.
    pub finished: bool,
    /// The magnet link.
    pub magnet: String,
    /// While the metadata is fetched: how far (0–1).
    pub metadata_progress: Option<f64>,
}

impl View {
    fn total(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.total_length)
    }

    fn left(&self) -> u64 {
        self.left
    }

    fn eta(&self) -> i64 {
        if self.meta.is_none() || self.status != status::DOWNLOADING {
            return -1; // unknown
        }
        if self.left() == 0 {
            return 0;
        }
        if self.down_rate < 1.0 {
            return -2; // not moving
        }
        (self.left() as f64 / self.down_rate) as i64
    }

    /// The value of `field`, or `None` for a field btmini does not know.
    pub fn field(&self, field: &str) -> Option<Value> {
        let total = self.total();
        let ratio = |num: u64, den: u64| -> Value {
            if den == 0 {
                Value::from(-1) // TR_RATIO_NA
            } else {
                Value::from(num as f64 / den as f64)
            }
        };
        Some(match field {
            "id" => self.id.into(),
            "name" => self.name.clone().into(),
            "hashString" => crate::util::hex(&self.info_hash).into(),
            "status" => self.status.into(),
            "error" => i64::from(self.error.is_some() as u8 * 3).into(), // 3: local error
            "errorString" => self.error.clone().unwrap_or_default().into(),
            "eta" => self.eta().into(),
            "etaIdle" => (-1).into(),
            "isFinished" => self.finished.into(),
            "isStalled" => (self.status == status::DOWNLOADING && self.down_rate < 1.0).into(),
            "isPrivate" => self.meta.as_ref().is_some_and(|m| m.private).into(),
            "leftUntilDone" => self.left().into(),
            "sizeWhenDone" => self.wanted.into(),
            "totalSize" => total.into(),
            "haveValid" => self.have.into(),
            "haveUnchecked" => 0.into(),
            "percentDone" => ratio(self.wanted - self.left, self.wanted)
                .as_f64()
                .map_or(0.0, |r| r.max(0.0))
                .into(),
            "metadataPercentComplete" => {
                if self.meta.is_some() {
                    1.0.into()
                } else {
                    self.metadata_progress.unwrap_or(0.0).into()
                }
            }
            "recheckProgress" => self.recheck.into(),
            "rateDownload" => (self.down_rate as u64).into(),
            "rateUpload" => (self.up_rate as u64).into(),
            "downloadedEver" => self.downloaded.into(),
            "uploadedEver" => self.uploaded.into(),
            "corruptEver" => self.corrupt.into(),
            "uploadRatio" => ratio(self.uploaded, self.downloaded.max(self.have)),
            "peersConnected" => self.peers.into(),
            "peersSendingToUs" => self.sending.into(),
            "peersGettingFromUs" => self.getting.into(),
            "webseedsSendingToUs" => 0.into(),
            "downloadDir" => self.download_dir.clone().into(),
            "addedDate" => self.added.into(),
            "doneDate" => self.done.unwrap_or(0).into(),
            "startDate" => self.started.unwrap_or(0).into(),
            "activityDate" => self.active.into(),
            "dateCreated" => self
                .meta
                .as_ref()
                .and_then(|m| m.creation_date)
                .unwrap_or(0)
                .into(),
            "creator" => self
                .meta
                .as_ref()
                .and_then(|m| m.created_by.clone())
                .unwrap_or_default()
                .into(),
            "comment" => self
                .meta
                .as_ref()
                .and_then(|m| m.comment.clone())
                .unwrap_or_default()
                .into(),
            "pieceCount" => self.meta.as_ref().map_or(0, |m| m.piece_count()).into(),
            "pieceSize" => self.meta.as_ref().map_or(0, |m| m.piece_length).into(),
            "queuePosition" => self.queue.into(),
            "magnetLink" => self.magnet.clone().into(),
            "bandwidthPriority" => 0.into(),
            "honorsSessionLimits" => true.into(),
            "downloadLimit" => self.speed.down.into(),
            "downloadLimited" => self.speed.down_on.into(),
            "uploadLimit" => self.speed.up.into(),
            "uploadLimited" => self.speed.up_on.into(),
            "seedRatioMode" => self.seed.ratio_mode.into(),
            "seedRatioLimit" => self.seed.ratio.into(),
            "seedIdleMode" => self.seed.idle_mode.into(),
            "seedIdleLimit" => self.seed.idle.into(),
            "trackers" | "trackerStats" | "peers" | "webseeds" | "labels" => Value::Array(vec![]),
            "files" => Value::Array(self.files(|f| {
                let mut m = Map::new();
                m.insert("bytesCompleted".into(), f.done.into());
                m.insert("length".into(), f.length.into());
                m.insert("name".into(), f.display.clone().into());
                Value::Object(m)
            })),
            "fileStats" => Value::Array(self.files(|f| {
                let mut m = Map::new();
                m.insert("bytesCompleted".into(), f.done.into());
                m.insert("wanted".into(), (f.priority != Priority::Skip).into());
                m.insert("priority".into(), f.priority.rpc().into());
                Value::Object(m)
            })),
            "priorities" => Value::Array(self.files(|f| f.priority.rpc().into())),
            "wanted" => {
                Value::Array(self.files(|f| i64::from(f.priority != Priority::Skip).into()))
            }
            _ => return None,
        })
    }

    /// One value per stored file.
    fn files(&self, each: impl Fn(&FileView) -> Value) -> Vec<Value> {
        let Some(m) = &self.meta else {
            return Vec::new();
        };
        m.files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding)
            .enumerate()
            .map(|(n, (i, f))| {
                // The path starts with the torrent's name already, as Transmission shows it.
                let view = FileView {
                    display: f.display_path(),
                    length: f.length,
                    done: self.file_bytes.get(i).copied().unwrap_or(0),
                    priority: self.files.get(n),
                };
                each(&view)
            })
            .collect()
    }
}

/// A file as `torrent-get` names it.
pub struct FileView {
    /// `NAME/dir/file` (the torrent's name first, as Transmission shows it).
    pub display: String,
    /// Its size.
    pub length: u64,
    /// Its bytes verified.
    pub done: u64,
    /// How much it is wanted.
    pub priority: Priority,
}

/// The `torrents` list of a `torrent-get` reply: objects, or with `table`, a header row of
/// the field names and then one row per torrent.
pub fn torrents(views: &[View], fields: &[String], table: bool) -> Value {
    if table {
        let mut rows = vec![Value::Array(
            fields.iter().map(|f| Value::from(f.as_str())).collect(),
        )];
        for v in views {
            rows.push(Value::Array(
                fields
                    .iter()
                    .map(|f| v.field(f).unwrap_or(Value::Null))
                    .collect(),
            ));
        }
        return Value::Array(rows);
    }
    Value::Array(
        views
            .iter()
            .map(|v| {
                let mut m = Map::new();
                for f in fields {
                    if let Some(x) = v.field(f) {
                        m.insert(f.clone(), x);
                    }
                }
                Value::Object(m)
            })
            .collect(),
    )
}
