//! Buffers placed against `PROT_NONE` guard pages.
//!
//! A kernel that reads one byte past its input (or one byte before it) must
//! fault, not silently pass: [`Guarded::at_end`] copies the input so that its
//! last byte is the last byte before a guard page, and [`Guarded::at_start`]
//! so that its first byte is the first byte after one. Vector loads that stay
//! inside the page the input touches cannot fault and are allowed (that is
//! how every SIMD scanner handles tails); loads that cross into the next or
//! previous page are the bugs this catches.

use core::ptr::NonNull;

const PAGE: usize = 4096;

/// Where the input sits relative to the guard pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The input's last byte is followed by a guard page.
    AtEnd,
    /// The input's first byte is preceded by a guard page.
    AtStart,
}

impl Placement {
    /// Both placements.
    pub const ALL: [Placement; 2] = [Placement::AtEnd, Placement::AtStart];
}

/// A private mapping `guard | data pages | guard` with the input copied
/// against one of the guards.
pub struct Guarded {
    map: NonNull<u8>,
    map_len: usize,
    data: NonNull<u8>,
    len: usize,
}

impl Guarded {
    /// Copies `input` so that it ends right before a guard page.
    pub fn at_end(input: &[u8]) -> Guarded {
        Guarded::new(input, Placement::AtEnd)
    }

    /// Copies `input` so that it starts right after a guard page.
    pub fn at_start(input: &[u8]) -> Guarded {
        Guarded::new(input, Placement::AtStart)
    }

    /// Copies `input` against the guard page named by `placement`.
    pub fn new(input: &[u8], placement: Placement) -> Guarded {
        let data_pages = input.len().div_ceil(PAGE).max(1);
        let map_len = (data_pages + 2) * PAGE;
        // SAFETY: anonymous private mapping without an address hint; the
        // result is checked against MAP_FAILED below.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(
            map != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let map = map as *mut u8;
        // SAFETY: the data pages lie strictly inside the mapping just made
        // (between the first and the last page).
        let rc = unsafe {
            libc::mprotect(
                map.add(PAGE) as *mut libc::c_void,
                data_pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(rc, 0, "mprotect: {}", std::io::Error::last_os_error());
        let offset = match placement {
            Placement::AtStart => PAGE,
            Placement::AtEnd => PAGE + data_pages * PAGE - input.len(),
        };
        // SAFETY: `offset..offset + input.len()` lies within the read/write
        // data pages by construction; `input` cannot overlap a fresh mapping.
        let data = unsafe {
            let data = map.add(offset);
            core::ptr::copy_nonoverlapping(input.as_ptr(), data, input.len());
            data
        };
        Guarded {
            // SAFETY: mmap never returns null on success.
            map: unsafe { NonNull::new_unchecked(map) },
            map_len,
            // SAFETY: derived from a non-null mapping by a positive offset.
            data: unsafe { NonNull::new_unchecked(data) },
            len: input.len(),
        }
    }

    /// The guarded copy of the input.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `data..data+len` is initialised, readable, and lives as
        // long as `self` (unmapped only in Drop).
        unsafe { core::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }

    /// Mutable view (to build a second operand in place).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`; no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.map.as_ptr() as *mut libc::c_void, self.map_len) };
    }
}

/// What the harness is running right now, for the fault reporter: a fixed
/// buffer so that the signal handler can print it without allocating.
static CURRENT: [core::sync::atomic::AtomicU8; 192] =
    [const { core::sync::atomic::AtomicU8::new(0) }; 192];
static CURRENT_LEN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Records what is about to run (kernel, variant, placement, input length)
/// so that a guard-page fault names it instead of just killing the process.
pub fn set_current(kernel: &str, variant: &str, placement: Placement, len: usize) {
    use core::sync::atomic::Ordering::Relaxed;
    use std::io::Write;
    let mut buf = [0u8; 192];
    let mut w = &mut buf[..];
    let _ = writeln!(
        w,
        "marg-verify: memory fault in kernel {kernel}, variant {variant}, input of {len} bytes {placement:?} a guard page (an out-of-bounds read)"
    );
    let n = 192 - w.len();
    for (slot, b) in CURRENT.iter().zip(&buf[..n]) {
        slot.store(*b, Relaxed);
    }
    CURRENT_LEN.store(n, Relaxed);
}

extern "C" fn report_fault(sig: libc::c_int) {
    use core::sync::atomic::Ordering::Relaxed;
    let n = CURRENT_LEN.load(Relaxed);
    let mut buf = [0u8; 192];
    for (b, slot) in buf.iter_mut().zip(&CURRENT[..n]) {
        *b = slot.load(Relaxed);
    }
    // SAFETY: write(2) and signal/raise are async-signal-safe; `buf` is a
    // local array of `n <= 192` initialised bytes. Restoring the default
    // action and re-raising ends the process with the original signal.
    unsafe {
        libc::write(2, buf.as_ptr() as *const libc::c_void, n);
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs SIGSEGV/SIGBUS handlers that print [`set_current`]'s record
/// before the process dies. Idempotent.
pub fn install_fault_reporter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let handler = report_fault as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: installing a handler that only calls async-signal-safe
        // functions (see `report_fault`).
        unsafe {
            libc::signal(libc::SIGSEGV, handler);
            libc::signal(libc::SIGBUS, handler);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement() {
        let g = Guarded::at_end(b"hello");
        assert_eq!(g.bytes(), b"hello");
        assert_eq!((g.bytes().as_ptr() as usize + 5) % PAGE, 0);
        let g = Guarded::at_start(b"hello");
        assert_eq!(g.bytes().as_ptr() as usize % PAGE, 0);
        let g = Guarded::at_end(b"");
        assert_eq!(g.bytes(), b"");
    }

    /// The guard really faults: a child process reading one byte past the
    /// end dies with SIGSEGV.
    #[test]
    fn guard_faults() {
        // SAFETY: fork in a test; the child only touches memory and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let g = Guarded::at_end(b"abc");
            // SAFETY: deliberately reads the guard page; must fault.
            let b = unsafe { core::ptr::read_volatile(g.bytes().as_ptr().add(3)) };
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(i32::from(b)) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status));
        assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
    }
}
