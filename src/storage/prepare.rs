//! Making the data files exist at their full size with their blocks reserved, after checking
//! that the disk has room — all before any peer is contacted.

use super::{StorageError, sys};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How the data files' space is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// `posix_fallocate`, or zeros written into the holes where the file system lacks it.
    #[default]
    Full,
    /// Always write zeros into the holes (for file systems where fallocate misbehaves).
    ZeroFill,
    /// Only set the size, leaving a sparse file: a piece written on a full disk then fails
    /// with "No space left on device" mid-download. For tests and callers who know their
    /// disk.
    Sparse,
}

/// What preparing found.
pub(super) struct Prepared {
    /// No stored file existed before: there is nothing on disk to check.
    pub(super) fresh: bool,
    /// Some file was created, resized or had blocks added, so its time changed.
    pub(super) touched: bool,
}

/// Creates, sizes and reserves every `(path, length)` under `dir`.
pub(super) fn prepare(
    files: &[(PathBuf, u64)],
    dir: &Path,
    allocation: Allocation,
    overwrite: bool,
) -> Result<Prepared, StorageError> {
    // First look at everything and add up what is missing, so that a disk without room is
    // reported before anything is created.
    let mut plan = Vec::with_capacity(files.len());
    let mut needed = 0u64;
    let mut existed = 0usize;
    for (path, len) in files {
        let (exists, size, allocated) = match fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(StorageError::NotAFile(path.clone())),
            Ok(m) => (true, m.len(), m.blocks() * 512),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, 0, 0),
            Err(e) => return Err(StorageError::io("inspect", path, e)),
        };
        let truncate = exists && size != *len;
        if truncate && !overwrite {
            return Err(StorageError::WrongSize {
                path: path.clone(),
                expected: *len,
                found: size,
            });
        }
        existed += usize::from(exists);
        let have = if truncate { 0 } else { allocated.min(*len) };
        if allocation != Allocation::Sparse {
            needed += len - have;
        }
        plan.push((path, *len, exists, truncate, have < *len));
    }
    // An output folder that cannot be created is reported as what it is, not as a lack of
    // space (statvfs of /proc, say, reports 0 bytes free).
    fs::create_dir_all(dir).map_err(|e| StorageError::io("create", dir, e))?;
    if needed > 0 {
        let probe = existing_ancestor(dir);
        let free = sys::free_bytes(&probe).map_err(|e| StorageError::io("inspect", &probe, e))?;
        if needed > free {
            return Err(StorageError::NoRoom {
                dir: dir.to_owned(),
                needed,
                free,
            });
        }
    }

    let mut touched = false;
    for (path, len, exists, truncate, short) in plan {
        if exists && !truncate && (!short || allocation == Allocation::Sparse) {
            continue;
        }
        touched = true;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| StorageError::io("create", parent, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)
            .map_err(|e| StorageError::io("create", path, e))?;
        let reserve_err = |source| StorageError::Reserve {
            path: path.clone(),
            len,
            source,
        };
        match allocation {
            Allocation::Full => sys::allocate(&file, len).map_err(reserve_err)?,
            Allocation::ZeroFill => {
                file.set_len(len).map_err(reserve_err)?;
                sys::fill_holes(&file, len).map_err(reserve_err)?;
            }
            Allocation::Sparse => file.set_len(len).map_err(reserve_err)?,
        }
    }
    Ok(Prepared {
        fresh: existed == 0,
        touched,
    })
}

/// `dir` or its nearest ancestor that exists, to ask its file system for free space.
pub(super) fn existing_ancestor(dir: &Path) -> PathBuf {
    let mut p = dir.to_owned();
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_owned(),
            _ => return PathBuf::from("."),
        }
    }
    p
}
