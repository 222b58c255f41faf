//! The ChaCha20 and Poly1305 kernels in `marg_asm!`.
//!
//! | kernel | computes | variants |
//! |---|---|---|
//! | [`CHACHA20_XOR`] | `out = in ^ ChaCha20(state, counter..)` over whole 64-byte blocks | `baseline` (SSSE3, xmm), `avx2` (ymm), `avx512` (zmm) |
//! | [`CHACHA20_POLY1305_XOR`] | `CHACHA20_XOR` of whole iterations fused with Poly1305 of a same-length stream | `baseline`, `avx2`, `avx512` |
//! | [`CHACHA20_POLY1305_KS`] | the same in place (keystream into a zeroed buffer) with up to as many Poly1305 blocks as asked | `baseline`, `avx2`, `avx512` |
//! | [`POLY1305_BLOCKS`] | the Poly1305 accumulator over whole 16-byte blocks | `baseline` (scalar `mul`) |
//!
//! ## ChaCha20: horizontal (baseline, avx512) and vertical (avx2)
//!
//! **Horizontal** (W = 16 and 64): each block is kept as its four rows
//! `a, b, c, d` (4 words each) in four registers, one block per 16-byte
//! lane, so a register holds `L = W/16` blocks. The quarter rounds of the
//! four columns run in parallel across the words of a lane; the diagonal
//! rounds rotate rows `b, c, d` by 1, 2, 3 words (`pshufd`) first and back
//! afterwards. `K` such register quads are interleaved for instruction-level
//! parallelism (3 at W=16 — 12 state registers plus rotation scratch fill
//! the 16 of SSE — and 4 at W=64), so one iteration makes `K·L` blocks: 3
//! and 16.
//!
//! **Vertical** (W = 32, the main loops of the avx2 variants): ymm register
//! `i` holds word `i` of 8 blocks (lane `k` = block `k`), so a quarter round
//! is a column of registers and the diagonal round only renames them: no
//! `pshufd`, about 16 % fewer vector uops per block than the horizontal
//! 6-block form this replaced. The 16 words and two rotation scratch
//! registers exceed the 16 ymm registers, so the row-c words take turns in
//! two registers (the others in frame slots, swapped twice per double
//! round), and the quarter rounds run two at a time. The state is
//! transposed at the store: an 8×8 dword transpose of words 0-7 and then
//! of words 8-15 (`vpunpck{l,h}dq`, `vpunpck{l,h}qdq`, `vperm2i128`).
//! Leftovers of 3-7 blocks take one more vertical iteration into a frame
//! keystream buffer; 1-2 blocks the horizontal quad path (W = 32, `L` = 2).
//!
//! Rotations: by 16 and 8 with `pshufb` (`ROT16`, `ROT8`), by 12 and 7
//! with two shifts and an OR; AVX-512 has `vprold` for all four.
//!
//! Storing (horizontal): at W=16 each quad is one block, rows in order. At
//! W=32 (the leftover quads) lane `j` of every row is block `2q + j`:
//! `vperm2i128` pairs rows (a,b) and (c,d) of one lane. At W=64 the four
//! rows × four lanes are a 4×4 transpose of 16-byte lanes: two rounds of
//! `vshufi32x4`.
//!
//! Leftover blocks (fewer than `K·L`) go `L` at a time through quad 0, and
//! the last `< L` one at a time (only lane 0 is used).
//!
//! The initial state (16 words, counter in word 12) is broadcast into a
//! 64-byte-aligned stack frame, rows at `frame + r·W` (and at W = 32 each
//! word to 8 lanes at `frame + VST + 32·i`, the counter word plus the lane
//! index); the counters are advanced there per iteration (32-bit wrap, as
//! RFC 8439).
//!
//! | role | baseline | avx2 (vertical) | avx512 |
//! |---|---|---|---|
//! | state | quad q rows a, b, c, d: v{4q}..v{4q+3}, q < 3 | words 0-7 (a, b): ymm0-7; words 12-15 (d): ymm8-11; two of words 8-11 (c): ymm12-13, two in frame slots | quad q rows: zmm{4q}.., q < 4 |
//! | rotation scratch | v12-v14 | ymm14, ymm15 | — (`vprold`) |
//! | store scratch | v12-v15 | ymm8-15 (transpose; words 8-15 parked in the frame) | zmm16-21 |
//! | double-round counter | r8d | r8d (r15d fused) | r8d (r15d fused) |
//!
//! ## Poly1305
//!
//! Radix 2^64: `h = h0 + h1·2^64 + h2·2^128` (h2 a few bits), `r = r0 +
//! r1·2^64` clamped so that `4 | r1`. Since `2^130 = 5 (mod p)`,
//! `r1·2^128 = (5·r1/4) = s1 (mod p)` exactly, with `s1 = r1 + r1/4`:
//!
//! ```text
//! h·r mod p = (h0·r0 + h1·s1) + (h0·r1 + h1·r0 + h2·s1)·2^64 + (h2·r0)·2^128
//! ```
//!
//! then the bits from 2^130 up are folded back times 5 (partial reduction:
//! the result stays below 2^131). Final reduction and `+ s` are done by the
//! caller in constant-time Rust. Vectorised Poly1305 (AVX2 radix 2^26, or
//! AVX-512 IFMA) is future work; see the book chapter.
//!
//! Constant time: every branch tests a length; no address depends on data.

use marg_macros::marg_asm;

/// `(state, in, out, blocks)`: ChaCha20 of whole blocks from the 16-word
/// state (64-byte aligned; the counter in word 12).
pub type ChaChaFn = unsafe extern "sysv64" fn(*const u32, *const u8, *mut u8, usize);
/// `(state, in, out, iters, pst, hp)`: ChaCha20 of `iters` chunks fused
/// with Poly1305 of as many chunks at `hp`.
pub type FusedFn =
    unsafe extern "sysv64" fn(*const u32, *const u8, *mut u8, usize, *mut u64, *const u8);
/// `(state, data, iters, pst, hp, nhash)`: ChaCha20 of `iters` chunks in
/// place at `data`, fused with Poly1305 of up to `nhash` blocks at `hp`.
pub type FusedKsFn =
    unsafe extern "sysv64" fn(*const u32, *mut u8, usize, *mut u64, *const u8, usize);
/// `(st, data, blocks, padbit)`: Poly1305 over whole blocks; `st` is
/// `[h0, h1, h2, r0, r1]`.
pub type PolyFn = unsafe extern "sysv64" fn(*mut u64, *const u8, usize, u64);

marg_asm! {
    // pshufb masks rotating each dword left by 16 / 8 bits.
    data ROT16: [u8; 64] align 64 = [
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
    ];
    data ROT8: [u8; 64] align 64 = [
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
    ];
    // Vertical AVX2 counter word: lane k = k (blocks 0..7), then the step 8.
    data VCTR: [u32; 16] align 32 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8];
    // Lane k = the value k in its low dword (the block-counter word).
    data BLOCK_INC: [u32; 80] align 64 = [
        0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
        4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0,
        8, 0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0,
        12, 0, 0, 0, 13, 0, 0, 0, 14, 0, 0, 0, 15, 0, 0, 0,
        16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    // Blocks per register, quads in flight, blocks per iteration (the
    // vertical AVX2 path: 8).
    const L = W / 16;
    const K = 3 + W / 64;
    const PB = K * L + 2 * (W == 32);
    // Poly1305 blocks per double round when fused, and the remainder.
    const PPR = 4 * PB / 10;
    const PREM = 4 * PB - 10 * PPR;
    // Frame layout (bytes from `frame`). Rows of the horizontal state at
    // r·W (up to 256); for the vertical AVX2 path (W = 32) also: the 16
    // state words each broadcast to 8 lanes (VST, word 12 = counter + lane),
    // spill slots of the row-c words (CSP), the finished words 8-15 while
    // words 0-7 are transposed (HSP), and a keystream buffer for the tail
    // (KSB). Then the fused kernel's Poly1305 key.
    const VST = 128;
    const CSP = 640;
    const HSP = 768;
    const KSB = 1024;
    const POLY_R0 = 1536;
    const POLY_R1 = 1544;
    const POLY_S1 = 1552;

    macro vload(d, m) {
        if W == 16 { movdqu d, m } else if W == 32 { vmovdqu d, m } else { vmovdqu8 d, m }
    }
    macro vstore(m, s) {
        if W == 16 { movdqu m, s } else if W == 32 { vmovdqu m, s } else { vmovdqu8 m, s }
    }
    macro vxor(d, s) {
        if W == 16 { pxor d, s } else if W == 32 { vpxor d, d, s } else { vpxord d, d, s }
    }
    macro vadd32(d, s) {
        if W == 16 { paddd d, s } else { vpaddd d, d, s }
    }
    macro vbroadcast16(d, m) {
        if W == 16 { movdqu d, m } else if W == 32 { vbroadcasti128 d, m } else { vbroadcasti32x4 d, m }
    }
    macro vshufd(d, imm) {
        if W == 16 { pshufd d, d, imm } else { vpshufd d, d, imm }
    }
    // d = d rotated left by 16 / 8 (per dword)
    macro rotl16(d) {
        if W == 16 { pshufb d, [ROT16] } else if W == 32 { vpshufb d, d, [ROT16] } else { vprold d, d, 16 }
    }
    macro rotl8(d) {
        if W == 16 { pshufb d, [ROT8] } else if W == 32 { vpshufb d, d, [ROT8] } else { vprold d, d, 8 }
    }
    // d = d rotated left by n (per dword); t scratch
    macro rotl(d, n, t) {
        if W == 16 {
            movdqa t, d
            pslld d, n
            psrld t, 32 - n
            por d, t
        } else if W == 32 {
            vpsrld t, d, 32 - n
            vpslld d, d, n
            vpor d, d, t
        } else {
            vprold d, d, n
        }
    }

    // The four quarter-round steps on rows (a, b, c, d) of quads 0..nq.
    macro half_round(nq) {
        for q in 0..nq { vadd32!(v{4 * q}, v{4 * q + 1}) }          // a += b
        for q in 0..nq { vxor!(v{4 * q + 3}, v{4 * q}) }            // d ^= a
        for q in 0..nq { rotl16!(v{4 * q + 3}) }                    // d <<<= 16
        for q in 0..nq { vadd32!(v{4 * q + 2}, v{4 * q + 3}) }      // c += d
        for q in 0..nq { vxor!(v{4 * q + 1}, v{4 * q + 2}) }        // b ^= c
        for q in 0..nq { rotl!(v{4 * q + 1}, 12, v{12 + q}) }       // b <<<= 12
        for q in 0..nq { vadd32!(v{4 * q}, v{4 * q + 1}) }          // a += b
        for q in 0..nq { vxor!(v{4 * q + 3}, v{4 * q}) }            // d ^= a
        for q in 0..nq { rotl8!(v{4 * q + 3}) }                     // d <<<= 8
        for q in 0..nq { vadd32!(v{4 * q + 2}, v{4 * q + 3}) }      // c += d
        for q in 0..nq { vxor!(v{4 * q + 1}, v{4 * q + 2}) }        // b ^= c
        for q in 0..nq { rotl!(v{4 * q + 1}, 7, v{12 + q}) }        // b <<<= 7
    }

    // Rows b, c, d rotated by 1, 2, 3 words: the diagonals become columns.
    macro diagonalize(nq) {
        for q in 0..nq {
            vshufd!(v{4 * q + 1}, 0x39)     // b = b1 b2 b3 b0
            vshufd!(v{4 * q + 2}, 0x4e)     // c = c2 c3 c0 c1
            vshufd!(v{4 * q + 3}, 0x93)     // d = d3 d0 d1 d2
        }
    }
    macro undiagonalize(nq) {
        for q in 0..nq {
            vshufd!(v{4 * q + 1}, 0x93)
            vshufd!(v{4 * q + 2}, 0x4e)
            vshufd!(v{4 * q + 3}, 0x39)
        }
    }

    // One double round (columns, then diagonals) of quads 0..nq.
    macro double_round(nq) {
        half_round!(nq)
        diagonalize!(nq)
        half_round!(nq)
        undiagonalize!(nq)
    }

    // h = (h + m + pad·2^128)·r mod 2^130 - 5 (partially reduced) for the
    // block m at [src]; r0, r1 and s1 = r1 + r1/4 are registers or memory
    // operands. Uses h0-h2, d1-d3, rax, rdx. (A BMI2 `mulx` form, 33 uops
    // against 45, measured no faster on Sapphire Rapids: `mul` and `mulx`
    // are both two uops on ports 1 and 5, the saved ones are moves, and
    // `mulx` has a cycle more latency, which cost the avx512 fused kernel,
    // bound by this h -> h chain, 3% at 16 KiB.)
    macro poly_step(src, pad, r0, r1, s1) {
        add h0, [src]                       // h += m + pad·2^128
        adc h1, [src + 8]
        adc h2, pad
        mov rax, r1
        mul h0                              // h0·r1
        mov d2, rax
        mov rax, r0
        mov d3, rdx
        mul h0                              // h0·r0
        mov h0, rax
        mov rax, r0
        mov d1, rdx
        mul h1                              // h1·r0
        add d2, rax
        mov rax, s1
        adc d3, rdx
        mul h1                              // h1·s1 (= h1·r1·2^128 mod p)
        mov h1, h2
        add h0, rax
        adc d1, rdx
        imul h1, s1                         // h2·s1 (h2 is a few bits)
        add d2, h1
        mov h1, d1
        adc d3, 0
        imul h2, r0                         // h2·r0
        add h1, d2
        mov rax, -4
        adc d3, h2
        and rax, d3                         // fold bits >= 2^130 back, times 5
        mov h2, d3
        shr d3, 2
        and h2, 3
        add rax, d3
        add h0, rax
        adc h1, 0
        adc h2, 0
    }
    // The fused kernels' Poly1305 state: h0-h2 from `pst` = [h0, h1, h2,
    // r0, r1], and r0, r1 and s1 = r1 + r1/4 into the frame (uses rax, d1).
    macro poly_state_in() {
        mov h0, [pst]
        mov h1, [pst + 8]
        mov h2, [pst + 16]
        mov rax, [pst + 24]
        mov [frame + POLY_R0], rax
        mov rax, [pst + 32]
        mov [frame + POLY_R1], rax
        mov d1, rax
        shr d1, 2
        add rax, d1
        mov [frame + POLY_S1], rax          // s1 = r1 + r1/4
    }
    // h0-h2 back to `pst`.
    macro poly_state_out() {
        mov [pst], h0
        mov [pst + 8], h1
        mov [pst + 16], h2
    }

    // poly_step on [hp] with the key in the fused kernel's frame; hp += 16.
    macro poly_block() {
        poly_step!(hp, 1, qword ptr [frame + POLY_R0], qword ptr [frame + POLY_R1], qword ptr [frame + POLY_S1])
        add hp, 16
    }

    // poly_block while `pn` (public: a count of blocks) is not zero.
    macro poly_block_n() {
        test pn, pn
        jz no_block
        poly_block!()
        dec pn
    no_block:
    }
    // A Poly1305 block in a ChaCha iteration: `hash` = 1 always (fused),
    // 2 while `pn` lasts (chacha20_poly1305_ks).
    macro poly_any(hash) {
        if (hash) == 1 { poly_block!() } else { poly_block_n!() }
    }

    // The four state rows, each broadcast to every lane, into the frame; at
    // W = 32 with `vert` = 1 also the 16 words, each broadcast to 8 lanes
    // (VST), the counter word plus the lane index.
    macro state_to_frame(vert) {
        for r in 0..4 {
            vbroadcast16!(v{r}, [state + 16 * r])
            vstore!([frame + r * W], v{r})
        }
        if W == 32 && (vert) == 1 {
            for i in 0..16 {
                vpbroadcastd v{i}, dword ptr [state + 4 * i]
            }
            vpaddd v12, v12, [VCTR]         // word 12 of block k: counter + k
            for i in 0..16 {
                vmovdqu [frame + VST + 32 * i], v{i}
            }
        }
    }

    // One iteration over nq quads (nq·L blocks; nq = K in the main loops):
    // keystream from the frame state xored from inp into out, counter row
    // advanced; with `hash` = 1 (only with nq = K), also 4·PB Poly1305
    // blocks at hp (all loaded before any store to out); `hash` = 2: as
    // many of them as `pn` allows.
    macro chacha_iter(hash, nq) {
        for q in 0..(nq) {
            for r in 0..4 {
                vload!(v{4 * q + r}, [frame + r * W])
            }
            vadd32!(v{4 * q + 3}, [BLOCK_INC + q * W])   // lane j: counter + qL + j
        }
        mov gpr32(dround), 10
    rounds:
        if (hash) >= 1 {
            half_round!((nq))
            for i in 0..(PPR / 2) { poly_any!((hash)) }
            diagonalize!((nq))
            half_round!((nq))
            for i in 0..(PPR - PPR / 2) { poly_any!((hash)) }
            undiagonalize!((nq))
        } else {
            double_round!((nq))
        }
        dec gpr32(dround)
        jnz rounds
        if (hash) >= 1 {
            for i in 0..PREM { poly_any!((hash)) }
        }
        // Add the input state, xor with the input, store.
        for q in 0..(nq) {
            for r in 0..4 {
                vadd32!(v{4 * q + r}, [frame + r * W])
            }
            vadd32!(v{4 * q + 3}, [BLOCK_INC + q * W])
        }
        if W == 16 {
            for q in 0..(nq) {
                for r in 0..4 {
                    movdqu xmm12, [inp + 64 * q + 16 * r]
                    pxor v{4 * q + r}, xmm12
                    movdqu [out + 64 * q + 16 * r], v{4 * q + r}
                }
            }
        } else if W == 32 {
            for q in 0..(nq) {
                vperm2i128 v12, v{4 * q}, v{4 * q + 1}, 0x20       // block 2q: rows a, b
                vperm2i128 v13, v{4 * q + 2}, v{4 * q + 3}, 0x20   // block 2q: rows c, d
                vperm2i128 v14, v{4 * q}, v{4 * q + 1}, 0x31       // block 2q+1: rows a, b
                vperm2i128 v15, v{4 * q + 2}, v{4 * q + 3}, 0x31   // block 2q+1: rows c, d
                vpxor v12, v12, [inp + 128 * q]
                vpxor v13, v13, [inp + 128 * q + 32]
                vpxor v14, v14, [inp + 128 * q + 64]
                vpxor v15, v15, [inp + 128 * q + 96]
                vmovdqu [out + 128 * q], v12
                vmovdqu [out + 128 * q + 32], v13
                vmovdqu [out + 128 * q + 64], v14
                vmovdqu [out + 128 * q + 96], v15
            }
        } else {
            for q in 0..(nq) {
                vshufi32x4 zmm16, v{4 * q}, v{4 * q + 1}, 0x44      // a0 a1 b0 b1
                vshufi32x4 zmm17, v{4 * q + 2}, v{4 * q + 3}, 0x44  // c0 c1 d0 d1
                vshufi32x4 zmm18, v{4 * q}, v{4 * q + 1}, 0xee      // a2 a3 b2 b3
                vshufi32x4 zmm19, v{4 * q + 2}, v{4 * q + 3}, 0xee  // c2 c3 d2 d3
                vshufi32x4 zmm20, zmm16, zmm17, 0x88                // block 4q:   a0 b0 c0 d0
                vshufi32x4 zmm21, zmm16, zmm17, 0xdd                // block 4q+1: a1 b1 c1 d1
                vpxord zmm20, zmm20, [inp + 256 * q]
                vpxord zmm21, zmm21, [inp + 256 * q + 64]
                vmovdqu8 [out + 256 * q], zmm20
                vmovdqu8 [out + 256 * q + 64], zmm21
                vshufi32x4 zmm20, zmm18, zmm19, 0x88                // block 4q+2
                vshufi32x4 zmm21, zmm18, zmm19, 0xdd                // block 4q+3
                vpxord zmm20, zmm20, [inp + 256 * q + 128]
                vpxord zmm21, zmm21, [inp + 256 * q + 192]
                vmovdqu8 [out + 256 * q + 128], zmm20
                vmovdqu8 [out + 256 * q + 192], zmm21
            }
        }
        // counter row += nq·L in every lane
        vbroadcast16!(v12, [BLOCK_INC + 16 * (nq) * L])
        vload!(v13, [frame + 3 * W])
        vadd32!(v13, v12)
        vstore!([frame + 3 * W], v13)
    }

    // While at least L blocks are left: one quad (L blocks) per iteration.
    macro quad_tail() {
    quad_loop:
        cmp blocks, L
        jb quad_done
        chacha_iter!(0, 1)
        add inp, 64 * L
        add out, 64 * L
        sub blocks, L
        jmp quad_loop
    quad_done:
    }

    // ---- Vertical AVX2 ChaCha20: 8 blocks, one state word per register ----
    //
    // ymm register i (lane k = block k) holds word i of 8 blocks, so every
    // quarter round is a plain column of registers and the diagonal round
    // only renames them: no `pshufd`. 16 words + rotation scratch do not fit
    // the 16 ymm registers, so the row-c words (8-11) take turns in two
    // registers, the other two in frame slots (CSP):
    //
    //   words 0-3 (a)   ymm0-3        words 4-7 (b)   ymm4-7
    //   words 12-15 (d) ymm8-11       two c words     ymm12, ymm13
    //   rotation scratch ymm14, ymm15
    //
    // The quarter rounds run two at a time (one scratch each):
    //   column QR0, QR1 (c0, c1 in ymm12/13) | swap | column QR2, QR3 (c2, c3)
    //   diagonal QR0 (a0 b1 c2 d3), QR1 (a1 b2 c3 d0) (still c2, c3) | swap |
    //   diagonal QR2 (a2 b3 c0 d1), QR3 (a3 b0 c1 d2) (c0, c1)
    // so a double round starts and ends with c0, c1 in registers and costs
    // two swaps (4 stores, 4 loads).

    // Two quarter rounds on (a, b, c, d) and (e, f, g, h).
    macro vqr2(a, b, c, d, e, f, g, h) {
        vpaddd a, a, b                      // a += b
        vpaddd e, e, f
        vpxor d, d, a                       // d ^= a
        vpxor h, h, e
        vpshufb d, d, [ROT16]               // d <<<= 16
        vpshufb h, h, [ROT16]
        vpaddd c, c, d                      // c += d
        vpaddd g, g, h
        vpxor b, b, c                       // b ^= c
        vpxor f, f, g
        vpsrld ymm14, b, 20                 // b <<<= 12
        vpsrld ymm15, f, 20
        vpslld b, b, 12
        vpslld f, f, 12
        vpor b, b, ymm14
        vpor f, f, ymm15
        vpaddd a, a, b                      // a += b
        vpaddd e, e, f
        vpxor d, d, a                       // d ^= a
        vpxor h, h, e
        vpshufb d, d, [ROT8]                // d <<<= 8
        vpshufb h, h, [ROT8]
        vpaddd c, c, d                      // c += d
        vpaddd g, g, h
        vpxor b, b, c                       // b ^= c
        vpxor f, f, g
        vpsrld ymm14, b, 25                 // b <<<= 7
        vpsrld ymm15, f, 25
        vpslld b, b, 7
        vpslld f, f, 7
        vpor b, b, ymm14
        vpor f, f, ymm15
    }

    // Row-c words in ymm12/13: store the pair at slots `out`, load `in`.
    macro vswap_c(outw, inw) {
        vmovdqu [frame + CSP + 32 * (outw)], ymm12
        vmovdqu [frame + CSP + 32 * (outw) + 32], ymm13
        vmovdqu ymm12, [frame + CSP + 32 * (inw)]
        vmovdqu ymm13, [frame + CSP + 32 * (inw) + 32]
    }

    // One double round of 8 blocks; with `hash` >= 1 also 3 Poly1305 blocks
    // (one after each of the first three quarter-round pairs).
    macro vdouble_round(hash) {
        vqr2!(ymm0, ymm4, ymm12, ymm8, ymm1, ymm5, ymm13, ymm9)      // columns 0, 1
        if (hash) >= 1 { poly_any!((hash)) }
        vswap_c!(0, 2)
        vqr2!(ymm2, ymm6, ymm12, ymm10, ymm3, ymm7, ymm13, ymm11)    // columns 2, 3
        if (hash) >= 1 { poly_any!((hash)) }
        vqr2!(ymm0, ymm5, ymm12, ymm11, ymm1, ymm6, ymm13, ymm8)     // diagonals 0, 1
        if (hash) >= 1 { poly_any!((hash)) }
        vswap_c!(2, 0)
        vqr2!(ymm2, ymm7, ymm12, ymm9, ymm3, ymm4, ymm13, ymm10)     // diagonals 2, 3
    }

    // 8x8 transpose of the dwords in ymm0-7 (register i = word w0 + i of
    // blocks 0..7) into 32-byte rows (block j, words w0..w0+7), xored with
    // the input at `inp + 64·j + off` and stored at `out + 64·j + off`; with
    // `ks` = 1 stored raw into the frame's keystream buffer instead.
    // Clobbers ymm0-15.
    macro vtranspose_store(off, ks) {
        for i in 0..4 {
            vpunpckldq v{8 + 2 * i}, v{2 * i}, v{2 * i + 1}     // words 2i, 2i+1 of blocks 0,1 | 4,5
            vpunpckhdq v{9 + 2 * i}, v{2 * i}, v{2 * i + 1}     //                 of blocks 2,3 | 6,7
        }
        for i in 0..2 {
            vpunpcklqdq v{4 * i}, v{8 + 4 * i}, v{10 + 4 * i}     // words 4i..4i+3, blocks 0 | 4
            vpunpckhqdq v{4 * i + 1}, v{8 + 4 * i}, v{10 + 4 * i} //                 blocks 1 | 5
            vpunpcklqdq v{4 * i + 2}, v{9 + 4 * i}, v{11 + 4 * i} //                 blocks 2 | 6
            vpunpckhqdq v{4 * i + 3}, v{9 + 4 * i}, v{11 + 4 * i} //                 blocks 3 | 7
        }
        for j in 0..4 {
            vperm2i128 v{8 + 2 * j}, v{j}, v{j + 4}, 0x20         // block j
            vperm2i128 v{9 + 2 * j}, v{j}, v{j + 4}, 0x31         // block j + 4
        }
        for j in 0..4 {
            if (ks) == 1 {
                vmovdqu [frame + KSB + 64 * j + (off)], v{8 + 2 * j}
                vmovdqu [frame + KSB + 64 * (j + 4) + (off)], v{9 + 2 * j}
            } else {
                vpxor v{8 + 2 * j}, v{8 + 2 * j}, [inp + 64 * j + (off)]
                vpxor v{9 + 2 * j}, v{9 + 2 * j}, [inp + 64 * (j + 4) + (off)]
                vmovdqu [out + 64 * j + (off)], v{8 + 2 * j}
                vmovdqu [out + 64 * (j + 4) + (off)], v{9 + 2 * j}
            }
        }
    }

    // One vertical iteration: 8 blocks from the VST state xored from inp
    // into out (`ks` = 1: keystream into the frame's KSB), the counter
    // advanced by 8 (in VST and in the horizontal row 3 used by the tail);
    // with `hash` = 1, 32 Poly1305 blocks at hp, all loaded before any store
    // (`hash` = 2: at most 32, as `pn` allows).
    macro vchacha_iter(hash, ks) {
        for i in 0..8 {
            vmovdqu v{i}, [frame + VST + 32 * i]              // a, b: words 0-7
        }
        for i in 0..4 {
            vmovdqu v{8 + i}, [frame + VST + 32 * (12 + i)]   // d: words 12-15
        }
        vmovdqu ymm12, [frame + VST + 32 * 10]               // c2, c3 to their slots
        vmovdqu ymm13, [frame + VST + 32 * 11]
        vmovdqu [frame + CSP + 64], ymm12
        vmovdqu [frame + CSP + 96], ymm13
        vmovdqu ymm12, [frame + VST + 32 * 8]                // c0, c1
        vmovdqu ymm13, [frame + VST + 32 * 9]
        mov gpr32(dround), 10
    vrounds:
        vdouble_round!((hash))
        dec gpr32(dround)
        jnz vrounds
        if (hash) >= 1 {
            for i in 0..PREM { poly_any!((hash)) }
        }
        // Add the input state; words 8-15 to HSP while 0-7 are transposed.
        for i in 0..8 {
            vpaddd v{i}, v{i}, [frame + VST + 32 * i]
        }
        for i in 0..4 {
            vpaddd v{8 + i}, v{8 + i}, [frame + VST + 32 * (12 + i)]
            vmovdqu [frame + HSP + 32 * (4 + i)], v{8 + i}
        }
        vpaddd ymm12, ymm12, [frame + VST + 32 * 8]
        vpaddd ymm13, ymm13, [frame + VST + 32 * 9]
        vmovdqu ymm14, [frame + CSP + 64]
        vmovdqu ymm15, [frame + CSP + 96]
        vpaddd ymm14, ymm14, [frame + VST + 32 * 10]
        vpaddd ymm15, ymm15, [frame + VST + 32 * 11]
        vmovdqu [frame + HSP], ymm12
        vmovdqu [frame + HSP + 32], ymm13
        vmovdqu [frame + HSP + 64], ymm14
        vmovdqu [frame + HSP + 96], ymm15
        vtranspose_store!(0, (ks))                            // words 0-7
        for i in 0..8 {
            vmovdqu v{i}, [frame + HSP + 32 * i]
        }
        vtranspose_store!(32, (ks))                           // words 8-15
        vmovdqu ymm0, [frame + VST + 32 * 12]                 // counter += 8
        vpaddd ymm0, ymm0, [VCTR + 32]
        vmovdqu [frame + VST + 32 * 12], ymm0
        vbroadcasti128 ymm1, [BLOCK_INC + 128]                // (row 3 lane word 0: + 8)
        vpaddd ymm1, ymm1, [frame + 3 * W]
        vmovdqu [frame + 3 * W], ymm1
    }

    /// `out = in ^ ChaCha20 keystream` for `blocks` whole 64-byte blocks,
    /// block counter starting at `state[12]` (RFC 8439; 32-bit wrap).
    /// `out` may equal `inp`.
    #[secret]
    #[stack = 1536]
    pub fn chacha20_xor(state: *const u32, inp: *const u8, out: *mut u8, blocks: usize) {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let dround = r8
        // Broadcast the four state rows into the frame; at W = 32 also the
        // 16 words, unless 1-2 blocks (the horizontal quad path) are all.
        if W == 32 {
            cmp blocks, 2
            ja vertical
            state_to_frame!(0)
            jmp quad_tail_start
        vertical:
        }
        state_to_frame!(1)
    main_loop:
        cmp blocks, PB
        jb tail
        if W == 32 {
            vchacha_iter!(0, 0)
        } else {
            chacha_iter!(0, K)
        }
        add inp, 64 * PB
        add out, 64 * PB
        sub blocks, PB
        jmp main_loop
    tail:
        if W == 32 {
            // 3-7 blocks: one more vertical iteration into KSB, xored 32
            // bytes at a time (1-2 blocks: the horizontal quad below).
            cmp blocks, 2
            jbe quad_tail_start
            vchacha_iter!(0, 1)
            lea rax, [frame + KSB]
            lea r9, [blocks + blocks]
        ks_xor:
            vmovdqu ymm0, [inp]
            vpxor ymm0, ymm0, [rax]
            vmovdqu [out], ymm0
            add rax, 32
            add inp, 32
            add out, 32
            dec r9
            jnz ks_xor
            jmp done
        quad_tail_start:
        }
        if L > 1 {
            quad_tail!()                    // L blocks at a time in quad 0
        }
        test blocks, blocks
        jz done
    tail_block:
        for r in 0..4 {
            vload!(v{r}, [frame + r * W])
        }
        mov gpr32(dround), 10
    tail_rounds:
        double_round!(1)
        dec gpr32(dround)
        jnz tail_rounds
        for r in 0..4 {
            vadd32!(v{r}, [frame + r * W])
            vload!(xmm(v12), [inp + 16 * r])
            vxor!(xmm(v{r}), xmm(v12))
            vstore!([out + 16 * r], xmm(v{r}))
        }
        vload!(v13, [frame + 3 * W])
        vadd32!(v13, [BLOCK_INC + 16])     // lane 0: counter + 1 (other lanes unused now)
        vstore!([frame + 3 * W], v13)
        add inp, 64
        add out, 64
        dec blocks
        jnz tail_block
    done:
        ret
    }

    /// ChaCha20 of `iters · PB` whole blocks (PB = 3, 6, 16 by variant) as
    /// `chacha20_xor`, fused with Poly1305 of the `iters · 4·PB` 16-byte
    /// blocks at `hp` (each with the 2^128 bit): the scalar multiply chain
    /// runs on the integer ports in the shadow of the vector rounds. `pst`
    /// = `[h0, h1, h2, r0, r1]` (h updated). Open hashes `hp = inp`
    /// (each chunk is loaded before it is overwritten, so in place works);
    /// seal hashes the previous chunk of `out`.
    #[secret]
    #[stack = 1600]
    pub fn chacha20_poly1305_xor(state: *const u32, inp: *const u8, outp: *mut u8, iters: usize, pst: *mut u64, hp: *const u8) {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let out = rdi                       // rdx is clobbered by mul; state is in the frame
        let blocks = rcx                    // (unused name for the shared macros)
        let dround = r15
        let h0 = rbx
        let h1 = r10
        let h2 = r11
        let d1 = r12
        let d2 = r13
        let d3 = r14
        test iters, iters
        jnz start
        ret                                 // (separate exit: see poly1305_blocks)
    start:
        // The static callee-saved check needs every callee-saved register
        // written before a loop that writes it (its paths must agree).
        xor gpr32(d2), gpr32(d2)
        xor gpr32(d3), gpr32(d3)
        xor gpr32(dround), gpr32(dround)
        state_to_frame!(1)
        mov out, outp
        poly_state_in!()
    main_loop:
        if W == 32 {
            vchacha_iter!(1, 0)
        } else {
            chacha_iter!(1, K)
        }
        add inp, 64 * PB
        add out, 64 * PB
        dec iters
        jnz main_loop
        poly_state_out!()
        ret
    }

    /// ChaCha20 of `iters · PB` whole blocks xored in place into `data` (a
    /// zeroed buffer receives the keystream), fused with Poly1305 of the
    /// first `nhash <= iters · 4·PB` 16-byte blocks at `hp` (each with the
    /// 2^128 bit), hashed at the same points as in `chacha20_poly1305_xor`
    /// while they last. `pst` = `[h0, h1, h2, r0, r1]` (h updated). For
    /// messages of a few chunks, where the fixed ratio of
    /// `chacha20_poly1305_xor` would leave seal's hash waiting for
    /// ciphertext: the caller makes the keystream a chunk ahead and hashes
    /// what it has xored so far.
    #[secret]
    #[stack = 1600]
    pub fn chacha20_poly1305_ks(state: *const u32, data: *mut u8, iters: usize, pst: *mut u64, hp: *const u8, nhash: usize) {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let inp = rsi                       // in place
        let out = rsi
        let n = rdi                         // iterations left (rdx is clobbered by mul)
        let pn = r9                         // Poly1305 blocks left
        let dround = r15
        let h0 = rbx
        let h1 = r10
        let h2 = r11
        let d1 = r12
        let d2 = r13
        let d3 = r14
        test iters, iters
        jnz start
        ret
    start:
        state_to_frame!(1)
        mov n, iters
        poly_state_in!()
    main_loop:
        if W == 32 {
            vchacha_iter!(2, 0)
        } else {
            chacha_iter!(2, K)
        }
        add inp, 64 * PB
        dec n
        jnz main_loop
        poly_state_out!()
        ret
    }

    /// Poly1305 over `blocks` whole 16-byte blocks at `data`, each with the
    /// 2^128 bit set when `padbit` is 1: `h = (h + m)·r mod 2^130 - 5`
    /// (partially reduced). `st` = `[h0, h1, h2, r0, r1]`, r clamped.
    #[secret]
    pub fn poly1305_blocks(st: *mut u64, data: *const u8, blocks: usize, padbit: u64) {
        variants {
            baseline(level = baseline),
        }
        let n = r15
        let h0 = r14
        let h1 = rbx
        let h2 = rbp
        let r0 = r11
        let r1 = r13
        let s1 = r12
        let d1 = r8
        let d2 = r9
        let d3 = r10
        mov n, blocks                       // (rdx is clobbered by mul)
        test n, n
        jnz start
        ret                                 // (a separate exit: the callee-saved check
    start:                                  //  does not merge saved/unsaved paths)
        mov h0, [st]
        mov h1, [st + 8]
        mov h2, [st + 16]
        mov r0, [st + 24]
        mov r1, [st + 32]
        mov s1, r1
        shr s1, 2
        add s1, r1                          // s1 = 5·r1/4 (4 | r1)
    next_block:
        poly_step!(data, padbit, r0, r1, s1)
        add data, 16
        dec n
        jnz next_block
        mov [st], h0
        mov [st + 8], h1
        mov [st + 16], h2
        ret
    }
}
