//! The sharing half of the session: serving verified blocks to the peers we unchoke, the
//! BEP 3 choke rounds, and the share rule that holds the last piece back.

use super::{Action, OPTIMISTIC_ROUND, Session};
use crate::peer::{CloseReason, Queued, Violation};
use crate::picker::BlockRef;
use crate::wire::{self, Message};
use std::time::{Duration, Instant};

impl Session {
    /// Bytes uploaded in earlier runs, counted towards the share rule.
    pub fn set_uploaded_before(&mut self, n: u64) {
        self.uploaded_before = n;
    }

    /// Why the last piece is held back, while it is (for the status line).
    pub fn holding(&self) -> Option<&str> {
        self.holding.as_deref()
    }

    /// The share rule (the seed's 10%): hold the last piece not yet started until enough is
    /// uploaded — unless every connected peer is a seed (nobody could take our data), or the
    /// connected leechers have asked for nothing for `share_wait`.
    pub(super) fn update_hold(&mut self, now: Instant) {
        self.hold_until = None;
        let need = self.config.min_share_bytes;
        let done = self.uploaded_before + self.uploaded;
        let near_end = self.picker.unstarted() <= 1 && !self.is_done();
        if need == 0 || done >= need || self.share_released || !near_end {
            self.set_hold(None);
            return;
        }
        let leechers: Vec<Option<Instant>> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_active() && !p.is_seed())
            .map(|(_, p)| p.last_request)
            .collect();
        if leechers.is_empty() {
            if self.holding.is_some() || self.hold_since.is_none() {
                log::info!(
                    "every connected peer is a seed: fetching the last piece without waiting for the share rule"
                );
            }
            self.hold_since = Some(now);
            self.set_hold(None);
            return;
        }
        let since = *self.hold_since.get_or_insert(now);
        let last_ask = leechers
            .into_iter()
            .flatten()
            .max()
            .map_or(since, |t| t.max(since));
        if now.duration_since(last_ask) >= self.config.share_wait {
            log::info!(
                "no leecher asked for anything in {} s: fetching the last piece",
                self.config.share_wait.as_secs()
            );
            self.share_released = true;
            self.set_hold(None);
            return;
        }
        self.hold_until = Some(last_ask + self.config.share_wait);
        let why = format!(
            "holding the last piece until {} is shared ({} so far)",
            crate::util::human_bytes(need),
            crate::util::human_bytes(done)
        );
        self.set_hold(Some(why));
    }

    pub(super) fn set_hold(&mut self, why: Option<String>) {
        self.picker.set_hold_last(why.is_some());
        self.holding = why;
    }

    /// Asks the shell for the next queued blocks of peer `key`, as far as its send buffer
    /// has room: a peer that reads slowly gets no more than the high-water mark buffered.
    pub(super) fn serve(&mut self, key: usize) {
        let high = self.config.tx_high_water;
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        let c = &mut p.conn;
        while c.pending().len() + c.reading * wire::BLOCK as usize + wire::BLOCK as usize <= high
            && self.up_bucket.open()
        {
            let Some(block) = c.upload_queue.pop_front() else {
                break;
            };
            self.up_bucket.take(u64::from(block.len));
            c.reading += 1;
            self.actions.push_back(Action::Read { key, block });
        }
    }

    /// The block asked for by [`Action::Read`] (`data` is its bytes), to be sent to peer `key`.
    pub fn block_read(&mut self, key: usize, block: BlockRef, data: &[u8], now: Instant) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        let c = &mut p.conn;
        c.reading = c.reading.saturating_sub(1);
        if c.am_choking && !c.allowed_out.contains(&block.index) {
            // Choked while the read was under way: the request is void.
            c.refuse(block);
            self.want_send(key);
            return;
        }
        c.send(&Message::Piece {
            index: block.index,
            begin: block.begin,
            data,
        });
        c.last_sent = now;
        p.uploaded += data.len() as u64;
        p.up_rate.add(data.len() as u64, now);
        self.uploaded += data.len() as u64;
        self.want_send(key);
    }

    pub(super) fn on_request(
        &mut self,
        key: usize,
        r: BlockRef,
        now: Instant,
    ) -> Result<(), CloseReason> {
        if r.index >= self.piece_count {
            return Err(Violation::NoSuchPiece {
                message: "request",
                index: r.index,
            }
            .into());
        }
        let size = self.picker.piece_size_of(r.index);
        let have = self.picker.have().get(r.index);
        let p = &mut self.peers[key];
        let c = &mut p.conn;
        if c.am_choking && !c.allowed_out.contains(&r.index) {
            // BEP 3: requests from a choked peer are dropped; BEP 6: rejected.
            c.refuse(r);
            return Ok(());
        }
        if !have {
            if c.fast {
                c.refuse(r);
                return Ok(());
            }
            return Err(Violation::NotVerified(r.index).into());
        }
        if r.len == 0 || r.len > wire::BLOCK || u64::from(r.begin) + u64::from(r.len) > size {
            return Err(Violation::BadRequest {
                index: r.index,
                begin: r.begin,
                len: r.len,
            }
            .into());
        }
        if c.enqueue(r, self.config.reqq)? == Queued::Yes {
            p.last_request = Some(now);
            self.serve(key);
        }
        Ok(())
    }

    pub(super) fn unchoke(&mut self, key: usize) {
        if self.peers[key].conn.unchoke() {
            self.unchoked += 1;
        }
    }

    pub(super) fn choke(&mut self, key: usize) {
        if self.peers[key].conn.choke() {
            self.unchoked -= 1;
        }
    }

    /// BEP 3 choking: every 10 s the peers that give us the best download rate (while
    /// seeding: that we upload to fastest) are unchoked, `upload_slots` of them, plus one
    /// optimistic unchoke rotated every 30 s that favours new peers.
    pub(super) fn choke_round(&mut self, now: Instant) {
        let complete = self.is_done();
        let mut candidates: Vec<(usize, f64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_active() && p.conn.peer_interested && !p.is_seed())
            .map(|(k, p)| {
                (
                    k,
                    if complete {
                        p.up_rate.get(now)
                    } else {
                        p.rate.get(now)
                    },
                )
            })
            .collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut keep: Vec<usize> = candidates
            .iter()
            .take(self.config.upload_slots)
            .map(|c| c.0)
            .collect();
        let rotate = self
            .last_optimistic
            .is_none_or(|t| now.duration_since(t) >= OPTIMISTIC_ROUND)
            || self.optimistic.is_none_or(|k| !self.peers.contains(k));
        if rotate {
            self.last_optimistic = Some(now);
            // New peers (connected under a minute) get three tickets, others one.
            let pool: Vec<usize> = candidates
                .iter()
                .map(|c| c.0)
                .filter(|k| !keep.contains(k))
                .flat_map(|k| {
                    let new =
                        now.duration_since(self.peers[k].conn.since) < Duration::from_secs(60);
                    std::iter::repeat_n(k, if new { 3 } else { 1 })
                })
                .collect();
            self.optimistic = if pool.is_empty() {
                None
            } else {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                Some(pool[(self.rng % pool.len() as u64) as usize])
            };
        }
        if let Some(k) = self.optimistic {
            keep.push(k);
        }
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for k in keys {
            if keep.contains(&k) {
                self.unchoke(k);
            } else {
                self.choke(k);
            }
        }
    }
}
