//! The kernel IR: names resolved, types checked. Produced by [`crate::dsl::typecheck`] from the AST
//! of either front end; consumed by the reference interpreter, the scheduler and the lowering.
//!
//! Semantics (the contract every backend and the reference share):
//! * A kernel iterates over the tiles of its dims. A dim with `tile < size` is split; every access
//!   to a host tensor uses affine index expressions of dims (`A[M, K]`, `audio[160*T + S]`).
//! * Statements run in order on every output tile. A `sum` over a split dim (the K of a matmul)
//!   accumulates across that dim's tiles; it must be the first statement and target a local or
//!   the output.
//! * Compute types are only `I32` and `F32`: integer loads sign-extend to i32, bf16 loads extend to
//!   f32; stores to bf16 round to nearest even; stores to i8/i16 need an explicit `srs`/`cast`.

use crate::diag::Span;
use aiec_runtime::DType;

/// A dim: its index in [`Kernel::dims`]. Indexes that vector and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DimId(pub usize);

/// A tensor (host or local): its index in [`Kernel::tensors`]. Indexes that vector and nothing
/// else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub usize);

impl std::ops::Index<DimId> for Vec<Dim> {
    type Output = Dim;
    fn index(&self, d: DimId) -> &Dim {
        &self[d.0]
    }
}

impl std::ops::Index<TensorId> for Vec<Tensor> {
    type Output = Tensor;
    fn index(&self, t: TensorId) -> &Tensor {
        &self[t.0]
    }
}

impl std::ops::IndexMut<TensorId> for Vec<Tensor> {
    fn index_mut(&mut self, t: TensorId) -> &mut Tensor {
        &mut self[t.0]
    }
}

/// A type-checked kernel: what every pass after the front ends works on.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    /// The kernel's name (`kernel NAME { .. }`); names the artifact directory.
    pub name: String,
    /// The iteration dims, in declaration order ([`DimId`] indexes this).
    pub dims: Vec<Dim>,
    /// Inputs, outputs and locals, in declaration order ([`TensorId`] indexes this).
    pub tensors: Vec<Tensor>,
    /// How output tiles spread over the compute array.
    pub spread: Spread,
    /// Object FIFO depth (2: double buffering).
    pub depth: usize,
    /// Where `depth` was set, if the kernel set it.
    pub depth_span: Option<Span>,
    /// The statements, run in order on every output tile.
    pub stmts: Vec<Stmt>,
    /// The whole kernel's source.
    pub span: Span,
}

impl Kernel {
    /// The dims with their ids, in declaration order.
    pub(crate) fn dim_ids(&self) -> impl Iterator<Item = (DimId, &Dim)> {
        self.dims.iter().enumerate().map(|(i, d)| (DimId(i), d))
    }
    /// The tensors with their ids, in declaration order.
    pub(crate) fn tensor_ids(&self) -> impl Iterator<Item = (TensorId, &Tensor)> {
        self.tensors.iter().enumerate().map(|(i, t)| (TensorId(i), t))
    }
}

/// An iteration dim (`dim M = 512 tile 64`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    /// The name kernels index with.
    pub name: String,
    /// Global extent.
    pub size: u64,
    /// L1 tile extent; equals `size` when the dim is not split.
    pub tile: u64,
    /// The declaration.
    pub span: Span,
}

impl Dim {
    /// Number of tiles along the dim.
    pub(crate) fn tiles(&self) -> u64 {
        self.size / self.tile
    }
    /// Whether the dim has more than one tile.
    pub(crate) fn is_split(&self) -> bool {
        self.tile < self.size
    }
}

/// A declared tensor: a host input or output, or a core-local scratch tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The declared name.
    pub name: String,
    /// Input, output or local.
    pub role: Role,
    /// Element type in memory (compute happens in [`ScalarType`]).
    pub dtype: DType,
    /// Host shape (for locals: the tile extents of `local_dims`).
    pub shape: Vec<u64>,
    /// Locals are indexed by whole dims; their storage is one tile in each core's memory.
    pub local_dims: Vec<DimId>,
    /// For host tensors: the one index pattern all statements use to access it.
    pub access: Option<Vec<Affine>>,
    /// The declaration.
    pub span: Span,
}

impl Tensor {
    /// Whether the tensor lives in host memory (an input or output, not a local).
    pub(crate) fn is_host(&self) -> bool {
        self.role != Role::Local
    }
}

/// How output tiles spread over the compute array.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// Tiles of this dim go to different rows of compute tiles.
    pub rows: Option<DimId>,
    /// Tiles of this dim go to different columns.
    pub cols: Option<DimId>,
    /// The `spread` item, if the kernel has one.
    pub span: Option<Span>,
}

/// `sum(coef * dim) + constant`, in global (untiled) index space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Affine {
    /// `(coef, dim)` pairs; a dim appears at most once.
    pub terms: Vec<(i64, DimId)>,
    /// The constant offset.
    pub constant: i64,
    /// `(coef, quotient or remainder)` terms (`3*(S / 2)`), as written.
    pub divmods: Vec<(i64, DivModIndex)>,
}

/// The operator of an index quotient or remainder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DivMod {
    /// `/`: the floor quotient.
    Div,
    /// `%`: the remainder (non-negative).
    Mod,
}

/// The floor quotient or the remainder of a non-negative index by a positive constant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DivModIndex {
    /// The dividend; never negative (checked by the type checker).
    pub inner: Affine,
    /// `/` or `%`.
    pub op: DivMod,
    /// The divisor, at least 1.
    pub by: i64,
}

impl Affine {
    /// The plain index `d`.
    pub fn dim(d: DimId) -> Affine {
        Affine {
            terms: vec![(1, d)],
            constant: 0,
            divmods: Vec::new(),
        }
    }
    /// The single dim of a plain `D` index, if that is what this is.
    pub(crate) fn as_dim(&self) -> Option<DimId> {
        match self.terms.as_slice() {
            [(1, d)] if self.constant == 0 && self.divmods.is_empty() => Some(*d),
            _ => None,
        }
    }
    /// Whether the index is affine: no quotient or remainder.
    pub(crate) fn is_affine(&self) -> bool {
        self.divmods.is_empty()
    }
    /// The dims it uses, quotients' and remainders' included.
    pub(crate) fn dims(&self) -> std::vec::IntoIter<DimId> {
        let mut out: Vec<DimId> = self.terms.iter().map(|(_, d)| *d).collect();
        for (_, q) in &self.divmods {
            out.extend(q.inner.dims());
        }
        out.into_iter()
    }
    /// The value when each dim `d` is at `at(d)`.
    pub(crate) fn eval(&self, at: &dyn Fn(DimId) -> i64) -> i64 {
        let mut v = self.constant;
        for &(c, d) in &self.terms {
            v += c * at(d);
        }
        for (c, q) in &self.divmods {
            v += c * q.apply(q.inner.eval(at));
        }
        v
    }
    /// The least and the greatest value over every dim `d` in `0..size(d)`, in 128 bits (the
    /// type checker keeps them within the supported extent).
    pub(crate) fn range(&self, size: &dyn Fn(DimId) -> u64) -> (i128, i128) {
        let (mut lo, mut hi) = (self.constant as i128, self.constant as i128);
        let mut add = |c: i128, (l, h): (i128, i128)| {
            let (a, b) = (c.saturating_mul(l), c.saturating_mul(h));
            lo = lo.saturating_add(a.min(b));
            hi = hi.saturating_add(a.max(b));
        };
        for &(c, d) in &self.terms {
            add(c as i128, (0, size(d) as i128 - 1));
        }
        for (c, q) in &self.divmods {
            add(*c as i128, q.range(size));
        }
        (lo, hi)
    }
}

impl DivModIndex {
    /// The quotient or remainder of `v` (floor semantics).
    pub(crate) fn apply(&self, v: i64) -> i64 {
        match self.op {
            DivMod::Div => v.div_euclid(self.by),
            DivMod::Mod => v.rem_euclid(self.by),
        }
    }
    fn range(&self, size: &dyn Fn(DimId) -> u64) -> (i128, i128) {
        let (lo, hi) = self.inner.range(size);
        let by = self.by as i128;
        match self.op {
            DivMod::Div => (lo.div_euclid(by), hi.div_euclid(by)),
            DivMod::Mod if lo.div_euclid(by) == hi.div_euclid(by) => (lo.rem_euclid(by), hi.rem_euclid(by)),
            DivMod::Mod => (0, by - 1),
        }
    }
}

/// The type values are computed in (every narrower dtype widens to one of these on load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    /// 32-bit signed integer: every integer dtype computes in it.
    I32,
    /// 32-bit float: f32 and bf16 compute in it.
    F32,
}

/// One statement: `target[target_dims] = value` (or `+=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// The tensor written.
    pub target: TensorId,
    /// The target's index dims (plain dims only).
    pub target_dims: Vec<DimId>,
    /// `+=`: adds to the target (summing dims missing from it) instead of overwriting it.
    pub accumulate: bool,
    /// The right-hand side.
    pub value: Expr,
    /// The statement's source.
    pub span: Span,
}

/// How [`Expr::Convert`] narrows or converts its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Convert {
    /// Value conversion to `to`'s range/precision (see the AST's `Cast`).
    Cast,
    /// Shift right by n with round-half-up, then saturate.
    Srs(u32),
}

/// A typed expression; every node but `Index` and `ArgReduce` carries its compute type `ty`
/// (see [`Expr::ty`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal (a whole number for `I32`).
    Const {
        /// The value.
        value: f64,
        /// Its compute type.
        ty: ScalarType,
    },
    /// `tensor[indices]`: one element of a host tensor or local.
    Load {
        /// The tensor read.
        tensor: TensorId,
        /// One index per axis, in global index space (locals: plain dims).
        indices: Vec<Affine>,
        /// The loaded value's compute type.
        ty: ScalarType,
    },
    /// `op(arg)`.
    Unary {
        /// The operation.
        op: UnaryOp,
        /// The operand.
        arg: Box<Expr>,
        /// Result type (that of `arg`).
        ty: ScalarType,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operation.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand, of the same type.
        rhs: Box<Expr>,
        /// Result type (that of both operands).
        ty: ScalarType,
    },
    /// `op[dims](body)`: reduces `body` over whole `dims` (across their tiles for split dims).
    Reduce {
        /// Sum, max or min.
        op: ReduceOp,
        /// The dims reduced over.
        dims: Vec<DimId>,
        /// The reduced expression.
        body: Box<Expr>,
        /// Result type (that of `body`).
        ty: ScalarType,
    },
    /// Converts to `to` (the value keeps its compute type: I32 for ints, F32 for floats).
    Convert {
        /// The dtype whose range and precision the value takes.
        to: DType,
        /// Plain conversion or shift-round-saturate.
        kind: Convert,
        /// The converted value.
        arg: Box<Expr>,
        /// Result type (the compute type of `to`).
        ty: ScalarType,
    },
    /// `then` where the global index values satisfy `lhs cmp rhs`, else `otherwise`.
    Select {
        /// Left index expression.
        lhs: Affine,
        /// The comparison.
        cmp: CmpOp,
        /// Right index expression.
        rhs: Affine,
        /// The value where the comparison holds.
        then: Box<Expr>,
        /// The value elsewhere.
        otherwise: Box<Expr>,
        /// Result type (that of both branches).
        ty: ScalarType,
    },
    /// `then` where `lhs cmp rhs` holds, else `otherwise`; `lhs` and `rhs` share a type (float
    /// comparisons are ordered, except `!=`, which holds for NaN).
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
        /// Result type (that of both branches).
        ty: ScalarType,
    },
    /// A dim's global index value (I32).
    Index {
        /// The dim.
        dim: DimId,
    },
    /// `tensor[.., index, ..]`: a load whose axis `axis` is indexed by the integer value `index`
    /// (clamped into the axis), the others by `indices` (which hold 0 at `axis`). The gathered
    /// axis is sent whole to the cores.
    Gather {
        /// The tensor read (a host input).
        tensor: TensorId,
        /// Indices of the other axes.
        indices: Vec<Affine>,
        /// The axis indexed by a value.
        axis: usize,
        /// The I32 value indexing `axis`.
        index: Box<Expr>,
        /// The loaded value's compute type.
        ty: ScalarType,
    },
    /// The global index (I32) along `dim` of the first largest (`max`) or smallest value of
    /// `body`; NaNs are never chosen (all NaN: index 0).
    ArgReduce {
        /// `argmax` (true) or `argmin`.
        max: bool,
        /// The dim searched.
        dim: DimId,
        /// The values compared.
        body: Box<Expr>,
    },
}

impl Expr {
    /// The compute type of the value (`I32` for indices and arg-reductions).
    pub fn ty(&self) -> ScalarType {
        match self {
            Expr::Const { ty, .. }
            | Expr::Load { ty, .. }
            | Expr::Unary { ty, .. }
            | Expr::Binary { ty, .. }
            | Expr::Reduce { ty, .. }
            | Expr::Convert { ty, .. }
            | Expr::Select { ty, .. }
            | Expr::Gather { ty, .. }
            | Expr::ValueSelect { ty, .. } => *ty,
            Expr::Index { .. } | Expr::ArgReduce { .. } => ScalarType::I32,
        }
    }
    /// Visits this expression and all sub-expressions, parents first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Const { .. } | Expr::Load { .. } | Expr::Index { .. } => {}
            Expr::Unary { arg, .. } | Expr::Convert { arg, .. } => arg.walk(f),
            Expr::ArgReduce { body, .. } => body.walk(f),
            Expr::Gather { index, .. } => index.walk(f),
            Expr::ValueSelect { lhs, rhs, then, otherwise, .. } => {
                lhs.walk(f);
                rhs.walk(f);
                then.walk(f);
                otherwise.walk(f);
            }
            Expr::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            Expr::Reduce { body, .. } => body.walk(f),
            Expr::Select { then, otherwise, .. } => {
                then.walk(f);
                otherwise.walk(f);
            }
        }
    }
}

/// The compute type a value of `dtype` is loaded into.
pub(crate) fn scalar_type_of(dtype: DType) -> ScalarType {
    if dtype.is_float() {
        ScalarType::F32
    } else {
        ScalarType::I32
    }
}

/// What a declared tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `in`: read from host memory.
    In,
    /// `out`: written to host memory.
    Out,
    /// `local`: per-core scratch in the core's data memory.
    Local,
}

/// A one-operand operation (`-x` or a function call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `exp(x)`: e^x (float).
    Exp,
    /// `tanh(x)` (float).
    Tanh,
    /// `rsqrt(x)`: 1 / sqrt(x) (float).
    Rsqrt,
    /// `sqrt(x)` (float).
    Sqrt,
    /// `log10(x)` (float).
    Log10,
    /// `ln(x)`: natural logarithm (float).
    Ln,
    /// `abs(x)`.
    Abs,
    /// `recip(x)`: 1 / x (float).
    Recip,
    /// `1 / (1 + exp(-x))`; type checking rewrites it into those operations.
    Sigmoid,
    /// Largest integer not above `x` (a float).
    Floor,
    /// Nearest integer, ties to even (a float).
    Round,
}

impl UnaryOp {
    /// The function a call name stands for (`-` is not a name).
    pub(crate) fn from_name(s: &str) -> Option<UnaryOp> {
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

/// A two-operand operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (integers: truncating).
    Div,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
}

/// How a reduction combines the values along its dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// `sum[..](..)`.
    Sum,
    /// `max[..](..)`.
    Max,
    /// `min[..](..)`.
    Min,
}

/// A comparison in a `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
}
