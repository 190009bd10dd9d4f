//! The data files as a bounded set of open, lazily mapped files: torrents with thousands of
//! files must not run out of descriptors or mappings.
//!
//! Reads go through read-only shared maps; writes go through `pwrite` on the same
//! descriptors (the page cache is one, so a read sees a write at once). Writing through the
//! map instead made each first touch of a fresh page fault and zero-fill it before the copy
//! (measured by `tools/write_paths.rs`), and left every written page counted in the
//! process's resident set. The pages read through a map are released after
//! [`RELEASE_BYTES`] of reads, so they do not pile up there either.

use super::StorageError;
use super::sys;
use memmap2::Mmap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Files kept open and mapped at once; the least recently used one is closed past this.
pub(super) const MAX_OPEN: usize = 64;

/// Largest single `pwrite`. Large writes make the kernel (6.18, ext4) put the file in large
/// page-cache folios, taken from the high-order free blocks that this virtual machine has
/// handed back to its host; each first touch of those is slow. With one 4 MiB `pwrite` per
/// piece, the kernel's copy into the page cache (`copy_folio_from_iter_atomic`) took 73% of
/// a download's CPU. Medians of 3-round runs of tools/bench/run (1 GiB, 256 KiB pieces):
/// 6.2 s wall with 256 KiB calls, 5.3 s with 64 KiB, 4.0 s with 4 KiB, 2.9 s and 4.5 s in
/// two runs with 16 KiB. 16 KiB, one block, it is.
pub(super) const WRITE_CHUNK: usize = 16 * 1024;

/// Bytes read through the maps after which the touched pages are released from this
/// process's page tables: this bounds what file pages count in its resident set.
pub(super) const RELEASE_BYTES: u64 = 4 << 20;

pub(super) struct Slot {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    /// False for BEP 47 padding files, which exist only in the piece hashes.
    pub(super) stored: bool,
    /// On disk (wanted, or there already); a stored file that is not keeps its share of
    /// the pieces it shares with wanted files in the part file.
    pub(super) in_place: bool,
    open: Option<Open>,
    /// Written since the last sync.
    dirty: bool,
    last_use: u64,
}

struct Open {
    file: File,
    /// Mapped at the first read; `None` before, and for a zero-length file.
    map: Option<Mmap>,
    /// Bytes of the map read since the last release, as one range.
    touched: Option<(usize, usize)>,
}

/// Refuses a file whose size is no longer the torrent's.
fn check_size(file: &File, expected: u64, path: &Path) -> Result<(), StorageError> {
    let found = file
        .metadata()
        .map_err(|e| StorageError::io("inspect", path, e))?
        .len();
    if found == expected {
        Ok(())
    } else {
        Err(StorageError::Changed {
            path: path.to_owned(),
            expected,
            found,
        })
    }
}

pub(super) struct FileSet {
    pub(super) slots: Vec<Slot>,
    open: usize,
    tick: u64,
    /// Bytes read through the maps since the last release.
    read_since_release: u64,
}

impl FileSet {
    pub(super) fn new(files: impl IntoIterator<Item = (PathBuf, u64, bool, bool)>) -> Self {
        let slots = files
            .into_iter()
            .map(|(path, len, stored, in_place)| Slot {
                path,
                len,
                stored,
                in_place: stored && in_place,
                open: None,
                dirty: false,
                last_use: 0,
            })
            .collect();
        Self {
            slots,
            open: 0,
            tick: 0,
            read_since_release: 0,
        }
    }

    /// File `i`, opened (closing the least recently used one past [`MAX_OPEN`]), with its
    /// slot's path and size beside it.
    fn open(&mut self, i: usize) -> Result<(&mut Open, &Path, u64), StorageError> {
        self.tick += 1;
        if self.slots[i].open.is_none() {
            if self.open >= MAX_OPEN {
                self.close_lru();
            }
            let slot = &self.slots[i];
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&slot.path)
                .map_err(|e| StorageError::io("open", &slot.path, e))?;
            self.slots[i].open = Some(Open {
                file,
                map: None,
                touched: None,
            });
            self.open += 1;
        }
        let slot = &mut self.slots[i];
        slot.last_use = self.tick;
        let open = slot.open.as_mut().expect("opened above");
        Ok((open, &slot.path, slot.len))
    }

    /// Bytes `offset..offset + len` of file `i`, read through its map. `i` must be a
    /// stored file and the range inside it.
    pub(super) fn read(
        &mut self,
        i: usize,
        offset: u64,
        len: usize,
    ) -> Result<&[u8], StorageError> {
        if len == 0 {
            return Ok(&[]);
        }
        self.read_since_release += len as u64;
        let (open, path, flen) = self.open(i)?;
        // A file shortened under its map would kill the process with SIGBUS on the read:
        // its size is checked first, every time (one fstat, small next to the copy).
        check_size(&open.file, flen, path)?;
        if open.map.is_none() {
            let map = sys::map(&open.file, flen).map_err(|e| StorageError::io("map", path, e))?;
            open.map = Some(map);
        }
        let (from, to) = (offset as usize, offset as usize + len);
        open.touched = Some(match open.touched {
            Some((a, b)) => (a.min(from), b.max(to)),
            None => (from, to),
        });
        Ok(&open.map.as_deref().expect("mapped above")[from..to])
    }

    /// Writes `data` at `offset` in file `i` (a stored file; the range inside it), in
    /// calls of at most [`WRITE_CHUNK`] bytes.
    pub(super) fn write(&mut self, i: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let (open, path, flen) = self.open(i)?;
        // A write past the end of a shortened file would quietly grow it back with a hole.
        check_size(&open.file, flen, path)?;
        let mut at = offset;
        for chunk in data.chunks(WRITE_CHUNK) {
            open.file
                .write_all_at(chunk, at)
                .map_err(|e| StorageError::io("write", path, e))?;
            at += chunk.len() as u64;
        }
        sys::start_writeback(&open.file, offset, data.len() as u64);
        self.slots[i].dirty = true;
        Ok(())
    }

    /// Releases the map pages read since the last release once there are enough of them.
    pub(super) fn release_if_due(&mut self) {
        if self.read_since_release >= RELEASE_BYTES {
            self.release();
        }
    }

    /// Drops every page read through the maps from this process's page tables.
    pub(super) fn release(&mut self) {
        self.read_since_release = 0;
        for slot in &mut self.slots {
            let Some(open) = &mut slot.open else { continue };
            if let (Some(map), Some((a, b))) = (&open.map, open.touched.take()) {
                // Failure only leaves the pages resident: worth a log line, not an error.
                if let Err(e) = sys::release(map, a, b - a) {
                    log::debug!("releasing pages of {}: {e}", slot.path.display());
                }
            }
        }
    }

    /// Bytes read through the maps since the last release (for tests).
    #[cfg(test)]
    pub(super) fn unreleased(&self) -> u64 {
        self.read_since_release
    }

    /// Marks every stored file dirty, so the next sync covers them all (after a recheck,
    /// whose bytes may still be only in the page cache).
    pub(super) fn mark_all_dirty(&mut self) {
        for s in &mut self.slots {
            s.dirty |= s.in_place;
        }
    }

    /// Makes every write so far durable: `fdatasync` of each file written since the last
    /// sync (reopened if it was closed in between).
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
            // Closing loses nothing (the pages stay in the page cache and `sync` reopens a
            // dirty file to flush it), so it needs no flush of its own.
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
