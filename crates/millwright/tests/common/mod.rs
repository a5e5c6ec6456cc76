//! Shared helpers for the `millwright` binary's integration tests: child processes killed by pid
//! in a `Drop` guard, a tiny blocking HTTP/1.1 client over `std::net::TcpStream`, bounded waits,
//! unique temp dirs, the pymodbus peer, and a parser for the register map in docs/simulator.md.
//!
//! Every wait here is bounded by a deadline; nothing blocks without a timeout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as J;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_millwright");

/// The workspace root (for `docs/`, `examples/`, `tests/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

// ---------------------------------------------------------------------------------------------
// Temp dirs

/// A unique directory under `std::env::temp_dir()`, removed on drop (kept when the test panics,
/// so its files can be inspected).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "mw-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed; keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// Sends SIGTERM to `pid` with the `kill` command (no libc dependency).
pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A running child process. Its stdout arrives line by line on a channel (and is kept), its
/// stderr is collected for failure messages. Dropping it sends SIGTERM to its pid, waits up to
/// 3 s, then kills it (SIGKILL) and reaps it.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// The stdout and stderr reader threads (finished once the child closed both pipes).
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts the `millwright` binary with `args`.
    pub fn millwright(args: &[&str]) -> Proc {
        Proc::spawn(BIN, args)
    }

    pub fn spawn(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Proc {
        let program = program.as_ref();
        let mut child = Command::new(program)
            .args(args)
            .env_remove("MILLWRIGHT_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout piped");
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let name = format!("{} {}", Path::new(program).display(), args.join(" "));
        Proc {
            name,
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stdout lines seen so far (by [`Proc::wait_line`] or [`Proc::drain_stdout`]).
    pub fn stdout(&self) -> &[String] {
        &self.stdout
    }

    /// Collects stdout lines that have arrived, without waiting.
    pub fn drain_stdout(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.stdout.push(l);
        }
    }

    /// Waits (bounded) for a stdout line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.stdout.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.stdout.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no stdout line with {needle:?} within {timeout:?}\n{}",
                        self.report()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // give the stderr reader a moment to collect the reason
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "stdout closed before a line with {needle:?}\n{}",
                        self.report()
                    )
                }
            }
        }
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// After exit: waits (bounded) until both pipes are read to the end, then collects stdout.
    pub fn finish_output(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.drain_stdout();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigterm(&self) {
        sigterm(self.child.id());
    }

    /// Kills the process at once (SIGKILL: nothing is flushed, as in a power cut) and reaps it.
    #[allow(dead_code)]
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// The command line, stdout and stderr so far, for failure messages.
    pub fn report(&mut self) -> String {
        self.drain_stdout();
        format!(
            "--- {}\n--- stdout\n{}\n--- stderr\n{}",
            self.name,
            self.stdout.join("\n"),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        self.sigterm();
        if self.wait_exit(Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `millwright ARGS` to completion (bounded by `timeout`, then killed):
/// (exit status, stdout, stderr).
pub fn run_to_end(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut p = Proc::millwright(args);
    let Some(status) = p.wait_exit(timeout) else {
        panic!("did not exit within {timeout:?}\n{}", p.report());
    };
    p.finish_output(Duration::from_secs(2));
    let stdout = p.stdout().join("\n");
    (status, stdout, p.stderr())
}

/// `host:port` from the `… web UI at http://HOST:PORT/` line.
pub fn http_addr_from(line: &str) -> String {
    let start = line
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        + "http://".len();
    let rest = &line[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The `IP:PORT` that follows `marker` in `line` (e.g. `"Modbus TCP "`).
pub fn addr_after(line: &str, marker: &str) -> SocketAddr {
    let start = line
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"))
        + marker.len();
    let token: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    token
        .parse()
        .unwrap_or_else(|e| panic!("bad address {token:?} in {line:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Bounded waits

/// Polls `f` every 100 ms until it returns `Ok`, for at most `timeout`; panics with the last
/// `Err` (a description of the state seen) otherwise.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client (blocking, std only)

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> J {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Bearer tokens by HTTP address: a demo's login token (registered by [`start_demo`]) or an API
/// token a test created; [`request`] sends the one registered for its address.
static TOKENS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Makes [`request`] authenticate to `addr` with `token`.
#[allow(dead_code)]
pub fn register_token(addr: &str, token: &str) {
    let mut t = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.retain(|(a, _)| a != addr);
    t.push((addr.to_owned(), token.to_owned()));
}

fn token_for(addr: &str) -> Option<String> {
    let t = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.iter()
        .find(|(a, _)| a == addr)
        .map(|(_, tok)| tok.clone())
}

/// One request on a fresh connection (`Connection: close`); connect, read and write are bounded.
/// It carries the bearer token registered for `addr`, if any ([`register_token`]).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    let json = [("Content-Type", "application/json")];
    let headers: &[(&str, &str)] = if body.is_some() { &json } else { &[] };
    request_with(addr, method, path, headers, body.map(str::as_bytes))
}

/// [`request`] with any headers and body bytes (`Content-Length` is added for a body; the
/// registered bearer token unless `headers` has an `Authorization`).
pub fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n");
    let has_auth = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    if let (false, Some(t)) = (has_auth, token_for(addr)) {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes)
        .map_err(|e| format!("{method} {path}: write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{method} {path}: read: {e}"))?;
    parse_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if body.len() < len {
            return Err(format!("body truncated: {} of {len} bytes", body.len()));
        }
        body.truncate(len);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_str = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| format!("bad chunk size {size_str:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("chunk truncated".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

pub fn get(addr: &str, path: &str) -> Result<Response, String> {
    request(addr, "GET", path, None)
}

pub fn post_json(addr: &str, path: &str, body: &J) -> Result<Response, String> {
    request(addr, "POST", path, Some(&body.to_string()))
}

/// GET that must answer 200 with JSON.
pub fn get_json(addr: &str, path: &str) -> J {
    let r = get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Waits (bounded) until `GET /ready` answers 200.
pub fn wait_ready(addr: &str, timeout: Duration) {
    wait_for("/ready to answer 200", timeout, || {
        match get(addr, "/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("{} {}", r.status, r.text())),
            Err(e) => Err(e),
        }
    });
}

/// `/api/v1/tags` as a map path → tag object.
pub fn tags_by_path(addr: &str) -> std::collections::BTreeMap<String, J> {
    let j = get_json(addr, "/api/v1/tags");
    let tags = j["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags array in {j}"));
    tags.iter()
        .map(|t| {
            (
                t["path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("tag without path: {t}"))
                    .to_owned(),
                t.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// RFC 3339

/// Parses an RFC 3339 timestamp (`2024-01-01T00:00:00.123Z`, `…+02:00`) to ns since the Unix
/// epoch; `None` if it is not RFC 3339.
pub fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        frac_ns = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset_s: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant's algorithm)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(frac_ns))
}

// ---------------------------------------------------------------------------------------------
// docs/simulator.md register map

/// One row of the register-map table in docs/simulator.md.
#[derive(Clone, Debug)]
pub struct MapRow {
    /// `holding`, `input`, `coil` or `discrete`.
    pub table: String,
    pub address: u16,
    /// `f32`, `u32`, `i32`, `u16`, `i16` or `bool`.
    pub dtype: String,
    /// `abcd`, `cdab`, `badc`, `dcba`; `None` for 16-bit and bool points.
    pub word_order: Option<String>,
    /// `(raw_lo, raw_hi, eu_lo, eu_hi)`.
    pub scale: Option<(f64, f64, f64, f64)>,
    pub unit: Option<String>,
    pub path: String,
}

impl MapRow {
    /// Engineering value of a raw reading, per the doc's formula
    /// `eu = eu_lo + (raw − raw_lo)·(eu_hi − eu_lo)/(raw_hi − raw_lo)`.
    pub fn to_eu(&self, raw: f64) -> f64 {
        match self.scale {
            Some((rl, rh, el, eh)) => el + (raw - rl) * (eh - el) / (rh - rl),
            None => raw,
        }
    }

    /// Engineering units per raw count (quantization step) of a scaled point.
    pub fn resolution(&self) -> Option<f64> {
        self.scale
            .map(|(rl, rh, el, eh)| ((eh - el) / (rh - rl)).abs())
    }
}

fn dash(s: &str) -> Option<&str> {
    let s = s.trim();
    (!(s.is_empty() || s == "—" || s == "-")).then_some(s)
}

fn parse_range(s: &str) -> Option<(f64, f64)> {
    let (lo, hi) = s.trim().split_once("..")?;
    Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?))
}

/// Parses the `## Register map` table of docs/simulator.md.
pub fn register_map() -> Vec<MapRow> {
    let path = root().join("docs/simulator.md");
    let md = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_register_map(&md)
}

pub fn parse_register_map(md: &str) -> Vec<MapRow> {
    let mut lines = md.lines().skip_while(|l| !l.starts_with("## Register map"));
    let header = lines
        .by_ref()
        .find(|l| l.starts_with("| table |"))
        .expect("docs/simulator.md: no register-map table (a line starting with `| table |`)");
    let cols: Vec<String> = header
        .trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("register map has no column {name:?}: {cols:?}"))
    };
    let (c_table, c_addr, c_type, c_order, c_scale, c_unit, c_path) = (
        col("table"),
        col("address"),
        col("type"),
        col("word order"),
        col("scale raw → eu"),
        col("unit"),
        col("tag path"),
    );
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(
            cells.len(),
            cols.len(),
            "register map row has {} cells, header {}: {line}",
            cells.len(),
            cols.len()
        );
        let scale = dash(cells[c_scale]).map(|s| {
            let (raw, eu) = s
                .split_once('→')
                .unwrap_or_else(|| panic!("bad scale {s:?} in {line}"));
            let (rl, rh) =
                parse_range(raw).unwrap_or_else(|| panic!("bad raw range {raw:?} in {line}"));
            let (el, eh) =
                parse_range(eu).unwrap_or_else(|| panic!("bad eu range {eu:?} in {line}"));
            (rl, rh, el, eh)
        });
        rows.push(MapRow {
            table: cells[c_table].to_owned(),
            address: cells[c_addr]
                .parse()
                .unwrap_or_else(|e| panic!("bad address in {line}: {e}")),
            dtype: cells[c_type].to_owned(),
            word_order: dash(cells[c_order]).map(str::to_owned),
            scale,
            unit: dash(cells[c_unit]).map(str::to_owned),
            path: cells[c_path].trim_matches('`').to_owned(),
        });
    }
    assert!(
        !rows.is_empty(),
        "docs/simulator.md: the register-map table has no rows"
    );
    rows
}

// ---------------------------------------------------------------------------------------------
// Python peers

/// The venv interpreter: `$MW_PYTHON`, else `~/.cache/millwright/venv/bin/python`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MW_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "MW_PYTHON={} does not exist; run scripts/setup-test-env.sh",
            p.display()
        );
        return p;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cache/millwright/venv/bin/python");
    assert!(
        p.exists(),
        "no Python venv with pymodbus at {} (and MW_PYTHON is not set): run scripts/setup-test-env.sh",
        p.display()
    );
    p
}

/// Runs `python SCRIPT ARGS` with `stdin` as input; bounded by `timeout` (then killed).
/// Returns (exit status, stdout, stderr).
pub fn run_python(
    script: &Path,
    args: &[&str],
    stdin: &str,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python {}: {e}", script.display()));
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    if let Some(mut w) = child.stdin.take() {
        let _ = w.write_all(stdin.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within {timeout:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    )
}

/// A running `millwright demo` on ephemeral loopback ports with its own data directory.
#[allow(dead_code)] // each test binary uses a different subset of the fields
pub struct Demo {
    pub proc: Proc,
    /// `127.0.0.1:PORT` of the web UI / API.
    pub http: String,
    /// The simulator's Modbus TCP listener.
    pub modbus: SocketAddr,
    /// The "serving N tag(s) … web UI at http://…" line.
    pub web_line: String,
    /// The login token of the `Login: http://…/login?token=TOKEN` line (registered for `http`).
    pub token: String,
    pub data: TempDir,
}

/// Starts `millwright demo --http 127.0.0.1:0 --modbus 127.0.0.1:0 --data-dir TMP EXTRA…` and waits
/// until it prints both listener lines (not for `/ready`).
#[allow(dead_code)]
pub fn start_demo(name: &str, extra: &[&str]) -> Demo {
    start_demo_in(TempDir::new(name), extra)
}

/// [`start_demo`] on an existing data directory (a restart).
#[allow(dead_code)]
pub fn start_demo_in(data: TempDir, extra: &[&str]) -> Demo {
    let data_dir = data.path.to_str().expect("utf-8 temp path").to_owned();
    let mut args = vec![
        "demo",
        "--http",
        "127.0.0.1:0",
        "--modbus",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::millwright(&args);
    let sim_line = proc.wait_line(
        "Millwright demo: simulator on Modbus TCP",
        Duration::from_secs(10),
    );
    let modbus = addr_after(&sim_line, "Modbus TCP ");
    let web_line = proc.wait_line("web UI at http://", Duration::from_secs(10));
    let http = http_addr_from(&web_line);
    let login = proc.wait_line("Login: http://", Duration::from_secs(10));
    let token = login
        .split("/login?token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {login:?}"))
        .trim()
        .to_owned();
    register_token(&http, &token);
    Demo {
        proc,
        http,
        modbus,
        web_line,
        token,
        data,
    }
}

/// Waits until every tag of the register map is served with `good` quality; returns all tags
/// then served, by path. The failure message names each tag that is missing or not good.
#[allow(dead_code)]
pub fn wait_all_good(
    http: &str,
    map: &[MapRow],
    timeout: Duration,
) -> std::collections::BTreeMap<String, J> {
    wait_for("every simulator tag to be good", timeout, || {
        let tags = tags_by_path(http);
        let bad: Vec<String> = map
            .iter()
            .filter_map(|r| match tags.get(&r.path) {
                Some(t) if t["quality"] == "good" => None,
                Some(t) => Some(format!("{} {} {}", r.path, t["quality"], t["reason"])),
                None => Some(format!("{} not served", r.path)),
            })
            .collect();
        if bad.is_empty() {
            Ok(tags)
        } else {
            Err(bad.join("; "))
        }
    })
}

/// Starts Mosquitto (Debian's, anonymous, no persistence; `mw_testpeers`) on a free loopback
/// port with its config in `dir`; `None` (after printing `SKIP: …`) when it or
/// `mosquitto_sub`/`mosquitto_pub`/`stdbuf` is not installed. Stopped when it drops.
#[allow(dead_code)]
pub fn start_mosquitto(dir: &Path) -> Option<(mw_testpeers::Mosquitto, u16)> {
    if !mw_testpeers::mosquitto_present(&["mosquitto_sub", "mosquitto_pub", "stdbuf"]) {
        return None;
    }
    let m = mw_testpeers::Mosquitto::anonymous(dir);
    let port = m.port;
    Some((m, port))
}

/// Starts pymodbus's server (`tests/peers/modbus_server.py`, its registers documented there)
/// on a free port; returns it and the port. Stopped when the `Proc` drops.
#[allow(dead_code)]
pub fn start_pymodbus() -> (Proc, u16) {
    let script = root().join("tests/peers/modbus_server.py");
    let mut server = Proc::spawn(python(), &[script.to_str().expect("utf-8 path"), "0"]);
    let ready = server.wait_line("READY port=", Duration::from_secs(30));
    let port = ready
        .split("port=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {ready:?}"));
    (server, port)
}

/// pymodbus's client (`tests/peers/modbus_read.py`) reading `spec` from 127.0.0.1:`port`: its
/// JSON answer.
#[allow(dead_code)]
pub fn pymodbus_read(port: u16, spec: &str) -> J {
    let o = Command::new(python())
        .arg(root().join("tests/peers/modbus_read.py"))
        .args(["127.0.0.1", &port.to_string(), spec])
        .output()
        .expect("modbus_read.py");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "modbus_read.py: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `millwright token create --role ROLE --name NAME --expires 1d --data-dir DIR`: the token it
/// printed once.
#[allow(dead_code)]
pub fn create_token(dir: &str, role: &str, name: &str) -> String {
    let (st, out, err) = run_to_end(
        &[
            "token",
            "create",
            "--role",
            role,
            "--expires",
            "1d",
            "--name",
            name,
            "--data-dir",
            dir,
        ],
        Duration::from_secs(20),
    );
    assert!(st.success(), "token create: {out}{err}");
    out.split_whitespace()
        .find(|w| w.starts_with("mw_"))
        .unwrap_or_else(|| panic!("no token in {out:?}"))
        .to_owned()
}

/// `mosquitto_sub -F "%t %x"` (topic, hex payload; line-buffered through `stdbuf`) on
/// 127.0.0.1:`port` for `topic`, once it has its SUBACK.
#[allow(dead_code)]
pub fn mosquitto_sub_hex(port: u16, topic: &str) -> Proc {
    let p = port.to_string();
    let mut sub = Proc::spawn(
        "stdbuf",
        &[
            "-oL",
            "mosquitto_sub",
            "-d",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-t",
            topic,
            "-F",
            "%t %x",
        ],
    );
    sub.wait_line("SUBACK", Duration::from_secs(30));
    sub
}

/// The Sparkplug payload of a `TOPIC HEX` line of [`mosquitto_sub_hex`].
#[allow(dead_code)]
pub fn spb_payload(line: &str) -> mw_sparkplug::Payload {
    let hex = line.split_once(' ').map_or("", |(_, h)| h.trim());
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    mw_sparkplug::decode(&bytes).expect("a Sparkplug payload")
}

/// Debian's `nats-server`, or `None` (the test then says so and skips).
pub fn nats_server() -> Option<&'static str> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}
