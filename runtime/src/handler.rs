//! The handler interface: what the runtime hands to application code and
//! what it expects back. Rust handlers and the JS bridge implement the same
//! traits.
//!
//! # Life of a request
//!
//! 1. A worker thread owns its handler: [`HandlerFactory::create`] is called
//!    once per worker, on that worker's thread, so a handler need not be
//!    `Send` (a JS VM is per thread).
//! 2. For every complete request the worker calls [`Handler::handle`] with a
//!    [`Request`] view (slices of the connection's input buffer, nothing is
//!    copied) and a [`Response`] writer that serialises straight into the
//!    connection's output buffer. The view is only valid during the call.
//! 3. `handle` either finishes the response and returns [`Handled::Done`], or
//!    returns [`Handled::Deferred`] and keeps [`Request::id`]. A deferred
//!    request is completed later, from [`Handler::tick`], through the
//!    [`CompletionSink`], with an owned [`OwnedResponse`].
//! 4. After all I/O events of one loop iteration were processed, the worker
//!    calls [`Handler::tick`] exactly once (also when the iteration was woken
//!    by a timeout only). The JS bridge queues requests in `handle` and enters
//!    the VM once per tick here.
//! 5. Before it blocks in `epoll_wait` the worker asks
//!    [`Handler::next_deadline`] and wakes up no later than that instant (JS
//!    timers); the wake-up runs `tick`.
//! 6. If a connection dies (peer reset, timeout, shutdown) while some of its
//!    requests are deferred, the worker calls [`Handler::cancelled`] for each
//!    of them. Completing a stale id later is harmless: it is ignored and
//!    [`CompletionSink::complete`] returns `false`.
//!
//! Responses on one connection always leave in request order: a synchronous
//! response to a pipelined request that follows a deferred one is held back
//! until the deferred one completes.
//!
//! # What the runtime writes for you
//!
//! The status line (always `HTTP/1.1`), `Date` (cached, refreshed once a
//! second), `Server: marg`, `Content-Length` (or `Transfer-Encoding: chunked`
//! when the handler streams with [`Response::write`]), and `Connection`.
//! Handler headers with those names (`content-length`, `transfer-encoding`,
//! `connection`, `date`, `server`) are dropped, as are headers whose name is
//! not a token or whose value contains CR, LF or other control bytes (no
//! response splitting from application code). For `HEAD` requests the body
//! bytes are dropped but the `Content-Length` of the body that a `GET` would
//! have got is sent.
//!
//! # Cost
//!
//! A Rust handler answering synchronously with [`Response::send`] causes no
//! heap allocation and takes no lock on the keep-alive path (checked by the
//! counting-allocator test in `runtime/tests/no_alloc.rs`).

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::net::SocketAddr;
use std::time::Instant;

/// Which protocol carried the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1 over TCP (see [`Request::version`]).
    Http11,
    /// HTTP/2 (not served yet).
    H2,
    /// HTTP/3 (not served yet).
    H3,
}

impl Protocol {
    /// The ALPN-style name: `http/1.1`, `h2` or `h3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http11 => "http/1.1",
            Protocol::H2 => "h2",
            Protocol::H3 => "h3",
        }
    }
}

/// The HTTP version of the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: keep-alive only on request, no chunked responses.
    Http10,
    /// `HTTP/1.1`.
    Http11,
    /// HTTP/2 (not served yet).
    H2,
    /// HTTP/3 (not served yet).
    H3,
}

impl Version {
    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` or `HTTP/3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::H2 => "HTTP/2",
            Version::H3 => "HTTP/3",
        }
    }
}

/// The request method, classified; [`Request::method`] has the exact bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Trace,
    /// Any other token (methods are case-sensitive, RFC 9110 §9.1).
    Other,
}

impl Method {
    /// Classifies a method token.
    #[inline]
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}

/// Where one header field lies inside [`Request::raw_head`]: byte offsets,
/// `name.0..name.1` and `value.0..value.1`. The value has optional
/// whitespace trimmed. Exposed so that a bridge can ship the head and the
/// offsets to another runtime without building per-header objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    /// Start and end of the field name.
    pub name: (u32, u32),
    /// Start and end of the field value (OWS trimmed).
    pub value: (u32, u32),
}

/// Identifies one request of one connection of one worker, for deferred
/// completion. `Copy` and stale-safe: it carries the connection slot, the
/// slot's generation (bumped whenever the slot is reused) and the request's
/// sequence number on its connection, so a completion for a connection that
/// has gone (or a request that was already answered) is detected and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) seq: u32,
}

impl RequestId {
    /// The id as a number triple `(slot, generation, seq)`, e.g. for a
    /// JS-side map key.
    pub fn parts(self) -> (u32, u32, u32) {
        (self.slot, self.generation, self.seq)
    }

    /// Rebuilds an id from [`RequestId::parts`].
    pub fn from_parts(slot: u32, generation: u32, seq: u32) -> RequestId {
        RequestId {
            slot,
            generation,
            seq,
        }
    }
}

/// A read-only view of one parsed request. Every byte slice points into the
/// connection's input buffer; nothing is copied. Valid only during
/// [`Handler::handle`]: a handler that defers must copy what it needs.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub(crate) id: RequestId,
    pub(crate) head: &'a [u8],
    pub(crate) method: &'a [u8],
    pub(crate) target: &'a [u8],
    pub(crate) path: &'a [u8],
    pub(crate) query: Option<&'a [u8]>,
    pub(crate) version: Version,
    pub(crate) headers: &'a [HeaderSpan],
    pub(crate) body: &'a [u8],
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Protocol,
    pub(crate) secure: bool,
}

impl<'a> Request<'a> {
    /// Builds a request view from parts; for tests and for protocol layers
    /// outside this crate. `headers` are offsets into `head`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        id: RequestId,
        head: &'a [u8],
        method: &'a [u8],
        target: &'a [u8],
        version: Version,
        headers: &'a [HeaderSpan],
        body: &'a [u8],
        peer: SocketAddr,
        protocol: Protocol,
        secure: bool,
    ) -> Request<'a> {
        let (path, query) = split_target(target);
        Request {
            id,
            head,
            method,
            target,
            path,
            query,
            version,
            headers,
            body,
            peer,
            protocol,
            secure,
        }
    }

    /// The id to keep when returning [`Handled::Deferred`].
    #[inline]
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The method token exactly as sent (`GET`, `POST`, ...).
    #[inline]
    pub fn method(&self) -> &'a [u8] {
        self.method
    }

    /// The method, classified.
    #[inline]
    pub fn method_kind(&self) -> Method {
        Method::from_bytes(self.method)
    }

    /// The request-target exactly as sent: origin-form (`/a?b`),
    /// absolute-form (`http://host/a?b`), authority-form (`CONNECT`) or `*`.
    #[inline]
    pub fn target(&self) -> &'a [u8] {
        self.target
    }

    /// The path of the target, without the query (for absolute-form targets
    /// the scheme and authority are stripped; `/` if the path is empty).
    /// Not percent-decoded.
    #[inline]
    pub fn path(&self) -> &'a [u8] {
        self.path
    }

    /// The query after `?` (without the `?`), if any. Not decoded.
    #[inline]
    pub fn query(&self) -> Option<&'a [u8]> {
        self.query
    }

    /// The HTTP version of the request.
    #[inline]
    pub fn version(&self) -> Version {
        self.version
    }

    /// Iterates over the header fields in the order received, as
    /// `(name, value)` byte slices (value with OWS trimmed). Names keep
    /// their case; compare with [`eq_ignore_ascii_case`](kernels::http1::eq_ignore_ascii_case)
    /// or use [`Request::header`].
    #[inline]
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            head: self.head,
            spans: self.headers.iter(),
        }
    }

    /// The value of the first header called `name` (ASCII case-insensitive).
    #[inline]
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| kernels::http1::eq_ignore_ascii_case(n, name))
            .map(|(_, v)| v)
    }

    /// The raw header block (request line and fields, up to and including
    /// the final CRLF CRLF) as received. [`Request::header_spans`] index it.
    #[inline]
    pub fn raw_head(&self) -> &'a [u8] {
        self.head
    }

    /// Offsets of every header field in [`Request::raw_head`].
    #[inline]
    pub fn header_spans(&self) -> &'a [HeaderSpan] {
        self.headers
    }

    /// The request body: the Content-Length bytes, or the de-chunked body
    /// (chunk extensions and trailers removed). Empty if there is none.
    /// Always complete: the handler is called after the whole body arrived.
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The peer's address.
    #[inline]
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The protocol that carried the request.
    #[inline]
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the request came over TLS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("target", &String::from_utf8_lossy(self.target))
            .field("version", &self.version)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("peer", &self.peer)
            .finish()
    }
}

/// Splits a request-target into path and query. Absolute-form
/// (`scheme://authority/path?q`) loses scheme and authority; an empty path
/// becomes `/`.
pub(crate) fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut rest = target;
    if let Some(i) = find_scheme_end(rest) {
        // absolute-form: skip "scheme://authority"
        let after = &rest[i + 3..];
        let end = after
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    (path, query)
}

fn find_scheme_end(t: &[u8]) -> Option<usize> {
    if t.first().is_none_or(|b| !b.is_ascii_alphabetic()) {
        return None;
    }
    let i = t
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'))?;
    t[i..].starts_with(b"://").then_some(i)
}

/// Iterator over `(name, value)` header pairs; see [`Request::headers`].
#[derive(Clone)]
pub struct Headers<'a> {
    head: &'a [u8],
    spans: std::slice::Iter<'a, HeaderSpan>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let s = self.spans.next()?;
        let name = self
            .head
            .get(s.name.0 as usize..s.name.1 as usize)
            .unwrap_or_default();
        let value = self
            .head
            .get(s.value.0 as usize..s.value.1 as usize)
            .unwrap_or_default();
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

/// What [`Handler::handle`] did with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The response was written (or will be finished by the runtime: a
    /// response left unfinished is ended with what was written; one never
    /// started becomes `200` with an empty body).
    Done,
    /// The handler kept [`Request::id`] and will complete it later through
    /// the [`CompletionSink`] in [`Handler::tick`]. Anything written to the
    /// [`Response`] is discarded.
    Deferred,
}

/// A header name or value of an [`OwnedResponse`]: borrowed when it is a
/// constant (`Content-Type: application/json`, ...), so that the common
/// headers cost no allocation.
pub type HeaderBytes = Cow<'static, [u8]>;

/// What [`OwnedResponse::with_header`] accepts: constants (`&'static str`,
/// byte strings) are borrowed, `String`/`Vec<u8>` moved.
pub trait IntoHeaderBytes {
    /// The bytes.
    fn into_header_bytes(self) -> HeaderBytes;
}

impl IntoHeaderBytes for &'static str {
    fn into_header_bytes(self) -> HeaderBytes {
        Cow::Borrowed(self.as_bytes())
    }
}

impl IntoHeaderBytes for &'static [u8] {
    fn into_header_bytes(self) -> HeaderBytes {
        Cow::Borrowed(self)
    }
}

impl<const N: usize> IntoHeaderBytes for &'static [u8; N] {
    fn into_header_bytes(self) -> HeaderBytes {
        Cow::Borrowed(self)
    }
}

impl IntoHeaderBytes for String {
    fn into_header_bytes(self) -> HeaderBytes {
        Cow::Owned(self.into_bytes())
    }
}

impl IntoHeaderBytes for Vec<u8> {
    fn into_header_bytes(self) -> HeaderBytes {
        Cow::Owned(self)
    }
}

impl IntoHeaderBytes for HeaderBytes {
    fn into_header_bytes(self) -> HeaderBytes {
        self
    }
}

/// An owned response, for deferred completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedResponse {
    /// Status code (200..=999; anything else becomes 500).
    pub status: u16,
    /// Header fields, in order. The runtime-owned names listed in the module
    /// docs are dropped.
    pub headers: Vec<(HeaderBytes, HeaderBytes)>,
    /// The body; sent with `Content-Length` (dropped, length kept, for HEAD).
    pub body: Vec<u8>,
}

impl OwnedResponse {
    /// A response with a status and body and no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> OwnedResponse {
        OwnedResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: impl IntoHeaderBytes, value: impl IntoHeaderBytes) -> Self {
        self.headers
            .push((name.into_header_bytes(), value.into_header_bytes()));
        self
    }
}

impl OwnedResponse {
    /// This response, borrowed.
    pub fn as_ref(&self) -> ResponseRef<'_> {
        ResponseRef {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// The header fields of a [`ResponseRef`], visited in order.
pub trait HeaderList {
    /// Calls `f(name, value)` for each field.
    fn for_each(&self, f: &mut dyn FnMut(&[u8], &[u8]));
}

impl HeaderList for Vec<(HeaderBytes, HeaderBytes)> {
    fn for_each(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in self {
            f(n, v);
        }
    }
}

impl<const N: usize> HeaderList for [(&[u8], &[u8]); N] {
    fn for_each(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in self {
            f(n, v);
        }
    }
}

/// A response borrowed from the handler for the duration of one
/// [`CompletionSink::complete_ref`] call: the runtime copies it into the
/// connection's output, so a handler can complete from its own buffers
/// without allocating per response.
#[derive(Clone, Copy)]
pub struct ResponseRef<'a> {
    /// Status code (200..=999; anything else becomes 500).
    pub status: u16,
    /// Header fields (the runtime-owned names are dropped, as for
    /// [`OwnedResponse`]).
    pub headers: &'a dyn HeaderList,
    /// The body.
    pub body: &'a [u8],
}

impl ResponseRef<'_> {
    /// An owned copy.
    pub fn to_owned_response(&self) -> OwnedResponse {
        let mut headers = Vec::new();
        self.headers.for_each(&mut |n, v| {
            headers.push((Cow::Owned(n.to_vec()), Cow::Owned(v.to_vec())));
        });
        OwnedResponse {
            status: self.status,
            headers,
            body: self.body.to_vec(),
        }
    }
}

impl fmt::Debug for ResponseRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseRef")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Completes deferred requests; handed to [`Handler::tick`].
pub struct CompletionSink<'a> {
    pub(crate) inner: &'a mut dyn Complete,
}

/// The worker's side of a [`CompletionSink`] (implemented by the runtime;
/// public only so that tests and other protocol layers can provide one).
pub trait Complete {
    /// See [`CompletionSink::complete_ref`].
    fn complete(&mut self, id: RequestId, response: ResponseRef<'_>) -> bool;
}

impl<'a> CompletionSink<'a> {
    /// Wraps a [`Complete`] implementation.
    pub fn new(inner: &'a mut dyn Complete) -> CompletionSink<'a> {
        CompletionSink { inner }
    }

    /// Completes the deferred request `id` with `response`. Returns `false`
    /// (and drops the response) if the id is stale: its connection has
    /// closed, or the request was already completed.
    #[inline]
    pub fn complete(&mut self, id: RequestId, response: OwnedResponse) -> bool {
        self.inner.complete(id, response.as_ref())
    }

    /// [`CompletionSink::complete`] with a borrowed response (copied into
    /// the connection's output before this returns).
    #[inline]
    pub fn complete_ref(&mut self, id: RequestId, response: ResponseRef<'_>) -> bool {
        self.inner.complete(id, response)
    }
}

/// Application code, one instance per worker thread.
pub trait Handler {
    /// Answers one request: either writes `res` (synchronously) and returns
    /// [`Handled::Done`], or keeps `req.id()` and returns
    /// [`Handled::Deferred`]. Must not block.
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) -> Handled;

    /// Called once per event-loop iteration, after all I/O events of that
    /// iteration were processed (and after a wake-up for
    /// [`Handler::next_deadline`]). Complete deferred requests here.
    fn tick(&mut self, sink: &mut CompletionSink<'_>) {
        let _ = sink;
    }

    /// The deferred request `id` can no longer be answered (its connection
    /// closed). Completing it later is ignored.
    fn cancelled(&mut self, id: RequestId) {
        let _ = id;
    }

    /// The next instant at which the handler wants [`Handler::tick`] to run
    /// even without I/O (timers). Asked before every blocking wait.
    fn next_deadline(&mut self) -> Option<Instant> {
        None
    }

    /// Whether the handler still has work that should delay a graceful
    /// shutdown (e.g. deferred requests). The worker stops waiting at the
    /// shutdown deadline regardless.
    fn busy(&self) -> bool {
        false
    }
}

/// Creates one [`Handler`] per worker thread, on that thread.
pub trait HandlerFactory: Send + Sync {
    /// Creates the handler of worker `worker` (0-based). An error stops the
    /// server with the message.
    fn create(&self, worker: usize) -> Result<Box<dyn Handler>, String>;
}

/// Any `Fn(usize) -> Result<Box<dyn Handler>, String>` is a factory.
impl<F> HandlerFactory for F
where
    F: Fn(usize) -> Result<Box<dyn Handler>, String> + Send + Sync,
{
    fn create(&self, worker: usize) -> Result<Box<dyn Handler>, String> {
        self(worker)
    }
}

/// A body to be sent from a file with `sendfile(2)` after the head.
#[derive(Debug)]
pub struct FileBody {
    /// The open file.
    pub file: File,
    /// Next byte to send.
    pub offset: u64,
    /// Bytes left to send.
    pub len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// Nothing written yet.
    Fresh,
    /// Status line and fixed headers written; handler headers may follow.
    Head,
    /// Head finished with `Transfer-Encoding: chunked` (or close-delimited
    /// for HTTP/1.0); chunks may follow.
    Streaming,
    /// The response is complete.
    Done,
}

/// Serialises one response straight into the connection's output buffer.
///
/// Call order: [`status`](Response::status) (optional, default 200), any
/// number of [`header`](Response::header), then exactly one of
/// [`send`](Response::send), [`send_file`](Response::send_file), or
/// [`write`](Response::write)... + [`end`](Response::end). Calls out of
/// order are ignored (a status after the first header, headers after the
/// body started), never a panic.
pub struct Response<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) start: usize,
    pub(crate) status: u16,
    state: WriteState,
    pub(crate) head_only: bool,
    pub(crate) http10: bool,
    pub(crate) keep_alive: bool,
    date: &'a [u8],
    pub(crate) file: Option<FileBody>,
    /// Body bytes of the response (what a GET would carry), for logging.
    pub(crate) body_len: u64,
}

impl<'a> Response<'a> {
    /// A writer appending to `out`. `head_only` for HEAD requests, `http10`
    /// for HTTP/1.0 clients (no chunked encoding), `keep_alive` whether the
    /// connection stays open after this response, `date` the 29-byte
    /// IMF-fixdate.
    pub fn new(
        out: &'a mut Vec<u8>,
        head_only: bool,
        http10: bool,
        keep_alive: bool,
        date: &'a [u8],
    ) -> Response<'a> {
        let start = out.len();
        Response {
            out,
            start,
            status: 200,
            state: WriteState::Fresh,
            head_only,
            http10,
            keep_alive,
            date,
            file: None,
            body_len: 0,
        }
    }

    /// Sets the status code (200..=999; others are ignored); only before
    /// the first header.
    #[inline]
    pub fn status(&mut self, code: u16) -> &mut Self {
        if self.state == WriteState::Fresh && (200..=999).contains(&code) {
            self.status = code;
        }
        self
    }

    /// The status code that was set (200 by default).
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// Asks the runtime to close the connection after this response.
    #[inline]
    pub fn close(&mut self) -> &mut Self {
        if self.state == WriteState::Fresh || self.state == WriteState::Head {
            self.keep_alive = false;
        }
        self
    }

    /// Whether the request was `HEAD` (body bytes will be dropped).
    #[inline]
    pub fn is_head(&self) -> bool {
        self.head_only
    }

    /// Whether the response is complete.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.state == WriteState::Done
    }

    /// Appends a header field. Ignored after the body started, for
    /// runtime-owned names, for a name that is not a token and for a value
    /// with CR, LF or other control bytes.
    #[inline]
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        if self.state == WriteState::Fresh {
            self.write_status_line();
        }
        if self.state != WriteState::Head || !valid_response_header(name, value) {
            return self;
        }
        self.out.reserve(name.len() + value.len() + 4);
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Finishes the response with `body` (sent with `Content-Length`).
    #[inline]
    pub fn send(&mut self, body: &[u8]) {
        if self.state == WriteState::Fresh {
            self.write_status_line();
        }
        if self.state != WriteState::Head {
            return;
        }
        self.finish_head(Some(body.len() as u64));
        if !self.head_only {
            self.out.extend_from_slice(body);
        }
        self.body_len = body.len() as u64;
        self.state = WriteState::Done;
    }

    /// Finishes the response with `len` bytes of `file` from `offset`, sent
    /// with `sendfile(2)` after the head. The file is closed afterwards.
    pub fn send_file(&mut self, file: File, offset: u64, len: u64) {
        if self.state == WriteState::Fresh {
            self.write_status_line();
        }
        if self.state != WriteState::Head {
            return;
        }
        self.finish_head(Some(len));
        if !self.head_only && len > 0 {
            self.file = Some(FileBody { file, offset, len });
        }
        self.body_len = len;
        self.state = WriteState::Done;
    }

    /// Streams a piece of the body. The first call ends the head with
    /// `Transfer-Encoding: chunked` (HTTP/1.0: no length, the connection
    /// closes after the body). Empty chunks are skipped.
    pub fn write(&mut self, chunk: &[u8]) {
        if self.state == WriteState::Fresh {
            self.write_status_line();
        }
        if self.state == WriteState::Head {
            self.finish_head(None);
            self.state = WriteState::Streaming;
        }
        if self.state != WriteState::Streaming || chunk.is_empty() {
            return;
        }
        self.body_len += chunk.len() as u64;
        if self.head_only {
            return;
        }
        if self.http10 {
            self.out.extend_from_slice(chunk);
            return;
        }
        write_hex(self.out, chunk.len() as u64);
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(chunk);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Ends the response: the last chunk of a streamed body, or an empty
    /// body if nothing was sent.
    pub fn end(&mut self) {
        match self.state {
            WriteState::Fresh | WriteState::Head => self.send(b""),
            WriteState::Streaming => {
                if !self.head_only && !self.http10 {
                    self.out.extend_from_slice(b"0\r\n\r\n");
                }
                self.state = WriteState::Done;
            }
            WriteState::Done => {}
        }
    }

    /// Discards everything written so far (used for deferred requests).
    pub(crate) fn discard(&mut self) {
        self.out.truncate(self.start);
        self.file = None;
        self.state = WriteState::Done;
    }

    /// Discards everything written so far and starts over (after a handler
    /// panicked).
    pub(crate) fn discard_all(&mut self) {
        self.out.truncate(self.start);
        self.file = None;
        self.state = WriteState::Fresh;
        self.status = 200;
        self.body_len = 0;
    }

    fn write_status_line(&mut self) {
        let reason = reason_phrase(self.status);
        let out = &mut *self.out;
        out.reserve(64 + reason.len() + self.date.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        let s = self.status;
        out.extend_from_slice(&[
            b'0' + (s / 100 % 10) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\nServer: marg\r\nDate: ");
        out.extend_from_slice(self.date);
        out.extend_from_slice(b"\r\n");
        self.state = WriteState::Head;
    }

    /// Writes the framing headers and the blank line. `len: None` means
    /// streaming.
    fn finish_head(&mut self, len: Option<u64>) {
        let no_body_status = self.status < 200 || self.status == 204 || self.status == 304;
        match len {
            Some(n) => {
                // RFC 9110 §8.6: no Content-Length in 204; in 304 it would
                // have to match the selected representation, so omit it.
                if !no_body_status {
                    self.out.extend_from_slice(b"Content-Length: ");
                    write_decimal(self.out, n);
                    self.out.extend_from_slice(b"\r\n");
                }
            }
            None => {
                if self.http10 {
                    self.keep_alive = false;
                } else if !no_body_status {
                    self.out
                        .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
            }
        }
        if !self.keep_alive {
            self.out.extend_from_slice(b"Connection: close\r\n\r\n");
        } else if self.http10 {
            self.out
                .extend_from_slice(b"Connection: keep-alive\r\n\r\n");
        } else {
            self.out.extend_from_slice(b"\r\n");
        }
        if no_body_status {
            // Never a body for these, whatever the handler passes.
            self.head_only = true;
        }
    }
}

/// Whether a handler-supplied header may be written.
#[inline]
fn valid_response_header(name: &[u8], value: &[u8]) -> bool {
    if name.is_empty() || kernels::http1::scan_token(name) != name.len() {
        return false;
    }
    if kernels::http1::scan_field_value(value) != value.len() {
        return false;
    }
    let owned: &[u8] = match name.len() {
        4 => b"date",
        6 => b"server",
        10 => b"connection",
        14 => b"content-length",
        17 => b"transfer-encoding",
        _ => return true,
    };
    !kernels::http1::eq_ignore_ascii_case(name, owned)
}

/// Appends `n` in decimal.
#[inline]
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` in lowercase hex.
#[inline]
pub(crate) fn write_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The reason phrase of a status code (empty for unknown codes, which
/// RFC 9112 §4 allows).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn send_writes_framing() {
        let mut out = Vec::new();
        let mut r = Response::new(&mut out, false, false, true, DATE);
        r.header(b"Content-Type", b"text/plain")
            .header(b"content-length", b"99");
        r.send(b"hi");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: marg\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn head_and_chunked() {
        let mut out = Vec::new();
        let mut r = Response::new(&mut out, true, false, false, DATE);
        r.status(404).send(b"nope");
        assert!(out.ends_with(b"Content-Length: 4\r\nConnection: close\r\n\r\n"));
        assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));

        let mut out = Vec::new();
        let mut r = Response::new(&mut out, false, false, true, DATE);
        r.write(b"hello");
        r.write(b"");
        r.write(b" world!!!!!!");
        r.end();
        assert!(out.ends_with(
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nc\r\n world!!!!!!\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn rejects_injection() {
        let mut out = Vec::new();
        let mut r = Response::new(&mut out, false, false, true, DATE);
        r.header(b"X", b"a\r\nSet-Cookie: x")
            .header(b"Bad Name", b"v")
            .header(b"Ok", b"v");
        r.end();
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("Set-Cookie"));
        assert!(!s.contains("Bad Name"));
        assert!(s.contains("Ok: v\r\n"));
    }

    #[test]
    fn targets() {
        assert_eq!(split_target(b"/a/b?x=1"), (&b"/a/b"[..], Some(&b"x=1"[..])));
        assert_eq!(
            split_target(b"http://h:80/p?q"),
            (&b"/p"[..], Some(&b"q"[..]))
        );
        assert_eq!(split_target(b"http://h"), (&b"/"[..], None));
        assert_eq!(split_target(b"*"), (&b"*"[..], None));
    }
}
