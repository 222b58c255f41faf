//! The instruction matcher: from a parsed Intel-syntax instruction (mnemonic
//! and operands) to one iced-x86 [`Instruction`] with a concrete [`Code`].
//!
//! The table of forms is built once from `Code::values()` and each form's
//! [`OpCodeInfo`]: every 64-bit-mode form of a mnemonic is a candidate, a
//! candidate matches when each of its operand kinds accepts the written
//! operand (register class, memory with its optional size, immediate range,
//! label), and among the matches legacy/VEX forms win over EVEX (EVEX is
//! chosen only when the operands need it: zmm, k registers, registers 16-31,
//! masks, broadcast), then the shortest encoding.

use crate::features::{Feature, FeatureSet};
use iced_x86::{
    Code, CpuidFeature, EncodingKind, Instruction, MemorySize, Mnemonic, OpCodeInfo,
    OpCodeOperandKind as K, OpKind, Register,
};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A written operand after generation-time evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A register.
    Reg(Register),
    /// A memory operand.
    Mem(Mem),
    /// An immediate.
    Imm(i64),
    /// A branch target: a label of the kernel.
    Label(String),
}

/// A memory operand `[base + index*scale + disp]`, optionally relative to a
/// constant-pool symbol (then `base` is `RIP` and the symbol's address is
/// added to `disp` when the pool is laid out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mem {
    /// Written size in bytes (`dword ptr` = 4), if any.
    pub size: Option<u32>,
    pub base: Register,
    pub index: Register,
    pub scale: u32,
    pub disp: i64,
    /// Constant-pool symbol the address is relative to.
    pub sym: Option<String>,
}

/// A parsed instruction, ready to be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Lower-case mnemonic as written.
    pub mnemonic: String,
    pub ops: Vec<Operand>,
    /// `{kN}` opmask.
    pub mask: Register,
    /// `{z}` zeroing-masking.
    pub zeroing: bool,
    /// `{1toN}` broadcast.
    pub broadcast: bool,
    /// `lock` / `rep` / `repne` prefixes written before the mnemonic.
    pub lock: bool,
    pub rep: bool,
    pub repne: bool,
}

impl Parsed {
    /// An instruction with just a mnemonic and operands.
    pub fn new(mnemonic: &str, ops: Vec<Operand>) -> Parsed {
        Parsed {
            mnemonic: mnemonic.to_ascii_lowercase(),
            ops,
            mask: Register::None,
            zeroing: false,
            broadcast: false,
            lock: false,
            rep: false,
            repne: false,
        }
    }
}

/// Why an instruction could not be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// No instruction has this mnemonic.
    UnknownMnemonic(String),
    /// The mnemonic exists but no form takes these operands.
    NoForm {
        mnemonic: String,
        written: String,
        forms: Vec<String>,
    },
    /// Several forms differ only in the memory operand's size.
    AmbiguousSize {
        mnemonic: String,
        sizes: Vec<&'static str>,
    },
    /// A memory operand is malformed (bad scale, two bases, ...).
    BadOperand(String),
}

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchError::UnknownMnemonic(m) => write!(f, "unknown mnemonic `{m}`"),
            MatchError::NoForm {
                mnemonic,
                written,
                forms,
            } => write!(
                f,
                "{mnemonic} has no form ({written}); forms: {}",
                if forms.is_empty() {
                    "none in 64-bit mode".to_string()
                } else {
                    forms.join(" | ")
                }
            ),
            MatchError::AmbiguousSize { mnemonic, sizes } => write!(
                f,
                "{mnemonic}: the memory operand's size is ambiguous; write one of {} ptr",
                sizes.join("/")
            ),
            MatchError::BadOperand(s) => f.write_str(s),
        }
    }
}

/// Intel-syntax spellings that iced names differently (`jz` is `je`).
fn canonical_mnemonic(m: &str) -> String {
    const CC: [(&str, &str); 16] = [
        ("z", "e"),
        ("nz", "ne"),
        ("c", "b"),
        ("nc", "ae"),
        ("nae", "b"),
        ("nb", "ae"),
        ("na", "be"),
        ("nbe", "a"),
        ("pe", "p"),
        ("po", "np"),
        ("ng", "le"),
        ("nle", "g"),
        ("nl", "ge"),
        ("nge", "l"),
        ("sal", "shl"),
        ("", ""),
    ];
    if m == "sal" {
        return "shl".into();
    }
    for prefix in ["j", "cmov", "set"] {
        if let Some(cc) = m.strip_prefix(prefix) {
            if let Some((_, to)) = CC.iter().find(|(from, _)| !from.is_empty() && *from == cc) {
                return format!("{prefix}{to}");
            }
        }
    }
    m.to_string()
}

/// Mnemonic (lower case) -> its 64-bit-mode forms.
fn table() -> &'static HashMap<String, Vec<Code>> {
    static TABLE: OnceLock<HashMap<String, Vec<Code>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: HashMap<String, Vec<Code>> = HashMap::new();
        for code in Code::values() {
            let oc = code.op_code();
            if !oc.is_instruction() || !oc.mode64() || oc.encoding() == EncodingKind::MVEX {
                continue;
            }
            if oc.encoding() == EncodingKind::D3NOW || oc.encoding() == EncodingKind::XOP {
                continue;
            }
            t.entry(mnemonic_name(code.mnemonic()))
                .or_default()
                .push(code);
        }
        t
    })
}

/// The lower-case Intel name of a mnemonic.
pub fn mnemonic_name(m: Mnemonic) -> String {
    format!("{m:?}").to_ascii_lowercase()
}

/// Register name (lower case, Intel syntax) -> register.
pub fn register_by_name(name: &str) -> Option<Register> {
    static REGS: OnceLock<HashMap<String, Register>> = OnceLock::new();
    let regs = REGS.get_or_init(|| {
        let mut m = HashMap::new();
        for r in Register::values() {
            if r == Register::None || r.is_dr() || r.is_cr() || r.is_tr() || r.is_bnd() {
                continue;
            }
            m.insert(format!("{r:?}").to_ascii_lowercase(), r);
        }
        // Intel spells the low bytes of r8-r15 `r8b`; iced says `r8l`.
        for i in 8..16 {
            if let Some(&r) = m.get(&format!("r{i}l")) {
                m.insert(format!("r{i}b"), r);
            }
        }
        for (i, n) in ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"]
            .iter()
            .enumerate()
        {
            let r = m[*n];
            m.insert(format!("r{i}"), r);
        }
        m
    });
    regs.get(name).copied()
}

/// The Intel name of a register.
pub fn register_name(r: Register) -> String {
    format!("{r:?}").to_ascii_lowercase()
}

/// Names of a memory-size keyword (`dword` -> 4).
pub fn size_keyword(word: &str) -> Option<u32> {
    Some(match word {
        "byte" => 1,
        "word" => 2,
        "dword" => 4,
        "qword" => 8,
        "tbyte" | "tword" => 10,
        "xmmword" | "oword" => 16,
        "ymmword" => 32,
        "zmmword" => 64,
        _ => return None,
    })
}

fn size_name(n: u32) -> &'static str {
    match n {
        1 => "byte",
        2 => "word",
        4 => "dword",
        8 => "qword",
        10 => "tbyte",
        16 => "xmmword",
        32 => "ymmword",
        64 => "zmmword",
        _ => "?",
    }
}

fn is_gpr(r: Register, bits: u32) -> bool {
    match bits {
        8 => r.is_gpr8(),
        16 => r.is_gpr16(),
        32 => r.is_gpr32(),
        _ => r.is_gpr64(),
    }
}

/// How an operand kind of a form accepts a written operand; `Some(kind)`
/// gives the iced [`OpKind`] to store.
fn accepts(k: K, op: &Operand) -> Option<OpKind> {
    match op {
        Operand::Reg(r) => {
            let r = *r;
            let ok = match k {
                K::r8_or_mem | K::r8_reg | K::r8_opcode => is_gpr(r, 8),
                K::r16_or_mem | K::r16_reg | K::r16_reg_mem | K::r16_rm | K::r16_opcode => {
                    is_gpr(r, 16)
                }
                K::r32_or_mem
                | K::r32_or_mem_mpx
                | K::r32_reg
                | K::r32_reg_mem
                | K::r32_rm
                | K::r32_opcode
                | K::r32_vvvv => is_gpr(r, 32),
                K::r64_or_mem
                | K::r64_or_mem_mpx
                | K::r64_reg
                | K::r64_reg_mem
                | K::r64_rm
                | K::r64_opcode
                | K::r64_vvvv => is_gpr(r, 64),
                K::mm_or_mem | K::mm_reg | K::mm_rm => r.is_mm(),
                K::xmm_or_mem | K::xmm_reg | K::xmm_rm | K::xmm_vvvv | K::xmmp3_vvvv => r.is_xmm(),
                K::xmm_is4 | K::xmm_is5 => r.is_xmm() && r.number() < 16,
                K::ymm_or_mem | K::ymm_reg | K::ymm_rm | K::ymm_vvvv => r.is_ymm(),
                K::ymm_is4 | K::ymm_is5 => r.is_ymm() && r.number() < 16,
                K::zmm_or_mem | K::zmm_reg | K::zmm_rm | K::zmm_vvvv | K::zmmp3_vvvv => r.is_zmm(),
                K::k_or_mem | K::k_reg | K::kp1_reg | K::k_rm | K::k_vvvv => r.is_k(),
                K::seg_reg => r.is_segment_register(),
                K::al => r == Register::AL,
                K::cl => r == Register::CL,
                K::ax => r == Register::AX,
                K::dx => r == Register::DX,
                K::eax => r == Register::EAX,
                K::rax => r == Register::RAX,
                _ => false,
            };
            ok.then_some(OpKind::Register)
        }
        Operand::Mem(m) => {
            let ok = match k {
                K::mem
                | K::r8_or_mem
                | K::r16_or_mem
                | K::r32_or_mem
                | K::r64_or_mem
                | K::mm_or_mem
                | K::xmm_or_mem
                | K::ymm_or_mem
                | K::zmm_or_mem
                | K::k_or_mem => !m.index.is_vector_register(),
                K::mem_vsib32x | K::mem_vsib64x => m.index.is_xmm(),
                K::mem_vsib32y | K::mem_vsib64y => m.index.is_ymm(),
                K::mem_vsib32z | K::mem_vsib64z => m.index.is_zmm(),
                _ => false,
            };
            ok.then_some(OpKind::Memory)
        }
        Operand::Imm(v) => {
            let v = *v;
            let i8r = (-128..=127).contains(&v);
            match k {
                K::imm8 if (-128..=255).contains(&v) => Some(OpKind::Immediate8),
                K::imm8_const_1 if v == 1 => Some(OpKind::Immediate8),
                K::imm8sex16 if i8r => Some(OpKind::Immediate8to16),
                K::imm8sex32 if i8r => Some(OpKind::Immediate8to32),
                K::imm8sex64 if i8r => Some(OpKind::Immediate8to64),
                K::imm16 if (-32768..=65535).contains(&v) => Some(OpKind::Immediate16),
                K::imm32 if (i32::MIN as i64..=u32::MAX as i64).contains(&v) => {
                    Some(OpKind::Immediate32)
                }
                K::imm32sex64 if (i32::MIN as i64..=i32::MAX as i64).contains(&v) => {
                    Some(OpKind::Immediate32to64)
                }
                K::imm64 => Some(OpKind::Immediate64),
                _ => None,
            }
        }
        Operand::Label(_) => match k {
            K::br64_4 | K::br64_1 => Some(OpKind::NearBranch64),
            _ => None,
        },
    }
}

/// Short human name of an operand kind, for "forms:" lists.
fn kind_name(k: K) -> &'static str {
    match k {
        K::r8_or_mem => "r/m8",
        K::r16_or_mem => "r/m16",
        K::r32_or_mem | K::r32_or_mem_mpx => "r/m32",
        K::r64_or_mem | K::r64_or_mem_mpx => "r/m64",
        K::r8_reg | K::r8_opcode => "r8",
        K::r16_reg | K::r16_reg_mem | K::r16_rm | K::r16_opcode => "r16",
        K::r32_reg | K::r32_reg_mem | K::r32_rm | K::r32_opcode | K::r32_vvvv => "r32",
        K::r64_reg | K::r64_reg_mem | K::r64_rm | K::r64_opcode | K::r64_vvvv => "r64",
        K::mm_or_mem => "mm/m64",
        K::mm_reg | K::mm_rm => "mm",
        K::xmm_or_mem => "xmm/m128",
        K::xmm_reg | K::xmm_rm | K::xmm_vvvv | K::xmmp3_vvvv | K::xmm_is4 | K::xmm_is5 => "xmm",
        K::ymm_or_mem => "ymm/m256",
        K::ymm_reg | K::ymm_rm | K::ymm_vvvv | K::ymm_is4 | K::ymm_is5 => "ymm",
        K::zmm_or_mem => "zmm/m512",
        K::zmm_reg | K::zmm_rm | K::zmm_vvvv | K::zmmp3_vvvv => "zmm",
        K::k_or_mem => "k/m",
        K::k_reg | K::kp1_reg | K::k_rm | K::k_vvvv => "k",
        K::mem => "m",
        K::mem_vsib32x | K::mem_vsib64x => "vm(xmm)",
        K::mem_vsib32y | K::mem_vsib64y => "vm(ymm)",
        K::mem_vsib32z | K::mem_vsib64z => "vm(zmm)",
        K::al => "al",
        K::cl => "cl",
        K::ax => "ax",
        K::dx => "dx",
        K::eax => "eax",
        K::rax => "rax",
        K::imm8 | K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => "imm8",
        K::imm8_const_1 => "1",
        K::imm16 => "imm16",
        K::imm32 | K::imm32sex64 => "imm32",
        K::imm64 => "imm64",
        K::br64_1 | K::br64_4 => "label",
        K::seg_reg => "sreg",
        _ => "other",
    }
}

/// How a written operand is described in "has no form (...)".
pub fn operand_class(op: &Operand) -> String {
    match op {
        Operand::Reg(r) => {
            let r = *r;
            if r.is_gpr() {
                format!("gpr{}", r.size() * 8)
            } else if r.is_xmm() {
                "xmm".into()
            } else if r.is_ymm() {
                "ymm".into()
            } else if r.is_zmm() {
                "zmm".into()
            } else if r.is_k() {
                "k".into()
            } else {
                register_name(r)
            }
        }
        Operand::Mem(m) => match m.size {
            Some(s) => format!("m{}", s * 8),
            None => "m".into(),
        },
        Operand::Imm(_) => "imm".into(),
        Operand::Label(_) => "label".into(),
    }
}

fn form_string(oc: &OpCodeInfo) -> String {
    let kinds: Vec<&str> = (0..oc.op_count())
        .map(|i| kind_name(oc.op_kind(i)))
        .collect();
    let mut s = kinds.join(", ");
    if oc.encoding() == EncodingKind::EVEX {
        s.push_str(" (evex)");
    }
    s
}

/// Builds the iced instruction for `code` from `p` if every operand fits.
fn build(code: Code, p: &Parsed) -> Option<Instruction> {
    let oc = code.op_code();
    if oc.op_count() as usize != p.ops.len() {
        return None;
    }
    let evex = oc.encoding() == EncodingKind::EVEX;
    if (p.mask != Register::None && !oc.can_use_op_mask_register())
        || (p.zeroing && !oc.can_use_zeroing_masking())
        || (p.broadcast && !oc.can_broadcast())
        || (oc.require_op_mask_register() && p.mask == Register::None)
        || (p.lock && !oc.can_use_lock_prefix())
        || (p.rep && !oc.can_use_rep_prefix())
        || (p.repne && !oc.can_use_repne_prefix())
    {
        return None;
    }
    let mut ins = Instruction::default();
    ins.set_code(code);
    for (i, op) in p.ops.iter().enumerate() {
        let i = i as u32;
        let kind = accepts(oc.op_kind(i), op)?;
        ins.set_op_kind(i, kind);
        match op {
            Operand::Reg(r) => {
                // Registers 16-31 exist only in EVEX encodings.
                if !evex && (r.is_xmm() || r.is_ymm() || r.is_zmm()) && r.number() >= 16 {
                    return None;
                }
                ins.set_op_register(i, *r);
            }
            Operand::Mem(m) => {
                ins.set_memory_base(m.base);
                ins.set_memory_index(m.index);
                ins.set_memory_index_scale(m.scale);
                if m.base == Register::RIP {
                    ins.set_memory_displ_size(8);
                    ins.set_memory_displacement64(m.disp as u64);
                } else {
                    let d = m.disp;
                    if !(i32::MIN as i64..=i32::MAX as i64).contains(&d) {
                        return None;
                    }
                    // iced wants 1 for a disp8 and the address size (8)
                    // for a disp32 with 64-bit addressing.
                    let size = if d == 0 && m.base != Register::None {
                        0
                    } else if (-128..=127).contains(&d) && m.base != Register::None {
                        1
                    } else {
                        8
                    };
                    ins.set_memory_displ_size(size);
                    ins.set_memory_displacement64(d as u64);
                }
                ins.set_is_broadcast(p.broadcast);
                if !evex && (m.index.is_vector_register() && m.index.number() >= 16) {
                    return None;
                }
            }
            Operand::Imm(v) => {
                ins.try_set_immediate_i64(i, *v).ok()?;
            }
            Operand::Label(_) => {}
        }
    }
    ins.set_op_mask(p.mask);
    ins.set_zeroing_masking(p.zeroing);
    if p.lock {
        ins.set_has_lock_prefix(true);
    }
    if p.rep {
        ins.set_has_rep_prefix(true);
    }
    if p.repne {
        ins.set_has_repne_prefix(true);
    }
    // Memory size annotations must agree with the form.
    if let Some(Operand::Mem(m)) = p.ops.iter().find(|o| matches!(o, Operand::Mem(_))) {
        if let Some(want) = m.size {
            let ms = ins.memory_size();
            if ms != MemorySize::Unknown {
                let have = if p.broadcast {
                    ms.element_size()
                } else {
                    ms.size()
                };
                if have as u32 != want {
                    return None;
                }
            }
        }
    }
    Some(ins)
}

fn encoded_len(ins: &Instruction) -> usize {
    let mut e = iced_x86::Encoder::new(64);
    e.encode(ins, 0x1000).unwrap_or(usize::MAX)
}

/// Matches `p` to one instruction form and builds it. Branch targets are
/// left for the caller (`Operand::Label` operands get op kind
/// `NearBranch64`).
pub fn assemble(p: &Parsed) -> Result<Instruction, MatchError> {
    if p.ops.is_empty() {
        if let Some(ins) = string_instruction(p) {
            return Ok(ins);
        }
    }
    let name = canonical_mnemonic(&p.mnemonic);
    let Some(codes) = table().get(&name) else {
        return Err(MatchError::UnknownMnemonic(p.mnemonic.clone()));
    };
    let mut matches: Vec<(u32, usize, Instruction)> = Vec::new();
    for &code in codes {
        if let Some(ins) = build(code, p) {
            let oc = code.op_code();
            let evex = u32::from(oc.encoding() == EncodingKind::EVEX);
            let short_branch = (0..oc.op_count()).any(|i| oc.op_kind(i) == K::br64_1) as u32;
            let len = if (0..oc.op_count()).any(|i| matches!(oc.op_kind(i), K::br64_4 | K::br64_1))
            {
                0
            } else {
                encoded_len(&ins)
            };
            if len == usize::MAX {
                continue;
            }
            matches.push((evex * 2 + short_branch, len, ins));
        }
    }
    if matches.is_empty() {
        let mut forms: Vec<String> = Vec::new();
        for &code in codes {
            let f = form_string(code.op_code());
            if !forms.contains(&f) {
                forms.push(f);
            }
        }
        let written: Vec<String> = p.ops.iter().map(operand_class).collect();
        return Err(MatchError::NoForm {
            mnemonic: name,
            written: written.join(", "),
            forms,
        });
    }
    // Without a size keyword, forms that differ only in memory size are
    // ambiguous (`add [rdi], 1`).
    let mem = p
        .ops
        .iter()
        .any(|o| matches!(o, Operand::Mem(m) if m.size.is_none()));
    if mem && !p.broadcast {
        let mut sizes: Vec<usize> = matches
            .iter()
            .map(|m| m.2.memory_size())
            .filter(|s| *s != MemorySize::Unknown)
            .map(|s| s.size())
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.len() > 1 {
            return Err(MatchError::AmbiguousSize {
                mnemonic: name,
                sizes: sizes.iter().map(|&s| size_name(s as u32)).collect(),
            });
        }
    }
    matches.sort_by_key(|m| (m.0, m.1));
    Ok(matches.swap_remove(0).2)
}

/// `movsb`, `rep stosq`, `repne scasb`, ...: string instructions written
/// without operands (their operands are implicit in Intel syntax).
fn string_instruction(p: &Parsed) -> Option<Instruction> {
    use iced_x86::RepPrefixKind as R;
    let rep = if p.repne {
        R::Repne
    } else if p.rep {
        R::Repe
    } else {
        R::None
    };
    let n = Register::None;
    let r = match p.mnemonic.as_str() {
        "movsb" => Instruction::with_movsb(64, n, rep),
        "movsw" => Instruction::with_movsw(64, n, rep),
        "movsd" => Instruction::with_movsd(64, n, rep),
        "movsq" => Instruction::with_movsq(64, n, rep),
        "stosb" => Instruction::with_stosb(64, rep),
        "stosw" => Instruction::with_stosw(64, rep),
        "stosd" => Instruction::with_stosd(64, rep),
        "stosq" => Instruction::with_stosq(64, rep),
        "lodsb" => Instruction::with_lodsb(64, n, rep),
        "lodsw" => Instruction::with_lodsw(64, n, rep),
        "lodsd" => Instruction::with_lodsd(64, n, rep),
        "lodsq" => Instruction::with_lodsq(64, n, rep),
        "scasb" => Instruction::with_scasb(64, rep),
        "scasw" => Instruction::with_scasw(64, rep),
        "scasd" => Instruction::with_scasd(64, rep),
        "scasq" => Instruction::with_scasq(64, rep),
        "cmpsb" => Instruction::with_cmpsb(64, n, rep),
        "cmpsw" => Instruction::with_cmpsw(64, n, rep),
        "cmpsd" => Instruction::with_cmpsd(64, n, rep),
        "cmpsq" => Instruction::with_cmpsq(64, n, rep),
        _ => return None,
    };
    r.ok()
}

/// Every mnemonic the matcher knows (for tests and suggestions).
pub fn knows_mnemonic(m: &str) -> bool {
    table().contains_key(&canonical_mnemonic(m))
}

/// Features every x86-64 CPU has; they need no declaration.
fn implied(f: CpuidFeature) -> bool {
    use CpuidFeature as C;
    matches!(
        f,
        C::INTEL8086
            | C::INTEL186
            | C::INTEL286
            | C::INTEL386
            | C::INTEL486
            | C::X64
            | C::CMOV
            | C::SSE
            | C::SSE2
            | C::MULTIBYTENOP
            | C::CPUID
            | C::PAUSE
            | C::CLFSH
            | C::CX8
            | C::FXSR
            | C::TSC
            | C::FPU
            | C::FPU287
            | C::FPU387
            | C::MMX
    )
}

/// The marg feature for an iced CPUID feature; `Ok(None)` for features every
/// x86-64 CPU has; `Err` for features marg does not model.
pub fn map_feature(f: CpuidFeature) -> Result<Option<Feature>, CpuidFeature> {
    use CpuidFeature as C;
    if implied(f) {
        return Ok(None);
    }
    Ok(Some(match f {
        C::SSE3 => Feature::Sse3,
        C::SSSE3 => Feature::Ssse3,
        C::SSE4_1 => Feature::Sse41,
        C::SSE4_2 => Feature::Sse42,
        C::POPCNT => Feature::Popcnt,
        C::CMPXCHG16B => Feature::Cmpxchg16b,
        C::AVX => Feature::Avx,
        C::AVX2 => Feature::Avx2,
        C::BMI1 => Feature::Bmi1,
        C::BMI2 => Feature::Bmi2,
        C::LZCNT => Feature::Lzcnt,
        C::FMA => Feature::Fma,
        C::F16C => Feature::F16c,
        C::MOVBE => Feature::Movbe,
        C::AES => Feature::Aes,
        C::PCLMULQDQ => Feature::Pclmulqdq,
        C::VAES => Feature::Vaes,
        C::VPCLMULQDQ => Feature::Vpclmulqdq,
        C::GFNI => Feature::Gfni,
        C::AVX512F => Feature::Avx512f,
        C::AVX512BW => Feature::Avx512bw,
        C::AVX512VL => Feature::Avx512vl,
        C::AVX512DQ => Feature::Avx512dq,
        C::AVX512CD => Feature::Avx512cd,
        C::AVX512_VBMI => Feature::Avx512vbmi,
        C::AVX512_VBMI2 => Feature::Avx512vbmi2,
        C::AVX512_IFMA => Feature::Avx512ifma,
        C::ADX => Feature::Adx,
        C::SHA => Feature::Sha,
        other => return Err(other),
    }))
}

/// The features `ins` needs that `declared` lacks, as iced names
/// (`AVX512BW`); empty when the instruction is allowed.
pub fn missing_features(ins: &Instruction, declared: FeatureSet) -> Vec<String> {
    let mut out = Vec::new();
    for &f in ins.cpuid_features() {
        match map_feature(f) {
            Ok(None) => {}
            Ok(Some(m)) if declared.contains(m) => {}
            Ok(Some(_)) | Err(_) => out.push(format!("{f:?}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Formatter, IntelFormatter};

    fn reg(n: &str) -> Operand {
        Operand::Reg(register_by_name(n).unwrap())
    }
    fn mem(base: &str, disp: i64, size: Option<u32>) -> Operand {
        Operand::Mem(Mem {
            size,
            base: register_by_name(base).unwrap(),
            index: Register::None,
            scale: 1,
            disp,
            sym: None,
        })
    }
    fn text(p: &Parsed) -> String {
        let ins = assemble(p).unwrap();
        let mut s = String::new();
        IntelFormatter::new().format(&ins, &mut s);
        s
    }

    #[test]
    fn gpr_forms_pick_shortest() {
        let ins = assemble(&Parsed::new("add", vec![reg("rax"), Operand::Imm(1)])).unwrap();
        assert_eq!(ins.code(), Code::Add_rm64_imm8);
        let ins = assemble(&Parsed::new("add", vec![reg("rax"), Operand::Imm(1000)])).unwrap();
        assert_eq!(ins.code(), Code::Add_RAX_imm32);
        assert_eq!(
            text(&Parsed::new("xor", vec![reg("ecx"), reg("ecx")])),
            "xor ecx,ecx"
        );
        assert_eq!(
            text(&Parsed::new("mov", vec![reg("rax"), Operand::Imm(-1)])),
            "mov rax,0FFFFFFFFFFFFFFFFh"
        );
        assert_eq!(
            text(&Parsed::new("shl", vec![reg("eax"), Operand::Imm(1)])),
            "shl eax,1"
        );
        let jz = assemble(&Parsed::new("jz", vec![Operand::Label("x".into())])).unwrap();
        assert_eq!(jz.code(), Code::Je_rel32_64);
    }

    #[test]
    fn vex_preferred_evex_when_needed() {
        let p = Parsed::new("vpcmpeqb", vec![reg("ymm0"), reg("ymm1"), reg("ymm2")]);
        assert_eq!(
            assemble(&p).unwrap().code(),
            Code::VEX_Vpcmpeqb_ymm_ymm_ymmm256
        );
        let p = Parsed::new("vpcmpeqb", vec![reg("k1"), reg("zmm1"), reg("zmm2")]);
        assert_eq!(
            assemble(&p).unwrap().code(),
            Code::EVEX_Vpcmpeqb_kr_k1_zmm_zmmm512
        );
        let p = Parsed::new("vpxor", vec![reg("ymm17"), reg("ymm1"), reg("ymm2")]);
        assert!(assemble(&p)
            .unwrap_err()
            .to_string()
            .contains("vpxor has no form"));
        let p = Parsed::new("vpxord", vec![reg("ymm17"), reg("ymm1"), reg("ymm2")]);
        assert_eq!(
            assemble(&p).unwrap().code(),
            Code::EVEX_Vpxord_ymm_k1z_ymm_ymmm256b32
        );
    }

    #[test]
    fn masks_and_memory_sizes() {
        let mut p = Parsed::new("vmovdqu8", vec![reg("zmm1"), mem("rdi", 0, None)]);
        p.mask = Register::K1;
        p.zeroing = true;
        assert_eq!(text(&p), "vmovdqu8 zmm1{k1}{z},[rdi]");
        let p = Parsed::new("vmovdqu", vec![reg("ymm1"), mem("rdi", 32, Some(32))]);
        assert_eq!(text(&p), "vmovdqu ymm1,[rdi+20h]");
        let p = Parsed::new("vmovdqu", vec![reg("ymm1"), mem("rdi", 32, Some(16))]);
        assert!(assemble(&p).is_err());
        let p = Parsed::new("add", vec![mem("rdi", 0, None), Operand::Imm(1)]);
        assert!(matches!(
            assemble(&p),
            Err(MatchError::AmbiguousSize { .. })
        ));
        let p = Parsed::new("add", vec![mem("rdi", 0, Some(4)), Operand::Imm(1)]);
        assert_eq!(text(&p), "add dword ptr [rdi],1");
        let p = Parsed::new("lea", vec![reg("rcx"), mem("rax", 128, None)]);
        assert_eq!(text(&p), "lea rcx,[rax+80h]");
        let p = Parsed::new("lea", vec![reg("rcx"), mem("rsp", -4096, None)]);
        assert_eq!(text(&p), "lea rcx,[rsp-1000h]");
        let p = Parsed::new("movzx", vec![reg("eax"), mem("rdi", -1, Some(1))]);
        assert_eq!(text(&p), "movzx eax,byte ptr [rdi-1]");
        let mut p = Parsed::new(
            "vpaddd",
            vec![reg("zmm0"), reg("zmm1"), mem("rdi", 0, Some(4))],
        );
        p.broadcast = true;
        assert_eq!(text(&p), "vpaddd zmm0,zmm1,[rdi]{1to16}");
    }

    #[test]
    fn string_instructions() {
        let mut p = Parsed::new("movsb", vec![]);
        p.rep = true;
        assert_eq!(text(&p), "rep movsb [rdi],[rsi]");
        let mut p = Parsed::new("scasb", vec![]);
        p.repne = true;
        assert_eq!(assemble(&p).unwrap().code(), Code::Scasb_AL_m8);
    }

    #[test]
    fn rip_relative_data() {
        let p = Parsed::new(
            "lea",
            vec![
                reg("rax"),
                Operand::Mem(Mem {
                    size: None,
                    base: Register::RIP,
                    index: Register::None,
                    scale: 1,
                    disp: 0x40,
                    sym: Some("T".into()),
                }),
            ],
        );
        let ins = assemble(&p).unwrap();
        assert!(ins.is_ip_rel_memory_operand());
        assert_eq!(ins.ip_rel_memory_address(), 0x40);
    }

    #[test]
    fn errors_name_the_forms() {
        let e = assemble(&Parsed::new("vpcmpeqb", vec![reg("ymm0"), reg("rax")])).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("vpcmpeqb has no form (ymm, gpr64); forms: "),
            "{s}"
        );
        assert!(s.contains("ymm, ymm, ymm/m256"), "{s}");
        let e = assemble(&Parsed::new("vpcmpeqx", vec![])).unwrap_err();
        assert_eq!(e.to_string(), "unknown mnemonic `vpcmpeqx`");
    }

    #[test]
    fn features_are_mapped() {
        let p = Parsed::new("vpcmpeqb", vec![reg("k1"), reg("zmm0"), reg("zmm1")]);
        let ins = assemble(&p).unwrap();
        assert_eq!(
            missing_features(&ins, crate::features::level::AVX2),
            vec!["AVX512BW"]
        );
        assert!(missing_features(&ins, crate::features::level::AVX512).is_empty());
        let ins = assemble(&Parsed::new("ret", vec![])).unwrap();
        assert!(missing_features(&ins, FeatureSet::EMPTY).is_empty());
    }
}
