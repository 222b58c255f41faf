//! Helpers for the end-to-end tests: build and start the real `marg`
//! binary on an ephemeral loopback port, talk to it with raw sockets or
//! curl, and parse what comes back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `marg` binary: `$MARG_BIN`, or built now with cargo (same profile
/// and target directory as this test) and found next to the test's `deps/`.
pub fn marg_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MARG_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target/<profile>")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "marg", "--bin", "marg"])
            .env("CARGO_TARGET_DIR", &target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let st = cmd.status().expect("run cargo build -p marg");
        assert!(st.success(), "cargo build -p marg failed");
        profile_dir.join("marg")
    })
    .clone()
}

/// A running `marg serve` child process, killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Everything it printed to stdout after the start-up line.
    pub stdout: Arc<Mutex<String>>,
    /// The start-up line.
    pub banner: String,
}

impl Server {
    /// Starts `marg serve --host 127.0.0.1 --port 0 --workers 1 ARGS...`.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec![
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--workers",
            "1",
        ];
        all.extend_from_slice(args);
        Self::start_raw(&all)
    }

    /// Starts `marg ARGS...` (must be a `serve` command).
    pub fn start_raw(args: &[&str]) -> Server {
        let mut child = Command::new(marg_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn marg");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut banner = String::new();
        reader.read_line(&mut banner).expect("read start-up line");
        let port = banner
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in start-up line {banner:?}"));
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Server {
            child: Some(child),
            port,
            stdout: out,
            banner,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// A connected socket with a 5 s read timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends `bytes` on a fresh connection and reads until the server closes
    /// it (or 5 s pass).
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(bytes).unwrap();
        read_to_close(&mut s)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (`TERM`, `INT`) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads until EOF, reset, or the socket's read timeout.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// Whether the peer closed the connection (EOF or reset within `wait`).
pub fn is_closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Header fields (names lowercased).
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// First header value named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses one response from the front of `buf`; returns it and the bytes
/// used. `head_only` for responses to HEAD.
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<(Resp, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 304 || status == 204 || (100..200).contains(&status) {
        return Some((r, end));
    }
    if r.header("transfer-encoding") == Some("chunked") {
        let mut i = end;
        loop {
            let line_end = buf[i..].windows(2).position(|w| w == b"\r\n")? + i;
            let size = usize::from_str_radix(
                std::str::from_utf8(&buf[i..line_end])
                    .ok()?
                    .split(';')
                    .next()?,
                16,
            )
            .ok()?;
            i = line_end + 2;
            if size == 0 {
                // no trailers from marg
                if buf.len() < i + 2 {
                    return None;
                }
                return Some((r, i + 2));
            }
            if buf.len() < i + size + 2 {
                return None;
            }
            r.body.extend_from_slice(&buf[i..i + size]);
            i += size + 2;
        }
    }
    let len: usize = match r.header("content-length") {
        Some(v) => v.parse().ok()?,
        None => buf.len() - end, // close-delimited
    };
    if buf.len() < end + len {
        return None;
    }
    r.body = buf[end..end + len].to_vec();
    Some((r, end + len))
}

/// Parses every response in `buf` (none of them to HEAD).
pub fn parse_all(buf: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        match parse_response(&buf[i..], false) {
            Some((r, n)) => {
                out.push(r);
                i += n;
            }
            None => break,
        }
    }
    out
}

/// Reads from `s` until `n` complete responses arrived (or timeout).
pub fn read_responses(s: &mut TcpStream, n: usize) -> Vec<Resp> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let t0 = Instant::now();
    loop {
        let got = parse_all(&buf);
        if got.len() >= n || t0.elapsed() > Duration::from_secs(5) {
            return got;
        }
        match s.read(&mut tmp) {
            Ok(0) => return parse_all(&buf),
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
            Err(_) => return parse_all(&buf),
        }
    }
}

/// The status code of the first response in `buf` (0 if none).
pub fn status_of(buf: &[u8]) -> u16 {
    parse_response(buf, false)
        .map(|r| r.0.status)
        .unwrap_or_else(|| {
            std::str::from_utf8(buf)
                .ok()
                .and_then(|s| s.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
}

/// Runs curl with `args` (adds `-s`); returns (exit ok, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Half-closes the write side.
pub fn shutdown_write(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
}
