//! Differential proptest: every host-runnable variant of every kernel
//! against its reference, with inputs against guard pages on both sides.

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use verify::guard::Placement;
use verify::{partition, subjects};

fn cases() -> u32 {
    std::env::var("MARG_VERIFY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400)
}

#[test]
fn every_variant_matches_its_reference() {
    verify::guard::install_fault_reporter();
    let mut skipped = Vec::new();
    for s in subjects() {
        let (run, skip) = partition(s.meta());
        assert!(
            !run.is_empty(),
            "{}: no variant runs on this host",
            s.name()
        );
        skipped.extend(skip.iter().map(|v| format!("{}/{}", s.name(), v.name)));
        for v in run {
            let mut runner = TestRunner::new(Config {
                cases: cases(),
                ..Config::default()
            });
            runner
                .run(&s.strategy(), |case| {
                    for p in Placement::ALL {
                        verify::guard::set_current(s.name(), v.name, p, case.a.len());
                        s.check(v, &case, p).map_err(TestCaseError::fail)?;
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{} variant {}: {e}", s.name(), v.name));
        }
    }
    if !skipped.is_empty() {
        eprintln!("skipped for lack of CPU features: {}", skipped.join(", "));
    }
}
