//! The io_uring side of the event loop: a ring set up for one issuing
//! thread (`SINGLE_ISSUER | DEFER_TASKRUN`: completions are produced only
//! while the worker is inside `io_uring_enter`, so a wake-up does its
//! socket work in one batch) and a ring of provided receive buffers.
//!
//! Every `unsafe` block of the io_uring backend lives here, next to the
//! invariant it relies on. The worker (`worker.rs`) decides what to submit;
//! this module owns the memory the kernel reads and writes.
//!
//! Requests in flight reference memory by address: a send's bytes, the
//! buffer ring. The rules that keep those addresses valid:
//! - the buffer ring and its data area live as long as the [`Uring`] and are
//!   unmapped only after the ring fd is closed (field order in `Drop`);
//! - a send's buffer is owned by the worker's slot until the send's final
//!   completion arrives, even after the connection is closed (the slot is
//!   not reused before that; see `Worker::close_conn`).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Buffer group id of the receive buffers.
const BGID: u16 = 0;

/// One completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cqe {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

impl Cqe {
    /// A multishot request stays armed (more completions will follow).
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this completion filled, if any.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// Provided receive buffers: `count` buffers of `size` bytes, handed to the
/// kernel through a registered buffer ring. A buffer the kernel filled is
/// the application's until [`BufRing::recycle`] gives it back.
struct BufRing {
    /// The ring of `count` entries (page-aligned, mmap'd).
    ring: *mut types::BufRingEntry,
    ring_bytes: usize,
    /// `count * size` bytes of buffer memory (mmap'd).
    data: *mut u8,
    data_bytes: usize,
    count: u16,
    size: usize,
    /// Our copy of the ring tail (the kernel reads the shared one).
    tail: u16,
}

impl BufRing {
    fn new(count: u16, size: usize) -> io::Result<BufRing> {
        debug_assert!(count.is_power_of_two());
        let ring_bytes = usize::from(count) * std::mem::size_of::<types::BufRingEntry>();
        let data_bytes = usize::from(count) * size;
        let ring = mmap_anon(ring_bytes)?.cast::<types::BufRingEntry>();
        let data = match mmap_anon(data_bytes) {
            Ok(p) => p,
            Err(e) => {
                munmap(ring.cast(), ring_bytes);
                return Err(e);
            }
        };
        let mut br = BufRing {
            ring,
            ring_bytes,
            data,
            data_bytes,
            count,
            size,
            tail: 0,
        };
        for bid in 0..count {
            br.recycle(bid);
        }
        Ok(br)
    }

    /// The bytes the kernel put in buffer `bid`.
    ///
    /// The slice aliases memory the kernel writes again once the buffer is
    /// recycled: callers copy out what they keep before [`BufRing::recycle`].
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size);
        // SAFETY: `data` holds `count * size` bytes (mmap'd in `new`, unmapped
        // only in Drop); buffer `bid` is `size` bytes at `bid * size`, and
        // `len <= size`. The kernel filled it and does not touch it until it
        // is recycled, which takes `&mut self` (so this borrow has ended).
        unsafe { std::slice::from_raw_parts(self.data.add(usize::from(bid) * self.size), len) }
    }

    /// Gives buffer `bid` back to the kernel.
    fn recycle(&mut self, bid: u16) {
        assert!(bid < self.count);
        let idx = usize::from(self.tail & (self.count - 1));
        // SAFETY: `ring` holds `count` entries and `idx < count`. The entry at
        // the tail is not owned by the kernel (it consumes entries only up to
        // the published tail). The address is inside `data` (see `get`).
        unsafe {
            let e = &mut *self.ring.add(idx);
            e.set_addr(self.data.add(usize::from(bid) * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the `resv` field of entry 0 (the ring layout of
        // io_uring_buf_ring); it is a naturally aligned u16 in our mapping.
        // The release store publishes the entry written above to the kernel.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        munmap(self.ring.cast(), self.ring_bytes);
        munmap(self.data, self.data_bytes);
    }
}

fn mmap_anon(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

fn munmap(p: *mut u8, len: usize) {
    // SAFETY: `p`/`len` is a mapping made by `mmap_anon` that nothing uses
    // any more (the ring fd that referenced it is closed first).
    unsafe {
        libc::munmap(p.cast(), len);
    }
}

/// A worker's ring.
pub(crate) struct Uring {
    // Field order matters: the ring (and with it the kernel's references to
    // the buffer ring) goes first.
    ring: IoUring,
    bufs: BufRing,
    cqes: Vec<Cqe>,
}

impl Uring {
    /// Sets up a ring with `entries` submission slots and `bufs` receive
    /// buffers of `buf_size` bytes. Fails on kernels without
    /// `DEFER_TASKRUN` (before 6.1) or where io_uring is disabled (seccomp,
    /// `kernel.io_uring_disabled`); the caller then uses epoll.
    pub fn new(entries: u32, bufs: u16, buf_size: usize) -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .setup_cqsize(entries * 8)
            .build(entries)?;
        let br = BufRing::new(bufs, buf_size)?;
        // SAFETY: the ring memory stays mapped until `br` drops, which is
        // after the ring fd is closed (field order of `Uring`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(br.ring as u64, bufs, BGID, 0)?;
        }
        Ok(Uring {
            ring,
            bufs: br,
            cqes: Vec::with_capacity(1024),
        })
    }

    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry built by this module references only memory
            // that outlives the request (see the module docs and each
            // builder's comment).
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel and retry.
            if let Err(err) = self.ring.submit() {
                match err.raw_os_error() {
                    Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    _ => {
                        // The ring is unusable; the worker's next wait fails and ends it.
                        eprintln!("marg: io_uring submit failed: {err}");
                        return;
                    }
                }
            }
        }
    }

    /// Multishot accept on a listening socket.
    pub fn accept(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// Multishot poll for readability (the mailbox eventfd).
    pub fn poll_in(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// One-shot poll for writability (a blocked `sendfile`).
    pub fn poll_out(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// Multishot receive into the provided buffers.
    pub fn recv(&mut self, fd: RawFd, user_data: u64) {
        let e = opcode::RecvMulti::new(types::Fd(fd), BGID)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// Sends `buf`. `MSG_WAITALL` makes the kernel retry short sends on a
    /// stream socket, so the completion reports all of it or an error.
    ///
    /// # Safety
    /// `buf` must stay valid and unchanged until this request's completion
    /// has been returned by [`Uring::wait`].
    pub unsafe fn send(&mut self, fd: RawFd, buf: &[u8], user_data: u64) {
        let len = buf.len().min(u32::MAX as usize) as u32;
        let e = opcode::Send::new(types::Fd(fd), buf.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// Cancels the request(s) with `target` as user data; the cancel's own
    /// completion carries `user_data`.
    pub fn cancel(&mut self, target: u64, user_data: u64) {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        self.push(e);
    }

    /// Submits what is queued and waits up to `timeout` (`None`: without
    /// limit; zero: not at all) for at least one completion, then collects
    /// the completions for [`Uring::take_cqes`]. EINTR and ETIME count as no
    /// completion.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            Some(d) if d.is_zero() => self.ring.submit_and_wait(0),
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ETIME) | Some(libc::EBUSY) => {}
                _ => return Err(e),
            }
        }
        self.cqes.clear();
        for c in self.ring.completion() {
            self.cqes.push(Cqe {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
        Ok(())
    }

    /// Completions taken by the last [`Uring::wait`] (for iterating while
    /// calling back into `&mut self`).
    pub fn take_cqes(&mut self) -> Vec<Cqe> {
        std::mem::take(&mut self.cqes)
    }

    /// Returns the vector from [`Uring::take_cqes`] for reuse.
    pub fn put_cqes(&mut self, v: Vec<Cqe>) {
        self.cqes = v;
    }

    /// The bytes of receive buffer `bid` (valid until it is recycled).
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        self.bufs.get(bid, len)
    }

    /// Gives a receive buffer back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.bufs.recycle(bid);
    }
}
