//! The static checks every kernel variant must pass (DESIGN.md §3).
//!
//! They work on the final bytes, so `marg_asm!` runs them at compile time on
//! what it just encoded (violations become `compile_error!`s at the offending
//! instruction) and `marg-gen check` runs them again on the bytes that
//! shipped. The rules:
//!
//! 1. [`Rule::Decode`]: the bytes decode (iced-x86, 64-bit) without invalid
//!    instructions, into the instruction stream that was encoded (macro side)
//!    or at the offsets of the listing (CLI side);
//! 2. [`Rule::Features`]: each instruction's CPUID features lie within the
//!    variant's declared set;
//! 3. [`Rule::CalleeSaved`]: on every path, at every `ret`, `rbx`, `rbp`,
//!    `r12`-`r15` hold the caller's values and `rsp` is back where it was
//!    (abstract interpretation over the control-flow graph: push/pop,
//!    `add/sub rsp, imm`, the `mov rbp, rsp; and rsp, -N ... mov rsp, rbp`
//!    frame pattern; any other write to `rsp` is a violation, and paths that
//!    meet must agree on the stack layout; register contents are joined);
//! 4. [`Rule::Vzeroupper`]: no path reaches `ret` from a ymm/zmm write
//!    without a `vzeroupper`/`vzeroall` in between;
//! 5. [`Rule::Forbidden`]: nothing privileged or that leaves the kernel:
//!    `syscall`, `int`, `hlt`, `in`/`out`, `cli`/`sti`, far or indirect
//!    jumps and calls, any `call`, `iret`, `ret imm`;
//! 6. [`Rule::ControlFlow`]: every branch target is an instruction of the
//!    kernel, nothing falls through past the last instruction, and memory
//!    operands are position independent (RIP-relative into the blob, or
//!    register based).

use crate::features::FeatureSet;
use crate::isa::missing_features;
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, Instruction, InstructionInfoFactory,
    IntelFormatter, Mnemonic, OpAccess, OpKind, Register,
};
use std::fmt;

/// Which rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Decode,
    Features,
    CalleeSaved,
    Vzeroupper,
    Forbidden,
    ControlFlow,
    ConstantTime,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Decode => "decode",
            Rule::Features => "features",
            Rule::CalleeSaved => "callee-saved",
            Rule::Vzeroupper => "vzeroupper",
            Rule::Forbidden => "forbidden",
            Rule::ControlFlow => "control-flow",
            Rule::ConstantTime => "constant-time",
        })
    }
}

/// One broken rule, at the byte offset of the instruction that breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub offset: u32,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{:#06x} [{}] {}", self.offset, self.rule, self.message)
    }
}

/// What to check.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The whole blob: code, then constant data.
    pub bytes: &'a [u8],
    /// Length of the code part.
    pub code_len: usize,
    /// The variant's declared features.
    pub features: FeatureSet,
    /// Whether the kernel is marked secret (then `div`/`idiv`, whose timing
    /// depends on the operands, are forbidden too).
    pub secret: bool,
    /// The instructions that were encoded, in order (macro side).
    pub expected: Option<&'a [Instruction]>,
    /// Offsets where instructions start (from the listing, CLI side).
    pub boundaries: Option<&'a [u32]>,
    /// Offsets of instructions written with the `public` prefix: their
    /// results are declared public (e.g. a round count loaded from a key
    /// schedule) for the constant-time rule of secret kernels.
    pub public: &'a [u32],
}

impl<'a> Input<'a> {
    /// Checks `bytes[..code_len]` against `features` with no expectations
    /// about the instruction stream.
    pub fn new(bytes: &'a [u8], code_len: usize, features: FeatureSet) -> Input<'a> {
        Input {
            bytes,
            code_len,
            features,
            secret: false,
            expected: None,
            boundaries: None,
            public: &[],
        }
    }
}

/// Formats an instruction in Intel syntax (iced's formatter, lower case).
pub fn format(ins: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    f.options_mut().set_space_after_operand_separator(true);
    f.options_mut().set_hex_prefix("0x");
    f.options_mut().set_hex_suffix("");
    f.options_mut().set_uppercase_hex(false);
    f.options_mut().set_branch_leading_zeros(false);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

/// Runs every rule; returns the violations sorted by offset.
pub fn check(input: &Input<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let code = &input.bytes[..input.code_len.min(input.bytes.len())];
    let mut dec = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut instrs = Vec::new();
    while dec.can_decode() {
        let ins = dec.decode();
        if ins.is_invalid() {
            out.push(Violation {
                offset: ins.ip() as u32,
                rule: Rule::Decode,
                message: "bytes do not decode to a valid instruction".into(),
            });
            return out;
        }
        instrs.push(ins);
    }
    rule_decode(input, &instrs, &mut out);
    for ins in &instrs {
        let missing = missing_features(ins, input.features);
        if !missing.is_empty() {
            out.push(violation(
                ins,
                Rule::Features,
                format!(
                    "`{}` needs {}, which the variant does not declare",
                    format(ins),
                    missing.join(" + ")
                ),
            ));
        }
        rule_forbidden(ins, input.secret, &mut out);
        rule_memory(ins, input.bytes.len() as u64, &mut out);
    }
    let succ = rule_control_flow(&instrs, input.code_len as u64, &mut out);
    rule_stack(&instrs, &succ, &mut out);
    rule_vzeroupper(&instrs, &succ, &mut out);
    if input.secret {
        rule_constant_time(&instrs, &succ, input.public, &mut out);
    }
    out.sort_by_key(|v| v.offset);
    out
}

fn violation(ins: &Instruction, rule: Rule, message: String) -> Violation {
    Violation {
        offset: ins.ip() as u32,
        rule,
        message,
    }
}

fn rule_decode(input: &Input<'_>, instrs: &[Instruction], out: &mut Vec<Violation>) {
    if let Some(bounds) = input.boundaries {
        let mut want: Vec<u32> = bounds
            .iter()
            .copied()
            .filter(|&b| (b as usize) < input.code_len)
            .collect();
        want.sort_unstable();
        want.dedup();
        let have: Vec<u32> = instrs.iter().map(|i| i.ip() as u32).collect();
        if want != have {
            let at = want
                .iter()
                .zip(&have)
                .find(|(a, b)| a != b)
                .map(|(a, _)| *a)
                .unwrap_or(0);
            out.push(Violation {
                offset: at,
                rule: Rule::Decode,
                message: format!(
                    "decoded instruction boundaries differ from the listing ({} decoded, {} listed)",
                    have.len(),
                    want.len()
                ),
            });
        }
    }
    let Some(exp) = input.expected else { return };
    if exp.len() != instrs.len() {
        out.push(Violation {
            offset: 0,
            rule: Rule::Decode,
            message: format!(
                "the bytes decode to {} instructions, {} were encoded",
                instrs.len(),
                exp.len()
            ),
        });
    }
    for (e, d) in exp.iter().zip(instrs) {
        if !same_instruction(e, d) {
            out.push(violation(
                d,
                Rule::Decode,
                format!(
                    "encoded `{}` but the bytes decode to `{}`",
                    format(e),
                    format(d)
                ),
            ));
        }
    }
}

/// Equal up to what encoding legitimately changes: branch forms and targets,
/// RIP-relative displacements.
fn same_instruction(e: &Instruction, d: &Instruction) -> bool {
    if e.mnemonic() != d.mnemonic() || e.op_count() != d.op_count() {
        return false;
    }
    if e.op_mask() != d.op_mask() || e.zeroing_masking() != d.zeroing_masking() {
        return false;
    }
    for i in 0..e.op_count() {
        let (ke, kd) = (e.op_kind(i), d.op_kind(i));
        match ke {
            OpKind::Register => {
                if kd != OpKind::Register || e.op_register(i) != d.op_register(i) {
                    return false;
                }
            }
            OpKind::Memory => {
                if kd != OpKind::Memory
                    || e.memory_base() != d.memory_base()
                    || e.memory_index() != d.memory_index()
                    || (e.memory_index() != Register::None
                        && e.memory_index_scale() != d.memory_index_scale())
                    || e.is_broadcast() != d.is_broadcast()
                    || (e.memory_base() != Register::RIP
                        && e.memory_displacement64() != d.memory_displacement64())
                {
                    return false;
                }
            }
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                if !matches!(
                    kd,
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                ) {
                    return false;
                }
            }
            _ => {
                let (Ok(a), Ok(b)) = (e.try_immediate(i), d.try_immediate(i)) else {
                    return ke == kd;
                };
                if a != b {
                    return false;
                }
            }
        }
    }
    true
}

fn rule_forbidden(ins: &Instruction, secret: bool, out: &mut Vec<Violation>) {
    let oc = ins.code().op_code();
    let m = ins.mnemonic();
    let why = if oc.is_privileged() || oc.must_be_cpl0() || !oc.cpl3() {
        Some("privileged instruction")
    } else if oc.is_input_output() {
        Some("port I/O")
    } else if matches!(
        m,
        Mnemonic::Syscall
            | Mnemonic::Sysenter
            | Mnemonic::Sysexit
            | Mnemonic::Sysret
            | Mnemonic::Int
            | Mnemonic::Int1
            | Mnemonic::Int3
            | Mnemonic::Into
            | Mnemonic::Hlt
            | Mnemonic::Cli
            | Mnemonic::Sti
            | Mnemonic::Iret
            | Mnemonic::Iretd
            | Mnemonic::Iretq
            | Mnemonic::Retf
    ) {
        Some("kernels may not trap, enter the OS or return far")
    } else if matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    ) {
        Some("kernels are leaf functions: no calls")
    } else if ins.flow_control() == FlowControl::IndirectBranch {
        Some("indirect or far jumps are not allowed")
    } else if matches!(
        ins.flow_control(),
        FlowControl::Interrupt | FlowControl::XbeginXabortXend
    ) {
        Some("interrupts and transactions are not allowed")
    } else if ins.flow_control() == FlowControl::Return && ins.op_count() != 0 {
        Some("`ret imm` would unbalance the stack")
    } else if secret && matches!(m, Mnemonic::Div | Mnemonic::Idiv) {
        Some("division has operand-dependent timing; not allowed in a #[secret] kernel")
    } else {
        None
    };
    if let Some(why) = why {
        out.push(violation(
            ins,
            Rule::Forbidden,
            format!("`{}`: {why}", format(ins)),
        ));
    }
}

fn rule_memory(ins: &Instruction, blob_len: u64, out: &mut Vec<Violation>) {
    if !(0..ins.op_count()).any(|i| {
        matches!(
            ins.op_kind(i),
            OpKind::Memory | OpKind::MemorySegRSI | OpKind::MemoryESRDI | OpKind::MemorySegRDI
        )
    }) {
        return;
    }
    if !(0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory) {
        return;
    }
    if ins.is_ip_rel_memory_operand() {
        let a = ins.ip_rel_memory_address();
        if a >= blob_len {
            out.push(violation(
                ins,
                Rule::ControlFlow,
                format!(
                    "`{}`: RIP-relative address {a:#x} is outside the kernel",
                    format(ins)
                ),
            ));
        }
    } else if ins.memory_base() == Register::None
        && ins.memory_displacement64() != 0
        && ins.mnemonic() != Mnemonic::Lea
        && ins.mnemonic() != Mnemonic::Nop
    {
        out.push(violation(
            ins,
            Rule::ControlFlow,
            format!(
                "`{}`: absolute address is not position independent",
                format(ins)
            ),
        ));
    }
}

/// Checks branch targets and fall-through; returns each instruction's
/// successors (indices; `usize::MAX` marks a return).
fn rule_control_flow(
    instrs: &[Instruction],
    code_len: u64,
    out: &mut Vec<Violation>,
) -> Vec<Vec<usize>> {
    let index_of = |ip: u64| instrs.binary_search_by_key(&ip, |i| i.ip()).ok();
    let mut succ = Vec::with_capacity(instrs.len());
    for (k, ins) in instrs.iter().enumerate() {
        let mut s = Vec::new();
        let fc = ins.flow_control();
        let falls = matches!(
            fc,
            FlowControl::Next
                | FlowControl::ConditionalBranch
                | FlowControl::Call
                | FlowControl::IndirectCall
                | FlowControl::Interrupt
                | FlowControl::XbeginXabortXend
                | FlowControl::Exception
        ) && ins.mnemonic() != Mnemonic::Ud2;
        if falls {
            if k + 1 < instrs.len() {
                s.push(k + 1);
            } else {
                out.push(violation(
                    ins,
                    Rule::ControlFlow,
                    format!(
                        "execution falls through past the last instruction `{}`",
                        format(ins)
                    ),
                ));
            }
        }
        if matches!(
            fc,
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
        ) && matches!(
            ins.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ) {
            let t = ins.near_branch_target();
            match index_of(t) {
                Some(j) if t < code_len => s.push(j),
                _ => out.push(violation(
                    ins,
                    Rule::ControlFlow,
                    format!("branch target {t:#x} is not an instruction of the kernel"),
                )),
            }
        }
        if fc == FlowControl::Return {
            s.push(usize::MAX);
        }
        succ.push(s);
    }
    succ
}

/// Where `rsp` (or a saved copy of it) points, relative to a known base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// `entry_rsp + off` (on entry `rsp` = `Entry(0)`, the return address).
    Entry(i64),
    /// `aligned + off`, where `aligned` was produced by the `and rsp, imm` at
    /// instruction index `.0`.
    Aligned(usize, i64),
    Unknown,
}

impl Pos {
    fn add(self, d: i64) -> Pos {
        match self {
            Pos::Entry(o) => Pos::Entry(o + d),
            Pos::Aligned(k, o) => Pos::Aligned(k, o + d),
            Pos::Unknown => Pos::Unknown,
        }
    }
    fn same_base_diff(self, other: Pos) -> Option<i64> {
        match (self, other) {
            (Pos::Entry(a), Pos::Entry(b)) => Some(a - b),
            (Pos::Aligned(k, a), Pos::Aligned(l, b)) if k == l => Some(a - b),
            _ => None,
        }
    }
}

const CALLEE_SAVED: [Register; 6] = [
    Register::RBX,
    Register::RBP,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

fn callee_index(r: Register) -> Option<usize> {
    let f = r.full_register();
    CALLEE_SAVED.iter().position(|&c| c == f)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StackState {
    rsp: Pos,
    /// Where `rbp` points if it holds a copy of `rsp` (`mov rbp, rsp`).
    frame: Option<Pos>,
    /// Which callee-saved registers still hold the caller's value.
    intact: [bool; 6],
    /// Stack slots holding a caller's callee-saved value: (position, index).
    slots: Vec<(Pos, usize)>,
}

fn stack_step(
    ins: &Instruction,
    k: usize,
    st: &mut StackState,
    info: &mut InstructionInfoFactory,
) -> Result<(), String> {
    let m = ins.mnemonic();
    let reg0 = if ins.op_count() > 0 && ins.op0_kind() == OpKind::Register {
        ins.op0_register()
    } else {
        Register::None
    };
    let rsp0 = reg0 == Register::RSP;
    let imm1 = if ins.op_count() > 1 {
        ins.try_immediate(1).ok().map(|v| v as i64)
    } else {
        None
    };
    let reg1 = if ins.op_count() > 1 && ins.op1_kind() == OpKind::Register {
        ins.op1_register()
    } else {
        Register::None
    };
    match m {
        Mnemonic::Push => {
            let size = if reg0 != Register::None {
                reg0.size() as i64
            } else {
                8
            };
            st.rsp = st.rsp.add(-size);
            let rsp = st.rsp;
            st.slots.retain(|(p, _)| *p != rsp);
            if let Some(c) = callee_index(reg0) {
                if st.intact[c] && reg0.size() == 8 {
                    st.slots.push((rsp, c));
                }
            }
            return Ok(());
        }
        Mnemonic::Pop => {
            if rsp0 {
                return Err("`pop rsp` is not allowed".into());
            }
            let rsp = st.rsp;
            let slot = st.slots.iter().position(|(p, _)| *p == rsp);
            let held = slot.map(|s| st.slots.remove(s).1);
            if let Some(c) = callee_index(reg0) {
                st.intact[c] = held == Some(c) && reg0.size() == 8;
                if reg0.full_register() == Register::RBP {
                    st.frame = None;
                }
            }
            let size = if reg0 != Register::None {
                reg0.size() as i64
            } else {
                8
            };
            st.rsp = st.rsp.add(size);
            return Ok(());
        }
        Mnemonic::Sub | Mnemonic::Add if rsp0 => {
            let Some(v) = imm1 else {
                return Err(format!(
                    "`{}`: rsp may change only by constants",
                    format(ins)
                ));
            };
            st.rsp = st.rsp.add(if m == Mnemonic::Sub { -v } else { v });
            let rsp = st.rsp;
            st.slots
                .retain(|(p, _)| p.same_base_diff(rsp).is_none_or(|d| d >= 0));
            return Ok(());
        }
        Mnemonic::And if rsp0 => {
            if imm1.is_none_or(|v| v >= 0) {
                return Err(format!(
                    "`{}`: rsp may only be aligned down (and rsp, -N)",
                    format(ins)
                ));
            }
            st.rsp = Pos::Aligned(k, 0);
            return Ok(());
        }
        Mnemonic::Mov if reg0 == Register::RBP && reg1 == Register::RSP => {
            st.intact[1] = false;
            st.frame = Some(st.rsp);
            return Ok(());
        }
        Mnemonic::Mov if rsp0 && reg1 == Register::RBP => {
            let Some(f) = st.frame else {
                return Err("`mov rsp, rbp` but rbp holds no frame (`mov rbp, rsp`)".into());
            };
            st.rsp = f;
            let rsp = st.rsp;
            st.slots
                .retain(|(p, _)| p.same_base_diff(rsp).is_none_or(|d| d >= 0));
            return Ok(());
        }
        Mnemonic::Lea if rsp0 && ins.memory_index() == Register::None => {
            let d = ins.memory_displacement64() as i64;
            st.rsp = match ins.memory_base() {
                Register::RSP => st.rsp.add(d),
                Register::RBP if st.frame.is_some() => st.frame.unwrap_or(Pos::Unknown).add(d),
                _ => return Err(format!("`{}`: rsp may not be computed", format(ins))),
            };
            return Ok(());
        }
        Mnemonic::Ret => return Ok(()),
        _ => {}
    }
    let info = info.info(ins);
    for u in info.used_registers() {
        let write = matches!(
            u.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        );
        if !write {
            continue;
        }
        let full = u.register().full_register();
        if full == Register::RSP {
            return Err(format!("`{}` writes rsp", format(ins)));
        }
        if let Some(c) = callee_index(full) {
            st.intact[c] = false;
            if full == Register::RBP {
                st.frame = None;
            }
        }
    }
    for mem in info.used_memory() {
        if !matches!(
            mem.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            continue;
        }
        let base = match mem.base() {
            Register::RSP => st.rsp,
            Register::RBP => match st.frame {
                Some(f) => f,
                None => continue,
            },
            _ => continue,
        };
        if mem.index() != Register::None {
            // Unknown offset into our frame: any slot may be overwritten.
            st.slots.retain(|(p, _)| p.same_base_diff(base).is_none());
            continue;
        }
        let lo = mem.displacement() as i64;
        let hi = lo + mem.memory_size().size().max(1) as i64;
        st.slots.retain(|(p, _)| match p.same_base_diff(base) {
            Some(d) => d + 8 <= lo || d >= hi,
            None => true,
        });
    }
    Ok(())
}

/// Taint bit for the flags in [`rule_constant_time`]'s state (bits 0..15
/// are the general-purpose registers by number).
const FLAGS_TAINT: u32 = 1 << 16;

fn gpr_bit(r: Register) -> Option<u32> {
    let f = r.full_register();
    // rsp is never secret: the callee-saved rule already proves that every
    // change to it is a static amount.
    (f.is_gpr64() && f != Register::RSP).then(|| 1u32 << f.number())
}

/// Constant time, for kernels marked `#[secret]`: no branch on flags and no
/// memory address computed from secret data.
///
/// Secret ("tainted") are: every vector and opmask register, every value
/// loaded from memory other than the RIP-relative constant pool, and
/// whatever is computed from a secret value (flags included). Public are
/// the arguments (pointers, lengths), constants, what is computed from
/// public values only (`xor r, r` zeroes are public), and the results of
/// instructions written with the `public` prefix (a round count loaded from
/// a key schedule, say). A forward dataflow over the CFG joins taints where
/// paths meet. Violations: a conditional branch whose flags are tainted, a
/// memory operand whose base or index register is tainted. `cmov`/`setcc`
/// on secret flags are constant time and allowed (their result is secret).
fn rule_constant_time(
    instrs: &[Instruction],
    succ: &[Vec<usize>],
    public: &[u32],
    out: &mut Vec<Violation>,
) {
    if instrs.is_empty() {
        return;
    }
    let mut info = InstructionInfoFactory::new();
    let mut states: Vec<Option<u32>> = vec![None; instrs.len()];
    let mut reported = vec![false; instrs.len()];
    states[0] = Some(0);
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        let Some(st) = states[k] else { continue };
        let ins = &instrs[k];
        let mut bad = None;
        if ins.flow_control() == FlowControl::ConditionalBranch && st & FLAGS_TAINT != 0 {
            bad = Some(format!(
                "`{}` branches on flags computed from secret data",
                format(ins)
            ));
        }
        let used = info.info(ins);
        for m in used.used_memory() {
            let tainted = [m.base(), m.index()]
                .into_iter()
                .filter(|r| *r != Register::RIP && *r != Register::None)
                .any(|r| r.is_vector_register() || gpr_bit(r).is_some_and(|b| st & b != 0));
            if tainted && bad.is_none() {
                bad = Some(format!(
                    "`{}` computes a memory address from secret data",
                    format(ins)
                ));
            }
        }
        if let Some(msg) = bad {
            if !reported[k] {
                reported[k] = true;
                out.push(violation(ins, Rule::ConstantTime, msg));
            }
        }
        // Transfer: the instruction's results are secret iff it reads a
        // secret (a vector/opmask register, a tainted GPR, tainted flags, or
        // non-constant memory), unless it is a zeroing idiom or `public`.
        let zeroing = matches!(
            ins.mnemonic(),
            Mnemonic::Xor
                | Mnemonic::Sub
                | Mnemonic::Pxor
                | Mnemonic::Vpxor
                | Mnemonic::Vpxord
                | Mnemonic::Vpxorq
        ) && ins.op_count() >= 2
            && ins.op0_kind() == OpKind::Register
            && ins.op1_kind() == OpKind::Register
            && ins.op0_register() == ins.op1_register();
        let reads = |a: OpAccess| {
            matches!(
                a,
                OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
            )
        };
        let writes = |a: OpAccess| {
            matches!(
                a,
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
        };
        let mut secret_in = used.used_registers().iter().any(|u| {
            reads(u.access())
                && (u.register().is_vector_register()
                    || u.register().is_k()
                    || gpr_bit(u.register()).is_some_and(|b| st & b != 0))
        });
        secret_in |= ins.rflags_read() != 0 && st & FLAGS_TAINT != 0;
        secret_in |= used
            .used_memory()
            .iter()
            .any(|m| reads(m.access()) && m.base() != Register::RIP);
        let secret_out = secret_in && !zeroing && !public.contains(&(ins.ip() as u32));
        let mut next = st;
        for u in used.used_registers() {
            if !writes(u.access()) {
                continue;
            }
            if let Some(b) = gpr_bit(u.register()) {
                let conditional =
                    matches!(u.access(), OpAccess::CondWrite | OpAccess::ReadCondWrite);
                if secret_out {
                    next |= b;
                } else if !conditional {
                    next &= !b;
                }
            }
        }
        if ins.rflags_modified() != 0 {
            if secret_out {
                next |= FLAGS_TAINT;
            } else {
                next &= !FLAGS_TAINT;
            }
        }
        for &s in &succ[k] {
            if s == usize::MAX {
                continue;
            }
            let joined = states[s].map_or(next, |old| old | next);
            if states[s] != Some(joined) {
                states[s] = Some(joined);
                work.push(s);
            }
        }
    }
}

fn rule_stack(instrs: &[Instruction], succ: &[Vec<usize>], out: &mut Vec<Violation>) {
    if instrs.is_empty() {
        return;
    }
    let mut info = InstructionInfoFactory::new();
    let mut states: Vec<Option<StackState>> = vec![None; instrs.len()];
    let mut reported = vec![false; instrs.len()];
    states[0] = Some(StackState {
        rsp: Pos::Entry(0),
        frame: None,
        intact: [true; 6],
        slots: Vec::new(),
    });
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        let Some(mut st) = states[k].clone() else {
            continue;
        };
        let ins = &instrs[k];
        if let Err(e) = stack_step(ins, k, &mut st, &mut info) {
            if !reported[k] {
                reported[k] = true;
                out.push(violation(ins, Rule::CalleeSaved, e));
            }
            continue;
        }
        for &s in &succ[k] {
            if s == usize::MAX {
                let mut bad = Vec::new();
                if st.rsp != Pos::Entry(0) {
                    bad.push(match st.rsp {
                        Pos::Entry(o) => format!("rsp off by {o} bytes"),
                        _ => "rsp not restored (aligned frame still active)".to_string(),
                    });
                }
                for (c, ok) in st.intact.iter().enumerate() {
                    if !ok {
                        bad.push(format!(
                            "{} not restored",
                            crate::isa::register_name(CALLEE_SAVED[c])
                        ));
                    }
                }
                if !bad.is_empty() && !reported[k] {
                    reported[k] = true;
                    out.push(violation(
                        ins,
                        Rule::CalleeSaved,
                        format!("returns with {}", bad.join(", ")),
                    ));
                }
                continue;
            }
            match &states[s] {
                None => {
                    states[s] = Some(st.clone());
                    work.push(s);
                }
                Some(old) => {
                    // The stack layout must agree where paths meet; what a
                    // register holds is joined (it is the caller's value
                    // only if it is on every incoming path), and the join
                    // is propagated until nothing changes: a loop that
                    // clobbers a saved register is fine as long as every
                    // path to `ret` restores it.
                    if old.rsp != st.rsp || old.frame != st.frame {
                        if !reported[s] {
                            reported[s] = true;
                            out.push(violation(
                                &instrs[s],
                                Rule::CalleeSaved,
                                "paths that meet here disagree about rsp or the frame".into(),
                            ));
                        }
                        continue;
                    }
                    let mut joined = old.clone();
                    for (j, i) in joined.intact.iter_mut().zip(st.intact) {
                        *j &= i;
                    }
                    joined.slots.retain(|slot| st.slots.contains(slot));
                    if joined.intact != old.intact || joined.slots != old.slots {
                        states[s] = Some(joined);
                        work.push(s);
                    }
                }
            }
        }
    }
}

/// Whether `ins` writes a ymm/zmm destination (iced reports VEX.128 writes
/// as writes of the full register, so the destination operand decides).
fn writes_wide_vector(ins: &Instruction, info: &mut InstructionInfoFactory) -> bool {
    if ins.op_count() == 0 || ins.op0_kind() != OpKind::Register {
        return false;
    }
    let dst = ins.op0_register();
    if !(dst.is_ymm() || dst.is_zmm()) {
        return false;
    }
    info.info(ins).used_registers().iter().any(|u| {
        matches!(
            u.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) && u.register().full_register() == dst.full_register()
    })
}

fn rule_vzeroupper(instrs: &[Instruction], succ: &[Vec<usize>], out: &mut Vec<Violation>) {
    if instrs.is_empty() {
        return;
    }
    let mut info = InstructionInfoFactory::new();
    // dirty[k]: some path reaches instruction k with dirty upper state.
    let mut seen = vec![false; instrs.len()];
    let mut dirty = vec![false; instrs.len()];
    seen[0] = true;
    let mut work = vec![0usize];
    let mut reported = false;
    while let Some(k) = work.pop() {
        let ins = &instrs[k];
        let d = match ins.mnemonic() {
            Mnemonic::Vzeroupper | Mnemonic::Vzeroall => false,
            _ => dirty[k] || writes_wide_vector(ins, &mut info),
        };
        for &s in &succ[k] {
            if s == usize::MAX {
                if d && !reported {
                    reported = true;
                    out.push(violation(
                        ins,
                        Rule::Vzeroupper,
                        "a path from a ymm/zmm write reaches `ret` without `vzeroupper`".into(),
                    ));
                }
                continue;
            }
            if !seen[s] || (d && !dirty[s]) {
                seen[s] = true;
                dirty[s] |= d;
                work.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::level;

    fn rules(bytes: &[u8]) -> Vec<Rule> {
        check(&Input::new(bytes, bytes.len(), level::AVX2))
            .iter()
            .map(|v| v.rule)
            .collect()
    }

    const RET: u8 = 0xc3;

    /// The rules broken by `bytes` as a secret kernel with `public`
    /// instruction offsets.
    fn secret_rules(bytes: &[u8], public: &[u32]) -> Vec<Rule> {
        check(&Input {
            secret: true,
            public,
            ..Input::new(bytes, bytes.len(), level::AVX2)
        })
        .iter()
        .map(|v| v.rule)
        .collect()
    }

    #[test]
    fn constant_time_rule() {
        // A table lookup indexed by loaded (secret) data:
        // movzx eax, byte [rdi]; movzx eax, byte [rsi + rax]; ret
        let lookup = [0x0f, 0xb6, 0x07, 0x0f, 0xb6, 0x04, 0x06, RET];
        assert_eq!(secret_rules(&lookup, &[]), vec![Rule::ConstantTime]);
        // The same bytes in a kernel not marked secret are fine.
        assert!(rules(&lookup).is_empty());
        // A branch on loaded data: mov rax, [rdi]; test rax, rax; jz +0; ret
        let branch = [0x48, 0x8b, 0x07, 0x48, 0x85, 0xc0, 0x74, 0x00, RET];
        assert_eq!(secret_rules(&branch, &[]), vec![Rule::ConstantTime]);
        // Vector data moved to a GPR and used as an index:
        // movd eax, xmm0; movzx eax, byte [rsi + rax]; ret
        let from_vector = [0x66, 0x0f, 0x7e, 0xc0, 0x0f, 0xb6, 0x04, 0x06, RET];
        assert_eq!(secret_rules(&from_vector, &[]), vec![Rule::ConstantTime]);
        // A loop on a length argument is public:
        // mov rcx, rsi; L: dec rcx; jnz L; ret
        let counted = [0x48, 0x89, 0xf1, 0x48, 0xff, 0xc9, 0x75, 0xfb, RET];
        assert!(secret_rules(&counted, &[]).is_empty());
        // A round count loaded from a key schedule is secret unless the
        // load is declared `public`:
        // mov eax, [rdi + 240]; cmp eax, 10; je +0; ret
        let rounds = [0x8b, 0x87, 0xf0, 0, 0, 0, 0x83, 0xf8, 0x0a, 0x74, 0x00, RET];
        assert_eq!(secret_rules(&rounds, &[]), vec![Rule::ConstantTime]);
        assert!(secret_rules(&rounds, &[0]).is_empty());
        // Zeroing idioms are public: xor eax, eax; movzx eax, byte [rsi + rax]; ret
        let zeroed = [0x31, 0xc0, 0x0f, 0xb6, 0x04, 0x06, RET];
        assert!(secret_rules(&zeroed, &[]).is_empty());
    }

    #[test]
    fn clean_kernel_passes() {
        // mov rax, rdi; add rax, rsi; ret
        assert!(rules(&[0x48, 0x89, 0xf8, 0x48, 0x01, 0xf0, RET]).is_empty());
        // push rbx; mov rbx, 1; pop rbx; ret
        assert!(rules(&[0x53, 0x48, 0xc7, 0xc3, 1, 0, 0, 0, 0x5b, RET]).is_empty());
    }

    #[test]
    fn rule1_decode() {
        // 0x06 (push es) is invalid in 64-bit mode.
        assert_eq!(rules(&[0x06, RET]), vec![Rule::Decode]);
        // Boundaries that do not match the listing.
        let bytes = [0x48, 0x89, 0xf8, RET];
        let v = check(&Input {
            boundaries: Some(&[0, 1, 3]),
            ..Input::new(&bytes, 4, level::AVX2)
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rule, Rule::Decode);
    }

    #[test]
    fn rule2_features() {
        // vpcmpeqb k1, zmm0, zmm1 ; ret  (AVX512BW) in an avx2 variant
        let b = [0x62, 0xf1, 0x7d, 0x48, 0x74, 0xc9, RET];
        let v = check(&Input::new(&b, b.len(), level::AVX2));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].rule, Rule::Features);
        assert!(v[0].message.contains("AVX512BW"), "{}", v[0].message);
        assert!(check(&Input::new(&b, b.len(), level::AVX512)).is_empty());
    }

    #[test]
    fn rule3_callee_saved_and_rsp() {
        // mov rbx, 1; ret
        assert_eq!(
            rules(&[0x48, 0xc7, 0xc3, 1, 0, 0, 0, RET]),
            vec![Rule::CalleeSaved]
        );
        // push rax; ret  (rsp unbalanced)
        assert_eq!(rules(&[0x50, RET]), vec![Rule::CalleeSaved]);
        // push rbx; pop rbx; pop rbx... : push rbx; pop r12; ret (swapped)
        assert_eq!(rules(&[0x53, 0x41, 0x5c, RET]), vec![Rule::CalleeSaved]);
        // mov rsp, rdi; ret
        assert_eq!(rules(&[0x48, 0x89, 0xfc, RET]), vec![Rule::CalleeSaved]);
        // Frame pattern: push rbp; mov rbp, rsp; and rsp, -64; sub rsp, 128;
        // mov rsp, rbp; pop rbp; ret
        let frame = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xe4, 0xc0, 0x48, 0x81, 0xec, 0x80, 0, 0, 0, 0x48,
            0x89, 0xec, 0x5d, RET,
        ];
        assert!(
            rules(&frame).is_empty(),
            "{:?}",
            check(&Input::new(&frame, frame.len(), level::AVX2))
        );
        // One path restores rbx, the other does not:
        // push rbx; test rdi, rdi; jz L; pop rbx; ret; L: ret
        let b = [0x53, 0x48, 0x85, 0xff, 0x74, 0x02, 0x5b, RET, RET];
        assert_eq!(rules(&b), vec![Rule::CalleeSaved]);
        // A loop whose body is the first writer of a saved register:
        // push rbx; xor ecx, ecx; L: mov rbx, rcx; inc rcx; cmp rcx, rdi;
        // jb L; pop rbx; ret  — fine (the join at L is "rbx clobbered").
        let looped = [
            0x53, 0x31, 0xc9, 0x48, 0x89, 0xcb, 0x48, 0xff, 0xc1, 0x48, 0x39, 0xf9, 0x72, 0xf5,
            0x5b, RET,
        ];
        assert!(rules(&looped).is_empty(), "{:?}", rules(&looped));
        // The same loop without the save/restore must still fail.
        let unsaved = [
            0x31, 0xc9, 0x48, 0x89, 0xcb, 0x48, 0xff, 0xc1, 0x48, 0x39, 0xf9, 0x72, 0xf5, RET,
        ];
        assert_eq!(rules(&unsaved), vec![Rule::CalleeSaved]);
        // Paths that disagree at a merge: test rdi,rdi; jz L; push rax; L: ret
        let b = [0x48, 0x85, 0xff, 0x74, 0x01, 0x50, RET];
        assert!(rules(&b).contains(&Rule::CalleeSaved));
    }

    #[test]
    fn rule4_vzeroupper() {
        // vpxor ymm0, ymm0, ymm0; ret
        assert_eq!(
            rules(&[0xc5, 0xfd, 0xef, 0xc0, RET]),
            vec![Rule::Vzeroupper]
        );
        // vpxor ymm0, ymm0, ymm0; vzeroupper; ret
        assert!(rules(&[0xc5, 0xfd, 0xef, 0xc0, 0xc5, 0xf8, 0x77, RET]).is_empty());
        // vpxor xmm0 (VEX.128) needs none.
        assert!(rules(&[0xc5, 0xf9, 0xef, 0xc0, RET]).is_empty());
        // Dirty on one path only: test rdi,rdi; jz L; vpxor ymm0..; L: ret
        let b = [0x48, 0x85, 0xff, 0x74, 0x04, 0xc5, 0xfd, 0xef, 0xc0, RET];
        assert_eq!(rules(&b), vec![Rule::Vzeroupper]);
    }

    #[test]
    fn rule5_forbidden() {
        assert!(rules(&[0x0f, 0x05, RET]).contains(&Rule::Forbidden)); // syscall
        assert_eq!(rules(&[0xcc, RET]), vec![Rule::Forbidden]); // int3
        assert_eq!(rules(&[0xf4, RET]), vec![Rule::Forbidden]); // hlt
        assert_eq!(rules(&[0xfa, RET]), vec![Rule::Forbidden]); // cli
        assert_eq!(rules(&[0xec, RET]), vec![Rule::Forbidden]); // in al, dx
        assert_eq!(rules(&[0xff, 0xe0]), vec![Rule::Forbidden]); // jmp rax
                                                                 // call +0; ret
        assert!(rules(&[0xe8, 0, 0, 0, 0, RET]).contains(&Rule::Forbidden));
        assert_eq!(rules(&[0xc2, 8, 0]), vec![Rule::Forbidden]); // ret 8
        assert_eq!(rules(&[0x0f, 0x01, 0xf8, RET]), vec![Rule::Forbidden]); // swapgs
                                                                            // div rcx is fine unless secret.
        let b = [0x48, 0xf7, 0xf1, RET];
        assert!(rules(&b).is_empty());
        let v = check(&Input {
            secret: true,
            ..Input::new(&b, b.len(), level::AVX2)
        });
        assert_eq!(v[0].rule, Rule::Forbidden);
    }

    #[test]
    fn rule6_control_flow() {
        // jmp +0x10 (outside)
        assert_eq!(rules(&[0xeb, 0x10]), vec![Rule::ControlFlow]);
        // jmp into the middle of an instruction: jmp -1 (ebfe is a loop: fine)
        assert!(rules(&[0xeb, 0xfe]).is_empty());
        assert_eq!(rules(&[0xeb, 0xff, RET]), vec![Rule::ControlFlow]);
        // Falls off the end: mov eax, 1
        assert_eq!(rules(&[0xb8, 1, 0, 0, 0]), vec![Rule::ControlFlow]);
        // Absolute address: mov eax, [0x1000]
        assert_eq!(
            rules(&[0x8b, 0x04, 0x25, 0, 0x10, 0, 0, RET]),
            vec![Rule::ControlFlow]
        );
        // RIP-relative into the blob is fine; outside is not.
        // lea rax, [rip+1]; ret  -> target 8 == blob end: outside.
        assert_eq!(
            rules(&[0x48, 0x8d, 0x05, 1, 0, 0, 0, RET]),
            vec![Rule::ControlFlow]
        );
        let b = [0x48, 0x8d, 0x05, 1, 0, 0, 0, RET, 0xaa, 0xbb];
        assert!(check(&Input::new(&b, 8, level::AVX2)).is_empty());
    }
}
