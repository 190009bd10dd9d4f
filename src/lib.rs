//! btmini: a small BitTorrent client for small Linux boxes.
//!
//! `btmini file.torrent -o dir` downloads a torrent, verifies every piece, shares with the
//! swarm and resumes after a stop. This crate is the whole client as a library; the `btmini`
//! binary is a thin layer on [`cli`] and [`app`].
//!
//! # Layers
//!
//! 1. **Pure codecs**: bytes in, values out, no I/O. [`bencode`] (BEP 3), [`metainfo`]
//!    (`.torrent` files: BEP 3, 12, 27, 47; hybrid BEP 52 torrents load as v1),
//!    [`bitfield`], [`geometry`] (piece ↔ file spans) and the sidecar format
//!    ([`storage::sidecar`]).
//! 2. **Pure state machines** (peers, piece picker, session): time comes in as `now`, actions
//!    come out; none yet in this build.
//! 3. **The I/O shell**: [`storage`] (memory-mapped files with reserved blocks, verified-only
//!    writes, the sidecar replaced atomically after the data it claims is durable), the
//!    command line ([`cli`], [`app`], [`logging`]) and torrent creation ([`create`]).
//!
//! `unsafe` code lives in one module, `storage::sys` (the mmap and the system calls std
//! lacks), each block with the reasoning that makes it sound.
//!
//! # BEPs
//!
//! - BEP 3: bencode, metainfo, info-hash over the raw `info` bytes.
//! - BEP 12: `announce-list` tiers.
//! - BEP 27: the `private` flag.
//! - BEP 47: padding files (`attr` containing `p`) are hashed as zeros, never stored.
//! - BEP 52: hybrid torrents work as v1; v2-only torrents are refused with a clear error.

pub mod app;
pub mod bencode;
pub mod bitfield;
pub mod cli;
pub mod create;
pub mod engine;
pub mod geometry;
pub mod json;
pub mod logging;
pub mod metainfo;
pub mod net;
pub mod peer;
pub mod picker;
pub mod session;
pub mod signals;
pub mod storage;
pub mod tracker;
pub mod util;
pub mod wire;
