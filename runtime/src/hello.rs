//! The built-in handler of `marg serve` without an app: `Hello, World!`,
//! `/json`, and (with `--test-routes`) routes that exercise the runtime from
//! end-to-end tests: `/echo` (body back), `/stream` (chunked response),
//! `/delay?ms=N` (deferred completion after N ms), `/tick` (deferred,
//! completed in the next loop tick, like the JS bridge), `/panic`.

use std::time::{Duration, Instant};

use crate::handler::{
    CompletionSink, Handled, Handler, OwnedResponse, Request, RequestId, Response,
};

/// The default handler; one per worker.
#[derive(Debug, Default)]
pub struct HelloHandler {
    test_routes: bool,
    /// Deferred `/delay` requests: when to answer, and the id.
    timers: Vec<(Instant, RequestId, bool)>,
    /// Deferred `/tick` requests, completed in the next tick (the JS
    /// bridge's pattern: no deadline, just the per-iteration hook).
    next_tick: Vec<RequestId>,
}

impl HelloHandler {
    /// A handler; `test_routes` enables the test-only routes.
    pub fn new(test_routes: bool) -> HelloHandler {
        HelloHandler {
            test_routes,
            timers: Vec::new(),
            next_tick: Vec::new(),
        }
    }
}

impl Handler for HelloHandler {
    #[inline]
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) -> Handled {
        match req.path() {
            b"/json" => {
                res.header(b"Content-Type", b"application/json");
                res.send(br#"{"message":"Hello, World!"}"#);
            }
            b"/echo" if self.test_routes => {
                let ct = req
                    .header(b"content-type")
                    .unwrap_or(b"application/octet-stream");
                res.header(b"Content-Type", ct);
                res.send(req.body());
            }
            b"/stream" if self.test_routes => {
                res.header(b"Content-Type", b"text/plain");
                res.write(b"chunk one\n");
                res.write(b"chunk two\n");
                res.write(b"chunk three\n");
                res.end();
            }
            b"/delay" if self.test_routes => {
                let ms = req
                    .query()
                    .and_then(|q| q.strip_prefix(b"ms="))
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(100)
                    .min(60_000);
                let head = req.method() == b"HEAD";
                self.timers
                    .push((Instant::now() + Duration::from_millis(ms), req.id(), head));
                return Handled::Deferred;
            }
            b"/tick" if self.test_routes => {
                self.next_tick.push(req.id());
                return Handled::Deferred;
            }
            b"/panic" if self.test_routes => panic!("test route /panic"),
            _ => {
                res.header(b"Content-Type", b"text/plain");
                res.send(b"Hello, World!");
            }
        }
        Handled::Done
    }

    fn tick(&mut self, sink: &mut CompletionSink<'_>) {
        for id in self.next_tick.drain(..) {
            let resp =
                OwnedResponse::new(200, "ticked\n").with_header("Content-Type", "text/plain");
            sink.complete(id, resp);
        }
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        self.timers.retain(|&(at, id, _)| {
            if at > now {
                return true;
            }
            let resp =
                OwnedResponse::new(200, "delayed\n").with_header("Content-Type", "text/plain");
            sink.complete(id, resp);
            false
        });
    }

    fn cancelled(&mut self, id: RequestId) {
        self.timers.retain(|t| t.1 != id);
        self.next_tick.retain(|t| *t != id);
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.iter().map(|t| t.0).min()
    }

    fn busy(&self) -> bool {
        !self.timers.is_empty() || !self.next_tick.is_empty()
    }
}
