//! A request's JSON (`{"method": …, "arguments": {…}, "tag": …}`) as a typed [`Call`],
//! and the reply's JSON (`{"result": "success" or why not, "arguments": {…}, "tag": …}`,
//! the tag echoed: clients match replies by it). Every field is checked for its type; a
//! wrong one is an error `result`, as Transmission gives it, never a panic.

use serde_json::{Map, Value};

/// Which torrents a call is about (`ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// No `ids`: every torrent.
    All,
    /// `"recently-active"`: those active in the last minute, and those removed since.
    RecentlyActive,
    /// A list (or a lone id or hash).
    These(Vec<IdRef>),
}

/// One torrent: its id in this daemon, or its info-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRef {
    /// The `id` field.
    Id(u64),
    /// `hashString`, 40 hex digits.
    Hash([u8; 20]),
}

/// `torrent-add`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    /// `filename`: a magnet link, or a path to a `.torrent` on the daemon's machine (a URL
    /// is refused: btmini fetches no web content).
    pub filename: Option<String>,
    /// `metainfo`: the `.torrent` itself, base64-decoded.
    pub metainfo: Option<Vec<u8>>,
    /// `download-dir`.
    pub download_dir: Option<String>,
    /// `paused`: added stopped.
    pub paused: bool,
    /// `files-wanted`, `files-unwanted`, `priority-*`: each present one with its file
    /// indices.
    pub files: Vec<(&'static str, Vec<u64>)>,
}

/// What a start/stop-like call does to its torrents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `torrent-start` (and `torrent-start-now`).
    Start,
    /// `torrent-stop`.
    Stop,
    /// `torrent-verify`: check the data on disk again.
    Verify,
    /// `torrent-reannounce`: ask the trackers (and the DHT) now.
    Reannounce,
}

/// Where `queue-move-*` moves torrents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMove {
    /// `queue-move-top`.
    Top,
    /// `queue-move-up`.
    Up,
    /// `queue-move-down`.
    Down,
    /// `queue-move-bottom`.
    Bottom,
}

/// A call, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `session-get` (with the `fields` asked for, empty: all).
    SessionGet(Vec<String>),
    /// `session-set`: the fields to change, checked by the daemon.
    SessionSet(Map<String, Value>),
    /// `session-stats`.
    SessionStats,
    /// `session-close`: the daemon stops.
    SessionClose,
    /// `torrent-get`: `fields` of these torrents; `table` asks for the table form.
    TorrentGet {
        /// Which torrents.
        ids: Ids,
        /// The fields asked for.
        fields: Vec<String>,
        /// `format: "table"`.
        table: bool,
    },
    /// `torrent-add`.
    TorrentAdd(Add),
    /// `torrent-start`, `-stop`, `-verify`, `-reannounce`.
    TorrentAction(Action, Ids),
    /// `torrent-remove`, deleting the data when `delete-local-data`.
    TorrentRemove {
        /// Which torrents.
        ids: Ids,
        /// Also delete their files.
        delete: bool,
    },
    /// `torrent-set`: the fields to change, checked by the daemon.
    TorrentSet(Ids, Map<String, Value>),
    /// `queue-move-*`.
    Queue(QueueMove, Ids),
    /// `free-space` of a folder.
    FreeSpace(String),
    /// `port-test`.
    PortTest,
}

/// A request: its call (or why it is not one) and its tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The call, or the error `result` to answer with.
    pub call: Result<Call, String>,
    /// The `tag`, echoed in the reply.
    pub tag: Option<Value>,
}

/// Parses a request's body. A body that is not a JSON object, or has no method, still
/// gets a reply (with an error `result`).
pub fn parse(body: &[u8]) -> Request {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Request {
                call: Err(format!("no method name: {e}")),
                tag: None,
            };
        }
    };
    // An integer, as Transmission reads it (`tr_variantDictFindInt`); a float would not
    // come back bit for bit.
    let tag = v.get("tag").filter(|t| t.is_i64() || t.is_u64()).cloned();
    let call = call_of(&v);
    Request { call, tag }
}

fn call_of(v: &Value) -> Result<Call, String> {
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .ok_or("no method name")?;
    let empty = Map::new();
    let args = match v.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err("arguments is not an object".into()),
    };
    let ids = || ids_of(args);
    Ok(match method {
        "session-get" => Call::SessionGet(strings(args, "fields")?),
        "session-set" => Call::SessionSet(args.clone()),
        "session-stats" => Call::SessionStats,
        "session-close" => Call::SessionClose,
        "torrent-get" => Call::TorrentGet {
            ids: ids()?,
            fields: strings(args, "fields")?,
            table: args.get("format").and_then(Value::as_str) == Some("table"),
        },
        "torrent-add" => Call::TorrentAdd(add_of(args)?),
        "torrent-start" | "torrent-start-now" => Call::TorrentAction(Action::Start, ids()?),
        "torrent-stop" => Call::TorrentAction(Action::Stop, ids()?),
        "torrent-verify" => Call::TorrentAction(Action::Verify, ids()?),
        "torrent-reannounce" => Call::TorrentAction(Action::Reannounce, ids()?),
        "torrent-remove" => Call::TorrentRemove {
            ids: ids()?,
            delete: flag(args, "delete-local-data")?,
        },
        "torrent-set" => Call::TorrentSet(ids()?, args.clone()),
        "queue-move-top" => Call::Queue(QueueMove::Top, ids()?),
        "queue-move-up" => Call::Queue(QueueMove::Up, ids()?),
        "queue-move-down" => Call::Queue(QueueMove::Down, ids()?),
        "queue-move-bottom" => Call::Queue(QueueMove::Bottom, ids()?),
        "free-space" => Call::FreeSpace(
            args.get("path")
                .and_then(Value::as_str)
                .ok_or("free-space needs a path")?
                .to_string(),
        ),
        "port-test" => Call::PortTest,
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(format!("method name not recognized: {shown}"));
        }
    })
}

/// A boolean argument (absent: false). Transmission's clients send `true`/`false`, and
/// some send 0/1.
pub fn flag(args: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64() != Some(0)),
        Some(_) => Err(format!("{key} is not a boolean")),
    }
}

/// A list of strings (absent: empty).
fn strings(args: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} holds a non-string"))
            })
            .collect(),
        Some(_) => Err(format!("{key} is not a list")),
    }
}

/// `ids` in any of its forms: absent, an integer, `"recently-active"`, a hash, or a list
/// of integers and hashes.
pub fn ids_of(args: &Map<String, Value>) -> Result<Ids, String> {
    let one = |v: &Value| -> Result<IdRef, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(IdRef::Id)
                .ok_or_else(|| format!("invalid id {n}")),
            Value::String(s) => crate::util::hash_from_hex(s)
                .map(IdRef::Hash)
                .ok_or_else(|| "invalid or unknown torrent hash".to_string()),
            _ => Err("ids holds something that is not an id or a hash".into()),
        }
    };
    match args.get("ids") {
        None | Some(Value::Null) => Ok(Ids::All),
        Some(Value::String(s)) if s == "recently-active" => Ok(Ids::RecentlyActive),
        Some(Value::Array(a)) => Ok(Ids::These(a.iter().map(one).collect::<Result<_, _>>()?)),
        Some(v) => Ok(Ids::These(vec![one(v)?])),
    }
}

fn add_of(args: &Map<String, Value>) -> Result<Add, String> {
    use base64::Engine;
    let text = |key: &str| -> Result<Option<String>, String> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key} is not a string")),
        }
    };
    let metainfo = match text("metainfo")? {
        Some(b64) => {
            // Clients wrap the base64 in lines; Transmission accepts that.
            let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(clean.as_bytes())
                    .map_err(|_| "invalid or corrupt torrent file".to_string())?,
            )
        }
        None => None,
    };
    let add = Add {
        filename: text("filename")?,
        metainfo,
        download_dir: text("download-dir")?,
        paused: flag(args, "paused")?,
        files: file_choice(args)?,
    };
    if add.filename.is_none() && add.metainfo.is_none() {
        return Err("no filename or metainfo specified".into());
    }
    Ok(add)
}

/// `torrent-set`'s (and `torrent-add`'s) file arguments, in the order they are applied:
/// whether a file is wanted first, then how urgently (btmini keeps no priority for a file
/// it does not want).
pub const FILE_KEYS: [&str; 5] = [
    "files-unwanted",
    "files-wanted",
    "priority-high",
    "priority-low",
    "priority-normal",
];

/// The file arguments present, each with its list of file indices (empty: every file).
pub fn file_choice(args: &Map<String, Value>) -> Result<Vec<(&'static str, Vec<u64>)>, String> {
    let mut out = Vec::new();
    for key in FILE_KEYS {
        let Some(v) = args.get(key) else { continue };
        let list = v
            .as_array()
            .ok_or_else(|| format!("{key} is not a list"))?
            .iter()
            .map(|n| {
                n.as_u64()
                    .ok_or_else(|| format!("{key} is not a list of file numbers"))
            })
            .collect::<Result<Vec<u64>, String>>()?;
        out.push((key, list));
    }
    Ok(out)
}

/// A reply's JSON: `result`, `arguments`, and the request's `tag`.
pub fn reply(result: Result<Map<String, Value>, String>, tag: Option<Value>) -> Vec<u8> {
    let mut m = Map::new();
    match result {
        Ok(args) => {
            m.insert("arguments".into(), Value::Object(args));
            m.insert("result".into(), "success".into());
        }
        Err(why) => {
            m.insert("arguments".into(), Value::Object(Map::new()));
            m.insert("result".into(), why.into());
        }
    }
    if let Some(t) = tag {
        m.insert("tag".into(), t);
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(json: &str) -> Result<Call, String> {
        parse(json.as_bytes()).call
    }

    #[test]
    fn ids_come_in_every_form_the_clients_send() {
        let ids = |j: &str| match call(&format!(r#"{{"method":"torrent-stop","arguments":{j}}}"#)) {
            Ok(Call::TorrentAction(Action::Stop, ids)) => Ok(ids),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(ids("{}"), Ok(Ids::All));
        assert_eq!(ids(r#"{"ids":3}"#), Ok(Ids::These(vec![IdRef::Id(3)])));
        assert_eq!(ids(r#"{"ids":"recently-active"}"#), Ok(Ids::RecentlyActive));
        let hash = "00112233445566778899aabbccddeeff00112233";
        let h = crate::util::hash_from_hex(hash).unwrap();
        assert_eq!(
            ids(&format!(r#"{{"ids":[1,"{hash}"]}}"#)),
            Ok(Ids::These(vec![IdRef::Id(1), IdRef::Hash(h)]))
        );
        assert_eq!(
            ids(&format!(r#"{{"ids":"{hash}"}}"#)),
            Ok(Ids::These(vec![IdRef::Hash(h)]))
        );
        assert!(ids(r#"{"ids":"nothex"}"#).is_err());
        assert!(ids(r#"{"ids":-1}"#).is_err());
        assert!(ids(r#"{"ids":[{}]}"#).is_err());
    }

    #[test]
    fn the_tag_is_echoed_and_a_broken_request_still_gets_a_reply() {
        let r = parse(br#"{"method":"session-stats","tag":7}"#);
        assert_eq!(r.call, Ok(Call::SessionStats));
        let out: Value = serde_json::from_slice(&reply(Ok(Map::new()), r.tag)).unwrap();
        assert_eq!(out["tag"], 7);
        assert_eq!(out["result"], "success");
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"method\":5}",
            b"{\"method\":\"nope\",\"tag\":1}",
        ] {
            let r = parse(bad);
            let out: Value =
                serde_json::from_slice(&reply(r.call.map(|_| Map::new()), r.tag)).unwrap();
            assert_ne!(out["result"], "success", "{}", String::from_utf8_lossy(bad));
        }
        // Deep nesting is refused by the parser, not by the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes()).call.is_err());
    }

    #[test]
    fn torrent_add_takes_base64_metainfo_in_lines_or_a_filename_and_checks_types() {
        let add = call(
            r#"{"method":"torrent-add","arguments":{"metainfo":"ZDQ6\nbmFtZTE6eGU=","paused":true,"download-dir":"/d","files-unwanted":[1,2],"priority-high":[]}}"#,
        );
        assert_eq!(
            add,
            Ok(Call::TorrentAdd(Add {
                filename: None,
                metainfo: Some(b"d4:name1:xe".to_vec()),
                download_dir: Some("/d".into()),
                paused: true,
                files: vec![("files-unwanted", vec![1, 2]), ("priority-high", vec![])],
            }))
        );
        for bad in [r#""1""#, r#"[-1]"#, r#"["a"]"#, r#"[1.5]"#] {
            let body = format!(
                r#"{{"method":"torrent-add","arguments":{{"filename":"x","files-wanted":{bad}}}}}"#
            );
            assert!(call(&body).is_err(), "{bad}");
        }
        assert!(call(r#"{"method":"torrent-add","arguments":{"metainfo":"%%%"}}"#).is_err());
        assert!(call(r#"{"method":"torrent-add","arguments":{}}"#).is_err());
        assert!(call(r#"{"method":"torrent-add","arguments":{"filename":5}}"#).is_err());
        assert!(
            call(r#"{"method":"torrent-add","arguments":{"filename":"x","paused":"yes"}}"#)
                .is_err()
        );
        assert!(call(r#"{"method":"torrent-get","arguments":{"fields":"id"}}"#).is_err());
        assert!(call(r#"{"method":"torrent-get","arguments":[]}"#).is_err());
    }
}
