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
use crate::server::{self, Config};
use crate::static_files::StaticFiles;

/// Loads a JavaScript app and returns the factory of its per-worker
/// handlers (provided by `jsc_bridge`).
pub type JsLoader = fn(&Path, &Config) -> Result<Arc<dyn HandlerFactory>, String>;

const HELP: &str = "\
marg - a fast HTTP server

USAGE:
    marg serve [APP] [OPTIONS]    serve APP (a JavaScript file), or Hello, World!
    marg kernels                  list the kernel variants this CPU selects
    marg --help | --version

SERVE OPTIONS:
    --host ADDR               address to listen on [default: 0.0.0.0]
    --port PORT, -p PORT      port; 0 picks a free one [default: 3000]
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
    --verbose                 log accept errors and the like to stderr

    DUR is a number with an optional unit: 250ms, 10s, 2m (default: seconds).
    SIGINT/SIGTERM: stop accepting, finish in-flight requests, exit 0.

ENVIRONMENT:
    MARG_KERNELS=LEVEL        force a kernel level (baseline, avx2, avx512, ...)
";

/// Runs the `marg` command line; `js` loads a JavaScript app.
pub fn main(js: Option<JsLoader>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, js) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("marg: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String], js: Option<JsLoader>) -> Result<(), String> {
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            print!("{HELP}");
            Ok(())
        }
        Some("-V") | Some("--version") => {
            println!("marg {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("kernels") => kernels_cmd(),
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
        Some(other) => Err(format!("unknown command {other:?}; try `marg --help`")),
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
            "--port" | "-p" => cfg.port = parse_num(flag, &value()?)?,
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

fn serve(cfg: Config, js: Option<JsLoader>) -> Result<(), String> {
    let kernels = kernel_summary()?;
    let app_factory = match &cfg.app {
        Some(app) => match js {
            Some(load) => Some(load(app, &cfg)?),
            None => {
                return Err(format!(
                    "cannot run {}: JavaScript support not built in (this marg binary has no jsc-bridge); \
                     run `marg serve` without an app for the built-in handler",
                    app.display()
                ))
            }
        },
        None => None,
    };
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
            "marg listening on http://{host}:{} ({what}; workers: {workers}; kernels: {kernels})",
            a.port()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| e.to_string())?;
    eprintln!("marg: shut down cleanly");
    Ok(())
}
