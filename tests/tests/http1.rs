//! Keep-alive, pipelining, chunked both ways, 100-continue, HEAD, HTTP/1.0,
//! absolute-form, deferred responses — against the real binary.

use std::io::Write;
use std::time::{Duration, Instant};

use marg_tests::{curl, is_closed, parse_response, read_responses, read_to_close, Server};

#[test]
fn hello_with_curl_and_keep_alive() {
    let s = Server::start(&[]);
    assert!(s.banner.contains("workers: 1"), "{}", s.banner);
    assert!(s.banner.contains("kernels:"), "{}", s.banner);
    let (ok, body, err) = curl(&["-v", &s.url("/"), &s.url("/json")]);
    assert!(ok);
    assert_eq!(body, b"Hello, World!{\"message\":\"Hello, World!\"}");
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing connection"),
        "{err}"
    );
    assert!(err.contains("< Date: "), "{err}");
    assert!(err.contains("< Server: marg"), "{err}");
}

#[test]
fn keep_alive_raw_many_requests() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    for _ in 0..50 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_responses(&mut c, 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].body, b"Hello, World!");
        assert_eq!(r[0].header("connection"), None);
    }
}

#[test]
fn pipelining_sixteen_in_one_write() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    let mut batch = Vec::new();
    for i in 0..16 {
        if i % 2 == 0 {
            batch.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        } else {
            batch.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            );
        }
    }
    c.write_all(&batch).unwrap();
    let r = read_responses(&mut c, 16);
    assert_eq!(r.len(), 16);
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.status, 200);
        if i % 2 == 0 {
            assert_eq!(r.header("content-type"), Some("application/json"));
        } else {
            assert_eq!(r.body, b"hello");
        }
    }
}

#[test]
fn pipelined_requests_split_across_writes() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let all = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for piece in all.chunks(7) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = read_responses(&mut c, 3);
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].body, b"{\"message\":\"Hello, World!\"}");
}

#[test]
fn chunked_request_body_with_extensions_and_trailers() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x\r\n\r\n\
          5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n\
          GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r = read_responses(&mut c, 2);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].text(), "hello 0123456789");
    assert_eq!(r[0].header("content-type"), Some("text/x"));
    assert_eq!(r[1].text(), "Hello, World!");
}

#[test]
fn chunked_request_with_curl() {
    let s = Server::start(&["--test-routes"]);
    let dir = std::env::temp_dir().join(format!("marg-chunked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("body.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&f, &data).unwrap();
    let (ok, body, _) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", f.display()),
        &s.url("/echo"),
    ]);
    assert!(ok);
    assert_eq!(body.len(), data.len());
    assert!(body == data);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chunked_response() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    c.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_responses(&mut c, 1);
    assert_eq!(r[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(r[0].header("content-length"), None);
    assert_eq!(r[0].text(), "chunk one\nchunk two\nchunk three\n");
    let (ok, body, _) = curl(&[&s.url("/stream")]);
    assert!(ok);
    assert_eq!(body, b"chunk one\nchunk two\nchunk three\n");
    // HTTP/1.0 cannot take chunked: the body is close-delimited.
    let raw = s.raw(b"GET /stream HTTP/1.0\r\n\r\n");
    let (r, _) = parse_response(&raw, false).unwrap();
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "chunk one\nchunk two\nchunk three\n");
}

#[test]
fn expect_100_continue() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello world").unwrap();
    let r = read_responses(&mut c, 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].text(), "hello world");
    // curl waits for 100 Continue on large bodies.
    let (ok, body, err) = curl(&[
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &"x".repeat(5000),
        &s.url("/echo"),
    ]);
    assert!(ok);
    assert_eq!(body.len(), 5000);
    assert!(err.contains("100 Continue"), "{err}");
}

#[test]
fn head_has_length_but_no_body() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = vec![0u8; 4096];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap();
    let (head, used) = parse_response(&buf[..n], true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    let (next, _) = parse_response(&buf[used..n], false).unwrap();
    assert_eq!(next.text(), "{\"message\":\"Hello, World!\"}");
    let (ok, _, err) = curl(&["-I", "-v", &s.url("/")]);
    assert!(ok && err.contains("Content-Length: 13"), "{err}");
}

#[test]
fn connection_close_and_http10_rules() {
    let s = Server::start(&[]);
    // HTTP/1.1 + Connection: close -> close after the response.
    let mut c = s.connect();
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let raw = read_to_close(&mut c);
    let all = marg_tests::parse_all(&raw);
    assert_eq!(all.len(), 1, "nothing after a closing response");
    assert_eq!(all[0].header("connection"), Some("close"));
    // HTTP/1.0 default: close.
    let raw = s.raw(b"GET / HTTP/1.0\r\n\r\n");
    let r = parse_response(&raw, false).unwrap().0;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // HTTP/1.0 keep-alive on request.
    let mut c = s.connect();
    for _ in 0..3 {
        c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_responses(&mut c, 1);
        assert_eq!(r[0].header("connection"), Some("keep-alive"));
    }
    assert!(!is_closed(&mut c, Duration::from_millis(100)));
}

#[test]
fn absolute_form_and_query() {
    let s = Server::start(&[]);
    let raw = s.raw(b"GET http://example.com/json?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    let r = parse_response(&raw, false).unwrap().0;
    assert_eq!(r.text(), "{\"message\":\"Hello, World!\"}");
}

#[test]
fn deferred_responses_keep_request_order() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    let t0 = Instant::now();
    c.write_all(b"GET /delay?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /delay?ms=50 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_responses(&mut c, 4);
    assert!(t0.elapsed() >= Duration::from_millis(190));
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].text(), "delayed\n");
    assert_eq!(r[1].header("content-type"), Some("application/json"));
    assert_eq!(r[2].text(), "delayed\n");
    assert_eq!(r[3].text(), "Hello, World!");
}

#[test]
fn handler_panic_is_a_500() {
    let s = Server::start(&["--test-routes"]);
    let raw = s.raw(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = parse_response(&raw, false).unwrap().0;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    // The worker survives.
    let (ok, body, _) = curl(&[&s.url("/")]);
    assert!(ok && body == b"Hello, World!");
}

#[test]
fn access_log_lines() {
    let s = Server::start(&["--access-log", "--test-routes"]);
    let (ok, _, _) = curl(&[&s.url("/json?q=1"), &s.url("/delay?ms=20")]);
    assert!(ok);
    let t0 = Instant::now();
    let logged = |line: &str| s.stdout.lock().unwrap().contains(line);
    // Deferred requests are logged when they complete, with their status.
    while !logged("\"GET /json?q=1\" 200 27") || !logged("\"GET /delay?ms=20\" 200 8") {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "log: {}",
            s.stdout.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn several_workers_share_one_port() {
    let s = Server::start_raw(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        "3",
    ]);
    assert!(s.banner.contains("workers: 3"));
    for _ in 0..20 {
        let (ok, body, _) = curl(&[&s.url("/")]);
        assert!(ok && body == b"Hello, World!");
    }
}

#[test]
fn half_close_gets_the_response_then_a_prompt_close() {
    let s = Server::start(&["--idle-timeout", "30s"]);
    let mut c = s.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    marg_tests::shutdown_write(&c);
    let t0 = Instant::now();
    let raw = read_to_close(&mut c);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        t0.elapsed()
    );
    let all = marg_tests::parse_all(&raw);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].header("content-type"), Some("application/json"));
}

/// The JS bridge's pattern: every request deferred and completed in the
/// next loop tick, with no deadline. A keep-alive request that arrives while
/// the previous response is being flushed must still get its tick.
#[test]
fn tick_completed_requests_on_keep_alive() {
    let s = Server::start(&["--test-routes"]);
    let mut c = s.connect();
    let t0 = Instant::now();
    for _ in 0..200 {
        c.write_all(b"GET /tick HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_responses(&mut c, 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].text(), "ticked\n");
    }
    c.write_all(&b"GET /tick HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16))
        .unwrap();
    assert_eq!(read_responses(&mut c, 16).len(), 16);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let urls: Vec<String> = (0..5).map(|_| s.url("/tick")).collect();
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let (ok, body, _) = curl(&args);
    assert!(ok);
    assert_eq!(body, b"ticked\n".repeat(5));
}
