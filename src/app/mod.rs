//! The application edge: runs a parsed [`crate::cli::Command`] against the real
//! file system and terminal, and turns every failure into one [`AppError`] with an exit code.

mod create;
mod download;
mod info;

pub use info::{render_json, render_magnet_json, render_magnet_text, render_text};

use crate::cli::{Cli, CliError, Command, HELP};
use crate::create::CreateError;
use crate::magnet::{Magnet, MagnetError};
use crate::metainfo::{Metainfo, MetainfoError};
use crate::util::io_reason;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Torrent files larger than this are refused before they are read: the largest real ones
/// (hundreds of thousands of pieces) are a few MiB.
pub const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

/// A failure the user sees as one line, `btmini: error: …`.
#[derive(Debug)]
pub enum AppError {
    /// The command line is wrong (exit status 2).
    Cli(CliError),
    /// The same torrent given twice.
    Duplicate(String),
    /// A malformed magnet link.
    BadMagnet(MagnetError),
    /// The torrent file could not be read.
    ReadTorrent {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The path names a folder, not a torrent file.
    TorrentIsDir(PathBuf),
    /// The file is far too large to be a torrent.
    TorrentTooLarge(PathBuf, u64),
    /// The file is not a valid torrent.
    BadTorrent {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        source: MetainfoError,
    },
    /// `btmini create` failed.
    Create(CreateError),
    /// The output file of `create` exists and `--force` was not given.
    OutputExists(PathBuf),
    /// Writing a file failed.
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A `--peer` that does not resolve.
    BadPeer(String, String),
    /// The download failed.
    Download(crate::engine::DownloadError),
    /// The daemon could not run.
    #[cfg(feature = "daemon")]
    Daemon(crate::daemon::DaemonError),
    /// This build has no daemon (the `daemon` feature).
    NoDaemon,
}

impl AppError {
    /// The process exit status: 2 for a bad command line, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Cli(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli(e) => write!(f, "{e}"),
            Self::Duplicate(h) => write!(f, "torrent {h} is given twice"),
            Self::ReadTorrent { path, source } => {
                write!(f, "cannot read '{}': {}", path.display(), io_reason(source))
            }
            Self::TorrentIsDir(p) => {
                write!(f, "'{}' is a folder, not a .torrent file", p.display())
            }
            Self::TorrentTooLarge(p, n) => write!(
                f,
                "'{}' is {n} bytes, too large to be a .torrent file (limit {MAX_TORRENT_FILE})",
                p.display()
            ),
            Self::BadTorrent {
                path,
                source: MetainfoError::Bencode(e),
            } => write!(
                f,
                "'{}' is not a .torrent file (not bencoded data: {e})",
                path.display()
            ),
            Self::BadTorrent { path, source } => {
                write!(f, "'{}' is not a usable torrent: {source}", path.display())
            }
            Self::Create(e) => write!(f, "{e}"),
            Self::OutputExists(p) => write!(
                f,
                "'{}' already exists (use --force to overwrite, or -o to choose another name)",
                p.display()
            ),
            Self::Write { path, source } => {
                write!(
                    f,
                    "cannot write '{}': {}",
                    path.display(),
                    io_reason(source)
                )
            }
            Self::BadMagnet(e) => write!(f, "{e}"),
            Self::BadPeer(p, e) => write!(f, "--peer {p}: {e} (expected HOST:PORT)"),
            Self::Download(e) => write!(f, "{e}"),
            #[cfg(feature = "daemon")]
            Self::Daemon(e) => write!(f, "{e}"),
            Self::NoDaemon => write!(
                f,
                "this btmini was built without the daemon (cargo feature 'daemon')"
            ),
        }
    }
}

impl std::error::Error for AppError {}

/// A download's argument: a magnet link (parsed), or a `.torrent` file (read and
/// validated).
pub fn load_source(arg: &Path) -> Result<crate::host::Source, AppError> {
    use crate::host::Source;
    match magnet_link(arg) {
        Some(link) => Ok(Source::Magnet(
            Magnet::parse(&link).map_err(AppError::BadMagnet)?,
        )),
        None => Ok(Source::Torrent(std::sync::Arc::new(load_torrent(arg)?))),
    }
}

/// Reads and validates a `.torrent` file, with errors that say what to do.
pub fn load_torrent(path: &Path) -> Result<Metainfo, AppError> {
    let read_err = |source| AppError::ReadTorrent {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(AppError::TorrentIsDir(path.to_owned()));
    }
    if meta.len() > MAX_TORRENT_FILE {
        return Err(AppError::TorrentTooLarge(path.to_owned(), meta.len()));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    Metainfo::from_bytes(&bytes).map_err(|source| AppError::BadTorrent {
        path: path.to_owned(),
        source,
    })
}

/// The argument as a magnet link, if it is one (`magnet:`, any case).
fn magnet_link(arg: &Path) -> Option<String> {
    let s = arg.to_string_lossy();
    s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        .then(|| s.into_owned())
}

/// Writes `text` to standard output; a closed pipe (`btmini info x | head`) is not an error.
fn print(text: &str) -> Result<(), AppError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(AppError::Write {
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `btmini daemon`, in a build without it.
#[cfg(not(feature = "daemon"))]
fn daemon(_: crate::cli::DaemonArgs) -> Result<(), AppError> {
    Err(AppError::NoDaemon)
}

/// `btmini daemon`: runs until SIGINT/SIGTERM.
#[cfg(feature = "daemon")]
fn daemon(a: crate::cli::DaemonArgs) -> Result<(), AppError> {
    let opts = crate::daemon::DaemonOptions {
        output: a.output,
        rpc: std::net::SocketAddr::new(a.rpc_bind, a.rpc_port),
        rpc_auth: a.rpc_auth,
        port: a.port,
        bind: a.bind,
        state_dir: a.state_dir,
        web_ui: a.web_ui,
        dht: a.dht.then_some(a.dht_nodes),
        encryption: a.encryption,
        utp: a.utp,
    };
    crate::daemon::run(opts).map_err(AppError::Daemon)
}

/// Runs the command.
pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Help => print(HELP),
        Command::Version => print(&format!("btmini {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Info { torrent, json } => {
            if let Some(link) = magnet_link(&torrent) {
                let m = Magnet::parse(&link).map_err(AppError::BadMagnet)?;
                return if json {
                    print(&(render_magnet_json(&m) + "\n"))
                } else {
                    print(&render_magnet_text(&m))
                };
            }
            let m = load_torrent(&torrent)?;
            if json {
                print(&(render_json(&m) + "\n"))
            } else {
                print(&render_text(&m))
            }
        }
        Command::Create(args) => create::run(&args),
        Command::Download(args) => download::run(&args),
        Command::Daemon(args) => daemon(args),
    }
}
