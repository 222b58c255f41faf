//! The CPU feature model shared by the compile-time checker, the run-time
//! selector and the CLI.
//!
//! A [`FeatureSet`] is a bit set of [`Feature`]s. Every kernel variant declares
//! one; the macro proves that each instruction of the variant needs only
//! features in it, and the selector runs a variant only on a CPU whose
//! detected set is a superset. The four named sets mirror the x86-64
//! micro-architecture levels that DESIGN.md §3 names.

use core::fmt;

/// One CPUID feature a kernel can depend on.
///
/// The list covers what x86-64-v2/v3/v4 and the crypto extensions imply; the
/// names are the ones `is_x86_feature_detected!` and `-C target-feature` use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Feature {
    Sse,
    Sse2,
    Sse3,
    Ssse3,
    Sse41,
    Sse42,
    Popcnt,
    Cmpxchg16b,
    Avx,
    Avx2,
    Bmi1,
    Bmi2,
    Lzcnt,
    Fma,
    F16c,
    Movbe,
    Aes,
    Pclmulqdq,
    Vaes,
    Vpclmulqdq,
    Gfni,
    Avx512f,
    Avx512bw,
    Avx512vl,
    Avx512dq,
    Avx512cd,
    Avx512vbmi,
    Avx512vbmi2,
    Avx512ifma,
    Adx,
    Sha,
}

impl Feature {
    /// Every feature, in declaration order.
    pub const ALL: [Feature; 31] = [
        Feature::Sse,
        Feature::Sse2,
        Feature::Sse3,
        Feature::Ssse3,
        Feature::Sse41,
        Feature::Sse42,
        Feature::Popcnt,
        Feature::Cmpxchg16b,
        Feature::Avx,
        Feature::Avx2,
        Feature::Bmi1,
        Feature::Bmi2,
        Feature::Lzcnt,
        Feature::Fma,
        Feature::F16c,
        Feature::Movbe,
        Feature::Aes,
        Feature::Pclmulqdq,
        Feature::Vaes,
        Feature::Vpclmulqdq,
        Feature::Gfni,
        Feature::Avx512f,
        Feature::Avx512bw,
        Feature::Avx512vl,
        Feature::Avx512dq,
        Feature::Avx512cd,
        Feature::Avx512vbmi,
        Feature::Avx512vbmi2,
        Feature::Avx512ifma,
        Feature::Adx,
        Feature::Sha,
    ];

    /// The name used by `is_x86_feature_detected!` and in the DSL.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::Sse => "sse",
            Feature::Sse2 => "sse2",
            Feature::Sse3 => "sse3",
            Feature::Ssse3 => "ssse3",
            Feature::Sse41 => "sse4.1",
            Feature::Sse42 => "sse4.2",
            Feature::Popcnt => "popcnt",
            Feature::Cmpxchg16b => "cmpxchg16b",
            Feature::Avx => "avx",
            Feature::Avx2 => "avx2",
            Feature::Bmi1 => "bmi1",
            Feature::Bmi2 => "bmi2",
            Feature::Lzcnt => "lzcnt",
            Feature::Fma => "fma",
            Feature::F16c => "f16c",
            Feature::Movbe => "movbe",
            Feature::Aes => "aes",
            Feature::Pclmulqdq => "pclmulqdq",
            Feature::Vaes => "vaes",
            Feature::Vpclmulqdq => "vpclmulqdq",
            Feature::Gfni => "gfni",
            Feature::Avx512f => "avx512f",
            Feature::Avx512bw => "avx512bw",
            Feature::Avx512vl => "avx512vl",
            Feature::Avx512dq => "avx512dq",
            Feature::Avx512cd => "avx512cd",
            Feature::Avx512vbmi => "avx512vbmi",
            Feature::Avx512vbmi2 => "avx512vbmi2",
            Feature::Avx512ifma => "avx512ifma",
            Feature::Adx => "adx",
            Feature::Sha => "sha",
        }
    }

    /// Parses a feature name as written in the DSL (`sse4_2` and `sse4.2`
    /// are both accepted).
    pub fn from_name(name: &str) -> Option<Feature> {
        let norm = name.replace('_', ".");
        Feature::ALL
            .iter()
            .copied()
            .find(|f| f.name() == norm || f.name().replace('.', "") == name.replace(['_', '.'], ""))
    }

    /// Whether the running CPU (and OS, for the vector state) supports it.
    pub fn detected(self) -> bool {
        match self {
            Feature::Sse => std::arch::is_x86_feature_detected!("sse"),
            Feature::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            Feature::Sse3 => std::arch::is_x86_feature_detected!("sse3"),
            Feature::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            Feature::Sse41 => std::arch::is_x86_feature_detected!("sse4.1"),
            Feature::Sse42 => std::arch::is_x86_feature_detected!("sse4.2"),
            Feature::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            Feature::Cmpxchg16b => std::arch::is_x86_feature_detected!("cmpxchg16b"),
            Feature::Avx => std::arch::is_x86_feature_detected!("avx"),
            Feature::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Feature::Bmi1 => std::arch::is_x86_feature_detected!("bmi1"),
            Feature::Bmi2 => std::arch::is_x86_feature_detected!("bmi2"),
            Feature::Lzcnt => std::arch::is_x86_feature_detected!("lzcnt"),
            Feature::Fma => std::arch::is_x86_feature_detected!("fma"),
            Feature::F16c => std::arch::is_x86_feature_detected!("f16c"),
            Feature::Movbe => std::arch::is_x86_feature_detected!("movbe"),
            Feature::Aes => std::arch::is_x86_feature_detected!("aes"),
            Feature::Pclmulqdq => std::arch::is_x86_feature_detected!("pclmulqdq"),
            Feature::Vaes => std::arch::is_x86_feature_detected!("vaes"),
            Feature::Vpclmulqdq => std::arch::is_x86_feature_detected!("vpclmulqdq"),
            Feature::Gfni => std::arch::is_x86_feature_detected!("gfni"),
            Feature::Avx512f => std::arch::is_x86_feature_detected!("avx512f"),
            Feature::Avx512bw => std::arch::is_x86_feature_detected!("avx512bw"),
            Feature::Avx512vl => std::arch::is_x86_feature_detected!("avx512vl"),
            Feature::Avx512dq => std::arch::is_x86_feature_detected!("avx512dq"),
            Feature::Avx512cd => std::arch::is_x86_feature_detected!("avx512cd"),
            Feature::Avx512vbmi => std::arch::is_x86_feature_detected!("avx512vbmi"),
            Feature::Avx512vbmi2 => std::arch::is_x86_feature_detected!("avx512vbmi2"),
            Feature::Avx512ifma => std::arch::is_x86_feature_detected!("avx512ifma"),
            Feature::Adx => std::arch::is_x86_feature_detected!("adx"),
            Feature::Sha => std::arch::is_x86_feature_detected!("sha"),
        }
    }
}

/// A set of [`Feature`]s (a 64-bit bit set; `const` so that macro output can
/// build sets in statics).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// The empty set.
    pub const EMPTY: FeatureSet = FeatureSet(0);

    /// Builds a set from a list (usable in `const` context).
    pub const fn of(features: &[Feature]) -> FeatureSet {
        let mut bits = 0u64;
        let mut i = 0;
        while i < features.len() {
            bits |= 1 << features[i] as u8;
            i += 1;
        }
        FeatureSet(bits)
    }

    /// The raw bits (bit `n` is `Feature` with discriminant `n`).
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Rebuilds a set from [`FeatureSet::bits`].
    pub const fn from_bits(bits: u64) -> FeatureSet {
        FeatureSet(bits)
    }

    /// This set plus `f`.
    pub const fn with(self, f: Feature) -> FeatureSet {
        FeatureSet(self.0 | 1 << f as u8)
    }

    /// Union.
    pub const fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }

    /// Intersection.
    pub const fn intersection(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & other.0)
    }

    /// Whether `f` is in the set.
    pub const fn contains(self, f: Feature) -> bool {
        self.0 & (1 << f as u8) != 0
    }

    /// Whether every feature of `self` is in `other`.
    pub const fn is_subset(self, other: FeatureSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The features of `self` missing from `other`.
    pub const fn difference(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of features in the set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The features, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// What the running CPU supports (cached after the first call).
    pub fn host() -> FeatureSet {
        static HOST: std::sync::OnceLock<FeatureSet> = std::sync::OnceLock::new();
        *HOST.get_or_init(|| {
            Feature::ALL
                .iter()
                .filter(|f| f.detected())
                .fold(FeatureSet::EMPTY, |s, f| s.with(*f))
        })
    }
}

impl fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Feature::name))
            .finish()
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for feat in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(feat.name())?;
        }
        Ok(())
    }
}

/// The named feature levels of DESIGN.md §3.
pub mod level {
    use super::{Feature::*, FeatureSet};

    /// `baseline`: x86-64-v2 (SSE4.2, POPCNT, CMPXCHG16B).
    pub const BASELINE: FeatureSet =
        FeatureSet::of(&[Sse, Sse2, Sse3, Ssse3, Sse41, Sse42, Popcnt, Cmpxchg16b]);

    /// `avx2`: x86-64-v3 (adds AVX, AVX2, BMI1/2, LZCNT, FMA, F16C, MOVBE).
    pub const AVX2: FeatureSet = BASELINE.union(FeatureSet::of(&[
        Avx, Avx2, Bmi1, Bmi2, Lzcnt, Fma, F16c, Movbe,
    ]));

    /// `avx2_vaes`: x86-64-v3 plus AES-NI, PCLMULQDQ, VAES and VPCLMULQDQ.
    pub const AVX2_VAES: FeatureSet =
        AVX2.union(FeatureSet::of(&[Aes, Pclmulqdq, Vaes, Vpclmulqdq]));

    /// `avx512`: x86-64-v4 (AVX-512 F/BW/VL/DQ/CD) plus VBMI, VBMI2, IFMA,
    /// and the vector crypto extensions VAES, VPCLMULQDQ, GFNI.
    pub const AVX512: FeatureSet = AVX2_VAES.union(FeatureSet::of(&[
        Avx512f,
        Avx512bw,
        Avx512vl,
        Avx512dq,
        Avx512cd,
        Avx512vbmi,
        Avx512vbmi2,
        Avx512ifma,
        Gfni,
    ]));

    /// The levels in ascending order, with their names.
    pub const ALL: [(&str, FeatureSet); 4] = [
        ("baseline", BASELINE),
        ("avx2", AVX2),
        ("avx2_vaes", AVX2_VAES),
        ("avx512", AVX512),
    ];

    /// Looks a level up by name.
    pub fn by_name(name: &str) -> Option<FeatureSet> {
        ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_nested() {
        for w in level::ALL.windows(2) {
            assert!(w[0].1.is_subset(w[1].1), "{} ⊄ {}", w[0].0, w[1].0);
            assert_ne!(w[0].1, w[1].1);
        }
    }

    #[test]
    fn names_round_trip() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(f));
        }
        assert_eq!(Feature::from_name("sse4_2"), Some(Feature::Sse42));
        assert_eq!(Feature::from_name("avx9"), None);
    }

    #[test]
    fn host_has_sse2() {
        assert!(FeatureSet::host().contains(Feature::Sse2));
    }
}
