//! `btmini info`: what a torrent holds, as text for people or JSON for scripts.

use crate::json::{self, Object};
use crate::magnet::Magnet;
use crate::metainfo::Metainfo;
use crate::util::{human_bytes, printable, utc_datetime};
use std::fmt::Write;

/// The human-readable report.
pub fn render_text(m: &Metainfo) -> String {
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: &str| {
        let line = format!("{:<14} {}", format!("{k}:"), printable(v));
        let _ = writeln!(s, "{}", line.trim_end());
    };
    line(&mut s, "name", &m.name);
    line(&mut s, "info-hash", &m.info_hash.to_hex());
    line(
        &mut s,
        "size",
        &format!("{} ({} bytes)", human_bytes(m.total_length), m.total_length),
    );
    let last = m.piece_size(m.piece_count() - 1);
    let mut pieces = format!("{} x {}", m.piece_count(), human_bytes(m.piece_length));
    if last != m.piece_length {
        pieces += &format!(" (last {})", human_bytes(last));
    }
    line(&mut s, "pieces", &pieces);
    line(&mut s, "private", if m.private { "yes" } else { "no" });
    if let Some(c) = &m.created_by {
        line(&mut s, "created by", c);
    }
    if let Some(d) = m.creation_date {
        line(&mut s, "creation date", &utc_datetime(d));
    }
    if let Some(c) = &m.comment {
        line(&mut s, "comment", c);
    }
    let tiers = m.tiers();
    if tiers.is_empty() {
        line(&mut s, "trackers", "none (trackerless)");
    } else {
        line(&mut s, "trackers", "");
        for (i, tier) in tiers.iter().enumerate() {
            let _ = writeln!(s, "  tier {}: {}", i + 1, printable(&tier.join(" ")));
        }
    }
    let stored: Vec<_> = m.files.iter().filter(|f| !f.padding).collect();
    let pads = m.files.len() - stored.len();
    let mut files = stored.len().to_string();
    if pads > 0 {
        files += &format!(" (and {pads} padding files, not stored)");
    }
    line(&mut s, "files", &files);
    // Numbered as --files and the daemon's RPC count them.
    for (n, f) in stored.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>4}  {:>10}  {}",
            n + 1,
            human_bytes(f.length),
            printable(&f.display_path())
        );
    }
    s
}

/// One JSON object with every field of the text report, file sizes in bytes.
pub fn render_json(m: &Metainfo) -> String {
    let trackers = json::array(
        m.tiers()
            .iter()
            .map(|t| json::array(t.iter().map(|u| json::string(u)))),
    );
    let files = json::array(m.files.iter().map(|f| {
        Object::new()
            .str("path", &f.display_path())
            .num("size", f.length)
            .num("offset", f.offset)
            .bool("padding", f.padding)
            .finish()
    }));
    let o = Object::new()
        .str("name", &m.name)
        .str("info_hash", &m.info_hash.to_hex())
        .num("total_size", m.total_length)
        .num("piece_length", m.piece_length)
        .num("piece_count", m.piece_count())
        .bool("private", m.private)
        .bool("multi_file", m.multi_file)
        .opt_str("created_by", m.created_by.as_deref())
        .opt_str("comment", m.comment.as_deref());
    let o = match m.creation_date {
        Some(d) => o.num("creation_date", d),
        None => o.raw("creation_date", "null"),
    };
    o.raw("trackers", &trackers).raw("files", &files).finish()
}

/// The human-readable report of a magnet link: what it names, before any metadata.
pub fn render_magnet_text(m: &Magnet) -> String {
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: &str| {
        let line = format!("{:<14} {}", format!("{k}:"), printable(v));
        let _ = writeln!(s, "{}", line.trim_end());
    };
    line(
        &mut s,
        "name",
        m.name
            .as_deref()
            .unwrap_or("(not given: known once the metadata arrives)"),
    );
    line(&mut s, "info-hash", &m.hex());
    let list = |s: &mut String, k: &str, items: &[String], none: &str| {
        if items.is_empty() {
            line(s, k, none);
        } else {
            line(s, k, "");
            for (i, it) in items.iter().enumerate() {
                let _ = writeln!(s, "  {}: {}", i + 1, printable(it));
            }
        }
    };
    list(&mut s, "trackers", &m.trackers, "none");
    list(&mut s, "peers", &m.peers, "none");
    if !m.web_seeds.is_empty() {
        list(&mut s, "web seeds", &m.web_seeds, "none");
    }
    s
}

/// One JSON object for a magnet link: its fields, trackers as tiers of one.
pub fn render_magnet_json(m: &Magnet) -> String {
    let strings = |v: &[String]| json::array(v.iter().map(|x| json::string(x)));
    let tiers = json::array(m.trackers.iter().map(|t| json::array([json::string(t)])));
    Object::new()
        .bool("magnet", true)
        .opt_str("name", m.name.as_deref())
        .str("info_hash", &m.hex())
        .raw("trackers", &tiers)
        .raw("peers", &strings(&m.peers))
        .raw("web_seeds", &strings(&m.web_seeds))
        .finish()
}
