//! btmini: a small BitTorrent client for small Linux boxes.
//!
//! `btmini file.torrent -o dir` (or a magnet link, or several of either) downloads
//! torrents, verifies every piece, shares with the swarm and resumes after a stop. This crate is the whole client as a library; the `btmini`
//! binary is a thin layer on [`cli`] and [`app`].
//!
//! # Layers
//!
//! 1. **Pure codecs**: bytes in, values out, no I/O. [`bencode`] (BEP 3), [`metainfo`]
//!    (`.torrent` files: BEP 3, 12, 27, 47; hybrid BEP 52 torrents load as v1),
//!    [`bitfield`], [`geometry`] (piece ↔ file spans) and the sidecar format
//!    ([`storage::sidecar`]).
//! 2. **Pure state machines**: time comes in as `now`, bytes and actions come out.
//!    [`wire`] (the BEP 3/6/10 codec), [`ext`] (BEP 10 and 11 payloads), [`dht`] (BEP 5), [`peer`] (one
//!    connection's protocol: handshake, extensions, request accounting), [`picker`]
//!    (rarest first, endgame), [`session`] (pieces, choking, the swarm, verification
//!    results, liveness, bans; [`session::driver`] carries out its actions for every
//!    shell), and the tracker schedule ([`tracker::announcer`]).
//! 3. **The I/O shell**: [`host`] (the one mio loop of the process: listener, links,
//!    each torrent's trackers, signals, timers; torrents added and removed while it runs),
//!    [`engine`] (a download's options and status, and one torrent on its own host), [`tracker::io`] (nonblocking HTTP and UDP announces), [`storage`]
//!    (files read through small mapped windows, with reserved blocks; verified-only writes
//!    and the sidecar replaced atomically after the data it claims is durable, both on one
//!    disk thread off the loop), the command line ([`cli`], [`app`],
//!    [`logging`]) and torrent creation ([`create`]).
//!
//! # The loop
//!
//! ```text
//!            +--------------------- mio Poll ----------------------+
//!  sockets -> | listener | links (slab) | trackers | signalfd   | -> events
//!            +------------------------------------------------------+
//!                 | incoming link: first 48 bytes -> info-hash -> torrent
//!                 | bytes, now (per torrent)             ^ bytes to send
//!                 v                                      |
//!              Session  --Verify-->  Storage.submit_piece (SHA-1)  --> disk thread
//!                 |  <--piece_result--   once written            (pwrite, fdatasync,
//!                 |                                               sidecar)
//!                 |  --Metadata--> validate, save .btmini-HASH.torrent, open Storage
//!                 +--Connect / Close / WantPeers / Completed--> host, Trackers
//! ```
//!
//! Drive contract: after every input to [`session::Session`], send each peer's pending
//! bytes and drain its actions until none is left; call its `handle_timeout` when its
//! `poll_timeout` comes (the loop sleeps until the earliest deadline of all it drives).
//!
//! # Embedding
//!
//! One torrent, the loop driven by the program ([`host::Host`] takes several, added and
//! removed while it runs: see `tools/embed.rs`):
//!
//! ```no_run
//! use std::sync::Arc;
//! let meta = Arc::new(btmini::metainfo::Metainfo::from_bytes(&std::fs::read("a.torrent")?)?);
//! let opts = btmini::engine::DownloadOptions { output: "out".into(), ..Default::default() };
//! let mut d = btmini::engine::Download::new(meta, opts, &mut |_, _| {})?;
//! while !d.step(Some(std::time::Duration::from_millis(100)))? {
//!     let s = d.status();
//!     println!("{} of {} bytes", s.have_bytes, s.total);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `unsafe` code lives in two small modules, `storage::sys` (the mmap and the system calls
//! std lacks) and [`signals`] (the signalfd), in the terminal-size ioctl in [`logging`], and
//! in the two socket calls std lacks in [`net`] (ICMP errors of UDP datagrams, for uTP),
//! each block with the reasoning that makes it sound.
//!
//! # BEPs
//!
//! - BEP 3: bencode, metainfo, info-hash over the raw `info` bytes.
//! - BEP 3: the peer wire protocol and HTTP trackers.
//! - BEP 5: the DHT ([`dht`]: KRPC codec, routing table, peer store and tokens, and a
//!   sans-IO node with iterative lookups), on the host's UDP socket.
//! - BEP 6: the Fast extension (have_all/none, reject_request, allowed_fast).
//! - BEP 9: magnet links ([`magnet`]); metadata fetched from peers ([`ext::fetch`]:
//!   one request per peer, 32 MiB at most, checked against the info-hash) and served from
//!   the raw `info` bytes ([`ext::metadata`]).
//! - BEP 10: the extension protocol ([`ext`]), with `reqq` honoured both ways.
//! - BEP 11: peer exchange ([`ext::pex`]), never for private torrents.
//! - BEP 7: IPv6 peers (`peers6`) from trackers.
//! - BEP 12: `announce-list` tiers.
//! - BEP 15: UDP trackers.
//! - BEP 23: compact peer lists.
//! - BEP 27: the `private` flag.
//! - BEP 47: padding files (`attr` containing `p`) are hashed as zeros, never stored.
//! - BEP 52: hybrid torrents work as v1; v2-only torrents are refused with a clear error.
//! - MSE/PE (no BEP; the Vuze wiki's spec): incoming encrypted connections are answered
//!   ([`mse`]); outgoing ones are plaintext for now.

pub mod app;
pub mod bencode;
pub mod bitfield;
pub mod cli;
pub mod create;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod dht;
pub mod engine;
pub mod ext;
#[warn(clippy::cast_possible_truncation)] // file offsets: checked on 32 bits
pub mod geometry;
pub mod hash;
pub mod host;
pub mod json;
pub mod logging;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod net;
pub mod peer;
#[warn(clippy::cast_possible_truncation)] // file offsets: checked on 32 bits
pub mod picker;
#[cfg(feature = "daemon")]
pub mod rpc;
pub mod selection;
pub mod session;
pub mod signals;
#[warn(clippy::cast_possible_truncation)] // file offsets: checked on 32 bits
pub mod storage;
pub mod tracker;
pub mod util;
pub mod utp;
#[warn(clippy::cast_possible_truncation)] // file offsets: checked on 32 bits
pub mod wire;
