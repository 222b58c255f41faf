//! The two socket backends (`--io epoll`, `--io uring`): the same behaviour
//! through either. (`make test` also runs every end-to-end test again with
//! `MARG_IO=epoll`; the default `auto` picks io_uring where the kernel has it.)

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use marg_tests::{marg_bin, parse_all, read_responses, read_to_close, Server};

/// The backends this machine can run: epoll always, io_uring where the
/// kernel allows it (what `--io auto` picks says so).
fn backends() -> Vec<&'static str> {
    let s = Server::start(&["--io", "auto"]);
    if s.banner.contains("io: io_uring") {
        vec!["epoll", "uring"]
    } else {
        assert!(s.banner.contains("io: epoll"), "{}", s.banner);
        eprintln!("io_uring is not available here: testing epoll only");
        vec!["epoll"]
    }
}

#[test]
fn the_banner_names_the_backend_and_bad_values_are_refused() {
    for io in backends() {
        let s = Server::start(&["--io", io]);
        let want = if io == "uring" {
            "io: io_uring"
        } else {
            "io: epoll"
        };
        assert!(s.banner.contains(want), "{io}: {}", s.banner);
    }
    let out = Command::new(marg_bin())
        .args(["serve", "--port", "0", "--io", "kqueue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown I/O backend 'kqueue'"), "{err}");
    let out = Command::new(marg_bin())
        .args(["serve", "--port", "0"])
        .env("MARG_IO", "poll")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MARG_IO"));
}

#[test]
fn keep_alive_pipelining_and_large_bodies_through_each_backend() {
    for io in backends() {
        let s = Server::start(&["--io", io, "--test-routes", "--max-body", "8388608"]);
        // Sequential keep-alive requests on one connection.
        let mut c = s.connect();
        for _ in 0..200 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let r = read_responses(&mut c, 1);
            assert_eq!(r[0].body, b"Hello, World!", "{io}");
        }
        // 300 pipelined requests in one write, answered in order (some are
        // deferred to the next loop tick).
        let mut burst = Vec::new();
        for i in 0..300 {
            let path = if i % 3 == 0 { "/tick" } else { "/" };
            burst.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        }
        c.write_all(&burst).unwrap();
        let rs = read_responses(&mut c, 300);
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.status, 200, "{io} #{i}");
        }
        // A 6 MB body in, the same 6 MB out: many receive buffers, sends
        // that cannot complete at once.
        let body: Vec<u8> = (0..6_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = s.connect();
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let writer = {
            let mut w = c.try_clone().unwrap();
            let mut all = head.into_bytes();
            all.extend_from_slice(&body);
            std::thread::spawn(move || w.write_all(&all).unwrap())
        };
        let r = read_responses(&mut c, 1);
        writer.join().unwrap();
        assert_eq!(r[0].status, 200, "{io}");
        assert!(r[0].body == body, "{io}: echoed body differs");
    }
}

#[test]
fn clients_that_leave_with_a_response_in_flight_do_not_disturb_others() {
    for io in backends() {
        let s = Server::start(&["--io", io, "--test-routes", "--max-body", "8388608"]);
        let body = vec![b'x'; 4 << 20];
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // Each client sends a 4 MB echo request, reads a little of the answer
        // (so the server's send is in flight, blocked) and disconnects.
        for _ in 0..20 {
            let mut c = s.connect();
            let mut w = c.try_clone().unwrap();
            let (h, b) = (head.clone(), body.clone());
            let writer = std::thread::spawn(move || {
                let _ = w.write_all(h.as_bytes());
                let _ = w.write_all(&b);
            });
            let mut buf = [0u8; 1024];
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "{io}");
            drop(c);
            let _ = writer.join();
        }
        // The server keeps serving, and every one of those connections was
        // closed (slots reused, nothing left waiting on a dead peer).
        let t0 = Instant::now();
        loop {
            let mut c = s.connect();
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(read_responses(&mut c, 1)[0].status, 200, "{io}");
            let fds = std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
                .map(|d| d.count())
                .unwrap_or(0);
            // stdio, listener, eventfd, epoll or ring fd, this connection, and
            // whatever the runtime holds open: far fewer than 20 leaked sockets.
            if fds < 16 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{io}: {fds} descriptors still open"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_file_body_to_a_slow_reader_resumes_when_the_socket_drains() {
    // 12 MB through sendfile to a client that waits before reading: sendfile blocks (io_uring:
    // a one-shot writability poll; epoll: EPOLLOUT), then resumes; the response pipelined
    // behind the file follows it intact.
    let dir = std::env::temp_dir().join(format!("marg-io-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.txt"), "after the file").unwrap();
    for io in backends() {
        let s = Server::start(&["--io", io, "--static", dir.to_str().unwrap()]);
        let mut c = s.connect();
        c.write_all(
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let rs = parse_all(&read_to_close(&mut c));
        assert_eq!(rs.len(), 2, "{io}");
        assert_eq!(rs[0].status, 200, "{io}");
        assert!(rs[0].body == big, "{io}: file body differs");
        assert_eq!(rs[1].body, b"after the file", "{io}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
