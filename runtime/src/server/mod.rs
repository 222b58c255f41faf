//! The server: configuration, start-up (one listener and worker thread per
//! core), signal handling and graceful shutdown.
//!
//! [`Server::start`] binds every worker's `SO_REUSEPORT` listener on the
//! calling thread (so that port 0 resolves to one ephemeral port shared by
//! all workers), spawns the workers, and returns a handle; [`run`] does that
//! and then waits for SIGINT/SIGTERM, shuts down gracefully and returns.

pub mod date;
pub mod sys;
pub mod timer;
mod uring;
mod worker;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::handler::HandlerFactory;
use crate::http1::Limits;

/// Server configuration (all `marg serve` flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port (0: an ephemeral port, printed at start-up). `None`: not given on the command
    /// line, so the app's `Marg.listen(port)` if it asked for one, else [`DEFAULT_PORT`].
    pub port: Option<u16>,
    /// Worker threads (each with its own listener and loop).
    pub workers: usize,
    /// Request size limits.
    pub limits: Limits,
    /// Time allowed from a request's first byte to the end of its head
    /// (-> 408).
    pub header_timeout: Duration,
    /// Idle keep-alive timeout (and body/write inactivity timeout).
    pub idle_timeout: Duration,
    /// Open connections per worker; more are accepted and closed at once.
    pub max_conns: usize,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Print one line per request to stdout.
    pub access_log: bool,
    /// Serve files from this directory.
    pub static_dir: Option<PathBuf>,
    /// The JavaScript application, if any.
    pub app: Option<PathBuf>,
    /// Enable the built-in test routes of the default handler.
    pub test_routes: bool,
    /// Log accept errors and similar events to stderr.
    pub verbose: bool,
    /// Listen backlog.
    pub backlog: i32,
    /// JavaScript apps: put stacks of handler errors into 500 responses (`--dev`).
    pub dev: bool,
    /// JavaScript apps: CPU time one request's handler may run in one VM entry before it
    /// is stopped with a 503 (`--js-cpu-limit`); `None`: the bridge's default (5 s).
    pub js_cpu_limit: Option<Duration>,
    /// JavaScript apps: how long a request may stay unanswered before a 504
    /// (`--js-timeout`); `None`: the bridge's default (30 s).
    pub js_timeout: Option<Duration>,
    /// The workers' I/O backend (`--io`).
    pub io: IoMode,
}

/// Which system interface the workers use for socket I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring where the kernel allows it (6.1 or later, not refused by a
    /// seccomp profile or `kernel.io_uring_disabled`), else epoll.
    #[default]
    Auto,
    /// Edge-triggered epoll with `read` / `send`.
    Epoll,
    /// io_uring; starting fails if it is not available.
    Uring,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "epoll" => Ok(IoMode::Epoll),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            _ => Err(format!("unknown I/O backend '{s}' (auto, epoll, uring)")),
        }
    }
}

/// The port when neither the command line nor the app names one.
pub const DEFAULT_PORT: u16 = 3000;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: None,
            workers: sys::cpu_count(),
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_conns: 10_000,
            shutdown_grace: Duration::from_secs(10),
            access_log: false,
            static_dir: None,
            app: None,
            test_routes: false,
            verbose: false,
            backlog: 4096,
            dev: false,
            js_cpu_limit: None,
            js_timeout: None,
            io: IoMode::default(),
        }
    }
}

/// Why the server could not start or run.
#[derive(Debug)]
pub enum ServerError {
    /// Binding the listen address failed.
    Bind(SocketAddr, std::io::Error),
    /// Creating epoll/eventfd or a thread failed.
    Setup(std::io::Error),
    /// The handler factory refused to create a worker's handler.
    Handler(usize, String),
    /// Kernel selection failed (bad `MARG_KERNELS`).
    Kernels(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind(a, e) => write!(
                f,
                "cannot listen on {a}: {e} (is the port in use? try --port)"
            ),
            ServerError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
            ServerError::Handler(w, e) => write!(f, "worker {w}: cannot create the handler: {e}"),
            ServerError::Kernels(e) => write!(f, "kernel selection failed: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A cross-thread message for a worker.
#[derive(Debug)]
pub(crate) enum Message {
    /// Stop accepting, finish in-flight requests, exit.
    Shutdown,
}

/// A worker's mailbox: a queue plus an eventfd that wakes its loop. Used
/// only off the request path (shutdown, future cross-thread work).
pub(crate) struct Mailbox {
    fd: sys::Fd,
    queue: Mutex<Vec<Message>>,
}

impl Mailbox {
    fn send(&self, m: Message) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(m);
        sys::eventfd_signal(self.fd.0);
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    io: &'static str,
    mailboxes: Vec<Arc<Mailbox>>,
    threads: Vec<JoinHandle<Result<(), ServerError>>>,
}

impl Server {
    /// Binds the listeners and starts the workers. Handlers are created on
    /// the worker threads; an error from any of them is returned here.
    pub fn start(cfg: Config, factory: Arc<dyn HandlerFactory>) -> Result<Server, ServerError> {
        let cfg = Arc::new(cfg);
        let workers = cfg.workers.max(1);
        let mut addr = SocketAddr::new(cfg.host, cfg.port.unwrap_or(DEFAULT_PORT));
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            let l = sys::listen(&addr, cfg.backlog).map_err(|e| ServerError::Bind(addr, e))?;
            if addr.port() == 0 {
                addr = sys::local_addr(l.0).map_err(ServerError::Setup)?;
            }
            listeners.push(l);
        }
        let mut mailboxes = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<&'static str, ServerError>>();
        for (i, listener) in listeners.into_iter().enumerate() {
            let mb = Arc::new(Mailbox {
                fd: sys::eventfd().map_err(ServerError::Setup)?,
                queue: Mutex::new(Vec::new()),
            });
            mailboxes.push(mb.clone());
            let cfg = cfg.clone();
            let factory = factory.clone();
            let ready = ready_tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("marg-worker-{i}"))
                .spawn(move || {
                    let handler = match factory.create(i) {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = ready.send(Err(ServerError::Handler(i, e)));
                            return Ok(());
                        }
                    };
                    let w = match worker::Worker::new(i, cfg, listener, mb, handler) {
                        Ok(w) => w,
                        Err(e) => {
                            let _ = ready.send(Err(ServerError::Setup(e)));
                            return Ok(());
                        }
                    };
                    let _ = ready.send(Ok(w.backend()));
                    drop(ready);
                    w.run();
                    Ok(())
                })
                .map_err(ServerError::Setup)?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut server = Server {
            addr,
            io: "epoll",
            mailboxes,
            threads,
        };
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(io)) => server.io = io,
                Ok(Err(e)) => {
                    server.shutdown();
                    let _ = server.join();
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        Ok(server)
    }

    /// The bound address (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The workers' I/O backend: "io_uring" or "epoll" (see [`IoMode`]).
    pub fn io_backend(&self) -> &'static str {
        self.io
    }

    /// Asks every worker to shut down gracefully (returns at once).
    pub fn shutdown(&self) {
        for m in &self.mailboxes {
            m.send(Message::Shutdown);
        }
    }

    /// Waits for every worker to exit.
    pub fn join(self) -> Result<(), ServerError> {
        for t in self.threads {
            if let Ok(Err(e)) = t.join() {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Starts the server, calls `on_ready` with its address, waits for SIGINT or
/// SIGTERM, shuts down gracefully and returns. A second signal exits at once.
pub fn run(
    cfg: Config,
    factory: Arc<dyn HandlerFactory>,
    on_ready: impl FnOnce(&Server),
) -> Result<(), ServerError> {
    // Block the signals before spawning so that every worker inherits the
    // mask and only this thread receives them.
    let set = sys::block_shutdown_signals();
    let server = Server::start(cfg, factory)?;
    on_ready(&server);
    sys::wait_signal(&set);
    server.shutdown();
    std::thread::spawn(move || {
        sys::wait_signal(&set);
        eprintln!("marg: second signal, exiting now");
        std::process::exit(130);
    });
    server.join()
}
