//! Helpers shared by the integration tests: temporary folders, seeded payloads, and running
//! btmini and the real tools it is tested against.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A folder under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("btmini-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` pseudo-random bytes, the same for the same seed (xorshift64*).
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file of seeded bytes, creating its folders.
pub fn write_file(path: &Path, seed: u64, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, seeded_bytes(seed, len)).unwrap();
}

/// A multi-file payload: nested folders, a zero-length file, a hidden file, non-ASCII names,
/// sizes that are not multiples of any piece length. Returns the folder.
pub fn multi_file_payload(root: &Path) -> PathBuf {
    let dir = root.join("payload-ünï");
    write_file(&dir.join("a.bin"), 1, 100_001);
    write_file(&dir.join("empty.txt"), 2, 0);
    write_file(&dir.join("sub/deeper/c.dat"), 3, 65_537);
    write_file(&dir.join("sub/日本語.txt"), 4, 3_333);
    write_file(&dir.join(".hidden"), 5, 17);
    write_file(&dir.join("z/tail.bin"), 6, 40_000);
    dir
}

/// Three files for the file-selection tests, in `root`: a.bin (300,001 bytes), b.bin
/// (2,000,003) and c.bin (200,007). With 64 KiB pieces, b.bin holds 30 pieces of its own and
/// shares one with each of the others.
pub fn three_file_payload(root: &Path) {
    write_file(&root.join("a.bin"), 11, 300_001);
    write_file(&root.join("b.bin"), 12, 2_000_003);
    write_file(&root.join("c.bin"), 13, 200_007);
}

/// A single-file payload of an odd size. Returns the file.
pub fn single_file_payload(root: &Path) -> PathBuf {
    let f = root.join("single ☃.bin");
    write_file(&f, 7, 1_234_567);
    f
}

/// `root/data/single.bin`, `len` bytes from `seed`, and its torrent `root/p.torrent` (64 KiB
/// pieces, the given trackers). Returns (the file, the torrent).
pub fn single_file_torrent(
    root: &Path,
    seed: u64,
    len: usize,
    trackers: &[String],
) -> (PathBuf, PathBuf) {
    let file = root.join("data").join("single.bin");
    write_file(&file, seed, len);
    let torrent = root.join("p.torrent");
    let mut cmd = btmini();
    cmd.arg("create")
        .arg(&file)
        .arg("-o")
        .arg(&torrent)
        .args(["-l", "64K", "-q"]);
    for t in trackers {
        cmd.arg("-t").arg(t);
    }
    run_ok(&mut cmd);
    (file, torrent)
}

/// `btmini create SRC -o TORRENT -q` with `args` (a piece length, trackers…).
pub fn make_torrent(src: &Path, torrent: &Path, args: &[&str]) {
    run_ok(
        btmini()
            .arg("create")
            .arg(src)
            .arg("-o")
            .arg(torrent)
            .arg("-q")
            .args(args),
    );
}

pub fn btmini() -> Command {
    Command::new(env!("CARGO_BIN_EXE_btmini"))
}

/// Kills the child when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, checking every 20 ms; past `limit` it is killed and the test
/// fails, naming `what`.
pub fn wait_exit(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see README)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Debian's python3, which is the one that imports python3-libtorrent.
pub const PYTHON: &str = "/usr/bin/python3";

/// Runs `tests/support/lt.py` with `args` and parses its JSON output.
pub fn libtorrent(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    let out = run_ok(Command::new(PYTHON).arg(script).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lt.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A libtorrent leecher (`lt.py download`) of `torrent` into `save` on `ip`, dialling
/// `peer`, running in the background until dropped (its output discarded).
pub fn lt_leecher(torrent: &Path, save: &Path, ip: &str, peer: &str) -> Killed {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    let child = Command::new(PYTHON)
        .arg(script)
        .arg("download")
        .arg(torrent)
        .arg(save)
        .args([ip, peer])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3-libtorrent");
    Killed(child)
}

/// `btmini info --json` of a torrent, parsed.
pub fn btmini_info(torrent: &Path) -> serde_json::Value {
    let out = run_ok(btmini().arg("info").arg("--json").arg(torrent));
    serde_json::from_slice(&out.stdout).expect("btmini info --json prints JSON")
}

/// A port free for both TCP and UDP on 127.0.0.1 right now. Ports come from a counter
/// unique to this process, so tests running in parallel never pick the same one.
/// A torrent's info-hash in hex, as `btmini info` gives it.
pub fn hex_of(torrent: &Path) -> String {
    btmini_info(torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2000) as u16 * 10;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + n % 20_000;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// Debian's opentracker on 127.0.0.1, HTTP and UDP on one port, the given info-hashes
/// (hex) whitelisted. Stopped when dropped.
pub struct OpenTracker {
    child: std::process::Child,
    pub port: u16,
    _dir: TempDir,
}

impl OpenTracker {
    pub fn start(hashes: &[String]) -> Self {
        Self::start_on(free_port(), hashes)
    }

    /// On a port chosen in advance (with [`free_port`]), for torrents that must name it.
    pub fn start_on(port: u16, hashes: &[String]) -> Self {
        let dir = TempDir::new("opentracker");
        let list: String = hashes.iter().map(|h| format!("{h}\n")).collect();
        std::fs::write(dir.join("whitelist.txt"), list).unwrap();
        let child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-P",
                &port.to_string(),
            ])
            .arg("-d")
            .arg(dir.path())
            .args(["-w", "whitelist.txt"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("opentracker is installed (tools/test installs it)");
        // Ready when it serves a listed torrent: it loads the whitelist on a thread of its
        // own, which under load runs well after the sockets accept.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !whitelist_loaded(port, hashes.first().map(String::as_str)) {
            assert!(
                std::time::Instant::now() < deadline,
                "opentracker did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        OpenTracker {
            child,
            port,
            _dir: dir,
        }
    }

    /// Waits until the tracker lists a peer on `port` for the torrent `hex` (a seeder that
    /// announces on its own schedule, as transmission does about 10 s after it starts).
    pub fn wait_for_peer(&self, hex: &str, port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !tracker_lists(self.port, hex, port) {
            assert!(
                std::time::Instant::now() < deadline,
                "no peer on port {port} announced to the tracker"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }
}

/// One raw announce for `hex` from a probe peer; the reply's body.
fn probe_announce(port: u16, hex: &str, event: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let hash: String = (0..hex.len() / 2)
        .map(|i| format!("%{}", &hex[2 * i..2 * i + 2]))
        .collect();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let req = format!(
        "GET /announce?info_hash={hash}&peer_id=-XX0000-readinessprb&port=1&uploaded=0\
         &downloaded=0&left=1&event={event}&compact=1&numwant=200 HTTP/1.0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).ok()?;
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some(reply.split_off(at))
}

/// Whether opentracker on `port` lists a peer on `peer_port` for `hex` (the probe removes
/// itself again).
fn tracker_lists(port: u16, hex: &str, peer_port: u16) -> bool {
    let Some(body) = probe_announce(port, hex, "started") else {
        return false;
    };
    probe_announce(port, hex, "stopped");
    let Ok(r) = btmini::tracker::response::parse_announce(&body) else {
        return false;
    };
    r.peers.iter().any(|p| p.port() == peer_port)
}

/// Whether opentracker on `port` serves `hex` yet. A `started` announce is
/// checked against the list (a `stopped` one is not), and the `stopped` that follows
/// removes the probe's peer again.
fn whitelist_loaded(port: u16, hex: Option<&str>) -> bool {
    let Some(hex) = hex else {
        return std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    };
    match probe_announce(port, hex, "started") {
        Some(body)
            if body.starts_with(b"d") && !body.windows(14).any(|w| w == b"failure reason") =>
        {
            probe_announce(port, hex, "stopped").is_some()
        }
        _ => false,
    }
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A libtorrent process (lt.py), stopped when dropped.
pub struct Seeder {
    pub child: std::process::Child,
    pub _stdin: Option<std::process::ChildStdin>,
    pub port: u16,
    /// Its standard output, for lt.py's later lines.
    pub out: Option<BufReader<std::process::ChildStdout>>,
}

impl Seeder {
    /// Sends lt.py a command line ("connect HOST:PORT", "choke").
    pub fn command(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self._stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line lt.py prints.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        let out = self.out.as_mut().expect("stdout kept");
        out.read_line(&mut line).unwrap();
        line
    }
}

impl Drop for Seeder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lt.py ARGS…` and waits for its "ready PORT" line.
pub fn lt_process(args: &[&std::ffi::OsStr]) -> Seeder {
    lt_process_env(args, &[])
}

/// [`lt_process`] with environment variables (`LT_ENC=rc4|off`: its encryption).
pub fn lt_process_env(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Seeder {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt.py");
    let mut child = Command::new(PYTHON)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-libtorrent");
    let stdin = child.stdin.take();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("libtorrent did not start: {line}"));
    Seeder {
        child,
        _stdin: stdin,
        port,
        out: Some(out),
    }
}

/// libtorrent seeding `torrent` from `data_dir` on `ip`, upload capped at `rate` bytes/s.
pub fn libtorrent_seeder(torrent: &Path, data_dir: &Path, ip: &str, rate: Option<u64>) -> Seeder {
    let rate = rate.map(|r| r.to_string());
    let mut args = vec![
        "seed".as_ref(),
        torrent.as_os_str(),
        data_dir.as_os_str(),
        ip.as_ref(),
    ];
    if let Some(r) = &rate {
        args.push(r.as_ref());
    }
    lt_process(&args)
}

/// libtorrent leeching `torrent` into `data_dir` on `ip` at 1 KB/s: it has next to nothing
/// to give, but connects, and speaks PEX.
pub fn libtorrent_peer(torrent: &Path, data_dir: &Path, ip: &str) -> Seeder {
    lt_process(&[
        "peer".as_ref(),
        torrent.as_os_str(),
        data_dir.as_os_str(),
        ip.as_ref(),
    ])
}

/// Reads an HTTP request's head from `s` (up to the blank line, or until the peer stops).
pub fn read_http_head(s: &mut impl std::io::Read) -> Vec<u8> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    req
}

/// A small tmpfs mounted for a test (`size` as mount takes it, "2m"), unmounted when dropped.
pub struct Tmpfs(pub TempDir);

impl Tmpfs {
    pub fn mount(size: &str) -> Self {
        let dir = TempDir::new("tmpfs");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "btmini-test"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// How long a [`Logged`] btmini may take to log a line or to finish.
pub const LOGGED_LIMIT: Duration = Duration::from_secs(90);

/// btmini with `-v`, its log lines collected as they come.
pub struct Logged {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    pub fn start(cmd: &mut std::process::Command) -> Self {
        let mut child = cmd
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let start = Instant::now();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = start.elapsed().as_secs_f64();
                sink.lock().unwrap().push(format!("[{at:6.2}] {line}"));
            }
        });
        Self { child, lines }
    }

    /// Waits until a log line contains `text`; panics with the log after `LOGGED_LIMIT`.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + LOGGED_LIMIT;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with '{text}':\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for btmini to exit 0, checks that `got` holds `want`'s bytes, returns the log.
    pub fn finish_with(&mut self, got: &std::path::Path, want: &std::path::Path) -> String {
        let status = wait_exit(&mut self.child, "btmini", LOGGED_LIMIT);
        assert!(status.success(), "btmini failed:\n{}", self.log());
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(want).unwrap());
        self.log()
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config folder for transmission-cli (its `TRANSMISSION_HOME`) with uTP off: Transmission
/// 3.00's uTP stalls (its timer bugs, fixed in 4.0), against libtorrent as against btmini,
/// which dials uTP first.
pub fn transmission_home(home: &Path) -> PathBuf {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(home.join("settings.json"), r#"{"utp-enabled": false}"#).unwrap();
    home.to_path_buf()
}

/// btmini seeding `torrent` from `data` on `ip`:`port` (no DHT), logged; returns once it
/// says it seeds.
pub fn btmini_seeding(torrent: &Path, data: &Path, ip: &str, port: u16) -> Logged {
    let seed = Logged::start(btmini().arg(torrent).arg("-o").arg(data).args([
        "--bind",
        ip,
        "--port",
        &port.to_string(),
        "--no-dht",
    ]));
    seed.wait_for("seeding");
    seed
}
