//! The pieces not yet started, kept sorted by availability (how many connected peers have
//! each) so that rarest-first costs O(1) per update and, for a peer that has what we need,
//! O(1) per pick — instead of a scan of every piece, which a 100,000-piece torrent cannot
//! afford on every request.
//!
//! `order` holds the candidate pieces sorted by availability; availability `a` occupies
//! `order[start[a]..start[a + 1]]`, and the last entry of `start` is `order.len()`. A
//! piece whose availability goes up by one is swapped to the end of its bucket, which then
//! ends one place earlier; going down is the mirror image. Pieces leave (started) and come
//! back (failed their hash) by walking the buckets above them, O(peers).
//!
//! Priorities ride on the same buckets: a piece's bucket is its availability plus its
//! tier's bias ([`TIER_SPAN`] per tier above the most urgent one in use), so every piece of
//! a higher tier sorts before any piece of a lower one, rarest first within each. With one
//! tier in use (the usual case) every bias is 0 and nothing changes.

// Positions, counts and bucket bounds here index vectors of at most one entry per piece,
// and piece indices are u32: every usize <-> u32 conversion below holds.
#![allow(clippy::cast_possible_truncation)]

/// Marks a piece that is not among the candidates.
const NONE: u32 = u32::MAX;

/// Buckets between two tiers: more than the peers one torrent connects to, so a tier's
/// pieces stay apart from the next one's. A piece that more peers have than this only sorts
/// a little late, never wrongly in a way that breaks the structure.
const TIER_SPAN: u32 = 256;

/// Tiers: 0 is the most urgent; pieces of tier [`SKIP`] are never candidates.
pub(super) const TIERS: usize = 3;
/// The tier of a piece nobody wants.
pub const SKIP: u8 = TIERS as u8;

/// Candidate pieces by tier and availability.
#[derive(Debug)]
pub(super) struct Rarity {
    order: Vec<u32>,
    /// Each piece's place in `order`, or [`NONE`].
    pos: Vec<u32>,
    /// Each piece's availability, candidate or not.
    avail: Vec<u32>,
    /// Each piece's tier (0 most urgent; [`SKIP`] for pieces never to be fetched).
    tier: Vec<u8>,
    /// Bucket offset of each tier.
    bias: [u32; TIERS],
    start: Vec<u32>,
}

impl Rarity {
    /// `n` pieces, all with availability 0; `candidates` in the order given (shuffled by
    /// the caller, which makes ties random).
    pub(super) fn new(n: u32, candidates: Vec<u32>) -> Self {
        let mut pos = vec![NONE; n as usize];
        for (i, &p) in candidates.iter().enumerate() {
            pos[p as usize] = i as u32;
        }
        Self {
            start: vec![0, candidates.len() as u32],
            order: candidates,
            pos,
            avail: vec![0; n as usize],
            tier: vec![1; n as usize],
            bias: [0; TIERS],
        }
    }

    /// Piece `i`'s bucket.
    fn key(&self, i: u32) -> u32 {
        let t = self.tier[i as usize];
        self.avail[i as usize] + self.bias.get(usize::from(t)).copied().unwrap_or(0)
    }

    /// Piece `i`'s tier.
    pub(super) fn tier(&self, i: u32) -> u8 {
        self.tier[i as usize]
    }

    /// Gives every piece its tier and makes `candidates` (in the order given, which keeps
    /// ties random) the candidates, sorted again. Linear in the pieces.
    pub(super) fn rebuild(&mut self, tier: Vec<u8>, candidates: Vec<u32>) {
        debug_assert_eq!(tier.len(), self.tier.len());
        self.tier = tier;
        // Only the tiers in use get a bias, so one tier alone sorts by availability alone.
        let mut used = [false; TIERS];
        for &t in &self.tier {
            if let Some(u) = used.get_mut(usize::from(t)) {
                *u = true;
            }
        }
        let mut next = 0;
        for (t, u) in used.iter().enumerate() {
            self.bias[t] = next;
            if *u {
                next += TIER_SPAN;
            }
        }
        // A counting sort by bucket, stable so the given order breaks ties.
        let top = candidates.iter().map(|&i| self.key(i)).max().unwrap_or(0) as usize;
        let mut start = vec![0u32; top + 2];
        for &i in &candidates {
            start[self.key(i) as usize + 1] += 1;
        }
        for b in 1..start.len() {
            start[b] += start[b - 1];
        }
        let mut fill = start.clone();
        let mut order = vec![0; candidates.len()];
        self.pos.fill(NONE);
        for &i in &candidates {
            let b = &mut fill[self.key(i) as usize];
            order[*b as usize] = i;
            self.pos[i as usize] = *b;
            *b += 1;
        }
        self.order = order;
        self.start = start;
    }

    /// How many candidates at the front of `order` share the most urgent tier present.
    pub(super) fn first_tier_len(&self) -> usize {
        let Some(&first) = self.order.first() else {
            return 0;
        };
        let t = usize::from(self.tier[first as usize]);
        let next = self.bias[t + 1..]
            .iter()
            .copied()
            .find(|&b| b > self.bias[t]);
        next.and_then(|b| self.start.get(b as usize))
            .map_or(self.order.len(), |&s| s as usize)
    }

    /// How many peers have piece `i`.
    #[cfg(test)]
    pub(super) fn availability(&self, i: u32) -> u32 {
        self.avail[i as usize]
    }

    /// Whether piece `i` is a candidate.
    #[cfg(test)]
    pub(super) fn contains(&self, i: u32) -> bool {
        self.pos[i as usize] != NONE
    }

    /// The candidates, rarest first.
    pub(super) fn order(&self) -> &[u32] {
        &self.order
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a != b {
            self.order.swap(a, b);
            self.pos[self.order[a] as usize] = a as u32;
            self.pos[self.order[b] as usize] = b as u32;
        }
    }

    /// Makes room in `start` for availability `a` (and the end marker after it).
    fn grow_to(&mut self, a: u32) {
        while self.start.len() < a as usize + 2 {
            self.start.push(self.order.len() as u32);
        }
    }

    /// One more peer has piece `i`.
    pub(super) fn increment(&mut self, i: u32) {
        let a = self.key(i);
        self.avail[i as usize] += 1;
        let p = self.pos[i as usize];
        if p == NONE {
            return;
        }
        self.grow_to(a + 1);
        let last = self.start[a as usize + 1] as usize - 1;
        self.swap(p as usize, last);
        self.start[a as usize + 1] -= 1;
    }

    /// One peer fewer has piece `i`.
    pub(super) fn decrement(&mut self, i: u32) {
        if self.avail[i as usize] == 0 {
            return;
        }
        let a = self.key(i);
        self.avail[i as usize] -= 1;
        let p = self.pos[i as usize];
        if p == NONE {
            return;
        }
        let first = self.start[a as usize] as usize;
        self.swap(p as usize, first);
        self.start[a as usize] += 1;
    }

    /// Piece `i` is no longer a candidate (started).
    pub(super) fn remove(&mut self, i: u32) {
        let p = self.pos[i as usize];
        if p == NONE {
            return;
        }
        let top = self.start.len() - 1;
        let mut p = p as usize;
        // Walk it up to the very end, one bucket at a time, then drop it.
        for b in self.key(i) as usize..top {
            let last = self.start[b + 1] as usize - 1;
            self.swap(p, last);
            p = last;
            self.start[b + 1] -= 1;
        }
        self.order.pop();
        self.start[top] = self.order.len() as u32;
        self.pos[i as usize] = NONE;
    }

    /// Piece `i` is a candidate again (its download failed).
    pub(super) fn insert(&mut self, i: u32) {
        if self.pos[i as usize] != NONE || self.tier[i as usize] >= SKIP {
            return;
        }
        let a = self.key(i) as usize;
        self.grow_to(a as u32);
        let top = self.start.len() - 1;
        self.order.push(i);
        let mut p = self.order.len() - 1;
        self.pos[i as usize] = p as u32;
        self.start[top] += 1;
        // It sits in the top bucket: walk it down to its own.
        for b in (a + 1..top).rev() {
            let first = self.start[b] as usize;
            self.swap(p, first);
            p = first;
            self.start[b] += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data of known small sizes
mod tests {
    use super::*;

    /// The structure's invariants, and that it holds exactly `model`'s candidates.
    fn check(r: &Rarity, model: &[bool]) {
        let want: usize = model.iter().filter(|&&m| m).count();
        assert_eq!(r.order.len(), want);
        assert_eq!(*r.start.last().unwrap() as usize, r.order.len());
        for w in r.order.windows(2) {
            assert!(r.key(w[0]) <= r.key(w[1]), "sorted");
        }
        for (a, s) in r.start.windows(2).enumerate() {
            for &p in &r.order[s[0] as usize..s[1] as usize] {
                assert_eq!(r.key(p) as usize, a, "bucket bounds");
            }
        }
        for (i, &m) in model.iter().enumerate() {
            assert_eq!(r.contains(i as u32), m);
            if m {
                assert_eq!(r.order[r.pos[i] as usize] as usize, i);
            }
        }
    }

    /// A xorshift stream.
    fn stream(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// One random update of a random piece, mirrored in `model`.
    fn random_step(r: &mut Rarity, model: &mut [bool], next: &mut impl FnMut() -> u64) {
        let i = (next() % model.len() as u64) as u32;
        match next() % 4 {
            0 => r.increment(i),
            1 => r.decrement(i),
            2 => {
                r.remove(i);
                model[i as usize] = false;
            }
            _ => {
                r.insert(i);
                model[i as usize] = r.tier(i) < SKIP;
            }
        }
    }

    #[test]
    fn random_updates_keep_it_sorted() {
        let n = 200u32;
        let mut next = stream(0x9e37_79b9_7f4a_7c15);
        let mut r = Rarity::new(n, (0..n).collect());
        let mut model = vec![true; n as usize];
        for step in 0..20_000 {
            if step % 97 == 0 {
                check(&r, &model);
            }
            random_step(&mut r, &mut model, &mut next);
        }
        check(&r, &model);
    }

    #[test]
    fn tiers_sort_before_availability_and_survive_updates() {
        let n = 120u32;
        let mut next = stream(0x2545_f491_4f6c_dd1d);
        let mut r = Rarity::new(n, (0..n).collect());
        let mut model = vec![true; n as usize];
        for step in 0..30_000 {
            if step % 3_000 == 0 {
                // New tiers for every piece; a skipped piece stops being a candidate.
                let tier: Vec<u8> = (0..n).map(|_| (next() % 4) as u8).collect();
                for (m, &t) in model.iter_mut().zip(&tier) {
                    *m &= t < SKIP;
                }
                let cands = (0..n).filter(|&i| model[i as usize]).collect();
                r.rebuild(tier, cands);
            }
            if step % 97 == 0 {
                check(&r, &model);
                // Every piece of a more urgent tier comes first.
                let tiers: Vec<u8> = r.order().iter().map(|&i| r.tier(i)).collect();
                assert!(tiers.windows(2).all(|w| w[0] <= w[1]), "{tiers:?}");
                let front = r.first_tier_len();
                assert!(r.order()[..front].iter().all(|&i| r.tier(i) == tiers[0]));
                assert!(r.order()[front..].iter().all(|&i| r.tier(i) != tiers[0]));
            }
            random_step(&mut r, &mut model, &mut next);
        }
        check(&r, &model);
    }

    #[test]
    fn rarest_come_first() {
        let mut r = Rarity::new(4, vec![0, 1, 2, 3]);
        for (piece, peers) in [(0, 3), (1, 1), (2, 2), (3, 0)] {
            for _ in 0..peers {
                r.increment(piece);
            }
        }
        assert_eq!(r.order(), &[3, 1, 2, 0]);
        r.remove(3);
        r.decrement(0);
        r.decrement(0);
        r.decrement(0);
        assert_eq!(r.order()[0], 0);
        r.insert(3);
        check(&r, &[true; 4]);
        assert_eq!(r.availability(2), 2);
    }
}
