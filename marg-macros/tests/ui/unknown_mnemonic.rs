use marg_macros::marg_asm;

marg_asm! {
    pub fn f(p: *const u8) -> u64 {
        variants { baseline(level = baseline, width = 16) }
        movdqu v0, [p]
        pcmpeqbb v0, v1
        ret
    }
}

fn main() {}
