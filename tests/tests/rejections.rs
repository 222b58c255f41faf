//! Every request-smuggling door and limit: the status code, and that the
//! connection is closed afterwards.

use std::io::Write;
use std::time::Duration;

use marg_tests::{is_closed, read_responses, status_of, Server};

/// Sends `req` and expects `status` and a closed connection.
fn rejects(s: &Server, req: &[u8], status: u16) {
    let mut c = s.connect();
    c.write_all(req).unwrap();
    let r = read_responses(&mut c, 1);
    assert_eq!(
        r.len(),
        1,
        "no response to {:?}",
        String::from_utf8_lossy(req)
    );
    assert_eq!(
        r[0].status,
        status,
        "for {:?}: {:?}",
        String::from_utf8_lossy(req),
        r[0].text()
    );
    assert_eq!(r[0].header("connection"), Some("close"));
    assert!(
        is_closed(&mut c, Duration::from_secs(2)),
        "not closed after {status}"
    );
}

#[test]
fn smuggling_vectors_are_400() {
    let s = Server::start(&["--test-routes"]);
    let cases: &[&[u8]] = &[
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: y\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX\x00: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"GET / http/1.1\r\nHost: x\r\n\r\n",
        b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for c in cases {
        rejects(&s, c, 400);
    }
}

#[test]
fn bad_chunks_are_400() {
    let s = Server::start(&["--test-routes"]);
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let bodies: &[&[u8]] = &[
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"10000000000000000\r\n",
        b"ffffffffffffffffff\r\n",
        b"0\r\nBad Trailer: x\r\n\r\n",
        b"0\r\nX: a\x00\r\n\r\n",
        b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
    ];
    for b in bodies {
        let mut req = head.clone();
        req.extend_from_slice(b);
        rejects(&s, &req, 400);
    }
}

#[test]
fn other_status_codes() {
    let s = Server::start(&["--test-routes", "--max-body", "1000"]);
    rejects(&s, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    rejects(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: the-unexpected\r\n\r\n",
        417,
    );
    // Body over --max-body: by Content-Length, and by de-chunked size.
    rejects(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
        413,
    );
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"190\r\n");
        req.extend_from_slice(&[b'a'; 400]);
        req.extend_from_slice(b"\r\n");
    }
    rejects(&s, &req, 413);
    // Exactly at the limit is fine.
    let mut c = s.connect();
    let mut ok = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".to_vec();
    ok.extend_from_slice(&[b'z'; 1000]);
    c.write_all(&ok).unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].body.len(), 1000);
}

#[test]
fn default_limits() {
    let s = Server::start(&["--test-routes"]);
    // Target over 8 KiB -> 414.
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', 8200));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    rejects(&s, &req, 414);
    // Just under: fine (and long targets are not a 431 below 16 KiB).
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', 8000));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&s.raw(&req)), 200);
    // Header block over 16 KiB -> 431.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        req.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(450)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    rejects(&s, &req, 431);
    // Too many fields -> 431.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..120 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    rejects(&s, &req, 431);
    // Body over 1 MiB -> 413 before the body is read.
    rejects(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
        413,
    );
    // 1 MiB exactly is accepted.
    let body = vec![b'q'; 1 << 20];
    let mut req =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&body);
    let raw = s.raw(&req);
    let r = marg_tests::parse_response(&raw, false).unwrap().0;
    assert_eq!(r.body.len(), 1 << 20);
}

#[test]
fn configured_limits() {
    let s = Server::start(&[
        "--max-header-bytes",
        "512",
        "--max-target",
        "64",
        "--max-headers",
        "4",
    ]);
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', 100));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    rejects(&s, &req, 414);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(600)
    );
    rejects(&s, req.as_bytes(), 431);
    rejects(
        &s,
        b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n",
        431,
    );
    // A 413 with the body still arriving: the client sees the response, not
    // a reset (lingering close).
    let s2 = Server::start(&["--max-body", "10", "--test-routes"]);
    let file = std::env::temp_dir().join(format!("marg-413-{}", std::process::id()));
    std::fs::write(&file, vec![b'x'; 300_000]).unwrap();
    let (_, body, _) = marg_tests::curl(&[
        "-w",
        "%{http_code}",
        "--data-binary",
        &format!("@{}", file.display()),
        &s2.url("/echo"),
    ]);
    std::fs::remove_file(&file).unwrap();
    assert!(
        String::from_utf8_lossy(&body).ends_with("413"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}
