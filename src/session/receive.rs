//! The receiving half of the session: bytes from a peer go through its connection's codec,
//! and each handshake and message is acted on here — pieces it has, blocks it sent, its
//! choking, rejects and allowed-fast pieces (BEP 6). What a message is and whether it was
//! allowed is the connection's (`peer::Connection::decode`); what it means for the torrent
//! is this file's.

use super::*;

impl Session {
    /// Bytes arrived from peer `key`.
    pub fn received(&mut self, key: usize, data: &[u8], now: Instant) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        p.conn.last_heard = now;
        if let Err(reason) = self.receive_bytes(key, data, now) {
            self.close(key, reason, now);
        }
        self.want_send(key);
        self.connect_more(now);
    }

    /// Parses `data` for peer `key`. Whole messages are parsed straight from `data`; only a
    /// message split across reads is gathered in the peer's buffer, so most block data is
    /// copied once, into its piece.
    pub(super) fn receive_bytes(
        &mut self,
        key: usize,
        mut data: &[u8],
        now: Instant,
    ) -> Result<(), CloseReason> {
        loop {
            let Some(p) = self.peers.get_mut(key) else {
                return Ok(());
            };
            if p.conn.rx.is_empty() {
                break;
            }
            if data.is_empty() {
                return Ok(());
            }
            let n = p.conn.missing().min(data.len());
            p.conn.rx.extend_from_slice(&data[..n]);
            data = &data[n..];
            let mut rx = std::mem::take(&mut p.conn.rx);
            let mut at = 0;
            let result = self.parse(key, &rx, &mut at, now);
            if let Some(p) = self.peers.get_mut(key) {
                rx.drain(..at);
                p.conn.rx = rx;
            }
            result?;
        }
        let mut at = 0;
        self.parse(key, data, &mut at, now)?;
        if let Some(p) = self.peers.get_mut(key) {
            p.conn.rx.extend_from_slice(&data[at..]);
        }
        Ok(())
    }

    pub(super) fn parse(
        &mut self,
        key: usize,
        rx: &[u8],
        at: &mut usize,
        now: Instant,
    ) -> Result<(), CloseReason> {
        loop {
            let Some(p) = self.peers.get_mut(key) else {
                return Ok(());
            };
            let Some((input, n)) = p.conn.decode(&rx[*at..], self.max_msg, now)? else {
                return Ok(());
            };
            *at += n;
            match input {
                Input::Handshake(hs) => self.on_handshake(key, hs)?,
                Input::Message(msg) => self.on_message(key, msg, now)?,
                Input::ExtHandshake => self.on_ext_handshake(key, now),
                Input::Pex(pex) => self.on_pex(key, pex, now),
                Input::Metadata(m) => self.on_metadata(key, m, now),
                Input::Nothing => {}
            }
            // A handled input may have queued bytes (a reject, a PEX reply).
            self.want_send(key);
        }
    }

    pub(super) fn on_handshake(&mut self, key: usize, hs: Handshake) -> Result<(), CloseReason> {
        if hs.info_hash != self.info_hash {
            return Err(CloseReason::OtherTorrent);
        }
        if hs.peer_id == self.peer_id {
            let addr = self.peers[key].conn.addr;
            self.own.push(addr);
            return Err(CloseReason::Ourselves);
        }
        let ours = self.handshake();
        let ext = self.our_ext_handshake(key);
        let known = self.has_metadata();
        let have = self.picker.have();
        let p = &mut self.peers[key];
        if !p.conn.outgoing {
            p.conn.send_raw(&ours);
        }
        p.conn.established(&hs);
        if p.conn.ltep {
            // BEP 10: the extended handshake goes right after the handshake.
            p.conn.send_ext_handshake(&ext);
        }
        if let (true, Some(port)) = (p.conn.dht, self.dht_port) {
            p.conn.send(&Message::Port(port));
        }
        if !known {
            // A magnet's session has nothing yet; a peer without Fast is told nothing.
            if p.conn.fast {
                p.conn.send(&Message::HaveNone);
            }
        } else if p.conn.fast && have.is_full() {
            p.conn.send(&Message::HaveAll);
        } else if p.conn.fast && have.count() == 0 {
            p.conn.send(&Message::HaveNone);
        } else if have.count() > 0 {
            p.conn.send(&Message::Bitfield(have.as_bytes()));
        }
        if let (true, std::net::IpAddr::V4(ip)) = (p.conn.fast, p.conn.addr.ip()) {
            let set = crate::peer::allowed_fast_set(
                ip.octets(),
                &self.info_hash,
                self.piece_count,
                ALLOWED_FAST,
            );
            for &i in &set {
                if have.get(i) {
                    p.conn.send(&Message::AllowedFast(i));
                }
            }
            p.conn.allowed_out = set;
        }
        Ok(())
    }

    pub(super) fn on_message(
        &mut self,
        key: usize,
        msg: Message<'_>,
        now: Instant,
    ) -> Result<(), CloseReason> {
        if !self.has_metadata() {
            return self.on_early_message(key, msg);
        }
        let no_such = |message, index| {
            Err(CloseReason::Protocol(Violation::NoSuchPiece {
                message,
                index,
            }))
        };
        match msg {
            Message::Port(port) => self.on_port(key, port),
            Message::KeepAlive
            | Message::Unknown(_)
            | Message::Suggest(_)
            | Message::Extended { .. } => {}
            Message::Choke => {
                // Without Fast a choke discards every request; with it they stand until
                // served or rejected (and still time out).
                for (r, _) in self.peers[key].conn.choked_us() {
                    self.picker.cancel(r);
                }
                // Pieces it allows while choked can still be asked for.
                self.fill(key, now);
            }
            Message::Unchoke => {
                let c = &mut self.peers[key].conn;
                c.peer_choking = false;
                if c.rejects > 0 {
                    log::debug!(
                        "{} unchoked us after rejecting {} requests",
                        c.addr,
                        c.rejects
                    );
                    c.rejects = 0;
                }
                self.fill(key, now);
            }
            Message::Interested => {
                self.peers[key].conn.peer_interested = true;
                // A free upload slot is given at once rather than at the next round.
                if self.unchoked < self.config.upload_slots + 1 {
                    self.unchoke(key);
                }
            }
            Message::NotInterested => self.peers[key].conn.not_interested(),
            Message::Have(index) => {
                if index >= self.piece_count {
                    return no_such("have", index);
                }
                if self.peers[key].has.set(index) {
                    self.picker.add_available(index);
                    if self.picker.wants(index) {
                        self.peers[key].interesting += 1;
                        self.update_interest(key);
                        self.fill(key, now);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                let has = Bitfield::from_bytes(self.piece_count, bytes)
                    .map_err(|e| CloseReason::Protocol(Violation::Bitfield(e)))?;
                self.set_has(key, has);
            }
            Message::HaveAll => {
                log::debug!("{} has every piece (have_all)", self.peers[key].conn.addr);
                self.set_has(key, Bitfield::full(self.piece_count));
            }
            Message::HaveNone => self.set_has(key, Bitfield::new(self.piece_count)),
            Message::Reject {
                index,
                begin,
                length,
            } => {
                let r = BlockRef {
                    index,
                    begin,
                    len: length,
                };
                let c = &mut self.peers[key].conn;
                if c.rejected(r)? {
                    if c.rejects == 1 {
                        log::debug!("{} rejects our requests (BEP 6): asking again", c.addr);
                    }
                    self.picker.cancel(r);
                    self.fill(key, now);
                }
            }
            Message::AllowedFast(index) => {
                if index < self.piece_count && self.peers[key].conn.allow_in(index) {
                    self.fill(key, now);
                }
            }
            Message::Request {
                index,
                begin,
                length,
            } => self.on_request(
                key,
                BlockRef {
                    index,
                    begin,
                    len: length,
                },
                now,
            )?,
            Message::Cancel {
                index,
                begin,
                length,
            } => {
                if index >= self.piece_count {
                    return no_such("cancel", index);
                }
                self.peers[key].conn.cancelled(BlockRef {
                    index,
                    begin,
                    len: length,
                });
            }
            Message::Piece { index, begin, data } => self.on_block(key, index, begin, data, now)?,
        }
        Ok(())
    }

    /// A `port` message (BEP 5): the peer's DHT node is at its address and this port. Only
    /// once per connection, and only while our DHT serves this torrent.
    pub(super) fn on_port(&mut self, key: usize, port: u16) {
        let p = &mut self.peers[key];
        if self.dht_port.is_none() || port == 0 || p.conn.told_dht_port {
            return;
        }
        p.conn.told_dht_port = true;
        let addr = SocketAddr::new(p.conn.addr.ip(), port);
        self.actions.push_back(Action::DhtNode(addr));
    }

    /// Peer `key` has exactly the pieces in `has` (a bitfield, or BEP 6's have-all or
    /// have-none). BEP 3 allows a bitfield only first, but aria2c sends one again later: it
    /// replaces what the peer had.
    pub(super) fn set_has(&mut self, key: usize, has: Bitfield) {
        let old = std::mem::replace(&mut self.peers[key].has, Bitfield::new(self.piece_count));
        if old.count() > 0 {
            self.picker.remove_available(&old);
        }
        let mut interesting = 0;
        for i in has.ones() {
            self.picker.add_available(i);
            interesting += u32::from(self.picker.wants(i));
        }
        let p = &mut self.peers[key];
        p.has = has;
        p.interesting = interesting;
        self.update_interest(key);
    }

    pub(super) fn on_block(
        &mut self,
        key: usize,
        index: u32,
        begin: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<(), CloseReason> {
        if index >= self.piece_count {
            return Err(Violation::NoSuchPiece {
                message: "block",
                index,
            }
            .into());
        }
        let r = BlockRef {
            index,
            begin,
            len: data.len() as u32,
        };
        let p = &mut self.peers[key];
        if !p.conn.block_arrived(r)? {
            self.wasted += data.len() as u64;
            return Ok(());
        }
        p.downloaded += data.len() as u64;
        p.rate.add(data.len() as u64, now);
        self.downloaded += data.len() as u64;
        let got = self
            .picker
            .receive(index, begin, data, key)
            .map_err(|_| Violation::BadBlock { index, begin })?;
        if got.also_asked {
            // Endgame: other peers were asked for this block too.
            self.cancel_elsewhere(key, r);
        }
        if let Some(done) = got.complete {
            self.actions.push_back(Action::Verify(done));
        }
        self.fill(key, now);
        Ok(())
    }

    /// Endgame: the block arrived, so other peers asked for it are told to skip it.
    pub(super) fn cancel_elsewhere(&mut self, from: usize, r: BlockRef) {
        for (k, p) in self.peers.iter_mut() {
            if k != from && p.conn.cancel(r) && !p.queued {
                p.queued = true;
                self.outbox.push_back(k);
            }
        }
    }
}
