//! The disk thread: the writes of verified pieces and the durability behind the sidecar run
//! here, off the loop, so that a slow disk (an SD card behind a full page cache) slows the
//! download to its own speed without stopping the peers, the timers and the RPC.
//!
//! A `pwrite` blocks when the page cache in front of a slow device is full, and an
//! `fdatasync` waits for the device: neither can be made nonblocking (io_uring could carry
//! them, where the kernel has it; a thread works everywhere). One thread serves the whole
//! process, in order: a storage's [`Job::Record`] comes after the writes it records, so it
//! syncs them before the sidecar that claims them is replaced, exactly as the inline path
//! does. Every job answers on its storage's own channel, and the loop is woken.
//!
//! Bounds: the queue holds at most the pieces the piece-buffer budget lets the sessions
//! hold (a piece on its way to disk counts there until it is written: 4 MiB, or two pieces
//! per torrent), one record per storage, and the few small files the process saves
//! ([`Disk::save`]). So memory stays bounded, and when the disk falls behind, the pieces
//! wait here and the sessions stop requesting blocks: the swarm slows to the disk's speed.

use super::StorageError;
use super::files::{self, Handle};
use super::resume;
use super::sidecar::{FileStamp, Sidecar};
use crate::bitfield::Bitfield;
use crate::metainfo::InfoHash;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

/// One run of a piece's bytes into one file.
pub(super) struct WriteOp {
    /// The file; `check` is its expected size (a data file's), `None` for the part file,
    /// which grows as it is written.
    pub(super) to: Handle,
    pub(super) check: Option<u64>,
    pub(super) offset: u64,
    /// Which bytes of the piece.
    pub(super) range: Range<usize>,
}

/// What makes written pieces durable and then claims them in the sidecar.
pub(super) struct Record {
    /// The files written since the last record, synced first.
    pub(super) sync: Vec<(PathBuf, Option<Arc<File>>)>,
    /// Each stored file's path when it is on disk (`None`: not on disk), stamped after the
    /// sync; then the part file's, stamped when it exists.
    pub(super) stamps: Vec<Option<PathBuf>>,
    pub(super) parts: PathBuf,
    pub(super) sidecar: PathBuf,
    pub(super) info_hash: InfoHash,
    pub(super) uploaded: u64,
    /// The pieces written before this record was asked for.
    pub(super) have: Bitfield,
}

/// Work for the disk thread.
pub(super) enum Job {
    /// Write a verified piece; answered with [`Done::Written`].
    Write {
        index: u32,
        data: Vec<u8>,
        ops: Vec<WriteOp>,
        reply: Sender<Done>,
    },
    /// Sync, then replace the sidecar; answered with [`Done::Recorded`].
    Record(Box<Record>, Sender<Done>),
    /// Replace a small file atomically (the DHT's state, the daemon's counters); failure
    /// is logged.
    Save(PathBuf, Vec<u8>),
}

/// What the disk thread did.
pub(super) enum Done {
    /// Piece `index` is written (or the write failed); its buffer comes back.
    Written {
        index: u32,
        data: Vec<u8>,
        result: Result<(), StorageError>,
    },
    /// The record is durable (or failed).
    Recorded(Result<(), StorageError>),
}

/// The process's disk thread: a handle to queue work on it. The thread ends when every
/// handle is gone.
#[derive(Clone)]
pub struct Disk {
    jobs: Sender<Job>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disk")
    }
}

impl Disk {
    /// Starts the thread; `wake` is called after each job (the loop's waker).
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("btmini-disk".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                    wake();
                }
            })?;
        Ok(Self { jobs })
    }

    /// Queues `job`. The thread only ends when every handle is dropped, so this cannot
    /// fail while `self` lives.
    pub(super) fn send(&self, job: Job) {
        if self.jobs.send(job).is_err() {
            log::error!("the disk thread is gone");
        }
    }

    /// Replaces `path` with `bytes` atomically, off the loop; a failure is logged.
    pub fn save(&self, path: PathBuf, bytes: Vec<u8>) {
        self.send(Job::Save(path, bytes));
    }
}

/// A storage's line to the disk thread: the handle, and where its answers come.
pub(super) struct Line {
    pub(super) disk: Disk,
    pub(super) reply: Sender<Done>,
    pub(super) answers: Receiver<Done>,
}

impl Line {
    pub(super) fn new(disk: Disk) -> Self {
        let (reply, answers) = mpsc::channel();
        Self {
            disk,
            reply,
            answers,
        }
    }
}

/// Carries out `job` (on the disk thread) and answers it.
fn run(job: Job) {
    match job {
        Job::Write {
            index,
            data,
            ops,
            reply,
        } => {
            let result = write(&ops, &data);
            let _ = reply.send(Done::Written {
                index,
                data,
                result,
            });
        }
        Job::Record(r, reply) => {
            let _ = reply.send(Done::Recorded(record(&r)));
        }
        Job::Save(path, bytes) => {
            if let Err(e) = resume::write_atomic(&path, &bytes) {
                log::warn!("{e}");
            }
        }
    }
}

/// Writes a piece's runs (on the disk thread, or inline).
pub(super) fn write(ops: &[WriteOp], data: &[u8]) -> Result<(), StorageError> {
    for op in ops {
        let bytes = &data[op.range.clone()];
        match op.check {
            Some(len) => files::write_at(&op.to.file, &op.to.path, len, op.offset, bytes)?,
            None => std::os::unix::fs::FileExt::write_all_at(&*op.to.file, bytes, op.offset)
                .map_err(|e| StorageError::io("write", &op.to.path, e))?,
        }
    }
    Ok(())
}

/// Makes what was written durable, then replaces the sidecar (on the disk thread, or inline).
pub(super) fn record(r: &Record) -> Result<(), StorageError> {
    files::sync_files(&r.sync)?;
    let sc = Sidecar {
        info_hash: r.info_hash,
        files: stamps(&r.stamps, &r.parts)?,
        uploaded: r.uploaded,
        have: r.have.clone(),
    };
    resume::write_atomic(&r.sidecar, &sc.encode())
}

/// The stamps a sidecar records: each stored file's (absent when not on disk), then the
/// part file's when there is one.
pub(super) fn stamps(
    files: &[Option<PathBuf>],
    parts: &std::path::Path,
) -> Result<Vec<FileStamp>, StorageError> {
    let stamp =
        |p: &std::path::Path| resume::stamp(p).map_err(|e| StorageError::io("inspect", p, e));
    let mut out = Vec::with_capacity(files.len() + 1);
    for f in files {
        out.push(match f {
            Some(path) => stamp(path)?,
            None => FileStamp::ABSENT,
        });
    }
    let p = stamp(parts)?;
    if p != FileStamp::ABSENT {
        out.push(p);
    }
    Ok(out)
}
