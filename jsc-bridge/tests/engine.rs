//! Drives the engine directly (no sockets): request in, response out.

use jsc_bridge::{Engine, Options};
use runtime::{handler::HeaderSpan, OwnedResponse, Protocol, Request, RequestId, Version};
use std::io::Write;
use std::time::{Duration, Instant};

fn app(src: &str) -> (tempdir::Dir, Engine) {
    app_opts(src, Options::default())
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn app_opts(src: &str, opts: Options) -> (tempdir::Dir, Engine) {
    let dir = temp();
    let path = dir.0.join("app.js");
    std::fs::File::create(&path).unwrap().write_all(src.as_bytes()).unwrap();
    let e = Engine::new(&path, opts).unwrap_or_else(|e| panic!("{e}"));
    (dir, e)
}

fn temp() -> tempdir::Dir {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "jsc-bridge-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    tempdir::Dir(p)
}

struct Req<'a> {
    method: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn push(e: &mut Engine, seq: u32, r: &Req<'_>) {
    let mut head = Vec::new();
    head.extend_from_slice(format!("{} {} HTTP/1.1\r\n", r.method, r.target).as_bytes());
    let mut spans = Vec::new();
    for (n, v) in r.headers {
        let s = head.len() as u32;
        head.extend_from_slice(n.as_bytes());
        let ne = head.len() as u32;
        head.extend_from_slice(b": ");
        let vs = head.len() as u32;
        head.extend_from_slice(v.as_bytes());
        let ve = head.len() as u32;
        head.extend_from_slice(b"\r\n");
        spans.push(HeaderSpan {
            name: (s, ne),
            value: (vs, ve),
        });
    }
    head.extend_from_slice(b"\r\n");
    let req = Request::from_parts(
        RequestId::from_parts(0, 0, seq),
        &head,
        r.method.as_bytes(),
        r.target.as_bytes(),
        Version::Http11,
        &spans,
        r.body,
        "127.0.0.1:5555".parse().unwrap(),
        Protocol::Http11,
        false,
    );
    e.push(&req);
}

fn run(e: &mut Engine, max: Duration) -> Vec<(u32, OwnedResponse)> {
    let mut out = Vec::new();
    let end = Instant::now() + max;
    loop {
        e.tick(&mut |rid, resp| out.push((rid.parts().2, resp)));
        if !e.busy() || Instant::now() > end {
            return out;
        }
        let wait = e
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(1))
            .min(Duration::from_millis(20));
        std::thread::sleep(wait);
    }
}

fn get(e: &mut Engine, target: &str) -> OwnedResponse {
    push(e, 1, &Req { method: "GET", target, headers: &[], body: b"" });
    let mut r = run(e, Duration::from_secs(5));
    assert_eq!(r.len(), 1, "one response for {target}");
    r.pop().unwrap().1
}

fn text(r: &OwnedResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn probe_natives() {
    let (_d, mut e) = app(
        "Marg.get('/', (req, res) => res.send(['queueMicrotask','TextEncoder','TextDecoder','URL','URLSearchParams','structuredClone','performance','console'].map(n => n + ':' + typeof globalThis[n]).join(' ')))",
    );
    let r = get(&mut e, "/");
    eprintln!("{}", text(&r));
    assert_eq!(r.status, 200);
}

#[test]
fn hello() {
    let (_d, mut e) = app("Marg.get('/', (req, res) => res.send('Hello, World!'))");
    let r = get(&mut e, "/");
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "Hello, World!");
    let r = get(&mut e, "/nope");
    assert_eq!(r.status, 404);
}
