//! One JavaScriptCore VM running one app: the prelude, the app's modules, the request queue,
//! the native functions the prelude calls, timers and the CPU-time watchdog.
//!
//! # How a tick works
//!
//! [`Engine::push`] copies what JS may need from the request view (the view dies when
//! `handle` returns) into a `Pending` entry and queues its id. [`Engine::tick`] then enters
//! the VM exactly once: one call of the prelude's `tick(targets, bodies, dropped, urls)` for a
//! batch described in shared memory (per request: id, method code, method length, target
//! length or `-1 - slot` of a hot target in the URL cache's table, flags; the time in
//! `SH_NOW`), with the other targets concatenated in one string and the bodies in an array.
//! Responses with string bodies made while
//! `tick` runs (synchronous handlers, timers) are queued in JS: their numbers in shared
//! memory, their header lines and bodies appended to one string, which `tick` returns (one
//! UTF-8 conversion per tick, no native call; the native `flush` only when the queue of 512
//! fills up in the middle of a tick). Responses made
//! later (promise continuations, which drain when the outermost entry returns) and bytes
//! bodies go through the native `respond` one by one. Both append the bytes to one arena per
//! tick (`State::arena`); after the entry the runtime gets each as a borrowed
//! [`ResponseRef`] and copies it into the connection's output: no allocation per response.
//! If the watchdog stops `tick` before its end, what it had queued is flushed by a separate
//! entry (the prelude's `flush`) before any 503 is decided.
//!
//! Headers and the peer address are not converted per request: `req.headers` and `req.ip`
//! call back into Rust the first time they are read.
//!
//! # Shared memory
//!
//! A `Float64Array` over `State::shared` lets JS and Rust exchange numbers without API
//! calls (each C API call takes JSC's API lock). Slots (`SH_*` constants, mirrored at the top
//! of prelude.js): the id of the request whose handler runs now (`-1` a timer, `-2` the
//! microtask phase), the next timer deadline (ms since VM start, `Infinity` if none), the
//! resume position in the batch, the port given to `Marg.listen`, the promise-waiting count
//! and id, the arguments of `respond` (id, status, Content-Type code), the queued-response
//! count and records (`SH_OUT`: id, status, Content-Type code, header and body lengths in
//! UTF-16 units), and the batch itself:
//! per request `[id, method code, method length, target length, flags]`, while the targets
//! (and unusual method names) of the whole batch travel as one concatenated JS string.

use crate::ffi::*;
use crate::js::{self, JsString};
use runtime::handler::HeaderList;
use runtime::{RequestId, ResponseRef};
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

/// The JS prelude: router, `req`/`res`, timers, polyfills, `require`.
const PRELUDE: &str = include_str!("prelude.js");

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Put stacks of handler errors into 500 responses.
    pub dev: bool,
    /// CPU time one request's handler may run in one VM entry before it is stopped (503).
    pub cpu_limit: Duration,
    /// How long a request may stay unanswered before the bridge answers 504.
    pub response_timeout: Duration,
    /// Worker number, for log lines.
    pub worker: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dev: false,
            cpu_limit: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            worker: 0,
        }
    }
}

/// Why an app could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The app file could not be read.
    Read(String),
    /// A syntax error, as `file:line:column: SyntaxError: message`.
    Syntax(String),
    /// The app threw while it was evaluated (message and stack).
    Threw(String),
    /// The bridge itself failed (prelude error).
    Internal(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(m) | LoadError::Syntax(m) | LoadError::Internal(m) => f.write_str(m),
            LoadError::Threw(m) => write!(f, "the app threw while loading: {m}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A request waiting for its response.
struct Pending {
    rid: RequestId,
    /// `name:value\n` per header field, Latin-1.
    headers: Vec<u8>,
    peer: SocketAddr,
    /// Until dispatched: the target and body.
    target: Vec<u8>,
    body: Vec<u8>,
    method: u8,
    method_other: Vec<u8>,
    flags: u32,
    /// Answered by JS in the current VM entry; kept until the entry ends so that code that
    /// runs after `res.send` in the same tick can still read headers and the peer address.
    answered: bool,
}

/// Shared-memory slots (see the module docs and prelude.js).
const SH_CURRENT: usize = 0;
const SH_NEXT_TIMER: usize = 1;
const SH_RESUME: usize = 2;
const SH_PORT: usize = 3;
const SH_AWAITING: usize = 4;
const SH_AWAITING_ID: usize = 5;
const SH_RESP_ID: usize = 6;
const SH_RESP_STATUS: usize = 7;
const SH_RESP_CTYPE: usize = 8;
const SH_BATCH_LEN: usize = 9;
const SH_RESUME_OFFSET: usize = 10;
const SH_OUT_COUNT: usize = 11;
/// The tick's time (ms since VM start): a number in shared memory costs no API call.
const SH_NOW: usize = 12;
const SH_BATCH: usize = 16;
const BATCH_STRIDE: usize = 5;
/// Requests per VM entry; more in one tick are run in several entries.
const BATCH_CAP: usize = 512;
/// Responses queued by JS for one `flush` call (see `native_flush`): per response the
/// request id, status, Content-Type code, and the lengths of its header lines and body.
const SH_OUT: usize = SH_BATCH + BATCH_CAP * BATCH_STRIDE;
const OUT_STRIDE: usize = 5;
const OUT_CAP: usize = 512;
const SHARED_LEN: usize = SH_OUT + OUT_CAP * OUT_STRIDE;

/// Pending requests by id: a slab whose ids carry a generation, so that an id that was
/// answered (504, closed connection) and whose slot was reused never matches again. Ids stay
/// below 2^53 (exact as JS numbers).
#[derive(Default)]
struct Slab {
    entries: Vec<(u32, Option<Pending>)>,
    free: Vec<u32>,
    len: usize,
}

const SLAB_INDEX_BITS: u32 = 24;

impl Slab {
    fn insert(&mut self, p: Pending) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push((0, None));
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[idx as usize];
        e.0 = (e.0 + 1) & ((1 << 28) - 1);
        e.1 = Some(p);
        self.len += 1;
        (u64::from(e.0) << SLAB_INDEX_BITS) | u64::from(idx)
    }

    fn split(id: u64) -> (usize, u32) {
        (
            (id & ((1 << SLAB_INDEX_BITS) - 1)) as usize,
            (id >> SLAB_INDEX_BITS) as u32,
        )
    }

    fn get(&self, id: u64) -> Option<&Pending> {
        let (i, g) = Self::split(id);
        match self.entries.get(i) {
            Some((gen, Some(p))) if *gen == g => Some(p),
            _ => None,
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Pending> {
        let (i, g) = Self::split(id);
        match self.entries.get_mut(i) {
            Some((gen, Some(p))) if *gen == g => Some(p),
            _ => None,
        }
    }

    fn remove(&mut self, id: u64) -> Option<Pending> {
        let (i, g) = Self::split(id);
        match self.entries.get_mut(i) {
            Some((gen, slot)) if *gen == g && slot.is_some() => {
                self.free.push(i as u32);
                self.len -= 1;
                slot.take()
            }
            _ => None,
        }
    }

    /// Ids of entries for which `f` is true.
    fn ids_where(&self, f: impl Fn(&Pending) -> bool) -> Vec<u64> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, (g, p))| {
                p.as_ref()
                    .filter(|p| f(p))
                    .map(|_| (u64::from(*g) << SLAB_INDEX_BITS) | i as u64)
            })
            .collect()
    }
}

/// What native callbacks reach through the thread-local pointer.
pub(crate) struct State {
    /// Heap-allocated once, never resized: JS holds a `Float64Array` over it.
    shared: Box<[f64]>,
    /// `undefined`, `true`, `false`: immediates, valid for the VM's life without protection.
    undefined: JSValueRef,
    js_true: JSValueRef,
    js_false: JSValueRef,
    pending: Slab,
    queue: Vec<u64>,
    /// Responses given during the current entry; their bytes are in `arena`.
    done: Vec<Done>,
    arena: Vec<u8>,
    /// Ids answered by JS during the current entry (released when it ends).
    answered: Vec<u64>,
    /// Ids answered or abandoned on the Rust side, to tell JS at the next tick.
    dropped: Vec<u64>,
    timeouts: VecDeque<(Instant, u64)>,
    start: Instant,
    opts: Options,
    scratch16: Vec<u16>,
    scratch8: Vec<u8>,
    urls: UrlCache,
    /// The prelude's `outBig` array (protected): string bodies of queued responses that
    /// travel apart from the queued text (see [`BIG_BODY`]).
    out_big: JSObjectRef,
    bodies: BodyCache,
    /// Recycled header and target buffers (apart, so that a small target buffer does not
    /// come back as a header buffer that must grow).
    pool_headers: Vec<Vec<u8>>,
    pool_targets: Vec<Vec<u8>>,
    group: JSContextGroupRef,
    quantum: f64,
    watch_last: f64,
    watch_acc: f64,
    /// The id running when the watchdog stopped the VM (0 none).
    terminated: f64,
    log_prefix: String,
}

thread_local! {
    static CURRENT: Cell<*mut State> = const { Cell::new(ptr::null_mut()) };
}

/// Method codes shared with the prelude's method table.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Content-Type defaults chosen by code in the prelude's `respond` call.
const CONTENT_TYPES: [&[u8]; 5] = [
    b"",
    b"text/html; charset=utf-8",
    b"application/json; charset=utf-8",
    b"application/octet-stream",
    b"text/plain; charset=utf-8",
];

/// One VM (context group + global context) with an app loaded.
pub struct Engine {
    group: JSContextGroupRef,
    ctx: JSGlobalContextRef,
    /// The prelude's `tick` function (protected).
    tick_fn: JSObjectRef,
    /// The prelude's `flush` function (protected): sends responses still queued after an
    /// entry (see `native_flush`).
    flush_fn: JSObjectRef,
    state: *mut State,
}

impl Engine {
    /// Creates a VM, evaluates the prelude and the app at `app_path`.
    pub fn new(app_path: &Path, opts: Options) -> Result<Engine, LoadError> {
        let file = app_path.display().to_string();
        let source = std::fs::read_to_string(app_path)
            .map_err(|e| LoadError::Read(format!("cannot read {file}: {e}")))?;
        let abs = std::fs::canonicalize(app_path).unwrap_or_else(|_| app_path.to_path_buf());
        let quantum = (opts.cpu_limit.as_secs_f64() / 8.0).clamp(0.005, 0.25);
        let log_prefix = format!("[js w{}]", opts.worker);
        crate::ffi::load().map_err(LoadError::Internal)?;
        configure_jsc();
        // SAFETY: plain constructors of the C API; checked for null right after.
        let (group, ctx) = unsafe {
            let group = JSContextGroupCreate();
            let ctx = JSGlobalContextCreateInGroup(group, ptr::null_mut());
            (group, ctx)
        };
        if group.is_null() || ctx.is_null() {
            // SAFETY: release what was created, once.
            unsafe {
                if !ctx.is_null() {
                    JSGlobalContextRelease(ctx);
                }
                if !group.is_null() {
                    JSContextGroupRelease(group);
                }
            }
            return Err(LoadError::Internal(
                "cannot create a JavaScriptCore VM".into(),
            ));
        }
        let mut shared = vec![0.0; SHARED_LEN].into_boxed_slice();
        shared[SH_NEXT_TIMER] = f64::INFINITY;
        // SAFETY: ctx is live (null-checked below before any other use); immediates.
        let (undefined, js_true, js_false) = unsafe {
            (
                JSValueMakeUndefined(ctx),
                JSValueMakeBoolean(ctx, true),
                JSValueMakeBoolean(ctx, false),
            )
        };
        let state = Box::into_raw(Box::new(State {
            shared,
            undefined,
            js_true,
            js_false,
            pending: Slab::default(),
            queue: Vec::new(),
            done: Vec::new(),
            arena: Vec::new(),
            answered: Vec::new(),
            dropped: Vec::new(),
            timeouts: VecDeque::new(),
            start: Instant::now(),
            opts,
            scratch16: Vec::new(),
            scratch8: Vec::new(),
            urls: UrlCache::default(),
            out_big: ptr::null_mut(),
            bodies: BodyCache::default(),
            pool_headers: Vec::new(),
            pool_targets: Vec::new(),
            group,
            quantum,
            watch_last: f64::NAN,
            watch_acc: 0.0,
            terminated: 0.0,
            log_prefix,
        }));
        let mut engine = Engine {
            group,
            ctx,
            tick_fn: ptr::null_mut(),
            flush_fn: ptr::null_mut(),
            state,
        };
        // SAFETY: group is live; the callback's context is the heap-allocated State, which
        // outlives the group (freed after the group is released in Drop).
        unsafe {
            JSContextGroupSetExecutionTimeLimit(
                group,
                quantum,
                Some(should_terminate),
                state as *mut c_void,
            )
        };
        engine.load(&source, &abs, &file)?;
        Ok(engine)
    }

    fn load(&mut self, source: &str, abs: &Path, file: &str) -> Result<(), LoadError> {
        let ctx = self.ctx;
        let _enter = Enter::new(self.state);
        // 1. The prelude evaluates to a function(native, shared) returning {tick, loadMain}.
        let prelude = JsString::new(PRELUDE);
        let url = JsString::new("marg:prelude.js");
        let mut exc: JSValueRef = ptr::null();
        // SAFETY: ctx and the strings are live.
        let f = unsafe { JSEvaluateScript(ctx, prelude.0, ptr::null_mut(), url.0, 1, &mut exc) };
        if f.is_null() || !js::is_object(ctx, f) {
            return Err(LoadError::Internal(format!(
                "prelude: {}",
                js::describe_exception(ctx, exc)
            )));
        }
        let native = self.make_native();
        // SAFETY: state is live; the Float64Array views State::shared, which lives (boxed,
        // never moved) until after the context is released; no deallocator is needed.
        let shared = unsafe {
            let p = (*self.state).shared.as_mut_ptr() as *mut c_void;
            let len = SHARED_LEN * std::mem::size_of::<f64>();
            JSObjectMakeTypedArrayWithBytesNoCopy(ctx, 8, p, len, None, ptr::null_mut(), &mut exc)
        };
        if shared.is_null() {
            return Err(LoadError::Internal("cannot create the shared array".into()));
        }
        let dev = {
            // SAFETY: state is live and not otherwise borrowed here.
            let dev = unsafe { (*self.state).opts.dev };
            // SAFETY: ctx is live.
            unsafe { JSValueMakeBoolean(ctx, dev) }
        };
        let args = [native as JSValueRef, shared as JSValueRef, dev];
        // SAFETY: f is an object (checked); args are live values.
        let api = unsafe {
            JSObjectCallAsFunction(
                ctx,
                f as JSObjectRef,
                ptr::null_mut(),
                3,
                args.as_ptr(),
                &mut exc,
            )
        };
        if api.is_null() || !js::is_object(ctx, api) {
            return Err(LoadError::Internal(format!(
                "prelude: {}",
                js::describe_exception(ctx, exc)
            )));
        }
        let tick = js::get_prop(ctx, api as JSObjectRef, "tick");
        let flush = js::get_prop(ctx, api as JSObjectRef, "flush");
        let load_main = js::get_prop(ctx, api as JSObjectRef, "loadMain");
        if !js::is_object(ctx, tick) || !js::is_object(ctx, flush) || !js::is_object(ctx, load_main)
        {
            return Err(LoadError::Internal(
                "prelude: no tick/flush/loadMain".into(),
            ));
        }
        let on_rejection = js::get_prop(ctx, api as JSObjectRef, "onUnhandledRejection");
        if js::is_object(ctx, on_rejection) {
            let mut e: JSValueRef = ptr::null();
            // SAFETY: ctx and the function are live; JSC keeps its own reference to it.
            unsafe {
                JSGlobalContextSetUnhandledRejectionCallback(
                    ctx,
                    on_rejection as JSObjectRef,
                    &mut e,
                )
            };
        }
        let out_big = js::get_prop(ctx, api as JSObjectRef, "outBig");
        if !js::is_object(ctx, out_big) {
            return Err(LoadError::Internal("prelude: no outBig".into()));
        }
        // SAFETY: tick, flush and outBig are live objects; unprotected in Drop.
        unsafe {
            JSValueProtect(ctx, tick);
            JSValueProtect(ctx, flush);
            JSValueProtect(ctx, out_big);
        }
        self.tick_fn = tick as JSObjectRef;
        self.flush_fn = flush as JSObjectRef;
        // SAFETY: the state outlives the VM (freed in Drop after the context).
        unsafe { (*self.state).out_big = out_big as JSObjectRef };

        // 2. The app: check the syntax first so that errors carry the file's own positions.
        let src = JsString::new(source);
        let url = JsString::new(&abs.display().to_string());
        exc = ptr::null();
        // SAFETY: ctx and the strings are live.
        let ok = unsafe { JSCheckScriptSyntax(ctx, src.0, url.0, 1, &mut exc) };
        if !ok {
            // CommonJS allows a top-level `return`; accept what parses as a function body.
            let wrapped = JsString::new(&format!("(function(){{{source}\n}})"));
            let mut exc2: JSValueRef = ptr::null();
            // SAFETY: as above.
            let ok2 = unsafe { JSCheckScriptSyntax(ctx, wrapped.0, url.0, 1, &mut exc2) };
            if !ok2 {
                return Err(LoadError::Syntax(js::syntax_error_location(ctx, exc, file)));
            }
        }
        let path = js::make_string(ctx, &abs.display().to_string());
        exc = ptr::null();
        // SAFETY: load_main is a live function object; path is live.
        let r = unsafe {
            JSObjectCallAsFunction(
                ctx,
                load_main as JSObjectRef,
                ptr::null_mut(),
                1,
                &path,
                &mut exc,
            )
        };
        if r.is_null() {
            return Err(LoadError::Threw(js::describe_exception(ctx, exc)));
        }
        Ok(())
    }

    fn make_native(&self) -> JSObjectRef {
        let ctx = self.ctx;
        // SAFETY: ctx is live; a plain object with no class.
        let obj = unsafe { JSObjectMake(ctx, ptr::null_mut(), ptr::null_mut()) };
        type Cb = unsafe extern "C" fn(
            JSContextRef,
            JSObjectRef,
            JSObjectRef,
            usize,
            *const JSValueRef,
            *mut JSValueRef,
        ) -> JSValueRef;
        let fns: [(&str, Cb); 12] = [
            ("respond", native_respond),
            ("flush", native_flush),
            ("headers", native_headers),
            ("ip", native_ip),
            ("now", native_now),
            ("log", native_log),
            ("utf8Encode", native_utf8_encode),
            ("utf8Decode", native_utf8_decode),
            ("readFile", native_read_file),
            ("resolve", native_resolve),
            ("compile", native_compile),
            ("env", native_env),
        ];
        for (name, cb) in fns {
            let n = JsString::new(name);
            // SAFETY: ctx and n are live; cb is a valid callback for the process lifetime.
            let f = unsafe { JSObjectMakeFunctionWithCallback(ctx, n.0, Some(cb)) };
            js::set_prop(ctx, obj, name, f);
        }
        obj
    }

    /// The port the app passed to `Marg.listen`, if any.
    pub fn listen_port(&self) -> Option<u16> {
        let p = self.shared(SH_PORT);
        (1.0..=65535.0).contains(&p).then_some(p as u16)
    }

    fn shared(&self, i: usize) -> f64 {
        // SAFETY: state is live; JS is not running (we are not inside an entry); i is in
        // bounds (callers pass SH_* constants or checked batch indices).
        unsafe { ptr::read_volatile((*self.state).shared.as_ptr().add(i)) }
    }

    fn set_shared(&self, i: usize, v: f64) {
        // SAFETY: as in `shared`.
        unsafe { ptr::write_volatile((*self.state).shared.as_mut_ptr().add(i), v) }
    }

    /// Queues a request for the next tick; copies what JS may read later.
    pub fn push(&mut self, req: &runtime::Request<'_>) {
        // SAFETY: state is live; no JS runs while this reference exists.
        let st = unsafe { &mut *self.state };
        let mut headers = st.pool_headers.pop().unwrap_or_default();
        for (n, v) in req.headers() {
            headers.extend_from_slice(n);
            headers.push(b':');
            headers.extend_from_slice(v);
            headers.push(b'\n');
        }
        let mut target = st.pool_targets.pop().unwrap_or_default();
        target.extend_from_slice(req.target());
        let body = req.body().to_vec();
        let m = req.method();
        let method = METHODS
            .iter()
            .position(|x| x.as_bytes() == m)
            .map_or(255, |i| i as u8);
        let method_other = if method == 255 {
            m.to_vec()
        } else {
            Vec::new()
        };
        let proto = match req.protocol() {
            runtime::Protocol::Http11 => 0,
            runtime::Protocol::H2 => 1,
            runtime::Protocol::H3 => 2,
        };
        let flags = u32::from(req.secure()) | (proto << 1);
        let id = st.pending.insert(Pending {
            rid: req.id(),
            headers,
            peer: req.peer(),
            target,
            body,
            method,
            method_other,
            flags,
            answered: false,
        });
        st.queue.push(id);
    }

    /// The runtime gave up on `rid` (connection closed): forget it.
    pub fn cancel(&mut self, rid: RequestId) {
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        for id in st.pending.ids_where(|p| p.rid == rid) {
            if let Some(p) = st.pending.remove(id) {
                st.dropped.push(id);
                st.recycle(p);
            }
        }
    }

    /// Whether requests are waiting for an answer.
    pub fn busy(&self) -> bool {
        // SAFETY: state is live.
        unsafe { (*self.state).pending.len != 0 }
    }

    /// When the next timer or response deadline falls.
    pub fn next_deadline(&self) -> Option<Instant> {
        // SAFETY: state is live.
        let st = unsafe { &*self.state };
        let mut best = st.timeouts.front().map(|t| t.0);
        let t = self.shared(SH_NEXT_TIMER);
        if t.is_finite() {
            let at = st.start + Duration::from_secs_f64((t / 1000.0).max(0.0));
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
    }

    /// Runs queued requests and due timers in one VM entry (or more, after the watchdog
    /// stopped a runaway handler), then hands out completed responses.
    pub fn tick(&mut self, complete: &mut dyn FnMut(RequestId, ResponseRef<'_>)) {
        let now = Instant::now();
        // SAFETY: state is live.
        let start = unsafe { (*self.state).start };
        let now_ms = now.duration_since(start).as_secs_f64() * 1000.0;
        let timer_due = self.shared(SH_NEXT_TIMER) <= now_ms;
        let queued = {
            // SAFETY: state is live; no JS runs now.
            let st = unsafe { &mut *self.state };
            let deadline = now + st.opts.response_timeout;
            for &id in &st.queue {
                st.timeouts.push_back((deadline, id));
            }
            !st.queue.is_empty()
        };
        if queued || timer_due {
            self.enter(now_ms);
        }
        self.expire(now);
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        for d in st.done.drain(..) {
            let headers = JsHeaders {
                content_type: CONTENT_TYPES[usize::from(d.ctype)],
                lines: &st.arena[d.lines],
            };
            let resp = ResponseRef {
                status: d.status,
                headers: &headers,
                body: &st.arena[d.body],
            };
            complete(d.rid, resp);
        }
        st.arena.clear();
        if st.arena.capacity() > ARENA_KEEP {
            st.arena = Vec::new();
        }
    }

    fn enter(&mut self, now_ms: f64) {
        let _enter = Enter::new(self.state);
        // SAFETY: state is live; no JS runs now.
        let mut ids = std::mem::take(unsafe { &mut (*self.state).queue });
        let mut dropped = self.take_dropped();
        if ids.is_empty() {
            self.run_batch(now_ms, &[], dropped);
        }
        for chunk in ids.chunks(BATCH_CAP) {
            self.run_batch(now_ms, chunk, dropped);
            // SAFETY: state is live.
            dropped = unsafe { (*self.state).undefined };
        }
        ids.clear();
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        if st.queue.is_empty() {
            st.queue = ids;
        }
    }

    /// One VM entry for up to BATCH_CAP requests (plus due timers); more entries only when
    /// the watchdog stopped a runaway handler and requests of the batch are left.
    fn run_batch(&mut self, now_ms: f64, ids: &[u64], dropped: JSValueRef) {
        let ctx = self.ctx;
        let [targets, urls, bodies] = self.build_batch(ids);
        let n = self.shared(SH_BATCH_LEN) as usize;
        self.set_shared(SH_RESUME, 0.0);
        self.set_shared(SH_RESUME_OFFSET, 0.0);
        self.set_shared(SH_NOW, now_ms);
        // The array lives on this frame while JS may run, where JSC's conservative stack
        // scan sees its values.
        let argv = [targets, bodies, dropped, urls];
        loop {
            self.set_shared(SH_CURRENT, -2.0);
            // SAFETY: state is live; no JS runs now.
            unsafe {
                (*self.state).watch_last = f64::NAN;
                (*self.state).watch_acc = 0.0;
                (*self.state).terminated = 0.0;
            }
            let mut exc: JSValueRef = ptr::null();
            // SAFETY: tick_fn is protected and live; argv holds live values.
            let r = unsafe {
                JSObjectCallAsFunction(
                    ctx,
                    self.tick_fn,
                    ptr::null_mut(),
                    argv.len(),
                    argv.as_ptr(),
                    &mut exc,
                )
            };
            let (stopped, limit) = {
                // SAFETY: state is live; the entry has returned.
                unsafe { ((*self.state).terminated, (*self.state).opts.cpu_limit) }
            };
            // Responses JS queued but did not flush (answered in promise continuations after
            // `tick` returned, or before the watchdog stopped it) go out now, before a stop
            // answers anything with 503.
            // `tick` returns the text of the responses it queued (records in SH_OUT): taken
            // here, without a native call from JS. If the entry ended in an exception (the
            // watchdog stopped it, in `tick` or in the microtasks after it), the prelude's
            // `flush` returns what is still queued, before any 503 is decided.
            if self.shared(SH_OUT_COUNT) > 0.0 {
                let text = if !r.is_null() && stopped == 0.0 {
                    r
                } else {
                    if stopped != 0.0 {
                        self.clear_stale_exception();
                        self.arm_watchdog();
                    }
                    self.call_flush()
                };
                // SAFETY: state is live; no JS runs now; `text` is on this frame.
                take_queued(unsafe { &mut *self.state }, ctx, text);
            }
            if stopped != 0.0 {
                self.clear_stale_exception();
                self.arm_watchdog();
                self.log(
                    3,
                    &format!(
                        "a handler ran longer than the CPU time limit ({limit:?}) and was stopped"
                    ),
                );
                if stopped > 0.0 {
                    self.finish_with(stopped as u64, 503, b"Service Unavailable");
                } else if stopped == -2.0 && self.shared(SH_AWAITING) == 1.0 {
                    // Stopped in a promise continuation while exactly one request was
                    // waiting on its handler's promise: that one ran away.
                    self.finish_with(
                        self.shared(SH_AWAITING_ID) as u64,
                        503,
                        b"Service Unavailable",
                    );
                }
                // Requests of this batch not dispatched yet run in a fresh entry; the prelude
                // resumes at SH_RESUME.
                if (self.shared(SH_RESUME) as usize) < n {
                    continue;
                }
            } else if r.is_null() {
                self.log(
                    3,
                    &format!(
                        "internal error in tick: {}",
                        js::describe_exception(ctx, exc)
                    ),
                );
            }
            break;
        }
        self.release_answered();
    }

    /// Runs the prelude's `flush` (queued responses only; no user code).
    fn call_flush(&mut self) -> JSValueRef {
        let mut exc: JSValueRef = ptr::null();
        // SAFETY: flush_fn is protected and live; no arguments.
        let r = unsafe {
            JSObjectCallAsFunction(
                self.ctx,
                self.flush_fn,
                ptr::null_mut(),
                0,
                ptr::null(),
                &mut exc,
            )
        };
        if r.is_null() {
            let msg = js::describe_exception(self.ctx, exc);
            self.log(3, &format!("internal error in flush: {msg}"));
        }
        r
    }

    /// Frees the requests JS answered during the entry that just ended.
    fn release_answered(&mut self) {
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        let mut ids = std::mem::take(&mut st.answered);
        for &id in &ids {
            if let Some(p) = st.pending.remove(id) {
                st.recycle(p);
            }
        }
        ids.clear();
        st.answered = ids;
    }

    /// After the watchdog stopped an entry inside the microtask drain that follows it, JSC
    /// leaves the termination exception pending in the VM, and the next API call that checks
    /// for exceptions (e.g. `JSObjectMakeArray`) fails once and consumes it. Make that call
    /// here, on purpose, so that the next batch is built intact.
    fn clear_stale_exception(&self) {
        let mut exc: JSValueRef = ptr::null();
        // SAFETY: ctx is live; an empty array needs no argument pointer.
        let _ = unsafe { JSObjectMakeArray(self.ctx, 0, ptr::null(), &mut exc) };
    }

    /// The ids of [`State::dropped`] as a JS array (`undefined` when there are none).
    fn take_dropped(&mut self) -> JSValueRef {
        let ctx = self.ctx;
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        if st.dropped.is_empty() {
            return st.undefined;
        }
        // Numbers are immediates (nothing for the GC to lose while they sit in the Vec).
        let mut vals: Vec<JSValueRef> = st
            .dropped
            .drain(..)
            // SAFETY: ctx is live.
            .map(|id| unsafe { JSValueMakeNumber(ctx, id as f64) })
            .collect();
        let n = vals.len();
        make_array(ctx, &mut vals, n, st.undefined)
    }

    /// (Re-)arms JSC's execution time limit for the next entry. JSC does not reliably re-arm
    /// its timer for later entries after the callback asked to terminate one, so every entry
    /// sets the limit afresh.
    fn arm_watchdog(&self) {
        // SAFETY: group is live; the context pointer is the State that outlives the group.
        unsafe {
            JSContextGroupSetExecutionTimeLimit(
                self.group,
                (*self.state).quantum,
                Some(should_terminate),
                self.state as *mut c_void,
            )
        };
    }

    /// Writes the batch of `ids` into shared memory (the count in SH_BATCH_LEN; a cached
    /// target as `-1 - slot` in the target-length field); returns the concatenated targets
    /// (JS string, or `undefined` when every target is cached) of the others, the URL cache's
    /// table of strings, and the bodies (array, or `undefined` when no request has one).
    fn build_batch(&mut self, ids: &[u64]) -> [JSValueRef; 3] {
        let ctx = self.ctx;
        // SAFETY: state is live; no JS runs while building (only value constructors).
        let st = unsafe { &mut *self.state };
        let mut bytes = std::mem::take(&mut st.scratch8);
        bytes.clear();
        let mut bodies: Vec<JSValueRef> = Vec::new();
        let mut n = 0;
        for &id in ids {
            let Some(p) = st.pending.get_mut(id) else {
                continue;
            };
            let slot = SH_BATCH + n * BATCH_STRIDE;
            let other = p.method as usize >= METHODS.len();
            st.shared[slot] = id as f64;
            st.shared[slot + 1] = p.method as f64;
            st.shared[slot + 2] = if other {
                p.method_other.len() as f64
            } else {
                0.0
            };
            st.shared[slot + 4] = p.flags as f64;
            if other {
                bytes.extend_from_slice(&p.method_other);
            }
            match st.urls.lookup(ctx, &p.target, &mut st.scratch16) {
                Some(k) => st.shared[slot + 3] = -1.0 - f64::from(k),
                None => {
                    bytes.extend_from_slice(&p.target);
                    st.shared[slot + 3] = p.target.len() as f64;
                }
            }
            let mut t = std::mem::take(&mut p.target);
            t.clear();
            if st.pool_targets.len() < POOL_MAX {
                st.pool_targets.push(t);
            }
            if !p.body.is_empty() {
                bodies.resize(n, st.undefined);
                let b = make_array_buffer(ctx, std::mem::take(&mut p.body));
                // Only the heap Vec holds it until the array is made, and JSC's GC scans
                // only the stack: protect it until then.
                // SAFETY: ctx and b are live; unprotected below.
                unsafe { JSValueProtect(ctx, b) };
                bodies.push(b);
            }
            n += 1;
        }
        let targets_v = if bytes.is_empty() {
            st.undefined
        } else {
            let targets = JsString::from_latin1(&bytes, &mut st.scratch16);
            // SAFETY: ctx and the string are live; the value holds its own reference.
            unsafe { JSValueMakeString(ctx, targets.0) }
        };
        st.scratch8 = bytes;
        let bodies_v = make_array(ctx, &mut bodies, n, st.undefined);
        for &b in &bodies {
            // SAFETY: protected above (`undefined` padding is an immediate: a no-op).
            unsafe { JSValueUnprotect(ctx, b) };
        }
        st.shared[SH_BATCH_LEN] = n as f64;
        [targets_v, st.urls.table(st.undefined), bodies_v]
    }

    /// Answers requests that waited longer than the response timeout with 504.
    fn expire(&mut self, now: Instant) {
        loop {
            // SAFETY: state is live; no JS runs now.
            let st = unsafe { &mut *self.state };
            let Some(&(at, id)) = st.timeouts.front() else {
                break;
            };
            if st.pending.get(id).is_none() {
                st.timeouts.pop_front();
                continue;
            }
            if at > now {
                break;
            }
            st.timeouts.pop_front();
            self.log(2, &format!("request {id} got no response in time: 504"));
            self.finish_with(id, 504, b"Gateway Timeout");
        }
    }

    fn finish_with(&mut self, id: u64, status: u16, body: &[u8]) {
        // SAFETY: state is live; no JS runs now.
        let st = unsafe { &mut *self.state };
        if st.pending.get(id).is_some_and(|p| p.answered) {
            return;
        }
        if let Some(p) = st.pending.remove(id) {
            st.dropped.push(id);
            st.push_done(p.rid, f64::from(status), CT_TEXT, &[], body);
            st.recycle(p);
        }
    }

    fn log(&self, level: u8, msg: &str) {
        // SAFETY: state is live.
        let st = unsafe { &*self.state };
        log_line(&st.log_prefix, level, msg);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the context/group were created in `new` and are released exactly once;
        // State is freed after the VM is gone so no callback can see a dangling pointer.
        unsafe {
            if !self.ctx.is_null() {
                if !self.tick_fn.is_null() {
                    JSValueUnprotect(self.ctx, self.tick_fn);
                }
                if !self.flush_fn.is_null() {
                    JSValueUnprotect(self.ctx, self.flush_fn);
                }
                (*self.state).urls.clear(self.ctx);
                (*self.state).bodies.clear(self.ctx);
                if !(*self.state).out_big.is_null() {
                    JSValueUnprotect(self.ctx, (*self.state).out_big);
                }
                JSContextGroupClearExecutionTimeLimit(self.group);
                JSGlobalContextRelease(self.ctx);
            }
            if !self.group.is_null() {
                JSContextGroupRelease(self.group);
            }
            drop(Box::from_raw(self.state));
        }
    }
}

/// A response waiting for the end of the entry: status, Content-Type code, and its header
/// lines and body as ranges of [`State::arena`].
struct Done {
    rid: RequestId,
    status: u16,
    ctype: u8,
    lines: Range<usize>,
    body: Range<usize>,
}

/// Recycled buffers kept at most, per pool, and the largest capacity kept.
const POOL_MAX: usize = 256;
const POOL_BUF_KEEP: usize = 16 * 1024;

/// `State::arena` above this capacity is released after a tick (a large body passed).
const ARENA_KEEP: usize = 1 << 20;

/// Content-Type code of `text/plain` (CONTENT_TYPES).
const CT_TEXT: f64 = 4.0;

/// The header fields of a [`Done`]: the Content-Type given by code, then the
/// `Name:value\n` lines JS built.
struct JsHeaders<'a> {
    content_type: &'static [u8],
    lines: &'a [u8],
}

impl HeaderList for JsHeaders<'_> {
    fn for_each(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        if !self.content_type.is_empty() {
            f(b"Content-Type", self.content_type);
        }
        if self.lines.is_empty() {
            return;
        }
        for line in self.lines.split(|&b| b == b'\n') {
            if let Some(c) = line.iter().position(|&b| b == b':') {
                f(&line[..c], &line[c + 1..]);
            }
        }
    }
}

/// `vals` (padded with `undefined` to `n`) as a JS array; `undefined` when `vals` is empty.
/// Retries once after a stale exception (see `Engine::clear_stale_exception`).
fn make_array(
    ctx: JSContextRef,
    vals: &mut Vec<JSValueRef>,
    n: usize,
    undefined: JSValueRef,
) -> JSValueRef {
    if vals.is_empty() {
        return undefined;
    }
    vals.resize(n, undefined);
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: the values are protected by the caller (JSC's GC scans the stack, not this
    // Vec) or immediates.
    let mut arr = unsafe { JSObjectMakeArray(ctx, n, vals.as_ptr(), &mut exc) };
    if arr.is_null() {
        // A stale exception made the first attempt fail (see clear_stale_exception).
        exc = ptr::null();
        // SAFETY: as above.
        arr = unsafe { JSObjectMakeArray(ctx, n, vals.as_ptr(), &mut exc) };
    }
    arr as JSValueRef
}

/// Request targets seen at least twice recently, as JS strings in a protected JS array (the
/// table): a hot URL reaches JS as a ready (flat, 8-bit) string, by its slot in the table,
/// which compares and splits faster than a slice of the batch string and lets the prelude
/// cache its path/query split. A target enters on its second sighting (a direct-mapped table
/// of recent hashes), so that a stream of unique URLs costs one hash and two probes per
/// request and never fills the cache. Only an insertion makes an API call; a batch passes
/// slot numbers in shared memory.
struct UrlCache {
    /// By FNV-1a hash of the target: the target and its slot.
    map: std::collections::HashMap<u64, (Box<[u8]>, u32), std::hash::BuildHasherDefault<Identity>>,
    seen: Vec<u64>,
    /// The JS array of strings by slot (protected; null until the first insertion).
    table: JSObjectRef,
    /// The next free slot.
    next: u32,
}

impl Default for UrlCache {
    fn default() -> UrlCache {
        UrlCache {
            map: Default::default(),
            seen: Vec::new(),
            table: ptr::null_mut(),
            next: 0,
        }
    }
}

/// Targets longer than this are not cached.
const URL_CACHE_LEN: usize = 256;
/// Slots; when all are used the cache starts over (the table's old strings are overwritten
/// as slots are reused).
const URL_CACHE_CAP: u32 = 256;
/// Slots of the recent-hash table.
const URL_SEEN_SLOTS: usize = 1024;

impl UrlCache {
    /// The slot of `target`'s string in the table, if it is hot.
    fn lookup(&mut self, ctx: JSContextRef, target: &[u8], scratch: &mut Vec<u16>) -> Option<u32> {
        if target.len() > URL_CACHE_LEN {
            return None;
        }
        let h = fnv1a(target);
        if let Some((t, slot)) = self.map.get(&h) {
            if **t == *target {
                return Some(*slot);
            }
        }
        if self.seen.is_empty() {
            self.seen = vec![0; URL_SEEN_SLOTS];
        }
        let seen = &mut self.seen[(h as usize) % URL_SEEN_SLOTS];
        if *seen != h {
            *seen = h;
            return None;
        }
        let mut exc: JSValueRef = ptr::null();
        if self.table.is_null() {
            // SAFETY: ctx is live; an empty array needs no argument pointer; protected until
            // `clear`.
            let t = unsafe { JSObjectMakeArray(ctx, 0, ptr::null(), &mut exc) };
            if t.is_null() {
                return None; // (a stale exception; the next sighting tries again)
            }
            // SAFETY: t is a live object.
            unsafe { JSValueProtect(ctx, t as JSValueRef) };
            self.table = t;
        }
        if self.next == URL_CACHE_CAP {
            self.map.clear();
            self.next = 0;
        }
        let s = JsString::from_latin1(target, scratch);
        let slot = self.next;
        // SAFETY: ctx, the table and s are live; the string value is stored into the table
        // by the same call that makes it reachable (no allocation in between).
        unsafe {
            let v = JSValueMakeString(ctx, s.0);
            JSObjectSetPropertyAtIndex(ctx, self.table, slot, v, &mut exc);
        }
        if !exc.is_null() {
            return None;
        }
        self.next += 1;
        // A hash collision replaces the older target (its slot is simply not used again
        // until the cache starts over).
        self.map.insert(h, (target.into(), slot));
        Some(slot)
    }

    /// The table for JS (`undefined` before the first insertion).
    fn table(&self, undefined: JSValueRef) -> JSValueRef {
        if self.table.is_null() {
            undefined
        } else {
            self.table as JSValueRef
        }
    }

    fn clear(&mut self, ctx: JSContextRef) {
        self.map.clear();
        if !self.table.is_null() {
            // SAFETY: protected once when it was made.
            unsafe { JSValueUnprotect(ctx, self.table as JSValueRef) };
            self.table = ptr::null_mut();
        }
    }
}

/// 64-bit FNV-1a: short keys, no DoS concern (a bounded cache that empties when full).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h | 1 // never 0, the empty slot
}

/// The cache map's keys are already hashes.
#[derive(Default)]
struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl State {
    /// Queues the response to `rid` (status 500 when out of range, Content-Type code
    /// `ctype`, CONTENT_TYPES; 0 none), copying its header lines and body into the arena.
    fn push_done(&mut self, rid: RequestId, status: f64, ctype: f64, lines: &[u8], body: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(lines);
        let mid = self.arena.len();
        self.arena.extend_from_slice(body);
        self.push_done_at(rid, status, ctype, start..mid, mid..self.arena.len());
    }

    /// [`State::push_done`] for bytes already in the arena.
    fn push_done_at(
        &mut self,
        rid: RequestId,
        status: f64,
        ctype: f64,
        lines: Range<usize>,
        body: Range<usize>,
    ) {
        let status = if (100.0..1000.0).contains(&status) {
            status as u16
        } else {
            500
        };
        let ctype = if (1.0..5.0).contains(&ctype) {
            ctype as u8
        } else {
            0
        };
        self.done.push(Done {
            rid,
            status,
            ctype,
            lines,
            body,
        });
    }

    fn recycle(&mut self, mut p: Pending) {
        if self.pool_headers.len() < POOL_MAX && p.headers.capacity() <= POOL_BUF_KEEP {
            p.headers.clear();
            self.pool_headers.push(p.headers);
        }
        if self.pool_targets.len() < POOL_MAX
            && p.target.capacity() > 0
            && p.target.capacity() <= POOL_BUF_KEEP
        {
            p.target.clear();
            self.pool_targets.push(p.target);
        }
    }
}

/// Makes `State` reachable from native callbacks for the duration of an entry.
struct Enter {
    prev: *mut State,
}

impl Enter {
    fn new(state: *mut State) -> Enter {
        Enter {
            prev: CURRENT.with(|c| c.replace(state)),
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Process-wide JSC options, set once before the first VM is created.
///
/// `usePollingTraps`: with JSC's default signal-based traps, the execution-time-limit trap was
/// not delivered to a looping handler after a previous entry had been terminated (the
/// "Signal Sender" thread stayed blocked suspending the mutator), so a second runaway
/// handler hung the worker for good (reproduced by the `runaway_handler_*` test). Polling
/// traps check at loop back-edges instead and fire every time.
///
/// `forceRAMSize` (100 MB unless `JSC_forceRAMSize` is set): JSC sizes its GC heap from the
/// machine's RAM, so on a 24 GiB box each worker's heap grew to ~20 MiB of garbage before
/// collecting. With 100 MB the RSS of a one-worker server under load drops from ~50 MiB to
/// ~41 MiB at the same CPU per request (bench/js.sh, param scenario).
fn configure_jsc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: NUL-terminated option names; called once, before any VM exists in this
        // process (Engine::new is the only place that creates VMs).
        unsafe {
            jsc_options_set_boolean(c"usePollingTraps".as_ptr(), 1);
            if std::env::var_os("JSC_forceRAMSize").is_none() {
                jsc_options_set_size(c"forceRAMSize".as_ptr(), 100_000_000);
            }
        }
    });
}

fn log_line(prefix: &str, level: u8, msg: &str) {
    let tag = match level {
        2 => " warn:",
        3 => " error:",
        _ => "",
    };
    eprintln!("{prefix}{tag} {msg}");
}

unsafe extern "C" fn free_boxed_bytes(bytes: *mut c_void, len: *mut c_void) {
    // SAFETY: `bytes`/`len` are the pointer and length of a Box<[u8]> leaked by
    // `make_array_buffer`; JSC calls this exactly once.
    drop(unsafe {
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            bytes as *mut u8,
            len as usize,
        ))
    });
}

/// An `ArrayBuffer` that owns `bytes` (no copy).
fn make_array_buffer(ctx: JSContextRef, bytes: Vec<u8>) -> JSValueRef {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    let p = Box::into_raw(boxed) as *mut u8;
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: p/len describe a leaked Box<[u8]> that the deallocator frees.
    let ab = unsafe {
        JSObjectMakeArrayBufferWithBytesNoCopy(
            ctx,
            p as *mut c_void,
            len,
            Some(free_boxed_bytes),
            len as *mut c_void,
            &mut exc,
        )
    };
    if ab.is_null() {
        // SAFETY: JSC did not take ownership; free it ourselves.
        unsafe { free_boxed_bytes(p as *mut c_void, len as *mut c_void) };
        // SAFETY: ctx is live.
        return unsafe { JSValueMakeUndefined(ctx) };
    }
    ab
}

/// The watchdog: called by JSC after `quantum` seconds of CPU time in one VM entry.
/// Charges the time to the request that runs now and stops the entry when that request used
/// up its limit; otherwise re-arms (JSC does not re-arm by itself).
unsafe extern "C" fn should_terminate(_ctx: JSContextRef, context: *mut c_void) -> bool {
    let st = context as *mut State;
    let r = std::panic::catch_unwind(|| {
        // SAFETY: context is the State registered with the limit; it outlives the group.
        // We are on the VM's thread inside an entry; Rust code holds no reference to State
        // across the entry.
        let st = unsafe { &mut *st };
        let cur = st.shared[SH_CURRENT];
        if cur == st.watch_last {
            st.watch_acc += st.quantum;
        } else {
            st.watch_last = cur;
            st.watch_acc = st.quantum;
        }
        if st.watch_acc + 1e-9 >= st.opts.cpu_limit.as_secs_f64() {
            st.terminated = if cur == 0.0 { -3.0 } else { cur };
            return true;
        }
        // SAFETY: re-arming the limit from the callback is what JSC's own tests do.
        unsafe {
            JSContextGroupSetExecutionTimeLimit(
                st.group,
                st.quantum,
                Some(should_terminate),
                context,
            )
        };
        false
    });
    r.unwrap_or(true)
}

/// Declares a JS-callable native function: the C signature JSC calls
/// (`JSObjectCallAsFunctionCallback`), forwarding to [`native`] with the
/// body as the closure over the worker's `State` and the arguments.
macro_rules! native_fn {
    ($(#[$doc:meta])* fn $name:ident($ctx:ident) |$st:pat_param, $args:pat_param| $body:block) => {
        $(#[$doc])*
        unsafe extern "C" fn $name(
            $ctx: JSContextRef,
            _f: JSObjectRef,
            _this: JSObjectRef,
            argc: usize,
            argv: *const JSValueRef,
            exception: *mut JSValueRef,
        ) -> JSValueRef {
            native($ctx, argc, argv, exception, |$st, $args| $body)
        }
    };
}

/// Runs `f` with the current State and the call's arguments, turning panics and `Err`s into
/// JS exceptions.
fn native<F>(
    ctx: JSContextRef,
    argc: usize,
    argv: *const JSValueRef,
    exception: *mut JSValueRef,
    f: F,
) -> JSValueRef
where
    F: FnOnce(&mut State, &[JSValueRef]) -> Result<JSValueRef, String>,
{
    let st = CURRENT.with(|c| c.get());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if st.is_null() {
            return Err("marg native called outside of a VM entry".to_string());
        }
        let args: &[JSValueRef] = if argc == 0 || argv.is_null() {
            &[]
        } else {
            // SAFETY: JSC passes argc live values.
            unsafe { std::slice::from_raw_parts(argv, argc) }
        };
        // SAFETY: st points to the live State of the VM running this callback; no other
        // reference to it is live during the entry.
        f(unsafe { &mut *st }, args)
    }));
    let msg = match r {
        Ok(Ok(v)) => return v,
        Ok(Err(m)) => m,
        Err(_) => "internal error in a marg native function".to_string(),
    };
    if !exception.is_null() {
        // SAFETY: exception is JSC's out-parameter.
        unsafe { *exception = js::make_error(ctx, &msg) };
    }
    // SAFETY: ctx is live.
    unsafe { JSValueMakeUndefined(ctx) }
}

fn arg(args: &[JSValueRef], i: usize) -> JSValueRef {
    args.get(i).copied().unwrap_or(ptr::null())
}

fn num(ctx: JSContextRef, v: JSValueRef) -> f64 {
    if v.is_null() {
        return f64::NAN;
    }
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx and v are live.
    unsafe { JSValueToNumber(ctx, v, &mut exc) }
}

fn string_arg(ctx: JSContextRef, v: JSValueRef) -> Result<String, String> {
    if v.is_null() {
        return Err("missing argument".into());
    }
    js::to_rust_string(ctx, v).ok_or_else(|| "argument is not a string".into())
}

/// Bytes of an `ArrayBuffer` or typed array / DataView, or `None`.
fn bytes_of<'a>(ctx: JSContextRef, v: JSValueRef) -> Option<&'a [u8]> {
    if !js::is_object(ctx, v) {
        return None;
    }
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx and v are live; the pointers JSC returns stay valid until the next GC,
    // and callers copy the bytes before running any JS.
    unsafe {
        let t = JSValueGetTypedArrayType(ctx, v, &mut exc);
        let o = v as JSObjectRef;
        if t == K_JS_TYPED_ARRAY_TYPE_ARRAY_BUFFER {
            let p = JSObjectGetArrayBufferBytesPtr(ctx, o, &mut exc) as *const u8;
            let n = JSObjectGetArrayBufferByteLength(ctx, o, &mut exc);
            return Some(if p.is_null() || n == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, n)
            });
        }
        if t != K_JS_TYPED_ARRAY_TYPE_NONE {
            // JSObjectGetTypedArrayBytesPtr already adds the byte offset.
            let p = JSObjectGetTypedArrayBytesPtr(ctx, o, &mut exc) as *const u8;
            let n = JSObjectGetTypedArrayByteLength(ctx, o, &mut exc);
            return Some(if p.is_null() || n == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p, n)
            });
        }
    }
    None
}

/// Marks request `id` answered; its runtime id, or `None` when it is gone or was answered.
fn take_answer(st: &mut State, id: u64) -> Option<RequestId> {
    match st.pending.get_mut(id) {
        Some(p) if !p.answered => {
            p.answered = true;
            st.answered.push(id);
            Some(p.rid)
        }
        _ => None,
    }
}

native_fn! {
    /// `respond(headers|undefined, body)`, with the request id, status and Content-Type code in
    /// shared memory (SH_RESP_*): numbers travel without API calls. For bodies that are bytes,
    /// and for responses made outside `tick` (string responses made inside it are queued and
    /// go through `flush`).
    fn native_respond(ctx) |st, a| {
        let id = st.shared[SH_RESP_ID] as u64;
        let Some(rid) = take_answer(st, id) else {
            return Ok(st.js_false);
        };
        let start = st.arena.len();
        let h = arg(a, 0);
        // SAFETY: ctx and h are live.
        if !h.is_null() && unsafe { JSValueIsString(ctx, h) } {
            let mut exc: JSValueRef = ptr::null();
            // SAFETY: ctx and h are live; the copy is released by JsString.
            let s = JsString(unsafe { JSValueToStringCopy(ctx, h, &mut exc) });
            js::append_utf8(&s, &mut st.arena);
        }
        let mid = st.arena.len();
        let b = arg(a, 1);
        // SAFETY: ctx and b are live.
        if !b.is_null() && unsafe { JSValueIsString(ctx, b) } {
            append_string_body(st, ctx, b);
        } else if let Some(bytes) = bytes_of(ctx, b) {
            st.arena.extend_from_slice(bytes);
        }
        let end = st.arena.len();
        let (status, ctype) = (st.shared[SH_RESP_STATUS], st.shared[SH_RESP_CTYPE]);
        st.push_done_at(rid, status, ctype, start..mid, mid..end);
        Ok(st.js_true)
    }
}

/// String bodies of at least this many UTF-16 units travel apart from the queued text (the
/// prelude's `outBig`; its BIG_BODY is the same number), so that each reaches Rust as its own
/// JS value: a large constant body (a page, a precomputed JSON document) is then found in
/// [`BodyCache`] instead of being converted again, and no body this size is copied into the
/// queued text.
const BIG_BODY: usize = 1024;

/// Appends the UTF-8 bytes of the string body `v` to the arena: from [`BodyCache`] when
/// `v` is a big string seen before, else converted (and cached on its second sighting).
fn append_string_body(st: &mut State, ctx: JSContextRef, v: JSValueRef) {
    let key = v as usize;
    if let Some(bytes) = st.bodies.get(key) {
        st.arena.extend_from_slice(bytes);
        return;
    }
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx and v are live; the copy is released by JsString.
    let s = JsString(unsafe { JSValueToStringCopy(ctx, v, &mut exc) });
    if s.0.is_null() {
        return;
    }
    // SAFETY: s is a live string.
    let units = unsafe { JSStringGetLength(s.0) };
    let start = st.arena.len();
    js::append_utf8(&s, &mut st.arena);
    if units >= BIG_BODY && st.bodies.seen_again(key, &st.arena[start..]) {
        st.bodies.insert(ctx, v, &st.arena[start..]);
    }
}

/// UTF-8 bytes of big string bodies that were answered more than once, by the identity of
/// the JS string (its cell address). A cached string is protected, so its cell cannot be
/// collected and reused for another string while the entry exists; JS strings never change,
/// so the bytes stay right. Strings enter on their second sighting with the same bytes (a
/// small direct-mapped table of recent addresses and content fingerprints): a body made anew
/// for each response, whose cell address the GC reuses, does not enter. Correctness never
/// rests on the fingerprint: what enters is the current string, converted now, and
/// protected. Bounded in entries and bytes; when full, everything is dropped and
/// unprotected.
#[derive(Default)]
struct BodyCache {
    map: std::collections::HashMap<usize, Box<[u8]>>,
    seen: Vec<(usize, u64)>,
    bytes: usize,
}

/// A cheap content fingerprint: the length and 24 sampled bytes.
fn fingerprint(b: &[u8]) -> u64 {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        let at = at.min(b.len().saturating_sub(8));
        let src = &b[at..b.len().min(at + 8)];
        w[..src.len()].copy_from_slice(src);
        u64::from_le_bytes(w)
    };
    let mut h = b.len() as u64;
    for w in [word(0), word(b.len() / 2), word(b.len())] {
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    h
}

impl BodyCache {
    const MAX_ENTRIES: usize = 64;
    const MAX_BYTES: usize = 4 << 20;
    const MAX_ENTRY: usize = 1 << 20;
    const SEEN: usize = 256;

    fn get(&self, key: usize) -> Option<&[u8]> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&key).map(|b| &b[..])
    }

    /// Whether `key` was offered recently with the same content (and remembers it).
    fn seen_again(&mut self, key: usize, bytes: &[u8]) -> bool {
        if self.seen.is_empty() {
            self.seen = vec![(0, 0); Self::SEEN];
        }
        let i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) % Self::SEEN;
        let entry = (key, fingerprint(bytes));
        std::mem::replace(&mut self.seen[i], entry) == entry
    }

    fn insert(&mut self, ctx: JSContextRef, v: JSValueRef, bytes: &[u8]) {
        if bytes.len() > Self::MAX_ENTRY {
            return;
        }
        if self.map.len() >= Self::MAX_ENTRIES || self.bytes + bytes.len() > Self::MAX_BYTES {
            self.clear(ctx);
        }
        // SAFETY: ctx and v are live; unprotected when the entry goes (clear).
        unsafe { JSValueProtect(ctx, v) };
        self.bytes += bytes.len();
        self.map.insert(v as usize, bytes.into());
    }

    fn clear(&mut self, ctx: JSContextRef) {
        for &key in self.map.keys() {
            // SAFETY: every key is a value protected by `insert`.
            unsafe { JSValueUnprotect(ctx, key as JSValueRef) };
        }
        self.map.clear();
        self.bytes = 0;
    }
}

/// A length JS wrote into shared memory, if it is a sane one.
fn out_len(v: f64) -> Option<usize> {
    (v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0).then_some(v as usize)
}

native_fn! {
    /// `flush(text)`: called by JS when its response queue is full in the middle of `tick`
    /// (see [`take_queued`]).
    fn native_flush(ctx) |st, a| {
        take_queued(st, ctx, arg(a, 0));
        Ok(st.undefined)
    }
}

/// The string responses JS queued during `tick`: one string conversion for all of them
/// instead of a `respond` call each. Shared memory holds SH_OUT_COUNT records (id, status,
/// Content-Type code, header-lines length, body length; lengths in UTF-16 units) and `t` is
/// their header lines and bodies back to back. Resets the count. If `t` is not a string or
/// does not match the records, every queued request is answered 500: bytes are never
/// guessed.
fn take_queued(st: &mut State, ctx: JSContextRef, t: JSValueRef) {
    let n = (st.shared[SH_OUT_COUNT] as usize).min(OUT_CAP);
    st.shared[SH_OUT_COUNT] = 0.0;
    if n == 0 {
        return;
    }
    // SAFETY: ctx and t are live (t may be null: checked first).
    let text = !t.is_null() && unsafe { JSValueIsString(ctx, t) };
    let mut exc: JSValueRef = ptr::null();
    let s = if text {
        // SAFETY: ctx and t are live; the copy is released by JsString.
        JsString(unsafe { JSValueToStringCopy(ctx, t, &mut exc) })
    } else {
        JsString(ptr::null_mut())
    };
    let wide = (!s.0.is_null()).then(|| s.units());
    // (header-lines length, body length in the text; or, for a big body, its index in
    // `outBig` as -1 - index and a text length of 0).
    let lens = |st: &State, k: usize| {
        let r = SH_OUT + k * OUT_STRIDE;
        let b = st.shared[r + 4];
        let body = if b < 0.0 {
            out_len(-1.0 - b).map(|i| (0, Some(i)))
        } else {
            out_len(b).map(|b| (b, None))
        };
        (out_len(st.shared[r + 3]), body)
    };
    let mut total = Some(0usize);
    for k in 0..n {
        total = match (total, lens(st, k)) {
            (Some(t), (Some(h), Some((b, _)))) => Some(t + h + b),
            _ => None,
        };
    }
    let Some(wide) = wide.filter(|w| total == Some(w.len())) else {
        // The records and the text disagree (a bug, or a stop between the two writes):
        // never guess which bytes belong to whom.
        log_line(
            &st.log_prefix,
            3,
            "internal error: response queue out of step; answering 500",
        );
        for k in 0..n {
            let id = st.shared[SH_OUT + k * OUT_STRIDE] as u64;
            if let Some(rid) = take_answer(st, id) {
                st.push_done(rid, 500.0, CT_TEXT, b"", b"Internal Server Error");
            }
        }
        return;
    };
    // All ASCII: the lengths are byte lengths, and each response's bytes stay where one
    // narrowing of the whole text put them. Otherwise convert each piece from its UTF-16
    // units, as `respond` would have (a surrogate pair split between two pieces stays two
    // lone surrogates).
    let base = st.arena.len();
    let ascii = js::is_ascii(wide);
    if ascii {
        js::narrow_ascii(wide, &mut st.arena);
    }
    let mut pos = 0;
    for k in 0..n {
        let (h, b) = lens(st, k);
        let (h, (b, big)) = (h.unwrap_or(0), b.unwrap_or((0, None))); // checked above
        let r = SH_OUT + k * OUT_STRIDE;
        let id = st.shared[r] as u64;
        let (status, ctype) = (st.shared[r + 1], st.shared[r + 2]);
        let (lines, body) = if ascii {
            (
                base + pos..base + pos + h,
                base + pos + h..base + pos + h + b,
            )
        } else {
            let start = st.arena.len();
            js::utf16_to_utf8(&wide[pos..pos + h], &mut st.arena);
            let mid = st.arena.len();
            js::utf16_to_utf8(&wide[pos + h..pos + h + b], &mut st.arena);
            (start..mid, mid..st.arena.len())
        };
        let body = match big {
            None => body,
            Some(i) => {
                let start = st.arena.len();
                // SAFETY: ctx and the protected outBig array are live.
                let v = unsafe { JSObjectGetPropertyAtIndex(ctx, st.out_big, i as u32, &mut exc) };
                // SAFETY: ctx is live; v is checked for null first.
                if !v.is_null() && unsafe { JSValueIsString(ctx, v) } {
                    append_string_body(st, ctx, v);
                }
                start..st.arena.len()
            }
        };
        pos += h + b;
        if let Some(rid) = take_answer(st, id) {
            st.push_done_at(rid, status, ctype, lines, body);
        }
    }
}

native_fn! {
    /// `headers(id)`: `name:value\n` lines, or undefined when the request is gone.
    fn native_headers(ctx) |st, a| {
        let id = num(ctx, arg(a, 0)) as u64;
        match st.pending.get(id) {
            Some(p) => {
                let s = JsString::from_latin1(&p.headers, &mut st.scratch16);
                // SAFETY: ctx and s are live.
                Ok(unsafe { JSValueMakeString(ctx, s.0) })
            }
            // SAFETY: ctx is live.
            None => Ok(unsafe { JSValueMakeUndefined(ctx) }),
        }
    }
}

native_fn! {
    /// `ip(id)`: the peer address without port.
    fn native_ip(ctx) |st, a| {
        let id = num(ctx, arg(a, 0)) as u64;
        match st.pending.get(id) {
            Some(p) => Ok(js::make_string(ctx, &p.peer.ip().to_string())),
            // SAFETY: ctx is live.
            None => Ok(unsafe { JSValueMakeUndefined(ctx) }),
        }
    }
}

native_fn! {
    /// `now()`: milliseconds since the VM started (monotonic), for timers and `performance.now`.
    fn native_now(ctx) |st, _| {
        let ms = st.start.elapsed().as_secs_f64() * 1000.0;
        // SAFETY: ctx is live.
        Ok(unsafe { JSValueMakeNumber(ctx, ms) })
    }
}

native_fn! {
    /// `log(level, text)`: one line to the server log (stderr).
    fn native_log(ctx) |st, a| {
        let level = num(ctx, arg(a, 0));
        let text = string_arg(ctx, arg(a, 1))?;
        log_line(&st.log_prefix, level as u8, &text);
        // SAFETY: ctx is live.
        Ok(unsafe { JSValueMakeUndefined(ctx) })
    }
}

native_fn! {
    /// `utf8Encode(string)`: a `Uint8Array` with the UTF-8 bytes.
    fn native_utf8_encode(ctx) |_, a| {
        let v = arg(a, 0);
        let mut out = Vec::new();
        if !v.is_null() {
            let mut exc: JSValueRef = ptr::null();
            // SAFETY: ctx and v are live; the copy is released by JsString.
            let s = JsString(unsafe { JSValueToStringCopy(ctx, v, &mut exc) });
            if s.0.is_null() {
                return Err("cannot convert to string".into());
            }
            js::append_utf8(&s, &mut out);
        }
        let boxed = out.into_boxed_slice();
        let len = boxed.len();
        let p = Box::into_raw(boxed) as *mut u8;
        let mut exc: JSValueRef = ptr::null();
        // SAFETY: p/len is a leaked Box<[u8]> freed by the deallocator.
        let arr = unsafe {
            JSObjectMakeTypedArrayWithBytesNoCopy(
                ctx,
                K_JS_TYPED_ARRAY_TYPE_UINT8_ARRAY,
                p as *mut c_void,
                len,
                Some(free_boxed_bytes),
                len as *mut c_void,
                &mut exc,
            )
        };
        if arr.is_null() {
            // SAFETY: JSC did not take the bytes.
            unsafe { free_boxed_bytes(p as *mut c_void, len as *mut c_void) };
            return Err("cannot allocate a Uint8Array".into());
        }
        Ok(arr as JSValueRef)
    }
}

native_fn! {
    /// `utf8Decode(bufferOrView, fatal)`: a string.
    fn native_utf8_decode(ctx) |_, a| {
        let bytes = bytes_of(ctx, arg(a, 0)).unwrap_or(&[]);
        // SAFETY: ctx is live; a missing argument is null and reads as false.
        let fatal = !arg(a, 1).is_null() && unsafe { JSValueToBoolean(ctx, arg(a, 1)) };
        let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) if fatal => return Err("TypeError: The encoded data was not valid UTF-8".into()),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        Ok(js::make_string(ctx, &text))
    }
}

native_fn! {
    /// `env()`: the process environment as `NAME=value\0` entries (for `process.env`).
    fn native_env(ctx) |_, _| {
        let mut out = String::new();
        for (k, v) in std::env::vars_os() {
            if let (Some(k), Some(v)) = (k.to_str(), v.to_str()) {
                out.push_str(k);
                out.push('=');
                out.push_str(v);
                out.push('\0');
            }
        }
        Ok(js::make_string(ctx, &out))
    }
}

native_fn! {
    /// `readFile(path)`: the file as UTF-8 text.
    fn native_read_file(ctx) |_, a| {
        let path = string_arg(ctx, arg(a, 0))?;
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Ok(js::make_string(ctx, &text))
    }
}

native_fn! {
    /// `resolve(dir, spec)`: the absolute path of a local module (`.js`, `.json`, `/index.js`
    /// tried in that order), or an error naming what was tried.
    fn native_resolve(ctx) |_, a| {
        let dir = PathBuf::from(string_arg(ctx, arg(a, 0))?);
        let spec = string_arg(ctx, arg(a, 1))?;
        let base = dir.join(&spec);
        let candidates = [
            base.clone(),
            PathBuf::from(format!("{}.js", base.display())),
            PathBuf::from(format!("{}.json", base.display())),
            base.join("index.js"),
        ];
        for c in &candidates {
            if c.is_file() {
                let abs = std::fs::canonicalize(c).unwrap_or_else(|_| c.clone());
                return Ok(js::make_string(ctx, &abs.display().to_string()));
            }
        }
        Err(format!(
            "Cannot find module '{spec}' from {} (tried {})",
            dir.display(),
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

native_fn! {
    /// `compile(source, filename)`: the CommonJS wrapper function of a module, or a SyntaxError
    /// naming `file:line:column`.
    fn native_compile(ctx) |_, a| {
        let source = string_arg(ctx, arg(a, 0))?;
        let file = string_arg(ctx, arg(a, 1))?;
        // Same line numbering as the file: the wrapper opens on the first line.
        let wrapped =
            format!("(function (exports, require, module, __filename, __dirname) {{{source}\n}})");
        let src = JsString::new(&wrapped);
        let url = JsString::new(&file);
        let mut exc: JSValueRef = ptr::null();
        // SAFETY: ctx and strings are live.
        let f = unsafe { JSEvaluateScript(ctx, src.0, ptr::null_mut(), url.0, 1, &mut exc) };
        if f.is_null() {
            return Err(js::syntax_error_location(ctx, exc, &file));
        }
        Ok(f)
    }
}
