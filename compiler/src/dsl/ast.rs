//! The kernel AST: what the `.tile` parser and the Rust builder both produce.
//! Names are unresolved and types unchecked; [`super::typecheck`] turns it into [`crate::ir::Kernel`].

use crate::diag::Span;
use aiec_runtime::DType;

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Its source location.
    pub span: Span,
}

/// One kernel as written: its items in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelAst {
    /// `kernel NAME`.
    pub name: Ident,
    /// Declarations and statements, in source order.
    pub items: Vec<Item>,
    /// The whole kernel.
    pub span: Span,
}

/// One item of a kernel body.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `dim M = 512 tile 64` (tile omitted: the dimension is not split, tile = size)
    Dim {
        /// The dim's name.
        name: Ident,
        /// Global extent.
        size: u64,
        /// Tile extent, if given.
        tile: Option<u64>,
        /// The whole item.
        span: Span,
    },
    /// `in A: i8[M, K]`, `out C: i32[M, N]`, `local acc: i32[M, N]`; extents are dims or numbers.
    Tensor {
        /// `in`, `out` or `local`.
        role: Role,
        /// The tensor's name.
        name: Ident,
        /// Element type.
        dtype: DType,
        /// Where the element type was written.
        dtype_span: Span,
        /// One extent per axis.
        shape: Vec<Extent>,
        /// The whole item.
        span: Span,
    },
    /// `spread M over rows, N over cols` | `spread M over cores`
    Spread {
        /// Each dim with the axis of the array its tiles spread over.
        parts: Vec<(Ident, SpreadAxis)>,
        /// The whole item.
        span: Span,
    },
    /// `depth 2`: object FIFO depth (2 = double buffering, the default).
    Depth {
        /// The depth.
        depth: u64,
        /// The whole item.
        span: Span,
    },
    /// `target[...] = expr` or `target[...] += expr`
    Stmt(Box<Stmt>),
}

/// Where the tiles of a spread dim go on the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpreadAxis {
    /// Different rows of compute tiles.
    Rows,
    /// Different columns.
    Cols,
    /// All compute tiles, row-major in each column (rows then columns).
    Cores,
}

/// One axis extent of a tensor declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Extent {
    /// A dim's name: the dim's size (a local takes its tile).
    Dim(Ident),
    /// A literal extent, with where it was written.
    Number(u64, Span),
}

/// `target[...] = value` or `target[...] += value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// The element written.
    pub target: Access,
    /// `+=` rather than `=`.
    pub accumulate: bool,
    /// The right-hand side.
    pub value: Expr,
    /// The whole statement.
    pub span: Span,
}

/// `A[M, K]`, `audio[160*T + S]`, `table[ids[M], D]`
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// The tensor's name.
    pub tensor: Ident,
    /// One per axis; a gathered axis holds the constant 0 here.
    pub indices: Vec<AffineAst>,
    /// The axis whose index is read from another tensor, and that read.
    pub gather: Option<(usize, Box<Access>)>,
    /// The whole access.
    pub span: Span,
}

/// Sum of `coef * dim` terms plus a constant, e.g. `160*T + S + 3`, and of quotients and
/// remainders by constants (`T / 2`, `(2*T + 1) % 4`).
#[derive(Debug, Clone, PartialEq)]
pub struct AffineAst {
    /// `(coef, dim)` pairs, as written.
    pub terms: Vec<(i64, Ident)>,
    /// The constant offset.
    pub constant: i64,
    /// The whole index expression.
    pub span: Span,
    /// `(coef, quotient or remainder)` terms, as written.
    pub divmods: Vec<(i64, DivModAst)>,
}

/// Floor division or remainder of an index by a positive constant: `T / 2`, `(S + 1) % 4`.
#[derive(Debug, Clone, PartialEq)]
pub struct DivModAst {
    /// The dividend.
    pub inner: AffineAst,
    /// `/` or `%`.
    pub op: DivMod,
    /// The divisor.
    pub by: i64,
    /// The term as written.
    pub span: Span,
}

pub use crate::ir::{BinaryOp, CmpOp, DivMod, ReduceOp, Role, UnaryOp};

/// An expression as written; the trailing `Span` of a tuple variant is the whole expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal; `inf` and `-inf` are allowed for floats.
    Number(f64, Span),
    /// An element of a tensor: `A[M, K]`.
    Access(Access),
    /// `-x` or a one-argument function call.
    Unary(UnaryOp, Box<Expr>, Span),
    /// An operator or a two-argument function call (`max(a, b)`).
    Binary(BinaryOp, Box<Expr>, Box<Expr>, Span),
    /// `sum[K](expr)`, `max[N](expr)`
    Reduce {
        /// Sum, max or min.
        op: ReduceOp,
        /// The dims reduced over.
        dims: Vec<Ident>,
        /// The reduced expression.
        body: Box<Expr>,
        /// The whole reduction.
        span: Span,
    },
    /// `cast<bf16>(expr)`: value conversion (floats round to nearest even; float->int truncates and saturates).
    Cast {
        /// The target dtype.
        to: DType,
        /// The converted value.
        expr: Box<Expr>,
        /// The whole call.
        span: Span,
    },
    /// `srs<i8>(expr, 8)`: arithmetic shift right by `shift` with round-half-up, then saturate to `to`.
    Srs {
        /// The integer dtype saturated to.
        to: DType,
        /// Bits shifted right.
        shift: u32,
        /// The shifted value (an integer).
        expr: Box<Expr>,
        /// The whole call.
        span: Span,
    },
    /// `select(K <= Q, a, b)`: compares global (untiled) index values.
    Select {
        /// Left index expression.
        lhs: AffineAst,
        /// The comparison.
        cmp: CmpOp,
        /// Right index expression.
        rhs: AffineAst,
        /// The value where the comparison holds.
        then: Box<Expr>,
        /// The value elsewhere.
        otherwise: Box<Expr>,
        /// The whole call.
        span: Span,
    },
    /// `select(x[M] > 0.0, a, b)`: compares two values (of one type).
    ValueSelect {
        /// Left value compared.
        lhs: Box<Expr>,
        /// The comparison.
        cmp: CmpOp,
        /// Right value compared.
        rhs: Box<Expr>,
        /// The value where the comparison holds.
        then: Box<Expr>,
        /// The value elsewhere.
        otherwise: Box<Expr>,
        /// The whole call.
        span: Span,
    },
    /// `pow(x, 3)`: a power with an integer literal exponent; type checking rewrites it into
    /// multiplications (and a `recip` for a negative exponent).
    Pow {
        /// The base.
        base: Box<Expr>,
        /// The literal exponent (|n| at most `MAX_POW_EXPONENT`).
        exponent: i32,
        /// The whole call.
        span: Span,
    },
    /// `I`: a dim as a value, its global index (i32).
    Index(Ident),
    /// `argmax[J](expr)`, `argmin[J](expr)`: the global index (i32) of the first largest
    /// (smallest) value along one dim.
    ArgReduce {
        /// `argmax` (true) or `argmin`.
        max: bool,
        /// The dim searched.
        dim: Ident,
        /// The values compared.
        body: Box<Expr>,
        /// The whole call.
        span: Span,
    },
}

/// The largest |n| of `pow(x, n)`: the power is unrolled into at most 2 log2(n) multiplications.
pub(crate) const MAX_POW_EXPONENT: i32 = 64;

/// How deeply expressions may nest: every operator of a chain (`a + b + c` nests `a + b` inside
/// `(a + b) + c`), unary minus, call, reduction, conversion and `select` is one level, and the
/// text may not nest parentheses deeper either. Every pass after parsing (type checking, the
/// scheduler's walks, the reference interpreter, the lowering) recurses over expressions; this
/// bound keeps each of them well inside a 2 MiB thread stack (the smallest a Rust thread gets by
/// default), so no accepted kernel can overflow the stack. Real kernels nest a few levels.
pub const MAX_EXPR_DEPTH: usize = 200;

impl Expr {
    /// The direct sub-expressions.
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Number(..) | Expr::Access(_) | Expr::Index(_) => vec![],
            Expr::Unary(_, a, _) => vec![a],
            Expr::Binary(_, l, r, _) => vec![l, r],
            Expr::Reduce { body, .. } => vec![body],
            Expr::Cast { expr, .. } | Expr::Srs { expr, .. } => vec![expr],
            Expr::Select { then, otherwise, .. } => vec![then, otherwise],
            Expr::ValueSelect { lhs, rhs, then, otherwise, .. } => vec![lhs, rhs, then, otherwise],
            Expr::Pow { base, .. } => vec![base],
            Expr::ArgReduce { body, .. } => vec![body],
        }
    }

    /// The outermost sub-expression that lies deeper than `limit` levels (this node is level 1),
    /// if any. Iterative, so it is safe on trees of any depth.
    pub(crate) fn deeper_than(&self, limit: usize) -> Option<&Expr> {
        let mut stack = vec![(self, 1usize)];
        let mut found: Option<(&Expr, usize)> = None;
        while let Some((e, depth)) = stack.pop() {
            if depth > limit {
                // The first node past the limit on its path; keep the one that starts first.
                if found.is_none_or(|(f, _)| e.span().start < f.span().start) {
                    found = Some((e, depth));
                }
                continue;
            }
            stack.extend(e.children().into_iter().map(|c| (c, depth + 1)));
        }
        found.map(|(e, _)| e)
    }

    /// The whole expression's source.
    pub fn span(&self) -> &Span {
        match self {
            Expr::Number(_, s) | Expr::Unary(_, _, s) | Expr::Binary(_, _, _, s) => s,
            Expr::Access(a) => &a.span,
            Expr::Index(i) => &i.span,
            Expr::Reduce { span, .. }
            | Expr::Cast { span, .. }
            | Expr::Srs { span, .. }
            | Expr::Select { span, .. }
            | Expr::ValueSelect { span, .. }
            | Expr::Pow { span, .. }
            | Expr::ArgReduce { span, .. } => span,
        }
    }
}
