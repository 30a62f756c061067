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
//!
//! [`run_reference_with_bounds`] runs the same evaluation with every value carrying an absolute
//! error bound: how far the value a backend computes for it may lie from the reference's (the
//! rules are in [`bound`]). `run_reference` is that evaluation with the bounds left out: both are
//! one interpreter, generic over what it computes with (plain `f32`/`i32` values, or
//! value-bound pairs).

use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use crate::ir::{Affine, Convert, DimId, Expr, Kernel, ScalarType, TensorId};
use aiec_runtime::DType;
use half::bf16;
use ndarray::{ArrayD, Dimension};

/// Why the reference interpreter could not run a kernel on the given inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    /// Not one array per `in` tensor.
    #[error("kernel {kernel} has {expected} input tensors, but {got} input arrays were given")]
    InputCount {
        /// The kernel's name.
        kernel: String,
        /// Its `in` tensors.
        expected: usize,
        /// Arrays given.
        got: usize,
    },
    /// An input array's shape differs from its tensor's.
    #[error("input {tensor}: shape {got:?} given, the kernel declares {expected:?}")]
    InputShape {
        /// The input tensor.
        tensor: String,
        /// The declared shape.
        expected: Vec<usize>,
        /// The array's shape.
        got: Vec<usize>,
    },
    /// An element of an integer input that is not a whole number in its dtype's range.
    #[error("input {tensor}: element {index:?} = {value} is not a {dtype} value")]
    InputValue {
        /// The input tensor.
        tensor: String,
        /// The element's index.
        index: Vec<usize>,
        /// Its value.
        value: f64,
        /// The tensor's dtype.
        dtype: DType,
    },
    /// An access outside a tensor's extent.
    #[error("{tensor}: axis {axis} reaches index {index}, outside its extent {extent} (statement at {location})")]
    OutOfBounds {
        /// The tensor accessed.
        tensor: String,
        /// The axis.
        axis: usize,
        /// The index reached.
        index: i64,
        /// The axis's extent.
        extent: u64,
        /// The statement's source location (`file:line:col`).
        location: String,
    },
    /// A construct the interpreter does not evaluate.
    #[error("not supported by the reference interpreter: {what} (statement at {location})")]
    Unsupported {
        /// The construct.
        what: String,
        /// The statement's source location (`file:line:col`).
        location: String,
    },
}

/// Runs `kernel` on `inputs` (one array per `in` tensor, in declaration order) and returns one
/// array per `out` tensor, in declaration order.
pub fn run_reference(kernel: &Kernel, inputs: &[ArrayD<f64>]) -> Result<Vec<ArrayD<f64>>, ReferenceError> {
    let state = evaluate::<Plain>(kernel, inputs)?;
    Ok(ids_with_role(kernel, Role::Out).into_iter().map(|t| state.output(kernel, t)).collect())
}

/// An output's values and their error bounds, of one shape.
pub type ValuesAndBounds = (ArrayD<f64>, ArrayD<f64>);

/// [`run_reference`], and with each output value an absolute error bound: per `out` tensor, in
/// declaration order, (values, bounds) of the same shape. A backend that follows the kernel's
/// semantics (f32 arithmetic in any summation order, the core's math expansions within their
/// stated accuracy) produces, for every element with a finite value `v` and bound `b`, a value in
/// `[v - b, v + b]` (or an infinity of the right sign when `|v| + b` reaches the largest finite
/// value); for a NaN or infinite `v`, a bound of 0 means the backend produces the same special
/// value, and an infinite bound (for any value) means nothing is known. The rules are in
/// [`bound`].
pub fn run_reference_with_bounds(kernel: &Kernel, inputs: &[ArrayD<f64>]) -> Result<Vec<ValuesAndBounds>, ReferenceError> {
    let state = evaluate::<WithBounds>(kernel, inputs)?;
    Ok(ids_with_role(kernel, Role::Out)
        .into_iter()
        .map(|t| (state.output(kernel, t), state.output_bounds(kernel, t)))
        .collect())
}

/// Runs every statement of `kernel` on `inputs`, computing with `D`.
fn evaluate<D: Domain>(kernel: &Kernel, inputs: &[ArrayD<f64>]) -> Result<State, ReferenceError> {
    let in_ids: Vec<TensorId> = ids_with_role(kernel, Role::In);
    if in_ids.len() != inputs.len() {
        return Err(ReferenceError::InputCount {
            kernel: kernel.name.clone(),
            expected: in_ids.len(),
            got: inputs.len(),
        });
    }
    let mut state = State::new(kernel, D::BOUNDS);
    for (&t, array) in in_ids.iter().zip(inputs) {
        state.load_input(kernel, t, array)?;
    }
    for (s, stmt) in kernel.stmts.iter().enumerate() {
        let location = stmt.span.location();
        let value = compile(kernel, &state, &stmt.value, &location)?;
        let target = &kernel.tensors[stmt.target];
        let partials = if D::BOUNDS { bf16_partials(kernel, s) } else { None };
        // Both sides hold a bf16 value already: storing it to bf16 rounds nothing.
        let bf16_already = !stmt.accumulate && bf16_valued(kernel, &value);
        let indices: Vec<Affine> = stmt.target_dims.iter().map(|&d| Affine::dim(d)).collect();
        let store = state.address(kernel, stmt.target, &indices, &location)?;
        let sizes: Vec<u64> = stmt.target_dims.iter().map(|&d| kernel.dims[d].size).collect();
        let mut env = vec![0i64; kernel.dims.len()];
        let total: u64 = sizes.iter().product();
        for flat in 0..total {
            // Row-major over the target dims.
            let mut rest = flat;
            for (k, &d) in stmt.target_dims.iter().enumerate().rev() {
                env[d.0] = (rest % sizes[k]) as i64;
                rest /= sizes[k];
            }
            let at = store.offset(&env);
            match state.bufs[stmt.target.0] {
                Buf::Int(_) => {
                    let mut v: D::I = state.eval_i::<D>(&value, &mut env);
                    if stmt.accumulate {
                        let old: D::I = state.load_i(stmt.target, at);
                        v = D::I::make(v.v().wrapping_add(old.v()), || bound::int_add(v.pair(), old.pair()));
                    }
                    let stored = match target.dtype {
                        DType::I8 => v.v() as i8 as i32,
                        DType::I16 => v.v() as i16 as i32,
                        _ => v.v(),
                    };
                    state.bufs[stmt.target.0].set_int(at, stored);
                    if D::BOUNDS {
                        state.set_bound(stmt.target, at, v.e());
                    }
                }
                Buf::Float(_) => {
                    let mut v: D::F = state.eval_f::<D>(&value, &mut env);
                    if stmt.accumulate {
                        let old: D::F = state.load_f(stmt.target, at);
                        let sum = v.v() + old.v();
                        v = D::F::make(sum, || bound::add(v.pair(), old.pair(), sum));
                    }
                    let stored = if target.dtype == DType::Bf16 { round_bf16(v.v()) } else { v.v() };
                    if D::BOUNDS {
                        let mut e = match target.dtype {
                            DType::Bf16 if bf16_already => v.e(),
                            DType::Bf16 => bound::round_to_bf16(v.pair(), stored),
                            _ => bound::store_f32(v.pair(), stored),
                        };
                        if let Some(p) = partials.as_ref().filter(|_| stored.is_finite()) {
                            let old = stmt.accumulate.then(|| state.load_f(stmt.target, at));
                            e += state.partial_rounding_error(&value, &mut env, p, old);
                        }
                        state.set_bound(stmt.target, at, e);
                    }
                    state.bufs[stmt.target.0].set_float(at, stored);
                }
            }
        }
    }
    Ok(state)
}

/// A bf16 target of the sum across the tiles of split dims (the reducing statement,
/// [`crate::schedule::reduction_stmt`]): the cores carry the partial sum from one tile to the next
/// in the target, rounded to bf16 each time it is stored; the reference rounds the whole sum once.
struct Partials {
    /// The split dims reduced across tiles.
    dims: Vec<DimId>,
    /// How many tiles (partial sums) they make.
    tiles: u64,
}

/// Statement `s`'s [`Partials`], if it has them.
fn bf16_partials(kernel: &Kernel, s: usize) -> Option<Partials> {
    let stmt = &kernel.stmts[s];
    let is_sum = matches!(stmt.value, Expr::Reduce { op: ReduceOp::Sum, .. });
    if kernel.tensors[stmt.target].dtype != DType::Bf16 || !is_sum || crate::schedule::reduction_stmt(kernel) != Some(s) {
        return None;
    }
    let dims = crate::schedule::reduction_dims(kernel);
    let tiles: u64 = dims.iter().map(|&d| kernel.dims[d].tiles()).product();
    (tiles > 1).then_some(Partials { dims, tiles })
}

/// Whether `n`'s value is a bf16 value on every backend: a load of a bf16 tensor, a conversion
/// to bf16, or a choice between such values.
fn bf16_valued(kernel: &Kernel, n: &Node) -> bool {
    match n {
        Node::Load(t, _) => kernel.tensors[*t].dtype == DType::Bf16,
        Node::IntToFloat(to, _) | Node::FloatToFloat(to, _) => *to == DType::Bf16,
        Node::Select(_, a, b) => bf16_valued(kernel, a) && bf16_valued(kernel, b),
        _ => false,
    }
}

/// What the interpreter computes with: [`Plain`] values, or values [`WithBounds`].
trait Domain {
    /// Whether the values carry bounds (when not, no bound rule runs).
    const BOUNDS: bool;
    type F: Val<f32>;
    type I: Val<i32>;
}

/// A value of the interpreter, with its error bound when it carries one.
trait Val<T: Copy>: Copy {
    fn v(self) -> T;
    /// The bound (0 for a plain value).
    fn e(self) -> f64;
    /// A value with the bound `bound` computes; plain values never call it.
    fn make(v: T, bound: impl FnOnce() -> f64) -> Self;
    fn pair(self) -> (T, f64) {
        (self.v(), self.e())
    }
}

/// Plain `f32`/`i32` values ([`run_reference`]).
struct Plain;

impl Domain for Plain {
    const BOUNDS: bool = false;
    type F = f32;
    type I = i32;
}

impl Val<f32> for f32 {
    fn v(self) -> f32 {
        self
    }
    fn e(self) -> f64 {
        0.0
    }
    fn make(v: f32, _: impl FnOnce() -> f64) -> f32 {
        v
    }
}

impl Val<i32> for i32 {
    fn v(self) -> i32 {
        self
    }
    fn e(self) -> f64 {
        0.0
    }
    fn make(v: i32, _: impl FnOnce() -> f64) -> i32 {
        v
    }
}

/// Values with error bounds ([`run_reference_with_bounds`]).
struct WithBounds;

impl Domain for WithBounds {
    const BOUNDS: bool = true;
    type F = Bounded<f32>;
    type I = Bounded<i32>;
}

/// A value and its absolute error bound (see [`bound`]).
#[derive(Clone, Copy, Debug)]
struct Bounded<T> {
    v: T,
    e: f64,
}

impl<T: Copy> Val<T> for Bounded<T> {
    fn v(self) -> T {
        self.v
    }
    fn e(self) -> f64 {
        self.e
    }
    fn make(v: T, bound: impl FnOnce() -> f64) -> Self {
        Bounded { v, e: bound() }
    }
}

fn ids_with_role(kernel: &Kernel, role: Role) -> Vec<TensorId> {
    kernel.tensor_ids().filter(|(_, t)| t.role == role).map(|(i, _)| i).collect()
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
    /// (element stride, quotient or remainder) terms: computed per element.
    divmods: Vec<(i64, crate::ir::DivModIndex)>,
}

impl Address {
    /// Element stride of one step of dim `d`.
    fn stride_of(&self, d: DimId) -> i64 {
        self.terms.iter().filter(|t| t.1 == d).map(|t| t.0).sum()
    }
    fn offset(&self, env: &[i64]) -> usize {
        let mut o = self.constant;
        for &(s, d) in &self.terms {
            o += s * env[d.0];
        }
        for (s, q) in &self.divmods {
            o += s * q.apply(q.inner.eval(&|d| env[d.0]));
        }
        o as usize
    }
}

struct State {
    bufs: Vec<Buf>,
    /// Per tensor, the error bound of each element, when bounds are tracked: for locals and
    /// outputs (inputs are exact).
    bounds: Vec<Option<Vec<f64>>>,
    /// Storage shape per tensor: host shape, or the full dim sizes for locals.
    shapes: Vec<Vec<u64>>,
}

impl State {
    fn new(kernel: &Kernel, track_bounds: bool) -> State {
        let mut bufs = Vec::new();
        let mut bounds = Vec::new();
        let mut shapes = Vec::new();
        for t in &kernel.tensors {
            let shape: Vec<u64> = if t.role == Role::Local {
                t.local_dims.iter().map(|&d| kernel.dims[d].size).collect()
            } else {
                t.shape.clone()
            };
            let n = shape.iter().product::<u64>() as usize;
            bufs.push(if t.dtype.is_float() { Buf::Float(vec![0.0; n]) } else { Buf::Int(vec![0; n]) });
            bounds.push((track_bounds && t.role != Role::In).then(|| vec![0.0; n]));
            shapes.push(shape);
        }
        State { bufs, bounds, shapes }
    }

    #[inline(always)]
    fn bound_at(&self, t: TensorId, at: usize) -> f64 {
        self.bounds[t.0].as_ref().map_or(0.0, |b| b[at])
    }

    fn set_bound(&mut self, t: TensorId, at: usize, e: f64) {
        if let Some(b) = &mut self.bounds[t.0] {
            b[at] = e;
        }
    }

    #[inline(always)]
    fn load_f<V: Val<f32>>(&self, t: TensorId, at: usize) -> V {
        V::make(self.bufs[t.0].float(at), || self.bound_at(t, at))
    }

    #[inline(always)]
    fn load_i<V: Val<i32>>(&self, t: TensorId, at: usize) -> V {
        V::make(self.bufs[t.0].int(at), || self.bound_at(t, at))
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
        match &mut self.bufs[t.0] {
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
        let data: Vec<f64> = match &self.bufs[t.0] {
            Buf::Int(v) => v.iter().map(|&x| x as f64).collect(),
            Buf::Float(v) => v.iter().map(|&x| x as f64).collect(),
        };
        ArrayD::from_shape_vec(shape, data).expect("buffer length is the product of the shape")
    }

    fn output_bounds(&self, kernel: &Kernel, t: TensorId) -> ArrayD<f64> {
        let shape: Vec<usize> = kernel.tensors[t].shape.iter().map(|&s| s as usize).collect();
        let n = shape.iter().product();
        let data = self.bounds[t.0].clone().unwrap_or_else(|| vec![0.0; n]);
        ArrayD::from_shape_vec(shape, data).expect("buffer length is the product of the shape")
    }

    /// Linearizes an access and checks it stays in bounds for every dim value.
    fn address(&self, kernel: &Kernel, t: TensorId, indices: &[Affine], location: &str) -> Result<Address, ReferenceError> {
        let tensor = &kernel.tensors[t];
        let shape = &self.shapes[t.0];
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
            divmods: Vec::new(),
        };
        for axis in (0..shape.len()).rev() {
            let a = &indices[axis];
            let (lo, hi) = a.range(&|d| kernel.dims[d].size);
            let (lo, hi) = (lo as i64, hi as i64);
            for &(c, d) in &a.terms {
                addr.terms.push((c * stride, d));
            }
            for (c, q) in &a.divmods {
                addr.divmods.push((c * stride, q.clone()));
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

    /// Calls `f` with every term of the sum `n` (a `sum` or a dot product), in the reference's
    /// order, with its bound.
    fn for_each_term(&self, n: &Node, env: &mut [i64], f: &mut dyn FnMut(Bounded<f32>)) {
        match n {
            Node::Reduce(ReduceOp::Sum, dims, body) => {
                let saved = save(dims, env);
                loop {
                    f(self.eval_f::<WithBounds>(body, env));
                    if !advance(dims, env) {
                        break;
                    }
                }
                restore(dims, env, &saved);
            }
            Node::Dot { a, b, dim, size } => {
                let saved = env[dim.0];
                for i in 0..*size {
                    env[dim.0] = i;
                    let (x, y): (Bounded<f32>, Bounded<f32>) = (self.load_f(a.0, a.1.offset(env)), self.load_f(b.0, b.1.offset(env)));
                    let p = x.v * y.v;
                    f(Bounded {
                        v: p,
                        e: bound::mul(x.pair(), y.pair(), p),
                    });
                }
                env[dim.0] = saved;
            }
            _ => f(self.eval_f::<WithBounds>(n, env)),
        }
    }

    /// The error that rounding the partial sums of `n` (plus `old`, for `+=`) to bf16 after each
    /// of `p.tiles` tiles adds ([`Partials`]). When the split dim is the outermost reduced dim,
    /// each tile's partial sum is a prefix of the reference's order: its rounding moves it by at
    /// most `UBF16 (|prefix| + its bound + the earlier roundings)`. Otherwise every partial sum is
    /// at most `sum (|t_i| + e_i)`.
    fn partial_rounding_error(&self, n: &Node, env: &mut [i64], p: &Partials, old: Option<Bounded<f32>>) -> f64 {
        let prefixes = match n {
            Node::Dot { dim, .. } => p.dims == [*dim],
            Node::Reduce(_, dims, _) => p.dims.len() == 1 && dims.first().map(|d| d.0) == Some(p.dims[0]),
            _ => false,
        };
        let (mut sum, mut sum_abs, mut sum_e) = old.map_or((0.0, 0.0, 0.0), |o| (o.v as f64, o.v.abs() as f64, o.e));
        let (mut count, mut rounded) = (0u64, 0.0f64);
        let mut terms = Vec::new();
        self.for_each_term(n, env, &mut |t| terms.push(t));
        let per_tile = (terms.len() as u64 / p.tiles).max(1);
        for t in &terms {
            sum += t.v as f64;
            sum_abs += t.v.abs() as f64;
            sum_e += t.e;
            count += 1;
            if prefixes && count % per_tile == 0 && count < terms.len() as u64 {
                let partial = sum.abs() + sum_e + count as f64 * bound::U32 * sum_abs + rounded;
                rounded += bound::partial_bf16_rounding(partial);
            }
        }
        if !prefixes {
            rounded = (p.tiles - 1) as f64 * bound::partial_bf16_rounding(sum_abs + sum_e);
        }
        rounded
    }

    /// A value `select`: the comparison in its own type, then the chosen branch; when the
    /// comparison may come out the other way within the operands' bounds, the result may be
    /// either branch.
    fn value_select<D: Domain, V: Val<T>, T: Copy + Into<f64>>(&self, n: &Node, env: &mut [i64], branch: &dyn Fn(&Self, &Node, &mut [i64]) -> V) -> V {
        let Node::ValueSelect {
            float,
            cmp,
            operands,
            then,
            otherwise,
        } = n
        else {
            unreachable!("value_select is called on ValueSelect nodes")
        };
        let (l, r) = if *float {
            let (l, r): (D::F, D::F) = (self.eval_f::<D>(&operands.0, env), self.eval_f::<D>(&operands.1, env));
            ((l.v() as f64, l.e()), (r.v() as f64, r.e()))
        } else {
            let (l, r): (D::I, D::I) = (self.eval_i::<D>(&operands.0, env), self.eval_i::<D>(&operands.1, env));
            ((l.v() as f64, l.e()), (r.v() as f64, r.e()))
        };
        let holds = if *float {
            compare_f(*cmp, l.0 as f32, r.0 as f32)
        } else {
            compare_i(*cmp, l.0 as i32, r.0 as i32)
        };
        let (chosen, other) = if holds { (then, otherwise) } else { (otherwise, then) };
        let c = branch(self, chosen, env);
        if !D::BOUNDS || comparison_certain(*cmp, l, r) {
            return c;
        }
        let o = branch(self, other, env);
        let (cv, ov): (f64, f64) = (c.v().into(), o.v().into());
        V::make(c.v(), || c.e().max(o.e()) + (cv - ov).abs())
    }

    /// The element a gather reads (its index clamped into the axis, as on the cores) and whether
    /// the index is exact (an inexact one may pick another element).
    fn gather_at<D: Domain>(&self, n: &Node, env: &mut [i64]) -> (usize, bool) {
        let Node::Gather {
            address,
            stride,
            extent,
            index,
            ..
        } = n
        else {
            unreachable!("gather_at is called on Gather nodes")
        };
        let i: D::I = self.eval_i::<D>(index, env);
        let clamped = (i.v() as i64).clamp(0, extent - 1);
        ((address.offset(env) as i64 + clamped * stride) as usize, i.e() == 0.0)
    }

    fn eval_i<D: Domain>(&self, n: &Node, env: &mut [i64]) -> D::I {
        match n {
            Node::ConstI(v) => D::I::make(*v, || 0.0),
            Node::Load(t, a) => self.load_i(*t, a.offset(env)),
            Node::Unary(op, a) => {
                let x: D::I = self.eval_i::<D>(a, env);
                let r = match op {
                    UnaryOp::Abs => x.v().wrapping_abs(),
                    _ => x.v().wrapping_neg(),
                };
                D::I::make(r, || x.e())
            }
            Node::Binary(op, l, r) => {
                let (a, b): (D::I, D::I) = (self.eval_i::<D>(l, env), self.eval_i::<D>(r, env));
                let (x, y) = (a.v(), b.v());
                let v = match op {
                    BinaryOp::Add => x.wrapping_add(y),
                    BinaryOp::Sub => x.wrapping_sub(y),
                    BinaryOp::Mul => x.wrapping_mul(y),
                    BinaryOp::Max => x.max(y),
                    BinaryOp::Min => x.min(y),
                    BinaryOp::Div => 0, // rejected when compiled
                };
                D::I::make(v, || match op {
                    BinaryOp::Add | BinaryOp::Sub => bound::int_add(a.pair(), b.pair()),
                    BinaryOp::Mul => bound::int_mul(a.pair(), b.pair()),
                    _ => a.e().max(b.e()),
                })
            }
            Node::Reduce(op, dims, body) => {
                let mut acc = match op {
                    ReduceOp::Sum => 0,
                    ReduceOp::Max => i32::MIN,
                    ReduceOp::Min => i32::MAX,
                };
                let mut e = 0.0f64;
                let saved = save(dims, env);
                loop {
                    let v: D::I = self.eval_i::<D>(body, env);
                    acc = match op {
                        ReduceOp::Sum => acc.wrapping_add(v.v()),
                        ReduceOp::Max => acc.max(v.v()),
                        ReduceOp::Min => acc.min(v.v()),
                    };
                    if D::BOUNDS {
                        e = if *op == ReduceOp::Sum { e + v.e() } else { e.max(v.e()) };
                    }
                    if !advance(dims, env) {
                        break;
                    }
                }
                restore(dims, env, &saved);
                D::I::make(acc, || e)
            }
            Node::Dot { a, b, dim, size } => {
                let (ta, tb) = (a.0, b.0);
                let (Buf::Int(va), Buf::Int(vb)) = (&self.bufs[ta.0], &self.bufs[tb.0]) else {
                    return D::I::make(0, || 0.0);
                };
                let saved = env[dim.0];
                env[dim.0] = 0;
                let (oa, ob) = (a.1.offset(env) as i64, b.1.offset(env) as i64);
                env[dim.0] = saved;
                let (sa, sb) = (a.1.stride_of(*dim), b.1.stride_of(*dim));
                let mut acc = 0i32;
                let mut e = 0.0f64;
                for i in 0..*size {
                    let (ia, ib) = ((oa + i * sa) as usize, (ob + i * sb) as usize);
                    acc = acc.wrapping_add(va[ia].wrapping_mul(vb[ib]));
                    if D::BOUNDS {
                        e += bound::int_mul((va[ia], self.bound_at(a.0, ia)), (vb[ib], self.bound_at(b.0, ib)));
                    }
                }
                D::I::make(acc, || e)
            }
            Node::IntToInt(kind, to, a) => {
                let x: D::I = self.eval_i::<D>(a, env);
                match kind {
                    Convert::Srs(s) => D::I::make(srs(x.v(), *s, *to), || bound::srs(x.e(), *s)),
                    Convert::Cast => D::I::make(saturate(x.v(), *to), || x.e()),
                }
            }
            Node::FloatToInt(to, a) => {
                let x: D::F = self.eval_f::<D>(a, env);
                let v = match cast_float(x.v(), *to) {
                    Scalar::I(v) => v,
                    Scalar::F(v) => v as i32,
                };
                D::I::make(v, || bound::float_to_int(x.pair()))
            }
            Node::Select(c, a, b) => {
                if c.holds(env) {
                    self.eval_i::<D>(a, env)
                } else {
                    self.eval_i::<D>(b, env)
                }
            }
            Node::Index(d) => D::I::make(env[d.0] as i32, || 0.0),
            Node::Gather { tensor, .. } => {
                let (at, exact) = self.gather_at::<D>(n, env);
                let v: D::I = self.load_i(*tensor, at);
                D::I::make(v.v(), || if exact { v.e() } else { f64::INFINITY })
            }
            Node::ValueSelect { .. } => self.value_select::<D, D::I, i32>(n, env, &|s, n, env| s.eval_i::<D>(n, env)),
            Node::ArgReduce { max, float, dim, size, body } => {
                let saved = env[dim.0];
                let mut values: Vec<(f64, f64)> = Vec::with_capacity(*size as usize);
                for i in 0..*size {
                    env[dim.0] = i;
                    values.push(if *float {
                        let v: D::F = self.eval_f::<D>(body, env);
                        (v.v() as f64, v.e())
                    } else {
                        let v: D::I = self.eval_i::<D>(body, env);
                        (v.v() as f64, v.e())
                    });
                }
                env[dim.0] = saved;
                // As on the cores: start from the type's extreme at index 0 and move only on a
                // strictly better value (NaN compares false), so the first of equal values wins.
                let mut best = 0usize;
                let mut best_v = match (*float, *max) {
                    (true, true) => f64::NEG_INFINITY,
                    (true, false) => f64::INFINITY,
                    (false, true) => i32::MIN as f64,
                    (false, false) => i32::MAX as f64,
                };
                for (i, &(v, _)) in values.iter().enumerate() {
                    if (*max && v > best_v) || (!*max && v < best_v) {
                        best = i;
                        best_v = v;
                    }
                }
                D::I::make(best as i32, || {
                    // Exact when no other candidate's interval reaches the winner's.
                    let (bv, be) = values[best];
                    let contested = values
                        .iter()
                        .enumerate()
                        .any(|(i, &(v, e))| i != best && (e > 0.0 || be > 0.0) && (v.is_nan() || bv.is_nan() || (v - bv).abs() <= e + be));
                    if contested {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })
            }
            _ => D::I::make(0, || 0.0), // float nodes never reach here: compile() checks the types
        }
    }

    fn eval_f<D: Domain>(&self, n: &Node, env: &mut [i64]) -> D::F {
        match n {
            Node::ConstF(v) => D::F::make(*v, || bound::constant(*v)),
            Node::Load(t, a) => self.load_f(*t, a.offset(env)),
            Node::Unary(op, a) => {
                let x: D::F = self.eval_f::<D>(a, env);
                let r = match op {
                    UnaryOp::Neg => -x.v(),
                    UnaryOp::Exp => math::exp(x.v()),
                    UnaryOp::Tanh => math::tanh(x.v()),
                    UnaryOp::Rsqrt => math::rsqrt(x.v()),
                    UnaryOp::Sqrt => math::sqrt(x.v()),
                    UnaryOp::Log10 => math::log10(x.v()),
                    UnaryOp::Ln => math::ln(x.v()),
                    UnaryOp::Abs => x.v().abs(),
                    UnaryOp::Recip => math::recip(x.v()),
                    UnaryOp::Floor => x.v().floor(),
                    UnaryOp::Round => x.v().round_ties_even(),
                    UnaryOp::Sigmoid => f32::NAN, // rewritten by type checking; compile() rejects it
                };
                D::F::make(r, || bound::unary(*op, x.pair(), r))
            }
            Node::Binary(op, l, r) => {
                let (a, b): (D::F, D::F) = (self.eval_f::<D>(l, env), self.eval_f::<D>(r, env));
                let (x, y) = (a.v(), b.v());
                let v = match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div => x / math::flush(y),
                    BinaryOp::Max => fmax(x, y),
                    BinaryOp::Min => fmin(x, y),
                };
                D::F::make(v, || bound::binary(*op, a.pair(), b.pair(), v))
            }
            Node::Reduce(op, dims, body) => {
                let mut acc = match op {
                    ReduceOp::Sum => 0.0,
                    ReduceOp::Max => f32::NEG_INFINITY,
                    ReduceOp::Min => f32::INFINITY,
                };
                let mut reduction = bound::Reduction::new(*op);
                let saved = save(dims, env);
                loop {
                    let v: D::F = self.eval_f::<D>(body, env);
                    acc = match op {
                        ReduceOp::Sum => acc + v.v(),
                        ReduceOp::Max => fmax(acc, v.v()),
                        ReduceOp::Min => fmin(acc, v.v()),
                    };
                    if D::BOUNDS {
                        reduction.push(v.pair());
                    }
                    if !advance(dims, env) {
                        break;
                    }
                }
                restore(dims, env, &saved);
                D::F::make(acc, || reduction.finish(acc))
            }
            Node::Dot { a, b, dim, size } => {
                let (ta, tb) = (a.0, b.0);
                let (Buf::Float(va), Buf::Float(vb)) = (&self.bufs[ta.0], &self.bufs[tb.0]) else {
                    return D::F::make(0.0, || 0.0);
                };
                let saved = env[dim.0];
                env[dim.0] = 0;
                let (oa, ob) = (a.1.offset(env) as i64, b.1.offset(env) as i64);
                env[dim.0] = saved;
                let (sa, sb) = (a.1.stride_of(*dim), b.1.stride_of(*dim));
                let mut acc = 0f32;
                if D::BOUNDS && self.bounds[ta.0].is_none() && self.bounds[tb.0].is_none() {
                    // Exact operands (inputs): each product's bound is |p| u, so only sum |p| is
                    // needed; a special result takes the general path below.
                    let mut sum_abs = 0f64;
                    for i in 0..*size {
                        let p = va[(oa + i * sa) as usize] * vb[(ob + i * sb) as usize];
                        acc += p;
                        sum_abs += p.abs() as f64;
                    }
                    if acc.is_finite() {
                        return D::F::make(acc, || bound::exact_products_sum(*size as u64, sum_abs));
                    }
                    acc = 0.0;
                }
                let mut reduction = bound::Reduction::new(ReduceOp::Sum);
                for i in 0..*size {
                    let (ia, ib) = ((oa + i * sa) as usize, (ob + i * sb) as usize);
                    let p = va[ia] * vb[ib];
                    acc += p;
                    if D::BOUNDS {
                        let (x, y) = ((va[ia], self.bound_at(a.0, ia)), (vb[ib], self.bound_at(b.0, ib)));
                        reduction.push((p, bound::mul(x, y, p)));
                    }
                }
                D::F::make(acc, || reduction.finish(acc))
            }
            Node::IntToFloat(to, a) => {
                let x: D::I = self.eval_i::<D>(a, env);
                let v = x.v() as f32;
                let v = if *to == DType::Bf16 { round_bf16(v) } else { v };
                D::F::make(v, || bound::int_to_float(*to, x.pair(), v))
            }
            Node::FloatToFloat(to, a) => {
                let x: D::F = self.eval_f::<D>(a, env);
                let v = match cast_float(x.v(), *to) {
                    Scalar::F(v) => v,
                    Scalar::I(v) => v as f32,
                };
                D::F::make(v, || if *to == DType::Bf16 { bound::round_to_bf16(x.pair(), v) } else { x.e() })
            }
            Node::Select(c, a, b) => {
                if c.holds(env) {
                    self.eval_f::<D>(a, env)
                } else {
                    self.eval_f::<D>(b, env)
                }
            }
            Node::ValueSelect { .. } => self.value_select::<D, D::F, f32>(n, env, &|s, n, env| s.eval_f::<D>(n, env)),
            Node::Gather { tensor, .. } => {
                let (at, exact) = self.gather_at::<D>(n, env);
                let v: D::F = self.load_f(*tensor, at);
                D::F::make(v.v(), || if exact { v.e() } else { f64::INFINITY })
            }
            _ => D::F::make(0.0, || 0.0), // int nodes never reach here: compile() checks the types
        }
    }
}

/// Sets the reduced dims to 0 and returns their previous values.
fn save(dims: &[(DimId, i64)], env: &mut [i64]) -> Vec<i64> {
    dims.iter().map(|&(d, _)| std::mem::replace(&mut env[d.0], 0)).collect()
}

fn restore(dims: &[(DimId, i64)], env: &mut [i64], saved: &[i64]) {
    for (&(d, _), &v) in dims.iter().zip(saved) {
        env[d.0] = v;
    }
}

/// Steps the reduced dims in index order (last dim fastest, so the first is outermost); false
/// after the last combination.
fn advance(dims: &[(DimId, i64)], env: &mut [i64]) -> bool {
    for &(d, size) in dims.iter().rev() {
        env[d.0] += 1;
        if env[d.0] < size {
            return true;
        }
        env[d.0] = 0;
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
        let value = |a: &Affine| a.eval(&|d| env[d.0]);
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
    /// `select(lhs cmp rhs, then, otherwise)` on values; `float` says the comparison's type.
    ValueSelect {
        float: bool,
        cmp: CmpOp,
        operands: Box<(Node, Node)>,
        then: Box<Node>,
        otherwise: Box<Node>,
    },
    Index(DimId),
    /// A load whose gathered axis (`stride` elements per step, `extent` long) is indexed by the
    /// clamped value of `index`.
    Gather {
        tensor: TensorId,
        address: Address,
        stride: i64,
        extent: i64,
        index: Box<Node>,
    },
    ArgReduce {
        max: bool,
        float: bool,
        dim: DimId,
        size: i64,
        body: Box<Node>,
    },
}

/// Whether `l cmp r` holds for floats: ordered comparisons, `!=` true on NaN.
fn compare_f(cmp: CmpOp, l: f32, r: f32) -> bool {
    match cmp {
        CmpOp::Lt => l < r,
        CmpOp::Le => l <= r,
        CmpOp::Gt => l > r,
        CmpOp::Ge => l >= r,
        CmpOp::Eq => l == r,
        CmpOp::Ne => l != r,
    }
}

fn compare_i(cmp: CmpOp, l: i32, r: i32) -> bool {
    compare_f64(cmp, l as f64, r as f64)
}

fn compare_f64(cmp: CmpOp, l: f64, r: f64) -> bool {
    match cmp {
        CmpOp::Lt => l < r,
        CmpOp::Le => l <= r,
        CmpOp::Gt => l > r,
        CmpOp::Ge => l >= r,
        CmpOp::Eq => l == r,
        CmpOp::Ne => l != r,
    }
}

/// Whether the comparison comes out the same for every pair of values within the bounds.
fn comparison_certain(cmp: CmpOp, (l, el): (f64, f64), (r, er): (f64, f64)) -> bool {
    if el == 0.0 && er == 0.0 {
        return true;
    }
    if !(l.is_finite() && r.is_finite() && el.is_finite() && er.is_finite()) {
        return false;
    }
    // Separated intervals decide every ordering; touching ones decide nothing.
    let (l_lo, l_hi, r_lo, r_hi) = (l - el, l + el, r - er, r + er);
    let separated = l_hi < r_lo || r_hi < l_lo;
    match cmp {
        CmpOp::Lt | CmpOp::Ge => l_hi < r_lo || l_lo >= r_hi,
        CmpOp::Le | CmpOp::Gt => l_hi <= r_lo || l_lo > r_hi,
        CmpOp::Eq | CmpOp::Ne => separated,
    }
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
            if *op == UnaryOp::Sigmoid {
                return Err(unsupported("sigmoid (type checking rewrites it)".into()));
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
                    if tya == ty && tyb == ty && ia.iter().chain(ib).all(Affine::is_affine) {
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
        Expr::ValueSelect {
            lhs,
            cmp,
            rhs,
            then,
            otherwise,
            ty,
        } => {
            expect(then, *ty)?;
            expect(otherwise, *ty)?;
            expect(rhs, lhs.ty())?;
            Node::ValueSelect {
                float: lhs.ty() == ScalarType::F32,
                cmp: *cmp,
                operands: Box::new((*sub(lhs)?, *sub(rhs)?)),
                then: sub(then)?,
                otherwise: sub(otherwise)?,
            }
        }
        Expr::Index { dim } => Node::Index(*dim),
        Expr::Gather {
            tensor,
            indices,
            axis,
            index,
            ty,
        } => {
            if *ty != crate::ir::scalar_type_of(kernel.tensors[*tensor].dtype) || index.ty() != ScalarType::I32 {
                return Err(unsupported(format!("a gather from {} typed {ty:?}", kernel.tensors[*tensor].name)));
            }
            let shape = &kernel.tensors[*tensor].shape;
            Node::Gather {
                tensor: *tensor,
                address: state.address(kernel, *tensor, indices, location)?,
                stride: shape[axis + 1..].iter().product::<u64>() as i64,
                extent: shape[*axis] as i64,
                index: sub(index)?,
            }
        }
        Expr::ArgReduce { max, dim, body } => Node::ArgReduce {
            max: *max,
            float: body.ty() == ScalarType::F32,
            dim: *dim,
            size: kernel.dims[*dim].size as i64,
            body: sub(body)?,
        },
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

/// The error-bound rules of [`run_reference_with_bounds`].
///
/// Every value carries an absolute bound `e`: the value a backend computes for it lies within `e`
/// of the reference's. The backend is modelled as the emulator/cores compute: f32 arithmetic,
/// float sums in any order (vector lanes, K-tiled partial sums), the core's math expansions
/// (`lower::MathLowering`) within their stated accuracy, a bf16 store rounding to nearest even.
/// With `u = 2^-24` (unit roundoff of f32):
///
/// * Loads of inputs: 0 (inputs are given exactly in their dtype). Loads of locals and outputs
///   written earlier: the bound stored with them. Constants: `|c| u`.
/// * `a + b`, `a - b`: `ea + eb + |r| u`. `a * b`: `|a| eb + |b| ea + ea eb + |r| u`.
/// * `sum` over `n` terms `t_i` (any order): `sum e_i + n u sum |t_i|`; the dot products of
///   matmuls are sums of products, each product with the `*` rule.
/// * `max`/`min` (binary and reductions): the largest operand bound; for binary ones whose
///   operands' intervals do not overlap, the bound of the operand chosen. `abs`, `-`: unchanged.
///   `select`: the chosen branch's bound.
/// * `exp(x)`: `exp(x) (exp(ex) - 1) + exp(x) exp(ex) 1e-6` (the expansion's relative accuracy at
///   the far end of the argument's interval).
/// * `recip(x)`: infinite if `ex >= |x|`, else `ex / (|x| (|x| - ex)) + 3e-7 / (|x| - ex)`.
///   `a / b` (the core computes `a * recip(b)`): the `*` rule on `a` and `recip(b)`.
/// * `rsqrt`, `sqrt`, `ln`, `log10`, `tanh`: `max |f'| ex` over the interval `[x - ex, x + ex]`
///   (infinite when it reaches the singularity at or below 0 of rsqrt/ln/log10, or negative
///   arguments of sqrt), plus the stated accuracy at the interval's far end: rsqrt and sqrt
///   relative 3e-7 (sqrt plus its product's rounding `u`), ln/log10 relative 3e-7 (log10 plus
///   `u`), tanh absolute 3e-7.
/// * The math functions also count the reference's own libm result (within one ulp, `2u`
///   relative; `u` for recip/division, which IEEE rounds correctly) and, since both sides flush
///   subnormal results to zero and may disagree on which, the smallest normal f32.
/// * Integer operations are exact (0); only integers converted from floats carry a bound, and
///   then `+ - * max min`, `sum` propagate it as for floats without rounding terms.
///   `cast<int>` of a float with `e > 0`: `e + 1` (in integer units: truncation toward zero may
///   land on the neighbouring integer); `srs(x, s)` of an integer with `e > 0`: `e / 2^s + 1`;
///   saturation keeps the bound.
/// * Roundings: to bf16 (a `cast<bf16>` or a store to a bf16 tensor), `e + ulp_bf16(|v| + e)`:
///   both sides round, and two values `e` apart may land on neighbouring bf16 values; a value
///   already bf16 on both sides (a load of a bf16 tensor, a `cast<bf16>`) is stored unchanged.
///   Stores to f32: `e + |v| u`. Int to float conversions: `e`, plus the f32/bf16 ulp when the
///   integer may not be exact in the type. A rounding of an exact value (`e = 0`) is exact.
/// * A bf16 target of a sum across the `T` tiles of a split dim is rounded after every tile on
///   the cores (the reference rounds once): each of the `T - 1` intermediate roundings adds
///   `UBF16 |partial|`, with the partial sum bounded by the reference's prefix sum up to that
///   tile plus its bound (when the split dim is the outermost reduced dim), else by
///   `sum (|t_i| + e_i)`.
/// * NaN and infinities: the emulator and the reference agree on special values by construction
///   (see [`math`]), so a special value computed from exact operands, or decided by special
///   operands that are exact (`-inf - x`, `exp(-inf)`, `max(-inf, x)`), has bound 0 and is
///   compared exactly; one that may come from rounding (an overflow of inexact operands, a
///   division by a divisor whose interval holds 0) is unbounded (infinite bound).
///
/// These are first-order bounds: each rounding is counted once, at the reference's value.
pub mod bound {
    use crate::dsl::ast::{BinaryOp, ReduceOp, UnaryOp};
    use aiec_runtime::DType;

    /// A value and its bound.
    pub(crate) type Val = (f32, f64);

    /// Unit roundoff of f32 (2^-24).
    pub(crate) const U32: f64 = 1.0 / 16_777_216.0;
    /// Unit roundoff of bf16 (2^-8).
    pub(crate) const UBF16: f64 = 1.0 / 256.0;
    /// The stated accuracy of the core's expansions (`lower::MathLowering`).
    pub(crate) const EXP_REL: f64 = 1e-6;
    pub(crate) const RECIP_REL: f64 = 3e-7;
    pub(crate) const RSQRT_REL: f64 = 3e-7;
    pub(crate) const TANH_ABS: f64 = 3e-7;
    pub(crate) const LOG_REL: f64 = 3e-7;
    /// The reference's libm results: within one ulp.
    const LIBM: f64 = 2.0 * U32;
    /// Both sides flush subnormal results of the math functions to zero.
    const FLUSH: f64 = f32::MIN_POSITIVE as f64;
    const INF: f64 = f64::INFINITY;

    /// The bound of a NaN or infinite result: 0 when the backend is sure to produce the same
    /// special value, else nothing is known.
    fn special(certain: bool) -> f64 {
        if certain {
            0.0
        } else {
            INF
        }
    }

    /// A finite result's bound; NaN (`0 * inf` in a rule) counts as unbounded.
    fn finite(e: f64) -> f64 {
        if e.is_nan() {
            INF
        } else {
            e
        }
    }

    /// Every value within the bound of `x` is finite in f32.
    fn surely_finite((x, e): Val) -> bool {
        x.is_finite() && (x.abs() as f64 + e) < f32::MAX as f64
    }

    fn exact(ops: &[Val]) -> bool {
        ops.iter().all(|o| o.1 == 0.0)
    }

    /// Some operand is special, the special ones are exact and the finite ones surely finite:
    /// the special operands decide a special result (`-inf - x`, `max(inf, x)`).
    fn decided_by_specials(ops: &[Val]) -> bool {
        ops.iter().any(|o| !o.0.is_finite()) && ops.iter().all(|&(x, e)| if x.is_finite() { surely_finite((x, e)) } else { e == 0.0 })
    }

    /// Spacing of bf16 values at magnitude `w` (the ulp of the binade holding it).
    pub(crate) fn ulp_bf16(w: f64) -> f64 {
        ulp(w, 7)
    }

    /// Spacing of f32 values at magnitude `w`.
    pub(crate) fn ulp_f32(w: f64) -> f64 {
        ulp(w, 23)
    }

    /// Spacing at magnitude `w` of a binary format with `mantissa` stored bits and f32's
    /// exponent range (bf16 and f32), subnormals included.
    fn ulp(w: f64, mantissa: i32) -> f64 {
        if !w.is_finite() {
            return INF;
        }
        let exponent = if w < f32::MIN_POSITIVE as f64 {
            -126
        } else {
            ((w.to_bits() >> 52) & 0x7ff) as i32 - 1023
        };
        2f64.powi(exponent - mantissa)
    }

    pub(crate) fn constant(c: f32) -> f64 {
        if c.is_finite() {
            c.abs() as f64 * U32
        } else {
            0.0
        }
    }

    /// `a + b` and `a - b` with result `r`.
    #[inline]
    pub(crate) fn add(a: Val, b: Val, r: f32) -> f64 {
        if !r.is_finite() {
            return special(exact(&[a, b]) || decided_by_specials(&[a, b]));
        }
        finite(a.1 + b.1 + r.abs() as f64 * U32)
    }

    /// `a * b` with result `r`.
    #[inline]
    pub(crate) fn mul(a: Val, b: Val, r: f32) -> f64 {
        if !r.is_finite() {
            // inf * x is inf of a sure sign when x's interval excludes 0.
            let signed = [a, b].iter().all(|&(x, e)| !x.is_finite() || x.abs() as f64 > e);
            return special(exact(&[a, b]) || decided_by_specials(&[a, b]) && signed);
        }
        let (x, y) = (a.0.abs() as f64, b.0.abs() as f64);
        finite(x * b.1 + y * a.1 + a.1 * b.1 + r.abs() as f64 * U32)
    }

    /// `recip(x)` as a value in f64 (not flushed) and its bound: the core's expansion against
    /// the exact reciprocal of the reference's argument, plus the reference's correctly rounded
    /// result.
    fn recip_parts((x, e): Val) -> (f64, f64) {
        let q = 1.0 / x as f64;
        if !x.is_finite() {
            return (q, special(e == 0.0));
        }
        let ax = x.abs() as f64;
        if e == 0.0 {
            return (q, q.abs() * (RECIP_REL + U32) + FLUSH);
        }
        if e >= ax {
            return (q, INF);
        }
        (q, finite(e / (ax * (ax - e)) + RECIP_REL / (ax - e) + q.abs() * U32 + FLUSH))
    }

    /// `recip(x)` with result `r`.
    pub(crate) fn recip(x: Val, r: f32) -> f64 {
        if !x.0.is_finite() || !r.is_finite() {
            return special(x.1 == 0.0);
        }
        recip_parts(x).1
    }

    /// `a / b` with result `r`: the core computes `a * recip(b)`.
    pub(crate) fn div(a: Val, b: Val, r: f32) -> f64 {
        if !r.is_finite() {
            let b_zero = super::math::flush(b.0) == 0.0 && b.1 == 0.0;
            let certain = exact(&[a, b])
                // inf / x, x of a sure sign
                || (!a.0.is_finite() && a.1 == 0.0 && surely_finite(b) && b.0.abs() as f64 > b.1)
                // x / 0, x of a sure sign
                || (b_zero && surely_finite(a) && a.0.abs() as f64 > a.1);
            return special(certain);
        }
        let (q, eq) = recip_parts(b);
        let x = a.0.abs() as f64;
        finite(x * eq + q.abs() * a.1 + a.1 * eq + r.abs() as f64 * U32)
    }

    /// `max`/`min` with result `r`: the larger operand bound, or the bound of the operand that
    /// decides the result when the two intervals do not overlap (`max(x, 1e-10)` of a clearly
    /// negative `x` is the constant on every backend).
    pub(crate) fn max_min(a: Val, b: Val, r: f32) -> f64 {
        if !r.is_finite() {
            return special(exact(&[a, b]) || decided_by_specials(&[a, b]));
        }
        let (x, y) = (a.0 as f64, b.0 as f64);
        if x - a.1 > y + b.1 || y - b.1 > x + a.1 {
            // The intervals are apart: the result comes from the operand the reference chose.
            return if r == a.0 { a.1 } else { b.1 };
        }
        a.1.max(b.1)
    }

    #[inline]
    pub(crate) fn binary(op: BinaryOp, a: Val, b: Val, r: f32) -> f64 {
        match op {
            BinaryOp::Add | BinaryOp::Sub => add(a, b, r),
            BinaryOp::Mul => mul(a, b, r),
            BinaryOp::Div => div(a, b, r),
            BinaryOp::Max | BinaryOp::Min => max_min(a, b, r),
        }
    }

    pub(crate) fn exp(x: Val, r: f32) -> f64 {
        if !x.0.is_finite() || !r.is_finite() {
            return special(x.1 == 0.0);
        }
        let ex = (x.0 as f64).exp();
        finite(ex * x.1.exp_m1() + ex * x.1.exp() * EXP_REL + r.abs() as f64 * LIBM + FLUSH)
    }

    pub(crate) fn tanh(x: Val, r: f32) -> f64 {
        if !x.0.is_finite() {
            return special(x.1 == 0.0);
        }
        let (lo, hi) = (x.0 as f64 - x.1, x.0 as f64 + x.1);
        // tanh' = 1 / cosh^2, largest at 0.
        let slope = if lo <= 0.0 && hi >= 0.0 {
            1.0
        } else {
            lo.abs().min(hi.abs()).cosh().powi(-2)
        };
        let change = if x.1 == 0.0 { 0.0 } else { slope * x.1 };
        finite(change + TANH_ABS + r.abs() as f64 * LIBM + FLUSH)
    }

    pub(crate) fn rsqrt(x: Val, r: f32) -> f64 {
        if !x.0.is_finite() || !r.is_finite() {
            return special(x.1 == 0.0);
        }
        let lo = x.0 as f64 - x.1;
        if lo <= 0.0 {
            return INF;
        }
        // |d/dx x^-1/2| = x^-3/2 / 2, largest at the interval's low end.
        let change = if x.1 == 0.0 { 0.0 } else { 0.5 * lo.powf(-1.5) * x.1 };
        // The reference: 1 / sqrt(x), two roundings.
        finite(change + lo.powf(-0.5) * RSQRT_REL + r.abs() as f64 * 2.0 * U32 + FLUSH)
    }

    pub(crate) fn sqrt(x: Val, r: f32) -> f64 {
        if !x.0.is_finite() || !r.is_finite() {
            return special(x.1 == 0.0);
        }
        let (lo, hi) = (x.0 as f64 - x.1, x.0 as f64 + x.1);
        if x.1 > 0.0 && lo < 0.0 {
            return INF;
        }
        // |d/dx sqrt x| = 1 / (2 sqrt x), largest at the low end; at 0, |sqrt x - sqrt y| <= sqrt |x - y|.
        let change = if x.1 == 0.0 { 0.0 } else { (0.5 / lo.sqrt() * x.1).min(x.1.sqrt()) };
        // The core: x * rsqrt(x), one more rounding; the reference: one rounding.
        finite(change + hi.sqrt() * (RSQRT_REL + U32) + r.abs() as f64 * U32 + FLUSH)
    }

    /// `ln` (scale 1) and `log10` (scale 1/ln 10, `extra` the core's rounding of `ln * log10(e)`).
    fn log(x: Val, r: f32, scale: f64, extra: f64) -> f64 {
        if !x.0.is_finite() || !r.is_finite() {
            return special(x.1 == 0.0);
        }
        let (lo, hi) = (x.0 as f64 - x.1, x.0 as f64 + x.1);
        if lo <= 0.0 {
            return INF;
        }
        let change = if x.1 == 0.0 { 0.0 } else { scale / lo * x.1 };
        let size = lo.ln().abs().max(hi.ln().abs()) * scale;
        finite(change + size * (LOG_REL + extra) + r.abs() as f64 * LIBM + FLUSH)
    }

    pub(crate) fn ln(x: Val, r: f32) -> f64 {
        log(x, r, 1.0, 0.0)
    }

    pub(crate) fn log10(x: Val, r: f32) -> f64 {
        log(x, r, std::f64::consts::LOG10_E, U32)
    }

    pub(crate) fn unary(op: UnaryOp, x: Val, r: f32) -> f64 {
        match op {
            UnaryOp::Neg | UnaryOp::Abs => x.1,
            UnaryOp::Exp => exp(x, r),
            UnaryOp::Tanh => tanh(x, r),
            UnaryOp::Rsqrt => rsqrt(x, r),
            UnaryOp::Sqrt => sqrt(x, r),
            UnaryOp::Ln => ln(x, r),
            UnaryOp::Log10 => log10(x, r),
            UnaryOp::Recip => recip(x, r),
            UnaryOp::Floor | UnaryOp::Round => to_integer(x, r),
            // Rewritten into exp and recip by type checking.
            UnaryOp::Sigmoid => INF,
        }
    }

    /// `floor` and `round`: exact on an exact argument; otherwise the argument may cross an
    /// integer (or a rounding tie), so the result may be the neighbouring integer.
    pub(crate) fn to_integer(x: Val, r: f32) -> f64 {
        if !r.is_finite() {
            return special(x.1 == 0.0);
        }
        if x.1 == 0.0 {
            0.0
        } else {
            finite(x.1 + 1.0)
        }
    }

    /// A float sum, max or min reduction, term by term.
    #[derive(Debug, Clone)]
    pub(crate) struct Reduction {
        op: ReduceOp,
        n: u64,
        sum_e: f64,
        sum_abs: f64,
        max_e: f64,
        any_special: bool,
        specials_exact: bool,
        finite_sure: bool,
    }

    impl Reduction {
        pub(crate) fn new(op: ReduceOp) -> Reduction {
            Reduction {
                op,
                n: 0,
                sum_e: 0.0,
                sum_abs: 0.0,
                max_e: 0.0,
                any_special: false,
                specials_exact: true,
                finite_sure: true,
            }
        }

        #[inline]
        pub(crate) fn push(&mut self, (v, e): Val) {
            self.n += 1;
            self.max_e = self.max_e.max(e);
            if v.is_finite() {
                self.sum_e += e;
                self.sum_abs += v.abs() as f64;
                self.finite_sure &= surely_finite((v, e));
            } else {
                self.any_special = true;
                self.specials_exact &= e == 0.0;
            }
        }

        /// The bound of the reduction's result `r`.
        pub(crate) fn finish(&self, r: f32) -> f64 {
            if !r.is_finite() {
                // Decided by exact special terms, unless the finite ones may overflow in
                // another order.
                let no_overflow = self.op != ReduceOp::Sum || self.sum_abs + self.sum_e < f32::MAX as f64;
                return special(self.any_special && self.specials_exact && self.finite_sure && no_overflow);
            }
            match self.op {
                ReduceOp::Sum => finite(self.sum_e + self.n as f64 * U32 * self.sum_abs),
                ReduceOp::Max | ReduceOp::Min => self.max_e,
            }
        }
    }

    /// A finite sum of `n` products of exact operands with `sum |p| = sum_abs`: the [`Reduction`]
    /// bound when every term has the `*` rule's bound `|p| u`.
    pub(crate) fn exact_products_sum(n: u64, sum_abs: f64) -> f64 {
        finite(sum_abs * U32 + n as f64 * U32 * sum_abs)
    }

    /// The rounding of a partial sum of magnitude at most `partial` to bf16 (a bf16 target of a
    /// sum across the tiles of a split dim): at most half a bf16 ulp, `UBF16 partial`.
    pub(crate) fn partial_bf16_rounding(partial: f64) -> f64 {
        finite(UBF16 * partial)
    }

    /// Rounding `x` to bf16, giving `r` (a `cast<bf16>` or a store to a bf16 tensor).
    pub(crate) fn round_to_bf16(x: Val, r: f32) -> f64 {
        if !r.is_finite() {
            return special(x.1 == 0.0);
        }
        if x.1 == 0.0 {
            return 0.0;
        }
        finite(x.1 + ulp_bf16(x.0.abs() as f64 + x.1))
    }

    /// Storing `x` to an f32 tensor.
    pub(crate) fn store_f32(x: Val, r: f32) -> f64 {
        if !r.is_finite() || x.1 == 0.0 {
            return x.1;
        }
        finite(x.1 + r.abs() as f64 * U32)
    }

    /// `cast<int>` of a float: truncation toward zero after clamping.
    pub(crate) fn float_to_int(x: Val) -> f64 {
        if !x.0.is_finite() {
            return special(x.1 == 0.0);
        }
        if x.1 == 0.0 {
            0.0
        } else {
            x.1 + 1.0
        }
    }

    /// `cast<to>` of an integer `x` (value and bound), giving `r`.
    pub(crate) fn int_to_float(to: DType, (x, e): (i32, f64), r: f32) -> f64 {
        if e == 0.0 {
            return 0.0;
        }
        let w = (x as f64).abs() + e;
        match to {
            DType::Bf16 => e + ulp_bf16(w),
            // Integers below 2^24 are exact in f32.
            _ if w < 16_777_216.0 => e,
            _ => e + ulp_f32(w.max(r.abs() as f64)),
        }
    }

    /// Integer `+`/`-`.
    pub(crate) fn int_add(a: (i32, f64), b: (i32, f64)) -> f64 {
        a.1 + b.1
    }

    /// Integer `*`.
    pub(crate) fn int_mul(a: (i32, f64), b: (i32, f64)) -> f64 {
        if a.1 == 0.0 && b.1 == 0.0 {
            return 0.0;
        }
        (a.0 as f64).abs() * b.1 + (b.0 as f64).abs() * a.1 + a.1 * b.1
    }

    /// `srs(x, shift)` of an integer with bound `e`.
    pub(crate) fn srs(e: f64, shift: u32) -> f64 {
        if e == 0.0 {
            0.0
        } else {
            e / 2f64.powi(shift as i32) + 1.0
        }
    }
}

/// The math functions with the semantics the core code implements (`lower::MathLowering`): IEEE
/// results from libm, except that subnormal arguments count as zero and subnormal results are
/// flushed to zero, with the same special values (NaN in, NaN out; exp saturating to +inf and 0;
/// rsqrt(0) = +inf, rsqrt(+inf) = 0; ln(0) = -inf; negative arguments of rsqrt/sqrt/ln NaN).
pub mod math {
    use crate::lower::{EXP_OVERFLOW, EXP_UNDERFLOW};

    /// Subnormal to (signed) zero.
    pub(crate) fn flush(x: f32) -> f32 {
        if x.is_subnormal() {
            0.0f32.copysign(x)
        } else {
            x
        }
    }

    /// e^x; +inf above the lowering's overflow threshold, 0 below its underflow threshold.
    pub fn exp(x: f32) -> f32 {
        if x > EXP_OVERFLOW {
            f32::INFINITY
        } else if x < EXP_UNDERFLOW {
            0.0
        } else {
            flush(flush(x).exp())
        }
    }

    /// Hyperbolic tangent.
    pub fn tanh(x: f32) -> f32 {
        flush(x).tanh()
    }

    /// 1 / x.
    pub fn recip(x: f32) -> f32 {
        flush(1.0 / flush(x))
    }

    /// 1 / sqrt(x); +inf at 0.
    pub fn rsqrt(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::INFINITY
        } else {
            1.0 / x.sqrt()
        }
    }

    /// Square root.
    pub fn sqrt(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            0.0
        } else {
            x.sqrt()
        }
    }

    /// Natural logarithm; -inf at 0.
    pub fn ln(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::NEG_INFINITY
        } else {
            x.ln()
        }
    }

    /// Base-10 logarithm; -inf at 0.
    pub fn log10(x: f32) -> f32 {
        let x = flush(x);
        if x == 0.0 {
            f32::NEG_INFINITY
        } else {
            x.log10()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bound::{self, U32};
    use super::*;
    use crate::diag::Source;
    use ndarray::IxDyn;

    fn kernel(items: &[&str]) -> Kernel {
        let body: Vec<String> = items.iter().map(|l| format!("  {l}")).collect();
        let text = format!("kernel k {{\n{}\n}}\n", body.join("\n"));
        crate::dsl::compile_source(&Source::new("t.tile", text)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn array(shape: &[usize], values: Vec<f64>) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
    }

    /// The one output's values and bounds.
    fn run(items: &[&str], inputs: &[ArrayD<f64>]) -> (ArrayD<f64>, ArrayD<f64>) {
        let k = kernel(items);
        let mut outs = run_reference_with_bounds(&k, inputs).unwrap();
        let plain = run_reference(&k, inputs).unwrap();
        assert_eq!(plain[0], outs[0].0, "run_reference gives the values of run_reference_with_bounds");
        outs.remove(0)
    }

    const SUM: &[&str] = &["dim M = 1", "dim N = 1000", "in x: f32[M, N]", "out y: f32[M]", "y[M] = sum[N](x[M, N])"];

    #[test]
    fn a_sum_of_a_thousand_ones_is_bounded_by_n_u_sum() {
        let (v, b) = run(SUM, &[array(&[1, 1000], vec![1.0; 1000])]);
        assert_eq!(v[[0]], 1000.0);
        // Every order sums integers below 2^24 exactly: the true worst case is 0.
        let b = b[[0]];
        assert!(b >= 0.0);
        assert!(b <= 1000.0 * 1000.0 * U32 + 1e-3, "{b}");
        assert!(b >= 1000.0 * 1000.0 * U32, "{b}");
    }

    /// Sums `terms` in f32 in the orders a backend may use.
    fn sums_in_other_orders(terms: &[f32]) -> Vec<f32> {
        let forward = terms.iter().fold(0f32, |a, &t| a + t);
        let backward = terms.iter().rev().fold(0f32, |a, &t| a + t);
        fn pairwise(t: &[f32]) -> f32 {
            if t.len() <= 2 {
                t.iter().fold(0f32, |a, &x| a + x)
            } else {
                let (l, r) = t.split_at(t.len() / 2);
                pairwise(l) + pairwise(r)
            }
        }
        // 16 lanes, then the lanes reduced; and partial sums of 64-term tiles.
        let mut lanes = [0f32; 16];
        for (i, &t) in terms.iter().enumerate() {
            lanes[i % 16] += t;
        }
        let tiles = terms.chunks(64).fold(0f32, |a, c| a + c.iter().fold(0f32, |s, &t| s + t));
        vec![forward, backward, pairwise(terms), pairwise(&lanes), tiles]
    }

    #[test]
    fn the_sum_bound_covers_other_summation_orders() {
        let mut rng = crate::hostdata::rng(5);
        for _ in 0..20 {
            let x = crate::hostdata::random(&[1, 1000], DType::F32, &mut rng);
            // Large and small terms mixed, so that the order matters.
            let x = x.mapv(|v| if v > 1.5 { v * 4096.0 } else { v });
            let (v, b) = run(SUM, std::slice::from_ref(&x));
            let terms: Vec<f32> = x.iter().map(|&t| t as f32).collect();
            for s in sums_in_other_orders(&terms) {
                assert!((s as f64 - v[[0]]).abs() <= b[[0]], "{s} vs {} (bound {})", v[[0]], b[[0]]);
            }
            assert!(b[[0]] <= 1000.0 * U32 * terms.iter().map(|t| t.abs() as f64).sum::<f64>() * 1.01);
        }
    }

    #[test]
    fn a_bf16_store_counts_the_rounding_of_an_inexact_value() {
        // 1 + 2^-9 lies a quarter of a bf16 ulp (2^-7) above 1.
        let v = 1.0 + 2f32.powi(-9);
        assert_eq!(round_bf16(v), 1.0);
        let e = 1e-6;
        let b = bound::round_to_bf16((v, e), 1.0);
        assert!(b >= 2f64.powi(-9), "{b}");
        // Both sides round: values within e of v may land on the next bf16 value up.
        assert!(b >= e + 2f64.powi(-7), "{b}");
        // Computed in a kernel: x + 2^-9 with x = 1, stored to bf16.
        let items = ["dim M = 4", "in x: bf16[M]", "out y: bf16[M]", "y[M] = x[M] + 0.001953125"];
        let (y, b) = run(&items, &[array(&[4], vec![1.0; 4])]);
        assert_eq!(y[[0]], 1.0);
        assert!(b[[0]] >= 2f64.powi(-7) && b[[0]] < 2f64.powi(-6), "{}", b[[0]]);
        // An exact value is rounded the same way on both sides; a bf16 value is not rounded.
        assert_eq!(bound::round_to_bf16((v, 0.0), 1.0), 0.0);
        let items = ["dim M = 4", "in x: bf16[M]", "out y: bf16[M]", "y[M] = x[M]"];
        assert_eq!(run(&items, &[array(&[4], vec![1.5; 4])]).1[[0]], 0.0);
        let items = ["dim M = 4", "in x: f32[M]", "out y: bf16[M]", "y[M] = cast<bf16>(x[M] * 3.0)"];
        let (_, b) = run(&items, &[array(&[4], vec![1.1; 4])]);
        let e = bound::mul((1.1, 0.0), (3.0, 3.0 * U32), 1.1f32 * 3.0);
        assert_eq!(b[[0]], e + bound::ulp_bf16(3.3f32 as f64 + e), "the cast rounds, the store does not");
    }

    #[test]
    fn recip_near_zero_is_unbounded() {
        assert_eq!(bound::recip((1e-7, 2e-7), 1e7), f64::INFINITY);
        assert_eq!(bound::recip((1e-7, 1e-7f32 as f64), 1e7), f64::INFINITY);
        let b = bound::recip((2.0, 1e-3), 0.5);
        // |1/2 - 1/(2 - 1e-3)| = 1e-3 / (2 * 1.999)
        let change = 1e-3 / (2.0 * 1.999);
        assert!((change..change + 1e-6).contains(&b), "{b}");
        // In a kernel: 1 + (-1) + 1e-8 summed, so the sum's bound exceeds its value.
        let items = ["dim M = 1", "dim N = 3", "in x: f32[M, N]", "out y: f32[M]", "y[M] = recip(sum[N](x[M, N]))"];
        let (y, b) = run(&items, &[array(&[1, 3], vec![1.0, -1.0, 1e-8])]);
        assert!(y[[0]] > 1e7);
        assert_eq!(b[[0]], f64::INFINITY);
        // Division by such a value likewise.
        let items = ["dim M = 1", "dim N = 3", "in x: f32[M, N]", "out y: f32[M]", "y[M] = 1.0 / sum[N](x[M, N])"];
        assert_eq!(run(&items, &[array(&[1, 3], vec![1.0, -1.0, 1e-8])]).1[[0]], f64::INFINITY);
        // An exact zero gives an exact infinity.
        let items = ["dim M = 1", "in x: f32[M]", "out y: f32[M]", "y[M] = recip(x[M])"];
        let (y, b) = run(&items, &[array(&[1], vec![0.0])]);
        assert_eq!((y[[0]], b[[0]]), (f64::INFINITY, 0.0));
    }

    #[test]
    fn math_functions_follow_their_derivative_and_accuracy() {
        // exp: exp(x) (exp(ex) - 1) + the expansion's 1e-6.
        let b = bound::exp((1.0, 1e-3), 1f32.exp());
        let e1 = std::f64::consts::E;
        assert!(b >= e1 * (1e-3f64).exp_m1() + e1 * 1e-6 && b < e1 * (1e-3f64).exp_m1() + e1 * 1.2e-6, "{b}");
        // rsqrt and ln of an interval reaching 0: unbounded.
        assert_eq!(bound::rsqrt((1e-3, 2e-3), 1e-3f32.sqrt().recip()), f64::INFINITY);
        assert_eq!(bound::ln((1e-3, 1e-3f32 as f64), 1e-3f32.ln()), f64::INFINITY);
        assert_eq!(bound::sqrt((1e-3, 2e-3), 1e-3f32.sqrt()), f64::INFINITY);
        // ln: slope 1/(x - ex) at the low end.
        let b = bound::ln((2.0, 0.01), 2f32.ln());
        assert!((0.01 / 1.99..0.01 / 1.99 + 1e-6).contains(&b), "{b}");
        // tanh: slope at most 1, and its absolute accuracy even for an exact argument.
        assert!(bound::tanh((0.0, 0.0), 0.0) >= 3e-7);
        let b = bound::tanh((0.1, 0.2), 0.1f32.tanh());
        assert!((0.2..0.2 + 1e-6).contains(&b), "{b}");
        let b = bound::tanh((5.0, 0.1), 5f32.tanh());
        assert!(b < 0.1 * 4.0 / (4.9f64.exp() + (-4.9f64).exp()).powi(2) * 4.0 + 1e-6, "{b}");
    }

    #[test]
    fn special_values_are_exact_when_decided_by_exact_operands() {
        // softmax's masked scores: -inf - max is -inf, exp of it 0, all exactly.
        let items = [
            "dim M = 2",
            "dim N = 4",
            "in x: f32[M, N]",
            "out y: f32[M, N]",
            "local s: f32[M, N]",
            "s[M, N] = select(N <= M, x[M, N] * 0.5, -inf)",
            "y[M, N] = exp(s[M, N] - max[N](s[M, N]))",
        ];
        let (y, b) = run(&items, &[array(&[2, 4], vec![0.3, 1.0, 2.0, 3.0, 0.5, -1.0, 2.0, 3.0])]);
        assert_eq!(y[[0, 1]], 0.0);
        assert_eq!(b[[0, 1]], 0.0);
        assert_eq!(y[[0, 0]], 1.0);
        assert!(b[[0, 0]] > 0.0 && b[[0, 0]] < 1e-5);
        // An overflow of inexact operands is unbounded; of exact ones, exact.
        assert_eq!(bound::add((3e38, 1e30), (3e38, 0.0), f32::INFINITY), f64::INFINITY);
        assert_eq!(bound::add((3e38, 0.0), (3e38, 0.0), f32::INFINITY), 0.0);
        // inf * x is sure only when x's interval excludes 0.
        assert_eq!(bound::mul((f32::INFINITY, 0.0), (2.0, 1.0), f32::INFINITY), 0.0);
        assert_eq!(bound::mul((f32::INFINITY, 0.0), (2.0, 3.0), f32::INFINITY), f64::INFINITY);
    }

    #[test]
    fn max_of_apart_intervals_keeps_the_chosen_bound() {
        // mel's clamp: max(power, 1e-10) of a clearly negative power is the constant.
        let c = 1e-10f32;
        assert_eq!(bound::max_min((-5.0, 0.5), (c, bound::constant(c)), c), bound::constant(c));
        assert_eq!(bound::max_min((1.0, 0.5), (1.2, 0.1), 1.2), 0.5);
    }

    #[test]
    fn conversions_to_integers_may_step_by_one() {
        assert_eq!(bound::float_to_int((2.5, 0.0)), 0.0);
        assert_eq!(bound::float_to_int((2.999, 0.01)), 1.01);
        assert_eq!(bound::srs(3.0, 2), 1.75);
        assert_eq!(bound::srs(0.0, 2), 0.0);
        let items = ["dim M = 4", "in x: f32[M]", "out y: i8[M]", "y[M] = cast<i8>(x[M] * 10.0)"];
        let (y, b) = run(&items, &[array(&[4], vec![0.1, 1.0, -1.25, 0.0])]);
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![1.0, 10.0, -12.0, 0.0]);
        assert!(b[[0]] > 1.0 && b[[0]] < 1.0 + 1e-6, "{}", b[[0]]);
        // 0 * 10 is exact on every backend, and so is its conversion.
        assert_eq!(b[[3]], 0.0);
        let items = ["dim M = 4", "in x: i8[M]", "out y: i8[M]", "y[M] = srs<i8>(x[M] * 3, 1)"];
        assert_eq!(run(&items, &[array(&[4], vec![1.0, 2.0, -3.0, 4.0])]).1.sum(), 0.0);
    }
}
