//! Log output through fern to standard error, one line per record.

use log::LevelFilter;

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
        .chain(std::io::stderr())
        .apply();
}
