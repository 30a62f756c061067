//! The reference interpreter: runs a typed kernel on whole tensors on the host, statement by
//! statement, with the semantics of the [`crate::ir`] module doc. It is the ground truth every
//! backend's output is compared with.
//!
//! Carriers: inputs and outputs are `ndarray::ArrayD<f64>` holding values of the tensor's dtype
//! (every i8/i16/i32/bf16/f32 value is exact in f64). Inside, integer tensors are held as `i32` and
//! float tensors as `f32` (bf16 values rounded), so arithmetic is exactly the kernel's:
//! * I32: loads sign-extend; `+ - *`, negation and sums wrap like i32; max/min are signed.
//! * F32: f32 arithmetic; exp/tanh/sqrt/ln/log10 are the platform libm's; `recip(x)` = 1/x,
//!   `rsqrt(x)` = 1/sqrt(x); max/min propagate NaN (as MLIR's `maximumf`/`minimumf`).
//! * `srs<t>(x, s)`: `(x + (1 << (s-1))) >> s` with the add in wrapping i32 as the cores compute it
//!   (s = 0: no rounding), arithmetic shift, then saturation to t's range.
//! * `cast<t>`: int -> narrower int saturates; int -> float rounds to nearest (even);
//!   float -> int truncates toward zero after clamping to t's range; float -> bf16 rounds to
//!   nearest even.
//! * Stores: to bf16 round to nearest even; to i8/i16 keep the low bits (the type checker only
//!   admits values already in range).
//! * Locals are full-size arrays over their dims (tiling changes only the order of float sums;
//!   here every reduction runs in index order, first listed dim outermost). Locals and outputs
//!   start at zero, so `+=` into a fresh target accumulates from zero.

use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use crate::ir::{Affine, Convert, DimId, Expr, Kernel, ScalarType, TensorId};
use aiec_runtime::DType;
use half::bf16;
use ndarray::{ArrayD, Dimension};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error("kernel {kernel} has {expected} input tensors, but {got} input arrays were given")]
    InputCount { kernel: String, expected: usize, got: usize },
    #[error("input {tensor}: shape {got:?} given, the kernel declares {expected:?}")]
    InputShape { tensor: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("input {tensor}: element {index:?} = {value} is not a {dtype} value")]
    InputValue {
        tensor: String,
        index: Vec<usize>,
        value: f64,
        dtype: DType,
    },
    #[error("{tensor}: axis {axis} reaches index {index}, outside its extent {extent} (statement at {location})")]
    OutOfBounds {
        tensor: String,
        axis: usize,
        index: i64,
        extent: u64,
        location: String,
    },
    #[error("not supported by the reference interpreter: {what} (statement at {location})")]
    Unsupported { what: String, location: String },
}

/// Runs `kernel` on `inputs` (one array per `in` tensor, in declaration order) and returns one
/// array per `out` tensor, in declaration order.
pub fn run_reference(kernel: &Kernel, inputs: &[ArrayD<f64>]) -> Result<Vec<ArrayD<f64>>, ReferenceError> {
    let in_ids: Vec<TensorId> = ids_with_role(kernel, Role::In);
    if in_ids.len() != inputs.len() {
        return Err(ReferenceError::InputCount {
            kernel: kernel.name.clone(),
            expected: in_ids.len(),
            got: inputs.len(),
        });
    }
    let mut state = State::new(kernel);
    for (&t, array) in in_ids.iter().zip(inputs) {
        state.load_input(kernel, t, array)?;
    }
    for stmt in &kernel.stmts {
        let location = stmt.span.location();
        let value = compile(kernel, &state, &stmt.value, &location)?;
        let target = &kernel.tensors[stmt.target];
        let indices: Vec<Affine> = stmt.target_dims.iter().map(|&d| Affine::dim(d)).collect();
        let store = state.address(kernel, stmt.target, &indices, &location)?;
        let sizes: Vec<u64> = stmt.target_dims.iter().map(|&d| kernel.dims[d].size).collect();
        let mut env = vec![0i64; kernel.dims.len()];
        let total: u64 = sizes.iter().product();
        for flat in 0..total {
            // Row-major over the target dims.
            let mut rest = flat;
            for (k, &d) in stmt.target_dims.iter().enumerate().rev() {
                env[d] = (rest % sizes[k]) as i64;
                rest /= sizes[k];
            }
            let at = store.offset(&env);
            match state.bufs[stmt.target] {
                Buf::Int(_) => {
                    let mut v = state.eval_i(&value, &mut env);
                    if stmt.accumulate {
                        v = v.wrapping_add(state.bufs[stmt.target].int(at));
                    }
                    let stored = match target.dtype {
                        DType::I8 => v as i8 as i32,
                        DType::I16 => v as i16 as i32,
                        _ => v,
                    };
                    state.bufs[stmt.target].set_int(at, stored);
                }
                Buf::Float(_) => {
                    let mut v = state.eval_f(&value, &mut env);
                    if stmt.accumulate {
                        v += state.bufs[stmt.target].float(at);
                    }
                    let stored = if target.dtype == DType::Bf16 { round_bf16(v) } else { v };
                    state.bufs[stmt.target].set_float(at, stored);
                }
            }
        }
    }
    Ok(ids_with_role(kernel, Role::Out).into_iter().map(|t| state.output(kernel, t)).collect())
}

fn ids_with_role(kernel: &Kernel, role: Role) -> Vec<TensorId> {
    kernel.tensors.iter().enumerate().filter(|(_, t)| t.role == role).map(|(i, _)| i).collect()
}

fn round_bf16(v: f32) -> f32 {
    bf16::from_f32(v).to_f32()
}

fn int_range(d: DType) -> (i64, i64) {
    match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        _ => (i32::MIN as i64, i32::MAX as i64),
    }
}

fn saturate(v: i32, to: DType) -> i32 {
    let (lo, hi) = int_range(to);
    (v as i64).clamp(lo, hi) as i32
}

/// `srs<to>(v, shift)` as the cores compute it.
pub fn srs(v: i32, shift: u32, to: DType) -> i32 {
    let shifted = if shift == 0 { v } else { v.wrapping_add(1i32 << (shift - 1)) >> shift };
    saturate(shifted, to)
}

/// `cast<to>` of an f32 value (the result's compute type follows `to`).
fn cast_float(v: f32, to: DType) -> Scalar {
    match to {
        DType::F32 => Scalar::F(v),
        DType::Bf16 => Scalar::F(round_bf16(v)),
        _ => {
            let (lo, hi) = int_range(to);
            let clamped = fmin(fmax(v, lo as f32), hi as f32);
            Scalar::I(clamped as i32)
        }
    }
}

/// NaN-propagating max, with -0 < +0 (MLIR `arith.maximumf`).
fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else {
        a.max(b)
    }
}

/// NaN-propagating min, with -0 < +0 (MLIR `arith.minimumf`).
fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a == b {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else {
        a.min(b)
    }
}

enum Scalar {
    I(i32),
    F(f32),
}

enum Buf {
    Int(Vec<i32>),
    Float(Vec<f32>),
}

impl Buf {
    fn int(&self, i: usize) -> i32 {
        match self {
            Buf::Int(v) => v[i],
            Buf::Float(v) => v[i] as i32,
        }
    }
    fn float(&self, i: usize) -> f32 {
        match self {
            Buf::Float(v) => v[i],
            Buf::Int(v) => v[i] as f32,
        }
    }
    fn set_int(&mut self, i: usize, x: i32) {
        if let Buf::Int(v) = self {
            v[i] = x;
        }
    }
    fn set_float(&mut self, i: usize, x: f32) {
        if let Buf::Float(v) = self {
            v[i] = x;
        }
    }
}

/// A linearized access: element offset = `constant + sum(stride * env[dim])`, in bounds for every
/// value of the dims (checked when it is built).
struct Address {
    constant: i64,
    terms: Vec<(i64, DimId)>,
}

impl Address {
    /// Element stride of one step of dim `d`.
    fn stride_of(&self, d: DimId) -> i64 {
        self.terms.iter().filter(|t| t.1 == d).map(|t| t.0).sum()
    }
    fn offset(&self, env: &[i64]) -> usize {
        let mut o = self.constant;
        for &(s, d) in &self.terms {
            o += s * env[d];
        }
        o as usize
    }
}

struct State {
    bufs: Vec<Buf>,
    /// Storage shape per tensor: host shape, or the full dim sizes for locals.
    shapes: Vec<Vec<u64>>,
}

impl State {
    fn new(kernel: &Kernel) -> State {
        let mut bufs = Vec::new();
        let mut shapes = Vec::new();
        for t in &kernel.tensors {
            let shape: Vec<u64> = if t.role == Role::Local {
                t.local_dims.iter().map(|&d| kernel.dims[d].size).collect()
            } else {
                t.shape.clone()
            };
            let n = shape.iter().product::<u64>() as usize;
            bufs.push(if t.dtype.is_float() { Buf::Float(vec![0.0; n]) } else { Buf::Int(vec![0; n]) });
            shapes.push(shape);
        }
        State { bufs, shapes }
    }

    fn load_input(&mut self, kernel: &Kernel, t: TensorId, array: &ArrayD<f64>) -> Result<(), ReferenceError> {
        let tensor = &kernel.tensors[t];
        let expected: Vec<usize> = tensor.shape.iter().map(|&s| s as usize).collect();
        if array.shape() != expected.as_slice() {
            return Err(ReferenceError::InputShape {
                tensor: tensor.name.clone(),
                expected,
                got: array.shape().to_vec(),
            });
        }
        let bad = |index: Vec<usize>, value: f64| ReferenceError::InputValue {
            tensor: tensor.name.clone(),
            index,
            value,
            dtype: tensor.dtype,
        };
        match &mut self.bufs[t] {
            Buf::Int(v) => {
                let (lo, hi) = int_range(tensor.dtype);
                for (i, (index, &x)) in array.indexed_iter().enumerate() {
                    if x.fract() != 0.0 || !(lo as f64..=hi as f64).contains(&x) {
                        return Err(bad(index.slice().to_vec(), x));
                    }
                    v[i] = x as i32;
                }
            }
            Buf::Float(v) => {
                for (i, &x) in array.iter().enumerate() {
                    v[i] = if tensor.dtype == DType::Bf16 { bf16::from_f64(x).to_f32() } else { x as f32 };
                }
            }
        }
        Ok(())
    }

    fn output(&self, kernel: &Kernel, t: TensorId) -> ArrayD<f64> {
        let shape: Vec<usize> = kernel.tensors[t].shape.iter().map(|&s| s as usize).collect();
        let data: Vec<f64> = match &self.bufs[t] {
            Buf::Int(v) => v.iter().map(|&x| x as f64).collect(),
            Buf::Float(v) => v.iter().map(|&x| x as f64).collect(),
        };
        ArrayD::from_shape_vec(shape, data).expect("buffer length is the product of the shape")
    }

    /// Linearizes an access and checks it stays in bounds for every dim value.
    fn address(&self, kernel: &Kernel, t: TensorId, indices: &[Affine], location: &str) -> Result<Address, ReferenceError> {
        let tensor = &kernel.tensors[t];
        let shape = &self.shapes[t];
        if tensor.role == Role::Local {
            let plain: Vec<Option<DimId>> = indices.iter().map(Affine::as_dim).collect();
            if plain != tensor.local_dims.iter().map(|&d| Some(d)).collect::<Vec<_>>() {
                return Err(ReferenceError::Unsupported {
                    what: format!("local {} indexed other than by its own dims", tensor.name),
                    location: location.into(),
                });
            }
        }
        if indices.len() != shape.len() {
            return Err(ReferenceError::Unsupported {
                what: format!("{} accessed with {} indices, it has {}", tensor.name, indices.len(), shape.len()),
                location: location.into(),
            });
        }
        let mut stride = 1i64;
        let mut addr = Address {
            constant: 0,
            terms: Vec::new(),
        };
        for axis in (0..shape.len()).rev() {
            let a = &indices[axis];
            let (mut lo, mut hi) = (a.constant, a.constant);
            for &(c, d) in &a.terms {
                let reach = c * (kernel.dims[d].size as i64 - 1);
                if c > 0 {
                    hi += reach;
                } else {
                    lo += reach;
                }
                addr.terms.push((c * stride, d));
            }
            for index in [lo, hi] {
                if index < 0 || index >= shape[axis] as i64 {
                    return Err(ReferenceError::OutOfBounds {
                        tensor: tensor.name.clone(),
                        axis,
                        index,
                        extent: shape[axis],
                        location: location.into(),
                    });
                }
            }
            addr.constant += a.constant * stride;
            stride *= shape[axis] as i64;
        }
        Ok(addr)
    }

    fn eval_i(&self, n: &Node, env: &mut [i64]) -> i32 {
        match n {
            Node::ConstI(v) => *v,
            Node::Load(t, a) => self.bufs[*t].int(a.offset(env)),
            Node::Unary(op, a) => {
                let x = self.eval_i(a, env);
                match op {
                    UnaryOp::Abs => x.wrapping_abs(),
                    _ => x.wrapping_neg(),
                }
            }
            Node::Binary(op, l, r) => {
                let (a, b) = (self.eval_i(l, env), self.eval_i(r, env));
                match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Sub => a.wrapping_sub(b),
                    BinaryOp::Mul => a.wrapping_mul(b),
                    BinaryOp::Max => a.max(b),
                    BinaryOp::Min => a.min(b),
                    BinaryOp::Div => 0, // rejected when compiled
                }
            }
            Node::Reduce(op, dims, body) => {
                let mut acc = match op {
                    ReduceOp::Sum => 0,
                    ReduceOp::Max => i32::MIN,
                    ReduceOp::Min => i32::MAX,
                };
                let saved = save(dims, env);
                loop {
                    let v = self.eval_i(body, env);
                    acc = match op {
                        ReduceOp::Sum => acc.wrapping_add(v),
                        ReduceOp::Max => acc.max(v),
                        ReduceOp::Min => acc.min(v),
                    };
                    if !advance(dims, env) {
                        break;
                    }
                }
                restore(dims, env, &saved);
                acc
            }
            Node::Dot { a, b, dim, size } => {
                let (Buf::Int(va), Buf::Int(vb)) = (&self.bufs[a.0], &self.bufs[b.0]) else {
                    return 0;
                };
                let saved = env[*dim];
                env[*dim] = 0;
                let (oa, ob) = (a.1.offset(env) as i64, b.1.offset(env) as i64);
                env[*dim] = saved;
                let (sa, sb) = (a.1.stride_of(*dim), b.1.stride_of(*dim));
                let mut acc = 0i32;
                for i in 0..*size {
                    acc = acc.wrapping_add(va[(oa + i * sa) as usize].wrapping_mul(vb[(ob + i * sb) as usize]));
                }
                acc
            }
            Node::IntToInt(kind, to, a) => {
                let x = self.eval_i(a, env);
                match kind {
                    Convert::Srs(s) => srs(x, *s, *to),
                    Convert::Cast => saturate(x, *to),
                }
            }
            Node::FloatToInt(to, a) => match cast_float(self.eval_f(a, env), *to) {
                Scalar::I(v) => v,
                Scalar::F(v) => v as i32,
            },
            Node::Select(c, a, b) => {
                if c.holds(env) {
                    self.eval_i(a, env)
                } else {
                    self.eval_i(b, env)
                }
            }
            _ => 0, // float nodes never reach here: compile() checks the types
        }
    }

    fn eval_f(&self, n: &Node, env: &mut [i64]) -> f32 {
        match n {
            Node::ConstF(v) => *v,
            Node::Load(t, a) => self.bufs[*t].float(a.offset(env)),
            Node::Unary(op, a) => {
                let x = self.eval_f(a, env);
                match op {
                    UnaryOp::Neg => -x,
                    UnaryOp::Exp => math::exp(x),
                    UnaryOp::Tanh => math::tanh(x),
                    UnaryOp::Rsqrt => math::rsqrt(x),
                    UnaryOp::Sqrt => math::sqrt(x),
                    UnaryOp::Log10 => math::log10(x),
                    UnaryOp::Ln => math::ln(x),
                    UnaryOp::Abs => x.abs(),
                    UnaryOp::Recip => math::recip(x),
                }
            }
            Node::Binary(op, l, r) => {
                let (a, b) = (self.eval_f(l, env), self.eval_f(r, env));
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div => a / math::flush(b),
                    BinaryOp::Max => fmax(a, b),
                    BinaryOp::Min => fmin(a, b),
                }
            }
            Node::Reduce(op, dims, body) => {
                let mut acc = match op {
                    ReduceOp::Sum => 0.0,
                    ReduceOp::Max => f32::NEG_INFINITY,
                    ReduceOp::Min => f32::INFINITY,
                };
                let saved = save(dims, env);
                loop {
                    let v = self.eval_f(body, env);
                    acc = match op {
                        ReduceOp::Sum => acc + v,
                        ReduceOp::Max => fmax(acc, v),
                        ReduceOp::Min => fmin(acc, v),
                    };
                    if !advance(dims, env) {
                        break;
                    }
                }
                restore(dims, env, &saved);
                acc
            }
            Node::Dot { a, b, dim, size } => {
                let (Buf::Float(va), Buf::Float(vb)) = (&self.bufs[a.0], &self.bufs[b.0]) else {
                    return 0.0;
                };
                let saved = env[*dim];
                env[*dim] = 0;
                let (oa, ob) = (a.1.offset(env) as i64, b.1.offset(env) as i64);
                env[*dim] = saved;
                let (sa, sb) = (a.1.stride_of(*dim), b.1.stride_of(*dim));
                let mut acc = 0f32;
                for i in 0..*size {
                    acc += va[(oa + i * sa) as usize] * vb[(ob + i * sb) as usize];
                }
                acc
            }
            Node::IntToFloat(to, a) => {
                let v = self.eval_i(a, env) as f32;
                if *to == DType::Bf16 {
                    round_bf16(v)
                } else {
                    v
                }
            }
            Node::FloatToFloat(to, a) => match cast_float(self.eval_f(a, env), *to) {
                Scalar::F(v) => v,
                Scalar::I(v) => v as f32,
            },
            Node::Select(c, a, b) => {
                if c.holds(env) {
                    self.eval_f(a, env)
                } else {
                    self.eval_f(b, env)
                }
            }
            _ => 0.0, // int nodes never reach here: compile() checks the types
        }
    }
}

/// Sets the reduced dims to 0 and returns their previous values.
fn save(dims: &[(DimId, i64)], env: &mut [i64]) -> Vec<i64> {
    dims.iter().map(|&(d, _)| std::mem::replace(&mut env[d], 0)).collect()
}

fn restore(dims: &[(DimId, i64)], env: &mut [i64], saved: &[i64]) {
    for (&(d, _), &v) in dims.iter().zip(saved) {
        env[d] = v;
    }
}

/// Steps the reduced dims in index order (last dim fastest, so the first is outermost); false
/// after the last combination.
fn advance(dims: &[(DimId, i64)], env: &mut [i64]) -> bool {
    for &(d, size) in dims.iter().rev() {
        env[d] += 1;
        if env[d] < size {
            return true;
        }
        env[d] = 0;
    }
    false
}

struct Cond {
    lhs: Affine,
    cmp: CmpOp,
    rhs: Affine,
}

impl Cond {
    fn holds(&self, env: &[i64]) -> bool {
        let value = |a: &Affine| a.constant + a.terms.iter().map(|&(c, d)| c * env[d]).sum::<i64>();
        let (l, r) = (value(&self.lhs), value(&self.rhs));
        match self.cmp {
            CmpOp::Lt => l < r,
            CmpOp::Le => l <= r,
            CmpOp::Gt => l > r,
            CmpOp::Ge => l >= r,
            CmpOp::Eq => l == r,
            CmpOp::Ne => l != r,
        }
    }
}

/// An expression prepared for evaluation: accesses linearized, conversions split by direction.
enum Node {
    ConstI(i32),
    ConstF(f32),
    Load(TensorId, Address),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Reduce(ReduceOp, Vec<(DimId, i64)>, Box<Node>),
    /// `sum[d](a[..] * b[..])`: the dot products of matmuls and DFTs, evaluated in one tight loop
    /// (same order, same arithmetic as the general path).
    Dot {
        a: (TensorId, Address),
        b: (TensorId, Address),
        dim: DimId,
        size: i64,
    },
    IntToInt(Convert, DType, Box<Node>),
    IntToFloat(DType, Box<Node>),
    FloatToInt(DType, Box<Node>),
    FloatToFloat(DType, Box<Node>),
    Select(Cond, Box<Node>, Box<Node>),
}

fn compile(kernel: &Kernel, state: &State, e: &Expr, location: &str) -> Result<Node, ReferenceError> {
    let unsupported = |what: String| ReferenceError::Unsupported {
        what,
        location: location.into(),
    };
    let expect = |sub: &Expr, ty: ScalarType| {
        if sub.ty() == ty {
            Ok(())
        } else {
            Err(unsupported(format!("an operand of type {:?} where {ty:?} is required", sub.ty())))
        }
    };
    let sub = |x: &Expr| compile(kernel, state, x, location).map(Box::new);
    Ok(match e {
        Expr::Const { value, ty: ScalarType::I32 } => Node::ConstI(*value as i32),
        Expr::Const { value, ty: ScalarType::F32 } => Node::ConstF(*value as f32),
        Expr::Load { tensor, indices, ty } => {
            if *ty != crate::ir::scalar_type_of(kernel.tensors[*tensor].dtype) {
                return Err(unsupported(format!("a load of {} typed {ty:?}", kernel.tensors[*tensor].name)));
            }
            Node::Load(*tensor, state.address(kernel, *tensor, indices, location)?)
        }
        Expr::Unary { op, arg, ty } => {
            expect(arg, *ty)?;
            if *ty == ScalarType::I32 && !matches!(op, UnaryOp::Neg | UnaryOp::Abs) {
                return Err(unsupported(format!("{op:?} of an i32 value")));
            }
            Node::Unary(*op, sub(arg)?)
        }
        Expr::Binary { op, lhs, rhs, ty } => {
            expect(lhs, *ty)?;
            expect(rhs, *ty)?;
            if *op == BinaryOp::Div && *ty == ScalarType::I32 {
                return Err(unsupported("integer division".into()));
            }
            Node::Binary(*op, sub(lhs)?, sub(rhs)?)
        }
        Expr::Reduce { op, dims, body, ty } => {
            expect(body, *ty)?;
            if let (
                ReduceOp::Sum,
                [d],
                Expr::Binary {
                    op: BinaryOp::Mul, lhs, rhs, ..
                },
            ) = (op, dims.as_slice(), body.as_ref())
            {
                if let (
                    Expr::Load {
                        tensor: ta,
                        indices: ia,
                        ty: tya,
                    },
                    Expr::Load {
                        tensor: tb,
                        indices: ib,
                        ty: tyb,
                    },
                ) = (lhs.as_ref(), rhs.as_ref())
                {
                    if tya == ty && tyb == ty {
                        let a = (*ta, state.address(kernel, *ta, ia, location)?);
                        let b = (*tb, state.address(kernel, *tb, ib, location)?);
                        return Ok(Node::Dot {
                            a,
                            b,
                            dim: *d,
                            size: kernel.dims[*d].size as i64,
                        });
                    }
                }
            }
            Node::Reduce(*op, dims.iter().map(|&d| (d, kernel.dims[d].size as i64)).collect(), sub(body)?)
        }
        Expr::Convert { to, kind, arg, ty } => {
            if *ty != crate::ir::scalar_type_of(*to) {
                return Err(unsupported(format!("a conversion to {to} typed {ty:?}")));
            }
            match (arg.ty(), to.is_float(), kind) {
                (ScalarType::I32, false, _) => Node::IntToInt(kind.clone(), *to, sub(arg)?),
                (ScalarType::I32, true, Convert::Cast) => Node::IntToFloat(*to, sub(arg)?),
                (ScalarType::F32, false, Convert::Cast) => Node::FloatToInt(*to, sub(arg)?),
                (ScalarType::F32, true, Convert::Cast) => Node::FloatToFloat(*to, sub(arg)?),
                (_, _, Convert::Srs(_)) => return Err(unsupported(format!("srs of a {:?} value to {to}", arg.ty()))),
            }
        }
        Expr::Select {
            lhs,
            cmp,
            rhs,
            then,
            otherwise,
            ty,
        } => {
            expect(then, *ty)?;
            expect(otherwise, *ty)?;
            Node::Select(
                Cond {
                    lhs: lhs.clone(),
                    cmp: *cmp,
                    rhs: rhs.clone(),
                },
                sub(then)?,
                sub(otherwise)?,
            )
        }
    })
}

/// The math functions with the semantics the core code implements (`lower::MathLowering`): IEEE
/// results from libm, except that subnormal arguments count as zero and subnormal results are
/// flushed to zero, with the same special values (NaN in, NaN out; exp saturating to +inf and 0;
/// rsqrt(0) = +inf, rsqrt(+inf) = 0; ln(0) = -inf; negative arguments of rsqrt/sqrt/ln NaN).
pub mod math {
    use crate::lower::{EXP_OVERFLOW, EXP_UNDERFLOW};

    /// Subnormal to (signed) zero.
    pub fn flush(x: f32) -> f32 {
        if x.is_subnormal() {
            0.0f32.copysign(x)
        } else {
            x
        }
    }

    pub fn exp(x: f32) -> f32 {
        if x > EXP_OVERFLOW {
            f32::INFINITY
        } else if x < EXP_UNDERFLOW {
            0.0
        } else {
            flush(flush(x).exp())
        }
    }

    pub fn tanh(x: f32) -> f32 {
        flush(x).tanh()
    }

    pub fn recip(x: f32) -> f32 {
        flush(1.0 / flush(x))
    }

    pub fn rsqrt(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::INFINITY
        } else {
            1.0 / x.sqrt()
        }
    }

    pub fn sqrt(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            0.0
        } else {
            x.sqrt()
        }
    }

    pub fn ln(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::NEG_INFINITY
        } else {
            x.ln()
        }
    }

    pub fn log10(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::NEG_INFINITY
        } else {
            x.log10()
        }
    }
}
