//! Shared helpers of the `js_*` end-to-end tests: start `marg serve APP` (real binary, real
//! sockets) with the bridge's environment settings, capture its log (stderr), and talk HTTP/1.1
//! over keep-alive connections.
#![allow(dead_code)]

use marg_tests::{marg_bin, parse_response, read_responses, Resp};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "marg-js-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes `name` with `text`; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `marg serve APP`, killed on drop.
pub struct JsServer {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    _dir: Option<TempDir>,
}

impl JsServer {
    /// Serves the app at `app` with `workers` workers and extra environment.
    pub fn start(app: &Path, workers: usize, env: &[(&str, &str)]) -> JsServer {
        Self::start_with(app, workers, env, &["--port", "0"])
    }

    /// Like [`JsServer::start`], with `args` (which must include `--port` unless the app
    /// calls `Marg.listen`) instead of `--port 0`.
    pub fn start_with(app: &Path, workers: usize, env: &[(&str, &str)], args: &[&str]) -> JsServer {
        let w = workers.to_string();
        let mut cmd = Command::new(marg_bin());
        cmd.args(["serve"])
            .arg(app)
            .args(["--host", "127.0.0.1", "--workers", &w])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn marg");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).expect("start-up line");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let port = banner
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {banner:?}; log: {}", log.lock().unwrap()));
        JsServer {
            child,
            port,
            log,
            _dir: None,
        }
    }

    /// Writes `src` as `app.js` in a temporary directory (plus `files`) and serves it.
    pub fn inline(
        src: &str,
        files: &[(&str, &str)],
        workers: usize,
        env: &[(&str, &str)],
    ) -> JsServer {
        Self::inline_with(src, files, workers, env, &["--port", "0"])
    }

    /// Like [`JsServer::inline`], with `args` instead of `--port 0` (see
    /// [`JsServer::start_with`]).
    pub fn inline_with(
        src: &str,
        files: &[(&str, &str)],
        workers: usize,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> JsServer {
        let dir = TempDir::new();
        for (n, t) in files {
            dir.file(n, t);
        }
        let app = dir.file("app.js", src);
        let mut s = JsServer::start_with(&app, workers, env, args);
        s._dir = Some(dir);
        s
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (up to 2 s).
    pub fn log_contains(&self, needle: &str) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    /// One request on a fresh connection.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.client().req(method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn new(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    /// The bytes of one request.
    pub fn encode(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (n, v) in headers {
            r.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() {
            r.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    pub fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.stream
            .write_all(&Self::encode(method, path, headers, body))
            .unwrap();
        if method == "HEAD" {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            loop {
                if let Some((r, _)) = parse_response(&buf, true) {
                    return r;
                }
                let n = self.stream.read(&mut tmp).expect("read");
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&tmp[..n]);
            }
        }
        let mut got = read_responses(&mut self.stream, 1);
        assert_eq!(got.len(), 1, "one response to {method} {path}");
        got.pop().unwrap()
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }
}
