//! The download command: options to [`Download`], and what the user sees while it runs —
//! a status line on a terminal, a log line now and then otherwise, or JSON for scripts.

use super::{AppError, load_source};
use crate::cli::DownloadArgs;
use crate::engine::{DownloadOptions, Phase, Status};
use crate::host::{AddError, DhtOptions, Host, HostOptions, Source};
use crate::json::Object;
use crate::logging::{self, StatusLine};
use crate::storage::StorageOptions;
use crate::util::human_bytes;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Off a terminal, a status line this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(super) fn run(args: &DownloadArgs) -> Result<(), AppError> {
    // Every argument is checked before anything starts.
    let mut sources = Vec::new();
    let mut hashes = Vec::new();
    for arg in &args.torrents {
        let source = load_source(arg)?;
        let hash = match &source {
            Source::Torrent(m) => m.info_hash.0,
            Source::Magnet(m) => m.info_hash,
        };
        if hashes.contains(&hash) {
            return Err(AppError::Duplicate(crate::util::hex(&hash)));
        }
        hashes.push(hash);
        sources.push(source);
    }
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
        files: args.files.clone(),
        encryption: args.encryption,
        utp: args.utp,
        ..Default::default()
    };
    opts.session.max_peers = args.max_peers;
    opts.session.pex = args.pex;
    opts.session.share_wait = std::time::Duration::from_secs(args.share_wait);
    // Process-wide: the host splits them among the torrents.
    opts.session.down_limit = args.down_limit;
    opts.session.up_limit = args.up_limit;
    let terminal = std::io::stderr().is_terminal() && !args.json;
    let host_opts = HostOptions {
        dht: args.dht.then(|| DhtOptions {
            bootstrap: args.dht_nodes.clone(),
            state: Some(args.output.join(".btmini-dht.dat")),
        }),
        ..HostOptions::from_download(&opts)
    };
    let mut host = Host::new(host_opts).map_err(AppError::Download)?;
    for source in sources {
        match &source {
            Source::Torrent(meta) => log::info!(
                "{} ({}, {} pieces) into {}",
                crate::util::printable(&meta.name),
                human_bytes(meta.total_length),
                meta.piece_count(),
                args.output.display()
            ),
            Source::Magnet(m) => log::info!(
                "magnet {} ({}) into {}",
                m.hex(),
                crate::util::printable(m.name.as_deref().unwrap_or("no name")),
                args.output.display()
            ),
        }
        let mut last_shown = 0u32;
        // Dropped once the check is over, or on the way out if it fails: either way the
        // last line stays and its row ends.
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
        host.add(source, opts.clone(), &mut progress)
            .map_err(|e| match e {
                AddError::Download(e) => AppError::Download(e),
                AddError::Duplicate(h) => AppError::Duplicate(h),
            })?;
    }
    log::info!("listening on port {}", host.port());
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut shown = terminal.then(StatusLine::new);
    let many = args.torrents.len() > 1;
    let result = host.run(|h| {
        let all: Vec<Status> = h.ids().into_iter().filter_map(|id| h.status(id)).collect();
        let finished = all.iter().all(|s| s.phase == Phase::Finished);
        if args.json {
            let mut out = std::io::stdout().lock();
            for s in &all {
                let _ = writeln!(out, "{}", json_status(s, started));
            }
        } else if let Some(shown) = &mut shown {
            // The width is asked each time: the window may have been resized.
            let width = logging::terminal_width();
            let line = if many {
                summary_line(&all)
            } else {
                status_line(&all[0], started)
            };
            if many && last_log.elapsed() >= LOG_EVERY && log::log_enabled!(log::Level::Debug) {
                last_log = Instant::now();
                for s in &all {
                    log::debug!("{}", torrent_line(s, started, width));
                }
            }
            shown.show(logging::fit(&line, width));
        } else if last_log.elapsed() >= LOG_EVERY || finished {
            last_log = Instant::now();
            for s in &all {
                if many {
                    log::info!("{}", torrent_line(s, started, 80));
                } else {
                    log::info!("{}", status_line(s, started));
                }
            }
        }
    });
    // The last status line stays on screen; what follows goes below it.
    drop(shown);
    result.map_err(AppError::Download)?;
    let mut failed = None;
    for id in host.ids() {
        if let Some(e) = host.take_error(id) {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(AppError::Download(e));
    }
    let all: Vec<Status> = host
        .ids()
        .into_iter()
        .filter_map(|id| host.status(id))
        .collect();
    let total: u64 = all.iter().map(|s| s.total).sum();
    let complete = all.iter().all(|s| s.total > 0 && s.left_bytes == 0);
    let wanted: u64 = all.iter().map(|s| s.wanted_bytes).sum();
    if complete {
        let what = if wanted < total {
            format!("{} of the wanted files", human_bytes(wanted))
        } else {
            human_bytes(total)
        };
        log::info!("done: {what} verified in {}", args.output.display());
    } else {
        let left: u64 = all.iter().map(|s| s.left_bytes).sum();
        log::info!(
            "stopped at {:.1}%: run the same command again to resume",
            (wanted - left) as f64 * 100.0 / wanted.max(1) as f64
        );
    }
    Ok(())
}

/// One line for several torrents: how many are done, the bytes and rates over all, and
/// what the first one that waits waits for.
fn summary_line(all: &[Status]) -> String {
    let have: u64 = all.iter().map(|s| s.wanted_bytes - s.left_bytes).sum();
    let total: u64 = all.iter().map(|s| s.wanted_bytes).sum();
    let done = all
        .iter()
        .filter(|s| s.total > 0 && s.left_bytes == 0)
        .count();
    let down: f64 = all.iter().map(|s| s.stats.down_rate).sum();
    let up: f64 = all.iter().map(|s| s.stats.up_rate).sum();
    let peers: usize = all.iter().map(|s| s.stats.connected).sum();
    let mut line = format!(
        "{done}/{} done  {} / {}  down {}/s  up {}/s  peers {peers}",
        all.len(),
        human_bytes(have),
        human_bytes(total),
        human_bytes(down as u64),
        human_bytes(up as u64),
    );
    if let Some(s) = all.iter().find(|s| s.waiting.is_some()) {
        line += &format!(
            "  {}: {}",
            short_name(&s.name, 16),
            s.waiting.as_deref().unwrap_or("")
        );
    }
    line
}

/// A torrent's line among several: its name, then its status line.
fn torrent_line(s: &Status, started: Instant, width: usize) -> String {
    let line = format!("{}  {}", short_name(&s.name, 20), status_line(s, started));
    logging::fit(&line, width).to_string()
}

/// `name` cut to `n` characters, with an ellipsis when cut.
fn short_name(name: &str, n: usize) -> String {
    let name = crate::util::printable(name);
    if name.chars().count() <= n {
        return name;
    }
    let mut s: String = name.chars().take(n - 1).collect();
    s.push('…');
    s
}

/// Of the wanted files (all of them unless `--files` chose).
fn percent(s: &Status) -> f64 {
    (s.wanted_bytes - s.left_bytes) as f64 * 100.0 / s.wanted_bytes.max(1) as f64
}

fn eta(s: &Status) -> Option<Duration> {
    let left = s.left_bytes;
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
        human_bytes(s.wanted_bytes - s.left_bytes),
        human_bytes(s.wanted_bytes),
        human_bytes(s.stats.down_rate as u64),
        human_bytes(s.stats.up_rate as u64),
        s.stats.alive,
        s.stats.connected,
        eta(s).map_or("-".into(), clock),
        ratio,
    );
    match s.phase {
        Phase::Checking => {
            let (done, of) = s.checking.unwrap_or((0, 0));
            line += &format!("  checking the data on disk: {done}/{of} pieces");
        }
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
                Phase::Checking => "checking",
                Phase::Downloading => "downloading",
                Phase::Completing => "completing",
                Phase::Seeding => "seeding",
                Phase::Stopping => "stopping",
                Phase::Finished => "finished",
            },
        )
        .str("name", &s.name)
        .str("info_hash", &crate::util::hex(&s.info_hash))
        .bool("metadata", s.metadata.is_none())
        .num("have_bytes", s.have_bytes)
        .num("wanted_bytes", s.wanted_bytes)
        .num("left_bytes", s.left_bytes)
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
