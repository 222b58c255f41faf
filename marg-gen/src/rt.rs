//! Run-time half of the toolchain: kernel metadata as the macro emits it,
//! variant selection from CPUID, and placement of the selected bytes in
//! executable memory.
//!
//! `marg_asm!` encodes every variant at compile time and emits a
//! `static NAME: Kernel<unsafe extern "sysv64" fn(..) -> ..>` holding a
//! [`KernelMeta`]. The first call to [`Kernel::get`] (or an explicit
//! [`Kernel::init`]) picks a variant, copies its bytes once into a fresh
//! mapping that is writable, then read+execute (never both: W^X), and caches
//! the entry point in an atomic. Every later call is one acquire load, one
//! predictable branch and the indirect call itself.
//!
//! Selection, in order of precedence:
//! 1. `MARG_KERNEL_<NAME>=<variant>` (e.g. `MARG_KERNEL_FIND_HEADER_END=baseline`)
//!    forces exactly that variant of that kernel;
//! 2. `MARG_KERNELS=<level>` (`baseline|avx2|avx2_vaes|avx512`) forces, in
//!    every kernel, the variant of that name, or — for a kernel without one —
//!    its highest variant named after a lower level (an AES-GCM kernel has no
//!    `avx2` variant, so `MARG_KERNELS=avx2` runs its `baseline` one, and an
//!    HTTP kernel has no `avx2_vaes`, so that level runs its `avx2` one).
//!    Kernels whose variants carry other names fall back to the variants
//!    whose features lie within the level;
//! 3. otherwise the variant with the largest feature set the host supports.
//!
//! Forcing something the CPU cannot run is an error, never a silent fallback.

use crate::features::{level, FeatureSet};
use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

/// One line of a variant's listing: where the instruction sits, and what the
/// source said.
#[derive(Debug, Clone, Copy)]
pub struct ListingLine {
    /// Byte offset of the instruction (or data) in [`VariantMeta::code`].
    pub offset: u32,
    /// Encoded length in bytes.
    pub len: u32,
    /// The instruction as written after generation-time expansion, or a
    /// label (`name:`), or a generated-prologue marker.
    pub text: &'static str,
    /// The author's `//` comment for this line, if any.
    pub comment: &'static str,
}

/// One compiled variant of a kernel.
#[derive(Debug)]
pub struct VariantMeta {
    /// `baseline`, `avx2`, `avx2_vaes`, `avx512`, ...
    pub name: &'static str,
    /// The CPU features the variant declared (every instruction was checked
    /// against this set at compile time).
    pub features: FeatureSet,
    /// Vector width in bytes the body was generated for (16, 32 or 64; 0 if
    /// the variant uses no vector registers).
    pub width: u32,
    /// Position-independent machine code: the code starts at offset 0 and
    /// constant pools follow it, addressed RIP-relative.
    pub code: &'static [u8],
    /// Length of the instruction part of `code` (the rest is constant data).
    pub code_len: u32,
    /// Source-level listing (for `marg-gen disasm`).
    pub listing: &'static [ListingLine],
}

/// Everything the macro knows about one kernel.
#[derive(Debug)]
pub struct KernelMeta {
    /// The kernel's Rust name (`find_header_end`).
    pub name: &'static str,
    /// The Rust signature as declared, for listings.
    pub signature: &'static str,
    /// First paragraph of the kernel's doc comment.
    pub doc: &'static str,
    /// Whether the kernel handles secrets (constant-time rules apply).
    pub secret: bool,
    /// Variants in declaration order.
    pub variants: &'static [VariantMeta],
}

/// Why a variant could not be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// `MARG_KERNELS` names no known level.
    UnknownLevel(String),
    /// A forced level needs features the host lacks.
    LevelUnsupported { level: String, missing: FeatureSet },
    /// A per-kernel override names a variant the kernel does not have.
    UnknownVariant {
        kernel: &'static str,
        variant: String,
    },
    /// The forced or requested variant needs features the host lacks.
    VariantUnsupported {
        kernel: &'static str,
        variant: &'static str,
        missing: FeatureSet,
    },
    /// No variant fits within the host (or forced level) features.
    NoneRunnable {
        kernel: &'static str,
        allowed: FeatureSet,
    },
    /// The executable mapping could not be created.
    Map(String),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::UnknownLevel(l) => write!(
                f,
                "MARG_KERNELS={l:?} is not a level; use one of baseline, avx2, avx2_vaes, avx512"
            ),
            SelectError::LevelUnsupported { level, missing } => write!(
                f,
                "MARG_KERNELS={level} needs CPU features this machine lacks: {missing}"
            ),
            SelectError::UnknownVariant { kernel, variant } => {
                write!(f, "kernel {kernel} has no variant {variant:?}")
            }
            SelectError::VariantUnsupported { kernel, variant, missing } => write!(
                f,
                "variant {variant} of kernel {kernel} needs CPU features this machine lacks: {missing}"
            ),
            SelectError::NoneRunnable { kernel, allowed } => write!(
                f,
                "kernel {kernel} has no variant that runs with only [{allowed}]"
            ),
            SelectError::Map(e) => write!(f, "cannot map executable memory: {e}"),
        }
    }
}

impl std::error::Error for SelectError {}

impl KernelMeta {
    /// Looks a variant up by name.
    pub fn variant(&self, name: &str) -> Option<&'static VariantMeta> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// The variant the current environment and host select (see the module
    /// docs for the precedence).
    pub fn select(&self) -> Result<&'static VariantMeta, SelectError> {
        self.select_with(
            FeatureSet::host(),
            std::env::var("MARG_KERNELS").ok().as_deref(),
            std::env::var(override_var(self.name)).ok().as_deref(),
        )
    }

    /// Selection as a pure function of the host features and the two
    /// environment overrides (what [`KernelMeta::select`] reads).
    pub fn select_with(
        &self,
        host: FeatureSet,
        forced_level: Option<&str>,
        forced_variant: Option<&str>,
    ) -> Result<&'static VariantMeta, SelectError> {
        if let Some(name) = forced_variant.filter(|s| !s.is_empty()) {
            let v = self
                .variant(name)
                .ok_or_else(|| SelectError::UnknownVariant {
                    kernel: self.name,
                    variant: name.to_string(),
                })?;
            let missing = v.features.difference(host);
            if !missing.is_empty() {
                return Err(SelectError::VariantUnsupported {
                    kernel: self.name,
                    variant: v.name,
                    missing,
                });
            }
            return Ok(v);
        }
        let mut allowed = host;
        if let Some(l) = forced_level.filter(|s| !s.is_empty()) {
            let rank = level::ALL
                .iter()
                .position(|(n, _)| *n == l)
                .ok_or_else(|| SelectError::UnknownLevel(l.to_string()))?;
            let set = level::ALL[rank].1;
            let missing = set.difference(host);
            if !missing.is_empty() {
                return Err(SelectError::LevelUnsupported {
                    level: l.to_string(),
                    missing,
                });
            }
            // The variant named after the level, else the one named after
            // the highest lower level.
            let by_name = self
                .variants
                .iter()
                .filter_map(|v| {
                    let r = level::ALL.iter().position(|(n, _)| *n == v.name)?;
                    (r <= rank).then_some((r, v))
                })
                .max_by_key(|(r, _)| *r)
                .map(|(_, v)| v);
            if let Some(v) = by_name {
                let missing = v.features.difference(host);
                if !missing.is_empty() {
                    return Err(SelectError::VariantUnsupported {
                        kernel: self.name,
                        variant: v.name,
                        missing,
                    });
                }
                return Ok(v);
            }
            allowed = set;
        }
        self.variants
            .iter()
            .filter(|v| v.features.is_subset(allowed))
            .max_by_key(|v| (v.features.len(), v.width))
            .ok_or(SelectError::NoneRunnable {
                kernel: self.name,
                allowed,
            })
    }

    /// The variants this host can run, in declaration order.
    pub fn runnable(&self) -> impl Iterator<Item = &'static VariantMeta> {
        let host = FeatureSet::host();
        self.variants
            .iter()
            .filter(move |v| v.features.is_subset(host))
    }
}

/// The name of the per-kernel override variable: `MARG_KERNEL_` and the
/// kernel's name in upper case.
pub fn override_var(kernel: &str) -> String {
    format!("MARG_KERNEL_{}", kernel.to_ascii_uppercase())
}

/// A kernel entry point of function-pointer type `F`, selected lazily.
///
/// `F` must be an `unsafe extern "sysv64" fn(..)` type matching the kernel's
/// declared signature; `marg_asm!` is the only intended constructor.
pub struct Kernel<F: Copy + 'static> {
    meta: &'static KernelMeta,
    entry: AtomicPtr<u8>,
    _f: PhantomData<F>,
}

// SAFETY: the only interior state is an AtomicPtr to immutable, leaked,
// read+execute memory; `F` is a plain function pointer type.
unsafe impl<F: Copy + 'static> Sync for Kernel<F> {}

impl<F: Copy + 'static> Kernel<F> {
    /// Used by macro output only. `F` must be a function pointer type whose
    /// ABI and signature match the machine code in `meta`.
    #[doc(hidden)]
    pub const fn new(meta: &'static KernelMeta) -> Self {
        assert!(core::mem::size_of::<F>() == core::mem::size_of::<*const u8>());
        Kernel {
            meta,
            entry: AtomicPtr::new(core::ptr::null_mut()),
            _f: PhantomData,
        }
    }

    /// The kernel's metadata.
    pub const fn meta(&self) -> &'static KernelMeta {
        self.meta
    }

    /// The selected entry point; selects and places it on the first call.
    ///
    /// # Panics
    /// If selection fails (a forced variant the CPU lacks, say). Call
    /// [`Kernel::init`] at start-up to report that as an error instead.
    #[inline(always)]
    pub fn get(&self) -> F {
        let p = self.entry.load(Ordering::Acquire);
        if p.is_null() {
            return self.get_slow();
        }
        // SAFETY: `p` points at placed code of this kernel whose ABI is `F`
        // (the invariant of `Kernel::new`), and `F` is pointer-sized.
        unsafe { core::mem::transmute_copy::<*mut u8, F>(&p) }
    }

    #[cold]
    #[inline(never)]
    fn get_slow(&self) -> F {
        match self.init() {
            Ok(_) => self.get(),
            Err(e) => panic!("marg kernels: {e}"),
        }
    }

    /// Selects and places the variant now; returns which one was chosen.
    pub fn init(&self) -> Result<&'static VariantMeta, SelectError> {
        let v = self.meta.select()?;
        let p = place(v)?;
        // Racing initialisers place the same variant twice at worst; the
        // loser's copy stays mapped (a few hundred bytes, once).
        self.entry.store(p as *mut u8, Ordering::Release);
        Ok(v)
    }

    /// The variant that [`Kernel::get`] uses (selecting it if needed).
    pub fn selected(&self) -> Result<&'static VariantMeta, SelectError> {
        let p = self.entry.load(Ordering::Acquire);
        if p.is_null() {
            return self.init();
        }
        let placed = PLACED.lock().unwrap_or_else(|e| e.into_inner());
        placed
            .iter()
            .find(|(addr, _)| *addr == p as usize)
            .map(|(_, v)| *v)
            .ok_or(SelectError::Map("placed entry not found".into()))
    }

    /// An entry point for one named variant, for differential tests and
    /// benchmarks. Fails if the host cannot run it.
    pub fn variant(&self, name: &str) -> Result<F, SelectError> {
        let v = self
            .meta
            .variant(name)
            .ok_or_else(|| SelectError::UnknownVariant {
                kernel: self.meta.name,
                variant: name.to_string(),
            })?;
        self.variant_of(v)
    }

    /// Entry point for `v`, which must be one of this kernel's variants.
    pub fn variant_of(&self, v: &'static VariantMeta) -> Result<F, SelectError> {
        assert!(
            self.meta.variants.iter().any(|x| core::ptr::eq(x, v)),
            "variant {} does not belong to kernel {}",
            v.name,
            self.meta.name
        );
        let missing = v.features.difference(FeatureSet::host());
        if !missing.is_empty() {
            return Err(SelectError::VariantUnsupported {
                kernel: self.meta.name,
                variant: v.name,
                missing,
            });
        }
        let p = place(v)?;
        // SAFETY: as in `get`: placed code of this kernel, ABI `F`.
        Ok(unsafe { core::mem::transmute_copy::<*const u8, F>(&p) })
    }

    /// Every variant the host can run, with its entry point.
    pub fn runnable(&self) -> Vec<(&'static VariantMeta, F)> {
        self.meta
            .runnable()
            .filter_map(|v| self.variant_of(v).ok().map(|f| (v, f)))
            .collect()
    }
}

/// Placed variants: (entry address, variant). Each variant is placed at most
/// once per process and never unmapped, so entry points stay valid forever.
static PLACED: Mutex<Vec<(usize, &'static VariantMeta)>> = Mutex::new(Vec::new());

/// Copies `v`'s code into its own read+execute mapping (once per variant per
/// process) and returns the entry address.
pub fn place(v: &'static VariantMeta) -> Result<*const u8, SelectError> {
    let mut placed = PLACED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((addr, _)) = placed.iter().find(|(_, pv)| core::ptr::eq(*pv, v)) {
        return Ok(*addr as *const u8);
    }
    let p = map_executable(v.code)?;
    placed.push((p as usize, v));
    Ok(p)
}

/// Maps `code` read+execute at a fresh page-aligned address: the pages are
/// written while writable-not-executable, then flipped to read+execute.
fn map_executable(code: &[u8]) -> Result<*const u8, SelectError> {
    let page = 4096usize;
    let len = code.len().max(1).div_ceil(page) * page;
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(SelectError::Map(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: `p` is a fresh writable mapping of `len >= code.len()` bytes
    // that nothing else references; the source is a distinct static slice.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), p as *mut u8, code.len()) };
    // SAFETY: `p`/`len` is exactly the mapping created above.
    if unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
        let e = std::io::Error::last_os_error().to_string();
        // SAFETY: unmapping the mapping we own; nothing points into it yet.
        unsafe { libc::munmap(p, len) };
        return Err(SelectError::Map(e));
    }
    Ok(p as *const u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Feature;

    // `mov rax, rdi; add rax, rsi; ret` — hand-assembled so this test does
    // not depend on the encoder.
    static ADD_CODE: [u8; 7] = [0x48, 0x89, 0xf8, 0x48, 0x01, 0xf0, 0xc3];
    /// A variant of the hand-assembled `add` kernel.
    const fn add_variant(name: &'static str, features: FeatureSet, width: u32) -> VariantMeta {
        VariantMeta {
            name,
            features,
            width,
            code: &ADD_CODE,
            code_len: 7,
            listing: &[],
        }
    }

    static VARIANTS: [VariantMeta; 2] = [
        add_variant("baseline", level::BASELINE, 16),
        add_variant("avx512", level::AVX512, 64),
    ];
    static META: KernelMeta = KernelMeta {
        name: "add",
        signature: "",
        doc: "",
        secret: false,
        variants: &VARIANTS,
    };
    static ADD: Kernel<unsafe extern "sysv64" fn(u64, u64) -> u64> = Kernel::new(&META);

    #[test]
    fn placed_code_runs() {
        let f = ADD.variant("baseline").unwrap();
        // SAFETY: ADD_CODE implements exactly this signature.
        assert_eq!(unsafe { f(40, 2) }, 42);
    }

    static AES_VARIANTS: [VariantMeta; 3] = [
        add_variant(
            "baseline",
            level::BASELINE.with(Feature::Aes).with(Feature::Pclmulqdq),
            16,
        ),
        add_variant("avx2_vaes", level::AVX2_VAES, 32),
        add_variant("avx512", level::AVX512, 64),
    ];
    static AES_META: KernelMeta = KernelMeta {
        name: "aes",
        signature: "",
        doc: "",
        secret: true,
        variants: &AES_VARIANTS,
    };

    #[test]
    fn forced_level_picks_by_name() {
        let host = level::AVX512;
        let pick = |l| AES_META.select_with(host, Some(l), None).map(|v| v.name);
        assert_eq!(pick("baseline"), Ok("baseline"));
        assert_eq!(pick("avx2"), Ok("baseline"));
        assert_eq!(pick("avx2_vaes"), Ok("avx2_vaes"));
        assert_eq!(pick("avx512"), Ok("avx512"));
        // The named variant needs AES-NI, which the host lacks: an error,
        // not a silent fallback.
        assert!(matches!(
            AES_META.select_with(level::AVX2, Some("baseline"), None),
            Err(SelectError::VariantUnsupported { .. })
        ));
        assert_eq!(
            META.select_with(host, Some("avx2_vaes"), None)
                .map(|v| v.name),
            Ok("baseline")
        );
    }

    #[test]
    fn selection_rules() {
        let host = level::AVX2;
        assert_eq!(META.select_with(host, None, None).unwrap().name, "baseline");
        assert_eq!(
            META.select_with(level::AVX512, None, None).unwrap().name,
            "avx512"
        );
        assert_eq!(
            META.select_with(level::AVX512, Some("avx2"), None)
                .unwrap()
                .name,
            "baseline"
        );
        assert!(matches!(
            META.select_with(host, Some("avx512"), None),
            Err(SelectError::LevelUnsupported { .. })
        ));
        assert!(matches!(
            META.select_with(host, None, Some("avx512")),
            Err(SelectError::VariantUnsupported { .. })
        ));
        assert!(matches!(
            META.select_with(host, Some("nope"), None),
            Err(SelectError::UnknownLevel(_))
        ));
        assert!(matches!(
            META.select_with(FeatureSet::of(&[Feature::Sse2]), None, None),
            Err(SelectError::NoneRunnable { .. })
        ));
    }
}
