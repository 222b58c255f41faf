use marg_macros::marg_asm;

marg_asm! {
    /// Zeroes `W` bytes at `p` in every variant.
    pub fn zero_vec(p: *mut u8) {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        if W == 16 { pxor v0, v0; movdqu [p], v0 }
        else if W == 32 { vpxor v0, v0, v0; vmovdqu [p], v0 }
        else { vpxord v0, v0, v0; vmovdqu64 [p], v0 }
        ret
    }
}

fn main() {
    let m = ZERO_VEC.meta();
    assert_eq!(m.variants.len(), 3);
}
