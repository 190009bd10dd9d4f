//! One download as a program sees it: its options, errors, phases and status, and
//! [`Download`], a [`Host`] with exactly one torrent (what `btmini T -o DIR` runs). The
//! loop itself is the host's ([`crate::host`]).

use crate::bitfield::Bitfield;
use crate::host::{Host, HostOptions, Source, TorrentId};
use crate::metainfo::{Metainfo, MetainfoError};
use crate::session::{Config, MetadataStatus, Session, Stats};
use crate::storage::{StorageError, StorageOptions};
use crate::tracker::io::Timeouts;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Ports tried after the one asked for, when it is taken.
pub(crate) const PORT_TRIES: u16 = 20;

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
    /// Which files are wanted, and how urgently (`--files`).
    pub files: crate::selection::Selection,
    /// Check data on disk that the sidecar cannot vouch for in the loop, a slice per pass
    /// beside the other torrents (a daemon), instead of in one go while adding (the
    /// command line, which shows its progress).
    pub check_in_loop: bool,
    /// Encryption (MSE) both ways (`--encryption`): the host's, for a single download.
    pub encryption: crate::mse::Policy,
    /// uTP both ways (`--no-utp` turns it off): the host's, for a single download.
    pub utp: bool,
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
            files: crate::selection::Selection::all(),
            check_in_loop: false,
            encryption: crate::mse::Policy::Prefer,
            utp: true,
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
    /// The metadata fetched for a magnet link hashes to its info-hash but is not a valid
    /// torrent.
    Metadata(MetainfoError),
    /// The fetched metadata could not be saved next to the data.
    SaveMetadata(PathBuf, io::Error),
    /// Storage was needed before the metadata was known (a bug, not a peer's doing).
    NoMetadata,
    /// The files asked for are not the torrent's.
    Selection(crate::selection::SelectionError),
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
            Self::Metadata(e) => {
                write!(f, "the metadata the peers sent is not a valid torrent: {e}")
            }
            Self::SaveMetadata(p, e) => {
                write!(f, "cannot save the metadata in {}: {e}", p.display())
            }
            Self::NoMetadata => f.write_str("storage used before the metadata was known"),
            Self::Selection(e) => write!(f, "--files: {e}"),
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
    /// Hashing the data already on disk, a slice at a time, before anything else (with
    /// [`DownloadOptions::check_in_loop`]); no peers, no trackers yet.
    Checking,
    /// Fetching pieces.
    Downloading,
    /// Every piece verified; telling the trackers.
    Completing,
    /// Every piece verified; serving others until stopped or the seed ratio is met.
    Seeding,
    /// Stopping: data flushed, `stopped` being announced.
    Stopping,
    /// Done (complete and stopped, stopped, or failed): [`Download::step`] returns true
    /// from now on.
    Finished,
}

/// A snapshot for the status line.
#[derive(Debug, Clone)]
pub struct Status {
    /// The torrent's name (a magnet's `dn`, or its info-hash, until the metadata is known).
    pub name: String,
    /// The info-hash.
    pub info_hash: [u8; 20],
    /// Where the metadata fetch is, while the metadata is not known (magnets).
    pub metadata: Option<MetadataStatus>,
    /// Why the torrent failed, if it did.
    pub error: Option<String>,
    /// Where the download is.
    pub phase: Phase,
    /// The session's figures.
    pub stats: Stats,
    /// Torrent size (0 while the metadata is not known).
    pub total: u64,
    /// Bytes verified.
    pub have_bytes: u64,
    /// While [`Phase::Checking`]: pieces checked, of how many.
    pub checking: Option<(u32, u32)>,
    /// Bytes of the pieces of the wanted files (`total` when every file is wanted).
    pub wanted_bytes: u64,
    /// Of those, bytes not verified yet.
    pub left_bytes: u64,
    /// Bytes uploaded over all runs.
    pub uploaded: u64,
    /// What the download is waiting for, when it is not moving.
    pub waiting: Option<String>,
    /// The trackers' last error, when every tracker failed.
    pub tracker_error: Option<String>,
    /// The port we listen on.
    pub port: u16,
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

/// One torrent on its own [`Host`]: the download `btmini T -o DIR` runs.
pub struct Download {
    host: Host,
    id: TorrentId,
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
        Self::from_source(Source::Torrent(meta), opts, progress)
    }

    /// As [`Download::new`], from a torrent or a magnet link.
    pub fn from_source(
        source: Source,
        opts: DownloadOptions,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Self, DownloadError> {
        let mut host = Host::new(HostOptions::from_download(&opts))?;
        let id = host.add(source, opts, progress).map_err(|e| match e {
            crate::host::AddError::Download(e) => e,
            crate::host::AddError::Duplicate(_) => unreachable!("the host is new"),
        })?;
        Ok(Self { host, id })
    }

    /// The port peers can reach us on.
    pub fn port(&self) -> u16 {
        self.host.port()
    }

    /// Our peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.host.peer_id()
    }

    /// Verified pieces (none while the metadata is not known).
    pub fn have(&self) -> &Bitfield {
        self.session().have()
    }

    fn session(&self) -> &Session {
        self.host
            .session(self.id)
            .expect("the torrent stays until the download is dropped")
    }

    /// Asks the download to stop as on SIGINT: flush, announce `stopped`, finish.
    pub fn stop(&mut self) {
        self.host.stop();
    }

    /// Runs until the download is finished (complete, or stopped), calling `on_status`
    /// about twice a second.
    pub fn run(&mut self, mut on_status: impl FnMut(&Status)) -> Result<(), DownloadError> {
        let id = self.id;
        self.host.run(|h| {
            if let Some(s) = h.status(id) {
                on_status(&s);
            }
        })?;
        match self.host.take_error(id) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One pass of the loop: waits at most `timeout` for events, handles them, and returns
    /// whether the download is finished; its failure is the error.
    pub fn step(&mut self, timeout: Option<Duration>) -> Result<bool, DownloadError> {
        let done = self.host.step(timeout)?;
        match self.host.take_error(self.id) {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// A snapshot for the status line.
    pub fn status(&self) -> Status {
        self.host
            .status(self.id)
            .expect("the torrent stays until the download is dropped")
    }

    /// The torrent, once its metadata is known.
    pub fn metainfo(&self) -> Option<Arc<Metainfo>> {
        self.host.metainfo(self.id)
    }
}
