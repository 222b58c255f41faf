//! `kernels::init()` under `MARG_KERNELS=baseline`: it must succeed, with
//! every AEAD kernel on its `baseline` variant (or reported "unavailable"
//! on a CPU without AES-NI/PCLMULQDQ, never an init failure).

#[test]
fn init_under_forced_baseline_level() {
    // SAFETY: this test binary runs only this test, so no
    // other thread reads the environment concurrently.
    unsafe { std::env::set_var("MARG_KERNELS", "baseline") };
    let sel = kernels::init().expect("init under MARG_KERNELS=baseline");
    for (kernel, variant) in sel
        .iter()
        .filter(|(k, _)| kernels::aead::REGISTRY.iter().any(|m| m.name == *k))
    {
        assert!(
            *variant == "baseline" || *variant == "unavailable",
            "{kernel}: {variant}"
        );
    }
    if kernels::aead::aes_gcm_supported() {
        assert_eq!(kernels::aead::GcmKernels::selected().variant, "baseline");
    }
}
