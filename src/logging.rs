//! Log output through fern to standard error, one line per record, and the status line a
//! terminal shows below it.
//!
//! The status line is redrawn in place (`\r`, then `ESC [K` to clear the row), so a log line
//! written while it shows would land on top of it. Every log line therefore goes through
//! [`write_record`]: it clears the row, writes the line, and draws the status line again
//! below it. One lock over the shown line and standard error keeps the two in order, even
//! for a record logged on another thread (the resolver's).

use log::LevelFilter;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Carriage return, then erase to the end of the row: the row is blank and the cursor at its
/// start.
const CLEAR_ROW: &str = "\r\x1b[K";

/// Assumed when standard error is not a terminal or does not say how wide it is.
pub const DEFAULT_WIDTH: usize = 80;

/// The status line on the terminal's last row, while a [`StatusLine`] shows one.
static SHOWN: Mutex<Option<String>> = Mutex::new(None);

fn shown() -> MutexGuard<'static, Option<String>> {
    // The line is plain text: a panic elsewhere cannot leave it half-written.
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The level for a verbosity offset: 0 is `info`, each `-v` one more, each `-q` one less.
pub fn level(verbosity: i8) -> LevelFilter {
    match verbosity {
        i8::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Sends log records at `level` and above to standard error. A second call is ignored.
pub fn init(level: LevelFilter) {
    let _ = fern::Dispatch::new()
        .format(|out, message, record| match record.level() {
            log::Level::Info => out.finish(format_args!("btmini: {message}")),
            log::Level::Warn => out.finish(format_args!("btmini: warning: {message}")),
            l => out.finish(format_args!(
                "btmini: {}: {message}",
                l.as_str().to_ascii_lowercase()
            )),
        })
        .level(level)
        .chain(fern::Output::call(|record| {
            let shown = shown();
            let _ = write_record(&mut io::stderr().lock(), *record.args(), shown.as_deref());
        }))
        .apply();
}

/// Writes one log line to `out`; with a status line `shown` on the row, clears the row
/// first and draws the status line again after, so the log line scrolls up above it.
pub fn write_record(
    out: &mut impl Write,
    message: fmt::Arguments<'_>,
    shown: Option<&str>,
) -> io::Result<()> {
    match shown {
        Some(status) => write!(out, "{CLEAR_ROW}{message}\n{status}")?,
        None => writeln!(out, "{message}")?,
    }
    out.flush()
}

/// The status line at the bottom of a terminal, redrawn in place; log lines are written
/// above it (see the module doc). Only for a terminal on standard error, and one at a
/// time. Dropping it leaves the last line shown on screen and ends its row.
#[derive(Debug)]
pub struct StatusLine(());

impl StatusLine {
    /// A status line that shows nothing yet.
    pub fn new() -> Self {
        Self(())
    }

    /// Replaces what the status line shows with `line`, which must fit in one row of the
    /// terminal (see [`fit`]): a longer one wraps, and `\r` would then leave copies behind.
    pub fn show(&mut self, line: &str) {
        let mut shown = shown();
        let _ = write!(io::stderr().lock(), "{CLEAR_ROW}{line}");
        let s = shown.get_or_insert_with(String::new);
        s.clear();
        s.push_str(line);
    }
}

impl Default for StatusLine {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        if shown().take().is_some() {
            let _ = writeln!(io::stderr().lock());
        }
    }
}

/// The longest start of `line` that fits in a row `width` columns wide without touching
/// the last column (where some terminals wrap at once). One column per character: the
/// status line is ASCII but for names, whose control characters are escaped.
pub fn fit(line: &str, width: usize) -> &str {
    match line.char_indices().nth(width.saturating_sub(1)) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

/// The width in columns of the terminal on standard error, asked afresh on each call (it
/// changes when the window is resized); [`DEFAULT_WIDTH`] when standard error is not a
/// terminal or the terminal does not know.
pub fn terminal_width() -> usize {
    width_of(io::stderr().as_fd())
}

/// The width of the terminal `fd` refers to, or [`DEFAULT_WIDTH`].
#[allow(unsafe_code)]
fn width_of(fd: BorrowedFd<'_>) -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through its pointer argument, which points to
    // the live, writable `size` above; `fd` is open for as long as it is borrowed. On a
    // descriptor that is not a terminal the call fails with ENOTTY and writes nothing.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut size as *mut libc::winsize,
        )
    };
    if rc == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        DEFAULT_WIDTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(shown: Option<&str>) -> String {
        let mut out = Vec::new();
        write_record(&mut out, format_args!("btmini: a log line"), shown).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_log_line_clears_the_status_line_and_draws_it_again_below() {
        assert_eq!(
            record(Some(" 42.0% 1 MiB / 2 MiB")),
            "\r\x1b[Kbtmini: a log line\n 42.0% 1 MiB / 2 MiB"
        );
    }

    #[test]
    fn without_a_status_line_a_log_line_is_just_a_line() {
        assert_eq!(record(None), "btmini: a log line\n");
    }

    #[test]
    fn fit_keeps_a_line_shorter_than_the_row_whole() {
        let line = "x".repeat(100);
        assert_eq!(fit(&line, 120), line);
        assert_eq!(fit(&line, 101), line);
    }

    #[test]
    fn fit_cuts_a_long_line_one_column_short_of_the_width() {
        let line = "x".repeat(100);
        assert_eq!(fit(&line, 80).len(), 79);
        assert_eq!(fit(&line, 100).len(), 99);
        assert_eq!(fit(&line, 1), "");
        assert_eq!(fit(&line, 0), "");
    }

    #[test]
    fn fit_counts_characters_not_bytes() {
        assert_eq!(fit("héllo wörld", 6), "héllo");
    }

    #[test]
    fn the_width_of_something_not_a_terminal_is_the_default() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(width_of(null.as_fd()), DEFAULT_WIDTH);
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(width_of(a.as_fd()), DEFAULT_WIDTH);
    }
}
