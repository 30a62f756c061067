//! The `.tile` parser: pest grammar (`grammar.pest`) -> [`KernelAst`] with a byte span on every node.
//!
//! Grammar summary (one item per line; `;` also separates; `#` and `//` start comments):
//!
//! ```text
//! kernel NAME { ITEM* }
//! ITEM  := dim NAME = INT [tile INT]
//!        | (in|out|local) NAME : DTYPE [EXTENT, ...]          EXTENT := NAME | INT
//!        | spread NAME over (rows|cols|cores) [, NAME over ...]
//!        | depth INT
//!        | NAME[AFFINE, ...] (=|+=) EXPR
//! AFFINE := [-] TERM ((+|-) TERM)*                             TERM := INT*NAME | NAME*INT | NAME | INT
//! EXPR  := literals (1, 0.5, 1e-5, inf), NAME[AFFINE, ...], + - * / unary -, ( EXPR ),
//!          sum|max|min[NAME, ...](EXPR), cast<DTYPE>(EXPR), srs<DTYPE>(EXPR, INT),
//!          select(AFFINE CMP AFFINE, EXPR, EXPR), exp|tanh|rsqrt|sqrt|log10|ln|abs|recip(EXPR),
//!          max|min(EXPR, EXPR)
//! ```

use super::ast::*;
use crate::check::MAX_EXTENT;
use crate::diag::{CompileError, Diagnostic, Source, Span};
use aiec_runtime::DType;
use pest::iterators::Pair;
use pest::Parser;
use std::sync::Arc;

/// The generated parser and its `Rule` enum, kept out of the public API.
mod grammar {
    use pest_derive::Parser;

    #[derive(Parser)]
    #[grammar = "dsl/grammar.pest"]
    pub(super) struct TileParser;
}
use grammar::{Rule, TileParser};

/// The largest `.tile` source accepted: 1 MiB (kernels are a few dozen lines). The parser's
/// memory grows with the text (a few hundred bytes per byte of a long expression), so the bound
/// keeps any input's parse within a few hundred MiB.
pub(crate) const MAX_SOURCE_BYTES: usize = 1 << 20;

/// Parses a `.tile` source text into its AST.
pub fn parse(source: &Arc<Source>) -> Result<KernelAst, CompileError> {
    if source.text.len() > MAX_SOURCE_BYTES {
        let mut at = MAX_SOURCE_BYTES;
        while !source.text.is_char_boundary(at) {
            at -= 1;
        }
        let span = Span::new(source, at, at);
        return Err(CompileError::Parse(Diagnostic::new(
            format!(
                "the source is {} bytes, larger than the {MAX_SOURCE_BYTES} bytes (1 MiB) a .tile file may have",
                source.text.len()
            ),
            Some(&span),
        )));
    }
    // pest's parser recurses once per nesting level of parentheses. Its stack guard stops it
    // short of an overflow (at about 11000 levels on an 8 MiB stack) with a bare "unexpected `(`";
    // measuring the nesting first gives the limit's own located error, and keeps pest's recursion
    // small on any thread.
    check_paren_depth(source)?;
    let mut pairs = TileParser::parse(Rule::file, &source.text).map_err(|e| syntax_error(source, e))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    let kernel = file.into_inner().find(|p| p.as_rule() == Rule::kernel).expect("a file holds one kernel");
    let b = AstBuilder { source };
    b.kernel(kernel)
}

/// Rejects text whose parentheses nest deeper than [`MAX_EXPR_DEPTH`] or brackets deeper than 2
/// (an access with a gather index; comments skipped), at
/// the first `(` past the limit.
fn check_paren_depth(source: &Arc<Source>) -> Result<(), CompileError> {
    let text = source.text.as_bytes();
    let mut depth = 0usize;
    let mut brackets = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'#' => {
                i = text[i..].iter().position(|&c| c == b'\n').map_or(text.len(), |n| i + n);
                continue;
            }
            b'/' if text.get(i + 1) == Some(&b'/') => {
                i = text[i..].iter().position(|&c| c == b'\n').map_or(text.len(), |n| i + n);
                continue;
            }
            b'[' => {
                // An access inside an access's brackets is a gather index; deeper nesting
                // means nothing and would only feed the parser's recursion.
                brackets += 1;
                if brackets > 2 {
                    let span = Span::new(source, i, i + 1);
                    return Err(CompileError::Parse(Diagnostic::new(
                        "brackets nested more than 2 deep: a gather index is a read with plain indices, e.g. table[ids[M], D]",
                        Some(&span),
                    )));
                }
            }
            b']' => brackets = brackets.saturating_sub(1),
            b'(' => {
                depth += 1;
                if depth > MAX_EXPR_DEPTH {
                    let span = Span::new(source, i, i + 1);
                    return Err(CompileError::Parse(
                        Diagnostic::new(
                            format!("parentheses nested more than {MAX_EXPR_DEPTH} deep; the limit is {MAX_EXPR_DEPTH} levels"),
                            Some(&span),
                        )
                        .note("split the expression into several statements through a `local`"),
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The error for an expression nested past [`MAX_EXPR_DEPTH`] levels, at that sub-expression.
pub(crate) fn too_deep(span: &Span) -> Diagnostic {
    Diagnostic::new(
        format!("expression nested more than {MAX_EXPR_DEPTH} levels deep; the limit is {MAX_EXPR_DEPTH}"),
        Some(span),
    )
    .note("each operator of a chain such as `a + b + c` nests one level, as do unary minus, calls, reductions, casts and selects")
    .note("split the expression into several statements through a `local`")
}

fn is_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::t_lbrace
            | Rule::t_rbrace
            | Rule::t_lbrack
            | Rule::t_rbrack
            | Rule::t_lparen
            | Rule::t_rparen
            | Rule::t_langle
            | Rule::t_rangle
            | Rule::t_comma
            | Rule::t_colon
            | Rule::t_eq
            | Rule::t_star
            | Rule::t_item_end
            | Rule::kw_kernel
            | Rule::kw_dim
            | Rule::kw_tile
            | Rule::kw_in
            | Rule::kw_out
            | Rule::kw_local
            | Rule::kw_spread
            | Rule::kw_over
            | Rule::kw_depth
            | Rule::EOI
    )
}

/// Words for what the parser expected, never pest's rule names.
fn describe_rule(rule: Rule) -> &'static str {
    match rule {
        Rule::ident => "a name",
        Rule::int => "an integer",
        Rule::number => "a number",
        Rule::dtype => "a dtype (i8, i16, i32, bf16, f32)",
        Rule::axis => "`rows`, `cols` or `cores`",
        Rule::kw_kernel => "`kernel`",
        Rule::kw_dim | Rule::dim_item => "`dim`",
        Rule::kw_tile => "`tile`",
        Rule::kw_in => "`in`",
        Rule::kw_out => "`out`",
        Rule::kw_local => "`local`",
        Rule::role | Rule::tensor_item => "`in`, `out`, `local`",
        Rule::kw_spread | Rule::spread_item => "`spread`",
        Rule::kw_over => "`over`",
        Rule::kw_depth | Rule::depth_item => "`depth`",
        Rule::t_lbrace => "`{`",
        Rule::t_rbrace => "`}`",
        Rule::t_lbrack => "`[`",
        Rule::t_rbrack => "`]`",
        Rule::t_lparen => "`(`",
        Rule::t_rparen => "`)`",
        Rule::t_langle => "`<`",
        Rule::t_rangle => "`>`",
        Rule::t_comma => "`,`",
        Rule::t_colon => "`:`",
        Rule::t_eq => "`=`",
        Rule::t_star => "`*`",
        Rule::t_item_end => "the end of the line",
        Rule::stmt | Rule::access => "a statement",
        Rule::assign_op => "`=` or `+=`",
        Rule::affine | Rule::affine_term | Rule::affine_neg => "an index (a dim, a number, or `coef*dim + ...`)",
        Rule::affine_op => "`+`/`-`",
        Rule::divmod => "an index quotient or remainder (`T / 2`, `(T + 1) % 4`)",
        Rule::divmod_op => "`/`/`%`",
        Rule::expr | Rule::term | Rule::factor | Rule::neg | Rule::paren => "an expression",
        Rule::add_op => "an operator",
        Rule::mul_op => "an operator",
        Rule::reduce | Rule::reduce_op => "a reduction",
        Rule::cast => "`cast`",
        Rule::srs => "`srs`",
        Rule::select => "`select`",
        Rule::index_cond | Rule::value_cond => "a comparison",
        Rule::arg_reduce | Rule::arg_op => "an arg-reduction",
        Rule::index_value => "a dim",
        Rule::gather_index => "an index read from a tensor",
        Rule::call => "a function call",
        Rule::cmp => "a comparison (<, <=, >, >=, ==, !=)",
        Rule::extent => "an extent (a dim or a number)",
        Rule::spread_part => "`DIM over rows|cols|cores`",
        Rule::kernel | Rule::file => "`kernel`",
        Rule::EOI => "the end of the file",
        _ => "something else",
    }
}

/// The token at `pos`, for "found `...`" (a word, a number, one symbol, or a line/file end).
fn token_at(text: &str, pos: usize) -> (String, usize) {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return ("the end of the file".into(), 0);
    };
    if c == '\n' || c == '\r' {
        return ("the end of the line".into(), 0);
    }
    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
        let len = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
            .unwrap_or(rest.len());
        return (format!("`{}`", &rest[..len]), len);
    }
    for op in ["+=", "<=", ">=", "==", "!="] {
        if rest.starts_with(op) {
            return (format!("`{op}`"), 2);
        }
    }
    (format!("`{c}`"), c.len_utf8())
}

fn syntax_error(source: &Arc<Source>, e: pest::error::Error<Rule>) -> CompileError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&'static str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        // Ordered as a reader scans an item line: statements first, then declarations.
        let mut rules = positives.clone();
        // Inside an index a `[` would only start a gather index (`ids[M]`): once an index is
        // there, the useful words are the ones that continue or close it.
        if rules.contains(&Rule::t_rbrack) {
            rules.retain(|r| *r != Rule::t_lbrack);
        }
        rules.sort_by_key(|r| match r {
            Rule::stmt | Rule::access | Rule::ident => 0,
            Rule::kw_dim | Rule::dim_item => 1,
            Rule::kw_in | Rule::role | Rule::tensor_item => 2,
            Rule::kw_out => 3,
            Rule::kw_local => 4,
            Rule::kw_spread | Rule::spread_item => 5,
            Rule::kw_depth | Rule::depth_item => 6,
            _ => 7,
        });
        let at_item_start = rules.iter().any(|r| matches!(r, Rule::kw_dim | Rule::dim_item));
        for r in rules {
            let word = if at_item_start && matches!(r, Rule::ident | Rule::stmt | Rule::access) {
                "a statement"
            } else {
                describe_rule(r)
            };
            if !expected.contains(&word) {
                expected.push(word);
            }
        }
    }
    let (found, len) = token_at(&source.text, pos);
    if let pest::error::ErrorVariant::CustomError { message } = &e.variant {
        // pest's own limits (its stack guard); the nesting check makes these unreachable in practice.
        let span = Span::new(source, pos, pos + len.max(if pos < source.text.len() { 1 } else { 0 }));
        return CompileError::Parse(Diagnostic::new(format!("the parser stopped at {found}: {message}"), Some(&span)));
    }
    let message = match expected.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", expected[0]),
        n => format!("expected {} or {}, found {found}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let span = Span::new(source, pos, pos + len.max(if pos < source.text.len() { 1 } else { 0 }));
    CompileError::Parse(Diagnostic::new(message, Some(&span)))
}

struct AstBuilder<'s> {
    source: &'s Arc<Source>,
}

type PResult<T> = Result<T, CompileError>;

impl AstBuilder<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.source, s.start(), s.end())
    }

    fn error(&self, message: impl Into<String>, span: &Span) -> CompileError {
        CompileError::Parse(Diagnostic::new(message, Some(span)))
    }

    /// Children that carry meaning (tokens filtered out).
    fn inner<'i>(&self, p: Pair<'i, Rule>) -> Vec<Pair<'i, Rule>> {
        p.into_inner().filter(|c| !is_token(c.as_rule())).collect()
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }

    /// An unsigned integer; `too_large` words the error for one past 64 bits (the type checker
    /// gives the same words for values that fit 64 bits but exceed the supported range).
    fn uint(&self, p: &Pair<Rule>, too_large: impl FnOnce(&str) -> String) -> PResult<u64> {
        p.as_str().parse::<u64>().map_err(|_| self.error(too_large(p.as_str()), &self.span(p)))
    }

    /// An integer of an index expression (a coefficient or a constant).
    fn int_i64(&self, p: &Pair<Rule>) -> PResult<i64> {
        p.as_str().parse::<i64>().map_err(|_| {
            self.error(
                format!("index value {} is larger than the largest supported extent {}", p.as_str(), MAX_EXTENT),
                &self.span(p),
            )
        })
    }

    fn dtype(&self, p: &Pair<Rule>) -> DType {
        DType::from_mlir(p.as_str()).expect("the grammar admits only dtype names")
    }

    fn kernel(&self, p: Pair<Rule>) -> PResult<KernelAst> {
        let span = self.span(&p);
        let mut inner = self.inner(p).into_iter();
        let name = self.ident(inner.next().expect("kernel name"));
        let mut items = Vec::new();
        for item in inner {
            items.push(self.item(item)?);
        }
        Ok(KernelAst { name, items, span })
    }

    fn item(&self, p: Pair<Rule>) -> PResult<Item> {
        let span = self.span(&p);
        let rule = p.as_rule();
        match rule {
            Rule::dim_item => {
                let parts = self.inner(p);
                let name = self.ident(parts[0].clone());
                let size = self.uint(&parts[1], |n| {
                    format!("dim {} = {n}: larger than the largest supported extent {MAX_EXTENT}", name.name)
                })?;
                let tile = match parts.get(2) {
                    Some(t) => Some(self.uint(t, |n| {
                        format!("tile {n} of dim {}: larger than the largest supported extent {MAX_EXTENT}", name.name)
                    })?),
                    None => None,
                };
                Ok(Item::Dim { name, size, tile, span })
            }
            Rule::tensor_item => {
                let mut parts = self.inner(p).into_iter();
                let role_pair = parts.next().expect("role");
                let role = match role_pair.as_str() {
                    "in" => Role::In,
                    "out" => Role::Out,
                    _ => Role::Local,
                };
                let name = self.ident(parts.next().expect("tensor name"));
                let dtype_pair = parts.next().expect("dtype");
                let dtype = self.dtype(&dtype_pair);
                let dtype_span = self.span(&dtype_pair);
                let mut shape = Vec::new();
                for e in parts {
                    let x = e.into_inner().next().expect("extent");
                    shape.push(match x.as_rule() {
                        Rule::int => Extent::Number(
                            self.uint(&x, |n| {
                                format!("extent {n} of tensor {}: larger than the largest supported extent {MAX_EXTENT}", name.name)
                            })?,
                            self.span(&x),
                        ),
                        _ => Extent::Dim(self.ident(x)),
                    });
                }
                Ok(Item::Tensor {
                    role,
                    name,
                    dtype,
                    dtype_span,
                    shape,
                    span,
                })
            }
            Rule::spread_item => {
                let mut parts = Vec::new();
                for part in self.inner(p) {
                    let kids = self.inner(part);
                    let dim = self.ident(kids[0].clone());
                    let axis = match kids[1].as_str() {
                        "rows" => SpreadAxis::Rows,
                        "cols" => SpreadAxis::Cols,
                        _ => SpreadAxis::Cores,
                    };
                    parts.push((dim, axis));
                }
                Ok(Item::Spread { parts, span })
            }
            Rule::depth_item => {
                let kids = self.inner(p);
                Ok(Item::Depth {
                    depth: self.uint(&kids[0], |n| {
                        format!("depth {n} is out of range: object FIFO depth must be 1..=4 (2 = double buffering)")
                    })?,
                    span,
                })
            }
            Rule::stmt => {
                let kids = self.inner(p);
                let target = self.access(kids[0].clone())?;
                let accumulate = kids[1].as_str() == "+=";
                let (value, _) = self.expr(kids[2].clone())?;
                Ok(Item::Stmt(Box::new(Stmt {
                    target,
                    accumulate,
                    value,
                    span,
                })))
            }
            other => unreachable!("kernel items are dims, tensors, spreads, depths and statements, not {other:?}"),
        }
    }

    fn access(&self, p: Pair<Rule>) -> PResult<Access> {
        let span = self.span(&p);
        let mut kids = self.inner(p).into_iter();
        let tensor = self.ident(kids.next().expect("tensor name"));
        let mut indices = Vec::new();
        let mut gather = None;
        for (axis, k) in kids.enumerate() {
            if k.as_rule() == Rule::gather_index {
                let by_span = self.span(&k);
                let inner = k.into_inner().next().expect("the index's access");
                let by = self.access(inner)?;
                if gather.is_some() {
                    return Err(self.error("only one axis of an access may be read from another tensor", &by_span));
                }
                gather = Some((axis, Box::new(by)));
                indices.push(AffineAst {
                    terms: Vec::new(),
                    constant: 0,
                    span: by_span,
                    divmods: Vec::new(),
                });
            } else {
                indices.push(self.affine(k)?);
            }
        }
        Ok(Access { tensor, indices, gather, span })
    }

    fn affine(&self, p: Pair<Rule>) -> PResult<AffineAst> {
        let span = self.span(&p);
        let mut terms = Vec::new();
        let mut constant: i64 = 0;
        let mut divmods = Vec::new();
        let mut sign: i64 = 1;
        for k in self.inner(p) {
            match k.as_rule() {
                Rule::affine_neg => sign = -1,
                Rule::affine_op => sign = if k.as_str() == "-" { -1 } else { 1 },
                Rule::affine_term => {
                    let term_span = self.span(&k);
                    let parts = self.inner(k);
                    let overflow = || self.error("index constant is too large", &term_span);
                    match parts.as_slice() {
                        [one] if one.as_rule() == Rule::int => {
                            constant = constant.checked_add(sign * self.int_i64(one)?).ok_or_else(overflow)?;
                        }
                        [one] if one.as_rule() == Rule::divmod => divmods.push((sign, self.divmod(one.clone())?)),
                        [one] => terms.push((sign, self.ident(one.clone()))),
                        [a, b] if b.as_rule() == Rule::divmod => {
                            divmods.push((sign * self.int_i64(a)?, self.divmod(b.clone())?));
                        }
                        [a, b] => {
                            let (coef, dim) = if a.as_rule() == Rule::int { (a, b) } else { (b, a) };
                            terms.push((sign * self.int_i64(coef)?, self.ident(dim.clone())));
                        }
                        _ => unreachable!("affine terms have one or two parts"),
                    }
                }
                other => unreachable!("unexpected {other:?} in an index"),
            }
        }
        Ok(AffineAst {
            terms,
            constant,
            span,
            divmods,
        })
    }

    fn divmod(&self, p: Pair<Rule>) -> PResult<DivModAst> {
        let span = self.span(&p);
        let parts = self.inner(p);
        let [dividend, op, by] = parts.as_slice() else {
            unreachable!("a quotient or remainder has three parts")
        };
        let inner = if dividend.as_rule() == Rule::affine {
            self.affine(dividend.clone())?
        } else {
            AffineAst {
                terms: vec![(1, self.ident(dividend.clone()))],
                constant: 0,
                span: self.span(dividend),
                divmods: Vec::new(),
            }
        };
        Ok(DivModAst {
            inner,
            op: if op.as_str() == "/" { DivMod::Div } else { DivMod::Mod },
            by: self.int_i64(by)?,
            span,
        })
    }

    /// An expression and its height (levels of nesting, see [`MAX_EXPR_DEPTH`]); a node past the
    /// limit is an error at that node, so no tree deeper than the limit is ever built.
    ///
    /// Links with one child (an operand alone in its sum or product, a factor without minus
    /// signs, parentheses) are followed in a loop rather than by recursion, and each kind of node
    /// is built by its own function: nested parentheses cost no stack here, and each recursion
    /// through a call, reduction or operator costs one small frame.
    fn expr(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let mut p = p;
        while matches!(p.as_rule(), Rule::expr | Rule::term | Rule::factor | Rule::paren) {
            let mut kids = p.clone().into_inner().filter(|c| !is_token(c.as_rule()));
            let first = kids.next().expect("a sub-expression");
            if kids.next().is_some() {
                break;
            }
            p = first;
        }
        match p.as_rule() {
            Rule::expr | Rule::term => self.chain(p),
            Rule::factor => self.factor(p),
            _ => self.primary(p),
        }
    }

    /// A node of height `height`, or the depth error at it.
    fn node(&self, e: Expr, height: usize) -> PResult<(Expr, usize)> {
        if height > MAX_EXPR_DEPTH {
            return Err(CompileError::Parse(too_deep(e.span())));
        }
        Ok((e, height))
    }

    /// `a + b - c` or `a * b / c`: a left-deep chain of binary operations.
    #[inline(never)]
    fn chain(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let mut kids = self.inner(p).into_iter();
        let (mut acc, mut height) = self.expr(kids.next().expect("operand"))?;
        while let Some(op) = kids.next() {
            let (rhs, rh) = self.expr(kids.next().expect("operand after operator"))?;
            let op = match op.as_str() {
                "+" => BinaryOp::Add,
                "-" => BinaryOp::Sub,
                "*" => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            let s = acc.span().to(rhs.span());
            (acc, height) = self.node(Expr::Binary(op, Box::new(acc), Box::new(rhs), s), height.max(rh) + 1)?;
        }
        Ok((acc, height))
    }

    /// Unary minus signs before a primary.
    #[inline(never)]
    fn factor(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let kids = self.inner(p);
        let (negs, primary) = kids.split_at(kids.len() - 1);
        let (mut e, mut height) = self.expr(primary[0].clone())?;
        // Innermost minus first, so `--x` nests as Neg(Neg(x)).
        for n in negs.iter().rev() {
            let s = Span::new(self.source, n.as_span().start(), e.span().end);
            let folds = matches!(e, Expr::Number(..));
            e = negate(e, s);
            if !folds {
                (e, height) = self.node(e, height + 1)?;
            }
        }
        Ok((e, height))
    }

    /// Literals, accesses, reductions, conversions, selects and calls: each built by its own
    /// function, so a recursion through one costs only that function's frame.
    fn primary(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        match p.as_rule() {
            Rule::number => self.number(p),
            Rule::access => Ok((Expr::Access(self.access(p)?), 1)),
            Rule::reduce => self.reduce(p),
            Rule::cast | Rule::srs => self.convert(p),
            Rule::select => self.select(p),
            Rule::call => self.call(p),
            Rule::arg_reduce => self.arg_reduce(p),
            Rule::index_value => Ok((Expr::Index(self.ident(p.into_inner().next().expect("a dim name"))), 1)),
            other => unreachable!("unexpected {other:?} in an expression"),
        }
    }

    #[inline(never)]
    fn number(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let text = p.as_str();
        let v = if text == "inf" {
            f64::INFINITY
        } else {
            text.parse::<f64>().map_err(|_| self.error(format!("bad number {text}"), &span))?
        };
        if v.is_infinite() && text != "inf" {
            return Err(self.error(
                format!("number {text} is too large: the largest f32 is {:e}; write `inf` for infinity", f32::MAX),
                &span,
            ));
        }
        Ok((Expr::Number(v, span), 1))
    }

    /// `sum|max|min[DIM, ...](EXPR)`
    #[inline(never)]
    fn reduce(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let mut kids = self.inner(p).into_iter();
        let op = match kids.next().expect("reduction op").as_str() {
            "sum" => ReduceOp::Sum,
            "max" => ReduceOp::Max,
            _ => ReduceOp::Min,
        };
        let mut dims = Vec::new();
        let mut body = None;
        for k in kids {
            if k.as_rule() == Rule::ident {
                dims.push(self.ident(k));
            } else {
                body = Some(self.expr(k)?);
            }
        }
        let (body, height) = body.expect("reduction body");
        self.node(
            Expr::Reduce {
                op,
                dims,
                body: Box::new(body),
                span,
            },
            height + 1,
        )
    }

    /// `cast<DTYPE>(EXPR)` and `srs<DTYPE>(EXPR, SHIFT)`
    #[inline(never)]
    fn convert(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let is_cast = p.as_rule() == Rule::cast;
        let kids = self.inner(p);
        let to = self.dtype(&kids[0]);
        let (expr, height) = self.expr(kids[1].clone())?;
        let e = if is_cast {
            Expr::Cast {
                to,
                expr: Box::new(expr),
                span,
            }
        } else {
            let shift_span = self.span(&kids[2]);
            let shift = kids[2]
                .as_str()
                .parse::<u32>()
                .ok()
                .filter(|s| *s <= 31)
                .ok_or_else(|| self.error(format!("srs shift {} is out of range 0..=31", kids[2].as_str()), &shift_span))?;
            Expr::Srs {
                to,
                shift,
                expr: Box::new(expr),
                span,
            }
        };
        self.node(e, height + 1)
    }

    /// `select(AFFINE CMP AFFINE, EXPR, EXPR)` or `select(EXPR CMP EXPR, EXPR, EXPR)`
    #[inline(never)]
    fn select(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let kids = self.inner(p);
        let cond = kids[0].clone();
        let by_index = cond.as_rule() == Rule::index_cond;
        let parts = self.inner(cond);
        let cmp = match parts[1].as_str() {
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "==" => CmpOp::Eq,
            _ => CmpOp::Ne,
        };
        let (then, th) = self.expr(kids[1].clone())?;
        let (otherwise, oh) = self.expr(kids[2].clone())?;
        if by_index {
            let lhs = self.affine(parts[0].clone())?;
            let rhs = self.affine(parts[2].clone())?;
            return self.node(
                Expr::Select {
                    lhs,
                    cmp,
                    rhs,
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                    span,
                },
                th.max(oh) + 1,
            );
        }
        let (lhs, lh) = self.expr(parts[0].clone())?;
        let (rhs, rh) = self.expr(parts[2].clone())?;
        self.node(
            Expr::ValueSelect {
                lhs: Box::new(lhs),
                cmp,
                rhs: Box::new(rhs),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
                span,
            },
            th.max(oh).max(lh).max(rh) + 1,
        )
    }

    /// `argmax|argmin[DIM](EXPR)`
    #[inline(never)]
    fn arg_reduce(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let kids = self.inner(p);
        let max = kids[0].as_str() == "argmax";
        let dim = self.ident(kids[1].clone());
        let (body, height) = self.expr(kids[2].clone())?;
        self.node(
            Expr::ArgReduce {
                max,
                dim,
                body: Box::new(body),
                span,
            },
            height + 1,
        )
    }

    /// `f(EXPR)` for the unary functions, `max|min(EXPR, EXPR)`.
    #[inline(never)]
    fn call(&self, p: Pair<Rule>) -> PResult<(Expr, usize)> {
        let span = self.span(&p);
        let mut kids = self.inner(p).into_iter();
        let name_pair = kids.next().expect("function name");
        let name = name_pair.as_str();
        let name_span = self.span(&name_pair);
        let mut args = Vec::new();
        for k in kids {
            args.push(self.expr(k)?);
        }
        let height = args.iter().map(|(_, h)| *h).max().unwrap_or(0) + 1;
        if let Some(op) = UnaryOp::from_name(name) {
            if args.len() != 1 {
                return Err(self.error(format!("{name} takes 1 argument, found {}", args.len()), &span));
            }
            let (arg, _) = args.into_iter().next().expect("one argument");
            return self.node(Expr::Unary(op, Box::new(arg), span), height);
        }
        if name == "pow" {
            let [(base, _), (exponent, _)] =
                <[_; 2]>::try_from(args).map_err(|a: Vec<_>| self.error(format!("pow(x, n) takes 2 arguments, found {}", a.len()), &span))?;
            let n = match &exponent {
                Expr::Number(v, _) if v.fract() == 0.0 && v.abs() <= MAX_POW_EXPONENT as f64 => *v as i32,
                other => {
                    return Err(self.error(
                        format!("pow's exponent must be an integer literal in -{MAX_POW_EXPONENT}..={MAX_POW_EXPONENT}; use exp(y * ln(x)) for other powers"),
                        other.span(),
                    ))
                }
            };
            return self.node(
                Expr::Pow {
                    base: Box::new(base),
                    exponent: n,
                    span,
                },
                height,
            );
        }
        let op = match name {
            "max" => BinaryOp::Max,
            "min" => BinaryOp::Min,
            _ => {
                return Err(self.error(
                    format!("unknown function `{name}`; the functions are exp, tanh, sigmoid, rsqrt, sqrt, log10, ln, abs, recip, floor, round, max, min, pow"),
                    &name_span,
                ))
            }
        };
        if args.len() != 2 {
            return Err(self.error(
                format!(
                    "{name}(a, b) takes 2 arguments, found {}; to reduce over dims write {name}[DIM](...)",
                    args.len()
                ),
                &span,
            ));
        }
        let mut it = args.into_iter().map(|(e, _)| e);
        let (a, b) = (it.next().expect("first argument"), it.next().expect("second argument"));
        self.node(Expr::Binary(op, Box::new(a), Box::new(b), span), height)
    }
}

/// Unary minus; a minus directly on a literal folds into the literal (`-inf`, `-1`), as in the
/// Rust builder, so both front ends give the same AST.
pub(crate) fn negate(e: Expr, span: Span) -> Expr {
    match e {
        Expr::Number(v, _) => Expr::Number(-v, span),
        other => Expr::Unary(UnaryOp::Neg, Box::new(other), span),
    }
}
