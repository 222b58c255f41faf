//! The sans-IO HTTP/1.1 server connection: bytes in (`read_space` +
//! `filled`), requests to the handler, bytes out (`output` + `consumed`).
//! The event loop owns the socket; this type owns framing, keep-alive,
//! pipelining, `100-continue`, response ordering for deferred requests and
//! error responses.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::parse::{parse_head, BodyKind, ChunkedDecoder, Head, Limits, ParseError, Parsed};
use crate::handler::{
    FileBody, Handled, Handler, HeaderSpan, Method, Protocol, Request, RequestId, Response,
    ResponseRef, Version,
};

/// Stop parsing pipelined requests while this much output is unsent
/// (backpressure against clients that send without reading).
pub const OUT_HIGH_WATER: usize = 256 * 1024;

/// Per-call context from the worker.
pub struct Env<'a> {
    /// The cached IMF-fixdate (29 bytes).
    pub date: &'a [u8],
    /// Request limits.
    pub limits: &'a Limits,
    /// Scratch space for header offsets (its length caps the header count).
    pub spans: &'a mut [HeaderSpan],
    /// Whether the server is shutting down (responses close the connection).
    pub shutting_down: bool,
    /// Access-log sink, if enabled: one line per response is appended.
    pub log: Option<&'a mut Vec<u8>>,
    /// Whether the connection is TLS.
    pub secure: bool,
}

/// What a request is waiting for after its head arrived.
#[derive(Debug, Clone, Copy)]
enum BodyWait {
    /// `Content-Length` body: the message ends at `start + head.len + len`.
    Length { head: Head, len: u64 },
    /// Chunked body being decoded in place.
    Chunked { head: Head, dec: ChunkedDecoder },
}

/// A response slot queued behind a deferred one.
#[derive(Debug)]
struct Pending {
    seq: u32,
    /// `None` while deferred; the serialised response when ready.
    ready: Option<Vec<u8>>,
    file: Option<FileBody>,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    /// `METHOD target` for the access log line written at completion
    /// (deferred requests, access log on).
    log: Option<Vec<u8>>,
}

/// One HTTP/1.1 server connection, without the socket.
pub struct Conn {
    /// Input buffer; `inbuf[start..end]` is unprocessed.
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// Output bytes not yet written.
    out: Vec<u8>,
    out_pos: usize,
    /// A file body to send once `out` is flushed.
    file: Option<FileBody>,
    wait: Option<BodyWait>,
    pending: VecDeque<Pending>,
    seq: u32,
    /// Set after a response that closes the connection: parse nothing more.
    stop_reading: bool,
    /// Close once everything queued is written.
    close_after_flush: bool,
    sent_continue: bool,
    peer: SocketAddr,
    slot: u32,
    generation: u32,
    /// Requests answered on this connection (for tests and stats).
    pub requests: u64,
}

/// Whether a [`Conn::process`] call did anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to do until more input arrives or output drains.
    Idle,
    /// At least one request was answered, deferred or rejected.
    Some,
}

impl Conn {
    /// A connection using the given (pooled) buffers.
    pub fn new(
        mut inbuf: Vec<u8>,
        out: Vec<u8>,
        peer: SocketAddr,
        slot: u32,
        generation: u32,
        min_in: usize,
    ) -> Conn {
        if inbuf.len() < min_in {
            inbuf.resize(min_in, 0);
        }
        Conn {
            inbuf,
            start: 0,
            end: 0,
            out,
            out_pos: 0,
            file: None,
            wait: None,
            pending: VecDeque::new(),
            seq: 0,
            stop_reading: false,
            close_after_flush: false,
            sent_continue: false,
            peer,
            slot,
            generation,
            requests: 0,
        }
    }

    /// Gives the buffers back (for the pool), leaving empty ones.
    pub fn take_buffers(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.start = 0;
        self.end = 0;
        self.out_pos = 0;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        (std::mem::take(&mut self.inbuf), out)
    }

    /// Whether the connection holds buffers.
    pub fn has_buffers(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// Installs fresh buffers after [`Conn::take_buffers`].
    pub fn set_buffers(&mut self, mut inbuf: Vec<u8>, out: Vec<u8>, min_in: usize) {
        if inbuf.len() < min_in {
            inbuf.resize(min_in, 0);
        }
        self.inbuf = inbuf;
        // A deferred completion may have queued output into an unpooled
        // buffer meanwhile; keep it.
        if self.out.is_empty() {
            self.out = out;
        }
    }

    /// Whether the buffers could be returned to the pool now (nothing
    /// buffered in either direction).
    pub fn buffers_idle(&self) -> bool {
        self.start == self.end && self.wait.is_none() && self.out.is_empty() && self.file.is_none()
    }

    /// Free space to read into (grows the buffer for a large body, up to the
    /// limits). Empty if reading should pause.
    pub fn read_space(&mut self, limits: &Limits) -> &mut [u8] {
        if self.stop_reading {
            return &mut [];
        }
        if self.end == self.inbuf.len() && self.start > 0 {
            self.compact();
        }
        if self.end == self.inbuf.len() {
            if self.file.is_some() || self.out.len() - self.out_pos > OUT_HIGH_WATER {
                // Processing is paused until the output drains: read no
                // further (backpressure).
                return &mut [];
            }
            // Grow only for what is being received: a head up to its limit
            // (plus slack so that the limit can be detected), or a body.
            let cap = match self.wait {
                Some(_) => limits.max_header_bytes + limits.max_body as usize + 8192,
                None => limits.max_header_bytes + 1024,
            };
            if self.inbuf.len() < cap {
                let want = (self.inbuf.len() * 2).clamp(self.inbuf.len() + 1, cap);
                self.inbuf.resize(want, 0);
            }
        }
        &mut self.inbuf[self.end..]
    }

    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.inbuf.copy_within(self.start..self.end, 0);
        let shift = self.start;
        self.end -= shift;
        self.start = 0;
        if let Some(BodyWait::Chunked { dec, .. }) = &mut self.wait {
            dec.pos -= shift;
            dec.out -= shift;
        }
    }

    /// Size of the input buffer (bounded by the limits; for tests).
    pub fn input_capacity(&self) -> usize {
        self.inbuf.len()
    }

    /// Records that `n` bytes were read into [`Conn::read_space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.inbuf.len());
    }

    /// Unsent output bytes.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Records that `n` output bytes were written.
    pub fn consumed(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Takes the unsent output for a send that completes later (io_uring):
    /// returns the buffer and the offset of its first unsent byte, and puts
    /// `replacement` (emptied) in its place for the responses that follow.
    pub fn swap_output(&mut self, mut replacement: Vec<u8>) -> (Vec<u8>, usize) {
        replacement.clear();
        let start = std::mem::replace(&mut self.out_pos, 0);
        (std::mem::replace(&mut self.out, replacement), start)
    }

    /// The file body to send after [`Conn::output`], if any.
    pub fn file(&mut self) -> Option<&mut FileBody> {
        if self.out_pos < self.out.len() {
            return None;
        }
        self.file.as_mut()
    }

    /// Drops the file body (sent, or failed).
    pub fn file_done(&mut self) {
        self.file = None;
        self.drain_ready();
    }

    /// Whether everything queued was written and the connection should now
    /// be closed.
    pub fn should_close(&self) -> bool {
        self.close_after_flush
            && self.out.is_empty()
            && self.file.is_none()
            && self.pending.is_empty()
            && !self.request_in_progress()
    }

    /// Whether received bytes wait to be processed.
    pub fn has_buffered_input(&self) -> bool {
        self.start < self.end
    }

    /// Whether a request is partly received (the header-read timeout runs).
    pub fn request_in_progress(&self) -> bool {
        !self.stop_reading && (self.start < self.end || self.wait.is_some())
    }

    /// Whether the head of the current partial request is complete (so the
    /// body timeout, not the header timeout, applies).
    pub fn reading_body(&self) -> bool {
        self.wait.is_some()
    }

    /// Whether deferred requests are outstanding.
    pub fn has_deferred(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether there is nothing in progress at all (idle keep-alive).
    pub fn is_idle(&self) -> bool {
        !self.request_in_progress()
            && self.pending.is_empty()
            && self.out.is_empty()
            && self.file.is_none()
    }

    /// Whether the connection will close after its queued output.
    pub fn closing(&self) -> bool {
        self.close_after_flush
    }

    /// The peer closed its side: answer nothing more, close once queued
    /// responses are written.
    pub fn peer_closed(&mut self) {
        self.stop_reading = true;
        self.close_after_flush = true;
        self.wait = None;
        self.start = self.end;
    }

    /// Stop after the responses in flight (graceful shutdown of an idle or
    /// mid-request connection is decided by the worker).
    pub fn close_when_done(&mut self) {
        self.close_after_flush = true;
    }

    /// The header-read timeout fired: queue `408` and close.
    pub fn timeout(&mut self, date: &[u8]) {
        if self.pending.is_empty() && self.out.is_empty() && self.file.is_none() {
            let mut res = Response::new(&mut self.out, false, false, false, date);
            res.status(408).header(b"Content-Type", b"text/plain");
            res.send(b"request timeout\n");
        }
        self.stop_reading = true;
        self.close_after_flush = true;
        self.wait = None;
        self.start = self.end;
    }

    /// Ids of the deferred requests that will never be answered (call when
    /// the connection dies).
    pub fn deferred_ids(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.pending
            .iter()
            .filter(|p| p.ready.is_none())
            .map(|p| RequestId {
                slot: self.slot,
                generation: self.generation,
                seq: p.seq,
            })
    }

    /// Completes a deferred request. `false` if `seq` is not deferred here.
    pub fn complete(
        &mut self,
        seq: u32,
        resp: ResponseRef<'_>,
        date: &[u8],
        log: Option<&mut Vec<u8>>,
    ) -> bool {
        let Some(idx) = self
            .pending
            .iter()
            .position(|p| p.seq == seq && p.ready.is_none())
        else {
            return false;
        };
        let p = &self.pending[idx];
        let (head_only, http10, keep_alive) = (p.head_only, p.http10, p.keep_alive);
        // The oldest outstanding response goes straight to the output (the
        // common case: one request at a time, or completions in order);
        // others wait in the queue.
        let direct = idx == 0 && self.file.is_none();
        let mut held = Vec::new();
        let target = if direct {
            &mut self.out
        } else {
            held.reserve(128 + resp.body.len());
            &mut held
        };
        let mut res = Response::new(target, head_only, http10, keep_alive, date);
        let status = if (200..=999).contains(&resp.status) {
            resp.status
        } else {
            500
        };
        res.status(status);
        resp.headers.for_each(&mut |n, v| {
            res.header(n, v);
        });
        res.send(resp.body);
        if let (Some(log), Some(line)) = (log, &self.pending[idx].log) {
            log_line(log, self.peer, line, b"", status, resp.body.len() as u64);
        }
        if direct {
            self.pending.pop_front();
            if !keep_alive {
                self.close_after_flush = true;
                self.stop_reading = true;
                self.pending.clear();
            }
        } else {
            self.pending[idx].ready = Some(held);
        }
        self.drain_ready();
        true
    }

    /// Moves ready responses at the front of the queue to the output.
    fn drain_ready(&mut self) {
        while self.file.is_none() {
            match self.pending.front() {
                Some(p) if p.ready.is_some() => {}
                _ => break,
            }
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            if let Some(bytes) = p.ready.take() {
                self.out.extend_from_slice(&bytes);
            }
            self.file = p.file.take();
            if !p.keep_alive {
                self.close_after_flush = true;
                self.stop_reading = true;
                // Responses after a closing one are never sent.
                self.pending.clear();
            }
        }
    }

    /// Parses and answers every complete request in the input buffer.
    pub fn process(&mut self, handler: &mut dyn Handler, env: &mut Env<'_>) -> Progress {
        let mut progress = Progress::Idle;
        // Start offset of the head whose fields are in `env.spans`.
        let mut spans_for = usize::MAX;
        loop {
            if self.stop_reading
                || self.file.is_some()
                || self.out.len() - self.out_pos > OUT_HIGH_WATER
            {
                break;
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                break;
            }
            let (head, body, msg_end) = match self.wait {
                None => {
                    let avail = &self.inbuf[self.start..self.end];
                    let head = match parse_head(avail, env.limits, env.spans) {
                        Ok(Parsed::Complete(h)) => {
                            spans_for = self.start;
                            h
                        }
                        Ok(Parsed::Partial) => break,
                        Err(e) => {
                            self.reject(e, env);
                            progress = Progress::Some;
                            break;
                        }
                    };
                    self.sent_continue = false;
                    let body_start = self.start + head.len;
                    match head.body {
                        BodyKind::None => (head, (body_start, body_start), body_start),
                        BodyKind::Length(len) => {
                            self.wait = Some(BodyWait::Length { head, len });
                            continue;
                        }
                        BodyKind::Chunked => {
                            self.wait = Some(BodyWait::Chunked {
                                head,
                                dec: ChunkedDecoder::new(body_start),
                            });
                            continue;
                        }
                    }
                }
                Some(BodyWait::Length { head, len }) => {
                    let body_start = self.start + head.len;
                    let have = (self.end - body_start) as u64;
                    if have < len {
                        self.maybe_continue(head, env);
                        break;
                    }
                    let body_end = body_start + len as usize;
                    self.wait = None;
                    (head, (body_start, body_end), body_end)
                }
                Some(BodyWait::Chunked { head, mut dec }) => {
                    let limit = self.end;
                    match dec.advance(&mut self.inbuf[..limit], env.limits) {
                        Ok(true) => {
                            self.wait = None;
                            let body_start = self.start + head.len;
                            (head, (body_start, dec.out), dec.pos)
                        }
                        Ok(false) => {
                            // Reclaim the gap between decoded data and the
                            // unread encoded bytes.
                            if dec.pos > dec.out {
                                self.inbuf.copy_within(dec.pos..self.end, dec.out);
                                self.end -= dec.pos - dec.out;
                                dec.pos = dec.out;
                            }
                            self.wait = Some(BodyWait::Chunked { head, dec });
                            self.maybe_continue(head, env);
                            break;
                        }
                        Err(e) => {
                            self.wait = None;
                            self.reject(e, env);
                            progress = Progress::Some;
                            break;
                        }
                    }
                }
            };
            if spans_for != self.start {
                // The head was parsed in an earlier call: refill the spans.
                let head_bytes = &self.inbuf[self.start..self.start + head.len];
                if !matches!(
                    parse_head(head_bytes, env.limits, env.spans),
                    Ok(Parsed::Complete(_))
                ) {
                    self.reject(ParseError::InvalidHeaderName, env);
                    break;
                }
            }
            self.dispatch(handler, env, head, body, msg_end);
            progress = Progress::Some;
        }
        progress
    }

    fn maybe_continue(&mut self, head: Head, env: &Env<'_>) {
        if head.expect_continue
            && !self.sent_continue
            && self.pending.is_empty()
            && head.version == Version::Http11
        {
            let _ = env;
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.sent_continue = true;
        }
    }

    /// Queues an error response and stops reading.
    fn reject(&mut self, e: ParseError, env: &mut Env<'_>) {
        let holding = !self.pending.is_empty();
        let mut buf = Vec::new();
        let target: &mut Vec<u8> = if holding { &mut buf } else { &mut self.out };
        let mut res = Response::new(target, false, false, false, env.date);
        res.status(e.status())
            .header(b"Content-Type", b"text/plain");
        let msg = e.message();
        res.write_body_parts(&[msg.as_bytes(), b"\n"]);
        if holding {
            self.pending.push_back(Pending {
                seq: self.seq,
                ready: Some(buf),
                file: None,
                head_only: false,
                http10: false,
                keep_alive: false,
                log: None,
            });
        }
        if let Some(log) = env.log.as_deref_mut() {
            log_line(log, self.peer, b"-", b"-", e.status(), 0);
        }
        self.seq = self.seq.wrapping_add(1);
        self.stop_reading = true;
        self.close_after_flush = true;
        self.start = self.end;
    }

    fn dispatch(
        &mut self,
        handler: &mut dyn Handler,
        env: &mut Env<'_>,
        head: Head,
        body: (usize, usize),
        msg_end: usize,
    ) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.requests += 1;
        let id = RequestId {
            slot: self.slot,
            generation: self.generation,
            seq,
        };
        let base = self.start;
        let hb = &self.inbuf[base..base + head.len];
        let method = &hb[head.method.0 as usize..head.method.1 as usize];
        let target = &hb[head.target.0 as usize..head.target.1 as usize];
        let req = Request::from_parts(
            id,
            hb,
            method,
            target,
            head.version,
            &env.spans[..head.headers],
            &self.inbuf[body.0..body.1],
            self.peer,
            Protocol::Http11,
            env.secure,
        );
        let head_only = Method::from_bytes(method) == Method::Head;
        let http10 = head.version == Version::Http10;
        let keep_alive = head.keep_alive && !env.shutting_down;
        let holding = !self.pending.is_empty();
        let mut held = Vec::new();
        let out: &mut Vec<u8> = if holding { &mut held } else { &mut self.out };
        let mut res = Response::new(out, head_only, http10, keep_alive, env.date);
        let handled = catch_unwind(AssertUnwindSafe(|| handler.handle(&req, &mut res)));
        let handled = match handled {
            Ok(h) => h,
            Err(_) => {
                res.discard_all();
                res.status(500).close();
                res.send(b"internal server error\n");
                Handled::Done
            }
        };
        let (status, body_len) = (res.status, res.body_len);
        let keep_alive;
        match handled {
            Handled::Done => {
                if !res.is_finished() {
                    res.end();
                }
                keep_alive = res.keep_alive;
                let file = res.file.take();
                if holding {
                    self.pending.push_back(Pending {
                        seq,
                        ready: Some(held),
                        file,
                        head_only,
                        http10,
                        keep_alive,
                        log: None,
                    });
                } else {
                    self.file = file;
                    if !keep_alive {
                        self.close_after_flush = true;
                    }
                }
            }
            Handled::Deferred => {
                res.discard();
                keep_alive = res.keep_alive;
                let log = env.log.is_some().then(|| {
                    let mut l = Vec::with_capacity(method.len() + 1 + target.len().min(512));
                    l.extend_from_slice(method);
                    l.push(b' ');
                    l.extend(target.iter().take(512));
                    l
                });
                self.pending.push_back(Pending {
                    seq,
                    ready: None,
                    file: None,
                    head_only,
                    http10,
                    keep_alive,
                    log,
                });
            }
        }
        if let Some(log) = env.log.as_deref_mut() {
            // Deferred requests are logged when they complete.
            if handled == Handled::Done {
                log_line(log, self.peer, method, target, status, body_len);
            }
        }
        if !keep_alive {
            self.stop_reading = true;
            self.start = self.end;
        } else {
            self.start = msg_end;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// Appends one access-log line: `peer "METHOD target" status bytes`.
fn log_line(
    log: &mut Vec<u8>,
    peer: SocketAddr,
    method: &[u8],
    target: &[u8],
    status: u16,
    bytes: u64,
) {
    use std::io::Write;
    let _ = write!(log, "{peer} \"");
    log.extend_from_slice(method);
    if !target.is_empty() {
        log.push(b' ');
        log.extend(target.iter().take(512));
    }
    let _ = writeln!(log, "\" {status} {bytes}");
}

impl Response<'_> {
    /// Sends a body made of several parts (error responses).
    pub(crate) fn write_body_parts(&mut self, parts: &[&[u8]]) {
        let mut all = [0u8; 128];
        let mut n = 0;
        for p in parts {
            let take = p.len().min(all.len() - n);
            all[n..n + take].copy_from_slice(&p[..take]);
            n += take;
        }
        self.send(&all[..n]);
    }
}
