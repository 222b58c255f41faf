//! From a parsed block to encoded variants and the Rust tokens `marg_asm!`
//! emits.
//!
//! Per kernel and variant: expand the body (constants, `for`, `if`, DSL
//! macros, role names, `W`), match every instruction ([`crate::isa`]), check
//! its features against the variant, add the generated prologue/epilogue,
//! encode the block with iced's `BlockEncoder` at IP 0 (branches shortened,
//! the constant pool laid out after the code and addressed RIP-relative),
//! run [`crate::check`] on the bytes, and emit the metadata.

use crate::check::{self, Input};
use crate::dsl::{
    self, err, eval, eval_int, parse_block, Block, DataInit, Env, KernelDef, Result, Stmt, Val,
    VariantDef,
};
use crate::features::{level, Feature, FeatureSet};
use crate::isa::{self, Mem, Operand, Parsed};
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Instruction, InstructionBlock, InstructionInfoFactory,
    OpAccess, OpKind, Register,
};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// One listing line of a compiled variant.
#[derive(Debug, Clone)]
pub struct Line {
    pub offset: u32,
    pub len: u32,
    pub text: String,
    pub comment: String,
}

/// A compiled variant.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub features: FeatureSet,
    pub width: u32,
    pub code: Vec<u8>,
    pub code_len: usize,
    pub listing: Vec<Line>,
}

/// A compiled kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub signature: String,
    pub doc: String,
    pub secret: bool,
    pub variants: Vec<Variant>,
}

/// The `marg_asm!` entry point: tokens in, tokens out (errors become
/// `compile_error!`s).
pub fn expand_macro(input: TokenStream) -> TokenStream {
    match expand_block(input) {
        Ok(ts) => ts,
        Err(e) => e.to_compile_error(),
    }
}

fn expand_block(input: TokenStream) -> Result<TokenStream> {
    let block = parse_block(input)?;
    let mut out = TokenStream::new();
    let mut errors: Option<dsl::Error> = None;
    for k in &block.kernels {
        match compile_kernel(&block, k) {
            Ok(compiled) => out.extend(emit(k, &compiled)),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Compiles every kernel of a block given as source text (tests, tools).
pub fn compile_str(src: &str) -> Result<Vec<Kernel>> {
    let ts: TokenStream = src
        .parse()
        .map_err(|e| dsl::Error::new(Span::call_site(), format!("{e}")))?;
    let block = parse_block(ts)?;
    block
        .kernels
        .iter()
        .map(|k| compile_kernel(&block, k))
        .collect()
}

/// Compiles one kernel, all variants.
pub fn compile_kernel(block: &Block, k: &KernelDef) -> Result<Kernel> {
    let mut variants = Vec::new();
    let mut errors: Option<dsl::Error> = None;
    let mut seen = HashSet::new();
    for v in &k.variants {
        if !seen.insert(v.name.to_string()) {
            return err(
                v.name.span(),
                format!("variant `{}` declared twice", v.name),
            );
        }
        match compile_variant(block, k, v) {
            Ok(c) => variants.push(c),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    Ok(Kernel {
        name: k.name.to_string(),
        signature: k.signature.clone(),
        doc: k.doc.clone(),
        secret: k.secret,
        variants,
    })
}

/// Features implied by declared ones (AVX2 implies AVX, AVX-512 BW implies F, ...).
fn closure(mut s: FeatureSet) -> FeatureSet {
    use Feature::*;
    let rules: &[(Feature, &[Feature])] = &[
        (Avx512bw, &[Avx512f]),
        (Avx512vl, &[Avx512f]),
        (Avx512dq, &[Avx512f]),
        (Avx512cd, &[Avx512f]),
        (Avx512vbmi, &[Avx512bw]),
        (Avx512vbmi2, &[Avx512bw]),
        (Avx512ifma, &[Avx512f]),
        (Avx512f, &[Avx2, Fma, F16c]),
        (Avx2, &[Avx]),
        (Fma, &[Avx]),
        (F16c, &[Avx]),
        (Avx, &[Sse42, Popcnt]),
        (Sse42, &[Sse41]),
        (Sse41, &[Ssse3]),
        (Ssse3, &[Sse3]),
        (Sse3, &[Sse2]),
        (Sse2, &[Sse]),
    ];
    loop {
        let before = s;
        for (f, implied) in rules {
            if s.contains(*f) {
                s = s.union(FeatureSet::of(implied));
            }
        }
        if s == before {
            return s;
        }
    }
}

fn variant_features(v: &VariantDef) -> Result<FeatureSet> {
    let mut set = FeatureSet::of(&[Feature::Sse, Feature::Sse2]);
    if let Some(l) = &v.level {
        match level::by_name(&l.to_string()) {
            Some(s) => set = set.union(s),
            None => {
                return err(
                    l.span(),
                    format!("unknown level `{l}`; use baseline, avx2, avx2_vaes or avx512"),
                )
            }
        }
    }
    for f in &v.features {
        match Feature::from_name(&f.to_string()) {
            Some(x) => set = set.with(x),
            None => return err(f.span(), format!("unknown feature `{f}`")),
        }
    }
    if v.level.is_none() && v.features.is_empty() {
        return err(v.name.span(), "declare `level = ..` or `features = [..]`");
    }
    Ok(closure(set))
}

/// An expanded body element.
enum Item {
    Label(String, Span),
    Ins {
        p: Parsed,
        span: Span,
        text: String,
        comment: String,
    },
    Ret {
        span: Span,
        text: String,
        comment: String,
    },
}

struct Expander<'a> {
    block: &'a Block,
    env: Env,
    items: Vec<Item>,
    comments: Comments,
    depth: u32,
    macro_calls: u32,
    raw: bool,
}

/// `//` comments of source files, by (file, line).
#[derive(Default)]
struct Comments {
    files: HashMap<PathBuf, Vec<String>>,
}

impl Comments {
    fn for_span(&mut self, span: Span) -> String {
        let Some(path) = span.local_file() else {
            return String::new();
        };
        let line = span.start().line;
        let lines = self.files.entry(path.clone()).or_insert_with(|| {
            std::fs::read_to_string(&path)
                .map(|s| s.lines().map(str::to_string).collect())
                .unwrap_or_default()
        });
        lines
            .get(line.wrapping_sub(1))
            .map(|l| trailing_comment(l))
            .unwrap_or_default()
    }
}

/// The text after `//` outside string literals, trimmed.
fn trailing_comment(line: &str) -> String {
    let b = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => in_str = !in_str,
            b'\\' if in_str => i += 1,
            b'/' if !in_str && b[i + 1] == b'/' => {
                let rest = line[i + 2..].trim_start_matches('/');
                return rest.trim().to_string();
            }
            _ => {}
        }
        i += 1;
    }
    String::new()
}

/// Renders tokens for the listing, with loop variables and `v{i}` resolved.
fn render(tokens: &[TokenTree], env: &Env) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut prev_tight = true;
    while i < tokens.len() {
        let t = &tokens[i];
        let mut piece;
        let mut tight_before = false;
        let mut tight_after = false;
        match t {
            TokenTree::Ident(id) => {
                let name = id.to_string();
                piece = name.clone();
                if dsl::INDEXED_PREFIXES.contains(&name.as_str()) {
                    if let Some(TokenTree::Group(g)) = tokens.get(i + 1) {
                        if g.delimiter() == Delimiter::Brace {
                            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                            if let Ok(n) = eval_int(&inner, env, g.span()) {
                                piece = format!("{name}{n}");
                                i += 1;
                            }
                        }
                    }
                } else if let Some(v) = env.ints.get(&name) {
                    piece = v.to_string();
                }
            }
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let s = render(&inner, env);
                piece = match g.delimiter() {
                    Delimiter::Bracket => format!("[{s}]"),
                    Delimiter::Brace => {
                        tight_before = true;
                        format!("{{{s}}}")
                    }
                    Delimiter::Parenthesis => {
                        tight_before = true;
                        format!("({s})")
                    }
                    Delimiter::None => s,
                };
            }
            TokenTree::Punct(p) => {
                piece = p.as_char().to_string();
                match p.as_char() {
                    ',' | ':' => tight_before = true,
                    _ => {}
                }
                if p.spacing() == proc_macro2::Spacing::Joint {
                    tight_after = true;
                }
            }
            TokenTree::Literal(l) => piece = l.to_string(),
        }
        if !out.is_empty() && !prev_tight && !tight_before {
            out.push(' ');
        }
        out.push_str(&piece);
        prev_tight = tight_after;
        i += 1;
    }
    out
}

impl Expander<'_> {
    fn stmts(&mut self, stmts: &[Stmt]) -> Result<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<()> {
        match s {
            Stmt::Let { name, value } => match eval(value, &self.env, name.span())? {
                Val::Reg(r) => {
                    if dsl::INDEXED_PREFIXES.contains(&name.to_string().as_str()) {
                        return err(
                            name.span(),
                            format!("`{name}` is reserved for indexed registers"),
                        );
                    }
                    self.env.aliases.insert(name.to_string(), r);
                    self.env.ints.remove(&name.to_string());
                }
                Val::Int(v) => {
                    self.env.ints.insert(name.to_string(), v);
                }
                other => {
                    return err(
                        name.span(),
                        format!(
                            "`let` binds a register or integer, found {}",
                            dsl::describe(&other)
                        ),
                    )
                }
            },
            Stmt::Const { name, value } => {
                let v = eval_int(value, &self.env, name.span())?;
                self.env.ints.insert(name.to_string(), v);
            }
            Stmt::Label { name } => self.items.push(Item::Label(name.to_string(), name.span())),
            Stmt::Instr { tokens } => self.instr(tokens)?,
            Stmt::For {
                var,
                start,
                end,
                inclusive,
                body,
            } => {
                let a = eval_int(start, &self.env, var.span())?;
                let mut b = eval_int(end, &self.env, var.span())?;
                if *inclusive {
                    b += 1;
                }
                if b - a > 4096 {
                    return err(var.span(), "loop unrolls more than 4096 times");
                }
                let saved = self.env.ints.get(&var.to_string()).copied();
                for i in a..b {
                    self.env.ints.insert(var.to_string(), i);
                    self.stmts(body)?;
                }
                match saved {
                    Some(v) => self.env.ints.insert(var.to_string(), v),
                    None => self.env.ints.remove(&var.to_string()),
                };
            }
            Stmt::If { cond, then, els } => {
                let span = cond[0].span();
                let c = match eval(cond, &self.env, span)? {
                    Val::Int(v) => v != 0,
                    other => {
                        return err(
                            span,
                            format!(
                                "`if` needs an integer condition, found {}",
                                dsl::describe(&other)
                            ),
                        )
                    }
                };
                self.stmts(if c { then } else { els })?;
            }
            Stmt::Call { name, args } => {
                let Some(m) = self.block.macros.iter().find(|m| m.name == *name) else {
                    return err(
                        name.span(),
                        format!(
                            "no DSL macro `{name}` (define it with `macro {name}(..) {{ .. }}`)"
                        ),
                    );
                };
                if m.params.len() != args.len() {
                    return err(
                        name.span(),
                        format!(
                            "`{name}!` takes {} arguments, {} given",
                            m.params.len(),
                            args.len()
                        ),
                    );
                }
                if self.depth > 32 {
                    return err(name.span(), "DSL macros nest too deeply");
                }
                self.macro_calls += 1;
                let mut map: HashMap<String, Vec<TokenTree>> = HashMap::new();
                for (p, a) in m.params.iter().zip(args) {
                    map.insert(p.to_string(), a.clone());
                }
                // Labels defined in a macro body are local to each use.
                let mut labels = Vec::new();
                collect_labels(&m.body, &mut labels);
                for l in labels {
                    let fresh = format!("{l}__m{}", self.macro_calls);
                    map.entry(l.clone()).or_insert_with(|| {
                        vec![TokenTree::Ident(proc_macro2::Ident::new(
                            &fresh,
                            name.span(),
                        ))]
                    });
                }
                let body: Vec<Stmt> = m.body.iter().map(|s| subst_stmt(s, &map)).collect();
                self.depth += 1;
                let r = self.stmts(&body);
                self.depth -= 1;
                r?;
            }
        }
        Ok(())
    }

    fn instr(&mut self, tokens: &[TokenTree]) -> Result<()> {
        let span = tokens[0].span();
        let text = render(tokens, &self.env);
        let comment = self.comments.for_span(span);
        let mut i = 0;
        let mut p = Parsed::new("", Vec::new());
        loop {
            let Some(TokenTree::Ident(id)) = tokens.get(i) else {
                return err(
                    tokens.get(i).map_or(span, |t| t.span()),
                    "expected a mnemonic",
                );
            };
            let m = id.to_string().to_ascii_lowercase();
            // `public` is not an encoding prefix: it declares the
            // instruction's results public for the constant-time rule of
            // `#[secret]` kernels (it stays in the listing text, which is
            // how the checker finds it).
            let is_prefix = matches!(
                m.as_str(),
                "lock" | "rep" | "repe" | "repz" | "repne" | "repnz" | "public"
            ) && matches!(tokens.get(i + 1), Some(TokenTree::Ident(_)));
            if !is_prefix {
                p.mnemonic = m;
                i += 1;
                break;
            }
            match m.as_str() {
                "public" => {}
                "lock" => p.lock = true,
                "repne" | "repnz" => p.repne = true,
                _ => p.rep = true,
            }
            i += 1;
        }
        let mnemonic_span = tokens[i - 1].span();
        if p.mnemonic == "ret" && tokens.len() == i && !self.raw {
            self.items.push(Item::Ret {
                span: mnemonic_span,
                text,
                comment,
            });
            return Ok(());
        }
        for op in dsl::split_commas(&tokens[i..]) {
            let o = self.operand(&op, &mut p, mnemonic_span)?;
            p.ops.push(o);
        }
        self.items.push(Item::Ins {
            p,
            span: mnemonic_span,
            text,
            comment,
        });
        Ok(())
    }

    fn operand(&self, toks: &[TokenTree], p: &mut Parsed, span: Span) -> Result<Operand> {
        let span = toks.first().map_or(span, |t| t.span());
        // Trailing decorators: `{k1}`, `{z}`, `{1to16}` (a brace group not
        // preceded by an indexed-register prefix such as `v`).
        let mut end = toks.len();
        while end > 0 {
            let TokenTree::Group(g) = &toks[end - 1] else {
                break;
            };
            if g.delimiter() != Delimiter::Brace {
                break;
            }
            if end >= 2 {
                if let TokenTree::Ident(id) = &toks[end - 2] {
                    if dsl::INDEXED_PREFIXES.contains(&id.to_string().as_str()) {
                        break;
                    }
                }
            }
            self.decorator(g, p)?;
            end -= 1;
        }
        let toks = &toks[..end];
        if toks.is_empty() {
            return err(span, "empty operand");
        }
        // [size ptr] [ .. ]
        let mut size = None;
        let mut j = 0;
        if let (Some(TokenTree::Ident(kw)), Some(TokenTree::Ident(ptr))) =
            (toks.first(), toks.get(1))
        {
            if ptr == "ptr" {
                let k = kw.to_string();
                size = if k == "vword" {
                    if self.env.width == 0 {
                        return err(kw.span(), "`vword` needs a vector width on the variant");
                    }
                    Some(self.env.width)
                } else {
                    match isa::size_keyword(&k) {
                        Some(s) => Some(s),
                        None => return err(kw.span(), format!("unknown size `{k}`; use byte/word/dword/qword/xmmword/ymmword/zmmword/vword")),
                    }
                };
                j = 2;
            }
        }
        if let Some(TokenTree::Group(g)) = toks.get(j) {
            if g.delimiter() == Delimiter::Bracket {
                if toks.len() > j + 1 {
                    return err(
                        toks[j + 1].span(),
                        "unexpected tokens after the memory operand",
                    );
                }
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                return self.memory(&inner, size, g.span()).map(Operand::Mem);
            }
        }
        if size.is_some() {
            return err(span, "expected `[..]` after `ptr`");
        }
        match eval(toks, &self.env, span)? {
            Val::Int(v) => Ok(Operand::Imm(v)),
            Val::Reg(r) => Ok(Operand::Reg(r)),
            Val::Sym(s) => Ok(Operand::Label(s)),
            Val::Addr(_) => err(span, "an address expression needs brackets: `[..]`"),
        }
    }

    fn decorator(&self, g: &proc_macro2::Group, p: &mut Parsed) -> Result<()> {
        let inner: Vec<TokenTree> = g.stream().into_iter().collect();
        let text = inner.iter().map(|t| t.to_string()).collect::<String>();
        if text == "z" {
            p.zeroing = true;
            return Ok(());
        }
        if let Some(n) = text.strip_prefix("1to") {
            if n.parse::<u32>().is_ok() {
                p.broadcast = true;
                return Ok(());
            }
        }
        match eval(&inner, &self.env, g.span())? {
            Val::Reg(r) if r.is_k() && r != Register::K0 => {
                p.mask = r;
                Ok(())
            }
            _ => err(
                g.span(),
                "expected a decorator: `{k1}`..`{k7}`, `{z}` or `{1toN}`",
            ),
        }
    }

    fn memory(&self, inner: &[TokenTree], size: Option<u32>, span: Span) -> Result<Mem> {
        let lin = match eval(inner, &self.env, span)? {
            Val::Addr(l) => l,
            Val::Reg(r) => dsl::Lin {
                regs: vec![(r, 1)],
                ..Default::default()
            },
            Val::Sym(s) => dsl::Lin {
                syms: vec![(s, 1)],
                ..Default::default()
            },
            Val::Int(d) => dsl::Lin {
                disp: d,
                ..Default::default()
            },
        };
        let mut m = Mem {
            size,
            base: Register::None,
            index: Register::None,
            scale: 1,
            disp: lin.disp,
            sym: None,
        };
        for (s, k) in &lin.syms {
            if *k != 1 || m.sym.is_some() {
                return err(span, "a memory operand can add one constant-pool symbol");
            }
            if !self.block.data.iter().any(|d| d.name == s) {
                return err(span, format!("unknown name `{s}` in memory operand (not a register, constant or `data` item)"));
            }
            m.sym = Some(s.clone());
        }
        for (r, k) in &lin.regs {
            let (r, k) = (*r, *k);
            if r == Register::RIP {
                if k != 1 || m.base != Register::None {
                    return err(span, "`rip` must be the base");
                }
                m.base = Register::RIP;
            } else if k == 1 && m.base == Register::None && !r.is_vector_register() {
                m.base = r;
            } else if m.index == Register::None && matches!(k, 1 | 2 | 4 | 8) {
                m.index = r;
                m.scale = k as u32;
            } else {
                return err(span, "memory operands are [base + index*1|2|4|8 + disp]");
            }
        }
        if m.sym.is_some() {
            if m.base != Register::None && m.base != Register::RIP || m.index != Register::None {
                return err(span, "constant-pool data is addressed RIP-relative: write [NAME + disp] or [rip + NAME]");
            }
            m.base = Register::RIP;
        } else if m.base == Register::RIP {
            return err(
                span,
                "RIP-relative operands name a `data` item: [rip + NAME]",
            );
        }
        Ok(m)
    }
}

fn collect_labels(stmts: &[Stmt], out: &mut Vec<String>) {
    for s in stmts {
        match s {
            Stmt::Label { name } => out.push(name.to_string()),
            Stmt::For { body, .. } => collect_labels(body, out),
            Stmt::If { then, els, .. } => {
                collect_labels(then, out);
                collect_labels(els, out);
            }
            _ => {}
        }
    }
}

fn subst_tokens(t: &[TokenTree], map: &HashMap<String, Vec<TokenTree>>) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for tok in t {
        match tok {
            TokenTree::Ident(id) => match map.get(&id.to_string()) {
                Some(rep) => out.extend(rep.iter().cloned()),
                None => out.push(tok.clone()),
            },
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let mut ng = proc_macro2::Group::new(
                    g.delimiter(),
                    subst_tokens(&inner, map).into_iter().collect(),
                );
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            _ => out.push(tok.clone()),
        }
    }
    out
}

fn subst_stmt(s: &Stmt, map: &HashMap<String, Vec<TokenTree>>) -> Stmt {
    let st = |t: &Vec<TokenTree>| subst_tokens(t, map);
    let sb = |b: &Vec<Stmt>| b.iter().map(|x| subst_stmt(x, map)).collect();
    match s {
        Stmt::Let { name, value } => Stmt::Let {
            name: name.clone(),
            value: st(value),
        },
        Stmt::Const { name, value } => Stmt::Const {
            name: name.clone(),
            value: st(value),
        },
        Stmt::Label { name } => match map.get(&name.to_string()).map(|v| v.as_slice()) {
            Some([TokenTree::Ident(id)]) => Stmt::Label { name: id.clone() },
            _ => s.clone(),
        },
        Stmt::Instr { tokens } => Stmt::Instr { tokens: st(tokens) },
        Stmt::For {
            var,
            start,
            end,
            inclusive,
            body,
        } => Stmt::For {
            var: var.clone(),
            start: st(start),
            end: st(end),
            inclusive: *inclusive,
            body: sb(body),
        },
        Stmt::If { cond, then, els } => Stmt::If {
            cond: st(cond),
            then: sb(then),
            els: sb(els),
        },
        Stmt::Call { name, args } => Stmt::Call {
            name: name.clone(),
            args: args.iter().map(st).collect(),
        },
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
const ARG_REGS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];
const BRANCH_BASE: u64 = 0x4000_0000_0000;

fn gen(m: &str, ops: Vec<Operand>) -> Instruction {
    isa::assemble(&Parsed::new(m, ops)).unwrap_or_else(|e| panic!("generated `{m}`: {e}"))
}

fn reg(r: Register) -> Operand {
    Operand::Reg(r)
}

/// One instruction of the final stream.
struct Final {
    ins: Instruction,
    label: Option<String>,
    sym: Option<(String, i64)>,
    span: Span,
    text: String,
    comment: String,
}

fn compile_variant(block: &Block, k: &KernelDef, v: &VariantDef) -> Result<Variant> {
    let features = variant_features(v)?;
    let vname = v.name.to_string();
    let mut env = Env {
        variant: vname.clone(),
        frame: k.stack.is_some(),
        ..Env::default()
    };
    if let Some(w) = &v.width {
        let w = eval_int(w, &env, v.name.span())?;
        if !matches!(w, 0 | 16 | 32 | 64) {
            return err(v.name.span(), format!("width {w} is not 16, 32 or 64"));
        }
        env.width = w as u32;
    }
    for (name, value) in &block.consts {
        let val = eval_int(value, &env, name.span())?;
        env.ints.insert(name.to_string(), val);
    }
    for (i, (name, _)) in k.args.iter().enumerate() {
        env.aliases.insert(name.to_string(), ARG_REGS[i]);
    }
    let stack = match &k.stack {
        Some(t) => {
            let n = eval_int(t, &env, k.name.span())?;
            if !(0..=1 << 20).contains(&n) {
                return err(k.name.span(), "stack size must be 0..=1MiB");
            }
            Some((n + 63) & !63)
        }
        None => None,
    };
    let mut ex = Expander {
        block,
        env,
        items: Vec::new(),
        comments: Comments::default(),
        depth: 0,
        macro_calls: 0,
        raw: v.raw,
    };
    ex.stmts(&k.body)?;
    let width = ex.env.width;

    // Match, check features, collect labels.
    let mut labels = HashSet::new();
    for it in &ex.items {
        if let Item::Label(name, span) = it {
            if !labels.insert(name.clone()) {
                return err(*span, format!("label `{name}` defined twice (labels in `for` bodies repeat; use a macro for local labels)"));
            }
        }
    }
    let mut body: Vec<(Option<Instruction>, &Item)> = Vec::new();
    let mut errors: Option<dsl::Error> = None;
    let mut push_err = |e: dsl::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for it in &ex.items {
        match it {
            Item::Ins { p, span, text, .. } => {
                for o in &p.ops {
                    if let Operand::Label(l) = o {
                        if !labels.contains(l) {
                            push_err(dsl::Error::new(
                                *span,
                                format!("unknown label or name `{l}` in `{text}`"),
                            ));
                        }
                    }
                }
                match isa::assemble(p) {
                    Ok(ins) => {
                        let missing = isa::missing_features(&ins, features);
                        if !missing.is_empty() {
                            let lvl = v.level.as_ref().map_or_else(
                                || "custom features".to_string(),
                                |l| format!("level {l}"),
                            );
                            push_err(dsl::Error::new(
                                *span,
                                format!(
                                    "`{}` needs {}, which variant `{vname}` ({lvl}) does not declare",
                                    check::format(&ins),
                                    missing.join(" + ")
                                ),
                            ));
                        }
                        body.push((Some(ins), it));
                    }
                    Err(e) => push_err(dsl::Error::new(
                        *span,
                        format!("{e} (in `{text}`, variant `{vname}`)"),
                    )),
                }
            }
            _ => body.push((None, it)),
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }

    // What the body writes decides the prologue.
    let mut info = InstructionInfoFactory::new();
    let mut saved = Vec::new();
    let mut wide = false;
    for (ins, _) in &body {
        let Some(ins) = ins else { continue };
        for u in info.info(ins).used_registers() {
            if matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                let full = u.register().full_register();
                if CALLEE_SAVED.contains(&full) && !saved.contains(&full) {
                    saved.push(full);
                }
            }
        }
        wide |= ins.op_count() > 0
            && ins.op0_kind() == OpKind::Register
            && (ins.op0_register().is_ymm() || ins.op0_register().is_zmm());
    }
    saved.sort_by_key(|r| CALLEE_SAVED.iter().position(|c| c == r));
    if stack.is_some() && saved.contains(&Register::RBP) {
        let span = body.iter().find_map(|(i, it)| match (i, it) {
            (Some(i), Item::Ins { span, .. })
                if info.info(i).used_registers().iter().any(|u| {
                    u.register().full_register() == Register::RBP && u.access() != OpAccess::Read
                }) =>
            {
                Some(*span)
            }
            _ => None,
        });
        return err(
            span.unwrap_or(k.name.span()),
            "rbp is the frame pointer of a `#[stack]` kernel; pick another register",
        );
    }
    saved.retain(|r| *r != Register::RBP || stack.is_none());

    let fn_span = k.name.span();
    let mut fin: Vec<Final> = Vec::new();
    let mk = |ins: Instruction, span: Span, text: String, comment: &str| Final {
        ins,
        label: None,
        sym: None,
        span,
        text,
        comment: comment.to_string(),
    };
    if !v.raw {
        for &r in &saved {
            fin.push(mk(
                gen("push", vec![reg(r)]),
                fn_span,
                format!("push {}", isa::register_name(r)),
                "prologue: save callee-saved register",
            ));
        }
        if let Some(n) = stack {
            fin.push(mk(
                gen("push", vec![reg(Register::RBP)]),
                fn_span,
                "push rbp".into(),
                "prologue: frame",
            ));
            fin.push(mk(
                gen("mov", vec![reg(Register::RBP), reg(Register::RSP)]),
                fn_span,
                "mov rbp, rsp".into(),
                "prologue: frame",
            ));
            fin.push(mk(
                gen("and", vec![reg(Register::RSP), Operand::Imm(-64)]),
                fn_span,
                "and rsp, -64".into(),
                "prologue: align the scratch area",
            ));
            if n > 0 {
                fin.push(mk(
                    gen("sub", vec![reg(Register::RSP), Operand::Imm(n)]),
                    fn_span,
                    format!("sub rsp, {n}"),
                    "prologue: scratch area (`frame`)",
                ));
            }
        }
    }
    let mut pending_labels: Vec<String> = Vec::new();
    let mut label_lines: Vec<(usize, String, String)> = Vec::new();
    for (ins, it) in &body {
        match it {
            Item::Label(name, _) => pending_labels.push(name.clone()),
            Item::Ins {
                p,
                span,
                text,
                comment,
            } => {
                for l in pending_labels.drain(..) {
                    label_lines.push((fin.len(), l, String::new()));
                }
                let Some(ins) = ins else { continue };
                let label = p.ops.iter().find_map(|o| match o {
                    Operand::Label(l) => Some(l.clone()),
                    _ => None,
                });
                let sym = p.ops.iter().find_map(|o| match o {
                    Operand::Mem(Mem {
                        sym: Some(s), disp, ..
                    }) => Some((s.clone(), *disp)),
                    _ => None,
                });
                fin.push(Final {
                    ins: *ins,
                    label,
                    sym,
                    span: *span,
                    text: text.clone(),
                    comment: comment.clone(),
                });
            }
            Item::Ret {
                span,
                text,
                comment,
            } => {
                for l in pending_labels.drain(..) {
                    label_lines.push((fin.len(), l, String::new()));
                }
                let epi = if comment.is_empty() {
                    "epilogue".to_string()
                } else {
                    format!("epilogue; {comment}")
                };
                if let Some(_n) = stack {
                    fin.push(mk(
                        gen("mov", vec![reg(Register::RSP), reg(Register::RBP)]),
                        *span,
                        "mov rsp, rbp".into(),
                        &epi,
                    ));
                    fin.push(mk(
                        gen("pop", vec![reg(Register::RBP)]),
                        *span,
                        "pop rbp".into(),
                        &epi,
                    ));
                }
                for &r in saved.iter().rev() {
                    fin.push(mk(
                        gen("pop", vec![reg(r)]),
                        *span,
                        format!("pop {}", isa::register_name(r)),
                        &epi,
                    ));
                }
                if wide {
                    fin.push(mk(
                        gen("vzeroupper", vec![]),
                        *span,
                        "vzeroupper".into(),
                        &epi,
                    ));
                }
                fin.push(mk(gen("ret", vec![]), *span, text.clone(), comment));
            }
        }
    }
    if let Some(l) = pending_labels.first() {
        return err(
            fn_span,
            format!("label `{l}` is at the end of the kernel; put an instruction after it"),
        );
    }
    if fin.is_empty() {
        return err(fn_span, "the kernel has no instructions");
    }
    let mut label_index: HashMap<String, usize> = HashMap::new();
    for (idx, name, _) in &label_lines {
        label_index.insert(name.clone(), *idx);
    }

    // Constant pool: the data items this variant references.
    let mut used: Vec<&dsl::DataItem> = Vec::new();
    for f in &fin {
        if let Some((s, _)) = &f.sym {
            if let Some(d) = block.data.iter().find(|d| d.name == s) {
                if !used.iter().any(|u| u.name == d.name) {
                    used.push(d);
                }
            }
        }
    }
    let mut pool: Vec<(String, String, u64, Vec<u8>, u64)> = Vec::new(); // name, ty, align, bytes, offset
    for d in &used {
        let bytes = data_bytes(d, &ex.env)?;
        let align = match &d.align {
            Some(a) => eval_int(a, &ex.env, d.name.span())?,
            None => d.elem.size() as i64,
        };
        if align <= 0 || align & (align - 1) != 0 || align > 4096 {
            return err(d.name.span(), "alignment must be a power of two up to 4096");
        }
        pool.push((
            d.name.to_string(),
            d.ty_text.clone(),
            align as u64,
            bytes,
            0,
        ));
    }

    let encode = |fin: &mut Vec<Final>,
                  pool: &[(String, String, u64, Vec<u8>, u64)],
                  data_base: u64|
     -> Result<(Vec<u8>, Vec<u32>)> {
        for (idx, f) in fin.iter_mut().enumerate() {
            f.ins.set_ip(BRANCH_BASE + idx as u64);
            if let Some(l) = &f.label {
                let target = label_index[l];
                f.ins.set_near_branch64(BRANCH_BASE + target as u64);
            }
            if let Some((s, disp)) = &f.sym {
                let off = pool.iter().find(|p| &p.0 == s).map_or(0, |p| p.4);
                f.ins.set_memory_displacement64(
                    data_base.wrapping_add(off).wrapping_add(*disp as u64),
                );
            }
        }
        let instrs: Vec<Instruction> = fin.iter().map(|f| f.ins).collect();
        let r = BlockEncoder::encode(
            64,
            InstructionBlock::new(&instrs, 0),
            BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
        )
        .map_err(|e| dsl::Error::new(fn_span, format!("encoding variant `{vname}` failed: {e}")))?;
        Ok((r.code_buffer, r.new_instruction_offsets))
    };
    let layout = |pool: &mut Vec<(String, String, u64, Vec<u8>, u64)>, start: u64| -> u64 {
        let mut off = 0u64;
        let mut base = start;
        if let Some(max) = pool.iter().map(|p| p.2).max() {
            base = start.div_ceil(max) * max;
        }
        for p in pool.iter_mut() {
            off = off.div_ceil(p.2) * p.2;
            p.4 = off;
            off += p.3.len() as u64;
        }
        base
    };
    let guess = layout(&mut pool, 0x1_0000);
    let (first, _) = encode(&mut fin, &pool, guess)?;
    let base = layout(&mut pool, first.len() as u64);
    let (mut code, offsets) = encode(&mut fin, &pool, base)?;
    if code.len() != first.len() {
        return err(
            fn_span,
            "internal error: code size changed with the data layout",
        );
    }
    let code_len = code.len();
    code.resize(base as usize, 0xcc);
    for p in &pool {
        code.resize((base + p.4) as usize, 0);
        code.extend_from_slice(&p.3);
    }

    // Listing.
    let mut listing = Vec::new();
    let mut li = label_lines.iter().peekable();
    for (idx, f) in fin.iter().enumerate() {
        while let Some((at, name, _)) = li.peek() {
            if *at != idx {
                break;
            }
            listing.push(Line {
                offset: offsets[idx],
                len: 0,
                text: format!("{name}:"),
                comment: String::new(),
            });
            li.next();
        }
        let end = offsets.get(idx + 1).copied().unwrap_or(code_len as u32);
        listing.push(Line {
            offset: offsets[idx],
            len: end - offsets[idx],
            text: f.text.clone(),
            comment: f.comment.clone(),
        });
    }
    for p in &pool {
        listing.push(Line {
            offset: (base + p.4) as u32,
            len: p.3.len() as u32,
            text: format!("data {}: {} align {}", p.0, p.1, p.2),
            comment: String::new(),
        });
    }

    // Static checks on the final bytes.
    let expected: Vec<Instruction> = fin.iter().map(|f| f.ins).collect();
    let bounds: Vec<u32> = offsets.clone();
    let public: Vec<u32> = fin
        .iter()
        .zip(&offsets)
        .filter(|(f, _)| f.text.starts_with("public "))
        .map(|(_, &o)| o)
        .collect();
    let violations = check::check(&Input {
        bytes: &code,
        code_len,
        features,
        secret: k.secret,
        expected: Some(&expected),
        boundaries: Some(&bounds),
        public: &public,
    });
    if !violations.is_empty() {
        let mut e: Option<dsl::Error> = None;
        for vi in violations {
            let idx = offsets.iter().position(|&o| o == vi.offset);
            let span = idx.map_or(fn_span, |i| fin[i].span);
            let at = idx
                .map(|i| format!(" at `{}`", fin[i].text))
                .unwrap_or_default();
            let new = dsl::Error::new(
                span,
                format!(
                    "static check [{}] failed in variant `{vname}`{at}: {}",
                    vi.rule, vi.message
                ),
            );
            match &mut e {
                Some(all) => all.combine(new),
                None => e = Some(new),
            }
        }
        if let Some(e) = e {
            return Err(e);
        }
    }
    Ok(Variant {
        name: vname,
        features,
        width,
        code,
        code_len,
        listing,
    })
}

fn data_bytes(d: &dsl::DataItem, env: &Env) -> Result<Vec<u8>> {
    let span = d.name.span();
    let len = eval_int(&d.len, env, span)?;
    let values: Vec<i64> = match &d.init {
        DataInit::List(items) => items
            .iter()
            .map(|t| eval_int(t, env, span))
            .collect::<Result<_>>()?,
        DataInit::Repeat(v, n) => {
            let v = eval_int(v, env, span)?;
            let n = eval_int(n, env, span)?;
            vec![v; n.max(0) as usize]
        }
    };
    if values.len() as i64 != len {
        return err(
            span,
            format!(
                "`{}` declares {len} elements but has {}",
                d.name,
                values.len()
            ),
        );
    }
    let size = d.elem.size();
    let mut out = Vec::with_capacity(values.len() * size);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    Ok(out)
}

/// The Rust tokens for one compiled kernel.
pub fn emit(k: &KernelDef, c: &Kernel) -> TokenStream {
    let attrs = &k.attrs;
    let vis = &k.vis;
    let static_name = format_ident!(
        "{}",
        k.name.to_string().to_ascii_uppercase(),
        span = k.name.span()
    );
    let arg_tys = k.args.iter().map(|(_, t)| t);
    let ret = k.ret.as_ref().map(|t| quote!(-> #t));
    let name = &c.name;
    let sig = &c.signature;
    let doc = &c.doc;
    let secret = c.secret;
    let variants = c.variants.iter().map(|v| {
        let n = &v.name;
        let bits = v.features.bits();
        let w = v.width;
        let code = &v.code;
        let code_len = v.code_len as u32;
        let lines = v.listing.iter().map(|l| {
            let (o, n, t, cm) = (l.offset, l.len, &l.text, &l.comment);
            quote!(::marg_gen::rt::ListingLine { offset: #o, len: #n, text: #t, comment: #cm })
        });
        quote! {
            ::marg_gen::rt::VariantMeta {
                name: #n,
                features: ::marg_gen::features::FeatureSet::from_bits(#bits),
                width: #w,
                code: &[#(#code),*],
                code_len: #code_len,
                listing: &[#(#lines),*],
            }
        }
    });
    quote! {
        #(#attrs)*
        #vis static #static_name: ::marg_gen::rt::Kernel<unsafe extern "sysv64" fn(#(#arg_tys),*) #ret> = {
            static META: ::marg_gen::rt::KernelMeta = ::marg_gen::rt::KernelMeta {
                name: #name,
                signature: #sig,
                doc: #doc,
                secret: #secret,
                variants: &[#(#variants),*],
            };
            ::marg_gen::rt::Kernel::new(&META)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = r#"
        const STEP = 4;
        data ONES: [u8; 64] align 64 = [1; 64];
        macro hsum(dst, tmp) {
            if W == 16 { movq dst, tmp }
            else { vmovq dst, tmp }
        }
        /// Adds up 8-byte words.
        pub fn sum_words(ptr: *const u64, n: usize) -> u64 {
            variants {
                baseline(level = baseline, width = 16),
                avx2(level = avx2, width = 32),
                avx512(level = avx512, width = 64),
            }
            let acc = rax
            let i = rcx
            xor eax, eax
            xor ecx, ecx
            test n, n
            jz done
            top:
            add acc, qword ptr [ptr + i*8]
            add i, 1
            cmp i, n
            jb top
            done:
            lea rdx, [ONES]
            if W == 32 { vpxor v{STEP-4}, v0, v0 }  // zero
            else if W == 64 { vpxord v{STEP-4}, v0, v0 }
            hsum!(rsi, xmm0)
            if VARIANT == baseline { pxor xmm1, xmm1 }
            ret
        }
    "#;

    #[test]
    fn compiles_three_variants() {
        let ks = compile_str(SUM).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ks.len(), 1);
        let k = &ks[0];
        assert_eq!(k.doc, "Adds up 8-byte words.");
        assert_eq!(k.variants.len(), 3);
        for v in &k.variants {
            assert!(v.code.len() > v.code_len);
            assert_eq!(v.code.len() % 64, 0, "pool aligned to 64");
            assert!(v.listing.iter().any(|l| l.text == "top:"));
        }
        // Only the wide variants need vzeroupper.
        let has_vzu = |v: &Variant| v.listing.iter().any(|l| l.text == "vzeroupper");
        assert!(!has_vzu(&k.variants[0]));
        assert!(has_vzu(&k.variants[1]));
        assert!(has_vzu(&k.variants[2]));
    }

    #[test]
    fn errors() {
        let e = |body: &str, vars: &str| {
            let src = format!("fn k(a: u64) {{ variants {{ {vars} }} {body}\n ret }}");
            compile_str(&src)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let avx2 = "avx2(level = avx2, width = 32)";
        assert_eq!(
            e("vpcmpeqx ymm0, ymm1, ymm2", avx2),
            "unknown mnemonic `vpcmpeqx` (in `vpcmpeqx ymm0, ymm1, ymm2`, variant `avx2`)"
        );
        assert!(e("vpcmpeqb k1, zmm0, zmm1", avx2).starts_with("`vpcmpeqb k1, zmm0, zmm1` needs AVX512BW, which variant `avx2` (level avx2) does not declare"));
        assert!(e("vpcmpeqb ymm0, rax", avx2).contains("vpcmpeqb has no form (ymm, gpr64)"));
        assert!(e("jmp nowhere", avx2).contains("unknown label"));
        assert!(e("mov rbx, 1", "r(level = avx2, raw)").contains("static check [callee-saved]"));
        assert!(
            e("mov rbx, 1", avx2).is_empty(),
            "generated prologue saves rbx"
        );
        assert!(e("vpxor ymm0, ymm0, ymm0", "r(level = avx2, raw)").contains("[vzeroupper]"));
    }

    /// The example of book/src/dsl.md.
    #[test]
    fn book_example() {
        let src = r#"
            data NEWLINES: [u8; 64] align 64 = [0x0a; 64];
            macro cmpeq_mask(dst, a, mem) {
                if W == 16 { movdqu v1, mem; pcmpeqb v1, a; pmovmskb gpr32(dst), v1 }
                else if W == 32 { vpcmpeqb v1, a, mem; vpmovmskb gpr32(dst), v1 }
                else { vpcmpeqb k1, a, mem; kmovq dst, k1 }
            }
            pub fn count_newlines(ptr: *const u8, len: usize) -> usize {
                variants {
                    baseline(level = baseline, width = 16),
                    avx2(level = avx2, width = 32),
                    avx512(level = avx512, width = 64),
                }
                let nl = v0
                let idx = rcx
                let count = rax
                if W == 16 { movdqa nl, [NEWLINES] }
                else if W == 32 { vmovdqa nl, [NEWLINES] }
                else { vmovdqa64 nl, [NEWLINES] }
                xor count, count
                xor idx, idx
                test len, len
                jz done
                top:
                cmpeq_mask!(rdx, nl, [ptr + idx])
                popcnt rdx, rdx
                add count, rdx
                add idx, W
                cmp idx, len
                jb top
                done:
                rep stosb
                ret
            }
        "#;
        let ks = compile_str(src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ks[0].variants.len(), 3);
    }

    #[test]
    fn stack_frame_and_masks() {
        let src = r#"
            #[stack = 100]
            fn k(p: *const u8) -> u64 {
                variants { z(level = avx512, width = 64) }
                vmovdqu8 v1 {k1}{z}, [p]
                vmovdqa64 [frame + 64], v1
                vpaddd zmm2, zmm1, dword ptr [p] {1to16}
                mov r12, 5
                mov rax, r12
                ret
            }
        "#;
        let ks = compile_str(src).unwrap_or_else(|e| panic!("{e}"));
        let texts: Vec<&str> = ks[0].variants[0]
            .listing
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(
            &texts[..5],
            [
                "push r12",
                "push rbp",
                "mov rbp, rsp",
                "and rsp, -64",
                "sub rsp, 128"
            ]
        );
    }
}
