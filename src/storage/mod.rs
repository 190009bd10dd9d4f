//! Storage: the torrent's files on disk, memory-mapped, written only with verified pieces,
//! and the sidecar that makes a restart resume without re-hashing.
//!
//! Layout: a single-file torrent is `DIR/NAME`; a multi-file one `DIR/NAME/path/to/file`.
//! Folders and zero-length files are created; BEP 47 padding files never touch the disk.
//!
//! File selection: a file that is not wanted is not created (one already on disk stays and
//! is used). A wanted piece that also covers such a file keeps that file's share in the
//! part file (`parts.rs`); when the file is wanted later, it is created and its share
//! moves in from there. The sidecar stamps a file not on disk as absent, and the part file
//! after the data files, so a restart trusts them only as they were left.
//!
//! The rule that holds after a crash at any instant: **a bit set in the sidecar names a piece
//! whose bytes are durably on disk.** [`Storage::write_piece`] checks the piece's SHA-1 and
//! only then writes it in place; [`Storage::flush`] first makes the written data durable, then
//! replaces the sidecar atomically. A crash loses at most the pieces written since the last
//! flush, which [`Storage::wants_flush`] keeps to a few seconds' or a few pieces' worth.
//!
//! Off the loop: with a disk thread ([`Storage::use_disk`], what the host does), the hash is
//! still checked by the caller, but the writes ([`Storage::submit_piece`]) and the records
//! ([`Storage::start_flush`]) run on that thread, in order (`disk.rs`). A piece is verified
//! (in [`Storage::have`], readable) only once it is written, and a record claims only the
//! pieces written before it was asked for, after syncing them: the rule above holds as it
//! does inline.
//!
//! On [`Storage::open`], a sidecar whose info-hash, file sizes and modification times match is
//! trusted; anything else (missing with data present, damaged, foreign, stale) asks for a
//! [`Storage::recheck`], which hashes what is on disk.
//!
//! Memory: no copy of the torrent's data is kept. At most [`MAX_OPEN_FILES`] files are open
//! at a time; reads go through read-only maps of 4 MiB windows, 256 MiB of them at most in
//! the whole process whatever the torrents' sizes (a 32-bit address space holds them), let
//! go after every few MiB read; verified pieces are written with `pwrite` (see `files.rs`
//! for why).

mod disk;
mod error;
mod files;
mod parts;
mod prepare;
mod resume;
pub mod sidecar;
mod sys;

pub use disk::Disk;
pub use error::StorageError;
pub use prepare::Allocation;
pub use resume::write_atomic;
pub use sys::ignore_sigxfsz;

/// Free bytes on the file system that holds `dir` (or its nearest folder that exists).
pub fn free_space(dir: &Path) -> std::io::Result<u64> {
    sys::free_bytes(&prepare::existing_ancestor(dir))
}

/// Where the sidecar of `meta`'s data in `dir` is.
pub fn sidecar_path(dir: &Path, meta: &Metainfo) -> PathBuf {
    resume::sidecar_path(dir, &meta.name)
}

/// Where the part file of `meta`'s data in `dir` is (it exists only while a file is not
/// wanted).
pub fn parts_path(dir: &Path, meta: &Metainfo) -> PathBuf {
    parts::parts_path(dir, &meta.name)
}

use crate::bitfield::Bitfield;
use crate::geometry::{self, Geometry};
use crate::metainfo::Metainfo;
use files::FileSet;
use parts::PartFile;
use sidecar::FileStamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Files kept open and mapped at once.
pub const MAX_OPEN_FILES: usize = files::MAX_OPEN;

/// Flush when this many verified pieces are waiting…
const FLUSH_PIECES: u32 = 64;
/// …or this many bytes…
const FLUSH_BYTES: u64 = 64 << 20;
/// …or when the oldest has waited this long.
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How to open storage.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageOptions {
    /// How space is reserved.
    pub allocation: Allocation,
    /// Replace data files of the wrong size instead of refusing to start.
    pub overwrite: bool,
    /// Hash everything on disk even if the sidecar could be trusted.
    pub force_recheck: bool,
}

/// What [`Storage::open`] concluded about the data already on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Nothing was on disk: every file was created just now.
    Fresh,
    /// The sidecar matched: its pieces are trusted without hashing.
    Trusted,
    /// The data on disk must be hashed first ([`Storage::recheck`]); the text says why.
    NeedsRecheck(String),
}

/// The outcome of [`Storage::submit_piece`].
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Checked, and on its way to disk: [`Storage::take_written`] gives it back once it is
    /// written (and readable).
    Queued,
    /// Done with now (written inline, refused, or not to be written): the outcome, and the
    /// buffer back.
    Done(WriteOutcome, Vec<u8>),
}

/// The outcome of [`Storage::write_piece`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The hash matched; the piece is in place (durable at the next flush).
    Written,
    /// The hash did not match; nothing was written.
    HashMismatch,
    /// The piece was already verified; nothing was written.
    AlreadyHave,
    /// The hash matched, but the piece lies in files that are not wanted and not on disk,
    /// with nowhere to keep it (it was started before they were deselected): dropped.
    Dropped,
}

/// A torrent's data on disk.
pub struct Storage {
    meta: Arc<Metainfo>,
    geometry: Geometry,
    files: FileSet,
    parts: PartFile,
    dir: PathBuf,
    opts: StorageOptions,
    sidecar_path: PathBuf,
    resume: Resume,
    /// Verified pieces whose bytes are in the files (durable or not yet).
    have: Bitfield,
    pending_pieces: u32,
    pending_bytes: u64,
    pending_since: Option<Instant>,
    /// The sidecar on disk is out of date for a reason other than new pieces.
    stale: bool,
    uploaded: u64,
    /// The upload count the sidecar on disk holds.
    saved_uploaded: u64,
    /// While a check runs: the next piece to hash.
    checked: Option<u32>,
    /// The disk thread, once [`Storage::use_disk`] gave one; without it pieces are written
    /// and recorded inline.
    line: Option<disk::Line>,
    /// Verified pieces on their way to disk.
    writing: Bitfield,
    in_flight: u32,
    /// A record (sync, then the sidecar) is under way on the disk thread.
    recording: bool,
    /// Pieces the disk thread wrote, for [`Storage::take_written`].
    written: Vec<(u32, Vec<u8>)>,
}

impl Storage {
    /// Creates or opens the data files under `dir`, reserves their space (or fails at once
    /// with [`StorageError::NoRoom`]) and reads the sidecar.
    pub fn open(
        meta: Arc<Metainfo>,
        dir: &Path,
        opts: StorageOptions,
    ) -> Result<Self, StorageError> {
        Self::open_selected(meta, dir, opts, &[])
    }

    /// Like [`Storage::open`], with only the files `wanted` names (by index in
    /// [`Metainfo::files`]; a shorter list wants the rest) created if missing.
    pub fn open_selected(
        meta: Arc<Metainfo>,
        dir: &Path,
        opts: StorageOptions,
        wanted: &[bool],
    ) -> Result<Self, StorageError> {
        let paths: Vec<PathBuf> = meta
            .files
            .iter()
            .map(|f| f.path.iter().fold(dir.to_owned(), |p, c| p.join(c)))
            .collect();
        let geometry = Geometry::new(&meta);
        let parts = PartFile::new(parts::parts_path(dir, &meta.name), &meta, &geometry);
        // The files as they are before anything is created: what the sidecar must match.
        let mut before = Vec::with_capacity(paths.len() + 1);
        let mut in_place = Vec::with_capacity(paths.len());
        for (i, (f, path)) in meta.files.iter().zip(&paths).enumerate() {
            let stamp = if f.padding {
                None
            } else {
                Some(resume::stamp(path).map_err(|e| StorageError::io("inspect", path, e))?)
            };
            let absent = stamp.is_some_and(|s| s == FileStamp::ABSENT);
            in_place.push(!f.padding && (!absent || wanted.get(i).copied().unwrap_or(true)));
            before.extend(stamp);
        }
        let had_parts = resume::stamp(parts.path())
            .map_err(|e| StorageError::io("inspect", parts.path(), e))?;
        if had_parts != FileStamp::ABSENT {
            before.push(had_parts);
        }
        let slots: Vec<(PathBuf, u64, bool, bool)> = meta
            .files
            .iter()
            .zip(paths)
            .zip(&in_place)
            .map(|((f, path), &here)| (path, f.length, !f.padding, here))
            .collect();
        let stored: Vec<(PathBuf, u64)> = slots
            .iter()
            .filter(|s| s.3)
            .map(|s| (s.0.clone(), s.1))
            .collect();
        let prepared = prepare::prepare(&stored, dir, opts.allocation, opts.overwrite)?;
        let sidecar_path = resume::sidecar_path(dir, &meta.name);

        let mut have = Bitfield::new(meta.piece_count());
        let mut uploaded = 0;
        let mut resume = match resume::load(&sidecar_path, &meta, &before) {
            Ok(None) if prepared.fresh => Resume::Fresh,
            Ok(None) => Resume::NeedsRecheck("no sidecar: checking the data already there".into()),
            Ok(Some(_)) if opts.force_recheck => {
                Resume::NeedsRecheck("a recheck was asked for".into())
            }
            Ok(Some(sc)) => {
                have = sc.have;
                uploaded = sc.uploaded;
                Resume::Trusted
            }
            Err((why, same_torrent)) => {
                uploaded = same_torrent.map_or(0, |sc| sc.uploaded);
                Resume::NeedsRecheck(why)
            }
        };
        let mut st = Self {
            files: FileSet::new(slots),
            parts,
            dir: dir.to_owned(),
            opts,
            sidecar_path,
            resume: Resume::Fresh,
            have,
            pending_pieces: 0,
            pending_bytes: 0,
            pending_since: None,
            // New files, or blocks added to old ones, changed their times: record them.
            stale: prepared.touched,
            uploaded,
            saved_uploaded: uploaded,
            checked: None,
            line: None,
            writing: Bitfield::new(meta.piece_count()),
            in_flight: 0,
            recording: false,
            written: Vec::new(),
            geometry,
            meta,
        };
        if resume == Resume::Trusted && !st.unchanged_since(&before)? {
            // Reserving space touched a file that was there: its data is checked again.
            resume =
                Resume::NeedsRecheck("the data files changed since the sidecar was written".into());
        }
        st.resume = resume;
        // Files wanted now that were not on disk take over their share of the part file.
        let mut at = 0;
        for i in 0..st.files.slots.len() {
            let slot = &st.files.slots[i];
            if !slot.stored {
                continue;
            }
            if slot.in_place && before[at] == FileStamp::ABSENT {
                st.migrate(i)?;
            }
            at += 1;
        }
        st.drop_parts_if_unneeded()?;
        if st.resume == Resume::Trusted && st.stale {
            st.flush()?;
        }
        Ok(st)
    }

    /// Wants the files `wanted` names (as in [`Storage::open_selected`]) from now on: a
    /// newly wanted file that is not on disk is created, takes its share of the verified
    /// pieces from the part file, and is made durable before the sidecar says so (by a
    /// record started here: on the disk thread when there is one). A file no longer wanted
    /// stays on disk. With the disk thread, it first waits for the writes under way (the
    /// part file is read), and deleting the part file once nothing needs it waits for the
    /// sync of what moved out of it: a change of selection is rare.
    pub fn set_wanted(&mut self, wanted: &[bool]) -> Result<(), StorageError> {
        // The part file is read below: every piece written to it must be there first.
        self.settle()?;
        for i in 0..self.files.slots.len() {
            let slot = &self.files.slots[i];
            if !slot.stored || slot.in_place || !wanted.get(i).copied().unwrap_or(true) {
                continue;
            }
            let file = [(slot.path.clone(), slot.len)];
            prepare::prepare(&file, &self.dir, self.opts.allocation, false)?;
            self.files.slots[i].in_place = true;
            self.migrate(i)?;
            self.stale = true;
        }
        self.drop_parts_if_unneeded()?;
        self.start_flush()
    }

    /// Whether file `i` is on disk (wanted, or there already).
    pub fn file_on_disk(&self, i: usize) -> bool {
        self.files.slots.get(i).is_some_and(|s| s.in_place)
    }

    /// Copies file `i`'s share of the boundary pieces from the part file into the file.
    fn migrate(&mut self, i: usize) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        for k in 0..self.parts.boundary().len() {
            let index = self.parts.boundary()[k];
            let mut at = 0u64;
            for span in self.geometry.spans(index) {
                if span.file as usize == i {
                    buf.clear();
                    self.parts.read(index, at, span.len as usize, &mut buf)?;
                    self.files.write(i, span.offset, &buf)?;
                }
                at += u64::from(span.len);
            }
        }
        Ok(())
    }

    /// Deletes the part file once every stored file is on disk (after syncing what moved
    /// out of it).
    fn drop_parts_if_unneeded(&mut self) -> Result<(), StorageError> {
        let needed = self.files.slots.iter().any(|s| s.stored && !s.in_place);
        if needed || !self.parts.path().exists() {
            return Ok(());
        }
        self.files.sync()?;
        self.parts.remove()?;
        self.stale = true;
        Ok(())
    }

    /// Whether every stored file that was on disk `before` (stamps in [`Storage::stamps`]'s
    /// order) is as it was.
    fn unchanged_since(&self, before: &[FileStamp]) -> Result<bool, StorageError> {
        let now = self.stamps()?;
        let stored = self.files.slots.iter().filter(|s| s.stored).count();
        Ok(now
            .iter()
            .zip(before)
            .take(stored)
            .all(|(n, b)| *b == FileStamp::ABSENT || n == b))
    }

    /// The stamps the sidecar records: each stored file's (absent when not on disk), then
    /// the part file's when there is one.
    fn stamps(&self) -> Result<Vec<FileStamp>, StorageError> {
        disk::stamps(&self.stamp_paths(), self.parts.path())
    }

    /// Each stored file's path when it is on disk, `None` when it is not.
    fn stamp_paths(&self) -> Vec<Option<PathBuf>> {
        let stored = self.files.slots.iter().filter(|s| s.stored);
        stored.map(|s| s.in_place.then(|| s.path.clone())).collect()
    }

    /// The torrent.
    pub fn meta(&self) -> &Metainfo {
        &self.meta
    }

    /// What [`Storage::open`] found; [`Resume::NeedsRecheck`] until [`Storage::recheck`] ran.
    pub fn resume(&self) -> &Resume {
        &self.resume
    }

    /// Path of the sidecar file.
    pub fn sidecar_path(&self) -> &Path {
        &self.sidecar_path
    }

    /// Verified pieces (durable or waiting for the next flush).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether piece `index` is verified.
    pub fn has(&self, index: u32) -> bool {
        self.have.get(index)
    }

    /// Bytes uploaded over every run (kept in the sidecar).
    pub fn uploaded(&self) -> u64 {
        self.uploaded
    }

    /// Counts `n` more bytes uploaded.
    pub fn add_uploaded(&mut self, n: u64) {
        self.uploaded += n;
    }

    /// Hashes every piece on disk and keeps the ones that verify, calling `progress(done,
    /// total)` after each piece; then makes the result durable. Returns the pieces found.
    pub fn recheck(&mut self, mut progress: impl FnMut(u32, u32)) -> Result<u32, StorageError> {
        self.begin_recheck();
        let total = self.meta.piece_count();
        loop {
            if let Some(found) = self.recheck_some(1)? {
                progress(total, total);
                return Ok(found);
            }
            let (done, _) = self.recheck_progress().expect("checking");
            progress(done, total);
        }
    }

    /// Starts a check of every piece on disk, to be carried out by [`Storage::recheck_some`]
    /// a slice at a time. Nothing is verified until it is over.
    pub fn begin_recheck(&mut self) {
        if let Err(e) = self.settle() {
            // What failed to be written is not verified; the check finds what is there.
            log::warn!("{e}");
        }
        self.written.clear();
        self.have = Bitfield::new(self.meta.piece_count());
        self.resume = Resume::NeedsRecheck("checking".into());
        self.checked = Some(0);
    }

    /// Where a check is: pieces checked, of how many; `None` when none runs.
    pub fn recheck_progress(&self) -> Option<(u32, u32)> {
        self.checked.map(|n| (n, self.meta.piece_count()))
    }

    /// Hashes about `max_bytes` more of the check [`Storage::begin_recheck`] started (at
    /// least one piece). When it is over, the result is made durable and the pieces found
    /// are returned.
    pub fn recheck_some(&mut self, max_bytes: u64) -> Result<Option<u32>, StorageError> {
        let total = self.meta.piece_count();
        let mut next = self.checked.unwrap_or(0);
        let mut hashed = 0u64;
        while next < total && (hashed == 0 || hashed < max_bytes) {
            if self.hash_on_disk(next)? == self.meta.pieces[next as usize] {
                self.have.set(next);
            }
            hashed += self.meta.piece_size(next);
            next += 1;
        }
        self.checked = Some(next);
        if next < total {
            return Ok(None);
        }
        self.checked = None;
        self.resume = Resume::Trusted;
        // The whole torrent was read through the maps: let go of those pages now, not
        // after the next RELEASE_BYTES of uploads (a daemon checking a hundred small
        // torrents would otherwise hold every one of them resident).
        self.files.release();
        // What was read may only be in the page cache (after a crash of this process):
        // sync before the sidecar claims it.
        self.files.mark_all_dirty();
        self.stale = true;
        self.start_flush()?;
        Ok(Some(self.have.count()))
    }

    fn hash_on_disk(&mut self, index: u32) -> Result<[u8; 20], StorageError> {
        static ZEROS: [u8; 16384] = [0; 16384];
        let mut sha = crate::hash::Sha1::new();
        let mut at = 0u64;
        let mut kept = Vec::new();
        for span in self.geometry.spans(index) {
            let i = span.file as usize;
            let slot = &self.files.slots[i];
            let from = at;
            at += u64::from(span.len);
            if slot.stored && slot.in_place {
                self.files
                    .read(i, span.offset, span.len as usize, &mut |b| sha.update(b))?;
            } else if slot.stored {
                kept.clear();
                self.parts.read(index, from, span.len as usize, &mut kept)?;
                sha.update(&kept);
            } else {
                let mut left = span.len as usize;
                while left > 0 {
                    let n = left.min(ZEROS.len());
                    sha.update(&ZEROS[..n]);
                    left -= n;
                }
            }
        }
        self.files.release_if_due();
        Ok(sha.digest())
    }

    /// Checks `data` against piece `index`'s SHA-1 and, only if it matches, writes it into
    /// the files. The piece is readable at once and durable after the next [`Storage::flush`].
    pub fn write_piece(&mut self, index: u32, data: &[u8]) -> Result<WriteOutcome, StorageError> {
        if self.writing.get(index) {
            return Ok(WriteOutcome::AlreadyHave);
        }
        let ops = match self.plan_write(index, data)? {
            Ok(ops) => ops,
            Err(outcome) => return Ok(outcome),
        };
        disk::write(&ops, data)?;
        self.mark_written(index, data.len());
        Ok(WriteOutcome::Written)
    }

    /// Like [`Storage::write_piece`], but with the disk thread ([`Storage::use_disk`]) the
    /// piece is checked here and written there: [`Submitted::Queued`], and
    /// [`Storage::take_written`] hands it back once it is in the files. Without the thread,
    /// or when it is not to be written, it is done with at once.
    pub fn submit_piece(&mut self, index: u32, data: Vec<u8>) -> Result<Submitted, StorageError> {
        if self.line.is_none() {
            let outcome = self.write_piece(index, &data)?;
            return Ok(Submitted::Done(outcome, data));
        }
        if self.writing.get(index) {
            // Already on its way (a duplicate): that one's answer stands for both.
            return Ok(Submitted::Queued);
        }
        let ops = match self.plan_write(index, &data)? {
            Ok(ops) => ops,
            Err(outcome) => return Ok(Submitted::Done(outcome, data)),
        };
        let line = self.line.as_ref().expect("checked above");
        line.disk.send(disk::Job::Write {
            index,
            data,
            ops,
            reply: line.reply.clone(),
        });
        self.writing.set(index);
        self.in_flight += 1;
        Ok(Submitted::Queued)
    }

    /// Where piece `index`'s bytes go, once it proved to be one to write: its hash matched,
    /// it is not verified yet, and it has somewhere to go. The files it touches count as
    /// written from now on (the next record syncs them).
    fn plan_write(
        &mut self,
        index: u32,
        data: &[u8],
    ) -> Result<Result<Vec<disk::WriteOp>, WriteOutcome>, StorageError> {
        if index >= self.meta.piece_count() || data.len() as u64 != self.meta.piece_size(index) {
            return Err(StorageError::OutOfRange);
        }
        if self.have.get(index) {
            return Ok(Err(WriteOutcome::AlreadyHave));
        }
        if crate::hash::sha1(data) != self.meta.pieces[index as usize] {
            return Ok(Err(WriteOutcome::HashMismatch));
        }
        let spans = self.geometry.spans(index);
        let parted = |s: &geometry::Span| {
            let slot = &self.files.slots[s.file as usize];
            slot.stored && !slot.in_place
        };
        if spans.iter().any(parted) && !self.parts.has_slot(index) {
            return Ok(Err(WriteOutcome::Dropped));
        }
        let mut ops = Vec::with_capacity(spans.len());
        let mut at = 0usize;
        for k in 0..self.geometry.spans(index).len() {
            let span = self.geometry.spans(index)[k];
            let range = at..at + span.len as usize;
            at = range.end;
            let i = span.file as usize;
            let slot = &self.files.slots[i];
            let (to, check, offset) = if slot.stored && slot.in_place {
                let h = self.files.handle(i)?;
                self.files.slots[i].dirty = true;
                let len = h.len;
                (h, Some(len), span.offset)
            } else if slot.stored {
                let (h, pos) = self.parts.handle(index, range.start as u64)?;
                (h, None, pos)
            } else {
                continue;
            };
            ops.push(disk::WriteOp {
                to,
                check,
                offset,
                range,
            });
        }
        Ok(Ok(ops))
    }

    /// Piece `index` (`len` bytes) is in the files: verified, durable at the next record.
    fn mark_written(&mut self, index: u32, len: usize) {
        self.have.set(index);
        self.pending_pieces += 1;
        self.pending_bytes += len as u64;
    }

    /// Writes pieces and records them on `disk`'s thread from now on, off the caller's.
    pub fn use_disk(&mut self, disk: Disk) {
        if self.line.is_none() {
            self.line = Some(disk::Line::new(disk));
        }
    }

    /// The pieces the disk thread has written since the last call (verified and readable
    /// now), with their buffers; an error when a write or a record failed.
    pub fn take_written(&mut self) -> Result<Vec<(u32, Vec<u8>)>, StorageError> {
        self.pump(false)?;
        Ok(std::mem::take(&mut self.written))
    }

    /// Takes the disk thread's answers: those there (`wait`: until nothing is under way).
    fn pump(&mut self, wait: bool) -> Result<(), StorageError> {
        loop {
            let Some(line) = &self.line else {
                return Ok(());
            };
            let busy = self.in_flight > 0 || self.recording;
            let answer = if wait && busy {
                line.answers.recv().ok()
            } else {
                line.answers.try_recv().ok()
            };
            let Some(answer) = answer else {
                return Ok(());
            };
            match answer {
                disk::Done::Written {
                    index,
                    data,
                    result,
                } => {
                    self.in_flight -= 1;
                    self.writing.clear(index);
                    result?;
                    self.mark_written(index, data.len());
                    self.written.push((index, data));
                }
                disk::Done::Recorded(result) => {
                    self.recording = false;
                    if result.is_err() {
                        // Not recorded: the next record tries it all again (and fails the
                        // same way on a full disk, which then stops the torrent).
                        self.stale = true;
                    }
                    result?;
                }
            }
        }
    }

    /// Waits for every write and record under way on the disk thread (rare: a change of
    /// the wanted files, a check, a failure, a stop that cannot wait).
    fn settle(&mut self) -> Result<(), StorageError> {
        self.pump(true)
    }

    /// Whether nothing is under way on the disk thread and nothing written waits to be
    /// recorded: every verified piece is claimed in a durable sidecar.
    pub fn is_durable(&self) -> bool {
        let nothing_new = self.pending_pieces == 0 && !self.stale;
        let unverified = matches!(self.resume, Resume::NeedsRecheck(_));
        self.in_flight == 0 && !self.recording && (nothing_new || unverified)
    }

    /// Appends `len` bytes of verified piece `index` from `begin` to `out`.
    pub fn read_block(
        &mut self,
        index: u32,
        begin: u32,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let size = self.meta.piece_size(index);
        if index >= self.meta.piece_count() || u64::from(begin) + u64::from(len) > size {
            return Err(StorageError::OutOfRange);
        }
        if !self.have.get(index) {
            return Err(StorageError::NotVerified(index));
        }
        let (begin, end) = (u64::from(begin), u64::from(begin) + u64::from(len));
        let mut piece_pos = 0u64;
        for span in self.geometry.spans(index) {
            let (s, e) = (piece_pos, piece_pos + u64::from(span.len));
            piece_pos = e;
            let (from, to) = (begin.max(s), end.min(e));
            if from >= to {
                continue;
            }
            let i = span.file as usize;
            // Within one span of a piece: at most 128 MiB.
            let n = files::to_usize(to - from);
            let slot = &self.files.slots[i];
            if slot.stored && slot.in_place {
                let at = span.offset + (from - s);
                self.files
                    .read(i, at, n, &mut |b| out.extend_from_slice(b))?;
            } else if slot.stored {
                self.parts.read(index, from, n, out)?;
            } else {
                out.resize(out.len() + n, 0);
            }
        }
        self.files.release_if_due();
        Ok(())
    }

    /// Whether enough is waiting that [`Storage::flush`] should run now. `now` is the
    /// caller's clock; the first call after new pieces starts the interval.
    pub fn wants_flush(&mut self, now: Instant) -> bool {
        if self.pending_pieces == 0 {
            self.pending_since = None;
            return false;
        }
        let since = *self.pending_since.get_or_insert(now);
        self.pending_pieces >= FLUSH_PIECES
            || self.pending_bytes >= FLUSH_BYTES
            || now.duration_since(since) >= FLUSH_INTERVAL
    }

    /// Makes every written piece durable, then records them (and the upload count) in the
    /// sidecar, replaced atomically; durable when it returns (with the disk thread, after
    /// waiting for what is under way there). Does nothing when the sidecar is up to date.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.settle()?;
        match self.record() {
            Some(r) => disk::record(&r),
            None => Ok(()),
        }
    }

    /// Like [`Storage::flush`], without waiting: with the disk thread, the record is queued
    /// there (after the writes it records) unless one is under way already (then it is for
    /// the next call); [`Storage::is_durable`] says when it is done.
    pub fn start_flush(&mut self) -> Result<(), StorageError> {
        if self.line.is_none() {
            return self.flush();
        }
        self.pump(false)?;
        if self.recording {
            return Ok(());
        }
        if let Some(r) = self.record() {
            let line = self.line.as_ref().expect("checked above");
            line.disk
                .send(disk::Job::Record(Box::new(r), line.reply.clone()));
            self.recording = true;
        }
        Ok(())
    }

    /// What the next record is to say, and to sync first; `None` when the sidecar is up to
    /// date, or when nothing is verified yet (a check is due: an old sidecar is never
    /// replaced before it). What it covers counts as recorded from now on.
    fn record(&mut self) -> Option<disk::Record> {
        if self.pending_pieces == 0 && !self.stale && self.uploaded == self.saved_uploaded {
            return None;
        }
        if matches!(self.resume, Resume::NeedsRecheck(_)) {
            return None;
        }
        let mut sync = self.files.take_dirty();
        sync.extend(self.parts.take_dirty());
        self.pending_pieces = 0;
        self.pending_bytes = 0;
        self.pending_since = None;
        self.stale = false;
        self.saved_uploaded = self.uploaded;
        Some(disk::Record {
            sync,
            stamps: self.stamp_paths(),
            parts: self.parts.path().to_owned(),
            sidecar: self.sidecar_path.clone(),
            info_hash: self.meta.info_hash,
            uploaded: self.uploaded,
            have: self.have.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data of known small sizes
mod tests;
