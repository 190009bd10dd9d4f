//! Storage failures, each one line for the user.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why storage could not be prepared, written or read.
#[derive(Debug)]
pub enum StorageError {
    /// The file system has too little free space for the torrent's data.
    NoRoom {
        /// The output folder.
        dir: PathBuf,
        /// Bytes still to reserve.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A data file exists with another size and overwriting was not asked for.
    WrongSize {
        /// The file.
        path: PathBuf,
        /// The torrent's size for it.
        expected: u64,
        /// Its size on disk.
        found: u64,
    },
    /// Something that is not a regular file is where a data file must go.
    NotAFile(PathBuf),
    /// Reserving a file's blocks failed (a full disk, a file size limit).
    Reserve {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The OS error.
        source: io::Error,
    },
    /// A system call failed.
    Io {
        /// What was being done: "create", "open", "map", "sync", "read", "write"…
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A piece index or block range outside the torrent (a caller bug or a hostile peer).
    OutOfRange,
    /// A read of a piece that is not verified.
    NotVerified(u32),
    /// Another program changed a data file's size while btmini had it open.
    Changed {
        /// The file.
        path: PathBuf,
        /// The torrent's size for it.
        expected: u64,
        /// Its size now.
        found: u64,
    },
}

impl StorageError {
    pub(super) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the disk is full (or a file size limit reached): the data that is verified is
    /// safe, but no more can be stored.
    pub fn is_no_space(&self) -> bool {
        let errno = match self {
            Self::NoRoom { .. } => return true,
            Self::Reserve { source, .. } | Self::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        matches!(errno, Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT))
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRoom { dir, needed, free } => write!(
                f,
                "not enough disk space in '{}': the torrent needs {needed} more bytes, \
                 {free} are free",
                dir.display()
            ),
            Self::WrongSize {
                path,
                expected,
                found,
            } => write!(
                f,
                "'{}' is {found} bytes but the torrent says {expected}: move it away, or \
                 run again with --overwrite to replace it",
                path.display()
            ),
            Self::NotAFile(p) => write!(f, "'{}' is in the way: not a regular file", p.display()),
            Self::Reserve { path, len, source } => write!(
                f,
                "cannot reserve {len} bytes for '{}': {}",
                path.display(),
                crate::util::io_reason(source)
            ),
            Self::Io { op, path, source } => {
                write!(
                    f,
                    "cannot {op} '{}': {}",
                    path.display(),
                    crate::util::io_reason(source)
                )
            }
            Self::OutOfRange => f.write_str("piece or block out of range"),
            Self::NotVerified(i) => write!(f, "piece {i} is not verified"),
            Self::Changed {
                path,
                expected,
                found,
            } => write!(
                f,
                "'{}' is now {found} bytes, not {expected}: another program changed it; \
                 stopping (the next start checks the data again)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Reserve { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
