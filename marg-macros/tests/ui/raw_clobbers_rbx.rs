use marg_macros::marg_asm;

marg_asm! {
    pub fn f(n: u64) -> u64 {
        variants { baseline(level = baseline, raw) }
        mov rbx, n
        lea rax, [rbx + 1]
        ret
    }
}

fn main() {}
