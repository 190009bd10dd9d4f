//! Command-line parsing: raw arguments in, a validated [`Cli`] out, with no access to the
//! environment so that tests can call it directly.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Text of `btmini --help`.
pub const HELP: &str = "\
btmini: a small BitTorrent client

USAGE:
    btmini [OPTIONS] TORRENT... [-o DIR]       download torrents: .torrent files or
                                               magnet links, in one process
    btmini info [--json] FILE.torrent|MAGNET   show what a torrent or magnet link holds
    btmini create PATH [CREATE OPTIONS]        make a torrent of a file or folder

DOWNLOAD OPTIONS:
    -o, --output DIR         where the data goes [default: ./downloads]
        --peer HOST:PORT     also connect to this peer, and again whenever the
                             connection ends; repeat for more (works without a
                             tracker) [default: none]
        --port N             port to accept peers on; the next free one if it is
                             taken [default: 6881]
        --bind ADDR          local address for listening, connecting and trackers
                             [default: any]
        --max-peers N        connections at most [default: 50]
        --no-pex             do not exchange peers with PEX (BEP 11) [default:
                             on, except for private torrents]
        --dht-node HOST:PORT bootstrap the DHT (BEP 5) from this node; repeat for
                             more [default: the well-known routers]
        --no-dht             no DHT [default: on, at UDP --port, except for
                             private torrents]
        --recheck            hash the data on disk even if the sidecar is valid
        --overwrite          replace data files whose size is wrong
        --seed               after completing, go on seeding until stopped
        --seed-ratio R       after completing, seed until uploaded >= R x size
                             [default: exit once complete; data complete at
                             start is seeded until stopped]
        --min-share F        upload F x size before fetching the last piece (the
                             share rule; 0 turns it off) [default: 0.10]
        --share-wait S       let the share rule go when connected leechers ask for
                             nothing for S seconds [default: 60]
        --down-limit RATE    download at most RATE bytes a second over all the
                             torrents (K = 1000, M = 1000000: 2M, 500K)
        --up-limit RATE      upload at most RATE bytes a second over all the torrents
        --files LIST         download only these files, numbered as 'btmini info'
                             lists them: 1,3-5 (one torrent) [default: all]
        --encryption MODE    prefer: dial encrypted (MSE/RC4) first, plaintext if
                             the peer cannot, accept both; require: RC4 only, both
                             ways; off: plaintext only [default: prefer]
        --no-utp             TCP only: no uTP (BEP 29) [default: on, at UDP --port;
                             dials try uTP first, then TCP]
        --json               one JSON object per status tick on stdout

INFO OPTIONS:
        --json               print one JSON object instead of text

CREATE OPTIONS:
    -t, --tracker URL        tracker announce URL; repeat for more (each its own tier)
                             [default: none, a trackerless torrent]
    -o, --output FILE        where to write the torrent [default: NAME.torrent]
    -l, --piece-length N     bytes per piece, a power of two from 16K to 128M; suffixes
                             K and M (powers of 1024) [default: 1,000-2,000 pieces,
                             16K to 16M]
    -p, --private            set the private flag (BEP 27: trackers only)
    -c, --comment TEXT       a comment [default: none]
        --no-date            leave out the creation date (byte-reproducible torrents)
    -f, --force              overwrite the output file if it exists

GENERAL OPTIONS:
    -v, --verbose            more log output (repeat for more)
    -q, --quiet              only errors
    -h, --help               this text
    -V, --version            the version

EXIT STATUS:
    0 success, 1 failure (the message says why), 2 bad command line
";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    /// Log level offset: 0 is the default (info), positive more, negative less.
    pub verbosity: i8,
    /// The command to run.
    pub command: Command,
}

/// The commands.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print [`HELP`].
    Help,
    /// Print the version.
    Version,
    /// `btmini TORRENT... [-o DIR]`.
    Download(DownloadArgs),
    /// `btmini info`.
    Info {
        /// The torrent file.
        torrent: PathBuf,
        /// Print JSON.
        json: bool,
    },
    /// `btmini create`.
    Create(CreateArgs),
    /// `btmini daemon`.
    Daemon(DaemonArgs),
}

/// Arguments of `btmini daemon`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonArgs {
    /// `-o`: the default download folder.
    pub output: PathBuf,
    /// `--rpc-bind` (default 127.0.0.1: never every interface unless asked).
    pub rpc_bind: std::net::IpAddr,
    /// `--rpc-port` (default 9091).
    pub rpc_port: u16,
    /// `--rpc-auth USER:PASS`.
    pub rpc_auth: Option<String>,
    /// `--port`: peers.
    pub port: u16,
    /// `--bind`: peers' local address.
    pub bind: Option<std::net::IpAddr>,
    /// `--state-dir` (default `OUTPUT/.btmini`).
    pub state_dir: PathBuf,
    /// `--web-ui DIR`.
    pub web_ui: Option<PathBuf>,
    /// Not `--no-dht`.
    pub dht: bool,
    /// `--dht-node` values.
    pub dht_nodes: Vec<String>,
    /// `--encryption`.
    pub encryption: crate::mse::Policy,
    /// Not `--no-utp`.
    pub utp: bool,
}

/// Arguments of the download.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadArgs {
    /// The `.torrent` files and magnet links, in order (at least one).
    pub torrents: Vec<PathBuf>,
    /// The output folder.
    pub output: PathBuf,
    /// `--peer` values, as given.
    pub peers: Vec<String>,
    /// `--port`.
    pub port: u16,
    /// `--bind`.
    pub bind: Option<std::net::IpAddr>,
    /// `--max-peers`.
    pub max_peers: usize,
    /// Not `--no-pex`.
    pub pex: bool,
    /// Not `--no-dht`.
    pub dht: bool,
    /// `--dht-node` values, as given.
    pub dht_nodes: Vec<String>,
    /// `--recheck`.
    pub recheck: bool,
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--json`.
    pub json: bool,
    /// `--seed`.
    pub seed: bool,
    /// `--seed-ratio`.
    pub seed_ratio: Option<f64>,
    /// `--min-share`.
    pub min_share: f64,
    /// `--share-wait`, seconds.
    pub share_wait: u64,
    /// `--down-limit`, bytes a second.
    pub down_limit: Option<u64>,
    /// `--up-limit`, bytes a second.
    pub up_limit: Option<u64>,
    /// `--files`.
    pub files: crate::selection::Selection,
    /// `--encryption`.
    pub encryption: crate::mse::Policy,
    /// Not `--no-utp`.
    pub utp: bool,
}

/// Arguments of `btmini create`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateArgs {
    /// File or folder to share.
    pub path: PathBuf,
    /// Tracker URLs, in order.
    pub trackers: Vec<String>,
    /// Output file; `None` means `NAME.torrent` in the current folder.
    pub output: Option<PathBuf>,
    /// Piece length; `None` means automatic.
    pub piece_length: Option<u64>,
    /// Set the private flag.
    pub private: bool,
    /// Comment.
    pub comment: Option<String>,
    /// Leave out `creation date`.
    pub no_date: bool,
    /// Overwrite the output.
    pub force: bool,
}

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see 'btmini --help')", self.0)
    }
}

impl std::error::Error for CliError {}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError(e.to_string())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sub {
    Download,
    Info,
    Create,
}

/// Parses the arguments that follow the program name.
pub fn parse<I>(args: I) -> Result<Cli, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // `btmini [-v|-q]... daemon ...`: a command of its own, with options of its own.
    if let Some(i) = args
        .iter()
        .position(|a| !a.to_string_lossy().starts_with('-'))
    {
        if args[i] == "daemon"
            && args[..i]
                .iter()
                .all(|a| a == "-v" || a == "-q" || a == "--verbose" || a == "--quiet")
        {
            let mut verbosity: i8 = 0;
            for a in &args[..i] {
                verbosity = if a == "-v" || a == "--verbose" {
                    verbosity.saturating_add(1)
                } else {
                    verbosity.saturating_sub(1)
                };
            }
            return parse_daemon(args[i + 1..].to_vec(), verbosity);
        }
    }
    let mut p = lexopt::Parser::from_args(args);
    let mut verbosity: i8 = 0;
    let mut sub: Option<Sub> = None;
    let mut positional: Vec<OsString> = Vec::new();
    let mut output: Option<PathBuf> = None;
    let mut json = false;
    let mut c = CreateArgs::default();
    let mut help = false;
    let mut version = false;
    let mut peers = Vec::new();
    let mut port: u16 = 6881;
    let mut bind = None;
    let mut max_peers = 50usize;
    let mut pex = true;
    let mut dht = true;
    let mut dht_nodes = Vec::new();
    let mut recheck = false;
    let mut overwrite = false;
    let mut seed = false;
    let mut seed_ratio = None;
    let mut min_share = 0.10;
    let mut share_wait = 60u64;
    let mut down_limit = None;
    let mut up_limit = None;
    let mut files = crate::selection::Selection::all();
    let mut encryption = crate::mse::Policy::Prefer;
    let mut utp = true;
    let mut download_only: Vec<&'static str> = Vec::new();
    let mut any = false;

    while let Some(arg) = p.next()? {
        any = true;
        match arg {
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Short('v') | Long("verbose") => verbosity = verbosity.saturating_add(1),
            Short('q') | Long("quiet") => verbosity = verbosity.saturating_sub(1),
            Short('o') | Long("output") => output = Some(p.value()?.into()),
            Long("json") => json = true,
            Short('t') | Long("tracker") => c.trackers.push(string(p.value()?, "--tracker")?),
            Short('l') | Long("piece-length") => {
                let v = string(p.value()?, "--piece-length")?;
                c.piece_length = Some(parse_size(&v).ok_or_else(|| {
                    CliError(format!(
                        "--piece-length: '{v}' is not a size like 262144 or 256K"
                    ))
                })?);
            }
            Short('p') | Long("private") => c.private = true,
            Short('c') | Long("comment") => c.comment = Some(string(p.value()?, "--comment")?),
            Long("no-date") => c.no_date = true,
            Long("peer") => {
                peers.push(string(p.value()?, "--peer")?);
                download_only.push("--peer");
            }
            Long("port") => {
                let v = string(p.value()?, "--port")?;
                port = v
                    .parse()
                    .map_err(|_| CliError(format!("--port: '{v}' is not a port number")))?;
                download_only.push("--port");
            }
            Long("bind") => {
                let v = string(p.value()?, "--bind")?;
                bind = Some(
                    v.parse()
                        .map_err(|_| CliError(format!("--bind: '{v}' is not an IP address")))?,
                );
                download_only.push("--bind");
            }
            Long("max-peers") => {
                let v = string(p.value()?, "--max-peers")?;
                max_peers = v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                    CliError(format!("--max-peers: '{v}' is not a positive number"))
                })?;
                download_only.push("--max-peers");
            }
            Long("dht-node") => {
                let v = string(p.value()?, "--dht-node")?;
                if !v.rsplit_once(':').is_some_and(|(h, port)| {
                    !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                }) {
                    return Err(CliError(format!("--dht-node: '{v}' is not HOST:PORT")));
                }
                dht_nodes.push(v);
                download_only.push("--dht-node");
            }
            Long("no-dht") => {
                dht = false;
                download_only.push("--no-dht");
            }
            Long("no-pex") => {
                pex = false;
                download_only.push("--no-pex");
            }
            Long("recheck") => {
                recheck = true;
                download_only.push("--recheck");
            }
            Long("seed") => {
                seed = true;
                download_only.push("--seed");
            }
            Long("seed-ratio") => {
                let v = string(p.value()?, "--seed-ratio")?;
                seed_ratio = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r >= 0.0)
                        .ok_or_else(|| {
                            CliError(format!("--seed-ratio: '{v}' is not a ratio like 1.5"))
                        })?,
                );
                download_only.push("--seed-ratio");
            }
            Long("min-share") => {
                let v = string(p.value()?, "--min-share")?;
                min_share = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| {
                        CliError(format!("--min-share: '{v}' is not a fraction like 0.1"))
                    })?;
                download_only.push("--min-share");
            }
            Long("share-wait") => {
                let v = string(p.value()?, "--share-wait")?;
                share_wait = v.parse().map_err(|_| {
                    CliError(format!("--share-wait: '{v}' is not a number of seconds"))
                })?;
                download_only.push("--share-wait");
            }
            Long("down-limit") | Long("up-limit") => {
                let flag = if arg == Long("down-limit") {
                    "--down-limit"
                } else {
                    "--up-limit"
                };
                let v = string(p.value()?, flag)?;
                let rate = parse_rate(&v).ok_or_else(|| {
                    CliError(format!(
                        "{flag}: '{v}' is not a rate like 2M or 500K (bytes a second)"
                    ))
                })?;
                if flag == "--down-limit" {
                    down_limit = Some(rate);
                } else {
                    up_limit = Some(rate);
                }
                download_only.push(flag);
            }
            Long("files") => {
                let v = string(p.value()?, "--files")?;
                files = crate::selection::Selection::parse(&v)
                    .map_err(|e| CliError(format!("--files: {e}")))?;
                download_only.push("--files");
            }
            Long("encryption") => {
                encryption = policy(string(p.value()?, "--encryption")?)?;
                download_only.push("--encryption");
            }
            Long("no-utp") => {
                utp = false;
                download_only.push("--no-utp");
            }
            Long("overwrite") => {
                overwrite = true;
                download_only.push("--overwrite");
            }
            Short('f') | Long("force") => c.force = true,
            Value(v) if sub.is_none() && positional.is_empty() && v == "info" => {
                sub = Some(Sub::Info)
            }
            Value(v) if sub.is_none() && positional.is_empty() && v == "create" => {
                sub = Some(Sub::Create)
            }
            Value(v) => positional.push(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let command = if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        let sub = sub.unwrap_or(Sub::Download);
        reject_foreign_options(sub, &c, json, output.is_some())?;
        if let (Some(flag), false) = (download_only.first(), sub == Sub::Download) {
            return Err(CliError(format!(
                "{flag} is an option of the download (btmini FILE.torrent)"
            )));
        }
        let one = |what: &str| -> Result<PathBuf, CliError> {
            match positional.as_slice() {
                [one] => Ok(PathBuf::from(one)),
                [] => Err(CliError(format!("missing {what}"))),
                [_, extra, ..] => Err(CliError(format!(
                    "unexpected argument '{}'",
                    extra.to_string_lossy()
                ))),
            }
        };
        match sub {
            Sub::Download if !any => Command::Help,
            Sub::Download if positional.is_empty() => {
                return Err(CliError("missing the .torrent file or magnet link".into()));
            }
            Sub::Download if positional.len() > 1 && !files.is_all() => {
                return Err(CliError("--files picks the files of one torrent".into()));
            }
            Sub::Download => Command::Download(DownloadArgs {
                torrents: positional.iter().map(PathBuf::from).collect(),
                output: output.unwrap_or_else(|| PathBuf::from("downloads")),
                peers,
                port,
                bind,
                max_peers,
                pex,
                dht,
                dht_nodes,
                recheck,
                overwrite,
                json,
                seed,
                seed_ratio,
                min_share,
                share_wait,
                down_limit,
                up_limit,
                files,
                encryption,
                utp,
            }),
            Sub::Info => Command::Info {
                torrent: one("the .torrent file")?,
                json,
            },
            Sub::Create => {
                c.path = one("the file or folder to share")?;
                c.output = output;
                Command::Create(c)
            }
        }
    };
    Ok(Cli { verbosity, command })
}

/// `btmini daemon`'s options.
fn parse_daemon(args: Vec<OsString>, mut verbosity: i8) -> Result<Cli, CliError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut output = None;
    let mut state_dir = None;
    let mut d = DaemonArgs {
        output: PathBuf::from("downloads"),
        rpc_bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        rpc_port: 9091,
        rpc_auth: None,
        port: 6881,
        bind: None,
        state_dir: PathBuf::new(),
        web_ui: None,
        dht: true,
        dht_nodes: Vec::new(),
        encryption: crate::mse::Policy::Prefer,
        utp: true,
    };
    let port = |v: String, flag: &str| -> Result<u16, CliError> {
        v.parse()
            .map_err(|_| CliError(format!("{flag}: '{v}' is not a port number")))
    };
    let ip = |v: String, flag: &str| -> Result<std::net::IpAddr, CliError> {
        v.parse()
            .map_err(|_| CliError(format!("{flag}: '{v}' is not an IP address")))
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                return Ok(Cli {
                    verbosity,
                    command: Command::Help,
                });
            }
            Short('v') | Long("verbose") => verbosity = verbosity.saturating_add(1),
            Short('q') | Long("quiet") => verbosity = verbosity.saturating_sub(1),
            Short('o') | Long("output") => output = Some(PathBuf::from(p.value()?)),
            Long("state-dir") => state_dir = Some(PathBuf::from(p.value()?)),
            Long("web-ui") => d.web_ui = Some(PathBuf::from(p.value()?)),
            Long("rpc-port") => d.rpc_port = port(string(p.value()?, "--rpc-port")?, "--rpc-port")?,
            Long("rpc-bind") => d.rpc_bind = ip(string(p.value()?, "--rpc-bind")?, "--rpc-bind")?,
            Long("rpc-auth") => {
                let v = string(p.value()?, "--rpc-auth")?;
                if !v.contains(':') {
                    return Err(CliError("--rpc-auth: give USER:PASS".into()));
                }
                d.rpc_auth = Some(v);
            }
            Long("port") => d.port = port(string(p.value()?, "--port")?, "--port")?,
            Long("bind") => d.bind = Some(ip(string(p.value()?, "--bind")?, "--bind")?),
            Long("no-dht") => d.dht = false,
            Long("dht-node") => d.dht_nodes.push(string(p.value()?, "--dht-node")?),
            Long("encryption") => d.encryption = policy(string(p.value()?, "--encryption")?)?,
            Long("no-utp") => d.utp = false,
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(o) = output {
        d.output = o;
    }
    d.state_dir = state_dir.unwrap_or_else(|| d.output.join(".btmini"));
    Ok(Cli {
        verbosity,
        command: Command::Daemon(d),
    })
}

/// `--encryption`'s value.
fn policy(v: String) -> Result<crate::mse::Policy, CliError> {
    crate::mse::Policy::parse(&v).ok_or_else(|| {
        CliError(format!(
            "--encryption: '{v}' is not one of prefer, require, off"
        ))
    })
}

fn reject_foreign_options(
    sub: Sub,
    c: &CreateArgs,
    json: bool,
    output: bool,
) -> Result<(), CliError> {
    let create_only = [
        (!c.trackers.is_empty(), "--tracker"),
        (c.piece_length.is_some(), "--piece-length"),
        (c.private, "--private"),
        (c.comment.is_some(), "--comment"),
        (c.no_date, "--no-date"),
        (c.force, "--force"),
    ];
    for (given, name) in create_only {
        if given && sub != Sub::Create {
            return Err(CliError(format!("{name} is an option of 'btmini create'")));
        }
    }
    if json && sub == Sub::Create {
        return Err(CliError(
            "--json is not an option of 'btmini create'".into(),
        ));
    }
    if output && sub == Sub::Info {
        return Err(CliError("'btmini info' takes no --output".into()));
    }
    Ok(())
}

fn string(v: OsString, flag: &str) -> Result<String, CliError> {
    v.into_string()
        .map_err(|_| CliError(format!("{flag}: value is not valid UTF-8")))
}

/// Parses a rate like `2M`, `500K`, `1.5M` or `80000` (bytes a second; K = 1000, M =
/// 1,000,000, as Transmission counts speeds); at least 1.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        _ => return None,
    };
    let r = n * mult;
    (r.is_finite() && (1.0..1e15).contains(&r)).then_some(r as u64)
}

/// Parses `262144`, `256K`, `256k`, `256KiB`, `4M`, `4MiB` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Cli {
        parse(args.iter().copied()).expect("valid command line")
    }

    fn bad(args: &[&str]) -> String {
        parse(args.iter().copied()).expect_err("must be refused").0
    }

    #[test]
    fn rate_limits_take_decimal_units() {
        let Command::Download(d) =
            ok(&["a.torrent", "--down-limit", "2M", "--up-limit", "1.5k"]).command
        else {
            panic!("a download");
        };
        assert_eq!((d.down_limit, d.up_limit), (Some(2_000_000), Some(1_500)));
        assert!(bad(&["a.torrent", "--down-limit", "fast"]).contains("not a rate"));
        assert!(bad(&["a.torrent", "--up-limit", "0"]).contains("not a rate"));
        assert!(bad(&["info", "a.torrent", "--up-limit", "1M"]).contains("--up-limit"));
    }

    #[test]
    fn files_are_numbered_from_one_for_a_single_torrent() {
        let Command::Download(d) = ok(&["a.torrent", "--files", "2,4-5"]).command else {
            panic!("a download");
        };
        assert_eq!(
            d.files,
            crate::selection::Selection::parse("2,4-5").unwrap()
        );
        assert!(bad(&["a.torrent", "--files", "0"]).contains("start at 1"));
        assert!(bad(&["a.torrent", "--files", "x"]).contains("--files"));
        assert!(bad(&["a.torrent", "b.torrent", "--files", "1"]).contains("one torrent"));
        assert!(bad(&["info", "a.torrent", "--files", "1"]).contains("--files"));
    }

    #[test]
    fn the_daemon_s_options_and_defaults() {
        let cli = ok(&[
            "-v",
            "daemon",
            "-o",
            "/srv/t",
            "--rpc-port",
            "9999",
            "--rpc-auth",
            "u:p",
        ]);
        assert_eq!(cli.verbosity, 1);
        let Command::Daemon(d) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(d.output, PathBuf::from("/srv/t"));
        assert_eq!(d.state_dir, PathBuf::from("/srv/t/.btmini"));
        assert_eq!(
            d.rpc_bind.to_string(),
            "127.0.0.1",
            "never every interface unless asked"
        );
        assert_eq!((d.rpc_port, d.rpc_auth.as_deref()), (9999, Some("u:p")));
        assert!(d.dht);
        let Command::Daemon(d) = ok(&[
            "daemon",
            "--rpc-bind",
            "0.0.0.0",
            "--state-dir",
            "/s",
            "--no-dht",
        ])
        .command
        else {
            panic!("a daemon");
        };
        assert_eq!(
            (d.rpc_bind.to_string().as_str(), d.state_dir.to_str(), d.dht),
            ("0.0.0.0", Some("/s"), false)
        );
        assert!(bad(&["daemon", "--rpc-auth", "nocolon"]).contains("USER:PASS"));
        assert!(bad(&["daemon", "--rpc-port", "x"]).contains("port"));
        assert!(bad(&["daemon", "--seed"]).contains("seed"));
        // A torrent file called "daemon" after an option is still a download.
        assert!(matches!(
            ok(&["--seed", "daemon"]).command,
            Command::Download(_)
        ));
    }

    #[test]
    fn dht_nodes_are_host_and_port_and_the_dht_can_be_turned_off() {
        let Command::Download(d) = ok(&[
            "a.torrent",
            "--dht-node",
            "10.0.0.2:6881",
            "--dht-node=r.example:25401",
        ])
        .command
        else {
            panic!("download expected");
        };
        assert_eq!(d.dht_nodes, ["10.0.0.2:6881", "r.example:25401"]);
        assert!(d.dht);
        let Command::Download(d) = ok(&["a.torrent", "--no-dht"]).command else {
            panic!("download expected");
        };
        assert!(!d.dht);
        assert_eq!(d.encryption, crate::mse::Policy::Prefer);
        let Command::Download(d) = ok(&["a.torrent", "--encryption", "require"]).command else {
            panic!("download expected");
        };
        assert_eq!(d.encryption, crate::mse::Policy::Require);
        assert!(d.utp);
        let Command::Download(d) = ok(&["a.torrent", "--no-utp"]).command else {
            panic!("download expected");
        };
        assert!(!d.utp);
        let Command::Daemon(d) = ok(&["daemon", "--encryption=off"]).command else {
            panic!("daemon expected");
        };
        assert_eq!(d.encryption, crate::mse::Policy::Off);
        assert_eq!(
            bad(&["a.torrent", "--encryption", "yes"]),
            "--encryption: 'yes' is not one of prefer, require, off"
        );
        assert!(bad(&["info", "a.torrent", "--encryption", "off"]).contains("download"));
        assert_eq!(
            bad(&["a.torrent", "--dht-node", "nope"]),
            "--dht-node: 'nope' is not HOST:PORT"
        );
        assert_eq!(
            bad(&["a.torrent", "--dht-node", "h:0"]),
            "--dht-node: 'h:0' is not HOST:PORT"
        );
    }

    #[test]
    fn several_torrents_and_magnets_go_to_one_download() {
        let Command::Download(d) =
            ok(&["a.torrent", "magnet:?xt=x", "-o", "d", "b.torrent"]).command
        else {
            panic!("download expected");
        };
        let names: Vec<_> = d.torrents.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["a.torrent", "magnet:?xt=x", "b.torrent"]);
        assert_eq!(
            bad(&["-o", "d"]),
            "missing the .torrent file or magnet link"
        );
    }

    #[test]
    fn download_is_the_main_form() {
        let Command::Download(d) = ok(&["a.torrent", "-o", "dir"]).command else {
            panic!("download expected");
        };
        assert_eq!(
            (d.torrents[0].to_str(), d.output.to_str()),
            (Some("a.torrent"), Some("dir"))
        );
        assert_eq!(
            (d.port, d.max_peers, d.bind, d.json, d.pex),
            (6881, 50, None, false, true)
        );
        let Command::Download(d) = ok(&["a.torrent"]).command else {
            panic!("download expected");
        };
        assert_eq!(d.output.to_str(), Some("downloads"));
        let Command::Download(d) = ok(&[
            "--peer",
            "127.0.0.1:1",
            "x.torrent",
            "--peer=h:2",
            "--port",
            "7000",
            "--bind",
            "127.0.0.2",
            "--max-peers",
            "9",
            "--no-pex",
            "--recheck",
            "--overwrite",
            "--seed",
            "--seed-ratio",
            "2.5",
            "--json",
        ])
        .command
        else {
            panic!("download expected");
        };
        assert_eq!(d.peers, vec!["127.0.0.1:1".to_string(), "h:2".into()]);
        assert_eq!((d.port, d.max_peers), (7000, 9));
        assert_eq!(d.bind, Some("127.0.0.2".parse().unwrap()));
        assert!(d.recheck && d.overwrite && d.json && d.seed && !d.pex);
        assert_eq!(d.seed_ratio, Some(2.5));
        assert!(bad(&["a", "--seed-ratio", "-1"]).contains("not a ratio"));
        assert_eq!(ok(&[]).command, Command::Help);
    }

    #[test]
    fn info_and_flags_anywhere() {
        let cli = ok(&["-v", "info", "x.torrent", "--json", "-v"]);
        assert_eq!(cli.verbosity, 2);
        assert_eq!(
            cli.command,
            Command::Info {
                torrent: "x.torrent".into(),
                json: true
            }
        );
        assert_eq!(ok(&["info", "-q", "x"]).verbosity, -1);
        // A torrent file that happens to be called "info" can still be downloaded.
        assert!(matches!(ok(&["./info"]).command, Command::Download(_)));
    }

    #[test]
    fn create_with_every_option() {
        let cli = ok(&[
            "create",
            "data",
            "-t",
            "http://a/announce",
            "--tracker=udp://b:1",
            "-o",
            "out.torrent",
            "-l",
            "256K",
            "--private",
            "-c",
            "hello",
            "--no-date",
            "-f",
        ]);
        assert_eq!(
            cli.command,
            Command::Create(CreateArgs {
                path: "data".into(),
                trackers: vec!["http://a/announce".into(), "udp://b:1".into()],
                output: Some("out.torrent".into()),
                piece_length: Some(262_144),
                private: true,
                comment: Some("hello".into()),
                no_date: true,
                force: true,
            })
        );
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(ok(&["create", "--help"]).command, Command::Help);
        assert_eq!(ok(&["-V"]).command, Command::Version);
        assert_eq!(ok(&["--version", "x.torrent"]).command, Command::Version);
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(bad(&["info"]), "missing the .torrent file");
        assert_eq!(bad(&["info", "a", "b"]), "unexpected argument 'b'");
        assert_eq!(bad(&["create"]), "missing the file or folder to share");
        assert_eq!(bad(&["--frobnicate"]), "invalid option '--frobnicate'");
        assert_eq!(
            bad(&["a.torrent", "-t", "x"]),
            "--tracker is an option of 'btmini create'"
        );
        assert_eq!(
            bad(&["create", "d", "--json"]),
            "--json is not an option of 'btmini create'"
        );
        assert_eq!(
            bad(&["info", "a", "--peer", "x:1"]),
            "--peer is an option of the download (btmini FILE.torrent)"
        );
        assert!(bad(&["a", "--port", "99999"]).contains("not a port number"));
        assert!(bad(&["a", "--bind", "eth0"]).contains("not an IP address"));
        assert!(bad(&["a", "--max-peers", "0"]).contains("not a positive number"));
        assert_eq!(
            bad(&["info", "a", "-o", "x"]),
            "'btmini info' takes no --output"
        );
        assert!(bad(&["create", "x", "-l", "lots"]).contains("not a size"));
        assert!(bad(&["create", "x", "-o"]).contains("missing argument"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16384"), Some(16384));
        assert_eq!(parse_size("16k"), Some(16384));
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1T"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
    }

    #[test]
    fn help_lists_every_option() {
        for flag in [
            "--output",
            "--json",
            "--tracker",
            "--piece-length",
            "--private",
            "--comment",
            "--no-date",
            "--force",
            "--verbose",
            "--quiet",
            "--help",
            "--version",
            "--peer",
            "--port",
            "--bind",
            "--max-peers",
            "--no-pex",
            "--recheck",
            "--overwrite",
            "--seed",
            "--seed-ratio",
            "--min-share",
            "--share-wait",
        ] {
            assert!(HELP.contains(flag), "{flag} missing from --help");
        }
    }
}
