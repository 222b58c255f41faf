//! A harness for fuzzing the HTTP/1.1 connection: feed bytes split at
//! arbitrary points and compare. Used by `tests/fuzz_http1.rs` (seeded, in
//! `cargo test`) and by the cargo-fuzz target in `runtime/fuzz`.

use std::net::SocketAddr;

use super::{Conn, Env, Limits, Progress};
use crate::handler::{Handled, Handler, HeaderSpan, OwnedResponse, Request, RequestId, Response};

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// Echoes what it parsed; defers `/defer` requests (completed by the
/// harness right after each `process` call, in order).
#[derive(Default)]
struct Echo {
    deferred: Vec<RequestId>,
}

impl Handler for Echo {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) -> Handled {
        if req.path() == b"/defer" {
            self.deferred.push(req.id());
            return Handled::Deferred;
        }
        if req.path() == b"/stream" {
            res.write(req.method());
            res.write(req.body());
            res.end();
            return Handled::Done;
        }
        res.header(
            b"X-Headers",
            format!("{}", req.headers().count()).as_bytes(),
        );
        res.header(b"X-Target", req.target());
        for (n, v) in req.headers() {
            res.header(n, v);
        }
        res.send(req.body());
        Handled::Done
    }
}

/// The small limits the harness runs under (so that inputs reach them).
pub fn limits() -> Limits {
    Limits {
        max_header_bytes: 512,
        max_target: 128,
        max_body: 2048,
        max_headers: 8,
    }
}

/// Feeds `chunks` in order to a fresh connection (answering with an echo
/// handler that also defers and streams); returns all output, with interim
/// `100 Continue` responses removed, and whether the connection wants to
/// close. Panics if a buffer grows past the limits.
pub fn run(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let limits = limits();
    let mut spans = vec![HeaderSpan::default(); limits.max_headers];
    let mut h = Echo::default();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    // Start tiny so that buffer growth is exercised too.
    let min_in = 64;
    let mut conn = Conn::new(Vec::new(), Vec::new(), peer, 0, 0, min_in);
    let cap = limits.max_header_bytes + limits.max_body as usize + 8192;
    let mut out = Vec::new();
    'feed: for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let space = conn.read_space(&limits);
            if space.is_empty() {
                break 'feed; // closing: the rest is never read
            }
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            conn.filled(n);
            rest = &rest[n..];
            loop {
                let mut env = Env {
                    date: DATE,
                    limits: &limits,
                    spans: &mut spans,
                    shutting_down: false,
                    log: None,
                    secure: false,
                };
                let p = conn.process(&mut h, &mut env);
                for id in h.deferred.drain(..) {
                    let (_, _, seq) = id.parts();
                    let resp =
                        OwnedResponse::new(202, format!("deferred {seq}")).with_header("X-D", "1");
                    assert!(conn.complete(seq, resp.as_ref(), DATE, None));
                }
                let o = conn.output();
                out.extend_from_slice(o);
                let k = o.len();
                conn.consumed(k);
                assert!(
                    conn.input_capacity() <= cap,
                    "input buffer grew past the limits"
                );
                if p == Progress::Idle {
                    break;
                }
            }
        }
    }
    (strip_continue(&out), conn.should_close())
}

/// Removes `HTTP/1.1 100 Continue` interim responses (whether one is sent
/// depends on how the body arrives, by design).
pub fn strip_continue(out: &[u8]) -> Vec<u8> {
    const C: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut v = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        if out[i..].starts_with(C) {
            i += C.len();
        } else {
            v.push(out[i]);
            i += 1;
        }
    }
    v
}

/// Runs `input` whole and split at `cuts` (sorted or not, clamped), and
/// panics if output or close decision differ.
pub fn check_split_invariance(input: &[u8], cuts: &[usize]) {
    let (whole, closed) = run(&[input]);
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut last = 0;
    for c in cuts {
        pieces.push(&input[last..c]);
        last = c;
    }
    pieces.push(&input[last..]);
    let (split, split_closed) = run(&pieces);
    assert!(
        split == whole && split_closed == closed,
        "output differs when split\ninput: {:?}\nwhole: {:?}\nsplit: {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(&split)
    );
}
