//! JavaScriptCore handlers for Marg.
//!
//! This crate embeds Debian's JavaScriptCore (WebKitGTK 2.50, `libjavascriptcoregtk-4.0`)
//! through hand-written `extern "C"` bindings ([`ffi`]) and implements the runtime's
//! [`Handler`] trait with it: one VM (context group + global context) per worker thread, the
//! app evaluated once per worker at start-up.
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

use runtime::{CompletionSink, Handled, Handler, HandlerFactory, Request, RequestId, Response};
use std::path::PathBuf;
use std::time::Instant;

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
            sink.complete(rid, resp);
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
