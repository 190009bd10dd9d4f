//! Which block to ask a peer for next: rarest first (random among equals; the first few
//! pieces at random so there is soon something to share), pieces already started finished
//! before new ones, and endgame at the end (a block already asked of someone else may be
//! asked of a second and third peer). The partial pieces' buffers live here until the piece
//! is complete and goes to storage for its hash check.
//!
//! Each piece has a tier (0 high, 1 normal, 2 low, [`SKIP`]: not wanted), from the
//! priorities and selection of the files it touches: higher tiers are started first, and
//! skipped pieces never.

mod rarity;

pub use rarity::SKIP;

use crate::bitfield::Bitfield;
use crate::wire::BLOCK;
use rarity::Rarity;
use std::collections::HashMap;

/// Pieces picked at random before rarest-first takes over.
const RANDOM_FIRST: u32 = 4;
/// Piece buffers kept for reuse.
const SPARE_BUFFERS: usize = 1;
/// In endgame, at most this many peers are asked for the same block.
const ENDGAME_DUPLICATES: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Open,
    /// Asked of this many peers.
    Requested(u8),
    Received,
}

/// A piece being downloaded.
#[derive(Debug)]
struct Partial {
    buf: Vec<u8>,
    blocks: Vec<Block>,
    /// Blocks in [`Block::Open`], and no open block lies before `first_open`.
    open: u32,
    first_open: usize,
    received: u32,
    /// Peers (by key) that sent blocks of it, to blame if the hash fails.
    contributors: Vec<usize>,
}

/// A block to request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Piece index.
    pub index: u32,
    /// Offset in the piece.
    pub begin: u32,
    /// Length (16 KiB but for the torrent's last block).
    pub len: u32,
}

/// A piece whose blocks have all arrived, for the hash check.
#[derive(Debug, PartialEq, Eq)]
pub struct Complete {
    /// Piece index.
    pub index: u32,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Peers that sent its blocks.
    pub contributors: Vec<usize>,
}

/// What [`Picker::receive`] made of a block.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    /// Other peers were asked for this block too (endgame): their requests can be
    /// cancelled.
    pub also_asked: bool,
    /// The piece, when this block completed it.
    pub complete: Option<Complete>,
}

/// A block that was never asked for, or does not fit its piece: the peer is misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnexpectedBlock;

/// Piece selection for one torrent.
#[derive(Debug)]
pub struct Picker {
    piece_length: u64,
    total: u64,
    have: Bitfield,
    /// Pieces whose data has been handed to storage and not yet confirmed.
    writing: Bitfield,
    /// Wanted pieces neither verified nor being written.
    need: u32,
    /// Wanted pieces not verified.
    lacking: u32,
    /// Wanted pieces.
    wanted_count: u32,
    /// Pieces not yet started, rarest first.
    rarity: Rarity,
    partial: HashMap<u32, Partial>,
    /// Partial pieces with open blocks, so a pick need not look at the others.
    with_open: Vec<u32>,
    rng: u64,
    /// Do not start the last piece not yet started (the share rule).
    hold_last: bool,
    /// Buffers of pieces already stored, reused for new ones: a fresh allocation would be
    /// page-faulted and zeroed by the kernel for every piece.
    spare: Vec<Vec<u8>>,
}

impl Picker {
    /// A picker for a torrent of `total` bytes in pieces of `piece_length`, with `have`
    /// already verified.
    pub fn new(piece_length: u64, total: u64, have: Bitfield, seed: u64) -> Self {
        let mut rng = seed | 1;
        let mut missing: Vec<u32> = (0..have.len()).filter(|&i| !have.get(i)).collect();
        // Shuffled once, so pieces equally rare are taken in a random order.
        for i in (1..missing.len()).rev() {
            rng = xorshift(rng);
            missing.swap(i, usize_of(rng % (i as u64 + 1)));
        }
        let need = u32_of(missing.len());
        Self {
            piece_length,
            total,
            need,
            lacking: need,
            wanted_count: have.len(),
            writing: Bitfield::new(have.len()),
            rarity: Rarity::new(have.len(), missing),
            have,
            partial: HashMap::new(),
            with_open: Vec::new(),
            rng,
            hold_last: false,
            spare: Vec::new(),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng = xorshift(self.rng);
        self.rng
    }

    /// The torrent's size.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Wanted pieces neither verified nor on their way to storage.
    pub fn missing(&self) -> u32 {
        self.need
    }

    /// Whether every wanted piece is verified.
    pub fn is_done(&self) -> bool {
        self.lacking == 0
    }

    /// Bytes of the wanted pieces, and of those not yet verified.
    pub fn wanted_bytes(&self) -> (u64, u64) {
        let n = self.have.len();
        if n == 0 {
            return (0, 0);
        }
        let last = n - 1;
        // The last piece may be short.
        let short = self.piece_length - self.piece_size(last);
        let bytes = |count: u32, with_last: bool| {
            u64::from(count) * self.piece_length - if with_last { short } else { 0 }
        };
        let last_wanted = self.wanted(last);
        (
            bytes(self.wanted_count, last_wanted),
            bytes(self.lacking, last_wanted && !self.have.get(last)),
        )
    }

    /// Whether piece `index` is wanted at all (its tier is not [`SKIP`]).
    pub fn is_wanted(&self, index: u32) -> bool {
        index < self.have.len() && self.rarity.tier(index) < SKIP
    }

    fn wanted(&self, index: u32) -> bool {
        self.rarity.tier(index) < SKIP
    }

    /// Gives each piece its tier: 0 high, 1 normal, 2 low, [`SKIP`] not wanted (a shorter
    /// list leaves the rest normal). Pieces already started are finished whatever their new
    /// tier: their blocks are on their way.
    pub fn set_tiers(&mut self, tiers: &[u8]) {
        let n = self.have.len();
        let tier: Vec<u8> = (0..n as usize)
            .map(|i| tiers.get(i).copied().unwrap_or(1).min(SKIP))
            .collect();
        // The current candidates keep their (shuffled) order; pieces that become wanted
        // join after them in piece order.
        let fresh =
            |i: u32| !self.have.get(i) && !self.writing.get(i) && !self.partial.contains_key(&i);
        let mut cands: Vec<u32> = self.rarity.order().to_vec();
        let mut listed = Bitfield::new(n);
        for &i in &cands {
            listed.set(i);
        }
        cands.extend((0..n).filter(|&i| !listed.get(i) && fresh(i)));
        cands.retain(|&i| tier[i as usize] < SKIP);
        let mut need = 0;
        let mut lacking = 0;
        for (i, &t) in tier.iter().enumerate() {
            let i = u32_of(i);
            if t < SKIP && !self.have.get(i) {
                lacking += 1;
                need += u32::from(!self.writing.get(i));
            }
        }
        self.need = need;
        self.lacking = lacking;
        self.wanted_count = u32_of(tier.iter().filter(|&&t| t < SKIP).count());
        self.rarity.rebuild(tier, cands);
    }

    /// Pieces neither verified, on their way to storage, nor being downloaded.
    pub fn unstarted(&self) -> u32 {
        self.missing().saturating_sub(u32_of(self.partial.len()))
    }

    /// Holds back (or lets go of) the last piece not yet started.
    pub fn set_hold_last(&mut self, hold: bool) {
        self.hold_last = hold;
    }

    /// Length of piece `index`.
    pub fn piece_size_of(&self, index: u32) -> u64 {
        self.piece_size(index)
    }

    fn piece_size(&self, index: u32) -> u64 {
        (self.total - u64::from(index) * self.piece_length).min(self.piece_length)
    }

    /// Whether we want and lack piece `index` (not verified, not being written).
    pub fn wants(&self, index: u32) -> bool {
        index < self.have.len()
            && self.wanted(index)
            && !self.have.get(index)
            && !self.writing.get(index)
    }

    /// A peer announced piece `index`.
    pub fn add_available(&mut self, index: u32) {
        if index < self.have.len() {
            self.rarity.increment(index);
        }
    }

    /// A peer with these pieces left.
    pub fn remove_available(&mut self, pieces: &Bitfield) {
        for i in pieces.ones() {
            if i < self.have.len() {
                self.rarity.decrement(i);
            }
        }
    }

    /// The next block to ask of a peer that has `peer_has`; `endgame` allows a block
    /// already asked of other peers, and `asked(b)` says whether this peer already has a
    /// request out for `b`. `None` when the peer has nothing we need that is not already
    /// asked for enough.
    pub fn pick(
        &mut self,
        peer_has: &Bitfield,
        max_partial: usize,
        endgame: bool,
        asked: impl Fn(BlockRef) -> bool,
    ) -> Option<BlockRef> {
        // 1. An open block of a piece already started.
        if let Some(&index) = self.with_open.iter().find(|&&i| peer_has.get(i)) {
            let p = &self.partial[&index];
            let b = (p.first_open..p.blocks.len())
                .find(|&b| p.blocks[b] == Block::Open)
                .expect("a listed piece has an open block");
            return Some(self.take(index, b));
        }
        // 2. A new piece, if we may start one (and it is not the held last one).
        let held = self.hold_last && self.unstarted() <= 1;
        // Pieces on their way to storage still hold their buffers: they count, so a
        // fast peer cannot run ahead of the hash checks.
        let held_buffers = self.partial.len() + self.writing.count() as usize;
        if held_buffers < max_partial && !held {
            if let Some(index) = self.choose_new(peer_has) {
                let size = self.piece_size(index);
                let blocks = usize_of(size.div_ceil(u64::from(BLOCK)));
                self.rarity.remove(index);
                let mut buf = self.spare.pop().unwrap_or_default();
                // Every byte is overwritten by a block before the piece is complete.
                buf.resize(usize_of(size), 0);
                self.partial.insert(
                    index,
                    Partial {
                        buf,
                        blocks: vec![Block::Open; blocks],
                        open: u32_of(blocks),
                        first_open: 0,
                        received: 0,
                        contributors: Vec::new(),
                    },
                );
                self.with_open.push(index);
                return Some(self.take(index, 0));
            }
        }
        // 3. Endgame: nothing is left unasked; ask for a block someone else is slow with.
        if !endgame || self.missing() as usize > self.partial.len() + usize::from(held) {
            return None;
        }
        let mut best: Option<(u8, BlockRef)> = None;
        'scan: for (&index, p) in &self.partial {
            if !peer_has.get(index) {
                continue;
            }
            for (b, state) in p.blocks.iter().enumerate() {
                if let Block::Requested(n) = *state {
                    let r = self.block_ref(index, b);
                    if n < ENDGAME_DUPLICATES && !asked(r) && best.is_none_or(|(m, _)| n < m) {
                        best = Some((n, r));
                        if n == 1 {
                            // No block is asked of fewer peers than that.
                            break 'scan;
                        }
                    }
                }
            }
        }
        let (_, r) = best?;
        let p = self.partial.get_mut(&r.index).expect("found above");
        if let Block::Requested(n) = &mut p.blocks[(r.begin / BLOCK) as usize] {
            *n += 1;
        }
        Some(r)
    }

    fn block_ref(&self, index: u32, b: usize) -> BlockRef {
        let begin = u32_of(b) * BLOCK;
        let len = u32_of(usize_of(
            (self.piece_size(index) - u64::from(begin)).min(u64::from(BLOCK)),
        ));
        BlockRef { index, begin, len }
    }

    /// Marks open block `b` of partial piece `index` requested.
    fn take(&mut self, index: u32, b: usize) -> BlockRef {
        let r = self.block_ref(index, b);
        let p = self.partial.get_mut(&index).expect("partial");
        p.blocks[b] = Block::Requested(1);
        p.open -= 1;
        p.first_open = b + 1;
        if p.open == 0 {
            self.with_open.retain(|&i| i != index);
        }
        r
    }

    /// Rarest first among the pieces the peer has and we have not started, random among
    /// equals (the order was shuffled); the first few at random.
    fn choose_new(&mut self, peer_has: &Bitfield) -> Option<u32> {
        let len = self.rarity.order().len();
        if len == 0 {
            return None;
        }
        if self.have.count() < RANDOM_FIRST {
            // At random among the most urgent tier's pieces, then in order.
            let front = self.rarity.first_tier_len();
            let from = usize_of(self.random() % front as u64);
            let order = self.rarity.order();
            let (a, b) = order[..front].split_at(from);
            let rest = &order[front..];
            return b
                .iter()
                .chain(a)
                .chain(rest)
                .copied()
                .find(|&i| peer_has.get(i));
        }
        self.rarity
            .order()
            .iter()
            .copied()
            .find(|&i| peer_has.get(i))
    }

    /// A request was lost (timeout, choke, the peer left): the block may be asked again.
    pub fn cancel(&mut self, r: BlockRef) {
        let Some(p) = self.partial.get_mut(&r.index) else {
            return;
        };
        let b = (r.begin / BLOCK) as usize;
        match p.blocks.get(b) {
            Some(Block::Requested(n)) if *n > 1 => p.blocks[b] = Block::Requested(n - 1),
            Some(Block::Requested(_)) => {
                p.blocks[b] = Block::Open;
                p.open += 1;
                p.first_open = p.first_open.min(b);
                if p.open == 1 {
                    self.with_open.push(r.index);
                }
            }
            _ => {}
        }
    }

    /// A block arrived from peer `from`. `Err` when the block was never asked for or does
    /// not fit (the peer is misbehaving). A duplicate of a block already received (endgame)
    /// is stored nowhere.
    pub fn receive(
        &mut self,
        index: u32,
        begin: u32,
        data: &[u8],
        from: usize,
    ) -> Result<Received, UnexpectedBlock> {
        if begin % BLOCK != 0 {
            return Err(UnexpectedBlock);
        }
        let expected = {
            let Some(p) = self.partial.get(&index) else {
                return Err(UnexpectedBlock);
            };
            let b = (begin / BLOCK) as usize;
            if b >= p.blocks.len() {
                return Err(UnexpectedBlock);
            }
            (b, self.block_ref(index, b).len)
        };
        if data.len() != expected.1 as usize {
            return Err(UnexpectedBlock);
        }
        let p = self.partial.get_mut(&index).expect("checked");
        let also_asked = match p.blocks[expected.0] {
            Block::Received => {
                return Ok(Received {
                    also_asked: false,
                    complete: None,
                });
            }
            Block::Open => return Err(UnexpectedBlock),
            Block::Requested(n) => n > 1,
        };
        p.blocks[expected.0] = Block::Received;
        p.buf[begin as usize..begin as usize + data.len()].copy_from_slice(data);
        p.received += 1;
        if !p.contributors.contains(&from) {
            p.contributors.push(from);
        }
        if p.received as usize == p.blocks.len() {
            let p = self.partial.remove(&index).expect("present");
            self.writing.set(index);
            if self.wanted(index) {
                self.need -= 1;
            }
            return Ok(Received {
                also_asked,
                complete: Some(Complete {
                    index,
                    data: p.buf,
                    contributors: p.contributors,
                }),
            });
        }
        Ok(Received {
            also_asked,
            complete: None,
        })
    }

    /// A completed piece's buffer, done with: kept for a later piece.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() as u64 >= self.piece_length {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Storage verified and wrote the piece.
    pub fn verified(&mut self, index: u32) {
        self.writing.clear(index);
        if self.wanted(index) && !self.have.get(index) {
            self.lacking -= 1;
        }
        self.have.set(index);
    }

    /// The piece failed its hash (or could not be written): it is fetched again if wanted.
    pub fn failed(&mut self, index: u32) {
        self.writing.clear(index);
        if self.wanted(index) {
            self.need += 1;
            self.rarity.insert(index);
        }
    }

    /// Whether block `r` is still wanted (not received, piece not complete).
    pub fn is_pending(&self, r: BlockRef) -> bool {
        self.partial
            .get(&r.index)
            .and_then(|p| p.blocks.get((r.begin / BLOCK) as usize))
            .is_some_and(|b| matches!(b, Block::Requested(_)))
    }
}

/// A count or index of pieces (or of one piece's blocks) as a u32: a torrent has fewer than
/// 2^32 pieces.
fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 pieces")
}

/// A piece's length (or a number below one) as a usize: a piece is at most 128 MiB.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).expect("a piece is at most 128 MiB")
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data of known small sizes
mod tests {
    use super::*;

    fn full(n: u32) -> Bitfield {
        Bitfield::full(n)
    }

    fn recv(
        p: &mut Picker,
        index: u32,
        begin: u32,
        data: &[u8],
        from: usize,
    ) -> Result<Option<Complete>, UnexpectedBlock> {
        p.receive(index, begin, data, from).map(|r| r.complete)
    }

    fn block(i: u32) -> Vec<u8> {
        vec![i as u8; BLOCK as usize]
    }

    #[test]
    fn finishes_started_pieces_before_new_ones_and_assembles_them() {
        // 3 pieces of 2 blocks; the last piece is 1.5 blocks.
        let total = 2 * 2 * u64::from(BLOCK) + u64::from(BLOCK) + 100;
        let mut p = Picker::new(2 * u64::from(BLOCK), total, Bitfield::new(3), 7);
        // The peer has piece 0 only, so the pick is known.
        let mut all = Bitfield::new(3);
        all.set(0);
        let a = p.pick(&all, 1, true, |_| false).unwrap();
        let b = p.pick(&all, 1, true, |_| false).unwrap();
        assert_eq!(a.index, b.index, "the started piece is finished first");
        assert_eq!((a.begin, b.begin), (0, BLOCK));
        assert!(
            p.pick(&all, 1, true, |_| false).is_none(),
            "max one partial piece"
        );
        assert_eq!(recv(&mut p, a.index, 0, &block(1), 5), Ok(None));
        let done = recv(&mut p, b.index, BLOCK, &block(2), 6).unwrap().unwrap();
        assert_eq!(done.data.len(), 2 * BLOCK as usize);
        assert_eq!(done.contributors, vec![5, 6]);
        assert_eq!(p.missing(), 2);
        p.verified(done.index);
        assert!(p.have().get(done.index));
    }

    #[test]
    fn pieces_waiting_for_their_hash_check_count_against_the_memory_cap() {
        // 3 pieces of one block; at most 2 piece buffers.
        let mut p = Picker::new(u64::from(BLOCK), u64::from(3 * BLOCK), Bitfield::new(3), 5);
        let a = p.pick(&full(3), 2, true, |_| false).unwrap();
        let b = p.pick(&full(3), 2, true, |_| false).unwrap();
        let done = recv(&mut p, a.index, 0, &block(1), 1).unwrap().unwrap();
        assert_eq!(
            p.pick(&full(3), 2, false, |_| false),
            None,
            "a third buffer while piece {} is being stored",
            done.index
        );
        p.recycle(done.data);
        p.verified(a.index);
        let c = p.pick(&full(3), 2, false, |_| false).unwrap();
        assert!(c.index != a.index && c.index != b.index);
        assert!(
            p.spare.is_empty(),
            "the new piece took the stored one's buffer"
        );
    }

    #[test]
    fn rarest_first_after_the_random_start() {
        let n = 10;
        let mut have = Bitfield::new(n);
        for i in 0..RANDOM_FIRST {
            have.set(i);
        }
        let mut p = Picker::new(u64::from(BLOCK), u64::from(n * BLOCK), have, 3);
        for i in RANDOM_FIRST..n {
            for _ in 0..(10 - i) {
                p.add_available(i);
            }
        }
        // Piece 9 is the rarest (1 peer).
        assert_eq!(p.pick(&full(n), 10, true, |_| false).unwrap().index, 9);
        assert_eq!(p.pick(&full(n), 10, true, |_| false).unwrap().index, 8);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let n = 50;
        let mut first = std::collections::HashSet::new();
        for seed in 0..20 {
            let mut p = Picker::new(
                u64::from(BLOCK),
                u64::from(n * BLOCK),
                Bitfield::new(n),
                seed,
            );
            first.insert(p.pick(&full(n), 10, true, |_| false).unwrap().index);
        }
        assert!(first.len() > 5, "{first:?}");
    }

    #[test]
    fn endgame_asks_a_second_peer_and_ignores_the_duplicate() {
        let mut p = Picker::new(u64::from(BLOCK), u64::from(BLOCK), Bitfield::new(1), 1);
        let a = p.pick(&full(1), 4, true, |_| false).unwrap();
        // The same peer is not asked twice for one block.
        assert!(p.pick(&full(1), 4, true, |r| r == a).is_none());
        let b = p.pick(&full(1), 4, true, |_| false).unwrap();
        assert_eq!(a, b);
        let done = recv(&mut p, 0, 0, &block(9), 1).unwrap().unwrap();
        assert_eq!(done.index, 0);
        assert_eq!(
            recv(&mut p, 0, 0, &block(9), 2),
            Err(UnexpectedBlock),
            "piece no longer partial"
        );
    }

    #[test]
    fn the_held_last_piece_is_not_started_until_released() {
        let mut p = Picker::new(u64::from(BLOCK), u64::from(BLOCK) * 2, Bitfield::new(2), 1);
        p.set_hold_last(true);
        let a = p.pick(&full(2), 4, true, |_| false).unwrap();
        assert!(
            p.pick(&full(2), 4, true, |r| r == a).is_none(),
            "the second piece is held"
        );
        assert_eq!(p.unstarted(), 1);
        p.set_hold_last(false);
        let b = p.pick(&full(2), 4, true, |_| false).unwrap();
        assert_ne!(a.index, b.index);
    }

    #[test]
    fn lost_requests_are_asked_again_and_bad_blocks_refused() {
        let mut p = Picker::new(
            u64::from(BLOCK) * 2,
            u64::from(BLOCK) * 2,
            Bitfield::new(1),
            1,
        );
        let a = p.pick(&full(1), 1, true, |_| false).unwrap();
        p.cancel(a);
        assert_eq!(p.pick(&full(1), 1, true, |_| false).unwrap(), a);
        assert_eq!(
            recv(&mut p, 0, 5, &block(0), 1),
            Err(UnexpectedBlock),
            "misaligned"
        );
        assert_eq!(
            recv(&mut p, 0, 0, &[0; 10], 1),
            Err(UnexpectedBlock),
            "wrong length"
        );
        assert_eq!(
            recv(&mut p, 3, 0, &block(0), 1),
            Err(UnexpectedBlock),
            "not asked"
        );
        assert_eq!(
            recv(&mut p, 0, BLOCK * 4, &block(0), 1),
            Err(UnexpectedBlock),
            "out of range"
        );
        let second = p.pick(&full(1), 1, true, |_| false).unwrap();
        recv(&mut p, 0, 0, &block(1), 1).unwrap();
        let done = recv(&mut p, 0, second.begin, &block(2), 1)
            .unwrap()
            .unwrap();
        p.failed(done.index);
        assert_eq!(p.missing(), 1, "a failed piece is wanted again");
        assert_eq!(p.pick(&full(1), 1, true, |_| false).unwrap().index, 0);
    }

    /// Downloads every piece the picker hands out, one at a time, from a peer that has all.
    fn fetch_all(p: &mut Picker, n: u32) -> Vec<u32> {
        let mut got = Vec::new();
        while let Some(r) = p.pick(&full(n), 1, false, |_| false) {
            let done = recv(p, r.index, r.begin, &block(0), 1).unwrap().unwrap();
            p.verified(done.index);
            got.push(done.index);
        }
        got
    }

    #[test]
    fn skipped_pieces_are_never_picked_and_do_not_count_as_missing() {
        let mut p = Picker::new(u64::from(BLOCK), u64::from(6 * BLOCK), Bitfield::new(6), 3);
        p.set_tiers(&[1, SKIP, 1, SKIP, SKIP, 1]);
        assert_eq!((p.missing(), p.is_done()), (3, false));
        assert_eq!(
            p.wanted_bytes(),
            (3 * u64::from(BLOCK), 3 * u64::from(BLOCK))
        );
        assert!(!p.wants(1) && p.wants(2));
        let mut got = fetch_all(&mut p, 6);
        got.sort();
        assert_eq!(got, vec![0, 2, 5]);
        assert!(p.is_done());
        assert_eq!(p.missing(), 0);
        assert_eq!(p.wanted_bytes(), (3 * u64::from(BLOCK), 0));
        // Wanting one more piece later makes it a candidate, and the torrent not done.
        p.set_tiers(&[1, SKIP, 1, 1, SKIP, 1]);
        assert!(!p.is_done());
        assert_eq!(fetch_all(&mut p, 6), vec![3]);
        assert!(p.is_done());
    }

    #[test]
    fn high_priority_pieces_come_first_and_low_ones_last() {
        let n = 12;
        let mut p = Picker::new(u64::from(BLOCK), u64::from(n * BLOCK), Bitfield::new(n), 9);
        let tiers = [1, 2, 0, 1, 2, 0, 1, 1, 0, 2, 1, 1];
        p.set_tiers(&tiers);
        let got = fetch_all(&mut p, n);
        let order: Vec<u8> = got.iter().map(|&i| tiers[i as usize]).collect();
        assert_eq!(got.len(), n as usize);
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    }

    #[test]
    fn a_started_piece_that_becomes_unwanted_is_still_finished() {
        let mut p = Picker::new(
            2 * u64::from(BLOCK),
            u64::from(4 * BLOCK),
            Bitfield::new(2),
            1,
        );
        let mut has = Bitfield::new(2);
        has.set(0);
        let a = p.pick(&has, 2, false, |_| false).unwrap();
        p.set_tiers(&[SKIP, 1]);
        assert_eq!(p.missing(), 1);
        let b = p.pick(&has, 2, false, |_| false).unwrap();
        assert_eq!((a.index, b.index, b.begin), (0, 0, BLOCK));
        recv(&mut p, 0, 0, &block(0), 1).unwrap();
        let done = recv(&mut p, 0, BLOCK, &block(0), 1).unwrap().unwrap();
        p.verified(done.index);
        assert_eq!((p.missing(), p.is_done()), (1, false));
    }
}
