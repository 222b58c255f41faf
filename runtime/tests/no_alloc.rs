//! The keep-alive path allocates nothing: a counting global allocator counts
//! heap allocations made on the worker thread (flagged by the handler
//! factory, which runs on that thread) while a client sends thousands of
//! keep-alive and pipelined requests to a synchronous Rust handler. The
//! whole loop is covered: epoll, reads, parsing, the handler, the response
//! writer, the Date cache, timers, writes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use runtime::handler::{Handler, HandlerFactory};
use runtime::hello::HelloHandler;
use runtime::server::{Config, Server};

struct Counting;

static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IS_WORKER.with(|w| w.get()) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if IS_WORKER.with(|w| w.get()) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Flagging;

impl HandlerFactory for Flagging {
    fn create(&self, _worker: usize) -> Result<Box<dyn Handler>, String> {
        IS_WORKER.with(|w| w.set(true));
        Ok(Box::new(HelloHandler::new(false)))
    }
}

fn roundtrip(c: &mut TcpStream, req: &[u8], n: usize, buf: &mut [u8]) {
    c.write_all(req).unwrap();
    let mut got = 0;
    let mut total = 0;
    while got < n {
        let k = c.read(&mut buf[total..]).unwrap();
        assert!(k > 0, "server closed");
        total += k;
        got = buf[..total]
            .windows(13)
            .filter(|w| w == b"Hello, World!" || w == b"\"Hello, World")
            .count();
    }
}

#[test]
fn keep_alive_path_does_not_allocate() {
    let cfg = Config {
        host: [127, 0, 0, 1].into(),
        port: Some(0),
        workers: 1,
        ..Config::default()
    };
    let server = Server::start(cfg, Arc::new(Flagging)).unwrap();
    let mut c = TcpStream::connect(server.local_addr()).unwrap();
    c.set_nodelay(true).unwrap();
    let one = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";
    let json = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sixteen = Vec::new();
    for _ in 0..16 {
        sixteen.extend_from_slice(one);
    }
    let mut buf = vec![0u8; 1 << 16];
    // Warm up: buffer pool, timer wheel, epoll event array.
    for _ in 0..200 {
        roundtrip(&mut c, one, 1, &mut buf);
        roundtrip(&mut c, &sixteen, 16, &mut buf);
    }
    let before = WORKER_ALLOCS.load(Ordering::SeqCst);
    assert!(
        before > 0,
        "the counter sees the worker's start-up allocations"
    );
    for _ in 0..3000 {
        roundtrip(&mut c, one, 1, &mut buf);
        roundtrip(&mut c, json, 1, &mut buf);
    }
    for _ in 0..300 {
        roundtrip(&mut c, &sixteen, 16, &mut buf);
    }
    let after = WORKER_ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "allocations on the worker during 10,800 keep-alive requests"
    );
    server.shutdown();
    server.join().unwrap();
}
