//! The guard-page harness catches a kernel that reads past its input: a
//! deliberately sloppy kernel (a full 16-byte load whatever the length)
//! faults when its input ends at a guard page, while the same load done the
//! page-safe way (as the real kernels do) passes.

use marg_macros::marg_asm;
use verify::guard::{Guarded, Placement};

marg_asm! {
    /// Index of the first zero byte among the first 16 — loading all 16
    /// bytes even when `len` is shorter: an over-read.
    pub fn sloppy_find_zero(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
        }
        movdqu xmm0, [ptr]              // BUG: reads 16 bytes whatever len is
        pxor xmm1, xmm1
        pcmpeqb xmm0, xmm1
        pmovmskb eax, xmm0
        bts eax, esi                    // sentinel at len (len < 16)
        bsf eax, eax
        ret
    }
}

/// Runs `f` in a forked child; returns the signal that killed it, if any.
fn signal_of(f: impl FnOnce()) -> Option<i32> {
    // SAFETY: the child only runs `f` (memory reads) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        f();
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

#[test]
fn an_over_reading_kernel_faults_at_the_guard_page() {
    let f = SLOPPY_FIND_ZERO
        .variant("baseline")
        .expect("x86-64-v2 host");
    let sig = signal_of(|| {
        let g = Guarded::new(b"abc\0e", Placement::AtEnd);
        // SAFETY: deliberately calls the buggy kernel: it must fault.
        let r = unsafe { f(g.bytes().as_ptr(), g.bytes().len()) };
        std::hint::black_box(r);
    });
    assert_eq!(sig, Some(libc::SIGSEGV), "the over-read was not caught");
}

#[test]
fn the_real_kernels_do_not_fault_on_the_same_input() {
    let g = Guarded::new(b"abc\0e", Placement::AtEnd);
    for (v, f) in kernels::http1::asm::FIND_BYTE2.runnable() {
        // SAFETY: reads only the guarded input.
        let r = unsafe { f(g.bytes().as_ptr(), g.bytes().len(), 0, 0) };
        assert_eq!(r, 3, "variant {}", v.name);
    }
}
