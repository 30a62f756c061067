//! The Rust front end: builds the same [`KernelAst`] as the `.tile` parser, so the same type
//! checker gives the same IR (and the same MLIR). Items are appended in call order; every node's
//! span names the Rust caller's `file:line:col`, so errors point at the builder code.
//!
//! ```
//! use aiec::dsl::builder::*;
//! use aiec_runtime::DType;
//! let mut k = Kernel::new("matmul_i8");
//! let (m, n, kk) = (k.dim("M", 512).tile(64), k.dim("N", 512).tile(64), k.dim("K", 512).tile(64));
//! let a = k.input("A", DType::I8, [m, kk]);
//! let b = k.input("B", DType::I8, [kk, n]);
//! let c = k.output("C", DType::I32, [m, n]);
//! k.spread_rows(m).spread_cols(n);
//! k.assign(c.at([m, n]), sum([kk], a.at([m, kk]) * b.at([kk, n])));
//! let ir = k.build().unwrap();
//! assert_eq!(ir.stmts.len(), 1);
//! ```

use super::ast::{self, AffineAst, BinaryOp, CmpOp, Extent, Ident, Item, KernelAst, ReduceOp, Role, SpreadAxis, UnaryOp};
use super::typecheck::typecheck;
use crate::diag::{CompileError, Diagnostic, Span};
use crate::ir;
use aiec_runtime::DType;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

/// A kernel under construction.
#[derive(Debug, Clone)]
pub struct Kernel {
    name: Ident,
    items: Vec<Item>,
    dim_names: Vec<String>,
    tensor_names: Vec<String>,
    /// The first misuse of the API (e.g. assigning to something that is not an access).
    error: Option<CompileError>,
    /// Distinguishes kernels, so a handle of one kernel is not silently used in another.
    id: usize,
    span: Span,
}

/// A declared dim; `Copy`, usable in shapes, indices and affine index expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimRef {
    id: usize,
    /// Identifies the kernel, so handles of one kernel are not used in another by accident.
    kernel: usize,
}

/// A dim being declared: `.tile(n)` splits it, `.whole()` keeps it unsplit.
pub struct DimDecl<'k> {
    kernel: &'k mut Kernel,
    item: usize,
    dim: DimRef,
}

impl DimDecl<'_> {
    /// The L1 tile extent (must divide the size; checked by [`Kernel::build`]).
    pub fn tile(self, tile: u64) -> DimRef {
        if let Item::Dim { tile: t, .. } = &mut self.kernel.items[self.item] {
            *t = Some(tile);
        }
        self.dim
    }
    /// Not split: every core sees the whole dim.
    pub fn whole(self) -> DimRef {
        self.dim
    }
}

impl From<DimDecl<'_>> for DimRef {
    fn from(d: DimDecl<'_>) -> DimRef {
        d.dim
    }
}

/// A declared tensor of rank `R`; `.at([m, n])` or `.at((t, 0, h))` makes an access expression
/// (a wrong number of indices does not compile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRef<const R: usize> {
    id: usize,
    kernel: usize,
}

/// `R` indices: an array of one index type (`[m, n]`) or a tuple mixing dims, numbers and affine
/// expressions (`(t, 0, h + 1)`).
pub trait Indices<const R: usize> {
    /// The indices, in order.
    fn indices(self) -> Vec<Idx>;
}

impl<I: Into<Idx>, const R: usize> Indices<R> for [I; R] {
    fn indices(self) -> Vec<Idx> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `R` extents: an array of one type (`[m, k]`) or a tuple mixing dims and numbers (`(259, c)`).
pub trait Extents<const R: usize> {
    /// The extents, in order.
    fn extents(self) -> Vec<Ext>;
}

impl<E: Into<Ext>, const R: usize> Extents<R> for [E; R] {
    fn extents(self) -> Vec<Ext> {
        self.into_iter().map(Into::into).collect()
    }
}

macro_rules! tuple_indices {
    ($n:literal: $($t:ident $v:ident),+) => {
        impl<$($t: Into<Idx>),+> Indices<$n> for ($($t,)+) {
            fn indices(self) -> Vec<Idx> {
                let ($($v,)+) = self;
                vec![$($v.into()),+]
            }
        }
        impl<$($t: Into<Ext>),+> Extents<$n> for ($($t,)+) {
            fn extents(self) -> Vec<Ext> {
                let ($($v,)+) = self;
                vec![$($v.into()),+]
            }
        }
    };
}
tuple_indices!(1: A a);
tuple_indices!(2: A a, B b);
tuple_indices!(3: A a, B b, C c);
tuple_indices!(4: A a, B b, C c, D d);
tuple_indices!(5: A a, B b, C c, D d, E e);

/// A tensor extent: a dim or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    /// The dim's size.
    Dim(DimRef),
    /// A fixed extent.
    Number(u64),
}

impl From<DimRef> for Ext {
    fn from(d: DimRef) -> Ext {
        Ext::Dim(d)
    }
}
impl From<u64> for Ext {
    fn from(n: u64) -> Ext {
        Ext::Number(n)
    }
}
impl From<i32> for Ext {
    fn from(n: i32) -> Ext {
        Ext::Number(n.max(0) as u64)
    }
}

/// An index `sum(coef * dim) + constant`, with quotients and remainders by constants: `t * 160 +
/// s`, `64 + e`, `Idx::from(0)`, `t / 2`, `(t * 2 + 1) % 4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    terms: Vec<(i64, DimRef)>,
    constant: i64,
    divmods: Vec<(i64, IdxDivMod)>,
}

/// A quotient or remainder term of an [`Idx`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdxDivMod {
    inner: Idx,
    op: crate::ir::DivMod,
    by: i64,
}

impl From<DimRef> for Idx {
    fn from(d: DimRef) -> Idx {
        Idx {
            terms: vec![(1, d)],
            constant: 0,
            divmods: vec![],
        }
    }
}
impl From<i64> for Idx {
    fn from(c: i64) -> Idx {
        Idx {
            terms: vec![],
            constant: c,
            divmods: vec![],
        }
    }
}
impl From<i32> for Idx {
    fn from(c: i32) -> Idx {
        Idx {
            terms: vec![],
            constant: c as i64,
            divmods: vec![],
        }
    }
}

impl Idx {
    fn plus(mut self, other: Idx, sign: i64) -> Idx {
        for (c, d) in other.terms {
            self.terms.push((sign * c, d));
        }
        for (c, q) in other.divmods {
            self.divmods.push((sign * c, q));
        }
        self.constant += sign * other.constant;
        self
    }
    fn scaled(mut self, k: i64) -> Idx {
        for t in &mut self.terms {
            t.0 *= k;
        }
        for q in &mut self.divmods {
            q.0 *= k;
        }
        self.constant *= k;
        self
    }
    fn divmod(self, op: crate::ir::DivMod, by: i64) -> Idx {
        Idx {
            terms: vec![],
            constant: 0,
            divmods: vec![(1, IdxDivMod { inner: self, op, by })],
        }
    }
    /// `self < rhs`, for [`select`].
    pub fn lt(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Lt,
            rhs: rhs.into(),
        }
    }
    /// `self <= rhs`, for [`select`].
    pub fn le(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Le,
            rhs: rhs.into(),
        }
    }
    /// `self > rhs`, for [`select`].
    pub fn gt(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Gt,
            rhs: rhs.into(),
        }
    }
    /// `self >= rhs`, for [`select`].
    pub fn ge(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Ge,
            rhs: rhs.into(),
        }
    }
    /// `self == rhs`, for [`select`].
    pub fn equals(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Eq,
            rhs: rhs.into(),
        }
    }
    /// `self != rhs`, for [`select`].
    pub fn not_equals(self, rhs: impl Into<Idx>) -> Cond {
        Cond {
            lhs: self,
            cmp: CmpOp::Ne,
            rhs: rhs.into(),
        }
    }
}

impl DimRef {
    /// `self < rhs` on the dim's global index, for [`select`].
    pub fn lt(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).lt(rhs)
    }
    /// `self <= rhs` on the dim's global index, for [`select`].
    pub fn le(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).le(rhs)
    }
    /// `self > rhs` on the dim's global index, for [`select`].
    pub fn gt(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).gt(rhs)
    }
    /// `self >= rhs` on the dim's global index, for [`select`].
    pub fn ge(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).ge(rhs)
    }
    /// `self == rhs` on the dim's global index, for [`select`].
    pub fn equals(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).equals(rhs)
    }
    /// `self != rhs` on the dim's global index, for [`select`].
    pub fn not_equals(self, rhs: impl Into<Idx>) -> Cond {
        Idx::from(self).not_equals(rhs)
    }
}

macro_rules! idx_ops {
    ($lhs:ty) => {
        impl<R: Into<Idx>> Add<R> for $lhs {
            type Output = Idx;
            fn add(self, r: R) -> Idx {
                Idx::from(self).plus(r.into(), 1)
            }
        }
        impl<R: Into<Idx>> Sub<R> for $lhs {
            type Output = Idx;
            fn sub(self, r: R) -> Idx {
                Idx::from(self).plus(r.into(), -1)
            }
        }
        impl Mul<i64> for $lhs {
            type Output = Idx;
            fn mul(self, k: i64) -> Idx {
                Idx::from(self).scaled(k)
            }
        }
        /// The floor quotient of a non-negative index by a constant (`t / 2`).
        impl Div<i64> for $lhs {
            type Output = Idx;
            fn div(self, k: i64) -> Idx {
                Idx::from(self).divmod(crate::ir::DivMod::Div, k)
            }
        }
        /// The remainder of a non-negative index by a constant (`t % 4`).
        impl Rem<i64> for $lhs {
            type Output = Idx;
            fn rem(self, k: i64) -> Idx {
                Idx::from(self).divmod(crate::ir::DivMod::Mod, k)
            }
        }
    };
}
idx_ops!(DimRef);
idx_ops!(Idx);

impl Mul<DimRef> for i64 {
    type Output = Idx;
    fn mul(self, d: DimRef) -> Idx {
        Idx::from(d).scaled(self)
    }
}
impl Add<DimRef> for i64 {
    type Output = Idx;
    fn add(self, d: DimRef) -> Idx {
        Idx::from(self).plus(Idx::from(d), 1)
    }
}
impl Add<Idx> for i64 {
    type Output = Idx;
    fn add(self, i: Idx) -> Idx {
        Idx::from(self).plus(i, 1)
    }
}
impl Sub<DimRef> for i64 {
    type Output = Idx;
    fn sub(self, d: DimRef) -> Idx {
        Idx::from(self).plus(Idx::from(d), -1)
    }
}
impl Sub<Idx> for i64 {
    type Output = Idx;
    fn sub(self, i: Idx) -> Idx {
        Idx::from(self).plus(i, -1)
    }
}

/// An index comparison for [`select`], made with `DimRef::le` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    lhs: Idx,
    cmp: CmpOp,
    rhs: Idx,
}

/// A comparison of two values for [`select`], made with [`Expr::lt`] and friends.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCond {
    lhs: Expr,
    cmp: CmpOp,
    rhs: Expr,
}

/// What [`select`] chooses on: an index comparison ([`Cond`]) or a value comparison ([`ValueCond`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Compares global index values.
    Index(Cond),
    /// Compares two values of one type.
    Value(Box<ValueCond>),
}

impl From<Cond> for Condition {
    fn from(c: Cond) -> Condition {
        Condition::Index(c)
    }
}
impl From<ValueCond> for Condition {
    fn from(c: ValueCond) -> Condition {
        Condition::Value(Box::new(c))
    }
}

/// A value expression; combine with `+ - * /`, unary `-`, f64 literals and the functions below.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    ast: ast::Expr,
}

macro_rules! value_cmp {
    ($($(#[$doc:meta])* $name:ident => $cmp:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(self, rhs: impl Into<Expr>) -> ValueCond {
                ValueCond { lhs: self, cmp: $cmp, rhs: rhs.into() }
            }
        )*
    };
}

impl Expr {
    /// The AST this expression stands for.
    pub fn ast(&self) -> &ast::Expr {
        &self.ast
    }
    value_cmp! {
        /// `self < rhs` (false when either is NaN), for [`select`].
        lt => CmpOp::Lt;
        /// `self <= rhs` (false when either is NaN), for [`select`].
        le => CmpOp::Le;
        /// `self > rhs` (false when either is NaN), for [`select`].
        gt => CmpOp::Gt;
        /// `self >= rhs` (false when either is NaN), for [`select`].
        ge => CmpOp::Ge;
        /// `self == rhs` (false when either is NaN), for [`select`].
        equals => CmpOp::Eq;
        /// `self != rhs` (true when either is NaN), for [`select`].
        not_equals => CmpOp::Ne;
    }
}

impl From<f64> for Expr {
    #[track_caller]
    fn from(v: f64) -> Expr {
        Expr {
            ast: ast::Expr::Number(v, Span::caller()),
        }
    }
}
impl From<i32> for Expr {
    #[track_caller]
    fn from(v: i32) -> Expr {
        Expr {
            ast: ast::Expr::Number(v as f64, Span::caller()),
        }
    }
}

#[track_caller]
fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    Expr {
        ast: ast::Expr::Binary(op, Box::new(a.ast), Box::new(b.ast), Span::caller()),
    }
}

macro_rules! expr_op {
    ($tr:ident, $m:ident, $op:expr) => {
        impl<R: Into<Expr>> $tr<R> for Expr {
            type Output = Expr;
            #[track_caller]
            fn $m(self, r: R) -> Expr {
                binary($op, self, r.into())
            }
        }
        impl $tr<Expr> for f64 {
            type Output = Expr;
            #[track_caller]
            fn $m(self, r: Expr) -> Expr {
                binary($op, Expr::from(self), r)
            }
        }
        impl $tr<Expr> for i32 {
            type Output = Expr;
            #[track_caller]
            fn $m(self, r: Expr) -> Expr {
                binary($op, Expr::from(self), r)
            }
        }
    };
}
expr_op!(Add, add, BinaryOp::Add);
expr_op!(Sub, sub, BinaryOp::Sub);
expr_op!(Mul, mul, BinaryOp::Mul);
expr_op!(Div, div, BinaryOp::Div);

impl Neg for Expr {
    type Output = Expr;
    #[track_caller]
    fn neg(self) -> Expr {
        // Same folding as the parser: `-literal` is a literal.
        Expr {
            ast: super::parse::negate(self.ast, Span::caller()),
        }
    }
}

#[track_caller]
fn unary(op: UnaryOp, e: impl Into<Expr>) -> Expr {
    let e = e.into();
    Expr {
        ast: ast::Expr::Unary(op, Box::new(e.ast), Span::caller()),
    }
}

/// `exp(x)`: e^x (float).
#[track_caller]
pub fn exp(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Exp, e)
}
/// `tanh(x)`: Hyperbolic tangent (float).
#[track_caller]
pub fn tanh(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Tanh, e)
}
/// `rsqrt(x)`: 1 / sqrt(x) (float).
#[track_caller]
pub fn rsqrt(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Rsqrt, e)
}
/// `sqrt(x)`: Square root (float).
#[track_caller]
pub fn sqrt(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Sqrt, e)
}
/// `log10(x)`: Base-10 logarithm (float).
#[track_caller]
pub fn log10(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Log10, e)
}
/// `ln(x)`: Natural logarithm (float).
#[track_caller]
pub fn ln(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Ln, e)
}
/// `abs(x)`: Absolute value.
#[track_caller]
pub fn abs(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Abs, e)
}
/// `recip(x)`: 1 / x (float).
#[track_caller]
pub fn recip(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Recip, e)
}
/// Element-wise `max(a, b)`.
#[track_caller]
pub fn max2(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    binary(BinaryOp::Max, a.into(), b.into())
}
/// Element-wise `min(a, b)`.
#[track_caller]
pub fn min2(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    binary(BinaryOp::Min, a.into(), b.into())
}

#[track_caller]
fn reduce<const N: usize>(op: ReduceOp, dims: [DimRef; N], body: impl Into<Expr>) -> Expr {
    let body = body.into();
    let span = Span::caller();
    // Dim names are filled in by the kernel when the expression is used (see `Kernel::resolve`).
    let dims = dims.iter().map(|d| dim_placeholder(*d, &span)).collect();
    Expr {
        ast: ast::Expr::Reduce {
            op,
            dims,
            body: Box::new(body.ast),
            span,
        },
    }
}
/// `sum[D1, ...](body)`
#[track_caller]
pub fn sum<const N: usize>(dims: [DimRef; N], body: impl Into<Expr>) -> Expr {
    reduce(ReduceOp::Sum, dims, body)
}
/// `max[D1, ...](body)`
#[track_caller]
pub fn maxr<const N: usize>(dims: [DimRef; N], body: impl Into<Expr>) -> Expr {
    reduce(ReduceOp::Max, dims, body)
}
/// `min[D1, ...](body)`
#[track_caller]
pub fn minr<const N: usize>(dims: [DimRef; N], body: impl Into<Expr>) -> Expr {
    reduce(ReduceOp::Min, dims, body)
}
/// `cast<to>(e)`
#[track_caller]
pub fn cast(to: DType, e: impl Into<Expr>) -> Expr {
    let e = e.into();
    Expr {
        ast: ast::Expr::Cast {
            to,
            expr: Box::new(e.ast),
            span: Span::caller(),
        },
    }
}
/// `srs<to>(e, shift)`
#[track_caller]
pub fn srs(to: DType, e: impl Into<Expr>, shift: u32) -> Expr {
    let e = e.into();
    Expr {
        ast: ast::Expr::Srs {
            to,
            shift,
            expr: Box::new(e.ast),
            span: Span::caller(),
        },
    }
}
/// `select(cond, then, otherwise)`: on indices, e.g. `select(s.le(t), x, f64::NEG_INFINITY)`, or
/// on values, e.g. `select(x.at([m]).gt(0.0), x.at([m]), 0.0)`.
#[track_caller]
pub fn select(cond: impl Into<Condition>, then: impl Into<Expr>, otherwise: impl Into<Expr>) -> Expr {
    let span = Span::caller();
    let (then, otherwise) = (Box::new(then.into().ast), Box::new(otherwise.into().ast));
    let ast = match cond.into() {
        Condition::Index(c) => ast::Expr::Select {
            lhs: affine_placeholder(&c.lhs, &span),
            cmp: c.cmp,
            rhs: affine_placeholder(&c.rhs, &span),
            then,
            otherwise,
            span,
        },
        Condition::Value(c) => ast::Expr::ValueSelect {
            lhs: Box::new(c.lhs.ast),
            cmp: c.cmp,
            rhs: Box::new(c.rhs.ast),
            then,
            otherwise,
            span,
        },
    };
    Expr { ast }
}

/// `sigmoid(e)` = `1 / (1 + exp(-e))`.
#[track_caller]
pub fn sigmoid(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Sigmoid, e)
}
/// `floor(e)`: the largest integer not above `e`.
#[track_caller]
pub fn floor(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Floor, e)
}
/// `round(e)`: the nearest integer, ties to even.
#[track_caller]
pub fn round(e: impl Into<Expr>) -> Expr {
    unary(UnaryOp::Round, e)
}
/// `pow(e, n)`: `e` to an integer power `n` (|n| at most 64).
#[track_caller]
pub fn pow(e: impl Into<Expr>, n: i32) -> Expr {
    Expr {
        ast: ast::Expr::Pow {
            base: Box::new(e.into().ast),
            exponent: n,
            span: Span::caller(),
        },
    }
}
#[track_caller]
fn arg_reduce(max: bool, dim: DimRef, body: impl Into<Expr>) -> Expr {
    let span = Span::caller();
    Expr {
        ast: ast::Expr::ArgReduce {
            max,
            dim: dim_placeholder(dim, &span),
            body: Box::new(body.into().ast),
            span,
        },
    }
}
/// `argmax[D](body)`: the global index (i32) of the first largest value along `D`.
#[track_caller]
pub fn argmax(dim: DimRef, body: impl Into<Expr>) -> Expr {
    arg_reduce(true, dim, body)
}
/// `argmin[D](body)`: the global index (i32) of the first smallest value along `D`.
#[track_caller]
pub fn argmin(dim: DimRef, body: impl Into<Expr>) -> Expr {
    arg_reduce(false, dim, body)
}

impl DimRef {
    /// The dim's global index as an i32 value (`I` in `.tile` text).
    #[track_caller]
    pub fn value(self) -> Expr {
        let span = Span::caller();
        Expr {
            ast: ast::Expr::Index(dim_placeholder(self, &span)),
        }
    }
}

// Dims and tensors are referred to by id inside expressions until the kernel resolves them to
// names: an expression does not borrow its kernel. The placeholder name is `\u{0}dim:ID`.
fn dim_placeholder(d: DimRef, span: &Span) -> Ident {
    Ident {
        name: format!("\u{0}dim:{}:{}", d.kernel, d.id),
        span: span.clone(),
    }
}
fn tensor_placeholder<const R: usize>(t: TensorRef<R>, span: &Span) -> Ident {
    Ident {
        name: format!("\u{0}tensor:{}:{}", t.kernel, t.id),
        span: span.clone(),
    }
}
fn affine_placeholder(i: &Idx, span: &Span) -> AffineAst {
    AffineAst {
        terms: i.terms.iter().map(|(c, d)| (*c, dim_placeholder(*d, span))).collect(),
        constant: i.constant,
        span: span.clone(),
        divmods: i
            .divmods
            .iter()
            .map(|(c, q)| {
                let q = ast::DivModAst {
                    inner: affine_placeholder(&q.inner, span),
                    op: q.op,
                    by: q.by,
                    span: span.clone(),
                };
                (*c, q)
            })
            .collect(),
    }
}

impl<const R: usize> TensorRef<R> {
    /// `T[i0, i1, ...]`; indices are dims, numbers or affine index expressions (`t * 160 + s`):
    /// `x.at([m, n])`, `x.at((t, 0, h))`.
    #[track_caller]
    pub fn at(self, indices: impl Indices<R>) -> Expr {
        let span = Span::caller();
        let indices = indices.indices().iter().map(|i| affine_placeholder(i, &span)).collect();
        Expr {
            ast: ast::Expr::Access(ast::Access {
                tensor: tensor_placeholder(self, &span),
                indices,
                gather: None,
                span,
            }),
        }
    }

    /// A gather: `T[..., by, ...]` with axis `axis` indexed by the integer value `by` (an access
    /// of an integer input, e.g. `ids.at([m])`), the other axes by `indices` (whatever `indices`
    /// holds at `axis` is ignored): `table.gather((0, d), 0, ids.at([m]))` is `table[ids[M], D]`.
    #[track_caller]
    pub fn gather(self, indices: impl Indices<R>, axis: usize, by: Expr) -> Expr {
        let span = Span::caller();
        let mut indices: Vec<AffineAst> = indices.indices().iter().map(|i| affine_placeholder(i, &span)).collect();
        let by = match by.ast {
            ast::Expr::Access(a) => a,
            other => {
                // Type checking reports it: a gather index must be a tensor read.
                ast::Access {
                    tensor: Ident {
                        name: String::new(),
                        span: other.span().clone(),
                    },
                    indices: Vec::new(),
                    gather: None,
                    span: other.span().clone(),
                }
            }
        };
        if let Some(i) = indices.get_mut(axis) {
            *i = AffineAst {
                terms: Vec::new(),
                constant: 0,
                span: span.clone(),
                divmods: Vec::new(),
            };
        }
        Expr {
            ast: ast::Expr::Access(ast::Access {
                tensor: tensor_placeholder(self, &span),
                indices,
                gather: Some((axis, Box::new(by))),
                span,
            }),
        }
    }
}

static NEXT_KERNEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

impl Kernel {
    /// An empty kernel named `name` (the name of its artifact directory).
    #[track_caller]
    pub fn new(name: &str) -> Kernel {
        let span = Span::caller();
        let id = NEXT_KERNEL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Kernel {
            name: Ident {
                name: name.to_string(),
                span: span.clone(),
            },
            items: Vec::new(),
            dim_names: Vec::new(),
            tensor_names: Vec::new(),
            error: None,
            id,
            span,
        }
    }

    fn id(&self) -> usize {
        self.id
    }

    /// `dim NAME = size`; chain `.tile(n)` to split it or `.whole()` to keep it whole.
    #[track_caller]
    pub fn dim(&mut self, name: &str, size: u64) -> DimDecl<'_> {
        let span = Span::caller();
        let dim = DimRef {
            id: self.dim_names.len(),
            kernel: self.id(),
        };
        self.dim_names.push(name.to_string());
        self.items.push(Item::Dim {
            name: Ident {
                name: name.to_string(),
                span: span.clone(),
            },
            size,
            tile: None,
            span,
        });
        let item = self.items.len() - 1;
        DimDecl { kernel: self, item, dim }
    }

    #[track_caller]
    fn tensor<const N: usize>(&mut self, role: Role, name: &str, dtype: DType, shape: Vec<Ext>) -> TensorRef<N> {
        let span = Span::caller();
        let t = TensorRef {
            id: self.tensor_names.len(),
            kernel: self.id(),
        };
        self.tensor_names.push(name.to_string());
        let shape = shape
            .into_iter()
            .map(|e| match e {
                Ext::Dim(d) => Extent::Dim(self.dim_ident(d, &span)),
                Ext::Number(n) => Extent::Number(n, span.clone()),
            })
            .collect();
        self.items.push(Item::Tensor {
            role,
            name: Ident {
                name: name.to_string(),
                span: span.clone(),
            },
            dtype,
            dtype_span: span.clone(),
            shape,
            span,
        });
        t
    }

    /// `in NAME: dtype[shape]`
    #[track_caller]
    pub fn input<const N: usize>(&mut self, name: &str, dtype: DType, shape: impl Extents<N>) -> TensorRef<N> {
        self.tensor(Role::In, name, dtype, shape.extents())
    }
    /// `out NAME: dtype[shape]`
    #[track_caller]
    pub fn output<const N: usize>(&mut self, name: &str, dtype: DType, shape: impl Extents<N>) -> TensorRef<N> {
        self.tensor(Role::Out, name, dtype, shape.extents())
    }
    /// `local NAME: dtype[dims]`
    #[track_caller]
    pub fn local<const N: usize>(&mut self, name: &str, dtype: DType, dims: [DimRef; N]) -> TensorRef<N> {
        self.tensor(Role::Local, name, dtype, dims.extents())
    }

    #[track_caller]
    fn spread(&mut self, d: DimRef, axis: SpreadAxis) -> &mut Self {
        let span = Span::caller();
        let part = (self.dim_ident(d, &span), axis);
        // Consecutive spread calls form one `spread A over rows, B over cols` item.
        if let Some(Item::Spread { parts, .. }) = self.items.last_mut() {
            parts.push(part);
        } else {
            self.items.push(Item::Spread { parts: vec![part], span });
        }
        self
    }
    /// `spread D over rows`
    #[track_caller]
    pub fn spread_rows(&mut self, d: DimRef) -> &mut Self {
        self.spread(d, SpreadAxis::Rows)
    }
    /// `spread D over cols`
    #[track_caller]
    pub fn spread_cols(&mut self, d: DimRef) -> &mut Self {
        self.spread(d, SpreadAxis::Cols)
    }
    /// `spread D over cores`
    #[track_caller]
    pub fn spread_cores(&mut self, d: DimRef) -> &mut Self {
        self.spread(d, SpreadAxis::Cores)
    }
    /// `depth N`
    #[track_caller]
    pub fn depth(&mut self, depth: u64) -> &mut Self {
        self.items.push(Item::Depth { depth, span: Span::caller() });
        self
    }

    /// `target = value`; `target` must be an access (`c.at([m, n])`).
    #[track_caller]
    pub fn assign(&mut self, target: Expr, value: impl Into<Expr>) -> &mut Self {
        self.statement(target, value.into(), false, Span::caller())
    }
    /// `target += value`
    #[track_caller]
    pub fn accumulate(&mut self, target: Expr, value: impl Into<Expr>) -> &mut Self {
        self.statement(target, value.into(), true, Span::caller())
    }

    fn statement(&mut self, target: Expr, value: Expr, accumulate: bool, span: Span) -> &mut Self {
        let ast::Expr::Access(target_access) = target.ast else {
            self.fail(CompileError::Type(Diagnostic::new(
                "the target of an assignment must be a tensor access such as c.at([m, n])",
                Some(&span),
            )));
            return self;
        };
        // Resolving names recurses over the expression: a tree past the depth limit is reported
        // (the type checker would report it too) and not walked.
        if value.ast.deeper_than(ast::MAX_EXPR_DEPTH).is_some() {
            self.fail(CompileError::Limit(super::parse::too_deep(&span)));
            return self;
        }
        let mut stmt = ast::Stmt {
            target: target_access,
            accumulate,
            value: value.ast,
            span,
        };
        if let Err(e) = self.resolve_access(&mut stmt.target).and_then(|_| self.resolve_expr(&mut stmt.value)) {
            self.fail(e);
        }
        self.items.push(Item::Stmt(Box::new(stmt)));
        self
    }

    fn fail(&mut self, e: CompileError) {
        self.error.get_or_insert(e);
    }

    fn dim_ident(&mut self, d: DimRef, span: &Span) -> Ident {
        match self.dim_names.get(d.id).filter(|_| d.kernel == self.id()) {
            Some(name) => Ident {
                name: name.clone(),
                span: span.clone(),
            },
            None => {
                self.fail(CompileError::Type(Diagnostic::new("a dim of another kernel is used here", Some(span))));
                Ident {
                    name: "?".into(),
                    span: span.clone(),
                }
            }
        }
    }

    /// Replaces a placeholder name by the declared name.
    fn resolve_ident(&self, ident: &mut Ident) -> Result<(), CompileError> {
        let Some(rest) = ident.name.strip_prefix('\u{0}') else { return Ok(()) };
        let mut parts = rest.split(':');
        let (kind, kernel, id) = (
            parts.next(),
            parts.next().and_then(|s| s.parse::<usize>().ok()),
            parts.next().and_then(|s| s.parse::<usize>().ok()),
        );
        let names = if kind == Some("dim") { &self.dim_names } else { &self.tensor_names };
        match (kernel, id) {
            (Some(k), Some(i)) if k == self.id() && i < names.len() => {
                ident.name = names[i].clone();
                Ok(())
            }
            _ => Err(CompileError::Type(Diagnostic::new(
                format!("a {} of another kernel is used here", kind.unwrap_or("name")),
                Some(&ident.span),
            ))),
        }
    }

    fn resolve_affine(&self, a: &mut AffineAst) -> Result<(), CompileError> {
        for (_, d) in &mut a.terms {
            self.resolve_ident(d)?;
        }
        for (_, q) in &mut a.divmods {
            self.resolve_affine(&mut q.inner)?;
        }
        Ok(())
    }

    fn resolve_access(&self, a: &mut ast::Access) -> Result<(), CompileError> {
        self.resolve_ident(&mut a.tensor)?;
        for i in &mut a.indices {
            self.resolve_affine(i)?;
        }
        if let Some((_, by)) = &mut a.gather {
            self.resolve_access(by)?;
        }
        Ok(())
    }

    fn resolve_expr(&self, e: &mut ast::Expr) -> Result<(), CompileError> {
        match e {
            ast::Expr::Number(..) => Ok(()),
            ast::Expr::Access(a) => self.resolve_access(a),
            ast::Expr::Unary(_, a, _) | ast::Expr::Cast { expr: a, .. } | ast::Expr::Srs { expr: a, .. } => self.resolve_expr(a),
            ast::Expr::Binary(_, l, r, _) => {
                self.resolve_expr(l)?;
                self.resolve_expr(r)
            }
            ast::Expr::Reduce { dims, body, .. } => {
                for d in dims.iter_mut() {
                    self.resolve_ident(d)?;
                }
                self.resolve_expr(body)
            }
            ast::Expr::Select { lhs, rhs, then, otherwise, .. } => {
                self.resolve_affine(lhs)?;
                self.resolve_affine(rhs)?;
                self.resolve_expr(then)?;
                self.resolve_expr(otherwise)
            }
            ast::Expr::ValueSelect { lhs, rhs, then, otherwise, .. } => {
                self.resolve_expr(lhs)?;
                self.resolve_expr(rhs)?;
                self.resolve_expr(then)?;
                self.resolve_expr(otherwise)
            }
            ast::Expr::Pow { base, .. } => self.resolve_expr(base),
            ast::Expr::Index(d) => self.resolve_ident(d),
            ast::Expr::ArgReduce { dim, body, .. } => {
                self.resolve_ident(dim)?;
                self.resolve_expr(body)
            }
        }
    }

    /// The kernel's AST (the same shape the `.tile` parser produces).
    pub fn ast(&self) -> Result<KernelAst, CompileError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Ok(KernelAst {
            name: self.name.clone(),
            items: self.items.clone(),
            span: self.span.clone(),
        })
    }

    /// Type-checks the kernel into IR (the same checker as for `.tile` text).
    pub fn build(&self) -> Result<ir::Kernel, CompileError> {
        typecheck(&self.ast()?)
    }

    /// Type-checks, schedules, checks and lowers the kernel for `device`: `k.compile(&npu1)?`
    /// then `.write_to(dir)` or `.emulate_against_reference(seed)`.
    pub fn compile(&self, device: &crate::DeviceModel) -> Result<crate::Compiled, CompileError> {
        crate::compile_kernel(&self.build()?, device)
    }
}
