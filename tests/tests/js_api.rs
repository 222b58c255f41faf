//! The JS API (book/src/js-api.md) through the real `marg` binary over real sockets.

mod js_common;

use js_common::{examples, Client, JsServer};
use std::time::{Duration, Instant};

#[test]
fn hello_example() {
    let s = JsServer::start(&examples().join("hello.js"), 1, &[]);
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, World!");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = s.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "Cannot GET /missing");
}

#[test]
fn api_example_crud() {
    let s = JsServer::start(&examples().join("api.js"), 1, &[]);
    let mut c = s.client();
    let json = [("Content-Type", "application/json")];
    let r = c.get("/todos");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.header("x-request-id").is_some());
    assert_eq!(
        r.text(),
        r#"[{"id":1,"title":"try marg","done":true},{"id":2,"title":"write an app","done":false}]"#
    );
    assert_eq!(
        c.get("/todos?done=false&limit=5").text(),
        r#"[{"id":2,"title":"write an app","done":false}]"#
    );
    let r = c.req("POST", "/todos", &json, br#"{"title":" new one "}"#);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("location"), Some("/todos/3"));
    assert_eq!(r.text(), r#"{"id":3,"title":"new one","done":false}"#);
    let r = c.req("PATCH", "/todos/3", &json, br#"{"done":true}"#);
    assert_eq!(r.text(), r#"{"id":3,"title":"new one","done":true}"#);
    assert_eq!(c.get("/todos/3").status, 200);
    assert_eq!(c.req("DELETE", "/todos/3", &[], b"").status, 204);
    let r = c.get("/todos/3");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, r#"{"error":"todo 3 not found"}"#)
    );
    // Validation, bad JSON, middleware-raised errors, unknown routes, thrown errors.
    let r = c.req("POST", "/todos", &json, br#"{"title":5}"#);
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"error":"title must be a non-empty string"}"#)
    );
    let r = c.req("PATCH", "/todos/1", &json, b"{nope");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Invalid JSON"), "{}", r.text());
    let r = c.req("DELETE", "/todos/1", &[("X-Api-Key", "wrong")], b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, r#"{"error":"bad api key"}"#)
    );
    let r = c.get("/nothing/here");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, r#"{"error":"no route for GET /nothing/here"}"#)
    );
    let r = c.get("/boom");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, r#"{"error":"internal error"}"#)
    );
    assert!(s.log_contains("something broke"), "{}", s.log());
    // HEAD runs the GET route; the body is dropped, its length kept.
    let r = c.req("HEAD", "/todos/1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("39"));
}

#[test]
fn async_example() {
    let s = JsServer::start(&examples().join("async.js"), 1, &[]);
    let t0 = Instant::now();
    let r = s.get("/delay?ms=60");
    assert!(t0.elapsed() >= Duration::from_millis(60));
    assert!(r.text().starts_with(r#"{"requested":60,"#), "{}", r.text());
    assert_eq!(s.get("/parallel").text(), r#"{"order":[30,10,20]}"#);
    assert_eq!(
        s.get("/return").text(),
        r#"{"ok":true,"at":"1970-01-01T00:00:00.000Z"}"#
    );
    assert_eq!(s.get("/fail").status, 500);
    assert_eq!(s.get("/ticks").text(), "ticked 3 times");
    assert_eq!(
        s.get("/order").text(),
        r#"["sync","microtask","promise","timeout"]"#
    );
}

const FEATURES: &str = r#"
const lib = require('./lib.js');
const data = require('./data.json');

Marg.get('/req/:id', (req, res) => {
  res.json({
    method: req.method, url: req.url, path: req.path, query: req.query, params: req.params,
    ua: req.headers['user-agent'], multi: req.headers['x-multi'], get: req.get('X-CUSTOM'),
    ip: req.ip, protocol: req.protocol, secure: req.secure,
  });
});
Marg.post('/body/json', async (req, res) => res.json({ parsed: req.body, again: await req.json() }));
Marg.post('/body/text', async (req, res) => res.send(await req.text()));
Marg.post('/body/bytes', async (req, res) => {
  const ab = await req.arrayBuffer();
  res.json({ len: ab.byteLength, first: new Uint8Array(ab)[0], form: req.body });
});

Marg.get('/res/chain', (req, res) => res.status(202).set('X-One', '1').header('X-Two', '2').type('json').send('{"raw":true}'));
Marg.get('/res/get', (req, res) => { res.set('X-A', 'a'); res.json({ a: res.get('x-a'), before: res.headersSent }); });
Marg.get('/res/object', (req, res) => res.send({ an: 'object' }));
Marg.get('/res/bytes', (req, res) => res.send(new TextEncoder().encode('bytes!')));
Marg.get('/res/ab', (req, res) => res.send(new Uint8Array([65, 66]).buffer));
Marg.get('/res/null', (req, res) => res.send(null));
Marg.get('/res/end', (req, res) => res.status(201).end());
Marg.get('/res/redirect', (req, res) => res.redirect('/elsewhere'));
Marg.get('/res/redirect301', (req, res) => res.redirect(301, '/moved'));
Marg.get('/res/status', (req, res) => res.sendStatus(418));
Marg.get('/res/sent', (req, res) => { res.send('first'); res.send('second'); });

Marg.get('/r/opt/:a/:b?', (req, res) => res.json(req.params));
Marg.get('/r/files/*', (req, res) => res.send(req.params[0]));
Marg.put('/r/m', (req, res) => res.send('put'));
Marg.patch('/r/m', (req, res) => res.send('patch'));
Marg.delete('/r/m', (req, res) => res.send('delete'));
Marg.options('/r/m', (req, res) => res.set('Allow', 'GET, PUT').sendStatus(204));
Marg.head('/r/h', (req, res) => res.set('X-Head', 'yes').end());
Marg.all('/r/all', (req, res) => res.send('all:' + req.method));
Marg.use('/r/mw', (req, res, next) => { req.seen = ['mw']; next(); });
Marg.get('/r/mw/x', (req, res, next) => { req.seen.push('route'); next(); }, (req, res) => res.json(req.seen));
Marg.get('/r/err', (req, res, next) => next(new Error('passed on')));
Marg.use('/r/err', (err, req, res, next) => res.status(409).send('caught: ' + err.message));

Marg.get('/g/console', (req, res) => { console.log('hello from', 'js', { n: 1 }); console.error('an error line'); res.send('ok'); });
Marg.get('/g/timers', (req, res) => {
  const t = setTimeout(() => res.send('cleared timer fired'), 5);
  clearTimeout(t);
  let n = 0;
  const i = setInterval(() => { if (++n === 2) { clearInterval(i); setTimeout(() => res.send('n=' + n), 1); } }, 2);
});
Marg.get('/g/micro', (req, res) => queueMicrotask(() => res.send('micro')));
Marg.get('/g/web', (req, res) => {
  const u = new URL('https://user:pw@Example.org:8443/a/./b/../c?x=1#frag');
  const sp = new URLSearchParams({ q: 'a b', n: '1' });
  sp.append('q', 'c&d');
  const enc = new TextEncoder().encode('€');
  const clone = structuredClone({ m: new Map([['k', [1, 2]]]), d: new Date(5) });
  const t = performance.now();
  res.json({
    host: u.host, path: u.pathname, search: u.searchParams.get('x'), origin: u.origin, hash: u.hash,
    sp: sp.toString(), all: sp.getAll('q'), enc: Array.from(enc), dec: new TextDecoder().decode(enc),
    clone: clone.m.get('k')[1] === 2 && clone.d.getTime() === 5, perf: t > 0,
  });
});
Marg.get('/g/require', (req, res) => {
  let err = '';
  try { require('fs'); } catch (e) { err = e.message; }
  res.json({ lib: lib.twice(21), data: data.answer, err });
});

Marg.listen(4321);
"#;

fn features() -> JsServer {
    JsServer::inline(
        FEATURES,
        &[
            ("lib.js", "exports.twice = (x) => x * 2;"),
            ("data.json", r#"{"answer": 42}"#),
        ],
        1,
        &[],
    )
}

#[test]
fn request_object() {
    let s = features();
    let r = s.req(
        "GET",
        "/req/7?a=1&b=x%20y&a=2",
        &[
            ("User-Agent", "e2e"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("X-Custom", "c"),
        ],
        b"",
    );
    assert_eq!(
        r.text(),
        r#"{"method":"GET","url":"/req/7?a=1&b=x%20y&a=2","path":"/req/7","query":{"a":["1","2"],"b":"x y"},"params":{"id":"7"},"ua":"e2e","multi":"1, 2","get":"c","ip":"127.0.0.1","protocol":"http/1.1","secure":false}"#
    );
    // CLI --port (0 here) wins over Marg.listen(4321).
    assert_ne!(s.port, 4321);
}

#[test]
fn request_bodies() {
    let s = features();
    let r = s.req(
        "POST",
        "/body/json",
        &[("Content-Type", "application/json")],
        br#"{"k":[1,"\u00e9"]}"#,
    );
    assert_eq!(
        r.text(),
        r#"{"parsed":{"k":[1,"é"]},"again":{"k":[1,"é"]}}"#
    );
    let r = s.req(
        "POST",
        "/body/text",
        &[("Content-Type", "text/plain")],
        "héllo".as_bytes(),
    );
    assert_eq!(r.text(), "héllo");
    let r = s.req(
        "POST",
        "/body/bytes",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1&b=two+words",
    );
    assert_eq!(
        r.text(),
        r#"{"len":15,"first":97,"form":{"a":"1","b":"two words"}}"#
    );
    let r = s.req(
        "POST",
        "/body/json",
        &[("Content-Type", "application/json")],
        b"{broken",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn response_object() {
    let s = features();
    let mut c = s.client();
    let r = c.get("/res/chain");
    assert_eq!(r.status, 202);
    assert_eq!(r.header("x-one"), Some("1"));
    assert_eq!(r.header("x-two"), Some("2"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.text(), r#"{"raw":true}"#);
    assert_eq!(c.get("/res/get").text(), r#"{"a":"a","before":false}"#);
    let r = c.get("/res/object");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.text(), r#"{"an":"object"}"#);
    let r = c.get("/res/bytes");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.text(), "bytes!");
    assert_eq!(c.get("/res/ab").text(), "AB");
    let r = c.get("/res/null");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(c.get("/res/end").status, 201);
    let r = c.get("/res/redirect");
    assert_eq!((r.status, r.header("location")), (302, Some("/elsewhere")));
    let r = c.get("/res/redirect301");
    assert_eq!((r.status, r.header("location")), (301, Some("/moved")));
    let r = c.get("/res/status");
    assert_eq!((r.status, r.text().as_str()), (418, "I'm a Teapot"));
    assert_eq!(c.get("/res/sent").text(), "first");
}

#[test]
fn big_bodies_keep_their_own_bytes_cached_or_not() {
    // Bodies of 1,024 UTF-16 units or more leave JS apart from the queued text, and one
    // answered again and again is served from a cache keyed by the string's identity. Every
    // response must still carry exactly its own bytes: constant bodies (cached after their
    // second use), bodies made anew for each response (never served stale, although the GC
    // reuses their cells), non-ASCII ones, more constants than the cache holds, big and
    // small bodies mixed in one tick, and big bodies sent from a promise continuation.
    let s = JsServer::inline(
        r#"
const page = '<p>' + 'marg '.repeat(400) + '</p>';
const wide = 'h\u00e9llo \u{1F600} '.repeat(200) + '\uD83D';
const many = Array.from({ length: 80 }, (_, i) => String(i).padStart(4, '0') + '-'.repeat(1200));
let n = 0;
Marg.get('/page', (req, res) => res.send(page));
Marg.get('/wide', (req, res) => res.set('X-W', '1').send(wide));
// Garbage on each call, so that collections run and the cells of dead bodies get reused.
Marg.get('/fresh', (req, res) => {
  const junk = [];
  for (let i = 0; i < 5000; i++) junk.push({ i, s: 'j' + i });
  n++;
  res.send(String(n).padStart(8, '0') + '.'.repeat(1100 + (n % 7)) + (junk.length > 0 ? '' : '!'));
});
Marg.get('/many/:i', (req, res) => res.send(many[Number(req.params.i)]));
Marg.get('/small', (req, res) => res.send('small'));
Marg.get('/later', async (req, res) => { await null; res.send(page); });
"#,
        &[],
        1,
        &[],
    );
    let page = format!("<p>{}</p>", "marg ".repeat(400));
    let wide = format!("{}\u{FFFD}", "h\u{e9}llo \u{1F600} ".repeat(200));
    let mut c = s.client();
    use std::io::Write;
    for round in 0..3 {
        let mut wire = Vec::new();
        let mut want: Vec<String> = Vec::new();
        for i in 0..240usize {
            let (path, body) = match i % 6 {
                0 => ("/page".to_string(), page.clone()),
                1 => ("/wide".to_string(), wide.clone()),
                2 => ("/fresh".to_string(), String::new()),
                3 => {
                    let k = (i * 7 + round) % 80;
                    (format!("/many/{k}"), format!("{k:04}{}", "-".repeat(1200)))
                }
                4 => ("/small".to_string(), "small".to_string()),
                _ => ("/later".to_string(), page.clone()),
            };
            wire.extend(Client::encode("GET", &path, &[], b""));
            want.push(body);
        }
        c.stream.write_all(&wire).unwrap();
        let got = marg_tests::read_responses(&mut c.stream, want.len());
        let mut fresh = Vec::new();
        for (i, (r, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(r.status, 200, "round {round} #{i}");
            if i % 6 == 2 {
                fresh.push(r.text());
                continue;
            }
            assert!(
                r.text() == *w,
                "round {round} #{i}: wrong body ({} bytes)",
                r.body.len()
            );
            if i % 6 == 1 {
                assert_eq!(r.header("x-w"), Some("1"));
            }
        }
        // The fresh bodies count up one by one, each with its own length.
        for w in fresh.windows(2) {
            let a: u64 = w[0][..8].parse().unwrap();
            let b: u64 = w[1][..8].parse().unwrap();
            assert_eq!(b, a + 1, "a stale or misplaced fresh body");
            assert_eq!(w[1].len(), 8 + 1100 + (b % 7) as usize);
        }
    }
}

#[test]
fn responses_of_one_tick_keep_their_own_bytes() {
    // Pipelined in one write, so that all land in one VM entry, whose string responses go to
    // Rust together: ASCII, Latin-1, astral, lone surrogates on both sides of a boundary
    // (each must stay U+FFFD, not pair up), custom headers, a bytes body in between, and a
    // timer-made response.
    let s = JsServer::inline(
        r#"
Marg.get('/a', (req, res) => res.send('plain'));
Marg.get('/latin', (req, res) => res.set('X-K', 'v1').send('h\u00e9llo w\u00f6rld'));
Marg.get('/astral', (req, res) => res.json({ e: '\u{1F600}' }));
Marg.get('/hi', (req, res) => res.type('text').send('x\uD83D'));
Marg.get('/lo', (req, res) => res.set('X-Lo', 'yes').send('\uDE00y'));
Marg.get('/bytes', (req, res) => res.send(new Uint8Array([66, 89, 84, 69, 83])));
Marg.get('/later', (req, res) => setTimeout(() => res.set('X-T', '1').send('timer'), 5));
Marg.get('/empty', (req, res) => res.status(204).end());
"#,
        &[],
        1,
        &[],
    );
    let paths = [
        "/a", "/latin", "/astral", "/hi", "/lo", "/bytes", "/later", "/empty", "/a",
    ];
    let mut c = s.client();
    let mut wire = Vec::new();
    for p in paths {
        wire.extend(Client::encode("GET", p, &[], b""));
    }
    use std::io::Write;
    c.stream.write_all(&wire).unwrap();
    let got = marg_tests::read_responses(&mut c.stream, paths.len());
    let texts: Vec<String> = got.iter().map(|r| r.text()).collect();
    assert_eq!(
        texts,
        [
            "plain",
            "h\u{e9}llo w\u{f6}rld",
            "{\"e\":\"\u{1F600}\"}",
            "x\u{FFFD}",
            "\u{FFFD}y",
            "BYTES",
            "timer",
            "",
            "plain"
        ]
    );
    assert_eq!(got[1].header("x-k"), Some("v1"));
    assert_eq!(got[3].header("x-lo"), None);
    assert_eq!(
        got[3].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(got[4].header("x-lo"), Some("yes"));
    assert_eq!(got[6].header("x-t"), Some("1"));
    assert_eq!(got[7].status, 204);
    // Many more responses in one tick than the queue holds (512).
    let mut wire = Vec::new();
    for i in 0..1200 {
        wire.extend(Client::encode(
            "GET",
            if i % 2 == 0 { "/a" } else { "/latin" },
            &[],
            b"",
        ));
    }
    c.stream.write_all(&wire).unwrap();
    let got = marg_tests::read_responses(&mut c.stream, 1200);
    for (i, r) in got.iter().enumerate() {
        let want = if i % 2 == 0 {
            "plain"
        } else {
            "h\u{e9}llo w\u{f6}rld"
        };
        assert_eq!(r.text(), want, "response {i}");
    }
}

#[test]
fn routing_and_middleware() {
    let s = features();
    let mut c = s.client();
    assert_eq!(c.get("/r/opt/1").text(), r#"{"a":"1"}"#);
    assert_eq!(c.get("/r/opt/1/2").text(), r#"{"a":"1","b":"2"}"#);
    assert_eq!(c.get("/r/files/x/y%20z.txt").text(), "x/y z.txt");
    assert_eq!(c.req("PUT", "/r/m", &[], b"").text(), "put");
    assert_eq!(c.req("PATCH", "/r/m", &[], b"").text(), "patch");
    assert_eq!(c.req("DELETE", "/r/m", &[], b"").text(), "delete");
    let r = c.req("OPTIONS", "/r/m", &[], b"");
    assert_eq!((r.status, r.header("allow")), (204, Some("GET, PUT")));
    let r = c.req("HEAD", "/r/h", &[], b"");
    assert_eq!(r.header("x-head"), Some("yes"));
    assert_eq!(c.req("POST", "/r/all", &[], b"").text(), "all:POST");
    assert_eq!(c.get("/r/mw/x").text(), r#"["mw","route"]"#);
    let r = c.get("/r/err");
    assert_eq!((r.status, r.text().as_str()), (409, "caught: passed on"));
    assert_eq!(c.req("POST", "/r/m", &[], b"").status, 404);
}

#[test]
fn hot_and_cold_targets_read_the_same() {
    // Targets seen twice become cached JS strings (with a cached path/query split); the cache
    // holds 256 and empties when full. Whatever path a target takes, the request reads alike.
    let s = JsServer::inline(
        r#"
Marg.all('*', (req, res) => res.json({ url: req.url, path: req.path, q: req.query, o: req.originalUrl, m: req.method }));
"#,
        &[],
        1,
        &[],
    );
    let mut c = s.client();
    let want = |t: &str, path: &str, q: &str| {
        format!(r#"{{"url":"{t}","path":"{path}","q":{q},"o":"{t}","m":"GET"}}"#)
    };
    for _ in 0..3 {
        assert_eq!(
            c.get("/a/b?x=1&y=2").text(),
            want("/a/b?x=1&y=2", "/a/b", r#"{"x":"1","y":"2"}"#)
        );
        assert_eq!(c.get("/plain").text(), want("/plain", "/plain", "{}"));
        assert_eq!(
            c.get("http://example.com/abs?k=v").text(),
            want("http://example.com/abs?k=v", "/abs", r#"{"k":"v"}"#)
        );
    }
    // An unusual method travels in the batch string ahead of a cached target.
    for _ in 0..3 {
        let r = c.req("PROPFIND", "/plain", &[], b"");
        assert_eq!(
            r.text(),
            want("/plain", "/plain", "{}").replace("GET", "PROPFIND")
        );
    }
    // More distinct hot targets than the cache holds, each asked twice, in two rounds.
    for round in 0..2 {
        for i in 0..300 {
            for _ in 0..2 {
                let t = format!("/item/{i}?r={round}");
                let q = format!(r#"{{"r":"{round}"}}"#);
                assert_eq!(c.get(&t).text(), want(&t, &format!("/item/{i}"), &q));
            }
        }
    }
}

#[test]
fn handlers_that_reach_next_without_declaring_it() {
    // Route handlers with fewer than three declared parameters run without the `next` chain,
    // unless a rest or default parameter can still reach `next`; errors and rejections from
    // direct handlers still find the error middleware.
    let s = JsServer::inline(
        r#"
Marg.get('/rest', (req, res, ...more) => more[0]());
Marg.get('/rest', (req, res) => res.send('after rest'));
Marg.get('/default', function (req, res, next = null) { next(); });
Marg.get('/default', (req, res) => res.send('after default'));
Marg.get('/throws', (req, res) => { throw Object.assign(new Error('direct'), { status: 418 }); });
Marg.get('/rejects', async (req) => { await null; throw Object.assign(new Error('later'), { status: 422 }); });
Marg.get('/bound', ((req, res, next) => next()).bind(null));
Marg.get('/bound', (req, res) => res.send('after bound'));
Marg.use((err, req, res, next) => res.status(err.status).send('handled: ' + err.message));
"#,
        &[],
        1,
        &[],
    );
    let mut c = s.client();
    assert_eq!(c.get("/rest").text(), "after rest");
    assert_eq!(c.get("/default").text(), "after default");
    let r = c.get("/throws");
    assert_eq!((r.status, r.text().as_str()), (418, "handled: direct"));
    let r = c.get("/rejects");
    assert_eq!((r.status, r.text().as_str()), (422, "handled: later"));
    assert_eq!(c.get("/bound").text(), "after bound");
}

#[test]
fn globals() {
    let s = features();
    let mut c = s.client();
    assert_eq!(c.get("/g/console").text(), "ok");
    assert!(s.log_contains("hello from js { n: 1 }"), "{}", s.log());
    assert!(s.log_contains("error: an error line"), "{}", s.log());
    assert_eq!(c.get("/g/timers").text(), "n=2");
    assert_eq!(c.get("/g/micro").text(), "micro");
    assert_eq!(
        c.get("/g/web").text(),
        r##"{"host":"example.org:8443","path":"/a/c","search":"1","origin":"https://example.org:8443","hash":"#frag","sp":"q=a+b&n=1&q=c%26d","all":["a b","c&d"],"enc":[226,130,172],"dec":"€","clone":true,"perf":true}"##
    );
    let r = c.get("/g/require");
    assert!(
        r.text()
            .starts_with(r#"{"lib":42,"data":42,"err":"Cannot find module 'fs'"#),
        "{}",
        r.text()
    );
}

#[test]
fn on_request_catch_all() {
    let s = JsServer::inline(
        "Marg.on('request', (req, res) => res.send(req.method + ' ' + req.url));",
        &[],
        1,
        &[],
    );
    let mut c = Client::new(s.port);
    assert_eq!(c.get("/any/thing?x").text(), "GET /any/thing?x");
    assert_eq!(c.req("POST", "/p", &[], b"x").text(), "POST /p");
}
