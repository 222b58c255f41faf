//! The `marg` command line: `marg serve [APP] [flags]`, `marg kernels`.
//!
//! The binary's `main` is one line, [`main`]`(js)`, where `js` is the
//! JavaScript loader when the bridge is built in (the runtime does not
//! depend on it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::handler::{Handler, HandlerFactory};
use crate::hello::HelloHandler;
use crate::server::{self, Config, DEFAULT_PORT};
use crate::static_files::StaticFiles;

/// Loads a JavaScript app (provided by `jsc_bridge`); the JS settings are
/// [`Config::dev`], [`Config::js_cpu_limit`] and [`Config::js_timeout`].
pub type JsLoader = fn(&Path, &Config) -> Result<App, Error>;

/// A loaded app.
pub struct App {
    /// Creates the per-worker handlers.
    pub factory: Arc<dyn HandlerFactory>,
    /// The port the app asked for (`Marg.listen(port)`); the CLI's `--port` wins.
    pub port: Option<u16>,
}

/// Why `marg` stops: the message (printed as `marg: MESSAGE`) and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, e.g. `app.js:2:13: SyntaxError: ...`.
    pub message: String,
    /// The process exit status: [`Error::USAGE`] or [`Error::APP`].
    pub status: u8,
}

impl Error {
    /// Exit status for bad command lines and start-up failures of the server.
    pub const USAGE: u8 = 2;
    /// Exit status for an app that does not load (unreadable, syntax error, threw).
    pub const APP: u8 = 1;

    /// An app load failure (exit status 1).
    pub fn app(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            status: Error::APP,
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error {
            message,
            status: Error::USAGE,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

const HELP: &str = "\
marg - a fast HTTP server

USAGE:
    marg serve [APP] [OPTIONS]    serve APP (a JavaScript file), or Hello, World!
    marg kernels                  list the kernel variants this CPU selects
    marg --help | --version

SERVE OPTIONS:
    --host ADDR               address to listen on [default: 0.0.0.0]
    --port PORT, -p PORT      port; 0 picks a free one [default: the app's
                              Marg.listen(port), else 3000]
    --workers N, -w N         worker threads, one per core [default: CPU count]
    --static DIR              serve files from DIR (GET/HEAD, Range, ETag, 304);
                              missing files fall through to APP
    --access-log              print one line per request to stdout
    --max-header-bytes N      largest request head -> 431 [default: 16384]
    --max-target N            longest request-target -> 414 [default: 8192]
    --max-body N              largest request body -> 413 [default: 1048576]
    --max-headers N           most header fields -> 431 [default: 100]
    --header-timeout DUR      first byte to end of head -> 408 [default: 10s]
    --idle-timeout DUR        idle keep-alive / stalled body or write [default: 60s]
    --max-conns N             connections per worker; beyond: accept and close
                              [default: 10000]
    --shutdown-timeout DUR    graceful shutdown deadline for in-flight requests
                              [default: 10s]
    --test-routes             enable /echo, /stream, /delay?ms=N, /panic (tests)
    --io auto|epoll|uring     socket I/O: io_uring where the kernel allows it,
                              else epoll [default: auto]
    --verbose                 log accept errors and the like to stderr

JAVASCRIPT APP OPTIONS:
    --dev                     put stack traces of handler errors into 500
                              responses (development only)
    --js-cpu-limit SECONDS    CPU time a request's handler may run before it is
                              stopped with 503 [default: 5]
    --js-timeout SECONDS      time a request may stay unanswered before 504
                              [default: 30]

    DUR is a number with an optional unit: 250ms, 10s, 2m (default: seconds);
    SECONDS also takes one (--js-cpu-limit 250ms).
    SIGINT/SIGTERM: stop accepting, finish in-flight requests, exit 0.
    Exit status: 0 after a clean shutdown, 1 when APP does not load (the error
    names file:line:column), 2 for bad options and other start-up failures.

ENVIRONMENT:
    MARG_KERNELS=LEVEL        force a kernel level (baseline, avx2, avx512, ...)
    MARG_IO=auto|epoll|uring, MARG_DEV=1, MARG_JS_CPU_LIMIT=DUR, MARG_JS_TIMEOUT=DUR
                              fallbacks for --io, --dev, --js-cpu-limit,
                              --js-timeout
";

/// Runs the `marg` command line; `js` loads a JavaScript app.
pub fn main(js: Option<JsLoader>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, js) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("marg: {e}");
            ExitCode::from(e.status)
        }
    }
}

fn run(args: &[String], js: Option<JsLoader>) -> Result<(), Error> {
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            print!("{HELP}");
            Ok(())
        }
        Some("-V") | Some("--version") => {
            println!("marg {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("kernels") => Ok(kernels_cmd()?),
        Some("serve") => {
            let cfg = parse_serve(&args[1..])?;
            match cfg {
                Some(cfg) => serve(cfg, js),
                None => {
                    print!("{HELP}");
                    Ok(())
                }
            }
        }
        Some(other) => Err(format!("unknown command {other:?}; try `marg --help`").into()),
    }
}

fn kernels_cmd() -> Result<(), String> {
    let selected = kernels::init().map_err(|e| e.to_string())?;
    println!("kernel                    selected   available");
    for k in kernels::registry() {
        let sel = k.select().map(|v| v.name).unwrap_or("-");
        let all: Vec<&str> = k.variants.iter().map(|v| v.name).collect();
        println!("{:<25} {:<10} {}", k.name, sel, all.join(" "));
    }
    if kernels::registry().is_empty() {
        println!("(no asm kernels built in: every kernel runs its reference Rust implementation)");
    }
    let _ = selected;
    Ok(())
}

/// A one-line summary of the selected kernel variants.
pub fn kernel_summary() -> Result<String, String> {
    let sel = kernels::init().map_err(|e| e.to_string())?;
    if sel.is_empty() {
        return Ok("reference".into());
    }
    // Group kernels by variant: "avx2 (find_header_end, scan_token), baseline (...)".
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in sel {
        match groups.iter_mut().find(|g| g.0 == v) {
            Some(g) => g.1.push(k),
            None => groups.push((v, vec![k])),
        }
    }
    Ok(groups
        .iter()
        .map(|(v, ks)| format!("{v} [{}]", ks.join(" ")))
        .collect::<Vec<_>>()
        .join(", "))
}

fn parse_duration(flag: &str, v: &str) -> Result<Duration, String> {
    let bad = || format!("{flag} {v:?}: expected a duration like 250ms, 10s or 2m");
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86400.0 * 365.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v:?}: expected a number"))
}

/// Parses `marg serve` arguments; `Ok(None)` for `--help`.
pub fn parse_serve(args: &[String]) -> Result<Option<Config>, String> {
    let mut cfg = Config::default();
    if let Ok(v) = std::env::var("MARG_IO") {
        cfg.io = v.parse().map_err(|e| format!("MARG_IO: {e}"))?;
    }
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a, None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value; see `marg serve --help`"))
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--host" => {
                let v = value()?;
                cfg.host = v.parse().map_err(|_| {
                    format!("--host {v:?}: expected an IP address like 127.0.0.1 or ::")
                })?;
            }
            "--port" | "-p" => cfg.port = Some(parse_num(flag, &value()?)?),
            "--workers" | "-w" => {
                cfg.workers = parse_num(flag, &value()?)?;
                if cfg.workers == 0 || cfg.workers > 1024 {
                    return Err("--workers must be between 1 and 1024".into());
                }
            }
            "--static" => cfg.static_dir = Some(PathBuf::from(value()?)),
            "--access-log" => cfg.access_log = true,
            "--test-routes" => cfg.test_routes = true,
            "--verbose" => cfg.verbose = true,
            "--io" => cfg.io = value()?.parse()?,
            "--dev" => cfg.dev = true,
            "--js-cpu-limit" => cfg.js_cpu_limit = Some(parse_duration(flag, &value()?)?),
            "--js-timeout" => cfg.js_timeout = Some(parse_duration(flag, &value()?)?),
            "--max-header-bytes" => cfg.limits.max_header_bytes = parse_num(flag, &value()?)?,
            "--max-target" => cfg.limits.max_target = parse_num(flag, &value()?)?,
            "--max-body" => cfg.limits.max_body = parse_num(flag, &value()?)?,
            "--max-headers" => cfg.limits.max_headers = parse_num(flag, &value()?)?,
            "--header-timeout" => cfg.header_timeout = parse_duration(flag, &value()?)?,
            "--idle-timeout" => cfg.idle_timeout = parse_duration(flag, &value()?)?,
            "--shutdown-timeout" => cfg.shutdown_grace = parse_duration(flag, &value()?)?,
            "--max-conns" => cfg.max_conns = parse_num(flag, &value()?)?,
            _ if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}; see `marg serve --help`"));
            }
            _ => {
                if cfg.app.is_some() {
                    return Err(format!(
                        "unexpected argument {a:?}: only one APP may be given"
                    ));
                }
                cfg.app = Some(PathBuf::from(a));
            }
        }
        i += 1;
    }
    if cfg.limits.max_header_bytes < 64 || cfg.limits.max_header_bytes > 1 << 20 {
        return Err("--max-header-bytes must be between 64 and 1048576".into());
    }
    if cfg.limits.max_headers == 0 || cfg.limits.max_headers > 10_000 {
        return Err("--max-headers must be between 1 and 10000".into());
    }
    if cfg.limits.max_body > 1 << 32 {
        return Err("--max-body must be at most 4 GiB".into());
    }
    Ok(Some(cfg))
}

/// Creates the default handler stack: static files (if configured) over
/// `Hello, World!`.
struct DefaultFactory {
    static_dir: Option<PathBuf>,
    test_routes: bool,
    inner: Option<Arc<dyn HandlerFactory>>,
}

impl HandlerFactory for DefaultFactory {
    fn create(&self, worker: usize) -> Result<Box<dyn Handler>, String> {
        let (base, has_app): (Box<dyn Handler>, bool) = match &self.inner {
            Some(f) => (f.create(worker)?, true),
            None => (Box::new(HelloHandler::new(self.test_routes)), false),
        };
        match &self.static_dir {
            Some(dir) => Ok(Box::new(StaticFiles::new(dir, has_app.then_some(base))?)),
            None => Ok(base),
        }
    }
}

fn serve(mut cfg: Config, js: Option<JsLoader>) -> Result<(), Error> {
    let kernels = kernel_summary()?;
    let app = match &cfg.app {
        Some(app) => match js {
            Some(load) => Some(load(app, &cfg)?),
            None => {
                return Err(format!(
                    "cannot run {}: JavaScript support not built in (this marg binary has no jsc-bridge); \
                     run `marg serve` without an app for the built-in handler",
                    app.display()
                )
                .into())
            }
        },
        None => None,
    };
    // `--port` wins over the app's `Marg.listen(port)`, which wins over the default.
    let app_port = app.as_ref().and_then(|a| a.port);
    cfg.port = Some(cfg.port.or(app_port).unwrap_or(DEFAULT_PORT));
    let app_factory = app.map(|a| a.factory);
    let factory: Arc<dyn HandlerFactory> = Arc::new(DefaultFactory {
        static_dir: cfg.static_dir.clone(),
        test_routes: cfg.test_routes,
        inner: app_factory,
    });
    let workers = cfg.workers;
    let what = match (&cfg.app, &cfg.static_dir) {
        (Some(a), _) => a.display().to_string(),
        (None, Some(d)) => format!("static {}", d.display()),
        (None, None) => "Hello, World!".into(),
    };
    server::run(cfg, factory, |s| {
        let a = s.local_addr();
        let host = if a.is_ipv6() {
            format!("[{}]", a.ip())
        } else {
            a.ip().to_string()
        };
        println!(
            "marg listening on http://{host}:{} ({what}; workers: {workers}; io: {}; kernels: {kernels})",
            a.port(),
            s.io_backend()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| e.to_string())?;
    eprintln!("marg: shut down cleanly");
    Ok(())
}
