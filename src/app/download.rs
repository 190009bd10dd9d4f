//! The download command: options to [`Download`], and what the user sees while it runs —
//! a status line on a terminal, a log line now and then otherwise, or JSON for scripts.

use super::{AppError, load_torrent};
use crate::cli::DownloadArgs;
use crate::engine::{Download, DownloadOptions, Phase, Status};
use crate::json::Object;
use crate::logging::{self, StatusLine};
use crate::storage::StorageOptions;
use crate::util::human_bytes;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Off a terminal, a status line this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(super) fn run(args: &DownloadArgs) -> Result<(), AppError> {
    let meta = Arc::new(load_torrent(&args.torrent)?);
    let mut peers = Vec::new();
    for p in &args.peers {
        let found: Vec<SocketAddr> = p
            .to_socket_addrs()
            .map_err(|e| AppError::BadPeer(p.clone(), e.to_string()))?
            .collect();
        if found.is_empty() {
            return Err(AppError::BadPeer(p.clone(), "no address".into()));
        }
        peers.extend(found.into_iter().take(1));
    }
    let mut opts = DownloadOptions {
        output: args.output.clone(),
        peers,
        port: args.port,
        bind: args.bind,
        storage: StorageOptions {
            force_recheck: args.recheck,
            overwrite: args.overwrite,
            ..Default::default()
        },
        handle_signals: true,
        seed: args.seed,
        seed_ratio: args.seed_ratio,
        min_share: args.min_share,
        ..Default::default()
    };
    opts.session.max_peers = args.max_peers;
    opts.session.pex = args.pex;
    opts.session.share_wait = std::time::Duration::from_secs(args.share_wait);
    let terminal = std::io::stderr().is_terminal() && !args.json;
    log::info!(
        "{} ({}, {} pieces) into {}",
        crate::util::printable(&meta.name),
        human_bytes(meta.total_length),
        meta.piece_count(),
        args.output.display()
    );
    let mut last_shown = 0u32;
    // Dropped once the check is over, or on the way out if it fails: either way the last
    // line stays and its row ends.
    let mut checking = terminal.then(StatusLine::new);
    let mut progress = |done: u32, total: u32| {
        let pct = u64::from(done) * 100 / u64::from(total.max(1));
        if let Some(line) = &mut checking {
            if pct as u32 != last_shown || done == total {
                last_shown = pct as u32;
                line.show(&format!("checking {pct}%"));
            }
        }
    };
    let mut download =
        Download::new(meta.clone(), opts, &mut progress).map_err(AppError::Download)?;
    drop(checking);
    log::info!("listening on port {}", download.port());
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut shown = terminal.then(StatusLine::new);
    let result = download.run(|s| {
        if args.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", json_status(s, started));
        } else if let Some(shown) = &mut shown {
            // The width is asked each time: the window may have been resized.
            shown.show(logging::fit(
                &status_line(s, started),
                logging::terminal_width(),
            ));
        } else if last_log.elapsed() >= LOG_EVERY || s.phase == Phase::Finished {
            last_log = Instant::now();
            log::info!("{}", status_line(s, started));
        }
    });
    // The last status line stays on screen; what follows goes below it.
    drop(shown);
    result.map_err(AppError::Download)?;
    let s = download.status();
    if s.have_bytes == s.total {
        log::info!(
            "done: {} verified in {}",
            human_bytes(s.total),
            args.output.display()
        );
    } else {
        log::info!(
            "stopped at {:.1}%: run the same command again to resume",
            percent(&s)
        );
    }
    Ok(())
}

fn percent(s: &Status) -> f64 {
    s.have_bytes as f64 * 100.0 / s.total.max(1) as f64
}

fn eta(s: &Status) -> Option<Duration> {
    let left = s.total - s.have_bytes;
    (s.stats.down_rate >= 1.0 && left > 0)
        .then(|| Duration::from_secs_f64(left as f64 / s.stats.down_rate))
}

fn clock(d: Duration) -> String {
    let t = d.as_secs();
    if t >= 3600 {
        format!("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
    } else {
        format!("{}:{:02}", t / 60, t % 60)
    }
}

/// The one-line status: percent, bytes, rates, peers (alive/connected), ETA, share ratio,
/// and what the download waits for when it waits.
fn status_line(s: &Status, started: Instant) -> String {
    let ratio = s.uploaded as f64 / s.total.max(1) as f64;
    let mut line = format!(
        "{:5.1}% {} / {}  down {}/s  up {}/s  peers {}/{}  eta {}  ratio {:.2}",
        percent(s),
        human_bytes(s.have_bytes),
        human_bytes(s.total),
        human_bytes(s.stats.down_rate as u64),
        human_bytes(s.stats.up_rate as u64),
        s.stats.alive,
        s.stats.connected,
        eta(s).map_or("-".into(), clock),
        ratio,
    );
    match s.phase {
        Phase::Completing => line += "  complete, telling the trackers",
        Phase::Seeding => line += &format!("  seeding to {} leechers", s.stats.leechers),
        Phase::Stopping => line += "  stopping",
        Phase::Finished => line += &format!("  ({})", clock(started.elapsed())),
        Phase::Downloading => {
            if let Some(w) = &s.waiting {
                line += "  ";
                line += w;
            }
            // The failure itself is logged once as a warning; the line stays short.
            if s.tracker_error.is_some() {
                line += "; trackers failing";
            }
        }
    }
    line
}

fn json_status(s: &Status, started: Instant) -> String {
    Object::new()
        .str("event", "status")
        .str(
            "phase",
            match s.phase {
                Phase::Downloading => "downloading",
                Phase::Completing => "completing",
                Phase::Seeding => "seeding",
                Phase::Stopping => "stopping",
                Phase::Finished => "finished",
            },
        )
        .num("have_bytes", s.have_bytes)
        .num("total_bytes", s.total)
        .num("pieces_have", s.stats.have)
        .num("pieces", s.stats.pieces)
        .num("downloaded", s.stats.downloaded)
        .num("wasted", s.stats.wasted)
        .num("uploaded", s.uploaded)
        .num("down_rate", s.stats.down_rate.round() as u64)
        .num("up_rate", s.stats.up_rate.round() as u64)
        .num("uploaded_this_run", s.stats.uploaded)
        .num("peers_alive", s.stats.alive)
        .num("peers_connected", s.stats.connected)
        .num("banned", s.stats.banned)
        .num("elapsed_ms", started.elapsed().as_millis())
        .opt_str("waiting", s.waiting.as_deref())
        .bool(
            "holding_last_piece",
            s.waiting
                .as_deref()
                .is_some_and(|w| w.starts_with("holding")),
        )
        .finish()
}
