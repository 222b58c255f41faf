use marg_macros::marg_asm;

marg_asm! {
    pub fn eq_mask(p: *const u8) -> u64 {
        variants { avx2(level = avx2, width = 32) }
        vmovdqu ymm0, [p]
        vpcmpeqb k1, zmm0, zmm1
        kmovq rax, k1
        ret
    }
}

fn main() {}
