// The example kernel of book/src/writing-a-kernel.md; compiled and tested by
// kernels/tests/book_example.rs.

use marg_macros::marg_asm;

/// The specification: how many bytes of `haystack` equal `needle`.
pub fn count_byte_reference(haystack: &[u8], needle: u8) -> usize {
    haystack.iter().filter(|&&b| b == needle).count()
}

marg_asm! {
    // rdx = bit j set iff byte j of the W bytes at `src` equals `needle`
    // (a vector of broadcast needle bytes); `t` is scratch.
    macro eq_mask(src, needle, t) {
        if W == 16 {
            movdqu t, src
            pcmpeqb t, needle
            pmovmskb edx, t
        } else if W == 32 {
            vpcmpeqb t, needle, src
            vpmovmskb edx, t
        } else {
            vpcmpeqb k1, needle, src
            kmovq rdx, k1
        }
    }

    /// Counts the bytes equal to `needle` in `len` bytes at `ptr`.
    pub fn count_byte(ptr: *const u8, len: usize, needle: u32) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let count = rax
        let i = rcx
        let needles = v1
        let needle_byte = r9
        mov needle_byte, rdx            // rdx becomes the mask register
        // Broadcast the needle byte into every lane.
        if W == 16 {
            movd needles, edx
            pxor v0, v0
            pshufb needles, v0          // shuffle index 0 into every byte
        } else if W == 32 {
            vmovd xmm(needles), edx
            vpbroadcastb needles, xmm(needles)
        } else {
            vpbroadcastb needles, edx
        }
        xor count, count
        xor i, i
    vector_loop:                        // while i + W <= len: count += popcnt(mask)
        lea r8, [i + W]
        cmp r8, len
        ja byte_loop
        eq_mask!([ptr + i], needles, v0)
        popcnt rdx, rdx
        add count, rdx
        mov i, r8
        jmp vector_loop
    byte_loop:                          // the last len % W bytes, one at a time
        cmp i, len
        jae done
        xor r8d, r8d
        cmp byte ptr [ptr + i], r9b
        sete r8b
        add count, r8
        inc i
        jmp byte_loop
    done:
        ret
    }
}
