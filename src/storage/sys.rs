//! The system calls storage needs that std does not offer, and the memory map. This is the
//! only module with `unsafe`; each block says what it relies on.
//!
//! The danger of a shared file mapping is the file changing under it: touching a mapped page
//! past the file's end, or a page whose blocks the file system cannot allocate (a sparse
//! file on a full disk), raises SIGBUS and kills the process. The storage layer therefore
//! reserves real blocks before it maps ([`allocate`]), checks the file's size right before
//! each mapping ([`map`]) and each read through it, never shrinks a file it has mapped, and
//! never writes through a map (writes are `pwrite`s, which fail with an error instead).
#![allow(unsafe_code)]

use memmap2::Mmap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Maps all `len` bytes of `file` read-only and shared, after checking that the file
/// really is `len` bytes long (a shorter file would SIGBUS on access past its end). Writes
/// go through `pwrite`, so no stray store through a map can touch a verified piece.
pub(super) fn map(file: &File, len: u64) -> io::Result<Mmap> {
    let actual = file.metadata()?.len();
    if actual != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is {actual} bytes, expected {len}: changed by another program"),
        ));
    }
    // SAFETY: the map is only sound while nobody truncates the file. btmini itself never
    // shrinks a mapped file; the size was checked just above and its blocks were reserved
    // by `allocate`, so every page of the map is backed. Another process truncating the
    // file is caught by the size check before every read (`FileSet::read`); only a
    // truncation between that check and the copy right after it is beyond a map's reach.
    unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }
}

/// Drops bytes `offset..offset + len` of `map` from this process's page tables
/// (`MADV_DONTNEED`), so the file pages read through it stop counting in its resident set.
/// The page cache keeps them; the next read faults them back in.
pub(super) fn release(map: &Mmap, offset: usize, len: usize) -> io::Result<()> {
    // SAFETY: memmap2 marks MADV_DONTNEED unsafe because on a private or anonymous map it
    // throws the contents away. This map is shared, read-only and file-backed: dropping
    // its page-table entries loses nothing, since the bytes live in the file's page cache
    // (and were written there by `pwrite`, never through the map).
    unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }
}

/// Starts writing bytes `offset..offset + len` of `file` back to disk without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the next `fdatasync` has less to wait for.
/// It promises nothing about durability; only `fdatasync` does.
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open for
    // the lifetime of `file`. Its failure (say, a file system without it) only loses the
    // head start, so the result is ignored.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Reserves real blocks for bytes `0..len` of `file` (growing it to `len` if shorter),
/// without changing any data already there. Falls back to writing zeros into the file's
/// holes where the file system has no `fallocate`.
pub(super) fn allocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: posix_fallocate only reads its integer arguments; the descriptor is open for
    // the lifetime of `file`.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => {
            file.set_len(file.metadata()?.len().max(len))?;
            fill_holes(file, len)
        }
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Writes zeros over every hole in `0..len`, leaving data alone: a portable way to make a
/// sparse file fully allocated.
pub(super) fn fill_holes(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let hole = seek(file, pos, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if hole >= len {
            break;
        }
        let data = seek(file, hole, libc::SEEK_DATA)?.unwrap_or(len).min(len);
        let mut at = hole;
        while at < data {
            let n = (data - at).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        pos = data;
    }
    Ok(())
}

/// `lseek` with SEEK_HOLE or SEEK_DATA; `None` when there is no such region after `from`.
fn seek(file: &File, from: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: lseek only reads its integer arguments; the descriptor is open.
    let r = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Bytes an unprivileged user may still allocate on the file system holding `path`.
pub(super) fn free_bytes(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statvfs writes only into the struct we pass, which is plain old data that
    // zeroed memory initialises validly; `c` is a NUL-terminated string that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Makes growing a file past `RLIMIT_FSIZE` fail with `EFBIG` instead of killing the
/// process with SIGXFSZ, so that the limit is reported like a full disk.
pub fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code and is
    // async-signal-safe; it only changes how the kernel treats SIGXFSZ for this process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
