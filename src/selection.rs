//! Which files of a torrent are wanted, and how urgently: `--files 1,3-5` on the command
//! line, `files-wanted`/`files-unwanted`/`priority-*` over the RPC.
//!
//! Files are numbered as `btmini info` lists them and Transmission's RPC counts them: the
//! stored files in torrent order, BEP 47 padding files left out (from 1 on the command
//! line, from 0 in the RPC and here).

use crate::geometry::Geometry;
use crate::metainfo::Metainfo;
use crate::picker::SKIP;
use std::fmt;

/// How much a file is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Priority {
    /// Not wanted: not downloaded, not created.
    Skip,
    /// Fetched after the others.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Fetched before the others.
    High,
}

impl Priority {
    /// Transmission's number for it (`priorities`: -1 low, 0 normal, 1 high; an unwanted
    /// file's is 0).
    pub fn rpc(self) -> i64 {
        match self {
            Self::Low => -1,
            Self::High => 1,
            Self::Normal | Self::Skip => 0,
        }
    }

    /// The picker's tier: 0 first.
    fn tier(self) -> u8 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
            Self::Skip => SKIP,
        }
    }
}

/// A bad `--files` list, or a file number past the torrent's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionError {
    /// Not a list of numbers and ranges like `1,3-5`.
    Syntax(String),
    /// File numbers start at 1.
    Zero,
    /// A number past the last file (number, files in the torrent).
    NoSuchFile(usize, usize),
}

impl fmt::Display for SelectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(s) => write!(f, "not a list of file numbers like 1,3-5: {s:?}"),
            Self::Zero => f.write_str("file numbers start at 1 (as `btmini info` lists them)"),
            Self::NoSuchFile(n, count) => {
                write!(f, "there is no file {n}: the torrent has {count}")
            }
        }
    }
}

impl std::error::Error for SelectionError {}

/// Longest list of numbers a range may expand to (a hostile `1-4000000000` stops here).
const MAX_FILES: usize = 1 << 20;

/// The priority of each stored file, by number from 0; files past the list have `rest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    files: Vec<Priority>,
    rest: Priority,
}

impl Selection {
    /// Every file, at normal priority.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the files numbered (from 1) in `spec`, such as `1,3-5`.
    pub fn parse(spec: &str) -> Result<Self, SelectionError> {
        let bad = || SelectionError::Syntax(spec.to_string());
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
        let mut files = Vec::new();
        for part in spec.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if a == 0 {
                return Err(SelectionError::Zero);
            }
            if b < a || b > MAX_FILES {
                return Err(bad());
            }
            if files.len() < b {
                files.resize(b, Priority::Skip);
            }
            files[a - 1..b].fill(Priority::Normal);
        }
        Ok(Self {
            files,
            rest: Priority::Skip,
        })
    }

    /// Every one of `count` files at its priority in `each` (the RPC's view).
    pub fn from_list(each: Vec<Priority>) -> Self {
        Self {
            files: each,
            rest: Priority::Normal,
        }
    }

    /// File `i`'s priority.
    pub fn get(&self, i: usize) -> Priority {
        self.files.get(i).copied().unwrap_or(self.rest)
    }

    /// Files with a priority of their own (the others have the default of the list).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file has a priority of its own.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether every file is wanted at normal priority.
    pub fn is_all(&self) -> bool {
        self.rest == Priority::Normal && self.files.iter().all(|&p| p == Priority::Normal)
    }

    /// Checks the numbers against a torrent of `count` stored files.
    pub fn check(&self, count: usize) -> Result<(), SelectionError> {
        let named = self.files.iter().rposition(|&p| p != self.rest);
        match named {
            Some(i) if i >= count => Err(SelectionError::NoSuchFile(i + 1, count)),
            _ => Ok(()),
        }
    }

    /// Priority by index in [`Metainfo::files`] (padding files: skipped).
    fn by_meta_index(&self, meta: &Metainfo) -> Vec<Priority> {
        let mut n = 0;
        meta.files
            .iter()
            .map(|f| {
                if f.padding {
                    return Priority::Skip;
                }
                n += 1;
                self.get(n - 1)
            })
            .collect()
    }

    /// Whether each file of [`Metainfo::files`] is wanted (what storage creates).
    pub fn wanted_files(&self, meta: &Metainfo) -> Vec<bool> {
        let by = self.by_meta_index(meta);
        meta.files
            .iter()
            .zip(by)
            .map(|(f, p)| f.padding || p != Priority::Skip)
            .collect()
    }

    /// Each piece's tier for the picker: that of the most wanted file it covers; empty when
    /// every file is wanted alike (the picker's default).
    pub fn piece_tiers(&self, meta: &Metainfo) -> Vec<u8> {
        if self.is_all() {
            return Vec::new();
        }
        let by = self.by_meta_index(meta);
        let geometry = Geometry::new(meta);
        (0..meta.piece_count())
            .map(|p| {
                let stored = geometry
                    .spans(p)
                    .iter()
                    .filter(|s| !meta.files[s.file as usize].padding);
                stored
                    .map(|s| by[s.file as usize].tier())
                    .min()
                    .unwrap_or(SKIP)
            })
            .collect()
    }

    /// Each of `count` files' priority.
    pub fn list(&self, count: usize) -> Vec<Priority> {
        (0..count).map(|i| self.get(i)).collect()
    }

    /// Sets file `i`'s priority (growing the list with the others' priority).
    pub fn set(&mut self, i: usize, p: Priority) {
        if i >= MAX_FILES {
            return;
        }
        if self.files.len() <= i {
            self.files.resize(i + 1, self.rest);
        }
        self.files[i] = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let s = Selection::parse("1,3-5").unwrap();
        let wanted: Vec<bool> = (0..7).map(|i| s.get(i) != Priority::Skip).collect();
        assert_eq!(wanted, [true, false, true, true, true, false, false]);
        assert!(s.check(5).is_ok());
        assert_eq!(s.check(4), Err(SelectionError::NoSuchFile(5, 4)));
        assert_eq!(Selection::parse("0"), Err(SelectionError::Zero));
        for bad in ["", "a", "3-1", "1,,2", "1-", "-3", "1-99999999999"] {
            assert!(
                matches!(Selection::parse(bad), Err(SelectionError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(Selection::all().is_all());
        assert!(!s.is_all());
    }

    #[test]
    fn a_piece_takes_the_tier_of_the_most_wanted_file_it_covers() {
        use crate::bencode::Item;
        // Files of 10, 30 (then 2 bytes of padding) and 8 bytes in pieces of 16.
        let mut files = Vec::new();
        for (name, len, pad) in [
            ("a", 10, false),
            ("b", 30, false),
            ("p", 2, true),
            ("c", 8, false),
        ] {
            let mut d = Item::dict();
            d.insert("length", Item::Int(len));
            d.insert("path", Item::List(vec![Item::str(name)]));
            if pad {
                d.insert("attr", Item::str("p"));
            }
            files.push(d);
        }
        let mut info = Item::dict();
        info.insert("name", Item::str("t"));
        info.insert("piece length", Item::Int(16));
        info.insert("pieces", Item::bytes(&[0; 80]));
        info.insert("files", Item::List(files));
        let mut root = Item::dict();
        root.insert("info", info);
        let meta = Metainfo::from_bytes(&root.encode()).unwrap();
        let mut s = Selection::all();
        assert_eq!(s.piece_tiers(&meta), Vec::<u8>::new());
        // Pieces: 0 = a + b, 1 = b, 2 = b + padding + c, 3 = c; c is stored file 2.
        s.set(0, Priority::High);
        s.set(1, Priority::Skip);
        s.set(2, Priority::Low);
        assert_eq!(s.piece_tiers(&meta), vec![0, SKIP, 2, 2]);
        assert_eq!(s.wanted_files(&meta), vec![true, false, true, true]);
    }
}
