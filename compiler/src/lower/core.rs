//! One core's body: its loops, object FIFO acquires and releases, and the statements.

use super::design::{build_aie, subview_type, DesignBuilder};
use super::mlir::{span_location, Elem, Ir, Op, Val};
use super::{lower_error, StmtForm, VECTOR_LANES};
use crate::diag::{CompileError, Diagnostic, Span};
use crate::dsl::ast::{ReduceOp, Role};
use crate::ir::{DimId, Expr, Kernel, ScalarType, Stmt, TensorId};
use crate::schedule::{element_view, Core, Design};
use crate::target_rules::{vector_verdict, Verdict, MULF_BF16_OPERANDS, MULF_MIXED_OPERANDS};
use aiec_runtime::aie_syntax::{AieOp, Port};
use aiec_runtime::DType;
use melior::dialect::{arith, memref, scf};
use melior::ir::attribute::{DenseElementsAttribute, DenseI32ArrayAttribute, FloatAttribute, IntegerAttribute};
use melior::ir::operation::{OperationBuilder, OperationLike};
use melior::ir::r#type::IntegerType;
use melior::ir::{Attribute, Block, Location, Operation, Region, RegionLike, Type, TypeLike, ValueLike};
use melior::Context;
use std::collections::{BTreeMap, BTreeSet};

/// A memref visible in the core: its value, MLIR type, element type and the dim of each axis.
#[derive(Clone)]
pub(super) struct Buffer {
    pub(super) value: Val,
    pub(super) dtype: DType,
    pub(super) dims: Vec<DimId>,
    /// For host tensors accessed with several patterns: per tensor axis, its dim or None (whole axis).
    pub(super) axes: Option<Vec<Option<DimId>>>,
    /// In a joined FIFO element: the tile's offset along the first axis, and whether the tile
    /// has one axis fewer (it fills one index there).
    pub(super) joined_at: Option<(u64, bool)>,
}

/// A constant of the core body. All are hoisted to the top of the body, one per value and type.
#[derive(Clone, Copy, Debug)]
pub(super) enum Constant {
    Index(u64),
    I32(i32),
    F32(f32),
    /// A 16-lane splat.
    LanesI32(i32),
    LanesF32(f32),
    /// The zero of a storage type.
    Zero(DType),
    /// A zero accumulator of a contraction: `[rows, cols]` of `acc`.
    ZeroTile([u64; 2], DType),
}

impl Constant {
    /// The order constants appear in at the top of the body: the order of their values' and
    /// then their types' spellings. Scalars come first (their values start with `-` or a digit,
    /// before the `d` of a splat's `dense<`); splats compare by value up to the closing `>`.
    fn order(self, ty: Type) -> (bool, String, String) {
        let hex = |v: f32| format!("0x{:08X}", v.to_bits());
        let zero = |d: DType| if d.is_float() { "0.0" } else { "0" };
        let (splat, value) = match self {
            Constant::Index(v) => (false, v.to_string()),
            Constant::I32(v) => (false, v.to_string()),
            Constant::F32(v) => (false, hex(v)),
            Constant::LanesI32(v) => (true, v.to_string() + ">"),
            Constant::LanesF32(v) => (true, hex(v) + ">"),
            Constant::Zero(d) => (false, zero(d).to_string()),
            Constant::ZeroTile(_, d) => (true, zero(d).to_string() + ">"),
        };
        (splat, value, ty.to_string())
    }

    fn attribute<'c>(self, ir: &Ir<'c>) -> Attribute<'c> {
        let c = ir.context;
        match self {
            Constant::Index(v) => IntegerAttribute::new(Type::index(c), v as i64).into(),
            Constant::I32(v) => IntegerAttribute::new(IntegerType::new(c, 32).into(), v as i64).into(),
            Constant::F32(v) => FloatAttribute::new(c, Type::float32(c), v as f64).into(),
            Constant::LanesI32(v) => DenseElementsAttribute::i32_splat(ir.vector(&[VECTOR_LANES], Elem::I32), v).into(),
            Constant::LanesF32(v) => DenseElementsAttribute::f32_splat(ir.vector(&[VECTOR_LANES], Elem::F32), v).into(),
            Constant::Zero(d) => {
                let t = ir.elem(Elem::of(d));
                if d.is_float() {
                    FloatAttribute::new(c, t, 0.0).into()
                } else {
                    IntegerAttribute::new(t, 0).into()
                }
            }
            Constant::ZeroTile(shape, d) => {
                let t = ir.vector(&shape, Elem::of(d));
                if d.is_float() {
                    DenseElementsAttribute::f32_splat(t, 0.0).into()
                } else {
                    DenseElementsAttribute::i32_splat(t, 0).into()
                }
            }
        }
    }

    fn ty<'c>(self, ir: &Ir<'c>) -> Type<'c> {
        match self {
            Constant::Index(_) => ir.elem(Elem::Index),
            Constant::I32(_) => ir.elem(Elem::I32),
            Constant::F32(_) => ir.elem(Elem::F32),
            Constant::LanesI32(_) => ir.vector(&[VECTOR_LANES], Elem::I32),
            Constant::LanesF32(_) => ir.vector(&[VECTOR_LANES], Elem::F32),
            Constant::Zero(d) => ir.elem(Elem::of(d)),
            Constant::ZeroTile(shape, d) => ir.vector(&shape, Elem::of(d)),
        }
    }
}

/// An open `scf.for`: the op and the block it was appended to.
pub(super) struct Loop {
    op: Op,
    parent: mlir_sys::MlirBlock,
}

impl Loop {
    /// The induction variable.
    pub(super) fn iv(&self) -> Val {
        Ir::argument(self.op.body(0), 0)
    }
    /// The `i`th loop-carried value inside the body.
    pub(super) fn carried(&self, i: usize) -> Val {
        Ir::argument(self.op.body(0), i + 1)
    }
    /// The `i`th result of the loop.
    pub(super) fn result(&self, i: usize) -> Val {
        self.op.result(i)
    }
}

/// What a core body came to.
pub(super) struct EmittedCore {
    /// Operations (and region closers) in the body, as the program-memory estimate counts them.
    pub(super) ops: usize,
    pub(super) notes: Vec<Diagnostic>,
    pub(super) forms: Vec<StmtForm>,
}

pub(super) struct CoreEmitter<'a, 'c> {
    pub(super) kernel: &'a Kernel,
    pub(super) design: &'a Design,
    core: &'a Core,
    pub(super) ir: Ir<'c>,
    /// The core's buffers keeping the repeated parts of joined streams.
    kept: Vec<(TensorId, Val)>,
    entry: mlir_sys::MlirBlock,
    consts: BTreeMap<(bool, String, String), (Val, Op)>,
    /// Ops and region closers emitted into the body (constants apart).
    lines: usize,
    pub(super) buffers: BTreeMap<TensorId, Buffer>,
    /// Global tile index (an index value) of each split dim in scope.
    pub(super) tile_index: BTreeMap<DimId, Val>,
    /// While emitting vector code: the dim mapped to vector lanes.
    pub(super) lanes: Option<DimId>,
    /// Vector ops emitted since the last checkpoint that the target's toolchain rejects.
    rejected: Vec<String>,
    /// Statements that run as scalar code because a vector op they need is rejected.
    notes: Vec<Diagnostic>,
    /// Location and index of the statement being lowered.
    stmt: Option<(Location<'c>, usize)>,
    /// Per kernel statement, what its ops use.
    forms: Vec<StmtForm>,
    /// Vector values that are `arith.extf` of bf16 vectors.
    bf16_extended: BTreeSet<Val>,
}

/// Where emission stood, to take back a vector attempt the target cannot compile.
pub(super) struct Checkpoint {
    block: mlir_sys::MlirBlock,
    last: Option<Op>,
    consts: BTreeSet<(bool, String, String)>,
    lines: usize,
    forms: Vec<StmtForm>,
    bf16_extended: BTreeSet<Val>,
}

impl<'a, 'c> CoreEmitter<'a, 'c> {
    pub(super) fn new(
        context: &'c Context,
        body: mlir_sys::MlirBlock,
        kernel: &'a Kernel,
        design: &'a Design,
        core: &'a Core,
        locals: &[(TensorId, Val)],
        kept: &[(TensorId, Val)],
    ) -> Self {
        let ir = Ir::new(context, body);
        // Locals are the core's `aie.buffer`s, declared beside the tiles (`memref.alloca` is not
        // allowed in an aie.core, which is no allocation scope).
        let mut buffers = BTreeMap::new();
        for &(t, value) in locals {
            let tensor = &kernel.tensors[t];
            buffers.insert(
                t,
                Buffer {
                    value,
                    dtype: tensor.dtype,
                    dims: tensor.local_dims.clone(),
                    axes: None,
                    joined_at: None,
                },
            );
        }
        CoreEmitter {
            kernel,
            design,
            core,
            ir,
            kept: kept.to_vec(),
            entry: body,
            consts: BTreeMap::new(),
            lines: 0,
            buffers,
            tile_index: BTreeMap::new(),
            lanes: None,
            rejected: Vec::new(),
            notes: Vec::new(),
            stmt: None,
            forms: vec![StmtForm::default(); kernel.stmts.len()],
            bf16_extended: BTreeSet::new(),
        }
    }

    pub(super) fn checkpoint(&mut self) -> Checkpoint {
        self.rejected.clear();
        let block = self.ir.block();
        Checkpoint {
            block,
            last: Ir::last_op(block),
            consts: self.consts.keys().cloned().collect(),
            lines: self.lines,
            forms: self.forms.clone(),
            bf16_extended: self.bf16_extended.clone(),
        }
    }

    /// After a vector attempt: true if the target takes every op it emitted. Otherwise the
    /// attempt is erased and a note says which op forced scalar code.
    pub(super) fn vector_accepted(&mut self, cp: Checkpoint, span: &Span) -> bool {
        if self.rejected.is_empty() {
            return true;
        }
        let is_const = |op: Op, consts: &BTreeMap<(bool, String, String), (Val, Op)>| consts.values().any(|&(_, c)| Ir::is(c, op));
        let attempt = Ir::ops_after(cp.block, cp.last);
        Ir::erase(&attempt, |op| is_const(op, &self.consts));
        let new_consts: Vec<Op> = self.consts.iter().filter(|(k, _)| !cp.consts.contains(*k)).map(|(_, &(_, op))| op).collect();
        Ir::erase(&new_consts, |_| false);
        self.consts.retain(|k, _| cp.consts.contains(k));
        self.ir.set_block(cp.block);
        self.lines = cp.lines;
        self.forms = cp.forms;
        self.bf16_extended = cp.bf16_extended;
        self.lanes = None;
        let target = self.design.device.target;
        let reason = std::mem::take(&mut self.rejected).remove(0);
        self.notes.push(
            Diagnostic::new(format!("this statement runs as scalar code on {target}: {reason}"), Some(span))
                .note("the emulator runs it either way; only mlir-aie's vector conversion decides"),
        );
        false
    }

    /// Records a 16-lane op the target's toolchain rejects (see `target_rules`).
    pub(super) fn check_vector_op(&mut self, op: &str, elem: &str, result: &str) {
        if let Verdict::Rejected(why) = vector_verdict(self.design.device.target, op, elem, result) {
            self.rejected.push(format!("vector `{op}` on {elem} is not accepted ({why})"));
        }
    }

    /// Checks an arith op emitted on vector lanes: `op` on `operands` (of element type `elem`)
    /// giving `result` elements. Index arithmetic stays scalar and is not checked.
    pub(super) fn check_vector_arith(&mut self, op: &str, operands: &[Val], elem: Elem, result: Elem) {
        if self.lanes.is_none() || elem == Elem::Index || result == Elem::Index {
            return;
        }
        // mlir-aie folds `extf` from bf16 into its multiply: what a vector `mulf` becomes
        // depends on where its operands come from.
        let elem = if op == "arith.mulf" {
            match operands.iter().filter(|v| self.bf16_extended.contains(v)).count() {
                0 => elem.name(),
                n if n == operands.len() => MULF_BF16_OPERANDS,
                _ => MULF_MIXED_OPERANDS,
            }
        } else {
            elem.name()
        };
        self.check_vector_op(op, elem, result.name());
    }

    /// Records that `v` is an `arith.extf` of a bf16 vector.
    pub(super) fn mark_bf16_extended(&mut self, v: Val) {
        self.bf16_extended.insert(v);
    }

    /// The location of the statement being lowered, if any.
    pub(super) fn location(&self) -> Location<'c> {
        self.stmt.map(|(l, _)| l).unwrap_or_else(|| self.ir.unknown())
    }

    /// Appends an op the statement being lowered produced (it carries the statement's location,
    /// so a diagnostic from MLIR or mlir-aie's tools about it can be traced to the DSL line).
    pub(super) fn push(&mut self, op: Operation<'c>) -> Op {
        if let Some((_, i)) = self.stmt {
            let vector = op.operands().any(|v| v.r#type().is_vector()) || op.results().any(|v| v.r#type().is_vector());
            let contract = op.name().as_string_ref().as_str() == Ok("vector.contract");
            let form = &mut self.forms[i];
            form.vector |= vector;
            form.contract |= contract;
        }
        self.lines += 1;
        self.ir.push(op)
    }

    /// As [`Self::push`], for an op with one result.
    pub(super) fn push1(&mut self, op: Operation<'c>) -> Val {
        self.push(op).result(0)
    }

    pub(super) fn constant(&mut self, c: Constant) -> Val {
        let ty = c.ty(&self.ir);
        let key = c.order(ty);
        if let Some(&(v, _)) = self.consts.get(&key) {
            return v;
        }
        let op = arith::constant(self.ir.context, c.attribute(&self.ir), self.ir.unknown());
        // Kept in order at the top of the body.
        let next = self.consts.range(key.clone()..).next().map(|(_, &(_, op))| op);
        let op = match (next, self.consts.values().next_back()) {
            (Some(n), _) => self.ir.insert(self.entry, Some(n), op),
            (None, Some(&(_, last))) => self.ir.insert_after(last, op),
            (None, None) => self.ir.insert(self.entry, None, op),
        };
        let v = op.result(0);
        self.consts.insert(key, (v, op));
        v
    }
    pub(super) fn cidx(&mut self, v: u64) -> Val {
        self.constant(Constant::Index(v))
    }
    pub(super) fn ci32(&mut self, v: i64) -> Val {
        match self.lanes {
            Some(_) => self.constant(Constant::LanesI32(v as i32)),
            None => self.constant(Constant::I32(v as i32)),
        }
    }
    pub(super) fn cf32(&mut self, v: f32) -> Val {
        match self.lanes {
            Some(_) => self.constant(Constant::LanesF32(v)),
            None => self.constant(Constant::F32(v)),
        }
    }

    /// Runs `f` in scalar mode (for values a vector expression broadcasts).
    pub(super) fn scalar<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.lanes.take();
        let r = f(self);
        self.lanes = saved;
        r
    }

    /// Opens an `scf.for` from `lo` to `hi` by `step` carrying `inits`; emission continues in
    /// its body.
    pub(super) fn open_for(&mut self, lo: Val, hi: Val, step: Val, inits: &[Val]) -> Loop {
        let index = self.ir.elem(Elem::Index);
        let types: Vec<Type> = inits.iter().map(|&v| self.ir.type_of(v)).collect();
        let args: Vec<(Type, Location)> = std::iter::once(index).chain(types.iter().copied()).map(|t| (t, self.ir.unknown())).collect();
        let region = Region::new();
        region.append_block(Block::new(&args));
        let op = if inits.is_empty() {
            scf::r#for(self.ir.value(lo), self.ir.value(hi), self.ir.value(step), region, self.ir.unknown())
        } else {
            let mut operands = vec![lo, hi, step];
            operands.extend_from_slice(inits);
            OperationBuilder::new("scf.for", self.ir.unknown())
                .add_operands(&self.ir.values(&operands))
                .add_results(&types)
                .add_regions([region])
                .build()
                .expect("scf.for builds")
        };
        self.lines += 1;
        let parent = self.ir.block();
        let op = self.ir.push(op);
        self.ir.set_block(op.body(0));
        Loop { op, parent }
    }

    /// Closes a loop, yielding `values` (the loop-carried values) from its body.
    pub(super) fn close_for(&mut self, lp: Loop, values: &[Val]) {
        let op = scf::r#yield(&self.ir.values(values), self.location());
        if values.is_empty() {
            // The implicit terminator of a loop without results is not printed.
            self.ir.push(op);
        } else {
            self.push(op);
        }
        self.lines += 1;
        self.ir.set_block(lp.parent);
    }

    /// Opens one scf.for per dim over its tile extent; returns the induction variables.
    pub(super) fn open_loops(&mut self, dims: &[DimId], ivs: &mut BTreeMap<DimId, Val>) -> Vec<Loop> {
        let mut loops = Vec::new();
        for &d in dims {
            let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
            let lp = self.open_for(lo, hi, one, &[]);
            ivs.insert(d, lp.iv());
            loops.push(lp);
        }
        loops
    }

    pub(super) fn close_loops(&mut self, loops: Vec<Loop>) {
        for lp in loops.into_iter().rev() {
            self.close_for(lp, &[]);
        }
    }

    pub(super) fn emit(mut self) -> Result<EmittedCore, CompileError> {
        let kernel = self.kernel;
        let design = self.design;
        // Step loops.
        let mut step_loops = Vec::new();
        for lp in &design.step_loops {
            let (lo, hi, one) = (self.cidx(0), self.cidx(lp.count), self.cidx(1));
            let l = self.open_for(lo, hi, one, &[]);
            let iv = l.iv();
            step_loops.push(l);
            let base = lp.row_coef * self.core.row_index as u64 + lp.col_coef * self.core.col_index as u64;
            let coef = self.cidx(lp.step_coef);
            let scaled = self.muli(iv, coef);
            let b = self.cidx(base);
            let ti = self.addi(scaled, b);
            self.tile_index.insert(lp.dim, ti);
        }
        let core_fifos = self.core.fifos.clone();
        let uses_reduce = |t: TensorId| -> bool { design.in_reduction_loop(kernel, core_fifos[&t]) };
        // Acquire outputs and the inputs that stay for the whole step.
        let mut step_fifos: Vec<(TensorId, Port)> = Vec::new();
        for (&t, _) in self.core.fifos.iter() {
            if kernel.tensors[t].role == Role::Out {
                step_fifos.push((t, Port::Produce));
            }
        }
        for (&t, _) in self.core.fifos.iter() {
            if kernel.tensors[t].role == Role::In && !uses_reduce(t) {
                step_fifos.push((t, Port::Consume));
            }
        }
        // A joined FIFO is acquired once for all its tensors.
        let mut seen = BTreeSet::new();
        step_fifos.retain(|(t, _)| seen.insert(self.core.fifos[t]));
        for &(t, port) in &step_fifos {
            self.acquire(t, port);
        }
        // Targets that accumulate start from zero on every step.
        let mut zeroed: Vec<TensorId> = Vec::new();
        for stmt in &kernel.stmts {
            if stmt.accumulate && !zeroed.contains(&stmt.target) {
                zeroed.push(stmt.target);
            }
        }
        for t in zeroed {
            let zero = match crate::ir::scalar_type_of(kernel.tensors[t].dtype) {
                ScalarType::I32 => self.ci32(0),
                ScalarType::F32 => self.cf32(0.0),
            };
            self.fill(t, zero);
        }
        let mut first = 0;
        if let Some(ri) = crate::schedule::reduction_stmt(kernel) {
            self.reduction_steps(ri, &uses_reduce)?;
            first = ri + 1;
        }
        for (si, stmt) in kernel.stmts.iter().enumerate().skip(first) {
            self.statement(si, stmt, false)?;
        }
        for &(t, port) in step_fifos.iter().rev() {
            self.release(t, port);
        }
        self.close_loops(step_loops);
        DesignBuilder::end(&self.ir);
        Ok(EmittedCore {
            ops: self.lines + self.consts.len(),
            notes: self.notes,
            forms: self.forms,
        })
    }

    /// The statements up to the reduction `ri`, inside the reduction loops, with the inputs
    /// the reduction walks acquired per iteration.
    fn reduction_steps(&mut self, ri: usize, uses_reduce: &dyn Fn(TensorId) -> bool) -> Result<(), CompileError> {
        let kernel = self.kernel;
        let stmt = &kernel.stmts[ri];
        let Expr::Reduce { op, .. } = &stmt.value else {
            unreachable!("reduction_stmt returns a reducing statement")
        };
        if !stmt.accumulate {
            let init = self.identity(*op, crate::ir::scalar_type_of(kernel.tensors[stmt.target].dtype));
            self.fill(stmt.target, init);
        }
        let mut loops = Vec::new();
        for lp in &self.design.reduce_loops {
            let (lo, hi, one) = (self.cidx(0), self.cidx(lp.count), self.cidx(1));
            let l = self.open_for(lo, hi, one, &[]);
            self.tile_index.insert(lp.dim, l.iv());
            loops.push(l);
        }
        let mut rfifos: Vec<TensorId> = self
            .core
            .fifos
            .keys()
            .copied()
            .filter(|&t| kernel.tensors[t].role == Role::In && uses_reduce(t))
            .collect();
        let mut seen = BTreeSet::new();
        rfifos.retain(|t| seen.insert(self.core.fifos[t]));
        for &t in &rfifos {
            self.acquire(t, Port::Consume);
        }
        for (si, s) in kernel.stmts[..=ri].iter().enumerate() {
            self.statement(si, s, si == ri)?;
        }
        let kept = self.kept.clone();
        for &(t, into) in &kept {
            self.keep_tile(t, into);
        }
        for &t in &rfifos {
            self.release(t, Port::Consume);
        }
        self.close_loops(loops);
        for &(t, value) in &kept {
            let view = element_view(kernel, t);
            let buf = Buffer {
                value,
                dtype: kernel.tensors[t].dtype,
                dims: view.dims(),
                axes: view.by_tensor_axis.then(|| view.axes.iter().map(|a| a.dim).collect()),
                joined_at: None,
            };
            self.buffers.insert(t, buf);
        }
        Ok(())
    }

    fn acquire(&mut self, t: TensorId, port: Port) {
        let f = &self.design.fifos[self.core.fifos[&t]];
        let ty = self.ir.memref(&f.shape, f.dtype);
        let elem_type = ty.to_string();
        let acquire = AieOp::Acquire {
            fifo: f.name.clone(),
            port,
            size: 1,
            elem_type: elem_type.clone(),
        };
        let subview = build_aie(&self.ir, &acquire, &[], &[subview_type(self.ir.context, ty)], 0).result(0);
        let access = AieOp::Access {
            subview: String::new(),
            index: 0,
            elem_type,
        };
        let element = build_aie(&self.ir, &access, &[subview], &[ty], 0).result(0);
        self.lines += 2;
        let parts = std::iter::once((f.tensor, None)).chain(f.joined.iter().map(|p| (p.tensor, Some((p.first_axis_offset, p.new_axis)))));
        for (t, joined_at) in parts.collect::<Vec<_>>() {
            let view = element_view(self.kernel, t);
            let axes = if view.by_tensor_axis {
                Some(view.axes.iter().map(|a| a.dim).collect())
            } else {
                None
            };
            self.buffers.insert(
                t,
                Buffer {
                    value: element,
                    dtype: self.kernel.tensors[t].dtype,
                    dims: view.dims(),
                    axes,
                    joined_at,
                },
            );
        }
    }

    /// Copies the tile of `t` from its joined FIFO element to the core's kept buffer `into`: the
    /// tile arrives with every reduction tile, and the statements after the reduction loop read it.
    fn keep_tile(&mut self, t: TensorId, into: Val) {
        let buf = self.buffers[&t].clone();
        let shape = element_view(self.kernel, t).shape();
        let mut loops = Vec::new();
        for &n in &shape {
            let (lo, hi, one) = (self.cidx(0), self.cidx(n), self.cidx(1));
            loops.push(self.open_for(lo, hi, one, &[]));
        }
        let ivs: Vec<Val> = loops.iter().map(Loop::iv).collect();
        let idx = self.joined_indices(&buf, ivs.clone());
        let v = self.load_scalar(&buf, &idx);
        let kept = Buffer {
            value: into,
            joined_at: None,
            ..buf
        };
        self.store(v, &kept, &ivs);
        self.close_loops(loops);
    }

    /// The indices into a buffer's memref of its tile's `idx` (shifted into a joined element).
    pub(super) fn joined_indices(&mut self, buf: &Buffer, mut idx: Vec<Val>) -> Vec<Val> {
        match buf.joined_at {
            None | Some((0, false)) => idx,
            Some((at, true)) => {
                idx.insert(0, self.cidx(at));
                idx
            }
            Some((at, false)) => {
                let off = self.cidx(at);
                idx[0] = self.addi(idx[0], off);
                idx
            }
        }
    }

    fn release(&mut self, t: TensorId, port: Port) {
        let release = AieOp::Release {
            fifo: self.design.fifos[self.core.fifos[&t]].name.clone(),
            port,
            size: 1,
        };
        build_aie(&self.ir, &release, &[], &[], 0);
        self.lines += 1;
    }

    pub(super) fn identity(&mut self, op: ReduceOp, ty: ScalarType) -> Val {
        match (op, ty) {
            (ReduceOp::Sum, ScalarType::I32) => self.ci32(0),
            (ReduceOp::Sum, ScalarType::F32) => self.cf32(0.0),
            (ReduceOp::Max, ScalarType::I32) => self.ci32(i32::MIN as i64),
            (ReduceOp::Max, ScalarType::F32) => self.cf32(f32::NEG_INFINITY),
            (ReduceOp::Min, ScalarType::I32) => self.ci32(i32::MAX as i64),
            (ReduceOp::Min, ScalarType::F32) => self.cf32(f32::INFINITY),
        }
    }

    /// Fills a target buffer with a compute-typed scalar.
    fn fill(&mut self, t: TensorId, value: Val) {
        let buf = self.buffers[&t].clone();
        let mut ivs = BTreeMap::new();
        let loops = self.open_loops(&buf.dims, &mut ivs);
        let v = self.encode_storage(value, buf.dtype);
        let idx: Vec<Val> = buf.dims.iter().map(|d| ivs[d]).collect();
        self.store(v, &buf, &idx);
        self.close_loops(loops);
    }

    pub(super) fn load_scalar(&mut self, buf: &Buffer, idx: &[Val]) -> Val {
        let op = memref::load(self.ir.value(buf.value), &self.ir.values(idx), self.location());
        self.push1(op)
    }

    pub(super) fn store(&mut self, v: Val, buf: &Buffer, idx: &[Val]) {
        let op = memref::store(self.ir.value(v), self.ir.value(buf.value), &self.ir.values(idx), self.location());
        self.push(op);
    }

    /// `vector.transfer_read` of a `shape` vector from `buf` at `idx`, padded with zero.
    pub(super) fn transfer_read(&mut self, buf: &Buffer, idx: &[Val], shape: &[u64]) -> Val {
        let pad = self.storage_zero(buf.dtype);
        let ty = self.ir.vector(shape, Elem::of(buf.dtype));
        let map = self.ir.minor_identity(idx.len(), shape.len());
        let mut operands = vec![buf.value];
        operands.extend_from_slice(idx);
        operands.push(pad);
        let segments = [1, idx.len() as i32, 1, 0];
        let op = self.ir.build_op(
            "vector.transfer_read",
            self.location(),
            &operands,
            &[ty],
            &self.vector_transfer_attributes(map, shape.len(), segments),
        );
        self.push1(op)
    }

    /// `vector.transfer_write` of `v` into `buf` at `idx`.
    pub(super) fn transfer_write(&mut self, v: Val, buf: &Buffer, idx: &[Val]) {
        let rank = self.ir.shape_of(v).len();
        let map = self.ir.minor_identity(idx.len(), rank);
        let mut operands = vec![v, buf.value];
        operands.extend_from_slice(idx);
        let segments = [1, 1, idx.len() as i32, 0];
        let op = self.ir.build_op(
            "vector.transfer_write",
            self.location(),
            &operands,
            &[],
            &self.vector_transfer_attributes(map, rank, segments),
        );
        self.push(op);
    }

    /// The attributes of a vector transfer of `rank` dims, all in bounds.
    fn vector_transfer_attributes(&self, map: Attribute<'c>, rank: usize, segments: [i32; 4]) -> Vec<(&'static str, Attribute<'c>)> {
        vec![
            ("permutation_map", map),
            ("in_bounds", self.ir.in_bounds(rank).into()),
            ("operandSegmentSizes", DenseI32ArrayAttribute::new(self.ir.context, &segments).into()),
        ]
    }

    /// Converts a compute value (i32/f32) to the storage type.
    pub(super) fn encode_storage(&mut self, v: Val, dtype: DType) -> Val {
        match dtype {
            DType::I32 | DType::F32 => v,
            DType::I8 | DType::I16 => self.trunci(v, Elem::of(dtype)),
            DType::Bf16 => self.truncf(v, Elem::Bf16),
        }
    }

    pub(super) fn decode_storage(&mut self, v: Val, dtype: DType) -> Val {
        match dtype {
            DType::I32 | DType::F32 => v,
            DType::I8 | DType::I16 => self.extsi(v, Elem::I32),
            DType::Bf16 => self.extf(v, Elem::F32),
        }
    }

    pub(super) fn storage_zero(&mut self, dtype: DType) -> Val {
        self.constant(Constant::Zero(dtype))
    }

    fn statement(&mut self, index: usize, stmt: &Stmt, partial: bool) -> Result<(), CompileError> {
        self.stmt = Some((span_location(self.ir.context, &stmt.span), index));
        let r = self.statement_body(stmt, partial);
        self.stmt = None;
        r
    }

    fn statement_body(&mut self, stmt: &Stmt, partial: bool) -> Result<(), CompileError> {
        if let Some(c) = self.contraction(stmt) {
            self.check_mac_fit(stmt, &c)?;
            return self.contract(stmt, c, partial);
        }
        let buf = self
            .buffers
            .get(&stmt.target)
            .cloned()
            .ok_or_else(|| lower_error("target buffer not available on this core", &stmt.span))?;
        if !partial && self.vector_statement(stmt, &buf)? {
            return Ok(());
        }
        let mut ivs = BTreeMap::new();
        let loops = self.open_loops(&stmt.target_dims, &mut ivs);
        let idx: Vec<Val> = buf.dims.iter().map(|d| ivs[d]).collect();
        let ty = crate::ir::scalar_type_of(buf.dtype);
        // A reduction continued across tiles carries the stored partial result as its initial
        // value, so terms are added in index order exactly as the reference adds them.
        if partial && !stmt.accumulate {
            if let Expr::Reduce { op, dims, body, ty } = &stmt.value {
                let old = self.load_scalar(&buf, &idx);
                let old = self.decode_storage(old, buf.dtype);
                let v = self.reduce(*op, dims, body, *ty, old, &ivs, &stmt.span)?;
                let v = self.encode_storage(v, buf.dtype);
                self.store(v, &buf, &idx);
                self.close_loops(loops);
                return Ok(());
            }
        }
        let value = self.expr(&stmt.value, &ivs, &stmt.span)?;
        self.store_combined(stmt, &buf, &idx, value, ty, partial);
        self.close_loops(loops);
        Ok(())
    }

    fn store_combined(&mut self, stmt: &Stmt, buf: &Buffer, idx: &[Val], value: Val, ty: ScalarType, partial: bool) {
        let combined = if stmt.accumulate || partial {
            let old = match self.lanes {
                Some(_) => self.transfer_read(buf, idx, &[VECTOR_LANES]),
                None => self.load_scalar(buf, idx),
            };
            let old = self.decode_storage(old, buf.dtype);
            let op = match (&stmt.value, stmt.accumulate) {
                (Expr::Reduce { op, .. }, false) => *op,
                _ => ReduceOp::Sum,
            };
            self.combine(op, ty, old, value)
        } else {
            value
        };
        let v = self.encode_storage(combined, buf.dtype);
        match self.lanes {
            Some(_) => self.transfer_write(v, buf, idx),
            None => self.store(v, buf, idx),
        }
    }

    /// Elementwise statements whose innermost target dim fits the lanes: the other target dims
    /// loop as usual, the innermost steps by [`VECTOR_LANES`].
    fn vector_statement(&mut self, stmt: &Stmt, buf: &Buffer) -> Result<bool, CompileError> {
        let Some(&d) = stmt.target_dims.last() else { return Ok(false) };
        if buf.axes.is_some() || buf.dims.last() != Some(&d) || !self.vectorizable(&stmt.value, d) {
            return Ok(false);
        }
        let cp = self.checkpoint();
        let outer = &stmt.target_dims[..stmt.target_dims.len() - 1];
        let mut ivs = BTreeMap::new();
        let mut loops = self.open_loops(outer, &mut ivs);
        let (lo, hi, step) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(VECTOR_LANES));
        let lanes_loop = self.open_for(lo, hi, step, &[]);
        ivs.insert(d, lanes_loop.iv());
        loops.push(lanes_loop);
        let idx: Vec<Val> = buf.dims.iter().map(|x| ivs[x]).collect();
        let ty = crate::ir::scalar_type_of(buf.dtype);
        self.lanes = Some(d);
        let value = self.expr(&stmt.value, &ivs, &stmt.span);
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                self.lanes = None;
                return Err(e);
            }
        };
        self.store_combined(stmt, buf, &idx, value, ty, false);
        self.lanes = None;
        self.close_loops(loops);
        Ok(self.vector_accepted(cp, &stmt.span))
    }
}
