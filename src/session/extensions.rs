//! The session's side of the extensions: our extended handshake (BEP 10), and peer exchange
//! (BEP 11) both ways — what we tell each peer once a minute, and what its messages add to
//! the candidates. Never for a private torrent (BEP 27). The codecs are in [`crate::ext`].

use super::*;
use crate::ext::metadata::{self, MetadataMsg};

impl Session {
    /// Our extended handshake for peer `key`.
    pub(super) fn our_ext_handshake(&self, key: usize) -> ExtHandshake {
        ExtHandshake {
            ut_pex: self.pex.then_some(crate::ext::UT_PEX),
            ut_metadata: Some(crate::ext::UT_METADATA),
            port: self.listen_port,
            client: Some(concat!("btmini ", env!("CARGO_PKG_VERSION")).into()),
            reqq: Some(self.config.reqq as u32),
            yourip: self.peers.get(key).map(|p| p.conn.addr.ip()),
            metadata_size: self.has_metadata().then_some(self.metadata.len() as u64),
            upload_only: false,
            encryption: self.prefers_encryption,
        }
    }

    /// A `ut_metadata` message (BEP 9). A request is answered from the raw `info` bytes,
    /// private torrents included, while the peer's send buffer is under the high-water mark
    /// (so a peer that asks and never reads gets rejects, not our memory); a piece past the
    /// end, or any while we have no metadata, is rejected. Data and rejects go to the fetch.
    pub(super) fn on_metadata(&mut self, key: usize, m: MetadataMsg<'_>, now: Instant) {
        let MetadataMsg::Request(piece) = m else {
            self.on_metadata_answer(key, m, now);
            return;
        };
        let high = self.config.tx_high_water;
        let c = &mut self.peers[key].conn;
        let answer = match metadata::piece_of(&self.metadata, piece) {
            Some(data) if c.pending().len() + data.len() <= high => MetadataMsg::Data {
                piece,
                total_size: self.metadata.len() as u64,
                data,
            },
            _ => MetadataMsg::Reject(piece),
        };
        c.send_metadata(&answer);
    }

    /// A peer's extended handshake was taken in.
    pub(super) fn on_ext_handshake(&mut self, key: usize, now: Instant) {
        let pex = self.pex;
        let p = &mut self.peers[key];
        if let Some(c) = &p.conn.ext.client {
            log::debug!("{} is {c}", p.conn.addr);
        }
        if pex && p.conn.ext.ut_pex != 0 && p.conn.pex_due.is_none() {
            // The first PEX message goes soon (at the next tick), as libtorrent's does.
            p.conn.pex_due = Some(now);
        }
        // Its `reqq` may cap the pipeline below what is in flight: nothing to undo, the
        // next fill asks for less.
        self.fetch_add_peer(key, now);
    }

    /// Addresses from a peer's PEX message join the candidates like a tracker's. A seed
    /// does not dial peers that say they are seeds.
    pub(super) fn on_pex(&mut self, key: usize, pex: Pex, now: Instant) {
        if !self.pex {
            return;
        }
        log::debug!(
            "PEX from {}: {} added, {} dropped",
            self.peers[key].conn.addr,
            pex.added.len(),
            pex.dropped.len()
        );
        let complete = self.completed;
        let addrs: Vec<SocketAddr> = pex
            .added
            .into_iter()
            .filter(|(_, f)| !(complete && f & pex::FLAG_SEED != 0))
            .map(|(a, _)| a)
            .collect();
        self.add(addrs, false, now);
    }

    /// Sends peer `key` what changed in our connections since its last PEX message: the
    /// peers others can dial (ones we dialled, or with a stated listen port), at most
    /// [`PEX_MAX`] added and dropped. The flags say which are seeds, which we dialled
    /// (connectable), which spoke MSE with us or said they prefer it, and which came over uTP.
    pub(super) fn send_pex(&mut self, key: usize, now: Instant) {
        if !self.pex {
            // A magnet's metadata said private (BEP 27): no more PEX, whatever was due.
            if let Some(p) = self.peers.get_mut(key) {
                p.conn.pex_due = None;
            }
            return;
        }
        let mut reachable: Vec<(SocketAddr, u8)> = Vec::new();
        for (k, q) in self.peers.iter() {
            if k == key || !q.is_active() {
                continue;
            }
            if let Some(a) = q.conn.reachable_addr() {
                let mut flags = q.conn.transport_flags;
                if q.conn.ext.encryption {
                    flags |= pex::FLAG_ENCRYPTION;
                }
                if q.is_seed() {
                    flags |= pex::FLAG_SEED;
                }
                if q.conn.outgoing {
                    flags |= pex::FLAG_CONNECTABLE;
                }
                reachable.push((a, flags));
            }
        }
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        let told = &mut p.conn.pex_told;
        let mut msg = Pex::default();
        for &(a, f) in &reachable {
            if msg.added.len() < PEX_MAX && a != p.conn.addr && !told.contains(&a) {
                msg.added.push((a, f));
            }
        }
        told.retain(|a| {
            let gone = !reachable.iter().any(|(r, _)| r == a);
            if gone && msg.dropped.len() < PEX_MAX {
                msg.dropped.push(*a);
                return false;
            }
            true
        });
        told.extend(msg.added.iter().map(|(a, _)| *a));
        p.conn.pex_due = Some(now + PEX_INTERVAL);
        if msg.added.is_empty() && msg.dropped.is_empty() {
            return;
        }
        let payload = msg.encode();
        let id = p.conn.ext.ut_pex;
        p.conn.send(&Message::Extended {
            id,
            payload: &payload,
        });
        self.want_send(key);
    }
}
