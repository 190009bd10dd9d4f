//! The session of a torrent started from its info-hash (a magnet link), until its metadata
//! is known: what peers say they have is kept (bounded, in `peer::EarlyHas`), the metadata
//! is fetched from peers that offer it (BEP 9, through [`MetadataFetch`]), and once the
//! shell has validated it and opened storage, [`Session::set_metadata`] turns the session
//! into an ordinary one. Serving metadata is in `extensions.rs`.

use super::*;
use crate::ext::fetch::Progress;
use crate::ext::metadata::MetadataMsg;

/// Where the metadata fetch is, for the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataStatus {
    /// Metadata pieces in, of how many (0 of 0 until a peer states the size).
    pub pieces: (usize, usize),
    /// Connected peers that offer the metadata.
    pub offering: usize,
}

impl Session {
    /// Whether the torrent's metadata is known (always, for a session made from a
    /// torrent).
    pub fn has_metadata(&self) -> bool {
        !self.metadata.is_empty()
    }

    /// Where the metadata fetch is; `None` once the metadata is known.
    pub fn metadata_status(&self) -> Option<MetadataStatus> {
        let f = self.fetch.as_ref()?;
        Some(MetadataStatus {
            pieces: f.progress(),
            offering: self
                .peers
                .iter()
                .filter(|(_, p)| p.conn.ext.ut_metadata != 0 && p.conn.ext.metadata_size.is_some())
                .count(),
        })
    }

    /// The metadata from [`Action::Metadata`], validated as `meta`, with the pieces in
    /// `have` already verified on disk: the download starts. What connected peers said
    /// they have is checked against the piece count now, and a peer whose bitfield or HAVEs
    /// do not fit is dropped. Ignored if the metadata is known already or is another
    /// torrent's.
    pub fn set_metadata(&mut self, meta: &Metainfo, have: Bitfield, now: Instant) {
        if self.has_metadata() || meta.info_hash.0 != self.info_hash {
            return;
        }
        self.fetch = None;
        self.install(meta, have);
        let count = self.piece_count;
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for k in keys {
            let p = &mut self.peers[k];
            p.has = Bitfield::new(count);
            let early = std::mem::take(&mut p.early);
            if !p.is_active() {
                continue;
            }
            match early.resolve(count) {
                Ok(has) => self.set_has(k, has),
                Err(e) => {
                    self.close(k, Violation::Bitfield(e).into(), now);
                    continue;
                }
            }
            // At the handshake we had nothing (have_none to a Fast peer): what storage
            // found on disk goes as HAVEs, which are allowed after either.
            let have = self.picker.have();
            let p = &mut self.peers[k];
            for i in have.ones() {
                p.conn.send(&Message::Have(i));
            }
            if let (true, std::net::IpAddr::V4(ip)) = (p.conn.fast, p.conn.addr.ip()) {
                let set = crate::peer::allowed_fast_set(
                    ip.octets(),
                    &self.info_hash,
                    count,
                    ALLOWED_FAST,
                );
                for &i in &set {
                    if have.get(i) {
                        p.conn.send(&Message::AllowedFast(i));
                    }
                }
                p.conn.allowed_out = set;
            }
            self.want_send(k);
        }
        if self.completed {
            self.actions.push_back(Action::Completed);
        }
        self.fill_all(now);
    }

    /// A message from peer `key` before the metadata is known: what it has is kept for
    /// later, requests are refused (we have nothing), blocks cannot have been asked for.
    pub(super) fn on_early_message(
        &mut self,
        key: usize,
        msg: Message<'_>,
    ) -> Result<(), CloseReason> {
        let p = &mut self.peers[key];
        let too_large = |crate::peer::early::TooLarge(i)| Violation::EarlyPieceTooLarge(i);
        match msg {
            Message::Have(i) => p.early.have(i).map_err(too_large)?,
            Message::Bitfield(bytes) => p.early.bitfield(bytes).map_err(too_large)?,
            Message::HaveAll => p.early.have_all(),
            Message::HaveNone => p.early.have_none(),
            Message::Choke => {
                p.conn.choked_us();
            }
            Message::Unchoke => p.conn.peer_choking = false,
            Message::Interested => p.conn.peer_interested = true,
            Message::NotInterested => p.conn.not_interested(),
            Message::Request {
                index,
                begin,
                length,
            } => p.conn.refuse(BlockRef {
                index,
                begin,
                len: length,
            }),
            Message::Reject {
                index,
                begin,
                length,
            } => {
                p.conn.rejected(BlockRef {
                    index,
                    begin,
                    len: length,
                })?;
            }
            Message::Piece { index, .. } => {
                return Err(Violation::NoSuchPiece {
                    message: "block",
                    index,
                }
                .into());
            }
            Message::Port(port) => self.on_port(key, port),
            Message::KeepAlive
            | Message::Unknown(_)
            | Message::Suggest(_)
            | Message::AllowedFast(_)
            | Message::Cancel { .. }
            | Message::Extended { .. } => {}
        }
        Ok(())
    }

    /// Peer `key`'s extended handshake, for the fetch: a peer that offers the metadata and
    /// states its size may be asked for it.
    pub(super) fn fetch_add_peer(&mut self, key: usize, now: Instant) {
        let Some(f) = self.fetch.as_mut() else {
            return;
        };
        let ext = &self.peers[key].conn.ext;
        let (true, Some(size)) = (ext.ut_metadata != 0, ext.metadata_size) else {
            return;
        };
        match f.add_peer(key, size) {
            Ok(()) => self.fetch_more(now),
            Err(e) => self.close(key, Violation::Metadata(e).into(), now),
        }
    }

    /// Asks every peer that may be asked now for its next metadata piece.
    pub(super) fn fetch_more(&mut self, now: Instant) {
        let Some(f) = self.fetch.as_mut() else {
            return;
        };
        let mut asked = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            if !p.is_active() || p.conn.ext.ut_metadata == 0 {
                continue;
            }
            if let Some(piece) = f.next_request(k, now) {
                p.conn.send_metadata(&MetadataMsg::Request(piece));
                asked.push(k);
            }
        }
        for k in asked {
            self.want_send(k);
        }
    }

    /// A metadata piece or reject from peer `key`.
    pub(super) fn on_metadata_answer(&mut self, key: usize, m: MetadataMsg<'_>, now: Instant) {
        let Some(f) = self.fetch.as_mut() else {
            // Not asked for: a late answer after the metadata was complete.
            return;
        };
        match m {
            MetadataMsg::Request(_) => {}
            MetadataMsg::Reject(piece) => {
                log::debug!(
                    "{} rejected metadata piece {piece}",
                    self.peers[key].conn.addr
                );
                f.on_reject(key, piece, now);
            }
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => match f.on_data(key, piece, total_size, data) {
                Err(e) => {
                    self.close(key, Violation::Metadata(e).into(), now);
                }
                Ok(Progress::More) => {}
                Ok(Progress::Done(info)) => {
                    log::info!("metadata received ({} bytes)", info.len());
                    self.fetch = None;
                    self.actions.push_back(Action::Metadata(info));
                    return;
                }
                Ok(Progress::WrongHash(liar)) => {
                    log::warn!("the metadata failed the info-hash: fetching it again");
                    if let Some(p) = liar.and_then(|k| self.peers.get(k).map(|p| (k, p))) {
                        let (k, addr) = (p.0, p.1.conn.addr);
                        self.known.entry(addr).or_default().banned = true;
                        self.close(k, CloseReason::BadMetadata, now);
                    }
                }
            },
        }
        self.fetch_more(now);
    }

    /// The fetch's timers, at each tick: unanswered requests go to other peers.
    pub(super) fn fetch_tick(&mut self, now: Instant) {
        if let Some(f) = self.fetch.as_mut() {
            f.handle_timeout(now);
            self.fetch_more(now);
        }
    }
}
