//! The data files as a bounded set of open files, read through small mapped windows:
//! torrents with thousands of files must not run out of descriptors, and a file of any size
//! must fit a 32-bit address space.
//!
//! Reads map the [`WINDOW`]-aligned stretch of the file around them (read-only, shared) and
//! copy out of it; a read that crosses windows is handed over a piece at a time. All the
//! windows of the process together hold at most [`MAP_BUDGET`] bytes of address space: a
//! storage that needs a new window past it unmaps its own least recently used ones, and
//! when it holds none (other torrents hold the budget) it reads with `pread` instead. The
//! windows are unmapped after [`RELEASE_BYTES`] of reads, so the file pages read through
//! them stop counting in the process's resident set.
//!
//! Writes go through `pwrite` on the same descriptors (the page cache is one, so a read sees
//! a write at once). Writing through a map instead made each first touch of a fresh page
//! fault and zero-fill it before the copy (measured by `tools/write_paths.rs`), and left
//! every written page counted in the process's resident set. The descriptors are shared
//! (`Arc`) with the disk thread, which writes and syncs them off the loop (`disk.rs`).

use super::StorageError;
use super::sys;
use memmap2::Mmap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files kept open at once; the least recently used one is closed past this.
pub(super) const MAX_OPEN: usize = 64;

/// Bytes of a file mapped at once, aligned to their own size (a multiple of every page
/// size Linux uses for file maps).
pub(super) const WINDOW: u64 = 4 << 20;

/// Address space every window of the process may hold together (64 windows), whatever the
/// torrents' sizes: a 32-bit process has 3 GiB for everything.
pub(super) const MAP_BUDGET: usize = 256 << 20;

/// Address space that windows may take, shared by the file sets that draw on it.
pub(super) struct Budget {
    mapped: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(super) const fn new(limit: usize) -> Self {
        Self {
            mapped: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `len` bytes, if that many are left.
    fn take(&self, len: usize) -> bool {
        self.mapped
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m + len <= self.limit).then_some(m + len)
            })
            .is_ok()
    }

    fn give_back(&self, len: usize) {
        self.mapped.fetch_sub(len, Ordering::Relaxed);
    }

    /// Bytes taken now (for tests).
    #[cfg(test)]
    pub(super) fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }
}

/// The process's budget, [`MAP_BUDGET`]: every storage draws on it.
static PROCESS: Budget = Budget::new(MAP_BUDGET);

/// Largest single `pwrite`. Large writes make the kernel (6.18, ext4) put the file in large
/// page-cache folios, taken from the high-order free blocks that this virtual machine has
/// handed back to its host; each first touch of those is slow. With one 4 MiB `pwrite` per
/// piece, the kernel's copy into the page cache (`copy_folio_from_iter_atomic`) took 73% of
/// a download's CPU. Medians of 3-round runs of tools/bench/run (1 GiB, 256 KiB pieces):
/// 6.2 s wall with 256 KiB calls, 5.3 s with 64 KiB, 4.0 s with 4 KiB, 2.9 s and 4.5 s in
/// two runs with 16 KiB. 16 KiB, one block, it is.
pub(super) const WRITE_CHUNK: usize = 16 * 1024;

/// Bytes read through the windows after which they are unmapped: this bounds what file
/// pages count in the process's resident set.
pub(super) const RELEASE_BYTES: u64 = 4 << 20;

pub(super) struct Slot {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    /// False for BEP 47 padding files, which exist only in the piece hashes.
    pub(super) stored: bool,
    /// On disk (wanted, or there already); a stored file that is not keeps its share of
    /// the pieces it shares with wanted files in the part file.
    pub(super) in_place: bool,
    file: Option<Arc<File>>,
    /// Written since the last sync.
    pub(super) dirty: bool,
    last_use: u64,
}

/// A mapped stretch of a file; its bytes go back to the budget when it is dropped.
struct Window {
    file: usize,
    start: u64,
    map: Mmap,
    last_use: u64,
    budget: &'static Budget,
}

impl Drop for Window {
    fn drop(&mut self) {
        self.budget.give_back(self.map.len());
    }
}

/// Refuses a file whose size is no longer the torrent's.
pub(super) fn check_size(file: &File, expected: u64, path: &Path) -> Result<(), StorageError> {
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

/// Writes `data` at `offset` in `file` (`expected` bytes long), in calls of at most
/// [`WRITE_CHUNK`] bytes, and starts its writeback. On the loop (tests, tools) or the disk
/// thread alike.
pub(super) fn write_at(
    file: &File,
    path: &Path,
    expected: u64,
    offset: u64,
    data: &[u8],
) -> Result<(), StorageError> {
    // A write past the end of a shortened file would quietly grow it back with a hole.
    check_size(file, expected, path)?;
    let mut at = offset;
    for chunk in data.chunks(WRITE_CHUNK) {
        file.write_all_at(chunk, at)
            .map_err(|e| StorageError::io("write", path, e))?;
        at += chunk.len() as u64;
    }
    sys::start_writeback(file, offset, data.len() as u64);
    Ok(())
}

/// A file to write: its descriptor (shared with the loop), path and expected size.
#[derive(Clone)]
pub(super) struct Handle {
    pub(super) file: Arc<File>,
    pub(super) path: PathBuf,
    pub(super) len: u64,
}

pub(super) struct FileSet {
    pub(super) slots: Vec<Slot>,
    open: usize,
    tick: u64,
    windows: Vec<Window>,
    budget: &'static Budget,
    /// Bytes read through the windows since they were last unmapped.
    read_since_release: u64,
    /// Where a read goes when no window can be had.
    scratch: Vec<u8>,
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
                file: None,
                dirty: false,
                last_use: 0,
            })
            .collect();
        Self {
            slots,
            open: 0,
            tick: 0,
            windows: Vec::new(),
            budget: &PROCESS,
            read_since_release: 0,
            scratch: Vec::new(),
        }
    }

    /// Draws on `budget` instead of the process's (for tests).
    #[cfg(test)]
    pub(super) fn with_budget(mut self, budget: &'static Budget) -> Self {
        self.windows.clear();
        self.budget = budget;
        self
    }

    /// File `i`, opened (closing the least recently used one past [`MAX_OPEN`]).
    pub(super) fn handle(&mut self, i: usize) -> Result<Handle, StorageError> {
        let file = self.open(i)?;
        let slot = &self.slots[i];
        Ok(Handle {
            file,
            path: slot.path.clone(),
            len: slot.len,
        })
    }

    /// File `i`'s descriptor, opened if need be (closing the least recently used one past
    /// [`MAX_OPEN`]): a reference count, no allocation, as each block read needs.
    fn open(&mut self, i: usize) -> Result<Arc<File>, StorageError> {
        self.tick += 1;
        if self.slots[i].file.is_none() {
            if self.open >= MAX_OPEN {
                self.close_lru();
            }
            let slot = &self.slots[i];
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&slot.path)
                .map_err(|e| StorageError::io("open", &slot.path, e))?;
            self.slots[i].file = Some(Arc::new(file));
            self.open += 1;
        }
        let slot = &mut self.slots[i];
        slot.last_use = self.tick;
        Ok(slot.file.clone().expect("opened above"))
    }

    /// Hands bytes `offset..offset + len` of file `i` to `out`, in one or more slices in
    /// order. `i` must be a stored file and the range inside it.
    pub(super) fn read(
        &mut self,
        i: usize,
        offset: u64,
        len: usize,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<(), StorageError> {
        if len == 0 {
            return Ok(());
        }
        self.read_since_release += len as u64;
        let file = self.open(i)?;
        let flen = self.slots[i].len;
        // A file shortened under its map would kill the process with SIGBUS on the read:
        // its size is checked first, every time (one fstat, small next to the copy).
        check_size(&file, flen, &self.slots[i].path)?;
        let end = offset + len as u64;
        let mut at = offset;
        while at < end {
            let start = at - at % WINDOW;
            let stop = end.min(start + WINDOW);
            // Both below WINDOW: they fit any usize.
            let (from, to) = (to_usize(at - start), to_usize(stop - start));
            match self.window(i, start, &file)? {
                Some(k) => out(&self.windows[k].map[from..to]),
                None => {
                    self.scratch.resize(to - from, 0);
                    file.read_exact_at(&mut self.scratch, at)
                        .map_err(|e| StorageError::io("read", &self.slots[i].path, e))?;
                    out(&self.scratch);
                }
            }
            at = stop;
        }
        Ok(())
    }

    /// The window of file `i` that starts at `start`, mapped if it is not yet; `None` when
    /// the process's budget has no room and this set holds no window to give up.
    fn window(&mut self, i: usize, start: u64, file: &File) -> Result<Option<usize>, StorageError> {
        self.tick += 1;
        if let Some(k) = self
            .windows
            .iter()
            .position(|w| w.file == i && w.start == start)
        {
            self.windows[k].last_use = self.tick;
            return Ok(Some(k));
        }
        let flen = self.slots[i].len;
        let len = to_usize(WINDOW.min(flen - start));
        while !self.budget.take(len) {
            let Some(lru) = (0..self.windows.len()).min_by_key(|&k| self.windows[k].last_use)
            else {
                return Ok(None);
            };
            self.windows.swap_remove(lru);
        }
        let map = match sys::map(file, flen, start, len) {
            Ok(m) => m,
            Err(e) => {
                self.budget.give_back(len);
                return Err(StorageError::io("map", &self.slots[i].path, e));
            }
        };
        self.windows.push(Window {
            file: i,
            start,
            map,
            last_use: self.tick,
            budget: self.budget,
        });
        Ok(Some(self.windows.len() - 1))
    }

    /// Writes `data` at `offset` in file `i` (a stored file; the range inside it).
    pub(super) fn write(&mut self, i: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let h = self.handle(i)?;
        write_at(&h.file, &h.path, h.len, offset, data)?;
        self.slots[i].dirty = true;
        Ok(())
    }

    /// Unmaps the windows once enough has been read through them.
    pub(super) fn release_if_due(&mut self) {
        if self.read_since_release >= RELEASE_BYTES {
            self.release();
        }
    }

    /// Unmaps every window: the pages read through them leave this process's page tables
    /// (the page cache keeps them).
    pub(super) fn release(&mut self) {
        self.read_since_release = 0;
        self.windows.clear();
    }

    /// Bytes read through the windows since the last release (for tests).
    #[cfg(test)]
    pub(super) fn unreleased(&self) -> u64 {
        self.read_since_release
    }

    /// Windows mapped right now (for tests).
    #[cfg(test)]
    pub(super) fn windows(&self) -> usize {
        self.windows.len()
    }

    /// Marks every stored file dirty, so the next sync covers them all (after a recheck,
    /// whose bytes may still be only in the page cache).
    pub(super) fn mark_all_dirty(&mut self) {
        for s in &mut self.slots {
            s.dirty |= s.in_place;
        }
    }

    /// The files written since the last call (their descriptors when open, else their
    /// paths), to be synced; they count as clean from now on.
    pub(super) fn take_dirty(&mut self) -> Vec<(PathBuf, Option<Arc<File>>)> {
        self.slots
            .iter_mut()
            .filter(|s| s.dirty)
            .map(|s| {
                s.dirty = false;
                (s.path.clone(), s.file.clone())
            })
            .collect()
    }

    /// Makes every write so far durable: `fdatasync` of each file written since the last
    /// sync (reopened if it was closed in between).
    pub(super) fn sync(&mut self) -> Result<(), StorageError> {
        sync_files(&self.take_dirty())
    }

    fn close_lru(&mut self) {
        let lru = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.file.is_some())
            .min_by_key(|(_, s)| s.last_use)
            .map(|(i, _)| i);
        if let Some(i) = lru {
            // Closing loses nothing (the pages stay in the page cache and `sync` reopens a
            // dirty file to flush it), so it needs no flush of its own. Its windows stay
            // valid: a map holds the file by itself.
            self.slots[i].file = None;
            self.open -= 1;
        }
    }

    /// Number of files open right now.
    #[cfg(test)]
    pub(super) fn open_count(&self) -> usize {
        self.open
    }
}

/// `fdatasync` of each file (opened by its path when no descriptor is given).
pub(super) fn sync_files(files: &[(PathBuf, Option<Arc<File>>)]) -> Result<(), StorageError> {
    for (path, file) in files {
        let synced = match file {
            Some(f) => f.sync_data(),
            None => OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.sync_data()),
        };
        synced.map_err(|e| StorageError::io("sync", path, e))?;
    }
    Ok(())
}

/// A length known to be below [`WINDOW`] (or a piece: at most 128 MiB), as a `usize`.
pub(super) fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("below WINDOW, or a piece's length: fits 32 bits")
}
