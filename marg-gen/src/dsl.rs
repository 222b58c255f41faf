//! The `marg_asm!` syntax: parsing a block into items and statements, and
//! the generation-time expression evaluator.
//!
//! Statements end at `;` or at the end of a line (token line numbers come
//! from proc-macro2's `span-locations`). Instruction operands stay as tokens
//! until expansion, where they are evaluated per variant (`W`, loop
//! variables and constants differ between variants and iterations).

use crate::isa::register_by_name;
use iced_x86::Register;
use proc_macro2::{Delimiter, Ident, Spacing, Span, TokenStream, TokenTree};
use std::collections::HashMap;

/// Front-end errors carry the span of the offending token.
pub type Error = syn::Error;
/// Front-end result.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err<T>(span: Span, msg: impl std::fmt::Display) -> Result<T> {
    Err(Error::new(span, msg))
}

/// A whole `marg_asm! { .. }` block.
#[derive(Default)]
pub struct Block {
    pub consts: Vec<(Ident, Vec<TokenTree>)>,
    pub data: Vec<DataItem>,
    pub macros: Vec<MacroDef>,
    pub kernels: Vec<KernelDef>,
}

/// Element type of a constant-pool array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    U8,
    U16,
    U32,
    U64,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::U8 => 1,
            Elem::U16 => 2,
            Elem::U32 => 4,
            Elem::U64 => 8,
        }
    }
}

/// `data NAME: [u8; N] align A = [..];`
pub struct DataItem {
    pub name: Ident,
    pub elem: Elem,
    pub len: Vec<TokenTree>,
    pub align: Option<Vec<TokenTree>>,
    /// Either a list of element expressions or `[value; count]`.
    pub init: DataInit,
    pub ty_text: String,
}

/// The initialiser of a data item.
pub enum DataInit {
    List(Vec<Vec<TokenTree>>),
    Repeat(Vec<TokenTree>, Vec<TokenTree>),
}

/// `macro name(params) { body }`
pub struct MacroDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Vec<Stmt>,
}

/// One variant declaration: `name(level = .., features = [..], width = .., raw)`.
pub struct VariantDef {
    pub name: Ident,
    pub level: Option<Ident>,
    pub features: Vec<Ident>,
    pub width: Option<Vec<TokenTree>>,
    pub raw: bool,
}

/// One `fn` in the block.
pub struct KernelDef {
    /// Attributes forwarded to the emitted static (docs, lints).
    pub attrs: Vec<syn::Attribute>,
    pub doc: String,
    pub secret: bool,
    pub stack: Option<Vec<TokenTree>>,
    pub vis: syn::Visibility,
    pub name: Ident,
    pub args: Vec<(Ident, syn::Type)>,
    pub ret: Option<syn::Type>,
    pub signature: String,
    pub variants: Vec<VariantDef>,
    pub body: Vec<Stmt>,
}

/// A body statement.
#[derive(Clone)]
pub enum Stmt {
    /// `let role = reg;` (or an integer).
    Let { name: Ident, value: Vec<TokenTree> },
    /// `const NAME = expr;` inside a body.
    Const { name: Ident, value: Vec<TokenTree> },
    /// `name:`
    Label { name: Ident },
    /// `mnemonic operands`
    Instr { tokens: Vec<TokenTree> },
    /// `for i in a..b { .. }` / `a..=b`
    For {
        var: Ident,
        start: Vec<TokenTree>,
        end: Vec<TokenTree>,
        inclusive: bool,
        body: Vec<Stmt>,
    },
    /// `if cond { .. } else { .. }`
    If {
        cond: Vec<TokenTree>,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    /// `name!(args)`
    Call {
        name: Ident,
        args: Vec<Vec<TokenTree>>,
    },
}

fn is_punct(t: &TokenTree, c: char) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == c)
}

fn is_ident(t: &TokenTree, s: &str) -> bool {
    matches!(t, TokenTree::Ident(i) if i == s)
}

fn brace(t: &TokenTree) -> Option<TokenStream> {
    match t {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => Some(g.stream()),
        _ => None,
    }
}

/// Splits `tokens` at top-level commas.
pub fn split_commas(tokens: &[TokenTree]) -> Vec<Vec<TokenTree>> {
    let mut out = vec![Vec::new()];
    for t in tokens {
        if is_punct(t, ',') {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.push(t.clone());
        }
    }
    if out.last().is_some_and(|v| v.is_empty()) {
        out.pop();
    }
    out
}

/// Parses a block.
pub fn parse_block(input: TokenStream) -> Result<Block> {
    let t: Vec<TokenTree> = input.into_iter().collect();
    let mut block = Block::default();
    let mut attrs: Vec<TokenTree> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if is_punct(&t[i], ';') {
            i += 1;
            continue;
        }
        if is_punct(&t[i], '#') {
            if let Some(TokenTree::Group(g)) = t.get(i + 1) {
                if g.delimiter() == Delimiter::Bracket {
                    attrs.push(t[i].clone());
                    attrs.push(t[i + 1].clone());
                    i += 2;
                    continue;
                }
            }
            return err(t[i].span(), "expected an attribute");
        }
        if is_ident(&t[i], "const") {
            let end = find_semi(&t, i)?;
            let name = expect_ident(&t, i + 1)?;
            let mut j = i + 2;
            if t.get(j).is_some_and(|x| is_punct(x, ':')) {
                j += 2; // `: type`
            }
            if !t.get(j).is_some_and(|x| is_punct(x, '=')) {
                return err(name.span(), "expected `const NAME = expr;`");
            }
            block.consts.push((name, t[j + 1..end].to_vec()));
            i = end + 1;
            continue;
        }
        if is_ident(&t[i], "data") {
            let end = find_semi(&t, i)?;
            block.data.push(parse_data(&t[i + 1..end], t[i].span())?);
            i = end + 1;
            continue;
        }
        if is_ident(&t[i], "macro") {
            let name = expect_ident(&t, i + 1)?;
            let params = match t.get(i + 2) {
                Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
                    let toks: Vec<TokenTree> = g.stream().into_iter().collect();
                    let mut ps = Vec::new();
                    for p in split_commas(&toks) {
                        match p.as_slice() {
                            [TokenTree::Ident(id)] => ps.push(id.clone()),
                            _ => return err(g.span(), "macro parameters are plain names"),
                        }
                    }
                    ps
                }
                _ => return err(name.span(), "expected `macro name(params) { .. }`"),
            };
            let Some(body) = t.get(i + 3).and_then(brace) else {
                return err(name.span(), "expected the macro body `{ .. }`");
            };
            let body = parse_stmts(body, false)?;
            block.macros.push(MacroDef { name, params, body });
            i += 4;
            continue;
        }
        // A kernel: [vis] fn name(args) [-> ret] { body }
        let Some(fn_pos) = (i..t.len()).find(|&j| is_ident(&t[j], "fn")) else {
            return err(
                t[i].span(),
                "expected `const`, `data`, `macro` or a kernel `fn`",
            );
        };
        let Some(body_pos) = (fn_pos..t.len()).find(|&j| brace(&t[j]).is_some()) else {
            return err(t[fn_pos].span(), "expected the kernel body `{ .. }`");
        };
        let vis: syn::Visibility = syn::parse2(t[i..fn_pos].iter().cloned().collect())?;
        let sig: syn::Signature = syn::parse2(t[fn_pos..body_pos].iter().cloned().collect())?;
        let body = brace(&t[body_pos]).unwrap_or_default();
        let attr_tokens: TokenStream = attrs.drain(..).collect();
        let parsed_attrs = syn::parse::Parser::parse2(syn::Attribute::parse_outer, attr_tokens)?;
        block
            .kernels
            .push(parse_kernel(parsed_attrs, vis, sig, body)?);
        i = body_pos + 1;
    }
    if let Some(a) = attrs.first() {
        return err(a.span(), "attribute without an item");
    }
    Ok(block)
}

fn find_semi(t: &[TokenTree], from: usize) -> Result<usize> {
    (from..t.len())
        .find(|&j| is_punct(&t[j], ';'))
        .map_or_else(|| err(t[from].span(), "expected `;`"), Ok)
}

fn expect_ident(t: &[TokenTree], i: usize) -> Result<Ident> {
    match t.get(i) {
        Some(TokenTree::Ident(id)) => Ok(id.clone()),
        Some(other) => err(other.span(), "expected a name"),
        None => err(
            t.last().map_or_else(Span::call_site, |x| x.span()),
            "expected a name",
        ),
    }
}

fn parse_data(t: &[TokenTree], span: Span) -> Result<DataItem> {
    // NAME : [ty; len] [align A] = init
    let name = expect_ident(t, 0)?;
    if !t.get(1).is_some_and(|x| is_punct(x, ':')) {
        return err(name.span(), "expected `data NAME: [u8; N] = [..];`");
    }
    let (elem, len, ty_text) = match t.get(2) {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            let Some(TokenTree::Ident(ty)) = inner.first() else {
                return err(g.span(), "expected `[u8; N]`");
            };
            let elem = match ty.to_string().as_str() {
                "u8" | "i8" => Elem::U8,
                "u16" | "i16" => Elem::U16,
                "u32" | "i32" => Elem::U32,
                "u64" | "i64" => Elem::U64,
                _ => return err(ty.span(), "data elements are u8/u16/u32/u64 (or signed)"),
            };
            if !inner.get(1).is_some_and(|x| is_punct(x, ';')) {
                return err(g.span(), "expected `[u8; N]`");
            }
            (elem, inner[2..].to_vec(), g.to_string())
        }
        _ => return err(name.span(), "expected `[u8; N]` after the name"),
    };
    let mut j = 3;
    let mut align = None;
    if t.get(j).is_some_and(|x| is_ident(x, "align")) {
        let eq = (j..t.len())
            .find(|&k| is_punct(&t[k], '='))
            .unwrap_or(t.len());
        align = Some(t[j + 1..eq].to_vec());
        j = eq;
    }
    if !t.get(j).is_some_and(|x| is_punct(x, '=')) {
        return err(name.span(), "expected `= [..]`");
    }
    let init = match t.get(j + 1) {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            if let Some(semi) = inner.iter().position(|x| is_punct(x, ';')) {
                DataInit::Repeat(inner[..semi].to_vec(), inner[semi + 1..].to_vec())
            } else {
                DataInit::List(split_commas(&inner))
            }
        }
        _ => return err(span, "expected `= [..]`"),
    };
    Ok(DataItem {
        name,
        elem,
        len,
        align,
        init,
        ty_text,
    })
}

fn parse_kernel(
    attrs: Vec<syn::Attribute>,
    vis: syn::Visibility,
    sig: syn::Signature,
    body: TokenStream,
) -> Result<KernelDef> {
    let mut fwd = Vec::new();
    let mut doc = String::new();
    let mut secret = false;
    let mut stack = None;
    let mut in_first_para = true;
    for a in attrs {
        if a.path().is_ident("secret") {
            secret = true;
        } else if a.path().is_ident("stack") {
            let toks = match &a.meta {
                syn::Meta::NameValue(nv) => nv.value.to_token_stream_(),
                syn::Meta::List(l) => l.tokens.clone(),
                syn::Meta::Path(p) => return err(p_span(p), "write `#[stack = BYTES]`"),
            };
            stack = Some(toks.into_iter().collect());
        } else {
            if a.path().is_ident("doc") {
                if let syn::Meta::NameValue(nv) = &a.meta {
                    if let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = &nv.value
                    {
                        let line = s.value();
                        let line = line.trim();
                        if line.is_empty() {
                            if !doc.is_empty() {
                                in_first_para = false;
                            }
                        } else if in_first_para {
                            if !doc.is_empty() {
                                doc.push(' ');
                            }
                            doc.push_str(line);
                        }
                    }
                }
            }
            fwd.push(a);
        }
    }
    let mut args = Vec::new();
    for a in &sig.inputs {
        match a {
            syn::FnArg::Typed(pt) => {
                let syn::Pat::Ident(pi) = &*pt.pat else {
                    return err(
                        syn::spanned::Spanned::span(&pt.pat),
                        "arguments are plain names",
                    );
                };
                check_arg_type(&pt.ty)?;
                args.push((pi.ident.clone(), (*pt.ty).clone()));
            }
            syn::FnArg::Receiver(r) => {
                return err(syn::spanned::Spanned::span(r), "kernels take no self")
            }
        }
    }
    if args.len() > 6 {
        return err(
            sig.ident.span(),
            "at most six arguments (the SysV registers rdi, rsi, rdx, rcx, r8, r9)",
        );
    }
    let ret = match &sig.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => {
            check_arg_type(ty)?;
            Some((**ty).clone())
        }
    };
    let signature = {
        use quote::ToTokens;
        let s = sig.to_token_stream().to_string();
        s.replace(" (", "(")
            .replace(" ,", ",")
            .replace(" :", ":")
            .replace("* const", "*const")
            .replace("* mut", "*mut")
            .replace("( ", "(")
            .replace(" )", ")")
    };
    let mut toks: Vec<TokenTree> = body.into_iter().collect();
    let mut variants = Vec::new();
    if let Some(k) = toks.iter().position(|t| is_ident(t, "variants")) {
        if let Some(vb) = toks.get(k + 1).and_then(brace) {
            variants = parse_variants(vb)?;
            toks.drain(k..k + 2);
        }
    }
    if variants.is_empty() {
        return err(
            sig.ident.span(),
            "a kernel needs `variants { name(level = .., width = ..), .. }`",
        );
    }
    let body = parse_stmts(toks.into_iter().collect(), false)?;
    Ok(KernelDef {
        attrs: fwd,
        doc,
        secret,
        stack,
        vis,
        name: sig.ident.clone(),
        args,
        ret,
        signature,
        variants,
        body,
    })
}

trait ToTokenStream {
    fn to_token_stream_(&self) -> TokenStream;
}
impl<T: quote::ToTokens> ToTokenStream for T {
    fn to_token_stream_(&self) -> TokenStream {
        self.to_token_stream()
    }
}

fn p_span(p: &syn::Path) -> Span {
    syn::spanned::Spanned::span(p)
}

fn check_arg_type(ty: &syn::Type) -> Result<()> {
    let ok = match ty {
        syn::Type::Ptr(_) => true,
        syn::Type::Path(p) => p.path.get_ident().is_some_and(|id| {
            matches!(
                id.to_string().as_str(),
                "u8" | "u16"
                    | "u32"
                    | "u64"
                    | "i8"
                    | "i16"
                    | "i32"
                    | "i64"
                    | "usize"
                    | "isize"
                    | "bool"
            )
        }),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        err(
            syn::spanned::Spanned::span(ty),
            "kernel arguments and results are integers, bool or raw pointers",
        )
    }
}

fn parse_variants(ts: TokenStream) -> Result<Vec<VariantDef>> {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    let mut out = Vec::new();
    for v in split_commas(&toks) {
        let name = expect_ident(&v, 0)?;
        let mut def = VariantDef {
            name: name.clone(),
            level: None,
            features: Vec::new(),
            width: None,
            raw: false,
        };
        match v.get(1) {
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for kv in split_commas(&inner) {
                    let key = expect_ident(&kv, 0)?;
                    let ks = key.to_string();
                    if ks == "raw" && kv.len() == 1 {
                        def.raw = true;
                        continue;
                    }
                    if !kv.get(1).is_some_and(|x| is_punct(x, '=')) {
                        return err(
                            key.span(),
                            "expected `key = value` (level, features, width) or `raw`",
                        );
                    }
                    let val = &kv[2..];
                    match ks.as_str() {
                        "level" => def.level = Some(expect_ident(val, 0)?),
                        "width" => def.width = Some(val.to_vec()),
                        "features" => match val.first() {
                            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => {
                                let fs: Vec<TokenTree> = g.stream().into_iter().collect();
                                for f in split_commas(&fs) {
                                    def.features.push(expect_ident(&f, 0)?);
                                }
                            }
                            _ => return err(key.span(), "expected `features = [avx2, bmi2, ..]`"),
                        },
                        _ => {
                            return err(
                                key.span(),
                                format!(
                                    "unknown variant key `{ks}`; use level, features, width or raw"
                                ),
                            )
                        }
                    }
                }
            }
            None => {}
            Some(t) => return err(t.span(), "expected `(level = .., width = ..)`"),
        }
        out.push(def);
    }
    Ok(out)
}

/// Parses body statements. `in_group` is unused for now (kept for nested
/// blocks that may one day differ).
pub fn parse_stmts(ts: TokenStream, _in_group: bool) -> Result<Vec<Stmt>> {
    let t: Vec<TokenTree> = ts.into_iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let tok = &t[i];
        if is_punct(tok, ';') {
            i += 1;
            continue;
        }
        if is_punct(tok, '#')
            && matches!(t.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket)
        {
            // `///` inside a body: a comment; the listing reads comments
            // from the source file.
            i += 2;
            continue;
        }
        let TokenTree::Ident(id) = tok else {
            return err(
                tok.span(),
                "expected an instruction, label, `let`, `for`, `if` or a macro call",
            );
        };
        let kw = id.to_string();
        match kw.as_str() {
            "let" | "const" => {
                let end = stmt_end(&t, i);
                let name = expect_ident(&t, i + 1)?;
                if !t.get(i + 2).is_some_and(|x| is_punct(x, '=')) || i + 3 >= end {
                    return err(name.span(), format!("expected `{kw} name = value;`"));
                }
                let value = t[i + 3..end].to_vec();
                out.push(if kw == "let" {
                    Stmt::Let { name, value }
                } else {
                    Stmt::Const { name, value }
                });
                i = end;
            }
            "for" => {
                let var = expect_ident(&t, i + 1)?;
                if !t.get(i + 2).is_some_and(|x| is_ident(x, "in")) {
                    return err(var.span(), "expected `for i in a..b { .. }`");
                }
                let Some(bpos) = body_brace(&t, i + 3) else {
                    return err(var.span(), "expected the loop body `{ .. }`");
                };
                let range = &t[i + 3..bpos];
                let Some(dots) = (0..range.len().saturating_sub(1))
                    .find(|&j| is_punct(&range[j], '.') && is_punct(&range[j + 1], '.'))
                else {
                    return err(var.span(), "expected a range `a..b` or `a..=b`");
                };
                let inclusive = range.get(dots + 2).is_some_and(|x| is_punct(x, '='));
                let start = range[..dots].to_vec();
                let end = range[dots + 2 + usize::from(inclusive)..].to_vec();
                let body = parse_stmts(brace(&t[bpos]).unwrap_or_default(), true)?;
                out.push(Stmt::For {
                    var,
                    start,
                    end,
                    inclusive,
                    body,
                });
                i = bpos + 1;
            }
            "if" => {
                let (stmt, next) = parse_if(&t, i)?;
                out.push(stmt);
                i = next;
            }
            _ => {
                if t.get(i + 1).is_some_and(|x| is_punct(x, '!')) {
                    if let Some(TokenTree::Group(g)) = t.get(i + 2) {
                        if g.delimiter() == Delimiter::Parenthesis {
                            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                            out.push(Stmt::Call {
                                name: id.clone(),
                                args: split_commas(&inner),
                            });
                            i += 3;
                            continue;
                        }
                    }
                }
                if let Some(TokenTree::Punct(p)) = t.get(i + 1) {
                    if p.as_char() == ':' && p.spacing() == Spacing::Alone {
                        out.push(Stmt::Label { name: id.clone() });
                        i += 2;
                        continue;
                    }
                }
                let end = stmt_end(&t, i);
                out.push(Stmt::Instr {
                    tokens: t[i..end].to_vec(),
                });
                i = end;
            }
        }
    }
    Ok(out)
}

/// The end (exclusive) of the statement starting at `i`: the next top-level
/// `;` or the first token on a later line.
fn stmt_end(t: &[TokenTree], i: usize) -> usize {
    let mut line = t[i].span().end().line;
    let mut j = i + 1;
    while j < t.len() {
        if is_punct(&t[j], ';') {
            return j;
        }
        if t[j].span().start().line > line {
            return j;
        }
        line = t[j].span().end().line;
        j += 1;
    }
    j
}

/// The first brace group from `from` that is a body, not the index of
/// `v{i}`.
fn body_brace(t: &[TokenTree], from: usize) -> Option<usize> {
    (from..t.len()).find(|&j| {
        brace(&t[j]).is_some()
            && !(j > 0
                && matches!(&t[j - 1], TokenTree::Ident(id) if INDEXED_PREFIXES.contains(&id.to_string().as_str())))
    })
}

fn parse_if(t: &[TokenTree], i: usize) -> Result<(Stmt, usize)> {
    let Some(bpos) = body_brace(t, i + 1) else {
        return err(t[i].span(), "expected `if cond { .. }`");
    };
    let cond = t[i + 1..bpos].to_vec();
    if cond.is_empty() {
        return err(t[i].span(), "`if` needs a condition");
    }
    let then = parse_stmts(brace(&t[bpos]).unwrap_or_default(), true)?;
    let mut next = bpos + 1;
    let mut els = Vec::new();
    if t.get(next).is_some_and(|x| is_ident(x, "else")) {
        if t.get(next + 1).is_some_and(|x| is_ident(x, "if")) {
            let (s, n) = parse_if(t, next + 1)?;
            els.push(s);
            next = n;
        } else if let Some(b) = t.get(next + 1).and_then(brace) {
            els = parse_stmts(b, true)?;
            next += 2;
        } else {
            return err(t[next].span(), "expected `else { .. }` or `else if`");
        }
    }
    Ok((Stmt::If { cond, then, els }, next))
}

/// A generation-time value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Int(i64),
    Reg(Register),
    /// A name that is neither a constant nor a register: a label, a data
    /// symbol, a variant name.
    Sym(String),
    /// A linear address expression (registers, symbols and a displacement).
    Addr(Lin),
}

/// `sum(reg * coef) + sum(sym * coef) + disp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lin {
    pub regs: Vec<(Register, i64)>,
    pub syms: Vec<(String, i64)>,
    pub disp: i64,
}

impl Lin {
    fn from(v: Val) -> Lin {
        match v {
            Val::Int(d) => Lin {
                disp: d,
                ..Lin::default()
            },
            Val::Reg(r) => Lin {
                regs: vec![(r, 1)],
                ..Lin::default()
            },
            Val::Sym(s) => Lin {
                syms: vec![(s, 1)],
                ..Lin::default()
            },
            Val::Addr(l) => l,
        }
    }
    fn scale(mut self, k: i64) -> Lin {
        for r in &mut self.regs {
            r.1 *= k;
        }
        for s in &mut self.syms {
            s.1 *= k;
        }
        self.disp = self.disp.wrapping_mul(k);
        self
    }
    fn add(mut self, o: Lin) -> Lin {
        // Terms stay separate: `[r + r*4]` is base r, index r, scale 4.
        self.regs.extend(o.regs);
        self.regs.retain(|x| x.1 != 0);
        self.syms.extend(o.syms);
        self.disp = self.disp.wrapping_add(o.disp);
        self
    }
}

/// Names visible to generation-time expressions.
#[derive(Clone, Default)]
pub struct Env {
    pub ints: HashMap<String, i64>,
    pub aliases: HashMap<String, Register>,
    /// `VARIANT`'s value.
    pub variant: String,
    /// Vector width in bytes (0: none declared).
    pub width: u32,
    /// Whether `frame` names the scratch area (kernel has `#[stack = N]`).
    pub frame: bool,
}

/// Register-name prefixes that take a `{expr}` index (`v{i}`, `r{8+i}`).
pub const INDEXED_PREFIXES: [&str; 6] = ["v", "r", "xmm", "ymm", "zmm", "k"];

impl Env {
    /// Resolves a register name or role alias.
    pub fn register(&self, name: &str, span: Span) -> Result<Option<Register>> {
        if let Some(&r) = self.aliases.get(name) {
            return Ok(Some(r));
        }
        if name == "frame" && self.frame {
            return Ok(Some(Register::RSP));
        }
        if let Some(n) = name.strip_prefix('v').and_then(|d| d.parse::<u32>().ok()) {
            let prefix = match self.width {
                16 => "xmm",
                32 => "ymm",
                64 => "zmm",
                0 => {
                    return err(
                        span,
                        format!(
                        "`{name}` needs a vector width: declare `width = 16|32|64` on the variant"
                    ),
                    )
                }
                w => return err(span, format!("width {w} is not 16, 32 or 64")),
            };
            return match register_by_name(&format!("{prefix}{n}")) {
                Some(r) => Ok(Some(r)),
                None => err(span, format!("no vector register {name}")),
            };
        }
        Ok(register_by_name(name))
    }
}

/// Register-view functions: `xmm(v3)` is xmm3 whatever the width,
/// `gpr32(rax)` is eax.
pub const VIEWS: [&str; 7] = ["xmm", "ymm", "zmm", "gpr8", "gpr16", "gpr32", "gpr64"];

/// The `kind` view of `r` (same register number, other class or size).
pub fn view(kind: &str, r: Register) -> Option<Register> {
    let is_vec = r.is_xmm() || r.is_ymm() || r.is_zmm();
    Register::values().find(|c| match kind {
        "xmm" => is_vec && c.is_xmm() && c.number() == r.number(),
        "ymm" => is_vec && c.is_ymm() && c.number() == r.number(),
        "zmm" => is_vec && c.is_zmm() && c.number() == r.number(),
        _ => {
            let bits: usize = kind[3..].parse().unwrap_or(0);
            r.is_gpr()
                && c.is_gpr()
                && c.size() * 8 == bits
                && c.full_register() == r.full_register()
                && !matches!(
                    *c,
                    Register::AH | Register::CH | Register::DH | Register::BH
                )
        }
    })
}

/// Parses an integer literal (`0x0d`, `0b1010`, `1_000`, optional integer suffix).
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.replace('_', "");
    let s = s.as_str();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x") {
        (h, 16)
    } else if let Some(b) = s.strip_prefix("0b") {
        (b, 2)
    } else if let Some(o) = s.strip_prefix("0o") {
        (o, 8)
    } else {
        (s, 10)
    };
    let digits = [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ]
    .iter()
    .find_map(|suf| {
        digits
            .strip_suffix(suf)
            .filter(|_| radix != 16 || !suf.is_empty())
    })
    .unwrap_or(digits);
    u64::from_str_radix(digits, radix).ok().map(|v| v as i64)
}

/// Evaluates a generation-time expression.
pub fn eval(tokens: &[TokenTree], env: &Env, span: Span) -> Result<Val> {
    if tokens.is_empty() {
        return err(span, "expected an expression");
    }
    let mut p = Parser {
        t: tokens,
        i: 0,
        env,
    };
    let v = p.expr(0)?;
    if p.i < tokens.len() {
        return err(
            tokens[p.i].span(),
            format!("unexpected `{}` in expression", tokens[p.i]),
        );
    }
    Ok(v)
}

/// Evaluates an expression that must be an integer.
pub fn eval_int(tokens: &[TokenTree], env: &Env, span: Span) -> Result<i64> {
    match eval(tokens, env, span)? {
        Val::Int(v) => Ok(v),
        other => err(
            tokens.first().map_or(span, |t| t.span()),
            format!("expected an integer, found {}", describe(&other)),
        ),
    }
}

pub(crate) fn describe(v: &Val) -> String {
    match v {
        Val::Int(i) => format!("the integer {i}"),
        Val::Reg(r) => format!("the register {}", crate::isa::register_name(*r)),
        Val::Sym(s) => format!("the unknown name `{s}`"),
        Val::Addr(_) => "an address expression".into(),
    }
}

struct Parser<'a> {
    t: &'a [TokenTree],
    i: usize,
    env: &'a Env,
}

fn punct_at(t: &[TokenTree], i: usize) -> Option<(char, Spacing)> {
    match t.get(i) {
        Some(TokenTree::Punct(p)) => Some((p.as_char(), p.spacing())),
        _ => None,
    }
}

impl Parser<'_> {
    /// The binary operator at the cursor: (name, tokens, precedence).
    fn binop(&self) -> Option<(&'static str, usize, u8)> {
        let (c, sp) = punct_at(self.t, self.i)?;
        let next = if sp == Spacing::Joint {
            punct_at(self.t, self.i + 1).map(|x| x.0)
        } else {
            None
        };
        let two = match (c, next) {
            ('|', Some('|')) => Some(("||", 1)),
            ('&', Some('&')) => Some(("&&", 2)),
            ('=', Some('=')) => Some(("==", 3)),
            ('!', Some('=')) => Some(("!=", 3)),
            ('<', Some('=')) => Some(("<=", 3)),
            ('>', Some('=')) => Some((">=", 3)),
            ('<', Some('<')) => Some(("<<", 7)),
            ('>', Some('>')) => Some((">>", 7)),
            _ => None,
        };
        if let Some((op, prec)) = two {
            return Some((op, 2, prec));
        }
        let (op, prec) = match c {
            '<' => ("<", 3),
            '>' => (">", 3),
            '|' => ("|", 4),
            '^' => ("^", 5),
            '&' => ("&", 6),
            '+' => ("+", 8),
            '-' => ("-", 8),
            '*' => ("*", 9),
            '/' => ("/", 9),
            '%' => ("%", 9),
            _ => return None,
        };
        Some((op, 1, prec))
    }

    fn expr(&mut self, min: u8) -> Result<Val> {
        let mut lhs = self.unary()?;
        while let Some((op, n, prec)) = self.binop() {
            if prec < min {
                break;
            }
            let span = self.t[self.i].span();
            self.i += n;
            let rhs = self.expr(prec + 1)?;
            lhs = apply(op, lhs, rhs, span)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Val> {
        let Some(t) = self.t.get(self.i) else {
            let span = self.t.last().map_or_else(Span::call_site, |t| t.span());
            return err(span, "expression ends early");
        };
        if let Some((c, _)) = punct_at(self.t, self.i) {
            if c == '-' || c == '~' || c == '!' {
                self.i += 1;
                let v = self.unary()?;
                return match (c, v) {
                    ('-', Val::Int(v)) => Ok(Val::Int(v.wrapping_neg())),
                    ('-', other) => Ok(Val::Addr(Lin::from(other).scale(-1))),
                    ('~', Val::Int(v)) => Ok(Val::Int(!v)),
                    ('!', Val::Int(v)) => Ok(Val::Int(i64::from(v == 0))),
                    (_, other) => err(
                        t.span(),
                        format!("`{c}` needs an integer, found {}", describe(&other)),
                    ),
                };
            }
        }
        self.i += 1;
        match t {
            TokenTree::Literal(l) => match parse_int(&l.to_string()) {
                Some(v) => Ok(Val::Int(v)),
                None => err(l.span(), format!("`{l}` is not an integer")),
            },
            TokenTree::Group(g) if g.delimiter() == Delimiter::Parenthesis => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                eval(&inner, self.env, g.span())
            }
            TokenTree::Ident(id) => {
                let name = id.to_string();
                // `v{expr}`, `r{expr}`, ...: an indexed register.
                if INDEXED_PREFIXES.contains(&name.as_str()) {
                    if let Some(TokenTree::Group(g)) = self.t.get(self.i) {
                        if g.delimiter() == Delimiter::Brace {
                            self.i += 1;
                            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                            let n = eval_int(&inner, self.env, g.span())?;
                            let full = format!("{name}{n}");
                            return match self.env.register(&full, g.span())? {
                                Some(r) => Ok(Val::Reg(r)),
                                None => err(g.span(), format!("no register `{full}`")),
                            };
                        }
                    }
                }
                // `xmm(v3)`, `gpr32(idx)`: another view of a register.
                if VIEWS.contains(&name.as_str()) {
                    if let Some(TokenTree::Group(g)) = self.t.get(self.i) {
                        if g.delimiter() == Delimiter::Parenthesis {
                            self.i += 1;
                            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                            return match eval(&inner, self.env, g.span())? {
                                Val::Reg(r) => match view(&name, r) {
                                    Some(v) => Ok(Val::Reg(v)),
                                    None => err(
                                        g.span(),
                                        format!("`{name}(..)` has no view of this register"),
                                    ),
                                },
                                other => err(
                                    g.span(),
                                    format!(
                                        "`{name}(..)` takes a register, found {}",
                                        describe(&other)
                                    ),
                                ),
                            };
                        }
                    }
                }
                match name.as_str() {
                    "true" => return Ok(Val::Int(1)),
                    "false" => return Ok(Val::Int(0)),
                    "W" => {
                        return Ok(Val::Int(i64::from(self.env.width)));
                    }
                    "VARIANT" => return Ok(Val::Sym(self.env.variant.clone())),
                    _ => {}
                }
                if let Some(&v) = self.env.ints.get(&name) {
                    return Ok(Val::Int(v));
                }
                if let Some(r) = self.env.register(&name, id.span())? {
                    return Ok(Val::Reg(r));
                }
                Ok(Val::Sym(name))
            }
            other => err(other.span(), format!("unexpected `{other}` in expression")),
        }
    }
}

fn apply(op: &str, a: Val, b: Val, span: Span) -> Result<Val> {
    if let (Val::Int(x), Val::Int(y)) = (&a, &b) {
        let (x, y) = (*x, *y);
        let v = match op {
            "+" => x.wrapping_add(y),
            "-" => x.wrapping_sub(y),
            "*" => x.wrapping_mul(y),
            "/" | "%" if y == 0 => return err(span, "division by zero"),
            "/" => x.wrapping_div(y),
            "%" => x.wrapping_rem(y),
            "<<" => x.wrapping_shl(y as u32),
            ">>" => x.wrapping_shr(y as u32),
            "&" => x & y,
            "|" => x | y,
            "^" => x ^ y,
            "==" => i64::from(x == y),
            "!=" => i64::from(x != y),
            "<" => i64::from(x < y),
            ">" => i64::from(x > y),
            "<=" => i64::from(x <= y),
            ">=" => i64::from(x >= y),
            "&&" => i64::from(x != 0 && y != 0),
            "||" => i64::from(x != 0 || y != 0),
            _ => return err(span, format!("unknown operator `{op}`")),
        };
        return Ok(Val::Int(v));
    }
    match (op, a, b) {
        ("==" | "!=", Val::Sym(x), Val::Sym(y)) => {
            Ok(Val::Int(i64::from((x == y) == (op == "=="))))
        }
        ("==" | "!=", Val::Reg(x), Val::Reg(y)) => {
            Ok(Val::Int(i64::from((x == y) == (op == "=="))))
        }
        ("+", a, b) => Ok(Val::Addr(Lin::from(a).add(Lin::from(b)))),
        ("-", a, b) => Ok(Val::Addr(Lin::from(a).add(Lin::from(b).scale(-1)))),
        ("*", Val::Int(k), other) | ("*", other, Val::Int(k)) if !matches!(other, Val::Sym(_)) => {
            Ok(Val::Addr(Lin::from(other).scale(k)))
        }
        (op, a, b) => err(
            span,
            format!(
                "`{op}` cannot combine {} and {}",
                describe(&a),
                describe(&b)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<TokenTree> {
        s.parse::<TokenStream>().unwrap().into_iter().collect()
    }

    #[test]
    fn expressions() {
        let mut env = Env {
            width: 32,
            variant: "avx2".into(),
            ..Env::default()
        };
        env.ints.insert("i".into(), 3);
        let e = |s: &str| eval(&toks(s), &env, Span::call_site()).unwrap();
        assert_eq!(e("1 + 2 * 3"), Val::Int(7));
        assert_eq!(e("(1 + 2) * 3"), Val::Int(9));
        assert_eq!(e("i * W + 16"), Val::Int(112));
        assert_eq!(e("0x10 | 1 << 2"), Val::Int(0x14));
        assert_eq!(e("-1 & 0xff"), Val::Int(0xff));
        assert_eq!(e("~0"), Val::Int(-1));
        assert_eq!(e("W == 32 && i >= 3"), Val::Int(1));
        assert_eq!(e("VARIANT == avx2"), Val::Int(1));
        assert_eq!(e("VARIANT != avx512"), Val::Int(1));
        assert_eq!(e("1_000 + 0b11"), Val::Int(1003));
        assert_eq!(e("v{i+1}"), Val::Reg(Register::YMM4));
        assert_eq!(e("r{8 + i}"), Val::Reg(Register::R11));
        assert_eq!(e("xmm(v{i})"), Val::Reg(Register::XMM3));
        assert_eq!(e("gpr32(r{8 + i})"), Val::Reg(Register::R11D));
        assert_eq!(e("gpr8(rax)"), Val::Reg(Register::AL));
        match e("rax + rax * 4") {
            Val::Addr(l) => assert_eq!(l.regs, vec![(Register::RAX, 1), (Register::RAX, 4)]),
            other => panic!("{other:?}"),
        }
        assert_eq!(e("gpr64(esi)"), Val::Reg(Register::RSI));
        match e("rdi + rcx*4 - 8") {
            Val::Addr(l) => {
                assert_eq!(l.regs, vec![(Register::RDI, 1), (Register::RCX, 4)]);
                assert_eq!(l.disp, -8);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statements_split_at_line_ends() {
        let src = "if r{1} == rcx { nop }\n xor eax, eax\n top:\n add eax, 1; cmp eax, 3\n jb top\n for i in 0..2 { nop }\n if W == 16 { nop } \n else { int3 }\n m!(a, b)\n ret";
        let stmts = parse_stmts(src.parse().unwrap(), false).unwrap();
        let kinds: Vec<&str> = stmts
            .iter()
            .map(|s| match s {
                Stmt::Instr { .. } => "i",
                Stmt::Label { .. } => "l",
                Stmt::For { .. } => "f",
                Stmt::If { .. } => "if",
                Stmt::Call { .. } => "c",
                _ => "?",
            })
            .collect();
        assert_eq!(kinds, ["if", "i", "l", "i", "i", "i", "f", "if", "c", "i"]);
        assert!(matches!(&stmts[7], Stmt::If { els, .. } if els.len() == 1));
    }
}
