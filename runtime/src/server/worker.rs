//! One worker thread: its own `SO_REUSEPORT` listener, an event loop, a
//! timer wheel, pools of I/O buffers, an eventfd mailbox and the per-thread
//! handler. The only place that touches sockets.
//!
//! Per loop iteration: wait (timeout = next timer, handler deadline), read
//! the clock once, handle every event (accept / drive a connection / drain
//! the mailbox), fire due timers, call [`Handler::tick`] once, flush the
//! connections that deferred completions touched, write the access log.
//!
//! Two I/O backends share everything above the socket calls ([`IoMode`]):
//! - **epoll**, edge-triggered: a readable event, then `read` until the
//!   socket is drained; `send` per batch of responses, `EPOLLOUT` only while
//!   a write is blocked.
//! - **io_uring** ([`super::uring`]): a multishot accept, one multishot
//!   receive per connection into provided buffers, sends queued as requests.
//!   The loop makes one `io_uring_enter` per iteration (submit everything,
//!   wait), so a request costs no `read`, `send` or `epoll_wait` call of its
//!   own. A connection has at most one send in flight; its buffer belongs to
//!   the slot until the send completes, even if the connection closes first,
//!   and a slot is reused only when none of its requests is in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::date::DateCache;
use super::sys::{self, Fd, IoResult};
use super::timer::TimerWheel;
use super::uring::{Cqe, Uring};
use super::{Config, IoMode, Mailbox, Message};
use crate::handler::{Complete, CompletionSink, Handler, HeaderSpan, RequestId, ResponseRef};
use crate::http1::{Conn, Env, Progress};

const TOKEN_LISTENER: u64 = u64::MAX;
const TOKEN_MAILBOX: u64 = u64::MAX - 1;
/// How long a closing connection keeps reading (and discarding) after its
/// last response, so that the peer sees the response rather than a reset.
const LINGER: Duration = Duration::from_millis(500);
/// Interest set of a connection: readable and hang-up, edge-triggered.
/// Writability is added only while a write is blocked (otherwise every ACK
/// that frees send space would wake the loop).
const READ_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const WRITE_EVENTS: u32 = READ_EVENTS | libc::EPOLLOUT as u32;

/// Size of a pooled input buffer (heads and pipelined batches up to this
/// size need no other memory).
const IN_BUF: usize = 4096;
/// Most buffers kept in each pool (bounds what a burst leaves behind).
const POOL_MAX: usize = 256;
/// Output buffers that grew beyond this are freed instead of pooled.
const OUT_KEEP: usize = 16 * 1024;
/// How long accepting pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn token(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

// io_uring user data: the operation in the top byte, then 24 bits of the
// slot's generation and the slot.
const OP_RECV: u8 = 1;
const OP_SEND: u8 = 2;
const OP_POLL_OUT: u8 = 3;
/// Completions of cancel requests (nothing to do).
const OP_CANCEL: u8 = 0xfd;
const OP_MAILBOX: u8 = 0xfe;
const OP_ACCEPT: u8 = 0xff;
const GEN_MASK: u32 = 0x00ff_ffff;
/// Submission queue size (the completion queue is 8 times larger).
const URING_ENTRIES: u32 = 1024;
/// Provided receive buffers per worker, and their size. A buffer is held
/// only from its completion to the end of that completion's handling, so
/// this bounds the receives in one batch, not the connections.
const URING_BUFS: u16 = 256;
const URING_BUF_SIZE: usize = 4096;

fn user_data(op: u8, slot: u32, generation: u32) -> u64 {
    u64::from(op) << 56 | u64::from(generation & GEN_MASK) << 32 | u64::from(slot)
}

/// A live connection and its socket-side state.
struct Live {
    fd: i32,
    conn: Conn,
    /// When the current request's first byte arrived (header timeout).
    request_started: Option<Instant>,
    last_active: Instant,
    /// The deadline this connection wants now.
    deadline: Option<Instant>,
    /// The earliest deadline at which it has a wheel entry.
    wheel_at: Option<Instant>,
    /// Closing: FIN sent, discarding input until EOF or this instant.
    linger_until: Option<Instant>,
    /// Queued in `Worker::dirty` (a deferred completion added output).
    dirty: bool,
    /// EPOLLOUT is in the interest set (a write blocked).
    want_write: bool,
    /// The last read came up short (or would block) and no readable event
    /// has arrived since: with edge triggering the socket is known empty, so
    /// a drive that only flushes a completion skips the `read` (which would
    /// fail with EAGAIN; nginx's `rev->ready = 0` does the same).
    input_drained: bool,
    /// io_uring: received bytes the connection could not take yet (reading
    /// is paused: the receive is cancelled until these are consumed), and
    /// how many of them were consumed.
    rx: Vec<u8>,
    rx_pos: usize,
    /// io_uring: the peer's FIN arrived (the receive is not re-armed).
    eof: bool,
}

struct Slot {
    generation: u32,
    live: Option<Live>,
    /// io_uring requests of this slot (all zero / empty under epoll).
    io: SlotIo,
}

/// A slot's io_uring requests. Outlives the connection: a slot whose
/// connection closed is reused only once `inflight` is back to zero.
#[derive(Default)]
struct SlotIo {
    /// Requests whose final completion has not arrived.
    inflight: u16,
    /// A multishot receive is armed.
    recv: bool,
    /// A writability poll is armed (a `sendfile` would block).
    poll_out: bool,
    /// A send is in flight: `tx[tx_done..]` is being sent. `tx` is not
    /// touched until its completion.
    sending: bool,
    tx: Vec<u8>,
    tx_done: usize,
}

impl Slot {
    /// Nothing is in flight in either direction (graceful shutdown may
    /// close it).
    fn quiet(&self) -> bool {
        !self.io.sending && self.live.as_ref().is_none_or(|l| l.conn.is_idle())
    }
}

/// The worker's I/O backend.
enum Io {
    Epoll(Fd),
    Uring(Box<UringIo>),
}

struct UringIo {
    ring: Uring,
    /// The receive completion being handled: its slot, buffer, and the part
    /// of it not yet consumed (`pos..len`).
    cur: Option<Cur>,
}

struct Cur {
    slot: u32,
    bid: u16,
    pos: usize,
    len: usize,
}

impl UringIo {
    /// The io_uring counterpart of `read(2)`: bytes received for `slot`
    /// (first any held back while paused, then the current completion's).
    /// Never `Done(0)`: the end of stream is reported by its completion.
    fn read(
        &mut self,
        slot: u32,
        rx: &mut Vec<u8>,
        rx_pos: &mut usize,
        buf: &mut [u8],
    ) -> IoResult {
        let mut n = 0;
        if *rx_pos < rx.len() {
            let k = (rx.len() - *rx_pos).min(buf.len());
            buf[..k].copy_from_slice(&rx[*rx_pos..*rx_pos + k]);
            *rx_pos += k;
            if *rx_pos == rx.len() {
                rx.clear();
                *rx_pos = 0;
            }
            n = k;
        }
        if let Some(c) = self.cur.as_mut().filter(|c| c.slot == slot) {
            let k = (c.len - c.pos).min(buf.len() - n);
            if k > 0 {
                let data = self.ring.buffer(c.bid, c.len);
                buf[n..n + k].copy_from_slice(&data[c.pos..c.pos + k]);
                c.pos += k;
                n += k;
            }
        }
        if n == 0 {
            IoResult::WouldBlock
        } else {
            IoResult::Done(n)
        }
    }
}

/// A worker's state.
pub(crate) struct Worker {
    id: usize,
    cfg: Arc<Config>,
    io: Io,
    listener: Option<Fd>,
    mailbox: Arc<Mailbox>,
    handler: Box<dyn Handler>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    pools: Pools,
    wheel: TimerWheel,
    date: DateCache,
    spans: Vec<HeaderSpan>,
    log: Vec<u8>,
    expired: Vec<u64>,
    dirty: Vec<u32>,
    shutdown_at: Option<Instant>,
    /// Accepting is paused (EMFILE) until this instant.
    accept_paused: Option<Instant>,
    /// Requests handed to the handler (or rejected) so far, wrapping.
    dispatched: u64,
    /// Requests were handed over after the last tick: poll, do not block.
    tick_again: bool,
    now: Instant,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        cfg: Arc<Config>,
        listener: Fd,
        mailbox: Arc<Mailbox>,
        handler: Box<dyn Handler>,
    ) -> std::io::Result<Worker> {
        let io = match cfg.io {
            IoMode::Epoll => None,
            IoMode::Uring => Some(
                Uring::new(URING_ENTRIES, URING_BUFS, URING_BUF_SIZE).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("io_uring (--io uring): {e}"))
                })?,
            ),
            // Kernels before 6.1, seccomp profiles that refuse io_uring
            // (Docker's default), `kernel.io_uring_disabled`: use epoll.
            IoMode::Auto => match Uring::new(URING_ENTRIES, URING_BUFS, URING_BUF_SIZE) {
                Ok(u) => Some(u),
                Err(e) => {
                    if cfg.verbose && id == 0 {
                        eprintln!("marg: io_uring unavailable ({e}); using epoll");
                    }
                    None
                }
            },
        };
        let io = match io {
            Some(mut ring) => {
                ring.accept(listener.0, user_data(OP_ACCEPT, 0, 0));
                ring.poll_in(mailbox.fd.0, user_data(OP_MAILBOX, 0, 0));
                Io::Uring(Box::new(UringIo { ring, cur: None }))
            }
            None => {
                let ep = sys::epoll_create()?;
                sys::epoll_add(ep.0, listener.0, libc::EPOLLIN as u32, TOKEN_LISTENER)?;
                sys::epoll_add(
                    ep.0,
                    mailbox.fd.0,
                    (libc::EPOLLIN | libc::EPOLLET) as u32,
                    TOKEN_MAILBOX,
                )?;
                Io::Epoll(ep)
            }
        };
        let now = Instant::now();
        // Tick resolution: fine enough for the shortest configured timeout.
        let shortest = cfg.header_timeout.min(cfg.idle_timeout);
        let tick = (shortest / 20).clamp(Duration::from_millis(5), Duration::from_millis(100));
        // Pooled input buffers are small; a connection grows its own for a
        // large head or body and frees it afterwards.
        let in_size = IN_BUF.min(cfg.limits.max_header_bytes + 1024);
        Ok(Worker {
            id,
            io,
            listener: Some(listener),
            mailbox,
            handler,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            pools: Pools {
                inputs: Vec::new(),
                outputs: Vec::new(),
                in_size,
            },
            wheel: TimerWheel::new(now, tick, 1024),
            date: DateCache::default(),
            spans: vec![HeaderSpan::default(); cfg.limits.max_headers.max(1)],
            log: Vec::new(),
            expired: Vec::new(),
            dirty: Vec::new(),
            shutdown_at: None,
            accept_paused: None,
            dispatched: 0,
            tick_again: false,
            now,
            cfg,
        })
    }

    /// Which backend this worker uses ("epoll" or "io_uring").
    pub(crate) fn backend(&self) -> &'static str {
        match self.io {
            Io::Epoll(_) => "epoll",
            Io::Uring(_) => "io_uring",
        }
    }

    /// Runs the loop until shutdown completes.
    pub(crate) fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            let timeout = self.timeout();
            match &mut self.io {
                Io::Epoll(ep) => {
                    // Round up so that we do not spin just before the deadline.
                    let ms = timeout.map_or(-1, |d| {
                        d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                    });
                    match sys::epoll_wait(ep.0, &mut events, ms) {
                        Ok(n) => {
                            self.now = Instant::now();
                            self.date.refresh();
                            self.epoll_events(&events[..n]);
                        }
                        Err(e) => {
                            eprintln!("marg: worker {}: epoll_wait failed: {e}", self.id);
                            return;
                        }
                    }
                }
                Io::Uring(u) => {
                    if let Err(e) = u.ring.wait(timeout) {
                        eprintln!("marg: worker {}: io_uring_enter failed: {e}", self.id);
                        return;
                    }
                    self.now = Instant::now();
                    self.date.refresh();
                    let cqes = u.ring.take_cqes();
                    for c in &cqes {
                        self.completion(*c);
                    }
                    if let Io::Uring(u) = &mut self.io {
                        u.ring.put_cqes(cqes);
                    }
                }
            }
            if self.accept_paused.is_some_and(|t| t <= self.now) {
                self.accept_paused = None;
                if let Some(l) = &self.listener {
                    match &mut self.io {
                        Io::Epoll(ep) => {
                            let _ = sys::epoll_add(ep.0, l.0, libc::EPOLLIN as u32, TOKEN_LISTENER);
                        }
                        Io::Uring(u) => u.ring.accept(l.0, user_data(OP_ACCEPT, 0, 0)),
                    }
                }
            }
            self.fire_timers();
            self.tick();
            self.flush_log();
            if let Some(at) = self.shutdown_at {
                if self.live == 0 && !self.handler.busy() {
                    return;
                }
                if self.now >= at {
                    self.close_all();
                    return;
                }
            }
        }
    }

    fn epoll_events(&mut self, events: &[libc::epoll_event]) {
        for ev in events {
            let (tok, bits) = (ev.u64, ev.events);
            match tok {
                TOKEN_LISTENER => self.accept_all(),
                TOKEN_MAILBOX => self.drain_mailbox(),
                _ => {
                    let slot = tok as u32;
                    let generation = (tok >> 32) as u32;
                    let Some(l) = self
                        .slots
                        .get_mut(slot as usize)
                        .filter(|s| s.generation == generation)
                        .and_then(|s| s.live.as_mut())
                    else {
                        continue;
                    };
                    // Writable-only edges (ACKs freeing send space) are
                    // common; skip them unless output is waiting.
                    let readable = bits & !(libc::EPOLLOUT as u32) != 0;
                    if readable {
                        l.input_drained = false;
                    }
                    if readable || !l.conn.output().is_empty() || l.conn.file().is_some() {
                        // After a hang-up edge, read to EOF (the short-read
                        // shortcut would miss the FIN that came with data).
                        let hup = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                        self.drive(slot, bits & hup != 0);
                    }
                }
            }
        }
    }

    /// Handles one io_uring completion.
    fn completion(&mut self, c: Cqe) {
        let op = (c.user_data >> 56) as u8;
        let slot = c.user_data as u32;
        let generation = (c.user_data >> 32) as u32 & GEN_MASK;
        match op {
            OP_ACCEPT => self.accepted(c),
            OP_MAILBOX => {
                self.drain_mailbox();
                if !c.more() {
                    if let Io::Uring(u) = &mut self.io {
                        u.ring.poll_in(self.mailbox.fd.0, c.user_data);
                    }
                }
            }
            OP_RECV | OP_SEND | OP_POLL_OUT => {
                let Some(s) = self.slots.get_mut(slot as usize) else {
                    return;
                };
                let final_cqe = op != OP_RECV || !c.more();
                if final_cqe {
                    s.io.inflight -= 1;
                }
                let was_closed = s.live.is_none();
                let live = s.live.is_some() && s.generation & GEN_MASK == generation;
                match op {
                    OP_RECV => {
                        if final_cqe {
                            s.io.recv = false;
                        }
                        self.received(slot, live, c);
                    }
                    OP_SEND => self.sent(slot, live, c),
                    _ => {
                        s.io.poll_out = false;
                        if live {
                            self.drive(slot, false);
                        }
                    }
                }
                // The last request of a connection closed earlier: the slot
                // can be reused. (One closed just now was freed, or left for
                // its remaining requests, by `close_conn`.)
                if was_closed && final_cqe && self.slots[slot as usize].io.inflight == 0 {
                    self.free.push(slot);
                }
            }
            _ => {}
        }
    }

    /// A multishot accept completion: a new connection, or an error.
    fn accepted(&mut self, c: Cqe) {
        if c.result >= 0 {
            let fd = c.result;
            if self.live >= self.cfg.max_conns || self.shutdown_at.is_some() {
                sys::close(fd);
            } else {
                match sys::peer_addr(fd) {
                    Ok(peer) => self.add_conn(fd, peer),
                    Err(_) => sys::close(fd), // already reset by the peer
                }
            }
        } else if c.result != -libc::ECANCELED {
            if self.cfg.verbose {
                let e = std::io::Error::from_raw_os_error(-c.result);
                eprintln!("marg: worker {}: accept: {e}; pausing accepts", self.id);
            }
            // Out of descriptors or memory: accepting again at once would
            // fail the same way. Stop, and re-arm after a pause (see `run`).
            if self.accept_paused.is_none() {
                self.accept_paused = Some(self.now + ACCEPT_BACKOFF);
                if c.more() {
                    if let Io::Uring(u) = &mut self.io {
                        u.ring.cancel(c.user_data, user_data(OP_CANCEL, 0, 0));
                    }
                }
            }
        }
        if c.more() || self.shutdown_at.is_some() || self.accept_paused.is_some() {
            return;
        }
        if let (Some(l), Io::Uring(u)) = (&self.listener, &mut self.io) {
            u.ring.accept(l.0, c.user_data);
        }
    }

    /// A receive completion for `slot`.
    fn received(&mut self, slot: u32, live: bool, c: Cqe) {
        let bid = c.buffer();
        if live {
            if c.result > 0 {
                let len = c.result as usize;
                if let (Io::Uring(u), Some(bid)) = (&mut self.io, bid) {
                    u.cur = Some(Cur {
                        slot,
                        bid,
                        pos: 0,
                        len,
                    });
                }
                self.drive(slot, false);
                // What the connection could not take waits in `rx`, and the
                // receive is cancelled until it is consumed (backpressure).
                let s = &mut self.slots[slot as usize];
                if let (Io::Uring(u), Some(l)) = (&mut self.io, s.live.as_mut()) {
                    if let Some(cur) = u.cur.take().filter(|c| c.pos < c.len) {
                        let data = u.ring.buffer(cur.bid, cur.len);
                        l.rx.extend_from_slice(&data[cur.pos..]);
                    }
                    if l.rx_pos < l.rx.len() && s.io.recv {
                        u.ring.cancel(c.user_data, user_data(OP_CANCEL, 0, 0));
                    }
                }
            } else if c.result == 0 {
                if let Some(l) = self.slots[slot as usize].live.as_mut() {
                    l.eof = true;
                    l.conn.peer_closed();
                }
                self.drive(slot, true);
            } else if c.result == -libc::ENOBUFS || c.result == -libc::ECANCELED {
                // Out of receive buffers, or paused: re-armed now, or once the held-back
                // input is consumed.
                self.arm_recv(slot);
            } else {
                self.close_conn(slot);
            }
        }
        if let Io::Uring(u) = &mut self.io {
            u.cur = None;
            if let Some(bid) = bid {
                u.ring.recycle(bid);
            }
        }
    }

    /// A send completion for `slot`.
    fn sent(&mut self, slot: u32, live: bool, c: Cqe) {
        let s = &mut self.slots[slot as usize];
        let io = &mut s.io;
        let mut failed = c.result < 0;
        if c.result >= 0 {
            io.tx_done += c.result as usize;
            // Nothing sent of a non-empty rest: the socket is unusable.
            failed = c.result == 0 && io.tx_done < io.tx.len();
        }
        if live && !failed && io.tx_done < io.tx.len() {
            // A short send despite MSG_WAITALL (a signal): send the rest.
            if let (Io::Uring(u), Some(l)) = (&mut self.io, s.live.as_ref()) {
                io.inflight += 1;
                // SAFETY: `tx` stays untouched while `sending` is set, and
                // the slot (owner of `tx`) is not reused before this
                // request's completion (`inflight`).
                unsafe { u.ring.send(l.fd, &io.tx[io.tx_done..], c.user_data) };
                return;
            }
        }
        io.sending = false;
        let mut tx = std::mem::take(&mut io.tx);
        io.tx_done = 0;
        if tx.capacity() <= OUT_KEEP && self.pools.outputs.len() < POOL_MAX {
            tx.clear();
            self.pools.outputs.push(tx);
        }
        if !live {
            return;
        }
        if failed {
            self.close_conn(slot);
        } else {
            self.drive(slot, false);
        }
    }

    /// The wait's timeout: `None` to wait for an event without limit.
    fn timeout(&mut self) -> Option<Duration> {
        if self.tick_again {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut t: Option<Duration> = self.wheel.next_timeout(now);
        if let Some(d) = self.handler.next_deadline() {
            let d = d.saturating_duration_since(now);
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        if let Some(at) = self.shutdown_at {
            let d = at
                .saturating_duration_since(now)
                .min(Duration::from_millis(50));
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        if let Some(at) = self.accept_paused {
            let d = at.saturating_duration_since(now);
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        t
    }

    fn accept_all(&mut self) {
        let Some(l) = &self.listener else { return };
        let lfd = l.0;
        // Bounded batch so that a connection flood cannot starve the loop.
        for _ in 0..256 {
            match sys::accept(lfd) {
                Ok(Some((fd, peer))) => {
                    if self.live >= self.cfg.max_conns || self.shutdown_at.is_some() {
                        sys::close(fd);
                        continue;
                    }
                    self.add_conn(fd, peer);
                }
                Ok(None) => return,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: the
                    // level-triggered listener would fire again at once, so
                    // stop watching it for a moment instead of spinning.
                    if self.cfg.verbose {
                        eprintln!("marg: worker {}: accept: {e}; pausing accepts", self.id);
                    }
                    if let Io::Epoll(ep) = &self.io {
                        sys::epoll_del(ep.0, lfd);
                    }
                    self.accept_paused = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, fd: i32, peer: SocketAddr) {
        sys::set_nodelay(fd);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    live: None,
                    io: SlotIo::default(),
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        let generation = s.generation;
        match &mut self.io {
            Io::Epoll(ep) => {
                if sys::epoll_add(ep.0, fd, READ_EVENTS, token(slot, generation)).is_err() {
                    sys::close(fd);
                    self.free.push(slot);
                    return;
                }
            }
            Io::Uring(u) => {
                debug_assert_eq!(s.io.inflight, 0);
                u.ring.recv(fd, user_data(OP_RECV, slot, generation));
                s.io.recv = true;
                s.io.inflight = 1;
            }
        }
        let conn = Conn::new(Vec::new(), Vec::new(), peer, slot, generation, 0);
        let idle = self.now + self.cfg.idle_timeout;
        self.slots[slot as usize].live = Some(Live {
            fd,
            conn,
            request_started: None,
            last_active: self.now,
            deadline: Some(idle),
            wheel_at: None,
            linger_until: None,
            dirty: false,
            want_write: false,
            // Data may have arrived before the socket joined the epoll set.
            input_drained: false,
            rx: Vec::new(),
            rx_pos: 0,
            eof: false,
        });
        self.live += 1;
        self.schedule(slot);
        if let Io::Epoll(_) = self.io {
            // Data may already be there (edge-triggered: no event for it).
            self.drive(slot, false);
        }
    }

    fn drain_mailbox(&mut self) {
        sys::eventfd_drain(self.mailbox.fd.0);
        let msgs =
            std::mem::take(&mut *self.mailbox.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for m in msgs {
            match m {
                Message::Shutdown => self.begin_shutdown(),
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.shutdown_at = Some(self.now + self.cfg.shutdown_grace);
        if let Some(l) = self.listener.take() {
            match &mut self.io {
                Io::Epoll(ep) => sys::epoll_del(ep.0, l.0),
                // The accept holds the listener open until it is cancelled.
                Io::Uring(u) => u
                    .ring
                    .cancel(user_data(OP_ACCEPT, 0, 0), user_data(OP_CANCEL, 0, 0)),
            }
        }
        for i in 0..self.slots.len() as u32 {
            let quiet = self.slots[i as usize].quiet();
            let Some(l) = self.slots[i as usize].live.as_mut() else {
                continue;
            };
            if quiet {
                self.close_conn(i);
            } else {
                l.conn.close_when_done();
                self.drive(i, false);
            }
        }
    }

    fn close_all(&mut self) {
        for i in 0..self.slots.len() as u32 {
            if self.slots[i as usize].live.is_some() {
                self.close_conn(i);
            }
        }
    }

    /// Reads, processes and writes until the socket would block (or a short
    /// read shows it drained, unless `read_to_eof`).
    fn drive(&mut self, slot: u32, read_to_eof: bool) {
        let now = self.now;
        let limits = self.cfg.limits;
        let s = &mut self.slots[slot as usize];
        let generation = s.generation;
        let sio = &mut s.io;
        let Some(l) = s.live.as_mut() else {
            return;
        };
        if l.linger_until.is_some() {
            self.linger(slot);
            return;
        }
        self.pools.attach(&mut l.conn);
        // (io_uring: reading is a copy from a completion, never a syscall.)
        let mut drained = matches!(self.io, Io::Epoll(_)) && l.input_drained && !read_to_eof;
        let mut dead = false;
        let mut blocked = false;
        loop {
            let had_partial = l.conn.request_in_progress();
            let mut env = Env {
                date: self.date.get(),
                limits: &limits,
                spans: &mut self.spans,
                shutting_down: self.shutdown_at.is_some(),
                log: if self.cfg.access_log {
                    Some(&mut self.log)
                } else {
                    None
                },
                secure: false,
            };
            if l.conn.process(&mut *self.handler, &mut env) == Progress::Some {
                self.dispatched = self.dispatched.wrapping_add(1);
            }
            if !l.conn.request_in_progress() {
                l.request_started = None;
            } else if !had_partial || l.request_started.is_none() {
                l.request_started.get_or_insert(now);
            }
            // Write everything queued: one write per batch of responses.
            let flushed = match &mut self.io {
                Io::Epoll(_) => flush(l),
                Io::Uring(u) => flush_uring(u, sio, l, &mut self.pools, slot, generation),
            };
            let wrote = match flushed {
                Flush::Done(w) => w,
                Flush::Blocked => {
                    blocked = true;
                    break;
                }
                Flush::Error => {
                    dead = true;
                    break;
                }
            };
            if l.conn.should_close() && !sio.sending {
                sys::shutdown_write(l.fd);
                l.linger_until = Some(now + LINGER);
                l.deadline = l.linger_until;
                break;
            }
            // Requests already buffered may have waited for the output that just went out
            // (pipelined behind a file body or a backlog): process them before stopping.
            let again = wrote && l.conn.has_buffered_input();
            if drained {
                if again {
                    continue;
                }
                break;
            }
            let space = l.conn.read_space(&limits);
            if space.is_empty() {
                if again {
                    continue;
                }
                break; // paused: output backlog or closing
            }
            let want = space.len();
            let got = match &mut self.io {
                Io::Epoll(_) => sys::read(l.fd, space),
                Io::Uring(u) => u.read(slot, &mut l.rx, &mut l.rx_pos, space),
            };
            match got {
                IoResult::Done(0) => {
                    l.conn.peer_closed();
                }
                IoResult::Done(n) => {
                    l.conn.filled(n);
                    l.last_active = now;
                    if l.request_started.is_none() {
                        l.request_started = Some(now);
                    }
                    // A short read drained the socket: with edge triggering
                    // the next arrival raises a new event.
                    drained = n < want && !read_to_eof;
                    l.input_drained = drained;
                }
                IoResult::WouldBlock => {
                    l.input_drained = true;
                    if again {
                        continue;
                    }
                    break;
                }
                IoResult::Error => {
                    dead = true;
                    break;
                }
            }
        }
        if let (Io::Epoll(ep), true) = (&self.io, blocked != l.want_write) {
            // Watch writability only while output is stuck.
            let events = if blocked { WRITE_EVENTS } else { READ_EVENTS };
            if sys::epoll_mod(ep.0, l.fd, events, token(slot, generation)).is_err() {
                dead = true;
            }
            l.want_write = blocked;
        }
        if dead {
            self.close_conn(slot);
            return;
        }
        let s = &mut self.slots[slot as usize];
        let (sending, quiet) = (s.io.sending, s.quiet());
        let Some(l) = s.live.as_mut() else {
            return;
        };
        if l.linger_until.is_some() {
            self.linger(slot);
            return;
        }
        // Decide the deadline; on the keep-alive path this is a field store.
        l.deadline = if l.conn.request_in_progress() {
            if l.conn.reading_body() {
                Some(l.last_active + self.cfg.idle_timeout)
            } else {
                l.request_started.map(|t| t + self.cfg.header_timeout)
            }
        } else if sending || !l.conn.output().is_empty() {
            Some(l.last_active.max(now) + self.cfg.idle_timeout)
        } else if l.conn.has_deferred() {
            None
        } else {
            Some(l.last_active + self.cfg.idle_timeout)
        };
        if self.shutdown_at.is_some() && quiet {
            self.close_conn(slot);
            return;
        }
        if l.conn.buffers_idle() {
            self.pools.release(&mut l.conn);
        }
        self.schedule(slot);
        self.arm_recv(slot);
    }

    /// io_uring: re-arms a connection's receive once it ended (buffers ran
    /// out, a completion without `MORE`) or was paused and the held-back
    /// input is consumed; not after the peer's FIN.
    fn arm_recv(&mut self, slot: u32) {
        let Io::Uring(u) = &mut self.io else { return };
        let s = &mut self.slots[slot as usize];
        let Some(l) = s.live.as_ref() else { return };
        if s.io.recv || l.eof || l.rx_pos < l.rx.len() {
            return;
        }
        u.ring.recv(l.fd, user_data(OP_RECV, slot, s.generation));
        s.io.recv = true;
        s.io.inflight += 1;
    }

    /// Discards input on a closing connection until EOF or the deadline.
    fn linger(&mut self, slot: u32) {
        let Some(l) = self.slots[slot as usize].live.as_mut() else {
            return;
        };
        match &mut self.io {
            Io::Epoll(_) => {
                let mut scratch = [0u8; 4096];
                loop {
                    match sys::read(l.fd, &mut scratch) {
                        IoResult::Done(0) | IoResult::Error => {
                            self.close_conn(slot);
                            return;
                        }
                        IoResult::Done(_) => {}
                        IoResult::WouldBlock => break,
                    }
                }
            }
            Io::Uring(u) => {
                // Received bytes are dropped; the FIN arrives as a
                // completion (`eof`).
                l.rx.clear();
                l.rx_pos = 0;
                if let Some(c) = u.cur.as_mut().filter(|c| c.slot == slot) {
                    c.pos = c.len;
                }
                if l.eof {
                    self.close_conn(slot);
                    return;
                }
            }
        }
        if l.linger_until.is_some_and(|t| t <= self.now) {
            self.close_conn(slot);
            return;
        }
        self.schedule(slot);
        self.arm_recv(slot);
    }

    /// Makes sure the wheel holds an entry no later than the deadline.
    fn schedule(&mut self, slot: u32) {
        let generation = self.slots[slot as usize].generation;
        let Some(l) = self.slots[slot as usize].live.as_mut() else {
            return;
        };
        let Some(d) = l.deadline else { return };
        if l.wheel_at.is_none_or(|w| d < w) {
            self.wheel.insert(d, token(slot, generation));
            l.wheel_at = Some(d);
        }
    }

    fn fire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(self.now, &mut expired);
        for tok in expired.drain(..) {
            let slot = tok as u32;
            let generation = (tok >> 32) as u32;
            let now = self.now;
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if s.generation != generation {
                continue;
            }
            let Some(l) = s.live.as_mut() else { continue };
            if l.wheel_at.is_some_and(|w| w <= now) {
                l.wheel_at = None;
            }
            match l.deadline {
                Some(d) if d <= now => {
                    if l.linger_until.is_some() || l.conn.is_idle() || !l.conn.request_in_progress()
                    {
                        // Idle keep-alive, stalled writer, or lingering close.
                        self.close_conn(slot);
                    } else {
                        // Header (or body) read timeout: answer 408, close.
                        self.pools.attach(&mut l.conn);
                        l.conn.timeout(self.date.get());
                        self.drive(slot, false);
                    }
                }
                _ => self.schedule(slot),
            }
        }
        self.expired = expired;
    }

    fn tick(&mut self) {
        let mut sink = Sink {
            slots: &mut self.slots,
            dirty: &mut self.dirty,
            pools: &mut self.pools,
            date: self.date.get(),
            log: if self.cfg.access_log {
                Some(&mut self.log)
            } else {
                None
            },
        };
        self.handler.tick(&mut CompletionSink::new(&mut sink));
        let before = self.dispatched;
        let mut dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.drain(..) {
            if let Some(l) = self.slots[slot as usize].live.as_mut() {
                l.dirty = false;
                self.drive(slot, false);
            }
        }
        self.dirty = dirty;
        // Flushing completed responses can read and hand over the next
        // pipelined or keep-alive request after this tick: make sure the
        // handler gets another tick right away rather than after the next
        // I/O event (it may be waiting to enter the VM for it).
        self.tick_again = self.dispatched != before;
    }

    fn flush_log(&mut self) {
        if !self.log.is_empty() {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&self.log);
            let _ = out.flush();
            self.log.clear();
        }
    }

    fn close_conn(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        let Some(mut l) = s.live.take() else { return };
        let generation = s.generation;
        s.generation = s.generation.wrapping_add(1);
        for id in l.conn.deferred_ids() {
            debug_assert_eq!(id.generation, generation);
            self.handler.cancelled(id);
        }
        match &mut self.io {
            Io::Epoll(ep) => sys::epoll_del(ep.0, l.fd),
            Io::Uring(u) => {
                // In-flight requests hold the socket open: cancel them. The
                // slot (and the send buffer it owns) is reused only after
                // their last completion (see `completion`).
                let cancel = user_data(OP_CANCEL, 0, 0);
                if s.io.recv {
                    u.ring.cancel(user_data(OP_RECV, slot, generation), cancel);
                }
                if s.io.sending {
                    u.ring.cancel(user_data(OP_SEND, slot, generation), cancel);
                }
                if s.io.poll_out {
                    u.ring
                        .cancel(user_data(OP_POLL_OUT, slot, generation), cancel);
                }
            }
        }
        sys::close(l.fd);
        self.pools.release(&mut l.conn);
        if s.io.inflight == 0 {
            self.free.push(slot);
        }
        self.live -= 1;
    }
}

enum Flush {
    /// Nothing is left that needs writability; `true` if bytes went out (or were handed to
    /// a send) in this call, so that buffered requests held back by the output may proceed.
    Done(bool),
    Blocked,
    Error,
}

/// Writes queued output, then a pending file body.
fn flush(l: &mut Live) -> Flush {
    let mut wrote = false;
    loop {
        let out = l.conn.output();
        if !out.is_empty() {
            match sys::write(l.fd, out) {
                IoResult::Done(n) => {
                    let all = n == out.len();
                    l.conn.consumed(n);
                    if !all {
                        return Flush::Blocked;
                    }
                    wrote = true;
                }
                IoResult::WouldBlock => return Flush::Blocked,
                IoResult::Error => return Flush::Error,
            }
        }
        match send_file(l) {
            FileStep::NoFile => return Flush::Done(wrote),
            // More responses may have been queued behind the file.
            FileStep::Finished | FileStep::Partial => wrote = true,
            FileStep::WouldBlock => return Flush::Blocked,
            FileStep::Error => return Flush::Error,
        }
    }
}

enum FileStep {
    /// No file body is pending (or output comes first).
    NoFile,
    /// The file body is sent.
    Finished,
    /// Some of it was sent.
    Partial,
    WouldBlock,
    Error,
}

/// One `sendfile` of the pending file body.
fn send_file(l: &mut Live) -> FileStep {
    let fd = l.fd;
    let Some(f) = l.conn.file() else {
        return FileStep::NoFile;
    };
    use std::os::fd::AsRawFd;
    match sys::sendfile(fd, f.file.as_raw_fd(), &mut f.offset, f.len) {
        IoResult::Done(0) => {
            // File shrank under us: the framing is broken, close.
            l.conn.file_done();
            FileStep::Error
        }
        IoResult::Done(n) => {
            f.len -= n as u64;
            if f.len == 0 {
                l.conn.file_done();
                FileStep::Finished
            } else {
                FileStep::Partial
            }
        }
        IoResult::WouldBlock => FileStep::WouldBlock,
        IoResult::Error => FileStep::Error,
    }
}

/// Pooled connection buffers: a connection holds an input and an output
/// buffer only while it has bytes in flight, so that idle keep-alive
/// connections cost no buffer memory.
struct Pools {
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    /// Length of a pooled input buffer.
    in_size: usize,
}

impl Pools {
    /// Gives `conn` buffers if it has none.
    fn attach(&mut self, conn: &mut Conn) {
        if !conn.has_buffers() {
            let inb = self.inputs.pop().unwrap_or_default();
            let outb = self.outputs.pop().unwrap_or_default();
            conn.set_buffers(inb, outb, self.in_size);
        }
    }

    /// Takes `conn`'s buffers back (the caller knows they hold nothing).
    /// Buffers that grew are freed rather than pooled.
    fn release(&mut self, conn: &mut Conn) {
        if !conn.has_buffers() {
            return;
        }
        let (inb, outb) = conn.take_buffers();
        if inb.len() == self.in_size && self.inputs.len() < POOL_MAX {
            self.inputs.push(inb);
        }
        if outb.capacity() <= OUT_KEEP && self.outputs.len() < POOL_MAX {
            self.outputs.push(outb);
        }
    }
}

/// io_uring: hands queued output to a send request (at most one in flight
/// per connection; what is queued meanwhile goes in the next), then a
/// pending file body by `sendfile` once nothing is in flight. `Done` means
/// nothing needs writability; a send may still be in flight.
fn flush_uring(
    u: &mut UringIo,
    sio: &mut SlotIo,
    l: &mut Live,
    pools: &mut Pools,
    slot: u32,
    generation: u32,
) -> Flush {
    if sio.sending || sio.poll_out {
        return Flush::Done(false);
    }
    if !l.conn.output().is_empty() {
        let fresh = pools.outputs.pop().unwrap_or_default();
        let (buf, start) = l.conn.swap_output(fresh);
        sio.tx = buf;
        sio.tx_done = start;
        sio.sending = true;
        sio.inflight += 1;
        // SAFETY: `tx` is not touched while `sending` is set (every writer
        // checks it), and the slot that owns it is not reused before this
        // request's completion (`inflight`), even if the connection closes.
        unsafe {
            u.ring
                .send(l.fd, &sio.tx[start..], user_data(OP_SEND, slot, generation))
        };
        return Flush::Done(true);
    }
    loop {
        match send_file(l) {
            FileStep::NoFile => return Flush::Done(false),
            FileStep::Partial => {}
            // Responses queued behind the file go out next.
            FileStep::Finished => {
                return match flush_uring(u, sio, l, pools, slot, generation) {
                    Flush::Done(_) => Flush::Done(true),
                    other => other,
                };
            }
            FileStep::WouldBlock => {
                let ud = user_data(OP_POLL_OUT, slot, generation);
                u.ring.poll_out(l.fd, ud);
                sio.poll_out = true;
                sio.inflight += 1;
                return Flush::Blocked;
            }
            FileStep::Error => return Flush::Error,
        }
    }
}

/// Routes deferred completions to their connections.
struct Sink<'a> {
    slots: &'a mut Vec<Slot>,
    dirty: &'a mut Vec<u32>,
    pools: &'a mut Pools,
    date: &'a [u8],
    log: Option<&'a mut Vec<u8>>,
}

impl Complete for Sink<'_> {
    fn complete(&mut self, id: RequestId, response: ResponseRef<'_>) -> bool {
        let Some(s) = self.slots.get_mut(id.slot as usize) else {
            return false;
        };
        if s.generation != id.generation {
            return false;
        }
        let Some(l) = s.live.as_mut() else {
            return false;
        };
        // The connection gave its buffers back when the request went to the
        // handler; the response is written into pooled ones rather than a
        // fresh allocation (which `drive` would then have to keep, dropping
        // the pooled buffer it attaches).
        self.pools.attach(&mut l.conn);
        if !l
            .conn
            .complete(id.seq, response, self.date, self.log.as_deref_mut())
        {
            return false;
        }
        if !l.dirty {
            l.dirty = true;
            self.dirty.push(id.slot);
        }
        true
    }
}
