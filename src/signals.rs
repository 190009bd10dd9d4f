//! SIGINT and SIGTERM as readable events on the mio poll, through a `signalfd`: the signals
//! are blocked for the process's threads and read from a descriptor, so the stop happens in
//! the loop, between two events, never inside a handler.
#![allow(unsafe_code)]

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};

/// The signals, readable on a poll.
#[derive(Debug)]
pub struct Signals {
    fd: File,
}

fn set() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write into the set we own; zeroed memory is a
    // valid starting value for the plain-data sigset_t.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGINT);
        libc::sigaddset(&mut s, libc::SIGTERM);
        s
    }
}

impl Signals {
    /// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later)
    /// and opens a nonblocking signalfd for them. Call before starting other threads.
    pub fn new() -> io::Result<Self> {
        let s = set();
        // SAFETY: pthread_sigmask reads the set we pass and writes no output (null old set).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: signalfd reads the set; -1 asks for a new descriptor, which we own at once.
        let fd = unsafe { libc::signalfd(-1, &s, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { File::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Registers the descriptor for reading.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    /// Signals that arrived since the last call.
    pub fn pending(&mut self) -> u32 {
        // struct signalfd_siginfo is 128 bytes; only the count matters here.
        let mut buf = [0u8; 128];
        let mut n = 0;
        while let Ok(128) = self.fd.read(&mut buf) {
            n += 1;
        }
        n
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let s = set();
        // SAFETY: as in `new`; unblocking restores the default dispositions' effect.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &s, std::ptr::null_mut());
        }
    }
}
