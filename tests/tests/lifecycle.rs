//! Timeouts, connection limits, graceful shutdown, and the CLI.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use marg_tests::{is_closed, marg_bin, read_responses, read_to_close, status_of, Server};

#[test]
fn header_timeout_is_408_even_for_slowloris() {
    let s = Server::start(&["--header-timeout", "300ms"]);
    // Partial head, then silence.
    let mut c = s.connect();
    let t0 = Instant::now();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let raw = read_to_close(&mut c);
    assert_eq!(status_of(&raw), 408);
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_millis(280) && dt < Duration::from_secs(2),
        "{dt:?}"
    );
    // Drip-feed: one byte every 50 ms never completes the head in time.
    let mut c = s.connect();
    let t0 = Instant::now();
    let mut closed_at = None;
    for b in
        b"GET / HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n"
    {
        if c.write_all(&[*b]).is_err() {
            closed_at = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if t0.elapsed() > Duration::from_millis(600) {
            break;
        }
    }
    let raw = read_to_close(&mut c);
    assert_eq!(
        status_of(&raw),
        408,
        "{:?} {closed_at:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn idle_keep_alive_timeout_closes_quietly() {
    let s = Server::start(&["--idle-timeout", "300ms"]);
    let mut c = s.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].status, 200);
    // Still open well before the timeout, keeps working.
    std::thread::sleep(Duration::from_millis(150));
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].status, 200);
    let t0 = Instant::now();
    let raw = read_to_close(&mut c);
    assert!(
        raw.is_empty(),
        "idle close sends nothing: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_millis(250) && dt < Duration::from_secs(2),
        "{dt:?}"
    );
    // A connection that never sends anything is closed too.
    let mut c = s.connect();
    assert!(is_closed(&mut c, Duration::from_secs(2)));
}

#[test]
fn max_conns_accepts_and_closes_extra() {
    let s = Server::start(&["--max-conns", "2"]);
    let mut a = s.connect();
    let mut b = s.connect();
    for c in [&mut a, &mut b] {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_responses(c, 1)[0].status, 200);
    }
    let mut extra = s.connect();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(is_closed(&mut extra, Duration::from_secs(2)));
    // The loop did not stall: existing connections still work.
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_responses(&mut a, 1)[0].status, 200);
    drop(b);
    std::thread::sleep(Duration::from_millis(100));
    let mut again = s.connect();
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut again, 1)[0].status, 200);
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut s = Server::start(&["--test-routes", "--shutdown-timeout", "5s"]);
    // An idle keep-alive connection, a request whose body is half sent, and
    // a deferred request.
    let mut idle = s.connect();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut idle, 1)[0].status, 200);
    let mut half = s.connect();
    half.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    let mut slow = s.connect();
    slow.write_all(b"GET /delay?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    // Stopped accepting.
    let refused = std::net::TcpStream::connect(("127.0.0.1", s.port)).map(|mut c| {
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        read_to_close(&mut c).is_empty()
    });
    assert!(refused.unwrap_or(true), "new connections are not served");
    // The idle connection was closed.
    assert!(is_closed(&mut idle, Duration::from_secs(1)));
    // In-flight requests complete, with Connection: close.
    half.write_all(b"world").unwrap();
    let r = read_responses(&mut half, 1);
    assert_eq!(r[0].text(), "helloworld");
    assert_eq!(r[0].header("connection"), Some("close"));
    let r = read_responses(&mut slow, 1);
    assert_eq!(r[0].text(), "delayed\n");
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn shutdown_deadline_bounds_the_wait() {
    let mut s = Server::start(&["--shutdown-timeout", "300ms"]);
    let mut c = s.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finished
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    s.signal("INT");
    assert_eq!(s.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn cli() {
    let out = Command::new(marg_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--port",
        "--host",
        "--workers",
        "--static",
        "--header-timeout",
        "--max-body",
        "--access-log",
        "--dev",
        "--js-cpu-limit",
        "--js-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let out = Command::new(marg_bin()).arg("kernels").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("find_header_end"));
    // An app that cannot be loaded is a clear start-up error (with or
    // without the JS bridge built in).
    let out = Command::new(marg_bin())
        .args([
            "serve",
            "/nonexistent/marg-app.js",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("marg-app.js") || err.contains("JavaScript support not built in"),
        "{err}"
    );
    let out = Command::new(marg_bin())
        .args(["serve", "--bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option"));
    let out = Command::new(marg_bin())
        .args(["serve", "--header-timeout", "soon"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a duration"));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pipelining_client_that_does_not_read_is_held_back() {
    let s = Server::start(&[]);
    let before = rss_kib(s.pid());
    let mut c = s.connect();
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let batch: Vec<u8> = req.iter().copied().cycle().take(req.len() * 4096).collect();
    // Write until the server stops reading (its output is not drained).
    // After a short write the stream continues where it stopped, so that it
    // stays well-formed however far the server reads ahead.
    let mut sent = 0usize;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        match c.write(&batch[sent % batch.len()..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        sent < 200 * 1024 * 1024,
        "the server kept reading: {sent} bytes"
    );
    let grown = rss_kib(s.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "server RSS grew by {grown} KiB with an unread backlog"
    );
    // Everything sent is still answered, in order, once the client reads.
    let complete = sent / req.len();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let mut tail = Vec::new();
    while got < complete {
        let n = std::io::Read::read(&mut c, &mut buf).unwrap();
        assert!(n > 0);
        tail.extend_from_slice(&buf[..n]);
        got += tail.windows(13).filter(|w| w == b"Hello, World!").count();
        let keep = tail.len().saturating_sub(12);
        tail.drain(..keep);
    }
}

#[test]
fn deferred_request_on_a_dropped_connection_is_cancelled() {
    let s = Server::start(&["--test-routes"]);
    for _ in 0..20 {
        let mut c = s.connect();
        c.write_all(b"GET /delay?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut c = s.connect();
    c.write_all(b"GET /delay?ms=10 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_responses(&mut c, 2);
    assert_eq!(r[0].text(), "delayed\n");
    assert_eq!(r[1].text(), "Hello, World!");
}

/// Without an app the server does not map JavaScriptCore (the bridge `dlopen`s it on first
/// use), so the built-in handler stays small: ~3.3 MiB release, ~3.8 MiB debug, versus
/// ~11.4 MiB when the library was linked at start-up.
#[test]
fn no_app_server_stays_under_10_mib_rss() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..40 {
        let batch: Vec<u8> = req.repeat(100);
        c.write_all(&batch).unwrap();
        let r = read_responses(&mut c, 100);
        assert!(r.iter().all(|r| r.status == 200));
    }
    let rss = rss_kib(s.pid());
    eprintln!("no-app RSS after 4,000 requests: {rss} KiB");
    assert!(rss > 0 && rss < 10 * 1024, "RSS {rss} KiB");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid())).unwrap_or_default();
    assert!(
        !maps.contains("javascriptcore"),
        "JavaScriptCore is mapped without an app"
    );
}
