//! The example kernel of the book's "Writing a kernel" chapter, compiled and
//! checked here so the chapter cannot rot.

include!("../../book/src/examples/count_byte.rs");

#[test]
fn every_variant_counts_like_the_reference() {
    let variants = COUNT_BYTE.runnable();
    assert!(!variants.is_empty());
    // Lengths 0..=3*64+1 at every alignment 0..8, with needles spread
    // through the input, so every path (vector loop, byte tail) runs.
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 13) as u8).collect();
    for (v, f) in variants {
        for start in 0..8 {
            for len in 0..=193 {
                let hay = &data[start..start + len];
                for needle in [0u8, 3, 12, 200] {
                    // SAFETY: `hay` is valid for `len` bytes; the kernel reads only those.
                    let got = unsafe { f(hay.as_ptr(), hay.len(), u32::from(needle)) };
                    assert_eq!(
                        got,
                        count_byte_reference(hay, needle),
                        "variant {} start {start} len {len} needle {needle}",
                        v.name
                    );
                }
            }
        }
    }
}
