//! `--static DIR`: content types, ETag/Last-Modified/304, Range, HEAD,
//! index.html, and traversal attempts.

use std::io::Write;
use std::path::PathBuf;

use marg_tests::{curl, parse_response, read_responses, status_of, Server};

fn site() -> PathBuf {
    let root = std::env::temp_dir().join(format!("marg-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("www/sub")).unwrap();
    std::fs::write(root.join("www/index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("www/app.js"), "console.log(1)\n").unwrap();
    std::fs::write(root.join("www/sub/data.json"), "{\"a\":1}").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("www/big.bin"), &big).unwrap();
    std::fs::write(root.join("www/digits.txt"), "0123456789").unwrap();
    std::fs::write(root.join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("www/escape.txt")).unwrap();
    root
}

#[test]
fn static_files() {
    let root = site();
    let www = root.join("www");
    let s = Server::start(&["--static", www.to_str().unwrap()]);

    // Content types and bodies, index.html for directories.
    for (path, ctype, body) in [
        ("/", "text/html; charset=utf-8", "<h1>home</h1>\n"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "console.log(1)\n",
        ),
        ("/sub/data.json", "application/json", "{\"a\":1}"),
        (
            "/sub/../digits.txt",
            "text/plain; charset=utf-8",
            "0123456789",
        ),
    ] {
        let (ok, out, err) = curl(&["-v", &s.url(path)]);
        assert!(ok, "{path}");
        assert_eq!(String::from_utf8_lossy(&out), body, "{path}");
        assert!(
            err.contains(&format!("Content-Type: {ctype}")),
            "{path}: {err}"
        );
    }
    // Large file through sendfile.
    let (ok, out, _) = curl(&[&s.url("/big.bin")]);
    assert!(ok);
    assert_eq!(out, std::fs::read(www.join("big.bin")).unwrap());

    // Missing file -> 404.
    assert_eq!(
        status_of(&s.raw(b"GET /nope.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
        404
    );

    // ETag / Last-Modified / 304.
    let mut c = s.connect();
    c.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_responses(&mut c, 1).remove(0);
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    c.write_all(
        format!("GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let r = read_responses(&mut c, 1).remove(0);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    c.write_all(
        format!("GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {lm}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].status, 304);
    c.write_all(b"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut c, 1)[0].status, 200);

    // Range.
    for (range, status, body, cr) in [
        ("bytes=2-5", 206, "2345", Some("bytes 2-5/10")),
        ("bytes=7-", 206, "789", Some("bytes 7-9/10")),
        ("bytes=-3", 206, "789", Some("bytes 7-9/10")),
        ("bytes=5-100", 206, "56789", Some("bytes 5-9/10")),
        (
            "bytes=10-",
            416,
            "range not satisfiable\n",
            Some("bytes */10"),
        ),
        ("bytes=0-1,4-5", 200, "0123456789", None),
    ] {
        c.write_all(
            format!("GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: {range}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let r = read_responses(&mut c, 1).remove(0);
        assert_eq!(r.status, status, "{range}");
        assert_eq!(r.text(), body, "{range}");
        assert_eq!(r.header("content-range"), cr, "{range}");
    }
    // Range on the big file via curl.
    let (ok, out, _) = curl(&["-r", "100000-100099", &s.url("/big.bin")]);
    assert!(ok);
    assert_eq!(
        out,
        std::fs::read(www.join("big.bin")).unwrap()[100000..100100].to_vec()
    );

    // HEAD: headers only, pipelined with a GET on the same connection.
    c.write_all(b"HEAD /digits.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/data.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut buf = vec![0u8; 8192];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap();
    let (h, used) = parse_response(&buf[..n], true).unwrap();
    assert_eq!(h.header("content-length"), Some("10"));
    let (g, _) = parse_response(&buf[used..n], false).unwrap();
    assert_eq!(g.text(), "{\"a\":1}");

    // Traversal attempts never leave the root.
    for t in [
        &b"/../secret.txt"[..],
        b"/sub/../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/%2e%2e/secret.txt",
        b"/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        b"/..%2fsecret.txt",
        b"/..\\secret.txt",
        b"/escape.txt",
        b"//etc/passwd",
        b"/%00",
    ] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(t);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let raw = s.raw(&req);
        let st = status_of(&raw);
        assert!(
            st == 400 || st == 404,
            "{}: {st}",
            String::from_utf8_lossy(t)
        );
        assert!(!String::from_utf8_lossy(&raw).contains("top secret"));
    }
    let (_, out, _) = curl(&["--path-as-is", &s.url("/../secret.txt")]);
    assert!(!String::from_utf8_lossy(&out).contains("top secret"));
    std::fs::remove_dir_all(&root).unwrap();
}
