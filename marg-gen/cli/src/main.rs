//! `marg-gen`: list, disassemble, check and analyse Marg's kernels.
//!
//! Every command works on the bytes the `kernels` crate shipped
//! (`kernels::registry()`), whether or not this host can run them.

use clap::{Parser, Subcommand};
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, Instruction, IntelFormatter, OpKind,
};
use marg_gen::check::{self, Input};
use marg_gen::features::{level, Feature, FeatureSet};
use marg_gen::rt::{KernelMeta, VariantMeta};
use std::collections::BTreeSet;
use std::process::ExitCode;

mod examples;

#[derive(Parser)]
#[command(
    name = "marg-gen",
    version,
    about = "Inspect and check Marg's assembly kernels"
)]
struct Cli {
    /// Use the built-in example kernels instead of the `kernels` crate
    /// (for testing the tool itself).
    #[arg(long, global = true, hide = true)]
    examples: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every kernel and its variants; `*` marks what this host selects
    /// (honoring MARG_KERNELS and MARG_KERNEL_<NAME>).
    List,
    /// Disassemble a kernel: offsets, bytes, instructions, the source text
    /// and comments, labels, and the constant pool.
    Disasm {
        /// Kernel name (e.g. find_header_end).
        kernel: String,
        /// Only this variant (default: all).
        #[arg(long)]
        variant: Option<String>,
    },
    /// Run the static checks on every variant (or one kernel, or a raw blob).
    /// Exits non-zero on any violation.
    Check {
        /// Only this kernel.
        kernel: Option<String>,
        /// Check a raw binary blob instead of the registry.
        #[arg(long)]
        bytes: Option<std::path::PathBuf>,
        /// Declared level for --bytes: baseline, avx2, avx2_vaes, avx512.
        #[arg(long, default_value = "baseline")]
        level: String,
        /// Declared features for --bytes (comma separated; adds to --level).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Length of the code part of --bytes (the rest is data); default: all.
        #[arg(long)]
        code_len: Option<usize>,
        /// Apply the #[secret] rules to --bytes.
        #[arg(long)]
        secret: bool,
    },
    /// Run llvm-mca on a variant (or one loop of it).
    Mca {
        kernel: String,
        #[arg(long)]
        variant: Option<String>,
        /// Target CPU for llvm-mca (-mcpu), e.g. skylake, znver4, sapphirerapids.
        #[arg(long)]
        cpu: String,
        /// Analyse only the loop that starts at this label.
        #[arg(long = "loop")]
        loop_label: Option<String>,
        /// Print the generated assembly instead of running llvm-mca.
        #[arg(long)]
        emit: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let reg = if cli.examples {
        examples::REGISTRY
    } else {
        kernels::registry()
    };
    let r = match cli.cmd {
        Cmd::List => list(reg),
        Cmd::Disasm { kernel, variant } => disasm(reg, &kernel, variant.as_deref()),
        Cmd::Check {
            kernel,
            bytes,
            level,
            features,
            code_len,
            secret,
        } => match bytes {
            Some(path) => check_bytes(&path, &level, &features, code_len, secret),
            None => check_registry(reg, kernel.as_deref()),
        },
        Cmd::Mca {
            kernel,
            variant,
            cpu,
            loop_label,
            emit,
        } => mca(
            reg,
            &kernel,
            variant.as_deref(),
            &cpu,
            loop_label.as_deref(),
            emit,
        ),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("marg-gen: {e}");
            ExitCode::from(2)
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn find_kernel(reg: &[&'static KernelMeta], name: &str) -> Result<&'static KernelMeta> {
    reg.iter().copied().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = reg.iter().map(|k| k.name).collect();
        format!("no kernel `{name}`; kernels: {}", names.join(", "))
    })
}

fn variants<'a>(k: &'a KernelMeta, only: Option<&str>) -> Result<Vec<&'a VariantMeta>> {
    match only {
        None => Ok(k.variants.iter().collect()),
        Some(v) => k.variant(v).map(|x| vec![x]).ok_or_else(|| {
            let names: Vec<&str> = k.variants.iter().map(|v| v.name).collect();
            format!(
                "kernel `{}` has no variant `{v}`; variants: {}",
                k.name,
                names.join(", ")
            )
        }),
    }
}

fn list(reg: &[&'static KernelMeta]) -> Result<ExitCode> {
    let host = FeatureSet::host();
    for k in reg {
        println!("{}  {}", k.name, k.signature);
        if !k.doc.is_empty() {
            println!("    {}", k.doc);
        }
        let selected = k.select();
        for v in k.variants {
            let mark = match &selected {
                Ok(s) if std::ptr::eq(*s, v) => "*",
                _ => " ",
            };
            let runs = if v.features.is_subset(host) {
                ""
            } else {
                "  (not runnable here)"
            };
            println!(
                "  {mark} {:<12} width {:>2}  {:>5} bytes code + {:>4} data  [{}]{runs}",
                v.name,
                v.width,
                v.code_len,
                v.code.len() - v.code_len as usize,
                v.features
            );
        }
        if let Err(e) = selected {
            println!("    selection: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn formatter() -> IntelFormatter {
    let mut f = IntelFormatter::new();
    let o = f.options_mut();
    o.set_space_after_operand_separator(true);
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_uppercase_hex(false);
    o.set_branch_leading_zeros(false);
    o.set_leading_zeros(false);
    f
}

fn decode(v: &VariantMeta) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, &v.code[..v.code_len as usize], 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

fn disasm(reg: &[&'static KernelMeta], name: &str, only: Option<&str>) -> Result<ExitCode> {
    let k = find_kernel(reg, name)?;
    let mut f = formatter();
    println!("; {}  {}", k.name, k.signature);
    for v in variants(k, only)? {
        println!();
        println!(
            "; variant {} (width {}, {} bytes code, {} bytes data) [{}]",
            v.name,
            v.width,
            v.code_len,
            v.code.len() - v.code_len as usize,
            v.features
        );
        for ins in decode(v) {
            let off = ins.ip() as u32;
            for l in v.listing.iter().filter(|l| l.offset == off && l.len == 0) {
                println!("{}", l.text);
            }
            let src = v.listing.iter().find(|l| l.offset == off && l.len > 0);
            let bytes = &v.code[off as usize..off as usize + ins.len()];
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut text = String::new();
            f.format(&ins, &mut text);
            if ins.is_ip_rel_memory_operand() {
                let a = ins.ip_rel_memory_address() as u32;
                if let Some(d) = v
                    .listing
                    .iter()
                    .find(|l| l.offset >= v.code_len && a >= l.offset && a < l.offset + l.len)
                {
                    let name = d
                        .text
                        .trim_start_matches("data ")
                        .split(':')
                        .next()
                        .unwrap_or("");
                    text.push_str(&format!(" -> {name}+{}", a - d.offset));
                }
            }
            let mut line = format!("  {off:04x}  {hex:<24} {text:<40}");
            if let Some(s) = src {
                line.push_str(&format!(" ; {}", s.text));
                if !s.comment.is_empty() {
                    line.push_str(&format!("  // {}", s.comment));
                }
            }
            println!("{}", line.trim_end());
        }
        for l in v
            .listing
            .iter()
            .filter(|l| l.offset >= v.code_len && l.len > 0)
        {
            println!("{}", l.text);
            let data = &v.code[l.offset as usize..(l.offset + l.len) as usize];
            for (i, chunk) in data.chunks(16).enumerate() {
                let hex: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
                println!(
                    "  {:04x}  db {}",
                    l.offset as usize + i * 16,
                    hex.join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn boundaries(v: &VariantMeta) -> Vec<u32> {
    let set: BTreeSet<u32> = v
        .listing
        .iter()
        .filter(|l| l.len > 0 && l.offset < v.code_len)
        .map(|l| l.offset)
        .collect();
    set.into_iter().collect()
}

fn check_registry(reg: &[&'static KernelMeta], only: Option<&str>) -> Result<ExitCode> {
    let kernels: Vec<&KernelMeta> = match only {
        Some(n) => vec![find_kernel(reg, n)?],
        None => reg.to_vec(),
    };
    let (mut ok, mut bad) = (0, 0);
    for k in kernels {
        for v in k.variants {
            let b = boundaries(v);
            let public: Vec<u32> = v
                .listing
                .iter()
                .filter(|l| l.len > 0 && l.text.starts_with("public "))
                .map(|l| l.offset)
                .collect();
            let input = Input {
                bytes: v.code,
                code_len: v.code_len as usize,
                features: v.features,
                secret: k.secret,
                expected: None,
                boundaries: if v.listing.is_empty() { None } else { Some(&b) },
                public: &public,
            };
            let viol = check::check(&input);
            if viol.is_empty() {
                ok += 1;
                println!("ok    {}/{}", k.name, v.name);
            } else {
                bad += 1;
                println!("FAIL  {}/{}", k.name, v.name);
                for x in viol {
                    println!("      {x}");
                }
            }
        }
    }
    println!("{ok} variants pass, {bad} fail");
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_bytes(
    path: &std::path::Path,
    lvl: &str,
    features: &[String],
    code_len: Option<usize>,
    secret: bool,
) -> Result<ExitCode> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut set = level::by_name(lvl)
        .ok_or_else(|| format!("unknown level `{lvl}`; use baseline, avx2, avx2_vaes or avx512"))?;
    for f in features {
        set = set.with(Feature::from_name(f).ok_or_else(|| format!("unknown feature `{f}`"))?);
    }
    let code_len = code_len.unwrap_or(bytes.len()).min(bytes.len());
    let viol = check::check(&Input {
        secret,
        ..Input::new(&bytes, code_len, set)
    });
    for x in &viol {
        println!("{x}");
    }
    println!("{}: {} violation(s)", path.display(), viol.len());
    Ok(if viol.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn find_mca() -> Option<std::path::PathBuf> {
    for name in ["llvm-mca-19", "llvm-mca"] {
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let p = dir.join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    let p = std::path::PathBuf::from("/usr/lib/llvm-19/bin/llvm-mca");
    p.is_file().then_some(p)
}

/// The variant (or one loop) in GNU assembler Intel syntax.
fn gnu_asm(v: &VariantMeta, loop_label: Option<&str>) -> Result<String> {
    let instrs = decode(v);
    let (lo, hi) = match loop_label {
        None => (0u64, u64::MAX),
        Some(l) => {
            let want = format!("{l}:");
            let start = v
                .listing
                .iter()
                .find(|x| x.len == 0 && x.text == want)
                .ok_or_else(|| format!("variant `{}` has no label `{l}`", v.name))?
                .offset as u64;
            let end = instrs
                .iter()
                .filter(|i| {
                    i.flow_control() == FlowControl::ConditionalBranch
                        || i.flow_control() == FlowControl::UnconditionalBranch
                })
                .filter(|i| i.near_branch_target() == start)
                .map(|i| i.ip())
                .max()
                .ok_or_else(|| format!("no branch back to `{l}`: not a loop"))?;
            (start, end)
        }
    };
    let targets: BTreeSet<u64> = instrs
        .iter()
        .filter(|i| matches!(i.op0_kind(), OpKind::NearBranch64))
        .map(|i| i.near_branch_target())
        .collect();
    let mut f = formatter();
    f.options_mut()
        .set_memory_size_options(iced_x86::MemorySizeOptions::Always);
    f.options_mut().set_rip_relative_addresses(true);
    let mut s = String::from(".intel_syntax noprefix\n");
    if loop_label.is_some() {
        s.push_str("# LLVM-MCA-BEGIN loop\n");
    }
    for ins in instrs.iter().filter(|i| i.ip() >= lo && i.ip() <= hi) {
        if targets.contains(&ins.ip()) {
            s.push_str(&format!("L{:x}:\n", ins.ip()));
        }
        let mut t = String::new();
        if matches!(ins.op0_kind(), OpKind::NearBranch64) {
            t = format!(
                "{} L{:x}",
                ins.mnemonic().to_string_lower(),
                ins.near_branch_target()
            );
        } else {
            f.format(ins, &mut t);
        }
        s.push_str("    ");
        s.push_str(&t);
        s.push('\n');
    }
    if loop_label.is_some() {
        s.push_str("# LLVM-MCA-END\n");
    }
    // Branch targets outside the analysed range still need a definition.
    for t in targets.iter().filter(|t| **t < lo || **t > hi) {
        s.push_str(&format!("L{t:x}:\n"));
    }
    Ok(s)
}

trait Lower {
    fn to_string_lower(&self) -> String;
}
impl Lower for iced_x86::Mnemonic {
    fn to_string_lower(&self) -> String {
        format!("{self:?}").to_ascii_lowercase()
    }
}

fn mca(
    reg: &[&'static KernelMeta],
    name: &str,
    only: Option<&str>,
    cpu: &str,
    loop_label: Option<&str>,
    emit: bool,
) -> Result<ExitCode> {
    let k = find_kernel(reg, name)?;
    let vs = variants(k, only)?;
    let v = match (only, vs.as_slice()) {
        (Some(_), [v]) => *v,
        (None, _) => k.select().map_err(|e| format!("{e}; pass --variant"))?,
        _ => return Err("pick one variant with --variant".into()),
    };
    let asm = gnu_asm(v, loop_label)?;
    if emit {
        print!("{asm}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(tool) = find_mca() else {
        eprintln!("marg-gen: llvm-mca not found (looked for llvm-mca-19, llvm-mca on PATH and /usr/lib/llvm-19/bin/llvm-mca); install LLVM 19 or use --emit to get the assembly");
        return Ok(ExitCode::from(2));
    };
    let path = std::env::temp_dir().join(format!(
        "marg-mca-{}-{}-{}.s",
        k.name,
        v.name,
        std::process::id()
    ));
    std::fs::write(&path, asm).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let status = std::process::Command::new(&tool)
        .arg(format!("-mcpu={cpu}"))
        .arg("-mtriple=x86_64-unknown-linux-gnu")
        .arg(&path)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    let _ = std::fs::remove_file(&path);
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
