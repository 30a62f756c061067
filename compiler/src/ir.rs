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
use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use aiec_runtime::DType;

pub type DimId = usize;
pub type TensorId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub dims: Vec<Dim>,
    pub tensors: Vec<Tensor>,
    pub spread: Spread,
    /// Object FIFO depth (2: double buffering).
    pub depth: usize,
    pub depth_span: Option<Span>,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    pub name: String,
    pub size: u64,
    /// L1 tile extent; equals `size` when the dim is not split.
    pub tile: u64,
    pub span: Span,
}

impl Dim {
    pub fn tiles(&self) -> u64 {
        self.size / self.tile
    }
    pub fn is_split(&self) -> bool {
        self.tile < self.size
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub role: Role,
    pub dtype: DType,
    /// Host shape (for locals: the tile extents of `local_dims`).
    pub shape: Vec<u64>,
    /// Locals are indexed by whole dims; their storage is one tile in each core's memory.
    pub local_dims: Vec<DimId>,
    /// For host tensors: the one index pattern all statements use to access it.
    pub access: Option<Vec<Affine>>,
    pub span: Span,
}

impl Tensor {
    pub fn is_host(&self) -> bool {
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
    pub span: Option<Span>,
}

/// `sum(coef * dim) + constant`, in global (untiled) index space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Affine {
    pub terms: Vec<(i64, DimId)>,
    pub constant: i64,
}

impl Affine {
    pub fn dim(d: DimId) -> Affine {
        Affine {
            terms: vec![(1, d)],
            constant: 0,
        }
    }
    /// The single dim of a plain `D` index, if that is what this is.
    pub fn as_dim(&self) -> Option<DimId> {
        match self.terms.as_slice() {
            [(1, d)] if self.constant == 0 => Some(*d),
            _ => None,
        }
    }
    pub fn dims(&self) -> impl Iterator<Item = DimId> + '_ {
        self.terms.iter().map(|(_, d)| *d)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    I32,
    F32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub target: TensorId,
    /// The target's index dims (plain dims only).
    pub target_dims: Vec<DimId>,
    pub accumulate: bool,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Convert {
    /// Value conversion to `to`'s range/precision (see the AST's `Cast`).
    Cast,
    /// Shift right by n with round-half-up, then saturate.
    Srs(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const {
        value: f64,
        ty: ScalarType,
    },
    Load {
        tensor: TensorId,
        indices: Vec<Affine>,
        ty: ScalarType,
    },
    Unary {
        op: UnaryOp,
        arg: Box<Expr>,
        ty: ScalarType,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        ty: ScalarType,
    },
    Reduce {
        op: ReduceOp,
        dims: Vec<DimId>,
        body: Box<Expr>,
        ty: ScalarType,
    },
    /// Converts to `to` (the value keeps its compute type: I32 for ints, F32 for floats).
    Convert {
        to: DType,
        kind: Convert,
        arg: Box<Expr>,
        ty: ScalarType,
    },
    Select {
        lhs: Affine,
        cmp: CmpOp,
        rhs: Affine,
        then: Box<Expr>,
        otherwise: Box<Expr>,
        ty: ScalarType,
    },
    /// `then` where `lhs cmp rhs` holds, else `otherwise`; `lhs` and `rhs` share a type (float
    /// comparisons are ordered, except `!=`, which holds for NaN).
    ValueSelect {
        lhs: Box<Expr>,
        cmp: CmpOp,
        rhs: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
        ty: ScalarType,
    },
    /// A dim's global index value (I32).
    Index { dim: DimId },
    /// The global index (I32) along `dim` of the first largest (`max`) or smallest value of
    /// `body`; NaNs are never chosen (all NaN: index 0).
    ArgReduce { max: bool, dim: DimId, body: Box<Expr> },
}

impl Expr {
    pub fn ty(&self) -> ScalarType {
        match self {
            Expr::Const { ty, .. }
            | Expr::Load { ty, .. }
            | Expr::Unary { ty, .. }
            | Expr::Binary { ty, .. }
            | Expr::Reduce { ty, .. }
            | Expr::Convert { ty, .. }
            | Expr::Select { ty, .. }
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
            Expr::ValueSelect {
                lhs, rhs, then, otherwise, ..
            } => {
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

pub fn scalar_type_of(dtype: DType) -> ScalarType {
    if dtype.is_float() {
        ScalarType::F32
    } else {
        ScalarType::I32
    }
}
