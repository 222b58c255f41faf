//! Built-in example kernels (`marg-gen --examples ...`), so the tool can be
//! tested without depending on what the `kernels` crate holds.

use marg_gen::rt::KernelMeta;
use marg_macros::marg_asm;

marg_asm! {
    data NEWLINES: [u8; 64] align 64 = [0x0a; 64];

    /// Counts the `\n` bytes in `ptr[..len]` (len a multiple of W).
    pub fn count_newlines(ptr: *const u8, len: usize) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let nl = v0        // W copies of '\n'
        let idx = rcx
        let count = rax
        if W == 16 { movdqa nl, [NEWLINES] }
        else if W == 32 { vmovdqa nl, [NEWLINES] }
        else { vmovdqa64 nl, [NEWLINES] }
        xor count, count
        xor idx, idx
        test len, len
        jz done
        top:
        if W == 16 { movdqu v1, [ptr + idx]; pcmpeqb v1, nl; pmovmskb edx, v1; popcnt edx, edx }
        else if W == 32 { vpcmpeqb v1, nl, [ptr + idx]; vpmovmskb edx, v1; popcnt edx, edx }
        else { vpcmpeqb k1, nl, [ptr + idx]; kmovq rdx, k1; popcnt rdx, rdx }
        add count, rdx     // add this block's matches
        add idx, W
        cmp idx, len
        jb top
        done:
        ret
    }

    /// Saves and restores r12 around a use (exercises the prologue).
    pub fn add_with_r12(a: u64, b: u64) -> u64 {
        variants { baseline(level = baseline) }
        mov r12, a
        add r12, b
        mov rax, r12
        ret
    }
}

/// The example registry.
pub static REGISTRY: &[&KernelMeta] = &[COUNT_NEWLINES.meta(), ADD_WITH_R12.meta()];
