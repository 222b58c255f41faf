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
    std::fs::File::create(&path)
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
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
        e.tick(&mut |rid, resp| out.push((rid.parts().2, resp.to_owned_response())));
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
    push(
        e,
        1,
        &Req {
            method: "GET",
            target,
            headers: &[],
            body: b"",
        },
    );
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

fn header<'a>(r: &'a OwnedResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

#[test]
fn routing_params_query_and_middleware() {
    let (_d, mut e) = app(r#"
        Marg.use((req, res, next) => { res.set('X-Mw', 'yes'); next(); });
        Marg.use('/api', (req, res, next) => { req.tag = 'api'; next(); });
        Marg.get('/users/:id', (req, res) => res.json({ id: req.params.id, q: req.query, tag: req.tag }));
        Marg.get('/opt/:a/:b?', (req, res) => res.json(req.params));
        Marg.get('/files/*', (req, res) => res.send(req.params[0]));
        Marg.get('/api/x', (req, res) => res.send(req.tag));
        Marg.post('/p', (req, res) => res.status(201).send('made'));
        Marg.all('/any', (req, res) => res.send(req.method));
        Marg.get('/skip', (req, res, next) => next('route'), (req, res) => res.send('never'));
        Marg.get('/skip', (req, res) => res.send('second'));
    "#);
    let r = get(&mut e, "/users/42?x=1&y=a+b&x=2");
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), r#"{"id":"42","q":{"x":["1","2"],"y":"a b"}}"#);
    assert_eq!(header(&r, "x-mw"), Some("yes"));
    assert_eq!(
        header(&r, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(text(&get(&mut e, "/opt/1")), r#"{"a":"1"}"#);
    assert_eq!(text(&get(&mut e, "/opt/1/2")), r#"{"a":"1","b":"2"}"#);
    assert_eq!(text(&get(&mut e, "/files/a/b%20c.txt")), "a/b c.txt");
    assert_eq!(text(&get(&mut e, "/api/x")), "api");
    assert_eq!(text(&get(&mut e, "/skip")), "second");
    assert_eq!(get(&mut e, "/users").status, 404);
    push(
        &mut e,
        7,
        &Req {
            method: "POST",
            target: "/p",
            headers: &[],
            body: b"",
        },
    );
    let r = run(&mut e, Duration::from_secs(1));
    assert_eq!(r[0].1.status, 201);
    push(
        &mut e,
        8,
        &Req {
            method: "DELETE",
            target: "/any",
            headers: &[],
            body: b"",
        },
    );
    assert_eq!(text(&run(&mut e, Duration::from_secs(1))[0].1), "DELETE");
}

#[test]
fn errors_and_error_middleware() {
    let (_d, mut e) = app(r#"
        Marg.get('/throw', () => { throw new Error('boom'); });
        Marg.get('/reject', async () => { throw new Error('async boom'); });
        Marg.get('/next', (req, res, next) => next(Object.assign(new Error('nope'), { status: 418 })));
        Marg.get('/handled', (req, res, next) => next(new Error('x')));
        Marg.use('/handled', (err, req, res, next) => res.status(422).json({ error: err.message }));
    "#);
    let r = get(&mut e, "/throw");
    assert_eq!(r.status, 500);
    assert_eq!(text(&r), "Internal Server Error");
    assert_eq!(get(&mut e, "/reject").status, 500);
    assert_eq!(get(&mut e, "/next").status, 418);
    let r = get(&mut e, "/handled");
    assert_eq!(r.status, 422);
    assert_eq!(text(&r), r#"{"error":"x"}"#);
}

#[test]
fn dev_mode_shows_stack() {
    let opts = Options {
        dev: true,
        ..Options::default()
    };
    let (_d, mut e) = app_opts(
        "Marg.get('/', function boomer() { throw new Error('kaput'); })",
        opts,
    );
    let r = get(&mut e, "/");
    assert_eq!(r.status, 500);
    let t = text(&r);
    assert!(t.contains("Error: kaput") && t.contains("app.js"), "{t}");
}

#[test]
fn async_handlers_and_timers() {
    let (_d, mut e) = app(r#"
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        Marg.get('/sleep', async (req, res) => { await sleep(30); res.send('slept'); });
        Marg.get('/ret', async () => ({ returned: true }));
        Marg.get('/interval', (req, res) => {
            let n = 0;
            const t = setInterval(() => { if (++n === 3) { clearInterval(t); res.send(String(n)); } }, 5);
        });
        Marg.get('/micro', (req, res) => { queueMicrotask(() => res.send('micro')); });
        Marg.get('/cleared', (req, res) => {
            const t = setTimeout(() => res.send('bad'), 5);
            clearTimeout(t);
            setTimeout(() => res.send('good'), 10);
        });
    "#);
    let t0 = Instant::now();
    assert_eq!(text(&get(&mut e, "/sleep")), "slept");
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(text(&get(&mut e, "/ret")), r#"{"returned":true}"#);
    assert_eq!(text(&get(&mut e, "/interval")), "3");
    assert_eq!(text(&get(&mut e, "/micro")), "micro");
    assert_eq!(text(&get(&mut e, "/cleared")), "good");
}

#[test]
fn request_fields_and_bodies() {
    let (_d, mut e) = app(r#"
        Marg.post('/echo', async (req, res) => {
            const t = await req.text();
            const ab = await req.arrayBuffer();
            res.json({ body: req.body, text: t, len: ab.byteLength, ct: req.get('Content-Type'),
                       h: req.headers['x-two'], ip: req.ip, proto: req.protocol, secure: req.secure,
                       method: req.method, url: req.url, path: req.path });
        });
        Marg.post('/json', async (req, res) => res.json(await req.json()));
    "#);
    let body = br#"{"a":[1,2],"s":"h\u00e9"}"#;
    push(
        &mut e,
        1,
        &Req {
            method: "POST",
            target: "/echo?z=1",
            headers: &[
                ("Content-Type", "application/json"),
                ("X-Two", "a"),
                ("x-two", "b"),
            ],
            body,
        },
    );
    let r = run(&mut e, Duration::from_secs(1));
    let t = text(&r[0].1);
    assert!(t.contains(r#""body":{"a":[1,2],"s":"hé"}"#), "{t}");
    assert!(t.contains(r#""ct":"application/json""#), "{t}");
    assert!(t.contains(r#""h":"a, b""#), "{t}");
    assert!(
        t.contains(r#""ip":"127.0.0.1","proto":"http/1.1","secure":false"#),
        "{t}"
    );
    assert!(t.contains(r#""url":"/echo?z=1","path":"/echo""#), "{t}");
    push(
        &mut e,
        2,
        &Req {
            method: "POST",
            target: "/echo",
            headers: &[("content-type", "application/x-www-form-urlencoded")],
            body: b"a=1&b=x%20y",
        },
    );
    let t = text(&run(&mut e, Duration::from_secs(1))[0].1);
    assert!(t.contains(r#""body":{"a":"1","b":"x y"}"#), "{t}");
    push(
        &mut e,
        3,
        &Req {
            method: "POST",
            target: "/json",
            headers: &[],
            body: b"{bad",
        },
    );
    let r = run(&mut e, Duration::from_secs(1));
    assert_eq!(r[0].1.status, 400);
}

#[test]
fn response_helpers() {
    let (_d, mut e) = app(r#"
        Marg.get('/redir', (req, res) => res.redirect('/there'));
        Marg.get('/redir301', (req, res) => res.redirect(301, '/perm'));
        Marg.get('/status', (req, res) => res.sendStatus(403));
        Marg.get('/type', (req, res) => res.type('text').send('plain'));
        Marg.get('/bytes', (req, res) => res.send(new Uint8Array([1, 2, 3])));
        Marg.get('/ab', (req, res) => res.send(new Uint8Array([9, 8, 7, 6]).buffer));
        Marg.get('/null', (req, res) => res.send(null));
        Marg.get('/end', (req, res) => { res.status(204).end(); });
        Marg.get('/hdr', (req, res) => {
            res.set('X-A', '1').header('X-B', ['2', '3']);
            res.set({ 'X-C': 'c' });
            res.json({ a: res.get('x-a'), sent: res.headersSent });
        });
        Marg.get('/sent', (req, res) => { res.send('x'); res.json({ headersSent: res.headersSent }); });
    "#);
    let r = get(&mut e, "/redir");
    assert_eq!((r.status, header(&r, "location")), (302, Some("/there")));
    assert_eq!(get(&mut e, "/redir301").status, 301);
    let r = get(&mut e, "/status");
    assert_eq!((r.status, text(&r).as_str()), (403, "Forbidden"));
    let r = get(&mut e, "/type");
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    let r = get(&mut e, "/bytes");
    assert_eq!(r.body, vec![1, 2, 3]);
    assert_eq!(header(&r, "content-type"), Some("application/octet-stream"));
    assert_eq!(get(&mut e, "/ab").body, vec![9, 8, 7, 6]);
    assert_eq!(get(&mut e, "/null").body, Vec::<u8>::new());
    assert_eq!(get(&mut e, "/end").status, 204);
    let r = get(&mut e, "/hdr");
    assert_eq!(header(&r, "x-a"), Some("1"));
    assert_eq!(
        r.headers.iter().filter(|(n, _)| &n[..] == b"X-B").count(),
        2
    );
    assert_eq!(header(&r, "x-c"), Some("c"));
    assert_eq!(text(&r), r#"{"a":"1","sent":false}"#);
    assert_eq!(text(&get(&mut e, "/sent")), "x");
}

#[test]
fn globals() {
    let (_d, mut e) = app(r#"
        Marg.get('/', (req, res) => {
            const u = new URL('/a/../b?x=1&y=%20#h', 'http://Example.com:80/dir/');
            u.searchParams.append('z', 'a b');
            const enc = new TextEncoder().encode('hé€');
            const dec = new TextDecoder().decode(enc);
            const c = structuredClone({ d: new Date(0), m: new Map([[1, { s: new Set([2]) }]]) });
            const p = performance.now();
            res.json({ href: u.href, host: u.host, sp: u.searchParams.get('y'), enc: Array.from(enc), dec,
                       clone: c.m.get(1).s.has(2) && c.d.getTime() === 0, perf: typeof p === 'number' && p >= 0 });
        });
    "#);
    let t = text(&get(&mut e, "/"));
    assert_eq!(
        t,
        r#"{"href":"http://example.com/b?x=1&y=+&z=a+b#h","host":"example.com","sp":" ","enc":[104,195,169,226,130,172],"dec":"hé€","clone":true,"perf":true}"#
    );
}

#[test]
fn require_modules() {
    let dir = temp();
    std::fs::write(
        dir.0.join("lib.js"),
        "exports.greet = (n) => 'hi ' + n; module.exports.n = require('./data.json').n;",
    )
    .unwrap();
    std::fs::write(dir.0.join("data.json"), r#"{"n": 7}"#).unwrap();
    std::fs::write(
        dir.0.join("app.js"),
        "const lib = require('./lib'); Marg.get('/', (req, res) => res.send(lib.greet('x') + lib.n));\n\
         Marg.get('/bad', (req, res) => { try { require('express'); } catch (e) { res.send(e.message); } });\n\
         Marg.get('/missing', (req, res) => { try { require('./nope.js'); } catch (e) { res.send(e.message); } });",
    )
    .unwrap();
    let mut e = Engine::new(&dir.0.join("app.js"), Options::default()).unwrap();
    assert_eq!(text(&get(&mut e, "/")), "hi x7");
    assert!(text(&get(&mut e, "/bad")).contains("only local files"));
    assert!(text(&get(&mut e, "/missing")).contains("Cannot find module './nope.js'"));
}

#[test]
fn syntax_error_has_location() {
    let dir = temp();
    let p = dir.0.join("app.js");
    std::fs::write(&p, "Marg.get('/', (req, res) => {\n  res.send('x'\n});\n").unwrap();
    let err = Engine::new(&p, Options::default())
        .err()
        .expect("syntax error");
    let msg = err.to_string();
    assert!(msg.contains("app.js:3:"), "{msg}");
    assert!(msg.contains("SyntaxError"), "{msg}");
}

#[test]
fn runaway_handler_gets_503_and_others_still_run() {
    let opts = Options {
        cpu_limit: Duration::from_millis(200),
        ..Options::default()
    };
    let (_d, mut e) = app_opts(
        "Marg.get('/loop', () => { for (;;) {} }); Marg.get('/ok', (req, res) => res.send('ok'));",
        opts,
    );
    push(
        &mut e,
        1,
        &Req {
            method: "GET",
            target: "/loop",
            headers: &[],
            body: b"",
        },
    );
    push(
        &mut e,
        2,
        &Req {
            method: "GET",
            target: "/ok",
            headers: &[],
            body: b"",
        },
    );
    let t0 = Instant::now();
    let mut r = run(&mut e, Duration::from_secs(5));
    r.sort_by_key(|x| x.0);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].1.status, 503);
    assert_eq!(text(&r[1].1), "ok");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The VM keeps working, and the limit fires again.
    assert_eq!(text(&get(&mut e, "/ok")), "ok");
    assert_eq!(get(&mut e, "/loop").status, 503);
}

#[test]
fn unanswered_request_gets_504() {
    let opts = Options {
        response_timeout: Duration::from_millis(100),
        ..Options::default()
    };
    let (_d, mut e) = app_opts("Marg.get('/', () => {})", opts);
    let r = get(&mut e, "/");
    assert_eq!(r.status, 504);
}

#[test]
fn runaway_promise_continuation_gets_503() {
    let opts = Options {
        cpu_limit: Duration::from_millis(200),
        ..Options::default()
    };
    let (_d, mut e) = app_opts(
        "Marg.get('/loop', async () => { await null; for (;;) {} }); Marg.get('/ok', (req, res) => res.send('ok'));",
        opts,
    );
    assert_eq!(get(&mut e, "/loop").status, 503);
    assert_eq!(text(&get(&mut e, "/ok")), "ok");
    assert_eq!(get(&mut e, "/loop").status, 503);
    assert_eq!(text(&get(&mut e, "/ok")), "ok");
}

#[test]
fn unhandled_rejection_does_not_break_the_vm() {
    let (_d, mut e) = app(
        "Marg.get('/', (req, res) => { Promise.reject(new Error('floating')); res.send('fine'); });",
    );
    assert_eq!(text(&get(&mut e, "/")), "fine");
    assert_eq!(text(&get(&mut e, "/")), "fine");
}

#[test]
fn headers_readable_after_send_in_the_same_tick() {
    let (_d, mut e) = app("let seen = '';\n\
         Marg.use((req, res, next) => { next(); seen = req.get('x-late') + ' ' + req.ip; });\n\
         Marg.get('/a', (req, res) => res.send('a'));\n\
         Marg.get('/seen', (req, res) => res.send(seen));");
    push(
        &mut e,
        1,
        &Req {
            method: "GET",
            target: "/a",
            headers: &[("X-Late", "yes")],
            body: b"",
        },
    );
    run(&mut e, Duration::from_secs(1));
    assert_eq!(text(&get(&mut e, "/seen")), "yes 127.0.0.1");
}

#[test]
fn process_env() {
    let (_d, mut e) = app("Marg.get('/', (req, res) => res.send(typeof process.env.PATH + ' ' + process.env.NOPE_NOT_SET));");
    assert_eq!(text(&get(&mut e, "/")), "string undefined");
}
