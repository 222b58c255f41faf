//! The HTTP/1.1 scanning kernels in `marg_asm!`.
//!
//! One source for every width: each kernel body is written once against the
//! width-generic vector registers `v0..v15` and the constant `W` (16, 32 or
//! 64 bytes); the few operations whose instructions differ by ISA (loads,
//! byte-class masks, compare-to-bitmask) are DSL macros with one arm per
//! width. `baseline` (SSE4.2, xmm), `avx2` (ymm) and `avx512` (zmm, opmask
//! registers) are generated from the same kernel text.
//!
//! ## Shared shape of the scanners
//!
//! A scanner returns the index of the first byte that stops it (or `len`).
//! Register roles: `rdi` = ptr, `rsi` = len, `rax` = i (bytes already known
//! not to stop the scan), `rdx` = the per-block stop mask (bit j set iff
//! byte `i + j` stops the scan), `rcx`/`r8` scratch.
//!
//! 1. Main loop: while `i + W <= len`, build the stop mask of the W bytes at
//!    `i`; a non-zero mask ends the scan at `i + tzcnt(mask)`.
//! 2. Tail (`0 < r = len - i < W`): build the mask of the W bytes that *end*
//!    at `len` (they overlap bytes already scanned), shift the `W - r` stale
//!    bits out, set bit `r` as a sentinel (so an all-clear block yields
//!    `len`), and take `bsf`.
//! 3. Inputs shorter than W: if a W-byte load at `ptr` stays inside ptr's
//!    4 KiB page, load forward and use bit `len` as the sentinel; otherwise
//!    the block ending at `ptr + len` lies in that same page (ptr is within
//!    W bytes of the page end), so step 2 applies. No load ever touches a
//!    page the input does not touch: the guard-page tests prove it.
//!
//! ## Byte classes
//!
//! `scan_token`, `scan_target`, `scan_field_value` and the digit scans of
//! `parse_decimal` / `parse_hex` test set membership with two nibble
//! look-ups (`pshufb`): byte `b` is in the set iff
//! `LO[b & 15] & HI[b >> 4] != 0`. Each high nibble owns a bit for the set
//! of low nibbles it admits, so any set whose high nibbles fall into at most
//! 8 distinct low-nibble sets is exact (all of ours do; the tables were
//! generated and checked exhaustively, and the differential tests re-check).

use marg_macros::marg_asm;

/// `(ptr, len) -> index` scanners.
pub type ScanFn = unsafe extern "sysv64" fn(*const u8, usize) -> usize;
/// `(ptr, len, a) -> index` one-needle search.
pub type Find1Fn = unsafe extern "sysv64" fn(*const u8, usize, u32) -> usize;
/// `(ptr, len, a, b) -> index` two-needle search.
pub type Find2Fn = unsafe extern "sysv64" fn(*const u8, usize, u32, u32) -> usize;
/// `(ptr, len, a, b, c) -> index` three-needle search.
pub type Find3Fn = unsafe extern "sysv64" fn(*const u8, usize, u32, u32, u32) -> usize;
/// `(a, b, len) -> 1 if equal ignoring ASCII case, else 0`.
pub type EqFn = unsafe extern "sysv64" fn(*const u8, *const u8, usize) -> usize;
/// `(ptr, len, out) -> end of the digit run, or usize::MAX on overflow`.
pub type DigitsFn = unsafe extern "sysv64" fn(*const u8, usize, *mut u64) -> usize;

marg_asm! {
    // ---- constant pool (each 16-byte pattern repeated to 64 bytes so that
    //      a W-byte load of it fills every 128-bit lane) ----
    data NIBBLE_MASK: [u8; 64] align 64 = [0x0f; 64];
    data TCHAR_LO: [u8; 64] align 64 = [
        0x3a, 0x3f, 0x3e, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3e, 0x3e, 0x3d, 0x15, 0x34, 0x15, 0x3d, 0x1c,
        0x3a, 0x3f, 0x3e, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3e, 0x3e, 0x3d, 0x15, 0x34, 0x15, 0x3d, 0x1c,
        0x3a, 0x3f, 0x3e, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3e, 0x3e, 0x3d, 0x15, 0x34, 0x15, 0x3d, 0x1c,
        0x3a, 0x3f, 0x3e, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3e, 0x3e, 0x3d, 0x15, 0x34, 0x15, 0x3d, 0x1c,
    ];
    data TCHAR_HI: [u8; 64] align 64 = [
        0x00, 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    data TARGET_LO: [u8; 64] align 64 = [
        0x06, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x03,
        0x06, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x03,
        0x06, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x03,
        0x06, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x03,
    ];
    data TARGET_HI: [u8; 64] align 64 = [
        0x00, 0x00, 0x01, 0x02, 0x02, 0x02, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x02, 0x02, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x02, 0x02, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x02, 0x02, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    data FIELD_LO: [u8; 64] align 64 = [
        0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x07, 0x06, 0x06, 0x06, 0x06, 0x06, 0x02,
        0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x07, 0x06, 0x06, 0x06, 0x06, 0x06, 0x02,
        0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x07, 0x06, 0x06, 0x06, 0x06, 0x06, 0x02,
        0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x07, 0x06, 0x06, 0x06, 0x06, 0x06, 0x02,
    ];
    data FIELD_HI: [u8; 64] align 64 = [
        0x01, 0x00, 0x02, 0x02, 0x02, 0x02, 0x02, 0x04, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
        0x01, 0x00, 0x02, 0x02, 0x02, 0x02, 0x02, 0x04, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
        0x01, 0x00, 0x02, 0x02, 0x02, 0x02, 0x02, 0x04, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
        0x01, 0x00, 0x02, 0x02, 0x02, 0x02, 0x02, 0x04, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    ];
    data DEC_LO: [u8; 64] align 64 = [
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    data DEC_HI: [u8; 64] align 64 = [
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    data HEX_LO: [u8; 64] align 64 = [
        0x01, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    data HEX_HI: [u8; 64] align 64 = [
        0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // 'A'..='Z' + 0x3f lands in 0x80..=0x99, i.e. signed -128..=-103, the only
    // bytes below the signed bound -102 (0x9a): the upper-case test is one
    // add and one signed compare.
    data UPPER_BIAS: [u8; 64] align 64 = [0x3f; 64];
    data UPPER_BOUND: [u8; 64] align 64 = [0x9a; 64];
    data CASE_BIT: [u8; 64] align 64 = [0x20; 64];

    // ---- width-specific building blocks ----

    // dst = the W bytes at `src` (unaligned).
    macro vload(dst, src) {
        if W == 16 { movdqu dst, src }
        else if W == 32 { vmovdqu dst, src }
        else { vmovdqu8 dst, src }
    }

    // Broadcasts the low byte of GPR `src32` (a 32-bit register) into every
    // byte of `dst`; `t` is scratch (and xmm15 at W = 32).
    macro vbroadcast_byte(dst, src32, t) {
        if W == 16 {
            movd dst, src32
            pxor t, t
            pshufb dst, t               // index 0 everywhere
        } else if W == 32 {
            vmovd xmm15, src32          // (v15 is free whenever this runs)
            vpbroadcastb dst, xmm15
        } else {
            vpbroadcastb dst, src32
        }
    }

    // rdx = bit j set iff byte j of the W bytes at `src` is NOT in the class
    // given by the nibble tables in `lo`/`hi`; `m0f` holds 0x0f bytes,
    // `zero` zeroes (unused at W = 64); t0..t2 scratch.
    macro class_mask(src, lo, hi, m0f, zero, t0, t1, t2) {
        if W == 16 {
            movdqu t0, src
            movdqa t1, t0
            psrlw t1, 4
            pand t1, m0f                // high nibbles
            pand t0, m0f                // low nibbles
            movdqa t2, lo
            pshufb t2, t0               // LO[b & 15]
            movdqa t0, hi
            pshufb t0, t1               // HI[b >> 4]
            pand t0, t2                 // non-zero iff in the class
            pcmpeqb t0, zero
            pmovmskb edx, t0
        } else if W == 32 {
            vmovdqu t0, src
            vpsrlw t1, t0, 4
            vpand t1, t1, m0f
            vpand t0, t0, m0f
            vpshufb t2, lo, t0
            vpshufb t0, hi, t1
            vpand t0, t0, t2
            vpcmpeqb t0, t0, zero
            vpmovmskb edx, t0
        } else {
            vmovdqu8 t0, src
            vpsrlw t1, t0, 4
            vpandq t1, t1, m0f
            vpandq t0, t0, m0f
            vpshufb t2, lo, t0
            vpshufb t0, hi, t1
            vptestnmb k1, t0, t2        // (LO & HI) == 0: not in the class
            kmovq rdx, k1
        }
    }

    // The scanner skeleton of the module docs, over the class whose nibble
    // tables are `lo_tbl`/`hi_tbl`. Ends with the index in rax by executing
    // `exit` (a `ret`, or a jump to further work).
    macro scan_class(lo_tbl, hi_tbl, exit) {
        vload!(v8, [lo_tbl])
        vload!(v9, [hi_tbl])
        vload!(v10, [NIBBLE_MASK])
        if W == 16 { pxor v11, v11 } else if W == 32 { vpxor v11, v11, v11 }
        xor eax, eax
        cmp rsi, W
        jb short_input
    main_loop:
        class_mask!([rdi + rax], v8, v9, v10, v11, v0, v1, v2)
        test rdx, rdx
        jnz found
        add rax, W
        lea rcx, [rax + W]
        cmp rcx, rsi
        jbe main_loop
        cmp rax, rsi
        je done
    last_block:                         // 0 < r = len - i < W
        class_mask!([rdi + rsi - W], v8, v9, v10, v11, v0, v1, v2)
        mov rcx, rsi
        sub rcx, rax                    // r
        mov r8, rcx
        neg ecx
        add ecx, W                      // W - r stale bits
        shr rdx, cl
        bts rdx, r8                     // sentinel: nothing found -> r
        bsf rdx, rdx
        add rax, rdx
        exit
    found:
        bsf rdx, rdx
        add rax, rdx
        exit
    short_input:                        // len < W, i = 0
        test rsi, rsi
        jz done
        mov ecx, edi
        and ecx, 4095
        cmp ecx, 4096 - W
        ja last_block                   // a forward load would leave the page
        class_mask!([rdi], v8, v9, v10, v11, v0, v1, v2)
        bts rdx, rsi                    // sentinel at len
        bsf rax, rdx
        exit
    done:
        exit
    }

    /// Index of the first byte that is not an RFC 9110 `tchar`, or len.
    pub fn scan_token(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        scan_class!(TCHAR_LO, TCHAR_HI, ret)
    }

    /// Index of the first byte outside 0x21..=0x7e (request-target), or len.
    pub fn scan_target(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        scan_class!(TARGET_LO, TARGET_HI, ret)
    }

    /// Index of the first byte that ends or invalidates a field value (CR,
    /// LF, NUL, other CTLs but HTAB, DEL), or len.
    pub fn scan_field_value(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        scan_class!(FIELD_LO, FIELD_HI, ret)
    }

    // rdx = bit j set iff the 4 bytes at `base + j` are `\r\n\r\n`.
    // `cr`/`lf` hold broadcast CR/LF; t0, t1 scratch.
    macro crlfcrlf_mask(base, cr, lf, t0, t1) {
        if W == 16 {
            movdqu t0, [base]
            pcmpeqb t0, cr
            movdqu t1, [base + 1]
            pcmpeqb t1, lf
            pand t0, t1
            movdqu t1, [base + 2]
            pcmpeqb t1, cr
            pand t0, t1
            movdqu t1, [base + 3]
            pcmpeqb t1, lf
            pand t0, t1
            pmovmskb edx, t0
        } else if W == 32 {
            vpcmpeqb t0, cr, [base]
            vpcmpeqb t1, lf, [base + 1]
            vpand t0, t0, t1
            vpcmpeqb t1, cr, [base + 2]
            vpand t0, t0, t1
            vpcmpeqb t1, lf, [base + 3]
            vpand t0, t0, t1
            vpmovmskb edx, t0
        } else {
            vpcmpeqb k1, cr, [base]
            vpcmpeqb k2, lf, [base + 1]
            kandq k1, k1, k2
            vpcmpeqb k2, cr, [base + 2]
            kandq k1, k1, k2
            vpcmpeqb k2, lf, [base + 3]
            kandq k1, k1, k2
            kmovq rdx, k1
        }
    }

    // rdx = bit j set iff bytes j + 1 and j + 3 at `base` are both LF: the
    // cheap half of the `\r\n\r\n` test (two loads instead of four), true
    // in header text only near the end of the block.
    macro lflf_mask(base, lf, t0, t1) {
        if W == 16 {
            movdqu t0, [base + 1]
            pcmpeqb t0, lf
            movdqu t1, [base + 3]
            pcmpeqb t1, lf
            pand t0, t1
            pmovmskb edx, t0
        } else if W == 32 {
            vpcmpeqb t0, lf, [base + 1]
            vpcmpeqb t1, lf, [base + 3]
            vpand t0, t0, t1
            vpmovmskb edx, t0
        } else {
            vpcmpeqb k1, lf, [base + 1]
            vpcmpeqb k2, lf, [base + 3]
            kandq k1, k1, k2
            kmovq rdx, k1
        }
    }

    // rdx = exact `\r\n\r\n` start mask of the W starts at `base`, computed
    // only when the LF-LF filter passes (else rdx = 0).
    macro header_end_mask(base, cr, lf, t0, t1) {
        lflf_mask!(base, lf, t0, t1)
        test rdx, rdx
        jz filtered
        crlfcrlf_mask!(base, cr, lf, t0, t1)
    filtered:
    }

    // Sets ZF iff none of the 4W bytes at `base` is LF (`lf` holds
    // broadcast LF); t0..t3 scratch.
    macro lf_any4(base, lf, t0, t1, t2, t3) {
        if W == 16 {
            movdqu t0, [base]
            pcmpeqb t0, lf
            movdqu t1, [base + W]
            pcmpeqb t1, lf
            movdqu t2, [base + 2 * W]
            pcmpeqb t2, lf
            movdqu t3, [base + 3 * W]
            pcmpeqb t3, lf
            por t0, t1
            por t2, t3
            por t0, t2
            pmovmskb edx, t0
            test edx, edx
        } else if W == 32 {
            vpcmpeqb t0, lf, [base]
            vpcmpeqb t1, lf, [base + W]
            vpcmpeqb t2, lf, [base + 2 * W]
            vpcmpeqb t3, lf, [base + 3 * W]
            vpor t0, t0, t1
            vpor t2, t2, t3
            vpor t0, t0, t2
            vptest t0, t0
        } else {
            vpcmpeqb k1, lf, [base]
            vpcmpeqb k2, lf, [base + W]
            korq k1, k1, k2
            vpcmpeqb k2, lf, [base + 2 * W]
            korq k1, k1, k2
            vpcmpeqb k2, lf, [base + 3 * W]
            korq k1, k1, k2
            kortestq k1, k1
        }
    }

    /// Start of the first `\r\n\r\n`, or len. Candidate starts are
    /// 0..n with n = len - 3; four overlapping loads compare each start's
    /// four bytes at once, so no state carries across blocks. Long inputs
    /// are first filtered 4W starts at a time: a start j can only match if
    /// byte j + 1 is LF, and a block without any LF is skipped with one load
    /// and compare per vector (how memchr's memmem prefilter pays off, here
    /// on the byte that is rarest in header text after CR).
    pub fn find_header_end(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let cr = v8;
        let lf = v9;
        let n = r9;                     // number of candidate start positions
        let block_end = r11;
        mov ecx, 13
        vbroadcast_byte!(cr, ecx, v0)
        mov ecx, 10
        vbroadcast_byte!(lf, ecx, v0)
        xor eax, eax
        cmp rsi, 4
        jb not_found
        lea n, [rsi - 3]
        cmp n, W
        jb short_input
        lea rcx, [rax + 4 * W]
        cmp rcx, n
        ja main_loop
    wide_loop:                          // while i + 4W <= n: skip LF-free blocks
        lf_any4!(rdi + rax + 1, lf, v0, v1, v2, v3)
        jnz wide_hit
    wide_next:
        add rax, 4 * W
        lea rcx, [rax + 4 * W]
        cmp rcx, n
        jbe wide_loop
        lea rcx, [rax + W]
        cmp rcx, n
        ja tail
    main_loop:                          // while i + W <= n
        header_end_mask!(rdi + rax, cr, lf, v0, v1)
        test rdx, rdx
        jnz found
        add rax, W
        lea rcx, [rax + W]
        cmp rcx, n
        jbe main_loop
    tail:
        cmp rax, n
        je not_found
    last_block:                         // 0 < r = n - i < W: block ending at n
        lea r10, [rdi + n - W]
        crlfcrlf_mask!(r10, cr, lf, v0, v1)
        mov rcx, n
        sub rcx, rax                    // r
        mov r8, rcx
        neg ecx
        add ecx, W
        shr rdx, cl                     // drop W - r stale starts
        bts rdx, r8                     // sentinel
        bsf rdx, rdx
        cmp rdx, r8
        je not_found
        add rax, rdx
        ret
    wide_hit:                           // exact check of the 4 blocks at i
        lea block_end, [rax + 4 * W]
    wide_exact:
        header_end_mask!(rdi + rax, cr, lf, v0, v1)
        test rdx, rdx
        jnz found
        add rax, W
        cmp rax, block_end
        jb wide_exact
        sub rax, 4 * W                  // wide_next adds it back
        jmp wide_next
    found:
        bsf rdx, rdx
        add rax, rdx
        ret
    short_input:                        // n < W, i = 0
        mov ecx, edi
        and ecx, 4095
        cmp ecx, 4096 - W - 3
        ja last_block                   // forward loads would leave the page
        crlfcrlf_mask!(rdi, cr, lf, v0, v1)
        bts rdx, n
        bsf rax, rdx
        cmp rax, n
        je not_found
        ret
    not_found:
        mov rax, rsi
        ret
    }

    // rdx = bit j set iff byte j at `src` equals one of the first `n`
    // needles in `a`, `b`, `c` (n = 1, 2 or 3); t0..t2 scratch.
    macro needles_mask(src, a, b, c, n, t0, t1, t2) {
        if W == 16 {
            movdqu t0, src
            if n >= 2 {
                movdqa t1, t0
                pcmpeqb t1, b
            }
            if n == 3 {
                movdqa t2, t0
                pcmpeqb t2, c
                por t1, t2
            }
            pcmpeqb t0, a
            if n >= 2 { por t0, t1 }
            pmovmskb edx, t0
        } else if W == 32 {
            vmovdqu t0, src
            if n >= 2 { vpcmpeqb t1, t0, b }
            if n == 3 {
                vpcmpeqb t2, t0, c
                vpor t1, t1, t2
            }
            vpcmpeqb t0, t0, a
            if n >= 2 { vpor t0, t0, t1 }
            vpmovmskb edx, t0
        } else {
            vmovdqu8 t0, src
            vpcmpeqb k1, t0, a
            if n >= 2 {
                vpcmpeqb k2, t0, b
                korq k1, k1, k2
            }
            if n == 3 {
                vpcmpeqb k2, t0, c
                korq k1, k1, k2
            }
            kmovq rdx, k1
        }
    }

    // Sets ZF iff none of the 4W bytes at `base` equals one of the first `n`
    // needles. Loads go to v12..v15, per-vector hits to v4..v7 (W < 64) or
    // are OR-ed into k1 (W = 64); t scratch.
    macro needles_any4(base, a, b, c, n, t) {
        if W == 16 {
            for u in 0..4 {
                movdqu v{u + 12}, [base + u * W]
                movdqa v{u + 4}, v{u + 12}
                pcmpeqb v{u + 4}, a
                if n >= 2 {
                    movdqa t, v{u + 12}
                    pcmpeqb t, b
                    por v{u + 4}, t
                }
                if n == 3 {
                    pcmpeqb v{u + 12}, c
                    por v{u + 4}, v{u + 12}
                }
            }
            por v4, v5
            por v6, v7
            por v4, v6
            pmovmskb edx, v4
            test edx, edx
        } else if W == 32 {
            for u in 0..4 {
                vmovdqu v{u + 12}, [base + u * W]
                vpcmpeqb v{u + 4}, v{u + 12}, a
                if n >= 2 {
                    vpcmpeqb t, v{u + 12}, b
                    vpor v{u + 4}, v{u + 4}, t
                }
                if n == 3 {
                    vpcmpeqb t, v{u + 12}, c
                    vpor v{u + 4}, v{u + 4}, t
                }
            }
            vpor v4, v4, v5
            vpor v6, v6, v7
            vpor v4, v4, v6
            vptest v4, v4
        } else {
            for u in 0..4 {
                vmovdqu8 v{u + 12}, [base + u * W]
            }
            vpcmpeqb k1, v12, a
            for u in 0..4 {
                if u > 0 {
                    vpcmpeqb k2, v{u + 12}, a
                    korq k1, k1, k2
                }
                if n >= 2 {
                    vpcmpeqb k2, v{u + 12}, b
                    korq k1, k1, k2
                }
                if n == 3 {
                    vpcmpeqb k2, v{u + 12}, c
                    korq k1, k1, k2
                }
            }
            kortestq k1, k1
        }
    }

    // Shared body of find_byte/find_byte2/find_byte3 (`n` needles, already
    // broadcast in v8/v9/v10). After the first (unaligned) vector, loads are W-aligned;
    // 4W-byte blocks are tested with one OR-reduced check, and the block
    // that hits is re-scanned one vector at a time.
    macro find_bytes(n) {
        xor eax, eax
        cmp rsi, W
        jb short_input
        // The first W bytes unaligned; from there on W-aligned loads, which
        // never split a cache line (re-checking the overlap is harmless).
        needles_mask!([rdi], v8, v9, v10, n, v0, v1, v2)
        test rdx, rdx
        jnz found
        mov eax, edi
        and eax, W - 1
        neg rax
        add rax, W                      // i = first W-aligned offset past ptr, 1..=W
        lea rcx, [rax + 4 * W]
        cmp rcx, rsi
        ja single_check
    wide_loop:                          // while i + 4W <= len
        needles_any4!(rdi + rax, v8, v9, v10, n, v3)
        jnz main_loop                   // a hit in these 4W bytes: find it
        add rax, 4 * W
        lea rcx, [rax + 4 * W]
        cmp rcx, rsi
        jbe wide_loop
    single_check:
        lea rcx, [rax + W]
        cmp rcx, rsi
        ja tail
    main_loop:                          // while i + W <= len
        needles_mask!([rdi + rax], v8, v9, v10, n, v0, v1, v2)
        test rdx, rdx
        jnz found
        add rax, W
        lea rcx, [rax + W]
        cmp rcx, rsi
        jbe main_loop
    tail:
        cmp rax, rsi
        je done
    last_block:                         // 0 < r = len - i < W
        needles_mask!([rdi + rsi - W], v8, v9, v10, n, v0, v1, v2)
        mov rcx, rsi
        sub rcx, rax
        mov r8, rcx
        neg ecx
        add ecx, W
        shr rdx, cl
        bts rdx, r8
        bsf rdx, rdx
        add rax, rdx
        ret
    found:
        bsf rdx, rdx
        add rax, rdx
        ret
    short_input:
        test rsi, rsi
        jz done
        mov ecx, edi
        and ecx, 4095
        cmp ecx, 4096 - W
        ja last_block
        needles_mask!([rdi], v8, v9, v10, n, v0, v1, v2)
        bts rdx, rsi
        bsf rax, rdx
        ret
    done:
        ret
    }

    /// Index of the first byte equal to `a`, or len (memchr).
    pub fn find_byte(ptr: *const u8, len: usize, a: u32) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        vbroadcast_byte!(v8, edx, v0)
        find_bytes!(1)
    }

    /// Index of the first byte equal to `a` or `b`, or len.
    pub fn find_byte2(ptr: *const u8, len: usize, a: u32, b: u32) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        vbroadcast_byte!(v8, edx, v0)
        vbroadcast_byte!(v9, ecx, v0)
        find_bytes!(2)
    }

    /// Index of the first byte equal to `a`, `b` or `c`, or len.
    pub fn find_byte3(ptr: *const u8, len: usize, a: u32, b: u32, c: u32) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        vbroadcast_byte!(v8, edx, v0)
        vbroadcast_byte!(v9, ecx, v0)
        vbroadcast_byte!(v10, r8d, v0)
        find_bytes!(3)
    }

    // `dst` = the W bytes at `src` with A-Z folded to a-z. `bias`, `bound`
    // and `case` hold UPPER_BIAS, UPPER_BOUND and CASE_BIT; t, u scratch.
    macro load_lower(dst, src, bias, bound, case, t, u) {
        if W == 16 {
            movdqu dst, src
            movdqa t, dst
            paddb t, bias               // A-Z -> 0x80..=0x99 (signed < -102)
            movdqa u, bound
            pcmpgtb u, t                // 0xff where upper case
            pand u, case
            por dst, u                  // set the case bit of A-Z only
        } else if W == 32 {
            vmovdqu dst, src
            vpaddb t, dst, bias
            vpcmpgtb t, bound, t
            vpand t, t, case
            vpor dst, dst, t
        } else {
            vmovdqu8 dst, src
            vpaddb t, dst, bias
            vpcmpgtb k1, bound, t
            vpmovm2b t, k1
            vpandq t, t, case
            vporq dst, dst, t
        }
    }

    // rdx = bit j set iff bytes j of `a` and `b` differ (clobbers `a`).
    macro neq_mask(a, b) {
        if W == 16 {
            pcmpeqb a, b
            pmovmskb edx, a
            xor edx, 0xffff
        } else if W == 32 {
            vpcmpeqb a, a, b
            vpmovmskb edx, a
            not edx
        } else {
            vpcmpb k1, a, b, 4          // predicate 4: not equal
            kmovq rdx, k1
        }
    }

    /// 1 if the `len` bytes at `a` and `b` are equal ignoring ASCII case,
    /// else 0. Blocks of W bytes are folded and compared; the last partial
    /// block is the (overlapping) block ending at len. Inputs shorter than W
    /// are compared with one masked vector when neither operand is within W
    /// bytes of a page end, byte by byte otherwise.
    pub fn eq_ignore_ascii_case(a: *const u8, b: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let n = r8;
        vload!(v8, [UPPER_BIAS])
        vload!(v9, [UPPER_BOUND])
        vload!(v10, [CASE_BIT])
        mov n, rdx
        xor eax, eax
        cmp n, W
        jb short_input
    main_loop:                          // while i + W <= n
        load_lower!(v0, [rdi + rax], v8, v9, v10, v2, v3)
        load_lower!(v1, [rsi + rax], v8, v9, v10, v2, v3)
        neq_mask!(v0, v1)
        test rdx, rdx
        jnz not_equal
        add rax, W
        lea rcx, [rax + W]
        cmp rcx, n
        jbe main_loop
        cmp rax, n
        je equal
        mov rax, n
        sub rax, W                      // one more pass over the last W bytes
        jmp main_loop
    short_input:                        // n < W
        test n, n
        jz equal
        mov ecx, edi
        and ecx, 4095
        cmp ecx, 4096 - W
        ja bytewise
        mov ecx, esi
        and ecx, 4095
        cmp ecx, 4096 - W
        ja bytewise
        load_lower!(v0, [rdi], v8, v9, v10, v2, v3)
        load_lower!(v1, [rsi], v8, v9, v10, v2, v3)
        neq_mask!(v0, v1)
        mov ecx, r8d                     // n < W <= 64
        mov r9, -1
        shl r9, cl
        not r9                          // (1 << n) - 1: positions inside the input
        test rdx, r9
        jnz not_equal
        jmp equal
    bytewise:                           // rax = i
        movzx ecx, byte ptr [rdi + rax]
        lea r10d, [rcx - 0x41]
        cmp r10d, 25
        ja a_folded
        or ecx, 0x20
    a_folded:
        movzx r11d, byte ptr [rsi + rax]
        lea r10d, [r11 - 0x41]
        cmp r10d, 25
        ja b_folded
        or r11d, 0x20
    b_folded:
        cmp ecx, r11d
        jne not_equal
        inc rax
        cmp rax, n
        jb bytewise
    equal:
        mov eax, 1
        ret
    not_equal:
        xor eax, eax
        ret
    }

    /// Leading decimal digits: returns the end of the run and stores its
    /// value through `out`, or returns usize::MAX if the value exceeds
    /// u64::MAX. The run's end comes from the class scanner; the value from
    /// at most 20 significant digits (leading zeros skipped), where a 20-digit
    /// value is in range iff it starts with 1 and did not wrap below 10^19.
    pub fn parse_decimal(ptr: *const u8, len: usize, out: *mut u64) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let out_ptr = r9;
        let end = r10;
        let digits = r11;
        let value = r8;
        mov out_ptr, rdx
        scan_class!(DEC_LO, DEC_HI, jmp run_found)
    run_found:                          // rax = end of the digit run
        mov end, rax
        xor ecx, ecx
    skip_zeros:
        cmp rcx, end
        jae zeros_skipped
        cmp byte ptr [rdi + rcx], 0x30
        jne zeros_skipped
        inc rcx
        jmp skip_zeros
    zeros_skipped:
        mov digits, end
        sub digits, rcx
        cmp digits, 20
        ja overflow
        xor r8d, r8d                    // value = 0
    digit_loop:                         // value = value * 10 + digit
        cmp rcx, end
        jae digits_done
        movzx edx, byte ptr [rdi + rcx]
        sub edx, 0x30
        lea value, [value + value * 4]
        lea value, [rdx + value * 2]
        inc rcx
        jmp digit_loop
    digits_done:
        cmp digits, 20
        jne store
        lea rcx, [end - 20]
        cmp byte ptr [rdi + rcx], 0x31
        jne overflow
        mov rdx, 0x8ac7230489e80000     // 10^19
        cmp value, rdx
        jb overflow
    store:
        mov qword ptr [out_ptr], value
        mov rax, end
        ret
    overflow:
        mov rax, -1
        ret
    }

    /// Leading hex digits: as parse_decimal; more than 16 significant digits
    /// overflow.
    pub fn parse_hex(ptr: *const u8, len: usize, out: *mut u64) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let out_ptr = r9;
        let end = r10;
        let value = r8;
        mov out_ptr, rdx
        scan_class!(HEX_LO, HEX_HI, jmp run_found)
    run_found:
        mov end, rax
        xor ecx, ecx
    skip_zeros:
        cmp rcx, end
        jae zeros_skipped
        cmp byte ptr [rdi + rcx], 0x30
        jne zeros_skipped
        inc rcx
        jmp skip_zeros
    zeros_skipped:
        mov rdx, end
        sub rdx, rcx
        cmp rdx, 16
        ja overflow
        xor r8d, r8d                    // value = 0
    digit_loop:                         // value = value << 4 | nibble
        cmp rcx, end
        jae store
        movzx edx, byte ptr [rdi + rcx]
        cmp edx, 0x39
        ja letter
        sub edx, 0x30
        jmp add_digit
    letter:
        or edx, 0x20
        sub edx, 87                     // 'a' - 10
    add_digit:
        shl value, 4
        or value, rdx
        inc rcx
        jmp digit_loop
    store:
        mov qword ptr [out_ptr], value
        mov rax, end
        ret
    overflow:
        mov rax, -1
        ret
    }

    // One 64-byte chunk at `src` -> three masks (bit j <-> byte j):
    // r8 = special (not a field-value byte: CR, LF, other CTLs, DEL),
    // r10 = ':', r11 = not a tchar. Constants: v8/v9 field-value nibble
    // tables, v10/v11 tchar nibble tables, v12 0x0f bytes, v13 ':' bytes,
    // v14 zero. The nibbles are split once and feed both look-ups.
    macro chunk_masks(src) {
        if W == 64 {
            vmovdqu8 v0, [src]
            vpcmpeqb k3, v0, v13                // ':'
            vpsrlw v1, v0, 4
            vpandq v1, v1, v12                  // high nibbles
            vpandq v0, v0, v12                  // low nibbles
            vpshufb v2, v8, v0
            vpshufb v3, v9, v1
            vptestnmb k1, v2, v3                // not a field-value byte
            vpshufb v2, v10, v0
            vpshufb v3, v11, v1
            vptestnmb k2, v2, v3                // not a tchar
            kmovq r8, k1
            kmovq r10, k3
            kmovq r11, k2
        } else {
            for u in 0..64 / W {
                chunk_part!([src + u * W], u)
            }
        }
    }

    // Masks of the W bytes at `src` (W < 64), merged into r8/r10/r11 at bit
    // offset u*W (u = 0 starts a new chunk).
    macro chunk_part(src, u) {
        if W == 16 {
            movdqu v0, src
            movdqa v4, v0
            pcmpeqb v4, v13
            pmovmskb edx, v4                    // ':'
            movdqa v1, v0
            psrlw v1, 4
            pand v1, v12                        // high nibbles
            pand v0, v12                        // low nibbles
            movdqa v2, v8
            pshufb v2, v0
            movdqa v3, v9
            pshufb v3, v1
            pand v2, v3
            pcmpeqb v2, v14
            pmovmskb ecx, v2                    // not a field-value byte
            movdqa v2, v10
            pshufb v2, v0
            movdqa v3, v11
            pshufb v3, v1
            pand v2, v3
            pcmpeqb v2, v14
            pmovmskb eax, v2                    // not a tchar
        } else {
            vmovdqu v0, src
            vpcmpeqb v4, v0, v13
            vpmovmskb edx, v4
            vpsrlw v1, v0, 4
            vpand v1, v1, v12
            vpand v0, v0, v12
            vpshufb v2, v8, v0
            vpshufb v3, v9, v1
            vpand v2, v2, v3
            vpcmpeqb v2, v2, v14
            vpmovmskb ecx, v2
            vpshufb v2, v10, v0
            vpshufb v3, v11, v1
            vpand v2, v2, v3
            vpcmpeqb v2, v2, v14
            vpmovmskb eax, v2
        }
        if u == 0 {
            mov r10, rdx
            mov r8, rcx
            mov r11, rax
        } else {
            shl rdx, u * W
            or r10, rdx
            shl rcx, u * W
            or r8, rcx
            shl rax, u * W
            or r11, rax
        }
    }

    /// Structural classification of a header block, simdjson-style: for
    /// every 64-byte chunk c of the `len` bytes at `ptr`, writes three masks
    /// to `out[3c..3c + 3]` (bit j <-> byte 64c + j): bytes that are not
    /// field-value bytes (CR, LF, other CTLs, DEL), `:` bytes, and bytes
    /// that are not tchars. Bits at positions >= len are zero. Returns the
    /// number of chunks, ceil(len / 64). A parser then walks lines with bit
    /// operations instead of one kernel call per name and per value.
    pub fn classify_head(ptr: *const u8, len: usize, out: *mut u64) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let out_ptr = r9;
        let i = rbx;                            // callee-saved: the prologue saves it
        vload!(v8, [FIELD_LO])
        vload!(v9, [FIELD_HI])
        vload!(v10, [TCHAR_LO])
        vload!(v11, [TCHAR_HI])
        vload!(v12, [NIBBLE_MASK])
        mov ecx, 0x3a
        vbroadcast_byte!(v13, ecx, v0)
        if W == 16 { pxor v14, v14 } else if W == 32 { vpxor v14, v14, v14 }
        mov out_ptr, rdx
        xor ebx, ebx
    chunk_loop:                                 // while i + 64 <= len
        lea rcx, [i + 64]
        cmp rcx, rsi
        ja tail
        chunk_masks!(rdi + i)
        mov qword ptr [out_ptr], r8
        mov qword ptr [out_ptr + 8], r10
        mov qword ptr [out_ptr + 16], r11
        add out_ptr, 24
        add i, 64
        jmp chunk_loop
    tail:                                       // 0 <= r = len - i < 64
        cmp i, rsi
        je done
        cmp rsi, 64
        jb short_input
    backward:                                   // the chunk ending at len
        chunk_masks!(rdi + rsi - 64)
        mov ecx, 64
        sub rcx, rsi
        add rcx, i                              // 64 - r stale positions
        shr r8, cl
        shr r10, cl
        shr r11, cl
        jmp store_last
    short_input:                                // len < 64, i = 0
        mov ecx, edi
        and ecx, 4095
        cmp ecx, 4096 - 64
        ja backward                             // a forward chunk would leave the page
        chunk_masks!(rdi)
        mov ecx, esi
        mov rax, -1
        shl rax, cl
        not rax                                 // (1 << len) - 1
        and r8, rax
        and r10, rax
        and r11, rax
    store_last:
        mov qword ptr [out_ptr], r8
        mov qword ptr [out_ptr + 8], r10
        mov qword ptr [out_ptr + 16], r11
    done:
        lea rax, [rsi + 63]
        shr rax, 6                              // ceil(len / 64) chunks
        ret
    }
}
