//! The AES-GCM kernels in `marg_asm!`.
//!
//! | kernel | computes | variants |
//! |---|---|---|
//! | [`AES_GCM_INIT`] | key schedule, `H`, and `H^1..H^16` for aggregated GHASH | `baseline` |
//! | [`AES_ENCRYPT_BLOCKS`] | `out[i] = E_K(in[i])` (the tag mask `E_K(J0)`, the keystream of a final partial block) | `baseline` |
//! | [`GHASH`] | `X = (..((X ^ D0)·H ^ D1)·H ..)·H` over whole blocks | `baseline`, `avx2_vaes`, `avx512` |
//! | [`AES_GCM_SEAL`] | CTR encryption of whole blocks interleaved with GHASH of the ciphertext | `baseline`, `avx2_vaes`, `avx512` |
//! | [`AES_GCM_OPEN`] | GHASH of the ciphertext interleaved with CTR decryption | `baseline`, `avx2_vaes`, `avx512` |
//!
//! `GHASH`, `AES_GCM_SEAL` and `AES_GCM_OPEN` are one source each for all
//! three widths: `baseline` is SSE + AES-NI + PCLMULQDQ on xmm (legacy
//! two-operand encodings, so it runs on AES-NI Atoms without AVX),
//! `avx2_vaes` is VEX VAES/VPCLMULQDQ on ymm (2 blocks per register) and
//! `avx512` is EVEX on zmm (4 blocks per register). The width-dependent
//! instruction choices live in the DSL macros below (one arm per width);
//! every macro is written in destructive two-operand style so that the SSE
//! arm is a single instruction wherever it can be.
//!
//! ## Blocks in flight
//!
//! `L = W/16` blocks per vector register, `N` registers of AES state in
//! flight (8 at `W = 16/32`, 4 at `W = 64`), so `B = N·L` blocks per loop
//! iteration: 8, 16 and 16. AES round `r` of all `N` registers is followed
//! by the GHASH multiply of register `r mod N` of the chunk being hashed
//! (registers 1..N-1 first, register 0, which carries the previous chunk's
//! `X`, last, so that only one step waits for the previous reduction), and
//! round `N + 1` by the reduction, so the AES units and the carry-less
//! multiplier work side by side. `avx2_vaes` keeps 8 ymm of AES state in
//! flight: with 4 (8 blocks) the VAES units wait on the 3-cycle round
//! latency, and a 16-block chunk halves the reductions per block.
//!
//! * seal hashes the ciphertext it wrote in the *previous* iteration (the
//!   first chunk is encrypted alone, the last chunk is hashed alone after
//!   the loop);
//! * open hashes the ciphertext of the *current* chunk before it overwrites
//!   it (all GHASH loads of an iteration precede its stores, so in-place
//!   works).
//!
//! Counter blocks: the counter is kept little-endian (`ctr`, `paddd` is
//! inc32 per lane) and its last byte in a GPR. While that byte cannot wrap
//! within the chunk (it is at most `256 - B`), the chunk's blocks are the
//! big-endian block plus `k` in its last byte (`CTR_BE_INC`): one add per
//! register instead of an add and a byte reversal. Otherwise (one chunk in
//! `256 / B`) each register is added and byte-reversed. The counter comes
//! from the public nonce, so the branch is constant time.
//!
//! Blocks left over (fewer than `B`) go one at a time on xmm.
//!
//! ## GHASH representation
//!
//! A block `b` enters as `R(b)`, its 16 bytes reversed (`pshufb` with
//! `BSWAP`), so that bit `127 - i` of the register holds the coefficient
//! of `x^i`. The carry-less product of two reflected values is the reflected
//! product shifted by one bit; with `G' = x^128 + x^127 + x^126 + x^121 + 1`
//! (`G` reflected) one gets `R(ab) = R(a)·R(b)·x^-127 mod G'`. The key
//! schedule stores `H^k' = R(H^k)·x mod G'`, so that
//! `R(a·H^k) = R(a)·H^k'·x^-128 mod G'`: a 256-bit carry-less product
//! followed by a Montgomery reduction by `x^128`, done as two 64-bit folds
//! with the constant `GFPOLY` (`x^63 + x^62 + x^57` in its high half):
//!
//! ```text
//! P = HI·x^128 + MI·x^64 + LO
//! MI ^= swap64(LO) ^ LO.lo·(x^63 + x^62 + x^57)    // cancels LO.lo
//! HI ^= swap64(MI) ^ MI.lo·(x^63 + x^62 + x^57)    // cancels MI.lo; HI = P·x^-128
//! ```
//!
//! Aggregation: for a chunk of `B` blocks `D0..D(B-1)` and state `X`,
//! `X' = (X ^ D0)·H^B ^ D1·H^(B-1) ^ .. ^ D(B-1)·H`. Register `j` of a chunk
//! holds blocks `jL..jL+L-1` and is multiplied lane-wise by the `L`
//! consecutive powers at `h_powers[16 - B + jL ..]` (the table runs from
//! `H^16` down to `H^1`); `LO`, `MI`, `HI` accumulate over the chunk and are
//! reduced once, lane-wise, then the lanes are XORed together.
//!
//! ## Context layout (`GcmKey`)
//!
//! | offset | contents |
//! |---|---|
//! | 0 | round keys, 15 × 16 bytes |
//! | 240 | number of rounds (u32: 10 or 14) |
//! | 256 | `h_powers[i] = H^(16-i)'`, 16 × 16 bytes |
//!
//! The per-message state (`state` argument) is 32 bytes: `X` in reflected
//! form, then the next counter block as it goes into AES (big-endian
//! counter in bytes 12..16).
//!
//! ## Registers (seal/open/ghash)
//!
//! | role | register | baseline (W=16) | avx2_vaes (W=32) | avx512 (W=64) |
//! |---|---|---|---|---|
//! | AES states | `v0..v{N-1}` | xmm0-7 | ymm0-7 | zmm0-3 |
//! | round key (broadcast) | `rk` = v8 | xmm8 | ymm8 | zmm8 |
//! | GHASH `LO`/`MI`/`HI` | v9/v10/v11 | | | |
//! | `X` between chunks | `acc_hi` = v11 (lane 0, other lanes zero) | | | |
//! | `X` while a chunk is hashed | `xs` = v15 (lane 0) | | | |
//! | scratch; `t1` = big-endian counter block before round 0 | `t0`, `t1` = v12, v13 | | | |
//! | counter base (byte-reversed, same in every lane) | `ctr` = v14 | | | |
//! | counter's last byte (public) | `ctr_lo` = al | | | |
//! | rounds, `&K_last` | r9, r10 | | | |
//!
//! The byte-reversal mask is a memory operand (`[BSWAP]`), which frees a
//! register for `xs`; round keys and H powers are memory operands too.
//!
//! Constant time: no branch or address depends on key, data, or tag; the
//! only branches test lengths and the (public) number of rounds.

use marg_macros::marg_asm;

/// `(key, key_len, ctx)`: expands a 16- or 32-byte key into `ctx`.
pub type InitFn = unsafe extern "sysv64" fn(*const u8, usize, *mut u8);
/// `(ctx, in, out, blocks)`: ECB encryption of whole blocks.
pub type EncryptBlocksFn = unsafe extern "sysv64" fn(*const u8, *const u8, *mut u8, usize);
/// `(ctx, xi, data, blocks)`: GHASH of whole blocks into the reflected state `xi`.
pub type GhashFn = unsafe extern "sysv64" fn(*const u8, *mut u8, *const u8, usize);
/// `(ctx, state, in, out, blocks)`: seal or open of whole blocks.
pub type CryptFn = unsafe extern "sysv64" fn(*const u8, *mut u8, *const u8, *mut u8, usize);

/// Offset of the round count in the context.
pub const ROUNDS_OFFSET: usize = 240;
/// Offset of `h_powers` in the context.
pub const POWERS_OFFSET: usize = 256;

marg_asm! {
    // ---- constant pool (16-byte patterns repeated to fill a zmm) ----

    // pshufb mask reversing the 16 bytes of each lane.
    data BSWAP: [u8; 64] align 64 = [
        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    ];
    // Low 128 bits of G' = x^128 + x^127 + x^126 + x^121 + 1; the high
    // qword, x^63 + x^62 + x^57, is the folding constant.
    data GFPOLY: [u64; 8] align 64 = [
        1, 0xc200000000000000, 1, 0xc200000000000000,
        1, 0xc200000000000000, 1, 0xc200000000000000,
    ];
    // Lane k (16 bytes) = the 32-bit value k in its low dword: added to the
    // byte-reversed counter block, it gives counter + k.
    data CTR_INC: [u32; 64] align 64 = [
        0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
        4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0,
        8, 0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0,
        12, 0, 0, 0, 13, 0, 0, 0, 14, 0, 0, 0, 15, 0, 0, 0,
    ];
    // Lane k (16 bytes) = k in its last byte: added (as dwords) to a counter
    // block in its big-endian form, it gives counter + k as long as the
    // counter's last byte does not wrap.
    data CTR_BE_INC: [u32; 64] align 64 = [
        0, 0, 0, 0 << 24, 0, 0, 0, 1 << 24, 0, 0, 0, 2 << 24, 0, 0, 0, 3 << 24,
        0, 0, 0, 4 << 24, 0, 0, 0, 5 << 24, 0, 0, 0, 6 << 24, 0, 0, 0, 7 << 24,
        0, 0, 0, 8 << 24, 0, 0, 0, 9 << 24, 0, 0, 0, 10 << 24, 0, 0, 0, 11 << 24,
        0, 0, 0, 12 << 24, 0, 0, 0, 13 << 24, 0, 0, 0, 14 << 24, 0, 0, 0, 15 << 24,
    ];
    // The per-iteration counter step B in every lane.
    data CTR_STEP8: [u32; 16] align 64 = [8, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0];
    data CTR_STEP16: [u32; 16] align 64 = [16, 0, 0, 0, 16, 0, 0, 0, 16, 0, 0, 0, 16, 0, 0, 0];

    // Blocks per vector, registers in flight, blocks and bytes per iteration.
    const L = W / 16;
    const N = 8 - 4 * (W / 64);
    const B = N * L;
    const CH = 16 * B;
    const POW = 256;

    // ---- width-specific building blocks (two-operand style) ----

    // d = s
    macro vmov(d, s) {
        if W == 16 { movdqa d, s } else if W == 32 { vmovdqa d, s } else { vmovdqa64 d, s }
    }
    // d = the bytes at m (unaligned)
    macro vload(d, m) {
        if W == 16 { movdqu d, m } else if W == 32 { vmovdqu d, m } else { vmovdqu8 d, m }
    }
    // m = d (unaligned)
    macro vstore(m, s) {
        if W == 16 { movdqu m, s } else if W == 32 { vmovdqu m, s } else { vmovdqu8 m, s }
    }
    // d ^= s
    macro vxor(d, s) {
        if W == 16 { pxor d, s } else if W == 32 { vpxor d, d, s } else { vpxord d, d, s }
    }
    // d += s, per dword
    macro vadd32(d, s) {
        if W == 16 { paddd d, s } else if W == 32 { vpaddd d, d, s } else { vpaddd d, d, s }
    }
    // d = a + m, per dword (a register, m memory; one instruction on VEX/EVEX)
    macro vadd32_to(d, a, m) {
        if W == 16 { movdqa d, a; paddd d, m } else { vpaddd d, a, m }
    }
    // d = d with each 16-byte lane byte-reversed (m = BSWAP)
    macro vbswap(d, m) {
        if W == 16 { pshufb d, m } else { vpshufb d, d, m }
    }
    // d = the 16 bytes at m in every lane
    macro vbroadcast16(d, m) {
        if W == 16 { movdqu d, m } else if W == 32 { vbroadcasti128 d, m } else { vbroadcasti32x4 d, m }
    }
    // d = one AES round of d with round key k
    macro aesround(d, k) {
        if W == 16 { aesenc d, k } else { vaesenc d, d, k }
    }
    // d = the last AES round of d with round key k
    macro aesroundlast(d, k) {
        if W == 16 { aesenclast d, k } else { vaesenclast d, d, k }
    }
    // d = a.q[imm & 1] · b.q[imm >> 4 & 1], carry-less, per lane
    macro clmul(d, a, b, imm) {
        if W == 16 { movdqa d, a; pclmulqdq d, b, imm } else { vpclmulqdq d, a, b, imm }
    }
    // d ^= a.q[..] · b.q[..] (t scratch)
    macro clmul_xor(d, a, b, imm, t) {
        clmul!(t, a, b, imm)
        vxor!(d, t)
    }
    // d = s with its 64-bit halves swapped, per lane
    macro swap64(d, s) {
        if W == 16 { pshufd d, s, 0x4e } else { vpshufd d, s, 0x4e }
    }

    // hi = (hi·x^128 ^ mi·x^64 ^ lo)·x^-128 mod G', per lane (t0, t1 scratch;
    // lo and mi are clobbered).
    macro reduce(lo, mi, hi, t0, t1) {
        clmul!(t0, lo, [GFPOLY], 0x10)      // t0 = lo.lo · (x^63 + x^62 + x^57)
        swap64!(t1, lo)                     // t1 = lo.lo·x^64 + lo.hi
        vxor!(mi, t0)
        vxor!(mi, t1)                       // mi: lo.lo folded out
        clmul!(t0, mi, [GFPOLY], 0x10)      // t0 = mi.lo · (x^63 + x^62 + x^57)
        swap64!(t1, mi)
        vxor!(hi, t0)
        vxor!(hi, t1)                       // hi = P·x^-128 mod G'
    }

    // xmm(hi) = the XOR of hi's 16-byte lanes; the upper lanes become zero.
    macro fold_lanes(hi, t) {
        if W == 32 {
            vextracti128 xmm(t), hi, 1
            vpxor xmm(hi), xmm(hi), xmm(t)
        } else if W == 64 {
            vextracti64x4 ymm(t), hi, 1
            vpxord ymm(hi), ymm(hi), ymm(t)
            vextracti128 xmm(t), ymm(hi), 1
            vpxord xmm(hi), xmm(hi), xmm(t)
        }
    }

    // hi = Mont(a, b) = R(a·b) when b holds some H^k' (one block per lane);
    // lo, mi, t0, t1 scratch.
    macro mul1(a, b, lo, mi, hi, t0, t1) {
        clmul!(lo, a, b, 0x00)              // a.lo·b.lo
        clmul!(mi, a, b, 0x01)              // a.hi·b.lo
        clmul_xor!(mi, a, b, 0x10, t0)      // ^ a.lo·b.hi
        clmul!(hi, a, b, 0x11)              // a.hi·b.hi
        reduce!(lo, mi, hi, t0, t1)
    }

    // GHASH multiply step for register j of a B-block chunk at gp:
    // D = R(gp[j]) (^ X in lane 0 when j == 0), accumulated as
    // D · h_powers[16 - B + jL ..] into acc_lo / acc_mi / acc_hi (which the
    // step with first == true initialises). Register 0 is hashed last so
    // that only its step waits for the previous chunk's X (a copy in xs):
    // the other products do not depend on it.
    macro ghash_step(j, first, gp, disp) {
        vload!(t0, [gp + (j) * W + disp])
        vbswap!(t0, [BSWAP])
        if (j) == 0 {
            vxor!(t0, xs)                                           // fold in X
        }
        if (first) {
            clmul!(acc_lo, t0, [key + POW + (16 - B + (j) * L) * 16], 0x00)
            clmul!(acc_mi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x01)
            clmul_xor!(acc_mi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x10, t1)
            clmul!(acc_hi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x11)
        } else {
            clmul_xor!(acc_lo, t0, [key + POW + (16 - B + (j) * L) * 16], 0x00, t1)
            clmul_xor!(acc_mi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x01, t1)
            clmul_xor!(acc_mi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x10, t1)
            clmul_xor!(acc_hi, t0, [key + POW + (16 - B + (j) * L) * 16], 0x11, t1)
        }
    }

    // X = GHASH of the B blocks at gp, not interleaved with AES. Step s
    // (1..=N) hashes register s mod N: registers 1..N-1, then 0.
    macro ghash_chunk(gp, disp) {
        vmov!(xmm(xs), xmm(acc_hi))
        for s in 1..(N + 1) {
            ghash_step!((s % N), (s == 1), gp, disp)
        }
        reduce!(acc_lo, acc_mi, acc_hi, t0, t1)
        fold_lanes!(acc_hi, t0)
    }

    // CTR-encrypts the B blocks at inp into out (out = in ^ E(counters)),
    // advancing ctr by B; when `hash` is 1, GHASHes the chunk at gp in the
    // shadow of the AES rounds.
    macro ctr_chunk(hash, gp, disp) {
        // Counter blocks: lane l of register i = counter + iL + l. While the
        // counter's last byte does not wrap within the chunk (ctr_lo <= 256 - B,
        // all but about one chunk in 256 / B), the blocks are the
        // big-endian block plus k in its last byte: one add per register
        // instead of an add and a byte reversal. The counter comes from the
        // (public) nonce, so branching on it is constant time.
        cmp gpr8(ctr_lo), (256 - B)
        ja ctr_wraps
        vmov!(t1, ctr)
        vbswap!(t1, [BSWAP])             // t1 = counter block, big-endian
        for i in 0..N {
            vadd32_to!(v{i}, t1, [CTR_BE_INC + i * W])
        }
        jmp have_ctrs
    ctr_wraps:
        for i in 0..N {
            vadd32_to!(v{i}, ctr, [CTR_INC + i * W])
            vbswap!(v{i}, [BSWAP])
        }
    have_ctrs:
        add gpr8(ctr_lo), B
        if B == 16 { vadd32!(ctr, [CTR_STEP16]) } else { vadd32!(ctr, [CTR_STEP8]) }
        vbroadcast16!(rk, [key])
        for i in 0..N {
            vxor!(v{i}, rk)                 // round 0: AddRoundKey
        }
        for r in 1..10 {
            vbroadcast16!(rk, [key + 16 * r])
            for i in 0..N {
                aesround!(v{i}, rk)
            }
            if (hash) == 1 && r == 1 {
                vmov!(xmm(xs), xmm(acc_hi))       // X, free acc_hi for the products
            }
            if (hash) == 1 && r <= N {
                ghash_step!((r % N), (r == 1), gp, disp)   // GHASH register r mod N
            }
            if (hash) == 1 && r == N + 1 {
                reduce!(acc_lo, acc_mi, acc_hi, t0, t1)
                fold_lanes!(acc_hi, t0)
            }
        }
        cmp rounds, 10
        je last_round
        for r in 10..14 {                   // AES-256: rounds 10..13
            vbroadcast16!(rk, [key + 16 * r])
            for i in 0..N {
                aesround!(v{i}, rk)
            }
        }
    last_round:
        vbroadcast16!(rk, [rklast])
        for i in 0..N {
            // AESENCLAST xors its key last: feeding it K_last ^ P gives E ^ P.
            vload!(t0, [inp + i * W])
            vxor!(t0, rk)
            aesroundlast!(v{i}, t0)
            vstore!([out + i * W], v{i})
        }
    }

    // s = E_K(s) for one block in an xmm register; the number of rounds is
    // in `rounds`, the last round key at [rklast].
    macro aes_block(s) {
        vxor!(s, [key])
        for r in 1..10 {
            aesround!(s, [key + 16 * r])
        }
        cmp rounds, 10
        je last_round
        for r in 10..14 {
            aesround!(s, [key + 16 * r])
        }
    last_round:
        aesroundlast!(s, [rklast])
    }

    // X = (X ^ R(c))·H for the block c in xmm register s (clobbered).
    macro ghash_block(s) {
        vbswap!(s, [BSWAP])
        vxor!(s, xmm(acc_hi))
        mul1!(s, [key + POW + 15 * 16], xmm(acc_lo), xmm(acc_mi), xmm(acc_hi), xmm(t0), xmm(t1))
    }

    // Register roles (see the module docs) and loads of seal / open.
    macro gcm_setup() {
        let rounds = r9
        let rklast = r10
        let rk = v8
        let acc_lo = v9
        let acc_mi = v10
        let acc_hi = v11
        let t0 = v12
        let t1 = v13
        let ctr = v14
        let xs = v15                        // copy of X while a chunk is hashed
        let ctr_lo = rax                    // the counter's last byte (public)
        public mov gpr32(rounds), dword ptr [key + 240]
        public movzx gpr32(ctr_lo), byte ptr [state + 31]
        mov rklast, rounds
        shl rklast, 4
        add rklast, key                     // &round_keys[rounds]
        vbroadcast16!(ctr, [state + 16])
        vbswap!(ctr, [BSWAP])            // counter as a little-endian dword 0
        vload!(xmm(acc_hi), [state])        // X (upper lanes zero)
    }

    // One block on xmm: xmm(v0) = [inp] ^ E_K(counter), stored to [out];
    // counter + 1.
    macro ctr_block() {
        vmov!(xmm(v0), xmm(ctr))
        vbswap!(xmm(v0), [BSWAP])
        aes_block!(xmm(v0))
        vload!(xmm(t0), [inp])
        vxor!(xmm(v0), xmm(t0))
        vstore!([out], xmm(v0))
        vadd32!(xmm(ctr), [CTR_INC + 16])
    }

    // Stores X and the next counter block back into the state.
    macro gcm_finish() {
        vstore!([state], xmm(acc_hi))
        vbswap!(xmm(ctr), [BSWAP])
        vstore!([state + 16], xmm(ctr))
    }

    // rk ^= rk << 32 ^ rk << 64 ^ rk << 96; rk ^= t (t scratch).
    macro expand_step(rk, t, s) {
        movdqa s, rk
        pslldq s, 4
        pxor rk, s
        pslldq s, 4
        pxor rk, s
        pslldq s, 4
        pxor rk, s
        pxor rk, t
    }

    // AES-128 round key i from round key i-1 in xmm1, stored into ctx.
    macro expand128(i, rcon) {
        aeskeygenassist xmm2, xmm1, rcon
        pshufd xmm2, xmm2, 0xff             // SubWord(RotWord(w3)) ^ rcon, broadcast
        expand_step!(xmm1, xmm2, xmm3)
        movdqa [ctx + 16 * (i)], xmm1
    }

    /// Key schedule (AES-NI `aeskeygenassist`) for a 16- or 32-byte key,
    /// then `H = E_K(0)`, `H' = R(H)·x mod G'` and `H^k' = Mont(H^(k-1)', H')`
    /// for k = 2..16 into `ctx` (layout in the module docs).
    #[secret]
    pub fn aes_gcm_init(key_bytes: *const u8, key_len: usize, ctx: *mut u8) {
        variants {
            baseline(level = baseline, features = [aes, pclmulqdq], width = 16),
        }
        let key = rdx                       // = ctx: what aes_block reads
        let rounds = rax
        let rklast = r8
        movdqu xmm1, [key_bytes]
        movdqa [ctx], xmm1
        cmp key_len, 32
        je expand256
        // AES-128: rk[i] = rk[i-1] ^ (rk[i-1] << 32) ^ (rk[i-1] << 64)
        //          ^ (rk[i-1] << 96) ^ broadcast(SubWord(RotWord(w3)) ^ rcon)
        for i in 1..9 {
            expand128!(i, (1 << (i - 1)))
        }
        expand128!(9, 0x1b)
        expand128!(10, 0x36)
        mov eax, 10
        jmp have_keys
    expand256:
        // AES-256: even round keys as above from the previous even one and
        // the odd one's RotWord/SubWord; odd ones use SubWord only (no rcon).
        movdqu xmm3, [key_bytes + 16]
        movdqa [ctx + 16], xmm3
        for i in 1..8 {
            aeskeygenassist xmm2, xmm3, (1 << (i - 1))
            pshufd xmm2, xmm2, 0xff
            expand_step!(xmm1, xmm2, xmm4)
            movdqa [ctx + 32 * i], xmm1
            if i < 7 {
                aeskeygenassist xmm2, xmm1, 0
                pshufd xmm2, xmm2, 0xaa
                expand_step!(xmm3, xmm2, xmm4)
                movdqa [ctx + 32 * i + 16], xmm3
            }
        }
        mov eax, 14
    have_keys:
        mov dword ptr [ctx + 240], eax
        mov rklast, rounds
        shl rklast, 4
        add rklast, key
        // H = E_K(0), reflected.
        pxor xmm0, xmm0
        aes_block!(xmm0)
        pshufb xmm0, [BSWAP]
        // H' = R(H)·x mod G': shift left by one; if x^127 was set, the
        // x^128 that falls out is replaced by G' - x^128.
        pshufd xmm3, xmm0, 0xff
        psrad xmm3, 31                      // all ones iff bit 127 set
        pand xmm3, [GFPOLY]
        movdqa xmm1, xmm0
        psllq xmm0, 1
        psrlq xmm1, 63
        pslldq xmm1, 8                      // carry from the low qword
        por xmm0, xmm1
        pxor xmm0, xmm3
        movdqa [ctx + POW + 15 * 16], xmm0  // H^1'
        movdqa xmm4, xmm0                   // H' (the multiplier)
        movdqa xmm5, xmm0                   // running power
        for k in 2..17 {
            mul1!(xmm5, xmm4, xmm9, xmm10, xmm11, xmm12, xmm13)
            movdqa xmm5, xmm11
            movdqa [ctx + POW + (16 - k) * 16], xmm5
        }
        ret
    }

    /// `out[i] = E_K(in[i])` for `blocks` whole blocks.
    #[secret]
    pub fn aes_encrypt_blocks(key: *const u8, inp: *const u8, out: *mut u8, blocks: usize) {
        variants {
            baseline(level = baseline, features = [aes], width = 16),
        }
        let rounds = rax
        let rklast = r8
        public mov eax, dword ptr [key + 240]
        mov rklast, rounds
        shl rklast, 4
        add rklast, key
        test blocks, blocks
        jz done
    next_block:
        movdqu xmm0, [inp]
        aes_block!(xmm0)
        movdqu [out], xmm0
        add inp, 16
        add out, 16
        dec blocks
        jnz next_block
    done:
        ret
    }

    /// GHASH of `blocks` whole blocks at `data` into the reflected state at
    /// `xi`: B-block chunks with one reduction each, then the remaining
    /// `n < B` blocks against `H^n..H^1` with one more reduction.
    #[secret]
    pub fn ghash(key: *const u8, xi: *mut u8, data: *const u8, blocks: usize) {
        variants {
            baseline(level = baseline, features = [pclmulqdq], width = 16),
            avx2_vaes(level = avx2_vaes, width = 32),
            avx512(level = avx512, width = 64),
        }
        let acc_lo = v9
        let acc_mi = v10
        let acc_hi = v11
        let t0 = v12
        let t1 = v13
        let xs = v15                        // copy of X while a chunk is hashed
        let hp = rax
        vload!(xmm(acc_hi), [xi])
        cmp blocks, B
        jb one_block
    chunk:
        ghash_chunk!(data, 0)
        add data, CH
        sub blocks, B
        cmp blocks, B
        jae chunk
    one_block:
        // The n < B remaining blocks aggregated like a chunk:
        // X' = (X ^ D0)·H^n ^ D1·H^(n-1) ^ .. ^ D(n-1)·H, one reduction.
        test blocks, blocks
        jz done
        mov hp, 16
        sub hp, blocks
        shl hp, 4
        add hp, key                         // hp + POW = &h_powers[16 - n] = H^n'
        vload!(xmm(t0), [data])
        vbswap!(xmm(t0), [BSWAP])
        vxor!(xmm(t0), xmm(acc_hi))         // fold in X
        clmul!(xmm(acc_lo), xmm(t0), [hp + POW], 0x00)
        clmul!(xmm(acc_mi), xmm(t0), [hp + POW], 0x01)
        clmul_xor!(xmm(acc_mi), xmm(t0), [hp + POW], 0x10, xmm(t1))
        clmul!(xmm(acc_hi), xmm(t0), [hp + POW], 0x11)
        add data, 16
        add hp, 16
        dec blocks
        jz reduce_tail
    next_block:
        vload!(xmm(t0), [data])
        vbswap!(xmm(t0), [BSWAP])
        clmul_xor!(xmm(acc_lo), xmm(t0), [hp + POW], 0x00, xmm(t1))
        clmul_xor!(xmm(acc_mi), xmm(t0), [hp + POW], 0x01, xmm(t1))
        clmul_xor!(xmm(acc_mi), xmm(t0), [hp + POW], 0x10, xmm(t1))
        clmul_xor!(xmm(acc_hi), xmm(t0), [hp + POW], 0x11, xmm(t1))
        add data, 16
        add hp, 16
        dec blocks
        jnz next_block
    reduce_tail:
        reduce!(xmm(acc_lo), xmm(acc_mi), xmm(acc_hi), xmm(t0), xmm(t1))
    done:
        vstore!([xi], xmm(acc_hi))
        ret
    }

    /// Seals `blocks` whole blocks: `out = in ^ E_K(counter..)`, GHASH of
    /// `out` into the state's X, counter advanced. `out` may equal `inp`.
    #[secret]
    pub fn aes_gcm_seal(key: *const u8, state: *mut u8, inp: *const u8, out: *mut u8, blocks: usize) {
        variants {
            baseline(level = baseline, features = [aes, pclmulqdq], width = 16),
            avx2_vaes(level = avx2_vaes, width = 32),
            avx512(level = avx512, width = 64),
        }
        gcm_setup!()
        cmp blocks, B
        jb tail
        ctr_chunk!(0, out, 0)                // first chunk: nothing to hash yet
        add inp, CH
        add out, CH
        sub blocks, B
    main_loop:
        cmp blocks, B
        jb drain
        ctr_chunk!(1, out, (-CH))           // hash the previous chunk's ciphertext
        add inp, CH
        add out, CH
        sub blocks, B
        jmp main_loop
    drain:
        ghash_chunk!(out, (-CH))          // the last full chunk
    tail:
        test blocks, blocks
        jz done
    tail_block:
        ctr_block!()                        // C = P ^ E_K(counter)
        ghash_block!(xmm(v0))
        add inp, 16
        add out, 16
        dec blocks
        jnz tail_block
    done:
        gcm_finish!()
        ret
    }

    /// Opens `blocks` whole blocks: GHASH of `inp` into the state's X,
    /// `out = in ^ E_K(counter..)`, counter advanced. `out` may equal `inp`.
    #[secret]
    pub fn aes_gcm_open(key: *const u8, state: *mut u8, inp: *const u8, out: *mut u8, blocks: usize) {
        variants {
            baseline(level = baseline, features = [aes, pclmulqdq], width = 16),
            avx2_vaes(level = avx2_vaes, width = 32),
            avx512(level = avx512, width = 64),
        }
        gcm_setup!()
    main_loop:
        cmp blocks, B
        jb tail
        ctr_chunk!(1, inp, 0)                // hash this chunk's ciphertext, then decrypt it
        add inp, CH
        add out, CH
        sub blocks, B
        jmp main_loop
    tail:
        test blocks, blocks
        jz done
    tail_block:
        vload!(xmm(v1), [inp])
        ghash_block!(xmm(v1))               // hash C before out (maybe = inp) is written
        ctr_block!()                        // P = C ^ E_K(counter)
        add inp, 16
        add out, 16
        dec blocks
        jnz tail_block
    done:
        gcm_finish!()
        ret
    }
}
