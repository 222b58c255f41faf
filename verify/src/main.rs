//! `marg-verify`: differential verification of Marg's kernels from the
//! command line.
//!
//! ```text
//! marg-verify list                         kernels, variants, and which run here
//! marg-verify fuzz KERNEL|all --seconds N  time-bounded differential fuzzing
//!                  [--seed S]              (reproduce a reported mismatch)
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};
use verify::{case_from_seed, check_all, mutate, partition, subject, subjects, SplitMix, Subject};

const USAGE: &str = "usage:
  marg-verify list
  marg-verify fuzz KERNEL|all [--seconds N] [--seed S]

fuzz runs every host-runnable variant of the kernel against its reference
implementation on random and mutated inputs placed against guard pages, for
N seconds (default 10). On a mismatch it prints the seed and case number
that reproduce it and exits 1.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            list();
            ExitCode::SUCCESS
        }
        Some("fuzz") => match parse_fuzz(&args[1..]) {
            Ok((targets, seconds, seed)) => fuzz(&targets, seconds, seed),
            Err(e) => {
                eprintln!("marg-verify: {e}\n\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn list() {
    for s in subjects() {
        let (run, skip) = partition(s.meta());
        let names = |v: &[&marg_gen::rt::VariantMeta]| {
            v.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
        };
        println!(
            "{:<22} runnable: [{}]  skipped (CPU lacks features): [{}]",
            s.name(),
            names(&run),
            names(&skip)
        );
    }
}

type FuzzArgs = (Vec<&'static dyn Subject>, u64, u64);

fn parse_fuzz(args: &[String]) -> Result<FuzzArgs, String> {
    let mut seconds = 10u64;
    let mut seed = None;
    let mut target = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a whole number")?
            }
            "--seed" => {
                seed = Some(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .ok_or("--seed needs a number")?,
                )
            }
            k if target.is_none() && !k.starts_with('-') => target = Some(k.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let target = target.ok_or("which kernel? (a name from `marg-verify list`, or all)")?;
    let targets = if target == "all" {
        subjects()
    } else {
        vec![subject(&target)
            .ok_or_else(|| format!("no kernel named {target:?}; see `marg-verify list`"))?]
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    Ok((targets, seconds, seed))
}

fn fuzz(targets: &[&'static dyn Subject], seconds: u64, seed: u64) -> ExitCode {
    let budget = Duration::from_secs(seconds) / targets.len().max(1) as u32;
    for s in targets {
        let (run, skip) = partition(s.meta());
        for v in &skip {
            println!(
                "{}: skipping variant {} (CPU lacks {})",
                s.name(),
                v.name,
                v.features
                    .difference(marg_gen::features::FeatureSet::host())
            );
        }
        if run.is_empty() {
            continue;
        }
        let start = Instant::now();
        let mut rng = SplitMix(seed);
        let mut cases = 0u64;
        let mut i = 0u64;
        while start.elapsed() < budget {
            let mut case = case_from_seed(*s, seed, i);
            // Each fresh case is checked as drawn and after a few mutations.
            for round in 0..8 {
                if round > 0 {
                    mutate(&mut case, &mut rng);
                }
                if let Err(e) = check_all(*s, &case) {
                    println!("MISMATCH in {}: {e}", s.name());
                    println!("reproduce: marg-verify fuzz {} --seed {seed}  (case {i}, mutation round {round})", s.name());
                    return ExitCode::FAILURE;
                }
                cases += 1;
            }
            i += 1;
        }
        println!(
            "{}: {cases} cases on [{}] in {:.1}s, no mismatch (seed {seed})",
            s.name(),
            run.iter().map(|v| v.name).collect::<Vec<_>>().join(", "),
            start.elapsed().as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}
