//! The kernel AST: what the `.tile` parser and the Rust builder both produce.
//! Names are unresolved and types unchecked; [`super::typecheck`] turns it into [`crate::ir::Kernel`].

use crate::diag::Span;
use aiec_runtime::DType;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KernelAst {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `dim M = 512 tile 64` (tile omitted: the dimension is not split, tile = size)
    Dim { name: Ident, size: u64, tile: Option<u64>, span: Span },
    /// `in A: i8[M, K]`, `out C: i32[M, N]`, `local acc: i32[M, N]`; extents are dims or numbers.
    Tensor {
        role: Role,
        name: Ident,
        dtype: DType,
        dtype_span: Span,
        shape: Vec<Extent>,
        span: Span,
    },
    /// `spread M over rows, N over cols` | `spread M over cores`
    Spread { parts: Vec<(Ident, SpreadAxis)>, span: Span },
    /// `depth 2`: object FIFO depth (2 = double buffering, the default).
    Depth { depth: u64, span: Span },
    /// `target[...] = expr` or `target[...] += expr`
    Stmt(Stmt),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    In,
    Out,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpreadAxis {
    Rows,
    Cols,
    /// All compute tiles, row-major in each column (rows then columns).
    Cores,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Extent {
    Dim(Ident),
    Number(u64, Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub target: Access,
    pub accumulate: bool,
    pub value: Expr,
    pub span: Span,
}

/// `A[M, K]`, `audio[160*T + S]`
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub tensor: Ident,
    pub indices: Vec<AffineAst>,
    pub span: Span,
}

/// Sum of `coef * dim` terms plus a constant, e.g. `160*T + S + 3`.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineAst {
    pub terms: Vec<(i64, Ident)>,
    pub constant: i64,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Tanh,
    Rsqrt,
    Sqrt,
    Log10,
    Ln,
    Abs,
    Recip,
    /// `1 / (1 + exp(-x))`; type checking rewrites it into those operations.
    Sigmoid,
    /// Largest integer not above `x` (a float).
    Floor,
    /// Nearest integer, ties to even (a float).
    Round,
}

impl UnaryOp {
    pub fn from_name(s: &str) -> Option<UnaryOp> {
        Some(match s {
            "exp" => UnaryOp::Exp,
            "tanh" => UnaryOp::Tanh,
            "rsqrt" => UnaryOp::Rsqrt,
            "sqrt" => UnaryOp::Sqrt,
            "log10" => UnaryOp::Log10,
            "ln" => UnaryOp::Ln,
            "abs" => UnaryOp::Abs,
            "recip" => UnaryOp::Recip,
            "sigmoid" => UnaryOp::Sigmoid,
            "floor" => UnaryOp::Floor,
            "round" => UnaryOp::Round,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal; `inf` and `-inf` are allowed for floats.
    Number(f64, Span),
    Access(Access),
    Unary(UnaryOp, Box<Expr>, Span),
    Binary(BinaryOp, Box<Expr>, Box<Expr>, Span),
    /// `sum[K](expr)`, `max[N](expr)`
    Reduce {
        op: ReduceOp,
        dims: Vec<Ident>,
        body: Box<Expr>,
        span: Span,
    },
    /// `cast<bf16>(expr)`: value conversion (floats round to nearest even; float->int truncates and saturates).
    Cast {
        to: DType,
        expr: Box<Expr>,
        span: Span,
    },
    /// `srs<i8>(expr, 8)`: arithmetic shift right by `shift` with round-half-up, then saturate to `to`.
    Srs {
        to: DType,
        shift: u32,
        expr: Box<Expr>,
        span: Span,
    },
    /// `select(K <= Q, a, b)`: compares global (untiled) index values.
    Select {
        lhs: AffineAst,
        cmp: CmpOp,
        rhs: AffineAst,
        then: Box<Expr>,
        otherwise: Box<Expr>,
        span: Span,
    },
    /// `select(x[M] > 0.0, a, b)`: compares two values (of one type).
    ValueSelect {
        lhs: Box<Expr>,
        cmp: CmpOp,
        rhs: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
        span: Span,
    },
    /// `pow(x, 3)`: a power with an integer literal exponent; type checking rewrites it into
    /// multiplications (and a `recip` for a negative exponent).
    Pow { base: Box<Expr>, exponent: i32, span: Span },
    /// `I`: a dim as a value, its global index (i32).
    Index(Ident),
    /// `argmax[J](expr)`, `argmin[J](expr)`: the global index (i32) of the first largest
    /// (smallest) value along one dim.
    ArgReduce { max: bool, dim: Ident, body: Box<Expr>, span: Span },
}

/// The largest |n| of `pow(x, n)`: the power is unrolled into at most 2 log2(n) multiplications.
pub const MAX_POW_EXPONENT: i32 = 64;

/// How deeply expressions may nest: every operator of a chain (`a + b + c` nests `a + b` inside
/// `(a + b) + c`), unary minus, call, reduction, conversion and `select` is one level, and the
/// text may not nest parentheses deeper either. Every pass after parsing (type checking, the
/// scheduler's walks, the reference interpreter, the lowering) recurses over expressions; this
/// bound keeps each of them well inside a 2 MiB thread stack (the smallest a Rust thread gets by
/// default), so no accepted kernel can overflow the stack. Real kernels nest a few levels.
pub const MAX_EXPR_DEPTH: usize = 200;

impl Expr {
    /// The direct sub-expressions.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Number(..) | Expr::Access(_) | Expr::Index(_) => vec![],
            Expr::Unary(_, a, _) => vec![a],
            Expr::Binary(_, l, r, _) => vec![l, r],
            Expr::Reduce { body, .. } => vec![body],
            Expr::Cast { expr, .. } | Expr::Srs { expr, .. } => vec![expr],
            Expr::Select { then, otherwise, .. } => vec![then, otherwise],
            Expr::ValueSelect {
                lhs, rhs, then, otherwise, ..
            } => vec![lhs, rhs, then, otherwise],
            Expr::Pow { base, .. } => vec![base],
            Expr::ArgReduce { body, .. } => vec![body],
        }
    }

    /// The outermost sub-expression that lies deeper than `limit` levels (this node is level 1),
    /// if any. Iterative, so it is safe on trees of any depth.
    pub fn deeper_than(&self, limit: usize) -> Option<&Expr> {
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
