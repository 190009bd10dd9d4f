//! Decoding and validation of the metainfo dictionary.

use super::{FileEntry, InfoHash, MAX_PIECE_LENGTH, Metainfo, MetainfoError, UnsafePathReason};
use crate::bencode::{self, Value};
use std::collections::HashSet;

type Result<T> = std::result::Result<T, MetainfoError>;

pub(super) fn parse(bytes: &[u8]) -> Result<Metainfo> {
    let root = bencode::decode(bytes)?;
    if root.as_dict().is_none() {
        return Err(MetainfoError::NotADict);
    }
    let info = root
        .get(b"info")
        .ok_or(MetainfoError::MissingField("info"))?;
    expect(info, "info", info.as_dict().is_some(), "dictionary")?;
    let info_hash = InfoHash(crate::hash::sha1(info.raw()));

    // BEP 52: a v2-only torrent has no v1 `pieces`; a hybrid one has both and loads as v1.
    let is_v2 = info.get(b"meta version").is_some() || info.get(b"file tree").is_some();
    if is_v2 && info.get(b"pieces").is_none() {
        return Err(MetainfoError::V2Only);
    }

    let name = utf8_preferred(info, b"name.utf-8", b"name", "info.name")?
        .ok_or(MetainfoError::MissingField("info.name"))?;
    if name.starts_with('/') {
        return Err(unsafe_path(&name, UnsafePathReason::Absolute));
    }
    check_component(&name, &name)?;

    let piece_length = int(info, b"piece length", "info.piece length")?
        .ok_or(MetainfoError::MissingField("info.piece length"))?;
    if piece_length <= 0 || piece_length as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::BadPieceLength(piece_length));
    }
    let piece_length = piece_length as u64;

    let pieces_raw = bytes_field(info, b"pieces", "info.pieces")?
        .ok_or(MetainfoError::MissingField("info.pieces"))?;
    if pieces_raw.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces_raw.len()));
    }

    let (files, multi_file) = match (info.get(b"length"), info.get(b"files")) {
        (Some(_), None) => {
            let length = int(info, b"length", "info.length")?.unwrap_or_default();
            if length < 0 {
                return Err(MetainfoError::NegativeLength { path: name, length });
            }
            let file = FileEntry {
                path: vec![name.clone()],
                length: length as u64,
                offset: 0,
                padding: false,
            };
            (vec![file], false)
        }
        (None, Some(list)) => (parse_files(list, &name)?, true),
        _ => return Err(MetainfoError::AmbiguousLayout),
    };
    let total_length = files.last().map_or(0, |f| f.offset + f.length);
    if total_length == 0 {
        return Err(MetainfoError::Empty);
    }
    let expected = total_length.div_ceil(piece_length);
    let found = (pieces_raw.len() / 20) as u64;
    if expected != found || found > u64::from(u32::MAX) {
        return Err(MetainfoError::PieceCountMismatch { expected, found });
    }
    let pieces = pieces_raw
        .chunks_exact(20)
        .map(|c| c.try_into().expect("chunks of 20"))
        .collect();

    let private = int(info, b"private", "info.private")? == Some(1);
    let announce = string(&root, b"announce", "announce")?.filter(|s| !s.trim().is_empty());
    let announce_list = parse_announce_list(&root)?;
    Ok(Metainfo {
        info_hash,
        name,
        piece_length,
        pieces,
        files,
        multi_file,
        private,
        total_length,
        announce,
        announce_list,
        comment: utf8_preferred(&root, b"comment.utf-8", b"comment", "comment")?,
        created_by: string(&root, b"created by", "created by")?,
        creation_date: int(&root, b"creation date", "creation date")?,
        info_bytes: info.raw().into(),
    })
}

fn parse_files(list: &Value<'_>, name: &str) -> Result<Vec<FileEntry>> {
    let items = list
        .as_list()
        .ok_or_else(|| wrong("info.files", "list", list))?;
    if items.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    let mut files = Vec::with_capacity(items.len());
    let mut offset: u64 = 0;
    for item in items {
        expect(item, "info.files[]", item.as_dict().is_some(), "dictionary")?;
        let components = match item.get(b"path.utf-8") {
            Some(p) if path_list(p).is_some() => path_list(p),
            _ => None,
        };
        let components = match components {
            Some(c) => c,
            None => {
                let p = item
                    .get(b"path")
                    .ok_or(MetainfoError::MissingField("info.files[].path"))?;
                path_list(p).ok_or_else(|| wrong("info.files[].path", "list of byte strings", p))?
            }
        };
        let mut path = Vec::with_capacity(components.len() + 1);
        path.push(name.to_owned());
        path.extend(components);
        check_path(&path)?;

        let length = int(item, b"length", "info.files[].length")?
            .ok_or(MetainfoError::MissingField("info.files[].length"))?;
        if length < 0 {
            return Err(MetainfoError::NegativeLength {
                path: path.join("/"),
                length,
            });
        }
        let padding = match item.get(b"attr") {
            Some(a) => a.as_bytes().is_some_and(|a| a.contains(&b'p')),
            None => false,
        };
        files.push(FileEntry {
            path,
            length: length as u64,
            offset,
            padding,
        });
        offset = offset
            .checked_add(length as u64)
            .ok_or(MetainfoError::TotalTooLarge)?;
    }
    check_unique(&files)?;
    Ok(files)
}

/// A `path` list as strings, or `None` if it is not a list of byte strings.
fn path_list(v: &Value<'_>) -> Option<Vec<String>> {
    v.as_list()?
        .iter()
        .map(|c| {
            c.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect()
}

fn check_path(path: &[String]) -> Result<()> {
    let joined = path.join("/");
    if path.len() < 2 {
        return Err(unsafe_path(&joined, UnsafePathReason::EmptyComponent));
    }
    // `["", "etc", "passwd"]` and `["/etc", "passwd"]` both read as `/etc/passwd`.
    if path[1].starts_with('/') || (path.len() > 2 && path[1].is_empty()) {
        return Err(unsafe_path(&joined, UnsafePathReason::Absolute));
    }
    for c in &path[1..] {
        check_component(c, &joined)?;
    }
    Ok(())
}

fn unsafe_path(path: &str, reason: UnsafePathReason) -> MetainfoError {
    MetainfoError::UnsafePath {
        path: path.to_owned(),
        reason,
    }
}

fn check_component(c: &str, whole: &str) -> Result<()> {
    let reason = if c.is_empty() {
        Some(UnsafePathReason::EmptyComponent)
    } else if c == ".." {
        Some(UnsafePathReason::ParentDir)
    } else if c == "." {
        Some(UnsafePathReason::CurrentDir)
    } else if c.contains('\0') {
        Some(UnsafePathReason::Nul)
    } else if c.contains('/') {
        Some(UnsafePathReason::SlashInComponent)
    } else {
        None
    };
    match reason {
        Some(reason) => Err(unsafe_path(whole, reason)),
        None => Ok(()),
    }
}

/// No two stored files may share a path, and no stored file may sit where another file's
/// folder must be. Padding files are never written, so BEP 47's repeated `.pad/N` is fine.
fn check_unique(files: &[FileEntry]) -> Result<()> {
    let stored = || files.iter().filter(|f| !f.padding);
    let mut seen: HashSet<&[String]> = HashSet::new();
    for f in stored() {
        if !seen.insert(&f.path) {
            return Err(MetainfoError::DuplicatePath(f.display_path()));
        }
    }
    for f in stored() {
        for end in 1..f.path.len() {
            if seen.contains(&f.path[..end]) {
                return Err(MetainfoError::DuplicatePath(f.path[..end].join("/")));
            }
        }
    }
    Ok(())
}

fn parse_announce_list(root: &Value<'_>) -> Result<Vec<Vec<String>>> {
    let Some(list) = root.get(b"announce-list") else {
        return Ok(Vec::new());
    };
    const WHAT: &str = "list of lists of strings";
    let tiers = list
        .as_list()
        .ok_or_else(|| wrong("announce-list", WHAT, list))?;
    let mut out = Vec::new();
    for tier in tiers {
        let urls = tier
            .as_list()
            .ok_or_else(|| wrong("announce-list", WHAT, tier))?;
        let mut t = Vec::new();
        for url in urls {
            let s = url
                .as_bytes()
                .ok_or_else(|| wrong("announce-list", WHAT, url))?;
            let s = String::from_utf8_lossy(s).trim().to_owned();
            if !s.is_empty() {
                t.push(s);
            }
        }
        if !t.is_empty() {
            out.push(t);
        }
    }
    Ok(out)
}

fn wrong(field: &'static str, expected: &'static str, v: &Value<'_>) -> MetainfoError {
    MetainfoError::WrongType {
        field,
        expected,
        found: v.type_name(),
    }
}

fn expect(v: &Value<'_>, field: &'static str, ok: bool, expected: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(wrong(field, expected, v))
    }
}

fn int(d: &Value<'_>, key: &[u8], field: &'static str) -> Result<Option<i64>> {
    match d.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .map(Some)
            .ok_or_else(|| wrong(field, "integer", v)),
    }
}

fn bytes_field<'a>(d: &Value<'a>, key: &[u8], field: &'static str) -> Result<Option<&'a [u8]>> {
    match d.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bytes()
            .map(Some)
            .ok_or_else(|| wrong(field, "byte string", v)),
    }
}

/// A text field; bytes that are not UTF-8 are replaced rather than refused, as other
/// clients do with torrents made in legacy encodings.
fn string(d: &Value<'_>, key: &[u8], field: &'static str) -> Result<Option<String>> {
    Ok(bytes_field(d, key, field)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// `key_utf8` when it is present and valid UTF-8, else `key`.
fn utf8_preferred(
    d: &Value<'_>,
    key_utf8: &[u8],
    key: &[u8],
    field: &'static str,
) -> Result<Option<String>> {
    if let Some(s) = d.get(key_utf8).and_then(Value::as_str) {
        return Ok(Some(s.to_owned()));
    }
    string(d, key, field)
}
