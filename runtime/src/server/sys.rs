//! Thin safe wrappers over the Linux system calls the event loop uses
//! (epoll, eventfd, sockets, sendfile, signals). Every `unsafe` block in the
//! server lives here.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(pub RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// Closes a descriptor, ignoring errors.
pub fn close(fd: RawFd) {
    // SAFETY: closing an fd we own; errors (EBADF) are harmless here.
    unsafe {
        libc::close(fd);
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> io::Result<Fd> {
    // SAFETY: plain syscall without pointers.
    cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(Fd)
}

/// `epoll_ctl(ADD)` with `events` and `token` as user data.
pub fn epoll_add(ep: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

/// `epoll_ctl(MOD)`: replaces the interest set of `fd`.
pub fn epoll_mod(ep: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, &mut ev) }).map(drop)
}

/// `epoll_ctl(DEL)`.
pub fn epoll_del(ep: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: `ev` is valid (ignored by DEL on modern kernels).
    unsafe {
        libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, &mut ev);
    }
}

/// `epoll_wait` into `events`; returns how many are filled. EINTR -> 0.
pub fn epoll_wait(
    ep: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    // SAFETY: the buffer is valid for `events.len()` entries.
    let r = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

/// A non-blocking `eventfd`.
pub fn eventfd() -> io::Result<Fd> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).map(Fd)
}

/// Adds 1 to an eventfd (wakes its reader).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64.
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), 8);
    }
}

/// Resets an eventfd.
pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64.
    unsafe {
        libc::read(fd, (&mut v as *mut u64).cast(), 8);
    }
}

fn sockaddr_from(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn sockaddr_to(ss: &libc::sockaddr_storage) -> SocketAddr {
    match ss.ss_family as libc::c_int {
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                0,
                sin6.sin6_scope_id,
            ))
        }
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            ))
        }
        _ => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

/// A non-blocking listening socket with `SO_REUSEADDR` + `SO_REUSEPORT`.
pub fn listen(addr: &SocketAddr, backlog: i32) -> io::Result<Fd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall.
    let fd = Fd(cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?);
    setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    setsockopt_int(fd.0, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    let (ss, len) = sockaddr_from(addr);
    // SAFETY: `ss` holds a valid sockaddr of length `len`.
    cvt(unsafe { libc::bind(fd.0, (&ss as *const libc::sockaddr_storage).cast(), len) })?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(fd.0, backlog) })?;
    Ok(fd)
}

/// The local address of a socket.
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    socket_name(fd, libc::getsockname)
}

/// The remote address of a connected socket.
pub fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    socket_name(fd, libc::getpeername)
}

/// `getsockname` or `getpeername` (same signature) into a `SocketAddr`.
fn socket_name(
    fd: RawFd,
    call: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> io::Result<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer of the right size, as both calls
    // expect.
    cvt(unsafe {
        call(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    Ok(sockaddr_to(&ss))
}

/// `accept4` (non-blocking, close-on-exec); `Ok(None)` when nothing is
/// pending.
pub fn accept(fd: RawFd) -> io::Result<Option<(RawFd, SocketAddr)>> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer of the right size.
    let r = unsafe {
        libc::accept4(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ECONNABORTED) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some((r, sockaddr_to(&ss))))
}

/// Sets `TCP_NODELAY`.
pub fn set_nodelay(fd: RawFd) {
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
}

/// Outcome of a non-blocking read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoResult {
    /// `n` bytes transferred (0 on read: end of stream).
    Done(usize),
    /// Would block.
    WouldBlock,
    /// A fatal error (reset, ...).
    Error,
}

/// `read(2)` into `buf`.
///
/// The hot-path calls go through `syscall(2)` rather than glibc's `read` /
/// `send`: those are thread-cancellation points, and their enable/disable
/// bracketing measured about 1% of a keep-alive request's CPU. Marg never
/// cancels threads.
#[inline]
pub fn read(fd: RawFd, buf: &mut [u8]) -> IoResult {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `read`
        // takes (int, void *, size_t).
        let r = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
        if r >= 0 {
            return IoResult::Done(r as usize);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return IoResult::WouldBlock,
            _ => return IoResult::Error,
        }
    }
}

/// `send(2)` with `MSG_NOSIGNAL`.
#[inline]
pub fn write(fd: RawFd, buf: &[u8]) -> IoResult {
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `sendto`
        // with a null address is `send` (see `read` on why not glibc's).
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                fd,
                buf.as_ptr(),
                buf.len(),
                libc::MSG_NOSIGNAL,
                std::ptr::null::<libc::sockaddr>(),
                0 as libc::socklen_t,
            )
        };
        if r >= 0 {
            return IoResult::Done(r as usize);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return IoResult::WouldBlock,
            _ => return IoResult::Error,
        }
    }
}

/// `sendfile(2)` of up to `count` bytes from `file` at `*offset`.
pub fn sendfile(out: RawFd, file: RawFd, offset: &mut u64, count: u64) -> IoResult {
    let mut off = *offset as libc::off_t;
    let count = count.min(1 << 30) as usize;
    // SAFETY: `off` is a valid off_t the kernel updates.
    let r = unsafe { libc::sendfile(out, file, &mut off, count) };
    match cvt_size(r) {
        Ok(n) => {
            *offset = off as u64;
            IoResult::Done(n)
        }
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => IoResult::WouldBlock,
            _ => IoResult::Error,
        },
    }
}

/// `shutdown(SHUT_WR)`: send FIN, keep reading (lingering close).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it
/// spawns afterwards) and ignores SIGPIPE; returns the blocked set for
/// [`wait_signal`].
pub fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the sig* calls initialise and use it.
    unsafe {
        let mut set: libc::sigset_t = zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        set
    }
}

/// Waits for one of the signals in `set`; returns its number.
pub fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_shutdown_signals; `sig` is a
    // valid out-pointer.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// Number of CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
