//! The `btmini` command: parse the command line, run, print one line on failure.
//! Exit status: 0 success, 1 failure, 2 bad command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must still end in one line, not a Rust backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("btmini: internal error (a bug, please report it): {info}");
    }));
    // Past a file size limit, report EFBIG like a full disk instead of dying.
    btmini::storage::ignore_sigxfsz();
    let result = btmini::cli::parse(std::env::args_os().skip(1))
        .map_err(btmini::app::AppError::Cli)
        .and_then(|cli| {
            btmini::logging::init(btmini::logging::level(cli.verbosity));
            btmini::app::run(cli)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("btmini: error: {}", btmini::util::printable(&e.to_string()));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
