//! Reading, judging and atomically replacing the sidecar.

use super::StorageError;
use super::sidecar::{FileStamp, Sidecar};
use crate::metainfo::Metainfo;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `DIR/.NAME.btmini`.
pub(super) fn sidecar_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.btmini"))
}

/// Size and modification time of the file at `path` as it is now; [`FileStamp::ABSENT`]
/// when there is none.
pub(super) fn stamp(path: &Path) -> io::Result<FileStamp> {
    match fs::metadata(path) {
        Ok(m) => Ok(FileStamp {
            size: m.len(),
            mtime_sec: m.mtime(),
            // Nanoseconds: 0..10^9.
            mtime_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileStamp::ABSENT),
        Err(e) => Err(e),
    }
}

/// The sidecar at `path` if it exists and can be trusted for `meta` with the files as they
/// are now (`current`); otherwise why not, for the log. `Ok(None)` means there is none.
pub(super) fn load(
    path: &Path,
    meta: &Metainfo,
    current: &[FileStamp],
) -> Result<Option<Sidecar>, (String, Option<Sidecar>)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err((format!("cannot read the sidecar: {e}"), None)),
    };
    let sc =
        Sidecar::decode(&bytes).map_err(|e| (format!("the sidecar is damaged ({e})"), None))?;
    if sc.info_hash != meta.info_hash {
        return Err(("the sidecar belongs to another torrent".into(), None));
    }
    if sc.have.len() != meta.piece_count() || sc.files.len() != current.len() {
        return Err(("the sidecar does not match this torrent".into(), None));
    }
    if sc.files != current {
        return Err((
            "the data files changed since the sidecar was written".into(),
            Some(sc),
        ));
    }
    Ok(Some(sc))
}

/// Replaces the file at `path` with `bytes` so that a crash at any instant leaves either the
/// old or the new contents: write a temporary file, fsync it, rename it over, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    fn err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
        move |e| StorageError::io(op, p, e)
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(err("create", &tmp))?;
    f.write_all(bytes).map_err(err("write", &tmp))?;
    f.sync_all().map_err(err("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(err("replace", path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("sync", dir))?;
    Ok(())
}
