use marg_macros::marg_asm;

marg_asm! {
    pub fn f(p: *const u8) -> u64 {
        variants { avx2(level = avx2, width = 32) }
        vpcmpeqb ymm0, rax
        ret
    }
}

fn main() {}
