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

/// Marks a piece that is not among the candidates.
const NONE: u32 = u32::MAX;

/// Candidate pieces by availability.
#[derive(Debug)]
pub(super) struct Rarity {
    order: Vec<u32>,
    /// Each piece's place in `order`, or [`NONE`].
    pos: Vec<u32>,
    /// Each piece's availability, candidate or not.
    avail: Vec<u32>,
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
        }
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
        let a = self.avail[i as usize];
        self.avail[i as usize] = a + 1;
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
        let a = self.avail[i as usize];
        if a == 0 {
            return;
        }
        self.avail[i as usize] = a - 1;
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
        for b in self.avail[i as usize] as usize..top {
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
        if self.pos[i as usize] != NONE {
            return;
        }
        let a = self.avail[i as usize] as usize;
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
mod tests {
    use super::*;

    /// The structure's invariants, and that it holds exactly `model`'s candidates.
    fn check(r: &Rarity, model: &[bool]) {
        let want: usize = model.iter().filter(|&&m| m).count();
        assert_eq!(r.order.len(), want);
        assert_eq!(*r.start.last().unwrap() as usize, r.order.len());
        for w in r.order.windows(2) {
            assert!(r.avail[w[0] as usize] <= r.avail[w[1] as usize], "sorted");
        }
        for (a, s) in r.start.windows(2).enumerate() {
            for &p in &r.order[s[0] as usize..s[1] as usize] {
                assert_eq!(r.avail[p as usize] as usize, a, "bucket bounds");
            }
        }
        for (i, &m) in model.iter().enumerate() {
            assert_eq!(r.contains(i as u32), m);
            if m {
                assert_eq!(r.order[r.pos[i] as usize] as usize, i);
            }
        }
    }

    #[test]
    fn random_updates_keep_it_sorted() {
        let n = 200u32;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut r = Rarity::new(n, (0..n).collect());
        let mut model = vec![true; n as usize];
        for step in 0..20_000 {
            if step % 97 == 0 {
                check(&r, &model);
            }
            let i = (next() % u64::from(n)) as u32;
            match next() % 4 {
                0 => r.increment(i),
                1 => r.decrement(i),
                2 => {
                    r.remove(i);
                    model[i as usize] = false;
                }
                _ => {
                    r.insert(i);
                    model[i as usize] = true;
                }
            }
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
