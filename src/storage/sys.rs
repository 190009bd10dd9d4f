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

/// A file offset or length as the `*64` calls take it. Those are used throughout: on 32-bit
/// glibc the plain calls take a 32-bit `off_t` (Rust's libc does not build with
/// `_FILE_OFFSET_BITS=64`), which would cut every offset past 2 GiB; on musl the `*64` names
/// are the plain calls.
fn off(n: u64) -> io::Result<libc::off64_t> {
    libc::off64_t::try_from(n)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a file offset past 2^63"))
}

/// Maps bytes `offset..offset + len` of `file` read-only and shared, after checking that the
/// file really is `file_len` bytes long and the range inside it (a shorter file would
/// SIGBUS on access past its end). Writes go through `pwrite`, so no stray store through a
/// map can touch a verified piece.
pub(super) fn map(file: &File, file_len: u64, offset: u64, len: usize) -> io::Result<Mmap> {
    let actual = file.metadata()?.len();
    if actual != file_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is {actual} bytes, expected {file_len}: changed by another program"),
        ));
    }
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > file_len)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a map past the end of the file",
        ));
    }
    // SAFETY: the map is only sound while nobody truncates the file. btmini itself never
    // shrinks a mapped file; the size was checked just above and its blocks were reserved
    // by `allocate`, so every page of the map is backed. Another process truncating the
    // file is caught by the size check before every read (`FileSet::read`); only a
    // truncation between that check and the copy right after it is beyond a map's reach.
    // memmap2 maps with mmap64 where off_t is 32 bits (32-bit glibc), so the offset is
    // not cut.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }
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
            libc::off64_t::try_from(offset).unwrap_or(libc::off64_t::MAX),
            libc::off64_t::try_from(len).unwrap_or(libc::off64_t::MAX),
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
    // SAFETY: posix_fallocate64 only reads its integer arguments; the descriptor is open for
    // the lifetime of `file`.
    let rc = unsafe { libc::posix_fallocate64(file.as_raw_fd(), 0, off(len)?) };
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
            let n = usize::try_from(data - at).map_or(zeros.len(), |n| n.min(zeros.len()));
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        pos = data;
    }
    Ok(())
}

/// `lseek` with SEEK_HOLE or SEEK_DATA; `None` when there is no such region after `from`.
fn seek(file: &File, from: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let from = off(from)?;
    // SAFETY: lseek64 only reads its integer arguments; the descriptor is open.
    let r = unsafe { libc::lseek64(file.as_raw_fd(), from, whence) };
    if let Ok(r) = u64::try_from(r) {
        return Ok(Some(r));
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
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: as above (statvfs64: on 32-bit glibc, statvfs fails with EOVERFLOW on a
    // file system past 2^32 blocks).
    if unsafe { libc::statvfs64(c.as_ptr(), &mut st) } != 0 {
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
