//! Drives the real `marg-gen` binary on the built-in example kernels and on
//! hand-made blobs.

use std::process::Command;

fn marg_gen(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_marg-gen"))
        .args(args)
        .output()
        .expect("run marg-gen");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn blob(name: &str, bytes: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!("marg-gen-test-{}-{name}.bin", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn list_marks_a_selected_variant() {
    let (rc, out) = marg_gen(&["--examples", "list"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("count_newlines"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("* ")),
        "{out}"
    );
    let (rc, out) = Command::new(env!("CARGO_BIN_EXE_marg-gen"))
        .args(["--examples", "list"])
        .env("MARG_KERNELS", "baseline")
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).to_string(),
            )
        })
        .unwrap();
    assert_eq!(rc, 0);
    assert!(out.contains("* baseline"), "{out}");
}

#[test]
fn disasm_shows_source_labels_and_data() {
    let (rc, out) = marg_gen(&[
        "--examples",
        "disasm",
        "count_newlines",
        "--variant",
        "avx2",
    ]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("top:"), "{out}");
    assert!(out.contains("vpcmpeqb ymm1, ymm0, [rdi+rcx]"), "{out}");
    assert!(out.contains("; vpcmpeqb v1, nl, [ptr + idx]"), "{out}");
    assert!(out.contains("// add this block's matches"), "{out}");
    assert!(out.contains("data NEWLINES"), "{out}");
    assert!(out.contains("-> NEWLINES+0"), "{out}");
    let (rc, out) = marg_gen(&["--examples", "disasm", "nope"]);
    assert_eq!(rc, 2);
    assert!(out.contains("no kernel `nope`"), "{out}");
}

#[test]
fn check_passes_registry_and_fails_bad_blobs() {
    let (rc, out) = marg_gen(&["--examples", "check"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("4 variants pass, 0 fail"), "{out}");

    // mov rbx, 1; ret: clobbers a callee-saved register.
    let bad = blob("rbx", &[0x48, 0xc7, 0xc3, 1, 0, 0, 0, 0xc3]);
    let (rc, out) = marg_gen(&["check", "--bytes", &bad, "--level", "avx2"]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("[callee-saved]") && out.contains("rbx not restored"),
        "{out}"
    );

    // vpxor ymm0, ymm0, ymm0; ret: needs vzeroupper, and AVX2 when baseline.
    let ymm = blob("ymm", &[0xc5, 0xfd, 0xef, 0xc0, 0xc3]);
    let (rc, out) = marg_gen(&["check", "--bytes", &ymm, "--level", "baseline"]);
    assert_eq!(rc, 1);
    assert!(
        out.contains("[vzeroupper]") && out.contains("[features]"),
        "{out}"
    );

    // push rbx; mov rbx, 1; pop rbx; ret is clean.
    let good = blob("good", &[0x53, 0x48, 0xc7, 0xc3, 1, 0, 0, 0, 0x5b, 0xc3]);
    let (rc, out) = marg_gen(&["check", "--bytes", &good, "--features", "bmi2"]);
    assert_eq!(rc, 0, "{out}");
    for p in [bad, ymm, good] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn mca_emits_gnu_intel_syntax() {
    let (rc, out) = marg_gen(&[
        "--examples",
        "mca",
        "count_newlines",
        "--variant",
        "avx2",
        "--cpu",
        "skylake",
        "--loop",
        "top",
        "--emit",
    ]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.starts_with(".intel_syntax noprefix"), "{out}");
    assert!(out.contains("jb L"), "{out}");
    assert!(!out.contains("xor rax"), "only the loop: {out}");
}
