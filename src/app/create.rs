//! `btmini create`: hash the data, write the torrent without clobbering an existing file.

use super::AppError;
use crate::cli::CreateArgs;
use crate::create::{CreateOptions, create};
use crate::util::human_bytes;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub(super) fn run(args: &CreateArgs) -> Result<(), AppError> {
    let creation_date = if args.no_date {
        None
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64)
    };
    let opts = CreateOptions {
        path: args.path.clone(),
        trackers: args.trackers.clone(),
        piece_length: args.piece_length,
        private: args.private,
        comment: args.comment.clone(),
        created_by: Some(format!("btmini {}", env!("CARGO_PKG_VERSION"))),
        creation_date,
    };
    let out = output_path(args);
    // Checked again, atomically, when the file is created; this early look spares the user
    // a long hash of data whose torrent could not be written.
    if !args.force && out.exists() {
        return Err(AppError::OutputExists(out));
    }
    let started = Instant::now();
    let created = create(&opts).map_err(AppError::Create)?;
    let secs = started.elapsed().as_secs_f64();
    let pieces = created.total_length.div_ceil(created.piece_length);
    log::info!(
        "hashed {} in {pieces} piece{} of {} in {:.2} s ({:.0} MB/s)",
        human_bytes(created.total_length),
        if pieces == 1 { "" } else { "s" },
        human_bytes(created.piece_length),
        secs,
        created.total_length as f64 / secs.max(1e-9) / 1e6
    );

    let write_err = |source| AppError::Write {
        path: out.clone(),
        source,
    };
    let mut open = OpenOptions::new();
    open.write(true);
    if args.force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut file = open.open(&out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            AppError::OutputExists(out.clone())
        } else {
            write_err(e)
        }
    })?;
    file.write_all(&created.bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    log::info!(
        "wrote {} ({} file{}, info-hash {})",
        out.display(),
        created.file_count,
        if created.file_count == 1 { "" } else { "s" },
        created.info_hash
    );
    if args.trackers.is_empty() && args.private {
        log::warn!("no --tracker given: peers of a private torrent can only find it with --peer");
    } else if args.trackers.is_empty() {
        log::info!("no --tracker given: peers will find this torrent through the DHT (or --peer)");
    }
    Ok(())
}

/// `-o FILE`, or `NAME.torrent` in the current folder.
fn output_path(args: &CreateArgs) -> PathBuf {
    if let Some(p) = &args.output {
        return p.clone();
    }
    let mut name = std::fs::canonicalize(&args.path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_owned()))
        .unwrap_or_else(|| args.path.as_os_str().to_owned());
    name.push(".torrent");
    PathBuf::from(name)
}
