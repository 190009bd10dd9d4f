//! The data files as a bounded set of open, lazily mapped files: torrents with thousands of
//! files must not run out of descriptors or mappings.

use super::StorageError;
use super::sys;
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// Files kept open and mapped at once; the least recently used one is closed past this.
pub(super) const MAX_OPEN: usize = 64;

pub(super) struct Slot {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    /// False for BEP 47 padding files, which exist only in the piece hashes.
    pub(super) stored: bool,
    open: Option<Open>,
    /// Written through the map since the last sync.
    dirty: bool,
    last_use: u64,
}

struct Open {
    file: File,
    /// `None` for a zero-length file, which cannot be mapped.
    map: Option<MmapMut>,
}

pub(super) struct FileSet {
    pub(super) slots: Vec<Slot>,
    open: usize,
    tick: u64,
}

impl FileSet {
    pub(super) fn new(files: impl IntoIterator<Item = (PathBuf, u64, bool)>) -> Self {
        let slots = files
            .into_iter()
            .map(|(path, len, stored)| Slot {
                path,
                len,
                stored,
                open: None,
                dirty: false,
                last_use: 0,
            })
            .collect();
        Self {
            slots,
            open: 0,
            tick: 0,
        }
    }

    /// File `i`'s bytes, mapped. `i` must be a stored file with a non-zero length.
    pub(super) fn bytes(&mut self, i: usize) -> Result<&mut [u8], StorageError> {
        self.tick += 1;
        if self.slots[i].open.is_none() {
            if self.open >= MAX_OPEN {
                self.close_lru();
            }
            let slot = &self.slots[i];
            let io = |source| StorageError::io("open", &slot.path, source);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&slot.path)
                .map_err(io)?;
            let map = if slot.len == 0 {
                None
            } else {
                Some(
                    sys::map(&file, slot.len)
                        .map_err(|e| StorageError::io("map", &slot.path, e))?,
                )
            };
            self.slots[i].open = Some(Open { file, map });
            self.open += 1;
        }
        let slot = &mut self.slots[i];
        slot.last_use = self.tick;
        let open = slot.open.as_mut().expect("opened above");
        Ok(open.map.as_deref_mut().unwrap_or(&mut []))
    }

    /// Notes that file `i` was written through its map.
    pub(super) fn mark_dirty(&mut self, i: usize) {
        self.slots[i].dirty = true;
    }

    /// Marks every stored file dirty, so the next sync covers them all (after a recheck,
    /// whose bytes may still be only in the page cache).
    pub(super) fn mark_all_dirty(&mut self) {
        for s in &mut self.slots {
            s.dirty |= s.stored;
        }
    }

    /// Makes every write so far durable. `fdatasync` on the descriptor writes back the
    /// pages dirtied through the map, exactly as `msync(MS_SYNC)` of the same range would
    /// (both end in the kernel's `vfs_fsync_range`), and also covers files whose map was
    /// closed in between.
    pub(super) fn sync(&mut self) -> Result<(), StorageError> {
        for slot in self.slots.iter_mut().filter(|s| s.dirty) {
            let synced = match &slot.open {
                Some(open) => open.file.sync_data(),
                None => OpenOptions::new()
                    .write(true)
                    .open(&slot.path)
                    .and_then(|f| f.sync_data()),
            };
            synced.map_err(|e| StorageError::io("sync", &slot.path, e))?;
            slot.dirty = false;
        }
        Ok(())
    }

    fn close_lru(&mut self) {
        let lru = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.open.is_some())
            .min_by_key(|(_, s)| s.last_use)
            .map(|(i, _)| i);
        if let Some(i) = lru {
            // Unmapping loses nothing (the pages stay in the page cache and `sync` reopens
            // a dirty file to flush it), so closing needs no flush of its own.
            self.slots[i].open = None;
            self.open -= 1;
        }
    }

    /// Number of files open right now.
    #[cfg(test)]
    pub(super) fn open_count(&self) -> usize {
        self.open
    }
}
