//! JavaScriptCore handlers for Marg.
//!
//! This crate embeds Debian's JavaScriptCore (WebKitGTK 2.50, `libjavascriptcoregtk-4.0`)
//! through hand-written bindings ([`ffi`], resolved with `dlopen` when the first app loads)
//! and implements the runtime's [`Handler`] trait with it: one VM (context group + global
//! context) per worker thread, the app evaluated once per worker at start-up.
//!
//! The API that apps see (`Marg.get(...)`, `req`, `res`, timers, `require`, ...) lives in a
//! JS prelude (`src/prelude.js`) evaluated once per VM; the Rust side ([`engine`]) queues
//! requests in [`Handler::handle`] and enters the VM once per event-loop tick for all of them,
//! which is what the measured JSC costs (DESIGN.md §6) call for. The JS API is documented in
//! the book, `book/src/js-api.md`.

pub mod engine;
pub mod ffi;
mod js;

pub use engine::{Engine, LoadError, Options};

use runtime::cli::{App, Error as CliError};
use runtime::server::Config;
use runtime::{CompletionSink, Handled, Handler, HandlerFactory, Request, RequestId, Response};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A worker's JS handler: every request is deferred and answered from [`Handler::tick`].
pub struct JsHandler {
    engine: Engine,
}

impl JsHandler {
    /// Wraps a loaded engine.
    pub fn new(engine: Engine) -> JsHandler {
        JsHandler { engine }
    }
}

impl Handler for JsHandler {
    fn handle(&mut self, req: &Request<'_>, _res: &mut Response<'_>) -> Handled {
        self.engine.push(req);
        Handled::Deferred
    }

    fn tick(&mut self, sink: &mut CompletionSink<'_>) {
        self.engine.tick(&mut |rid, resp| {
            sink.complete_ref(rid, resp);
        });
    }

    fn cancelled(&mut self, id: RequestId) {
        self.engine.cancel(id);
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        self.engine.next_deadline()
    }

    fn busy(&self) -> bool {
        self.engine.busy()
    }
}

/// Creates a [`JsHandler`] on each worker thread, loading the same app file.
#[derive(Debug, Clone)]
pub struct JsFactory {
    app: PathBuf,
    opts: Options,
    port: Option<u16>,
}

impl JsFactory {
    /// Loads the app once on the calling thread, so that a syntax error or an exception at
    /// start-up is reported before any worker starts, and records the port the app passed to
    /// `Marg.listen` ([`JsFactory::listen_port`]).
    pub fn new(app: impl Into<PathBuf>, opts: Options) -> Result<JsFactory, LoadError> {
        let app = app.into();
        let engine = Engine::new(&app, opts.clone())?;
        let port = engine.listen_port();
        drop(engine);
        Ok(JsFactory { app, opts, port })
    }

    /// The port given to `Marg.listen(port)` in the app, if any (the CLI's `--port` wins).
    pub fn listen_port(&self) -> Option<u16> {
        self.port
    }
}

impl HandlerFactory for JsFactory {
    fn create(&self, worker: usize) -> Result<Box<dyn Handler>, String> {
        let opts = Options {
            worker,
            ..self.opts.clone()
        };
        let engine = Engine::new(&self.app, opts).map_err(|e| e.to_string())?;
        Ok(Box::new(JsHandler::new(engine)))
    }
}

/// The runtime's [`runtime::cli::JsLoader`]: loads `app` once on the calling thread (so that a
/// syntax error stops `marg serve` before any worker starts) and returns the per-worker
/// factory with the port the app passed to `Marg.listen`.
///
/// The settings come from the command line ([`Config::dev`], [`Config::js_cpu_limit`],
/// [`Config::js_timeout`]); where a flag is not given, from the environment: `MARG_DEV=1`,
/// `MARG_JS_CPU_LIMIT`, `MARG_JS_TIMEOUT` (see [`options`]).
///
/// A broken app (unreadable, syntax error, exception at start-up, JavaScriptCore missing) is
/// an error with exit status 1 whose message reads `<file>:<line>:<column>: <error>`.
pub fn load(app: &Path, cfg: &Config) -> Result<App, CliError> {
    let opts = options(cfg)?;
    match JsFactory::new(app, opts) {
        Ok(f) => Ok(App {
            port: f.listen_port(),
            factory: Arc::new(f),
        }),
        Err(e) => Err(CliError::app(e.to_string())),
    }
}

/// The bridge's settings: the command line's where given, else the environment's
/// ([`options_from_env`]), else the defaults.
pub fn options(cfg: &Config) -> Result<Options, String> {
    let mut o = options_from_env()?;
    o.dev |= cfg.dev;
    if let Some(d) = cfg.js_cpu_limit {
        o.cpu_limit = d;
    }
    if let Some(d) = cfg.js_timeout {
        o.response_timeout = d;
    }
    Ok(o)
}

/// Reads the bridge's settings from `MARG_DEV`, `MARG_JS_CPU_LIMIT`, `MARG_JS_TIMEOUT`.
pub fn options_from_env() -> Result<Options, String> {
    let mut o = Options::default();
    if let Ok(v) = std::env::var("MARG_DEV") {
        o.dev = !matches!(v.as_str(), "" | "0" | "false" | "no");
    }
    if let Ok(v) = std::env::var("MARG_JS_CPU_LIMIT") {
        o.cpu_limit = parse_duration("MARG_JS_CPU_LIMIT", &v)?;
    }
    if let Ok(v) = std::env::var("MARG_JS_TIMEOUT") {
        o.response_timeout = parse_duration("MARG_JS_TIMEOUT", &v)?;
    }
    Ok(o)
}

/// `250ms`, `5s`, `2m` or plain seconds.
fn parse_duration(name: &str, v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(Duration::from_secs_f64(x * scale)),
        _ => Err(format!(
            "{name}={v:?}: expected a duration like 250ms, 5s or 2m"
        )),
    }
}
