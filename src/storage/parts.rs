//! The part file (`DIR/.NAME.parts`): where the bytes of files that are not wanted go when a
//! wanted piece also covers them. Such a piece is downloaded whole so that it can be
//! verified, but its unwanted file is never created at full size: that file's share of the
//! piece waits here, and moves into the file if the file is wanted later.
//!
//! Only a piece that crosses from one stored file into another can need it, so the file is
//! laid out in slots of one piece length, one per such *boundary piece*, in piece order.
//! The layout follows from the torrent alone (no index to keep crash-safe); a slot's bytes
//! sit at their offset within the piece, and only the parts of files not on disk are ever
//! written, so on file systems with sparse files the part file takes little more space than
//! those bytes.

use super::StorageError;
use super::files::Handle;
use crate::geometry::Geometry;
use crate::metainfo::Metainfo;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `DIR/.NAME.parts`.
pub(super) fn parts_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.parts"))
}

pub(super) struct PartFile {
    path: PathBuf,
    file: Option<Arc<File>>,
    piece_length: u64,
    /// The boundary pieces, sorted: piece `boundary[k]` owns slot `k`.
    boundary: Vec<u32>,
    /// Written since the last sync.
    dirty: bool,
}

impl PartFile {
    pub(super) fn new(path: PathBuf, meta: &Metainfo, geometry: &Geometry) -> Self {
        let stored = |f: u32| !meta.files[f as usize].padding;
        let boundary = (0..meta.piece_count())
            .filter(|&p| {
                let mut files = geometry
                    .spans(p)
                    .iter()
                    .map(|s| s.file)
                    .filter(|&f| stored(f));
                files.next().is_some_and(|first| files.any(|f| f != first))
            })
            .collect();
        Self {
            path,
            file: None,
            piece_length: meta.piece_length,
            boundary,
            dirty: false,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Where byte `at` of piece `index` is kept, if the piece has a slot.
    fn offset(&self, index: u32, at: u64) -> Option<u64> {
        let slot = self.boundary.binary_search(&index).ok()?;
        Some(slot as u64 * self.piece_length + at)
    }

    /// Whether piece `index` has a slot (crosses from one stored file into another).
    pub(super) fn has_slot(&self, index: u32) -> bool {
        self.offset(index, 0).is_some()
    }

    /// The boundary pieces.
    pub(super) fn boundary(&self) -> &[u32] {
        &self.boundary
    }

    /// Opens the file (creating it if `create`) unless open already; `Ok(false)` when it
    /// does not exist and was not to be created.
    fn open(&mut self, create: bool) -> Result<bool, StorageError> {
        if self.file.is_none() {
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .open(&self.path);
            match opened {
                Ok(f) => self.file = Some(Arc::new(f)),
                Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(StorageError::io("open", &self.path, e)),
            }
        }
        Ok(true)
    }

    /// Where bytes `at..` of piece `index` go: the file (created if need be; it counts as
    /// written from now on) and the offset. The piece must have a slot.
    pub(super) fn handle(&mut self, index: u32, at: u64) -> Result<(Handle, u64), StorageError> {
        let pos = self.offset(index, at).ok_or(StorageError::OutOfRange)?;
        self.open(true)?;
        self.dirty = true;
        let h = Handle {
            file: self.file.clone().expect("opened"),
            path: self.path.clone(),
            len: 0,
        };
        Ok((h, pos))
    }

    /// The part file if it was written since the last call, to be synced; it counts as
    /// clean from now on.
    pub(super) fn take_dirty(&mut self) -> Option<(PathBuf, Option<Arc<File>>)> {
        std::mem::take(&mut self.dirty).then(|| (self.path.clone(), self.file.clone()))
    }

    /// Appends `len` bytes `at..` of piece `index` to `out`: zeros where nothing was kept
    /// (no slot, no part file, a hole).
    pub(super) fn read(
        &mut self,
        index: u32,
        at: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let from = out.len();
        out.resize(from + len, 0);
        let Some(pos) = self.offset(index, at) else {
            return Ok(());
        };
        if !self.open(false)? {
            return Ok(());
        }
        let file = self.file.as_ref().expect("opened");
        let err = |e| StorageError::io("read", &self.path, e);
        let buf = &mut out[from..];
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], pos + done as u64) {
                // Past the end: the rest stays zero.
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// Deletes the part file (nothing in it is needed any more).
    pub(super) fn remove(&mut self) -> Result<(), StorageError> {
        self.file = None;
        self.dirty = false;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StorageError::io("remove", &self.path, e))
            }
            _ => Ok(()),
        }
    }
}
