//! Builds small kernels with `marg_asm!` and runs every variant this host
//! can execute against a Rust reference.

use marg_macros::marg_asm;

marg_asm! {
    const LANES = 4;

    macro zero(v) {
        if W == 16 { pxor v, v }
        else if W == 32 { vpxor v, v, v }
        else { vpxord v, v, v }
    }

    /// Sums the bytes of `ptr[..len]` (wrapping, as u64).
    ///
    /// Vector loop: `psadbw` against zero gives 64-bit partial sums per
    /// 8 bytes; the tail is summed a byte at a time.
    pub fn sum_bytes(ptr: *const u8, len: usize) -> u64 {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let acc = v0        // running 64-bit sums
        let zero = v1       // all zero, for psadbw
        let idx = rcx
        let tail = rax
        zero!(acc)
        zero!(zero)
        xor idx, idx
        mov rdx, len
        and rdx, -W         // whole vectors only
        jz bytes
        vec:
        if W == 16 {
            movdqu v2, [ptr + idx]
            psadbw v2, zero
            paddq acc, v2
        } else {
            vpsadbw v2, zero, vword ptr [ptr + idx]
            vpaddq acc, acc, v2
        }
        add idx, W
        cmp idx, rdx
        jb vec
        bytes:
        // Fold the vector lanes into tail.
        xor tail, tail
        for i in 0..W/8 {
            if i % 2 == 0 {
                if i < 2 { movq r8, xmm0 } else if i < 4 { vextracti128 xmm3, ymm0, i/2; movq r8, xmm3 }
                else { vextracti32x4 xmm3, zmm0, i/2; movq r8, xmm3 }
            } else {
                if i < 2 { pextrq r8, xmm0, 1 } else if i < 4 { pextrq r8, xmm3, 1 }
                else { pextrq r8, xmm3, 1 }
            }
            add tail, r8
        }
        cmp idx, len
        jae done
        tailloop:
        movzx r8d, byte ptr [ptr + idx]
        add tail, r8
        inc idx
        cmp idx, len
        jb tailloop
        done:
        ret
    }

    /// Index of the first `needle` byte in `ptr[..len]`, or `len`.
    pub fn find_byte(ptr: *const u8, len: usize, needle: u8) -> usize {
        variants {
            baseline(level = baseline, width = 16),
            avx2(level = avx2, width = 32),
            avx512(level = avx512, width = 64),
        }
        let idx = rax
        let vneedle = v0
        movd xmm0, edx
        if W == 16 { pxor xmm1, xmm1; pshufb xmm0, xmm1 }
        else if W == 32 { vpbroadcastb ymm0, xmm0 }
        else { vpbroadcastb zmm0, xmm0 }
        xor idx, idx
        mov r9, len
        and r9, -W
        jz tail
        top:
        if W == 16 {
            movdqu v1, [ptr + idx]
            pcmpeqb v1, vneedle
            pmovmskb r8d, v1
            test r8d, r8d
        } else if W == 32 {
            vpcmpeqb v1, vneedle, [ptr + idx]
            vpmovmskb r8d, v1
            test r8d, r8d
        } else {
            vpcmpeqb k1, vneedle, zmmword ptr [ptr + idx]
            kmovq r8, k1
            test r8, r8
        }
        jnz found
        add idx, W
        cmp idx, r9
        jb top
        tail:
        cmp idx, len
        jae done
        cmp byte ptr [ptr + idx], dl
        je done
        inc idx
        jmp tail
        found:
        if W == 16 { bsf r8, r8 } else { tzcnt r8, r8 }
        add idx, r8
        done:
        ret
    }

    /// Returns the constant-pool word at `i` (0..4) plus a saved-register
    /// round trip: exercises RIP-relative data, the generated prologue and
    /// `#[stack]`.
    #[stack = 64]
    pub fn table_at(i: usize) -> u64 {
        variants { baseline(level = baseline) }
        lea rbx, [TABLE]
        mov r12, qword ptr [rbx + i*8]
        mov qword ptr [frame], r12
        mov rax, qword ptr [frame]
        ret
    }

    data TABLE: [u64; 4] align 32 = [10, 20, 30, LANES * 10];
}

fn sum_ref(b: &[u8]) -> u64 {
    b.iter().map(|&x| u64::from(x)).sum()
}

#[test]
fn sum_bytes_all_variants() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    let runnable = SUM_BYTES.runnable();
    assert!(!runnable.is_empty());
    for (v, f) in runnable {
        for len in [
            0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 200, 999, 1000,
        ] {
            // SAFETY: `data` has at least `len` readable bytes.
            let got = unsafe { f(data.as_ptr(), len) };
            assert_eq!(got, sum_ref(&data[..len]), "variant {} len {len}", v.name);
        }
    }
}

#[test]
fn find_byte_all_variants() {
    let mut data = vec![b'a'; 300];
    for (v, f) in FIND_BYTE.runnable() {
        for pos in [0usize, 1, 15, 16, 31, 32, 63, 64, 65, 130, 299] {
            data[pos] = b'\n';
            for len in [pos, pos + 1, 300] {
                let want = data[..len].iter().position(|&c| c == b'\n').unwrap_or(len);
                // SAFETY: `data` has at least `len` readable bytes.
                let got = unsafe { f(data.as_ptr(), len, b'\n') };
                assert_eq!(got, want, "variant {} pos {pos} len {len}", v.name);
            }
            data[pos] = b'a';
        }
    }
}

#[test]
fn data_prologue_and_stack() {
    let f = TABLE_AT.get();
    for (i, want) in [10u64, 20, 30, 40].into_iter().enumerate() {
        // SAFETY: i < 4, the table's length.
        assert_eq!(unsafe { f(i) }, want);
    }
    let meta = TABLE_AT.meta();
    assert_eq!(meta.name, "table_at");
    let v = &meta.variants[0];
    assert_eq!(v.code.len() % 32, 0);
    assert!(v.listing.iter().any(|l| l.text == "push rbx"));
}

#[test]
fn metadata() {
    let m = SUM_BYTES.meta();
    assert_eq!(m.doc, "Sums the bytes of `ptr[..len]` (wrapping, as u64).");
    assert_eq!(
        m.variants.iter().map(|v| v.width).collect::<Vec<_>>(),
        [16, 32, 64]
    );
    let l = m.variants[0].listing;
    assert!(l
        .iter()
        .any(|l| l.comment == "running 64-bit sums" || l.comment == "whole vectors only"));
    assert!(l.iter().any(|l| l.text == "vec:"));
}
