//! Where each piece's bytes live: a precomputed list of (file, offset, length) spans per
//! piece, so that a piece crossing several files is written or read in one call. Zero-length
//! files get no spans; padding files (BEP 47) do, marked by their file index.

use crate::metainfo::Metainfo;

/// A run of a piece's bytes inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`Metainfo::files`].
    pub file: u32,
    /// Offset in that file.
    pub offset: u64,
    /// Bytes in this run (at most one piece).
    pub len: u32,
}

/// Spans for every piece of a torrent.
#[derive(Debug, Clone)]
pub struct Geometry {
    spans: Vec<Span>,
    /// `starts[i]..starts[i + 1]` are piece `i`'s spans.
    starts: Vec<u32>,
}

impl Geometry {
    /// Computes the spans of every piece of `meta`.
    pub fn new(meta: &Metainfo) -> Self {
        let mut spans = Vec::with_capacity(meta.pieces.len() + meta.files.len());
        let mut starts = Vec::with_capacity(meta.pieces.len() + 1);
        let mut file = 0usize;
        // Spans number at most pieces + files, and a span is at most a piece (128 MiB):
        // every conversion to u32 below holds.
        let to_u32 = |n: usize| u32::try_from(n).expect("fewer than 2^32 spans and files");
        for piece in 0..meta.piece_count() {
            starts.push(to_u32(spans.len()));
            let mut pos = u64::from(piece) * meta.piece_length;
            let end = pos + meta.piece_size(piece);
            while pos < end {
                let f = &meta.files[file];
                let file_end = f.offset + f.length;
                if pos >= file_end {
                    file += 1;
                    continue;
                }
                let run = file_end.min(end) - pos;
                spans.push(Span {
                    file: to_u32(file),
                    offset: pos - f.offset,
                    len: u32::try_from(run).expect("within one piece"),
                });
                pos += run;
            }
        }
        starts.push(to_u32(spans.len()));
        Self { spans, starts }
    }

    /// Bytes of each file (by index in [`Metainfo::files`]) in the pieces of `have`.
    pub fn file_bytes(&self, files: usize, have: &crate::bitfield::Bitfield) -> Vec<u64> {
        let mut done = vec![0u64; files];
        for p in have.ones() {
            for s in self.spans(p) {
                if let Some(d) = done.get_mut(s.file as usize) {
                    *d += u64::from(s.len);
                }
            }
        }
        done
    }

    /// Piece `index`'s spans in order; empty for an index out of range.
    pub fn spans(&self, index: u32) -> &[Span] {
        let i = index as usize;
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.spans[a as usize..b as usize],
            _ => &[],
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data of known small sizes
mod tests {
    use super::*;
    use crate::bencode::Item;

    fn torrent(sizes: &[(i64, bool)], piece_length: i64) -> Metainfo {
        let total: i64 = sizes.iter().map(|s| s.0).sum();
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, &(len, pad))| {
                let mut d = Item::dict();
                d.insert("length", Item::Int(len));
                let name = format!("f{i}");
                d.insert(
                    "path",
                    Item::List(vec![Item::Bytes(name.into_bytes().into())]),
                );
                if pad {
                    d.insert("attr", Item::str("p"));
                }
                d
            })
            .collect();
        let mut info = Item::dict();
        info.insert("name", Item::str("t"));
        info.insert("piece length", Item::Int(piece_length));
        let n = (total as u64).div_ceil(piece_length as u64) as usize;
        info.insert("pieces", Item::Bytes(vec![0; 20 * n].into()));
        info.insert("files", Item::List(files));
        let mut root = Item::dict();
        root.insert("info", info);
        Metainfo::from_bytes(&root.encode()).unwrap()
    }

    fn spans(g: &Geometry, i: u32) -> Vec<(u32, u64, u32)> {
        g.spans(i)
            .iter()
            .map(|s| (s.file, s.offset, s.len))
            .collect()
    }

    #[test]
    fn a_piece_across_three_files_with_an_empty_one() {
        // Files: 10, 0, 3, 20 bytes; 16-byte pieces.
        let m = torrent(&[(10, false), (0, false), (3, false), (20, false)], 16);
        let g = Geometry::new(&m);
        assert_eq!(spans(&g, 0), vec![(0, 0, 10), (2, 0, 3), (3, 0, 3)]);
        assert_eq!(spans(&g, 1), vec![(3, 3, 16)]);
        assert_eq!(spans(&g, 2), vec![(3, 19, 1)]);
        assert!(g.spans(3).is_empty());
    }

    #[test]
    fn padding_files_get_spans_and_spans_cover_every_byte_once() {
        let m = torrent(
            &[(5, false), (11, true), (40, false), (0, false), (7, false)],
            16,
        );
        let g = Geometry::new(&m);
        assert_eq!(spans(&g, 0), vec![(0, 0, 5), (1, 0, 11)]);
        let mut covered = vec![0u8; m.total_length as usize];
        for p in 0..m.piece_count() {
            let mut in_piece = 0;
            for s in g.spans(p) {
                let f = &m.files[s.file as usize];
                assert!(s.offset + u64::from(s.len) <= f.length);
                for b in 0..u64::from(s.len) {
                    covered[(f.offset + s.offset + b) as usize] += 1;
                }
                in_piece += u64::from(s.len);
            }
            assert_eq!(in_piece, m.piece_size(p));
        }
        assert!(covered.iter().all(|&c| c == 1));
    }
}
