//! Lowering: a scheduled design to an MLIR-AIE module.
//!
//! Core bodies use only upstream `arith`, `memref`, `scf` and `vector` plus the aie object FIFO
//! ops. The AIE core has no libm, so transcendentals and division are expanded here into
//! arith-only sequences (see [`MathLowering`] for their semantics and accuracy). Contractions
//! (`sum[K](A[M,K] * B[K,N])`) become `vector.contract` on the target's MAC shape
//! ([`crate::target_rules::mac_shape`]). Elementwise statements and single-dim reductions run on
//! 16-lane vectors when the dim on the lanes is read contiguously (or broadcast) and the target's
//! toolchain takes every vector op they need ([`crate::target_rules`]); everything else is scalar
//! loops.
//!
//! This module writes the module as text in mlir-aie's syntax; [`crate::emit`] hands it to MLIR
//! (melior) to parse, verify and print, so what is written out is always MLIR that parsed.

use crate::check::stack_bytes;
use crate::diag::{CompileError, Diagnostic, Span};
use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use crate::ir::{Affine, Convert, DimId, Expr, Kernel, ScalarType, Stmt, TensorId};
use crate::schedule::{element_view, Core, Design, SequenceOp};
use crate::target_rules::{mac_shape, vector_verdict, AieTarget, MacShape, Verdict, MULF_BF16_OPERANDS, MULF_MIXED_OPERANDS};
use aiec_runtime::DType;
use std::collections::BTreeMap;
use std::fmt::Write;

pub(crate) struct Lowered {
    /// The module in mlir-aie custom syntax, not yet normalized by MLIR's printer.
    pub(crate) text: String,
    /// Operations in the largest core body (for the program-memory estimate).
    pub(crate) max_core_ops: usize,
    /// Statements lowered to scalar code because the target rejects a vector op they need.
    pub(crate) notes: Vec<Diagnostic>,
}

fn lower_error(msg: impl Into<String>, span: &Span) -> CompileError {
    CompileError::Lower(Diagnostic::new(msg, Some(span)))
}

pub(crate) fn lower(kernel: &Kernel, design: &Design) -> Result<Lowered, CompileError> {
    let mut out = String::new();
    let mut max_core_ops = 0;
    let mut notes: Vec<Diagnostic> = Vec::new();
    out.push_str("module {\n");
    writeln!(out, "  aie.device({}) {{", design.device.name).unwrap();
    for t in design.tiles() {
        writeln!(out, "    %tile_{}_{} = aie.tile({}, {})", t.col, t.row, t.col, t.row).unwrap();
    }
    for f in &design.fifos {
        let consumers: Vec<String> = f.consumers.iter().map(|c| format!("%tile_{}_{}", c.col, c.row)).collect();
        writeln!(
            out,
            "    aie.objectfifo @{}(%tile_{}_{}, {{{}}}, {} : i32) : !aie.objectfifo<{}>",
            f.name,
            f.producer.col,
            f.producer.row,
            consumers.join(", "),
            f.depth,
            f.memref()
        )
        .unwrap();
    }
    for l in &design.links {
        let names = |v: &[usize]| v.iter().map(|&i| format!("@{}", design.fifos[i].name)).collect::<Vec<_>>().join(", ");
        let nums = |v: &[u64]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        writeln!(
            out,
            "    aie.objectfifo.link [{}] -> [{}] ([{}] [{}])",
            names(&l.inputs),
            names(&l.outputs),
            nums(&l.src_offsets),
            nums(&l.dst_offsets)
        )
        .unwrap();
    }
    // Locals: one buffer per core, in the core's own tile (mlir-aie assigns its address).
    for core in &design.cores {
        for tensor in kernel.tensors.iter().filter(|t| t.role == Role::Local) {
            let name = local_buffer_name(&tensor.name, core);
            writeln!(
                out,
                "    %{name} = aie.buffer(%tile_{}_{}) {{sym_name = \"{name}\"}} : {}",
                core.tile.col,
                core.tile.row,
                memref_type(&tensor.shape, tensor.dtype)
            )
            .unwrap();
        }
    }
    // The last tile of each repeated part of a joined stream, kept for the statements after the
    // reduction loop.
    for core in &design.cores {
        for part in kept_parts(design, core) {
            let tensor = &kernel.tensors[part];
            let name = kept_buffer_name(&tensor.name, core);
            writeln!(
                out,
                "    %{name} = aie.buffer(%tile_{}_{}) {{sym_name = \"{name}\"}} : {}",
                core.tile.col,
                core.tile.row,
                memref_type(&element_view(kernel, part).shape(), tensor.dtype)
            )
            .unwrap();
        }
    }
    for core in &design.cores {
        let (body, ops, core_notes) = CoreEmitter::new(kernel, design, core).emit()?;
        max_core_ops = max_core_ops.max(ops);
        for n in core_notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        writeln!(
            out,
            "    %core_{}_{} = aie.core(%tile_{}_{}) {{",
            core.tile.col, core.tile.row, core.tile.col, core.tile.row
        )
        .unwrap();
        out.push_str(&body);
        writeln!(out, "      aie.end").unwrap();
        writeln!(out, "    }} {{stack_size = {} : i32}}", stack_bytes(design)).unwrap();
    }
    // Runtime sequence: host tensors as flat memrefs, ins then outs.
    let params: Vec<String> = design
        .args
        .iter()
        .map(|&t| {
            let tensor = &kernel.tensors[t];
            format!("%{}: memref<{}x{}>", tensor.name, tensor.shape.iter().product::<u64>(), tensor.dtype.mlir())
        })
        .collect();
    writeln!(out, "    aie.runtime_sequence({}) {{", params.join(", ")).unwrap();
    for op in &design.sequence {
        match op {
            SequenceOp::Dma(d) => {
                let tensor = &kernel.tensors[design.args[d.arg]];
                let n = |a: &[u64; 4]| a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
                let token = if d.issue_token { ", issue_token = true" } else { "" };
                writeln!(
                    out,
                    "      aiex.npu.dma_memcpy_nd(%{}[0, 0, 0, {}][{}][{}]) {{id = {} : i64{}, metadata = @{}}} : memref<{}x{}>",
                    tensor.name,
                    d.offset,
                    n(&d.sizes),
                    n(&d.strides),
                    d.id,
                    token,
                    design.fifos[d.fifo].name,
                    tensor.shape.iter().product::<u64>(),
                    tensor.dtype.mlir()
                )
                .unwrap();
            }
            SequenceOp::Wait { fifo } => {
                writeln!(out, "      aiex.npu.dma_wait {{symbol = @{}}}", design.fifos[*fifo].name).unwrap();
            }
        }
    }
    writeln!(out, "    }}").unwrap();
    writeln!(out, "  }}").unwrap();
    out.push_str("}\n");
    Ok(Lowered {
        text: out,
        max_core_ops,
        notes,
    })
}

/// A memref visible in the core: its SSA name, MLIR type, element type and the dim of each axis.
#[derive(Clone)]
struct Buffer {
    name: String,
    ty: String,
    dtype: DType,
    dims: Vec<DimId>,
    /// For host tensors accessed with several patterns: per tensor axis, its dim or None (whole axis).
    axes: Option<Vec<Option<DimId>>>,
    /// In a joined FIFO element: the tile's offset along the first axis, and whether the tile
    /// has one axis fewer (it fills one index there).
    joined_at: Option<(u64, bool)>,
}

struct CoreEmitter<'a> {
    kernel: &'a Kernel,
    design: &'a Design,
    core: &'a Core,
    body: Vec<String>,
    consts: BTreeMap<(String, String), String>,
    indent: usize,
    next: usize,
    buffers: BTreeMap<TensorId, Buffer>,
    /// Global tile index (an index value) of each split dim in scope.
    tile_index: BTreeMap<DimId, String>,
    /// While emitting vector code: the dim mapped to vector lanes.
    lanes: Option<DimId>,
    /// Vector ops emitted since the last checkpoint that the target's toolchain rejects.
    rejected: Vec<String>,
    /// Statements that run as scalar code because a vector op they need is rejected.
    notes: Vec<Diagnostic>,
    /// MLIR location of the statement being lowered (`loc("k.tile":12:3)`).
    loc: Option<String>,
    /// Vector values that are `arith.extf` of bf16 vectors.
    bf16_extended: std::collections::BTreeSet<String>,
}

/// Where emission stood, to take back a vector attempt the target cannot compile.
struct Checkpoint {
    body: usize,
    consts: BTreeMap<(String, String), String>,
    next: usize,
    indent: usize,
}

/// Lanes of the vectors elementwise code and reductions use: 16 x 32-bit, the width AIE-ML's
/// vector unit computes f32/i32 at (512-bit registers hold 32 bf16 or 64 int8 for the MACs).
pub(crate) const VECTOR_LANES: u64 = 16;

impl<'a> CoreEmitter<'a> {
    fn new(kernel: &'a Kernel, design: &'a Design, core: &'a Core) -> Self {
        CoreEmitter {
            kernel,
            design,
            core,
            body: vec![],
            consts: BTreeMap::new(),
            indent: 6,
            next: 0,
            buffers: BTreeMap::new(),
            tile_index: BTreeMap::new(),
            lanes: None,
            rejected: Vec::new(),
            notes: Vec::new(),
            loc: None,
            bf16_extended: Default::default(),
        }
    }

    fn checkpoint(&mut self) -> Checkpoint {
        self.rejected.clear();
        Checkpoint {
            body: self.body.len(),
            consts: self.consts.clone(),
            next: self.next,
            indent: self.indent,
        }
    }

    /// After a vector attempt: true if the target takes every op it emitted. Otherwise the
    /// attempt is undone and a note says which op forced scalar code.
    fn vector_accepted(&mut self, cp: Checkpoint, span: &Span) -> bool {
        if self.rejected.is_empty() {
            return true;
        }
        self.body.truncate(cp.body);
        self.consts = cp.consts;
        self.next = cp.next;
        self.indent = cp.indent;
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
    fn check_vector_op(&mut self, op: &str, elem: &str, result: &str) {
        if let Verdict::Rejected(why) = vector_verdict(self.design.device.target, op, elem, result) {
            self.rejected.push(format!("vector `{op}` on {elem} is not accepted ({why})"));
        }
    }

    /// Checks a scalar arith op about to become a vector op: `arith.cmpf ogt, %a, %b : f32`,
    /// `arith.extsi %v : i8 to i32`.
    fn check_vector_arith(&mut self, s: &str) {
        let Some(pos) = s.rfind(" : ") else { return };
        let op = s.split(' ').next().unwrap_or("");
        let types = &s[pos + 3..];
        if types.split(' ').any(|w| w == "index") {
            return;
        }
        let (elem, result) = match types.split_once(" to ") {
            Some((a, b)) => (a.trim(), b.trim()),
            None if op.starts_with("arith.cmp") => (types.trim(), "i1"),
            None => (types.trim(), types.trim()),
        };
        let (op, mut elem, result) = (op.to_string(), elem.to_string(), result.to_string());
        // mlir-aie folds `extf` from bf16 into its multiply: what a vector `mulf` becomes
        // depends on where its operands come from.
        if op == "arith.mulf" {
            let operands: Vec<&str> = s[op.len()..pos].split(',').map(str::trim).collect();
            let extended = operands.iter().filter(|v| self.bf16_extended.contains(**v)).count();
            elem = match extended {
                0 => elem,
                n if n == operands.len() => MULF_BF16_OPERANDS.to_string(),
                _ => MULF_MIXED_OPERANDS.to_string(),
            };
        }
        self.check_vector_op(&op, &elem, &result);
    }

    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    fn line(&mut self, s: String) {
        // Ops a statement produced carry its source location, so a diagnostic from MLIR or
        // mlir-aie's tools about them can be traced to the DSL line. Region openers and closers
        // and the aie ops (which the syntax bridge rewrites) carry none.
        let located = match &self.loc {
            Some(loc) if !s.ends_with('{') && s != "}" && !s.starts_with("aie.") && !s.contains("= aie.") => format!("{s} {loc}"),
            _ => s,
        };
        self.body.push(format!("{}{}", " ".repeat(self.indent), located));
    }

    /// `v = op` on a fresh value. In vector mode, scalar arith ops become their vector forms.
    fn op(&mut self, s: String) -> String {
        let from_bf16 = self.lanes.is_some() && s.starts_with("arith.extf") && s.ends_with(": bf16 to f32");
        let s = if self.lanes.is_some() && s.starts_with("arith.") {
            self.check_vector_arith(&s);
            vector_types(&s)
        } else {
            s
        };
        let v = self.fresh();
        if from_bf16 {
            self.bf16_extended.insert(v.clone());
        }
        self.line(format!("{v} = {s}"));
        v
    }

    fn constant(&mut self, literal: String, ty: &str) -> String {
        let key = (literal.clone(), ty.to_string());
        if let Some(v) = self.consts.get(&key) {
            return v.clone();
        }
        let name = format!("%k{}", self.consts.len());
        self.consts.insert(key, name.clone());
        name
    }
    fn cidx(&mut self, v: u64) -> String {
        self.constant(v.to_string(), "index")
    }
    fn ci32(&mut self, v: i64) -> String {
        match self.lanes {
            Some(_) => self.constant(format!("dense<{}>", v as i32), &format!("vector<{VECTOR_LANES}xi32>")),
            None => self.constant((v as i32).to_string(), "i32"),
        }
    }
    fn cf32(&mut self, v: f32) -> String {
        match self.lanes {
            Some(_) => self.constant(format!("dense<0x{:08X}>", v.to_bits()), &format!("vector<{VECTOR_LANES}xf32>")),
            None => self.constant(format!("0x{:08X}", v.to_bits()), "f32"),
        }
    }

    /// Runs `f` in scalar mode (for values a vector expression broadcasts).
    fn scalar<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.lanes.take();
        let r = f(self);
        self.lanes = saved;
        r
    }

    /// Whether `e` can be computed with dim `d` on vector lanes: every load either reads `d`
    /// contiguously on its innermost axis or does not depend on `d`; no index selects.
    fn vectorizable(&self, e: &Expr, d: DimId) -> bool {
        if !self.kernel.dims[d].tile.is_multiple_of(VECTOR_LANES) {
            return false;
        }
        let mut ok = true;
        e.walk(&mut |x| match x {
            Expr::Select { .. } | Expr::Index { .. } | Expr::ArgReduce { .. } => ok = false,
            Expr::Reduce { dims, .. } if dims.contains(&d) => ok = false,
            Expr::Load { tensor, indices, .. } => {
                let Some(buf) = self.buffers.get(tensor) else {
                    ok = false;
                    return;
                };
                let uses: Vec<usize> = indices.iter().enumerate().filter(|(_, a)| a.dims().any(|x| x == d)).map(|(i, _)| i).collect();
                if uses.is_empty() {
                    return;
                }
                let last_plain = match &buf.axes {
                    Some(_) => uses == [indices.len() - 1] && indices[indices.len() - 1].as_dim() == Some(d),
                    None => buf.dims.last() == Some(&d) && buf.dims.iter().filter(|&&x| x == d).count() == 1,
                };
                if !last_plain {
                    ok = false;
                }
            }
            _ => {}
        });
        ok
    }

    fn emit(mut self) -> Result<(String, usize, Vec<Diagnostic>), CompileError> {
        let kernel = self.kernel;
        let design = self.design;
        // Locals are the core's `aie.buffer`s, declared beside the tiles (`memref.alloca` is not
        // allowed in an aie.core, which is no allocation scope).
        for (t, tensor) in kernel.tensors.iter().enumerate() {
            if tensor.role == Role::Local {
                let ty = memref_type(&tensor.shape, tensor.dtype);
                self.buffers.insert(
                    t,
                    Buffer {
                        name: format!("%{}", local_buffer_name(&tensor.name, self.core)),
                        ty,
                        dtype: tensor.dtype,
                        dims: tensor.local_dims.clone(),
                        axes: None,
                        joined_at: None,
                    },
                );
            }
        }
        // Step loops.
        let steps = design.step_loops.clone();
        let mut closers = 0;
        for lp in &steps {
            let (lo, hi, one) = (self.cidx(0), self.cidx(lp.count), self.cidx(1));
            let iv = self.fresh();
            self.line(format!("scf.for {iv} = {lo} to {hi} step {one} {{"));
            self.indent += 2;
            closers += 1;
            let base = lp.row_coef * self.core.row_index as u64 + lp.col_coef * self.core.col_index as u64;
            let coef = self.cidx(lp.step_coef);
            let scaled = self.op(format!("arith.muli {iv}, {coef} : index"));
            let b = self.cidx(base);
            let ti = self.op(format!("arith.addi {scaled}, {b} : index"));
            self.tile_index.insert(lp.dim, ti);
        }
        let core_fifos = self.core.fifos.clone();
        let uses_reduce = |t: TensorId| -> bool { design.in_reduction_loop(kernel, core_fifos[&t]) };
        // Acquire outputs and the inputs that stay for the whole step.
        let mut step_fifos: Vec<(TensorId, &'static str)> = Vec::new();
        for (&t, _) in self.core.fifos.iter() {
            let role = kernel.tensors[t].role;
            if role == Role::Out {
                step_fifos.push((t, "Produce"));
            }
        }
        for (&t, _) in self.core.fifos.iter() {
            if kernel.tensors[t].role == Role::In && !uses_reduce(t) {
                step_fifos.push((t, "Consume"));
            }
        }
        // A joined FIFO is acquired once for all its tensors.
        let mut seen = std::collections::BTreeSet::new();
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
            let ty = crate::ir::scalar_type_of(kernel.tensors[t].dtype);
            let zero = match ty {
                ScalarType::I32 => self.ci32(0),
                ScalarType::F32 => self.cf32(0.0),
            };
            self.fill(t, &zero);
        }
        let mut first = 0;
        if let Some(ri) = crate::schedule::reduction_stmt(kernel) {
            let stmt = &kernel.stmts[ri];
            let Expr::Reduce { op, .. } = &stmt.value else {
                unreachable!("reduction_stmt returns a reducing statement")
            };
            if !stmt.accumulate {
                let ty = crate::ir::scalar_type_of(kernel.tensors[stmt.target].dtype);
                let init = self.identity(*op, ty);
                self.fill(stmt.target, &init);
            }
            let mut rclose = 0;
            for lp in design.reduce_loops.clone() {
                let (lo, hi, one) = (self.cidx(0), self.cidx(lp.count), self.cidx(1));
                let iv = self.fresh();
                self.line(format!("scf.for {iv} = {lo} to {hi} step {one} {{"));
                self.indent += 2;
                rclose += 1;
                self.tile_index.insert(lp.dim, iv);
            }
            let mut rfifos: Vec<TensorId> = self
                .core
                .fifos
                .keys()
                .copied()
                .filter(|&t| kernel.tensors[t].role == Role::In && uses_reduce(t))
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            rfifos.retain(|t| seen.insert(self.core.fifos[t]));
            for &t in &rfifos {
                self.acquire(t, "Consume");
            }
            for (si, s) in kernel.stmts[..=ri].iter().enumerate() {
                self.statement(s, si == ri)?;
            }
            let kept = kept_parts(design, self.core);
            for &t in &kept {
                self.keep_tile(t);
            }
            for &t in &rfifos {
                self.release(t, "Consume");
            }
            for _ in 0..rclose {
                self.indent -= 2;
                self.line("}".into());
            }
            for &t in &kept {
                let view = element_view(kernel, t);
                let buf = Buffer {
                    name: format!("%{}", kept_buffer_name(&kernel.tensors[t].name, self.core)),
                    ty: memref_type(&view.shape(), kernel.tensors[t].dtype),
                    dtype: kernel.tensors[t].dtype,
                    dims: view.dims(),
                    axes: view.by_tensor_axis.then(|| view.axes.iter().map(|a| a.dim).collect()),
                    joined_at: None,
                };
                self.buffers.insert(t, buf);
            }
            first = ri + 1;
        }
        for stmt in &kernel.stmts[first..] {
            self.statement(stmt, false)?;
        }
        for &(t, port) in step_fifos.iter().rev() {
            self.release(t, port);
        }
        for _ in 0..closers {
            self.indent -= 2;
            self.line("}".into());
        }
        let mut text = String::new();
        for ((lit, ty), name) in &self.consts {
            writeln!(text, "      {name} = arith.constant {lit} : {ty}").unwrap();
        }
        let ops = self.body.len() + self.consts.len();
        for l in &self.body {
            text.push_str(l);
            text.push('\n');
        }
        Ok((text, ops, self.notes))
    }

    /// Acquires the FIFO that carries `t`, and with it every tensor joined into its element.
    fn acquire(&mut self, t: TensorId, port: &str) {
        let f = &self.design.fifos[self.core.fifos[&t]];
        let (name, ty) = (f.name.clone(), f.memref());
        let sv = self.op(format!("aie.objectfifo.acquire @{name}({port}, 1) : !aie.objectfifosubview<{ty}>"));
        let e = self.op(format!("aie.objectfifo.subview.access {sv}[0] : !aie.objectfifosubview<{ty}> -> {ty}"));
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
                    name: e.clone(),
                    ty: ty.clone(),
                    dtype: self.kernel.tensors[t].dtype,
                    dims: view.dims(),
                    axes,
                    joined_at,
                },
            );
        }
    }

    /// Copies the tile of `t` from its joined FIFO element to the core's kept buffer: the tile
    /// arrives with every reduction tile, and the statements after the reduction loop read it.
    fn keep_tile(&mut self, t: TensorId) {
        let buf = self.buffers[&t].clone();
        let view = element_view(self.kernel, t);
        let shape = view.shape();
        let kept_ty = memref_type(&shape, buf.dtype);
        let kept = format!("%{}", kept_buffer_name(&self.kernel.tensors[t].name, self.core));
        let mut ivs = Vec::new();
        for &n in &shape {
            let (lo, hi, one) = (self.cidx(0), self.cidx(n), self.cidx(1));
            let iv = self.fresh();
            self.line(format!("scf.for {iv} = {lo} to {hi} step {one} {{"));
            self.indent += 2;
            ivs.push(iv);
        }
        let idx = self.joined_indices(&buf, ivs.clone());
        let v = self.op(format!("memref.load {}[{}] : {}", buf.name, idx.join(", "), buf.ty));
        self.line(format!("memref.store {v}, {kept}[{}] : {kept_ty}", ivs.join(", ")));
        for _ in &shape {
            self.indent -= 2;
            self.line("}".into());
        }
    }

    /// The indices into a buffer's memref of its tile's `idx` (shifted into a joined element).
    fn joined_indices(&mut self, buf: &Buffer, mut idx: Vec<String>) -> Vec<String> {
        match buf.joined_at {
            None | Some((0, false)) => idx,
            Some((at, true)) => {
                idx.insert(0, self.cidx(at));
                idx
            }
            Some((at, false)) => {
                let off = self.cidx(at);
                idx[0] = self.op(format!("arith.addi {}, {off} : index", idx[0]));
                idx
            }
        }
    }

    fn release(&mut self, t: TensorId, port: &str) {
        let name = self.design.fifos[self.core.fifos[&t]].name.clone();
        self.line(format!("aie.objectfifo.release @{name}({port}, 1)"));
    }

    fn identity(&mut self, op: ReduceOp, ty: ScalarType) -> String {
        match (op, ty) {
            (ReduceOp::Sum, ScalarType::I32) => self.ci32(0),
            (ReduceOp::Sum, ScalarType::F32) => self.cf32(0.0),
            (ReduceOp::Max, ScalarType::I32) => self.ci32(i32::MIN as i64),
            (ReduceOp::Max, ScalarType::F32) => self.cf32(f32::NEG_INFINITY),
            (ReduceOp::Min, ScalarType::I32) => self.ci32(i32::MAX as i64),
            (ReduceOp::Min, ScalarType::F32) => self.cf32(f32::INFINITY),
        }
    }

    /// Opens one scf.for per dim over its tile extent; returns the induction variables.
    fn open_loops(&mut self, dims: &[DimId]) -> BTreeMap<DimId, String> {
        let mut ivs = BTreeMap::new();
        for &d in dims {
            let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
            let iv = self.fresh();
            self.line(format!("scf.for {iv} = {lo} to {hi} step {one} {{"));
            self.indent += 2;
            ivs.insert(d, iv);
        }
        ivs
    }

    fn close_loops(&mut self, n: usize) {
        for _ in 0..n {
            self.indent -= 2;
            self.line("}".into());
        }
    }

    /// Fills a target buffer with a compute-typed scalar.
    fn fill(&mut self, t: TensorId, value: &str) {
        let buf = self.buffers[&t].clone();
        let ivs = self.open_loops(&buf.dims);
        let v = self.encode_storage(value, buf.dtype);
        let idx: Vec<String> = buf.dims.iter().map(|d| ivs[d].clone()).collect();
        self.line(format!("memref.store {v}, {}[{}] : {}", buf.name, idx.join(", "), buf.ty));
        self.close_loops(buf.dims.len());
    }

    /// Converts a compute value (i32/f32) to the storage type.
    fn encode_storage(&mut self, v: &str, dtype: DType) -> String {
        match dtype {
            DType::I32 | DType::F32 => v.to_string(),
            DType::I8 | DType::I16 => self.op(format!("arith.trunci {v} : i32 to {}", dtype.mlir())),
            DType::Bf16 => self.op(format!("arith.truncf {v} : f32 to bf16")),
        }
    }

    fn decode_storage(&mut self, v: &str, dtype: DType) -> String {
        match dtype {
            DType::I32 | DType::F32 => v.to_string(),
            DType::I8 | DType::I16 => self.op(format!("arith.extsi {v} : {} to i32", dtype.mlir())),
            DType::Bf16 => self.op(format!("arith.extf {v} : bf16 to f32")),
        }
    }

    fn statement(&mut self, stmt: &Stmt, partial: bool) -> Result<(), CompileError> {
        self.loc = Some(mlir_loc(&stmt.span));
        let r = self.statement_body(stmt, partial);
        self.loc = None;
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
        let ivs = self.open_loops(&stmt.target_dims);
        let idx: Vec<String> = buf.dims.iter().map(|d| ivs[d].clone()).collect();
        let ty = crate::ir::scalar_type_of(buf.dtype);
        // A reduction continued across tiles carries the stored partial result as its initial
        // value, so terms are added in index order exactly as the reference adds them.
        if partial && !stmt.accumulate {
            if let Expr::Reduce { op, dims, body, ty } = &stmt.value {
                let old = self.op(format!("memref.load {}[{}] : {}", buf.name, idx.join(", "), buf.ty));
                let old = self.decode_storage(&old, buf.dtype);
                let v = self.reduce(*op, dims, body, *ty, old, &ivs, &stmt.span)?;
                let v = self.encode_storage(&v, buf.dtype);
                self.line(format!("memref.store {v}, {}[{}] : {}", buf.name, idx.join(", "), buf.ty));
                self.close_loops(stmt.target_dims.len());
                return Ok(());
            }
        }
        let value = self.expr(&stmt.value, &ivs, &stmt.span)?;
        self.store_combined(stmt, &buf, &idx, value, ty, partial);
        self.close_loops(stmt.target_dims.len());
        Ok(())
    }

    fn store_combined(&mut self, stmt: &Stmt, buf: &Buffer, idx: &[String], value: String, ty: ScalarType, partial: bool) {
        let vec_ty = |dt: DType| format!("vector<{VECTOR_LANES}x{}>", dt.mlir());
        let combined = if stmt.accumulate || partial {
            let old = match self.lanes {
                Some(_) => {
                    let pad = self.storage_zero(buf.dtype);
                    self.op(format!(
                        "vector.transfer_read {}[{}], {pad} {{in_bounds = [true]}} : {}, {}",
                        buf.name,
                        idx.join(", "),
                        buf.ty,
                        vec_ty(buf.dtype)
                    ))
                }
                None => self.op(format!("memref.load {}[{}] : {}", buf.name, idx.join(", "), buf.ty)),
            };
            let old = self.decode_storage(&old, buf.dtype);
            let op = match (&stmt.value, stmt.accumulate) {
                (Expr::Reduce { op, .. }, false) => *op,
                _ => ReduceOp::Sum,
            };
            self.combine(op, ty, &old, &value)
        } else {
            value
        };
        let v = self.encode_storage(&combined, buf.dtype);
        match self.lanes {
            Some(_) => self.line(format!(
                "vector.transfer_write {v}, {}[{}] {{in_bounds = [true]}} : {}, {}",
                buf.name,
                idx.join(", "),
                vec_ty(buf.dtype),
                buf.ty
            )),
            None => self.line(format!("memref.store {v}, {}[{}] : {}", buf.name, idx.join(", "), buf.ty)),
        }
    }

    fn storage_zero(&mut self, dtype: DType) -> String {
        if dtype.is_float() {
            self.constant("0.0".into(), dtype.mlir())
        } else {
            self.constant("0".into(), dtype.mlir())
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
        let mut ivs = self.open_loops(outer);
        let (lo, hi, step) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(VECTOR_LANES));
        let iv = self.fresh();
        self.line(format!("scf.for {iv} = {lo} to {hi} step {step} {{"));
        self.indent += 2;
        ivs.insert(d, iv);
        let idx: Vec<String> = buf.dims.iter().map(|x| ivs[x].clone()).collect();
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
        self.close_loops(outer.len() + 1);
        Ok(self.vector_accepted(cp, &stmt.span))
    }

    fn combine(&mut self, op: ReduceOp, ty: ScalarType, a: &str, b: &str) -> String {
        let (mnemonic, t) = match (op, ty) {
            (ReduceOp::Sum, ScalarType::I32) => ("arith.addi", "i32"),
            (ReduceOp::Sum, ScalarType::F32) => ("arith.addf", "f32"),
            (ReduceOp::Max, ScalarType::I32) => ("arith.maxsi", "i32"),
            (ReduceOp::Max, ScalarType::F32) => ("arith.maximumf", "f32"),
            (ReduceOp::Min, ScalarType::I32) => ("arith.minsi", "i32"),
            (ReduceOp::Min, ScalarType::F32) => ("arith.minimumf", "f32"),
        };
        self.op(format!("{mnemonic} {a}, {b} : {t}"))
    }

    /// Index value of an affine expression of global indices.
    fn affine_index(&mut self, a: &Affine, ivs: &BTreeMap<DimId, String>) -> String {
        let mut acc = self.cidx(a.constant.max(0) as u64);
        for &(coef, d) in &a.terms {
            let local = ivs.get(&d).cloned().unwrap_or_else(|| self.cidx(0));
            let global = match self.tile_index.get(&d).cloned() {
                Some(ti) => {
                    let tile = self.cidx(self.kernel.dims[d].tile);
                    let base = self.op(format!("arith.muli {ti}, {tile} : index"));
                    self.op(format!("arith.addi {base}, {local} : index"))
                }
                None => local,
            };
            let c = self.cidx(coef.unsigned_abs());
            let term = self.op(format!("arith.muli {global}, {c} : index"));
            acc = if coef >= 0 {
                self.op(format!("arith.addi {acc}, {term} : index"))
            } else {
                self.op(format!("arith.subi {acc}, {term} : index"))
            };
        }
        for (coef, q) in &a.divmods {
            // The dividend is never negative (type checking), so unsigned division is floor
            // division; a power of two is a shift or a mask.
            let v = self.affine_index(&q.inner, ivs);
            let by = q.by as u64;
            let r = match (q.op, by.is_power_of_two()) {
                (crate::ir::DivMod::Div, true) => {
                    let k = self.cidx(by.trailing_zeros() as u64);
                    self.op(format!("arith.shrui {v}, {k} : index"))
                }
                (crate::ir::DivMod::Mod, true) => {
                    let m = self.cidx(by - 1);
                    self.op(format!("arith.andi {v}, {m} : index"))
                }
                (crate::ir::DivMod::Div, false) => {
                    let k = self.cidx(by);
                    self.op(format!("arith.divui {v}, {k} : index"))
                }
                (crate::ir::DivMod::Mod, false) => {
                    let k = self.cidx(by);
                    self.op(format!("arith.remui {v}, {k} : index"))
                }
            };
            let c = self.cidx(coef.unsigned_abs());
            let term = self.op(format!("arith.muli {r}, {c} : index"));
            acc = if *coef >= 0 {
                self.op(format!("arith.addi {acc}, {term} : index"))
            } else {
                self.op(format!("arith.subi {acc}, {term} : index"))
            };
        }
        if a.constant < 0 {
            let c = self.cidx(a.constant.unsigned_abs());
            acc = self.op(format!("arith.subi {acc}, {c} : index"));
        }
        acc
    }

    fn expr(&mut self, e: &Expr, ivs: &BTreeMap<DimId, String>, span: &Span) -> Result<String, CompileError> {
        Ok(match e {
            Expr::Const { value, ty } => match ty {
                ScalarType::I32 => self.ci32(*value as i64),
                ScalarType::F32 => self.cf32(*value as f32),
            },
            Expr::Load { tensor, indices, .. } => self.load(*tensor, indices, None, ivs, span)?,
            Expr::Gather {
                tensor, indices, axis, index, ..
            } => {
                // The index, clamped into the axis (the whole axis is in the core's memory).
                let extent = self.kernel.tensors[*tensor].shape[*axis] as i64;
                let at = self.scalar(|e| -> Result<String, CompileError> {
                    let v = e.expr(index, ivs, span)?;
                    let (lo, hi) = (e.ci32(0), e.ci32(extent - 1));
                    let c1 = e.op(format!("arith.maxsi {v}, {lo} : i32"));
                    let c2 = e.op(format!("arith.minsi {c1}, {hi} : i32"));
                    Ok(e.op(format!("arith.index_cast {c2} : i32 to index")))
                })?;
                self.load(*tensor, indices, Some((*axis, at)), ivs, span)?
            }
            Expr::Unary { op, arg, ty } => {
                let a = self.expr(arg, ivs, span)?;
                self.unary(*op, *ty, &a, span)?
            }
            Expr::Binary { op, lhs, rhs, ty } => {
                let a = self.expr(lhs, ivs, span)?;
                let b = self.expr(rhs, ivs, span)?;
                match (op, ty) {
                    (BinaryOp::Add, ScalarType::I32) => self.op(format!("arith.addi {a}, {b} : i32")),
                    (BinaryOp::Sub, ScalarType::I32) => self.op(format!("arith.subi {a}, {b} : i32")),
                    (BinaryOp::Mul, ScalarType::I32) => self.op(format!("arith.muli {a}, {b} : i32")),
                    (BinaryOp::Max, ScalarType::I32) => self.op(format!("arith.maxsi {a}, {b} : i32")),
                    (BinaryOp::Min, ScalarType::I32) => self.op(format!("arith.minsi {a}, {b} : i32")),
                    (BinaryOp::Div, ScalarType::I32) => {
                        return Err(lower_error(
                            "integer division is not supported on AIE-ML cores; use srs<..>(x, shift) for powers of two",
                            span,
                        ))
                    }
                    (BinaryOp::Add, ScalarType::F32) => self.op(format!("arith.addf {a}, {b} : f32")),
                    (BinaryOp::Sub, ScalarType::F32) => self.op(format!("arith.subf {a}, {b} : f32")),
                    (BinaryOp::Mul, ScalarType::F32) => self.op(format!("arith.mulf {a}, {b} : f32")),
                    (BinaryOp::Max, ScalarType::F32) => self.op(format!("arith.maximumf {a}, {b} : f32")),
                    (BinaryOp::Min, ScalarType::F32) => self.op(format!("arith.minimumf {a}, {b} : f32")),
                    (BinaryOp::Div, ScalarType::F32) => MathLowering::div(self, &a, &b),
                }
            }
            Expr::Reduce { op, dims, body, ty } if self.lanes.is_none() && dims.len() == 1 && self.vectorizable(body, dims[0]) => {
                let cp = self.checkpoint();
                let v = self.vector_reduce(*op, dims[0], body, *ty, ivs, span)?;
                if self.vector_accepted(cp, span) {
                    v
                } else {
                    let init = self.identity(*op, *ty);
                    self.reduce(*op, dims, body, *ty, init, ivs, span)?
                }
            }
            Expr::Reduce { op, dims, body, ty } => {
                let init = self.identity(*op, *ty);
                self.reduce(*op, dims, body, *ty, init, ivs, span)?
            }
            Expr::Convert { to, kind, arg, .. } => {
                let a = self.expr(arg, ivs, span)?;
                self.convert(*to, kind, arg.ty(), &a)
            }
            Expr::Select {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ty,
            } => self.select(lhs, *cmp, rhs, then, otherwise, *ty, ivs, span)?,
            Expr::ValueSelect {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ty,
            } => {
                let l = self.expr(lhs, ivs, span)?;
                let r = self.expr(rhs, ivs, span)?;
                let c = self.compare(*cmp, lhs.ty(), &l, &r);
                let a = self.expr(then, ivs, span)?;
                let b = self.expr(otherwise, ivs, span)?;
                let t = if *ty == ScalarType::I32 { "i32" } else { "f32" };
                self.op(format!("arith.select {c}, {a}, {b} : {t}"))
            }
            Expr::Index { dim } => {
                let i = self.affine_index(&Affine::dim(*dim), ivs);
                self.op(format!("arith.index_cast {i} : index to i32"))
            }
            Expr::ArgReduce { max, dim, body } => self.arg_reduce(*max, *dim, body, ivs, span)?,
        })
    }

    /// A load from a tensor's buffer at `indices` (a gather passes the value for its axis in
    /// `dynamic`); on vector lanes a contiguous read along the lane dim, else a broadcast scalar.
    fn load(
        &mut self,
        tensor: TensorId,
        indices: &[Affine],
        dynamic: Option<(usize, String)>,
        ivs: &BTreeMap<DimId, String>,
        span: &Span,
    ) -> Result<String, CompileError> {
        let buf = self
            .buffers
            .get(&tensor)
            .cloned()
            .ok_or_else(|| lower_error(format!("{} is not available on this core", self.kernel.tensors[tensor].name), span))?;
        let idx: Vec<String> = match &buf.axes {
            Some(axes) => {
                let mut idx = Vec::new();
                for (axis, d) in axes.iter().enumerate() {
                    idx.push(match d {
                        Some(d) => ivs.get(d).cloned().unwrap_or_else(|| self.cidx(0)),
                        None => match &dynamic {
                            Some((a, at)) if *a == axis => at.clone(),
                            _ => self.affine_index(&indices[axis], ivs),
                        },
                    });
                }
                idx
            }
            None => buf.dims.iter().map(|d| ivs.get(d).cloned().unwrap_or_else(|| self.cidx(0))).collect(),
        };
        let idx = self.joined_indices(&buf, idx);
        let lanes = self.lanes;
        Ok({
            let along = lanes.map(|d| indices.iter().any(|a| a.dims().any(|x| x == d))).unwrap_or(false);
            if along {
                let pad = self.storage_zero(buf.dtype);
                let vty = format!("vector<{VECTOR_LANES}x{}>", buf.dtype.mlir());
                let v = self.op(format!(
                    "vector.transfer_read {}[{}], {pad} {{in_bounds = [true]}} : {}, {vty}",
                    buf.name,
                    idx.join(", "),
                    buf.ty
                ));
                self.decode_storage(&v, buf.dtype)
            } else {
                let s = self.scalar(|e| {
                    let v = e.op(format!("memref.load {}[{}] : {}", buf.name, idx.join(", "), buf.ty));
                    e.decode_storage(&v, buf.dtype)
                });
                match lanes {
                    Some(_) => {
                        let t = if buf.dtype.is_float() { "f32" } else { "i32" };
                        let v = self.fresh();
                        self.line(format!("{v} = vector.broadcast {s} : {t} to vector<{VECTOR_LANES}x{t}>"));
                        v
                    }
                    None => s,
                }
            }
        })
    }

    /// `l cmp r` as an i1: ordered float predicates (`!=` unordered, true on NaN), signed ints.
    fn compare(&mut self, cmp: CmpOp, ty: ScalarType, l: &str, r: &str) -> String {
        let (op, pred, t) = match (ty, cmp) {
            (ScalarType::F32, CmpOp::Lt) => ("cmpf", "olt", "f32"),
            (ScalarType::F32, CmpOp::Le) => ("cmpf", "ole", "f32"),
            (ScalarType::F32, CmpOp::Gt) => ("cmpf", "ogt", "f32"),
            (ScalarType::F32, CmpOp::Ge) => ("cmpf", "oge", "f32"),
            (ScalarType::F32, CmpOp::Eq) => ("cmpf", "oeq", "f32"),
            (ScalarType::F32, CmpOp::Ne) => ("cmpf", "une", "f32"),
            (ScalarType::I32, CmpOp::Lt) => ("cmpi", "slt", "i32"),
            (ScalarType::I32, CmpOp::Le) => ("cmpi", "sle", "i32"),
            (ScalarType::I32, CmpOp::Gt) => ("cmpi", "sgt", "i32"),
            (ScalarType::I32, CmpOp::Ge) => ("cmpi", "sge", "i32"),
            (ScalarType::I32, CmpOp::Eq) => ("cmpi", "eq", "i32"),
            (ScalarType::I32, CmpOp::Ne) => ("cmpi", "ne", "i32"),
        };
        self.op(format!("arith.{op} {pred}, {l}, {r} : {t}"))
    }

    /// `argmax|argmin[d](body)` on scalars: one loop over the (unsplit) dim carrying the best
    /// value and its index; a value replaces the best only when strictly better, so the first
    /// of equal values wins and NaN never does.
    fn arg_reduce(&mut self, max: bool, d: DimId, body: &Expr, ivs: &BTreeMap<DimId, String>, span: &Span) -> Result<String, CompileError> {
        let float = body.ty() == ScalarType::F32;
        let t = if float { "f32" } else { "i32" };
        let init = match (float, max) {
            (true, true) => self.cf32(f32::NEG_INFINITY),
            (true, false) => self.cf32(f32::INFINITY),
            (false, true) => self.ci32(i32::MIN as i64),
            (false, false) => self.ci32(i32::MAX as i64),
        };
        let zero = self.ci32(0);
        let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
        let (iv, best, best_i, res) = (self.fresh(), self.fresh(), self.fresh(), self.fresh());
        self.line(format!(
            "{res}:2 = scf.for {iv} = {lo} to {hi} step {one} iter_args({best} = {init}, {best_i} = {zero}) -> ({t}, i32) {{"
        ));
        self.indent += 2;
        let mut ivs2 = ivs.clone();
        ivs2.insert(d, iv);
        let v = self.expr(body, &ivs2, span)?;
        let cmp = if max { CmpOp::Gt } else { CmpOp::Lt };
        let better = self.compare(cmp, body.ty(), &v, &best);
        let gi = self.affine_index(&Affine::dim(d), &ivs2);
        let gi = self.op(format!("arith.index_cast {gi} : index to i32"));
        let nb = self.op(format!("arith.select {better}, {v}, {best} : {t}"));
        let ni = self.op(format!("arith.select {better}, {gi}, {best_i} : i32"));
        self.line(format!("scf.yield {nb}, {ni} : {t}, i32"));
        self.indent -= 2;
        self.line("}".into());
        Ok(format!("{res}#1"))
    }

    /// A reduction along `d` on vector lanes: lane-wise partial results, then one horizontal
    /// `vector.reduction` (float sums are therefore added in a different order than one by one).
    fn vector_reduce(
        &mut self,
        op: ReduceOp,
        d: DimId,
        body: &Expr,
        ty: ScalarType,
        ivs: &BTreeMap<DimId, String>,
        span: &Span,
    ) -> Result<String, CompileError> {
        let t = if ty == ScalarType::I32 { "i32" } else { "f32" };
        let vty = format!("vector<{VECTOR_LANES}x{t}>");
        self.lanes = Some(d);
        let init = self.identity(op, ty);
        let (lo, hi, step) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(VECTOR_LANES));
        let (iv, carried, res) = (self.fresh(), self.fresh(), self.fresh());
        self.line(format!(
            "{res} = scf.for {iv} = {lo} to {hi} step {step} iter_args({carried} = {init}) -> ({vty}) {{"
        ));
        self.indent += 2;
        let mut ivs2 = ivs.clone();
        ivs2.insert(d, iv);
        let v = match self.expr(body, &ivs2, span) {
            Ok(v) => v,
            Err(e) => {
                self.lanes = None;
                return Err(e);
            }
        };
        let next = self.combine(op, ty, &carried, &v);
        self.line(format!("scf.yield {next} : {vty}"));
        self.indent -= 2;
        self.line("}".into());
        self.lanes = None;
        let kind = match (op, ty) {
            (ReduceOp::Sum, _) => "add",
            (ReduceOp::Max, ScalarType::F32) => "maximumf",
            (ReduceOp::Min, ScalarType::F32) => "minimumf",
            (ReduceOp::Max, ScalarType::I32) => "maxsi",
            (ReduceOp::Min, ScalarType::I32) => "minsi",
        };
        self.check_vector_op(&format!("vector.reduction <{kind}>"), t, t);
        let out = self.fresh();
        self.line(format!("{out} = vector.reduction <{kind}>, {res} : {vty} into {t}"));
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &mut self,
        op: ReduceOp,
        dims: &[DimId],
        body: &Expr,
        ty: ScalarType,
        init: String,
        ivs: &BTreeMap<DimId, String>,
        span: &Span,
    ) -> Result<String, CompileError> {
        let scalar_t = if ty == ScalarType::I32 { "i32" } else { "f32" };
        let tstr = match self.lanes {
            Some(_) => format!("vector<{VECTOR_LANES}x{scalar_t}>"),
            None => scalar_t.to_string(),
        };
        // Nested loops carrying the accumulator.
        let mut ivs2 = ivs.clone();
        let mut results = Vec::new();
        let mut acc = init;
        for &d in dims {
            let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
            let iv = self.fresh();
            let carried = self.fresh();
            let res = self.fresh();
            self.line(format!(
                "{res} = scf.for {iv} = {lo} to {hi} step {one} iter_args({carried} = {acc}) -> ({tstr}) {{"
            ));
            self.indent += 2;
            ivs2.insert(d, iv);
            results.push(res);
            acc = carried;
        }
        let v = self.expr(body, &ivs2, span)?;
        let mut next = self.combine(op, ty, &acc, &v);
        for res in results.iter().rev() {
            self.line(format!("scf.yield {next} : {tstr}"));
            self.indent -= 2;
            self.line("}".into());
            next = res.clone();
        }
        Ok(next)
    }

    #[allow(clippy::too_many_arguments)]
    fn select(
        &mut self,
        lhs: &Affine,
        cmp: CmpOp,
        rhs: &Affine,
        then: &Expr,
        otherwise: &Expr,
        ty: ScalarType,
        ivs: &BTreeMap<DimId, String>,
        span: &Span,
    ) -> Result<String, CompileError> {
        let l = self.affine_index(lhs, ivs);
        let r = self.affine_index(rhs, ivs);
        let pred = match cmp {
            CmpOp::Lt => "slt",
            CmpOp::Le => "sle",
            CmpOp::Gt => "sgt",
            CmpOp::Ge => "sge",
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
        };
        let c = self.op(format!("arith.cmpi {pred}, {l}, {r} : index"));
        let a = self.expr(then, ivs, span)?;
        let b = self.expr(otherwise, ivs, span)?;
        let t = if ty == ScalarType::I32 { "i32" } else { "f32" };
        Ok(self.op(format!("arith.select {c}, {a}, {b} : {t}")))
    }

    fn convert(&mut self, to: DType, kind: &Convert, from: ScalarType, a: &str) -> String {
        match (kind, from, to) {
            (Convert::Srs(shift), ScalarType::I32, _) => {
                let mut v = a.to_string();
                if *shift > 0 {
                    let half = self.ci32(1i64 << (shift - 1));
                    let s = self.ci32(*shift as i64);
                    let r = self.op(format!("arith.addi {v}, {half} : i32"));
                    v = self.op(format!("arith.shrsi {r}, {s} : i32"));
                }
                self.saturate(&v, to)
            }
            (Convert::Cast, ScalarType::I32, DType::Bf16 | DType::F32) => {
                let f = self.op(format!("arith.sitofp {a} : i32 to f32"));
                if to == DType::Bf16 {
                    self.round_bf16(&f)
                } else {
                    f
                }
            }
            (Convert::Cast, ScalarType::I32, _) => self.saturate(a, to),
            (Convert::Cast, ScalarType::F32, DType::Bf16) => self.round_bf16(a),
            (Convert::Cast, ScalarType::F32, DType::F32) => a.to_string(),
            (Convert::Cast, ScalarType::F32, _) => {
                let (lo, hi) = int_range(to);
                let (flo, fhi) = (self.cf32(lo as f32), self.cf32(hi as f32));
                let c1 = self.op(format!("arith.maximumf {a}, {flo} : f32"));
                let c2 = self.op(format!("arith.minimumf {c1}, {fhi} : f32"));
                self.op(format!("arith.fptosi {c2} : f32 to i32"))
            }
            (Convert::Srs(_), ScalarType::F32, _) => a.to_string(),
        }
    }

    fn saturate(&mut self, v: &str, to: DType) -> String {
        if to == DType::I32 {
            return v.to_string();
        }
        let (lo, hi) = int_range(to);
        let (clo, chi) = (self.ci32(lo), self.ci32(hi));
        let a = self.op(format!("arith.maxsi {v}, {clo} : i32"));
        self.op(format!("arith.minsi {a}, {chi} : i32"))
    }

    fn round_bf16(&mut self, v: &str) -> String {
        let t = self.op(format!("arith.truncf {v} : f32 to bf16"));
        self.op(format!("arith.extf {t} : bf16 to f32"))
    }

    fn unary(&mut self, op: UnaryOp, ty: ScalarType, a: &str, span: &Span) -> Result<String, CompileError> {
        if ty == ScalarType::I32 {
            return match op {
                UnaryOp::Neg => {
                    let z = self.ci32(0);
                    Ok(self.op(format!("arith.subi {z}, {a} : i32")))
                }
                UnaryOp::Abs => {
                    let z = self.ci32(0);
                    let n = self.op(format!("arith.subi {z}, {a} : i32"));
                    Ok(self.op(format!("arith.maxsi {a}, {n} : i32")))
                }
                _ => Err(lower_error(format!("{op:?} needs a floating-point argument; cast<f32>(...) it first"), span)),
            };
        }
        Ok(match op {
            UnaryOp::Neg => self.op(format!("arith.negf {a} : f32")),
            UnaryOp::Abs => MathLowering::abs(self, a),
            UnaryOp::Exp => MathLowering::exp(self, a),
            UnaryOp::Tanh => MathLowering::tanh(self, a),
            UnaryOp::Rsqrt => MathLowering::rsqrt(self, a),
            UnaryOp::Sqrt => MathLowering::sqrt(self, a),
            UnaryOp::Recip => MathLowering::recip(self, a),
            UnaryOp::Ln => MathLowering::ln(self, a),
            UnaryOp::Floor => MathLowering::floor(self, a),
            UnaryOp::Round => MathLowering::round(self, a),
            UnaryOp::Sigmoid => return Err(lower_error("sigmoid reached the lowering (type checking rewrites it)", span)),
            UnaryOp::Log10 => {
                let l = MathLowering::ln(self, a);
                let k = self.cf32(std::f32::consts::LOG10_E);
                self.op(format!("arith.mulf {l}, {k} : f32"))
            }
        })
    }

    /// Recognizes `T[m, n] (+)= sum[k](A[m, k] * B[k, n])` on buffers whose axes are exactly those
    /// dims and whose extents are multiples of the MAC shape.
    fn contraction(&self, stmt: &Stmt) -> Option<Contraction> {
        let Expr::Reduce {
            op: ReduceOp::Sum, dims, body, ..
        } = &stmt.value
        else {
            return None;
        };
        let [k] = dims.as_slice() else { return None };
        let Expr::Binary {
            op: BinaryOp::Mul, lhs, rhs, ..
        } = body.as_ref()
        else {
            return None;
        };
        let (Expr::Load { tensor: a, .. }, Expr::Load { tensor: b, .. }) = (lhs.as_ref(), rhs.as_ref()) else {
            return None;
        };
        // Leading dims of tile 1 (a batch, e.g. attention heads) index the same element of all
        // three buffers; the product runs on the trailing two.
        let [batch @ .., m, n] = stmt.target_dims.as_slice() else { return None };
        if batch.iter().any(|&d| self.kernel.dims[d].tile != 1) {
            return None;
        }
        let with_batch = |last: [DimId; 2]| batch.iter().copied().chain(last).collect::<Vec<DimId>>();
        let (ba, bb, bc) = (self.buffers.get(a)?, self.buffers.get(b)?, self.buffers.get(&stmt.target)?);
        if ba.axes.is_some()
            || bb.axes.is_some()
            || ba.dims != with_batch([*m, *k])
            || bb.dims != with_batch([*k, *n])
            || bc.dims != with_batch([*m, *n])
            || ba.dtype != bb.dtype
        {
            return None;
        }
        let target = self.design.device.target;
        let MacShape { m: r, k: s, n: t } = mac_shape(target, ba.dtype)?;
        let acc = match ba.dtype {
            DType::Bf16 => DType::F32,
            _ => DType::I32,
        };
        if !(bc.dtype == acc || (acc == DType::F32 && bc.dtype == DType::Bf16)) {
            return None;
        }
        let d = &self.kernel.dims;
        let fits = d[*m].tile.is_multiple_of(r) && d[*k].tile.is_multiple_of(s) && d[*n].tile.is_multiple_of(t);
        Some(Contraction {
            a: *a,
            b: *b,
            batch: batch.len(),
            m: *m,
            n: *n,
            k: *k,
            shape: (r, s, t),
            acc,
            fits,
        })
    }

    /// A matrix product the target's MAC cannot take is an error, not a silent scalar loop
    /// (which would run orders of magnitude slower on the core).
    fn check_mac_fit(&self, stmt: &Stmt, c: &Contraction) -> Result<(), CompileError> {
        if c.fits {
            return Ok(());
        }
        let d = &self.kernel.dims;
        let (r, s, t) = c.shape;
        let dtype = self.buffers[&c.a].dtype;
        let target = self.design.device.target;
        let mut msg = format!(
            "this {} matrix product does not fit the {target} MAC shape {r}x{s}x{t} ({}, {}, {}): tiles {} = {}, {} = {}, {} = {} must be multiples of {r}, {s}, {t}",
            dtype.mlir(),
            d[c.m].name,
            d[c.k].name,
            d[c.n].name,
            d[c.m].name,
            d[c.m].tile,
            d[c.k].name,
            d[c.k].tile,
            d[c.n].name,
            d[c.n].tile
        );
        let shapes: Vec<String> = AieTarget::ALL
            .iter()
            .filter_map(|&tg| mac_shape(tg, dtype).map(|m| format!("{tg} {}x{}x{}", m.m, m.k, m.n)))
            .collect();
        msg.push_str(&format!(" (MAC shapes for {}: {})", dtype.mlir(), shapes.join(", ")));
        Err(CompileError::Target(Diagnostic::new(msg, Some(&stmt.span)).note(format!(
            "mlir-aie converts `vector.contract` to the {target} MAC only on these shapes; anything else fails its convert-vector-to-aievec step"
        ))))
    }

    fn contract(&mut self, stmt: &Stmt, c: Contraction, partial: bool) -> Result<(), CompileError> {
        let (ba, bb, bc) = (self.buffers[&c.a].clone(), self.buffers[&c.b].clone(), self.buffers[&stmt.target].clone());
        let (r, s, t) = c.shape;
        let (ine, acce) = (ba.dtype.mlir(), c.acc.mlir());
        let (va_ty, vb_ty, vc_ty) = (
            format!("vector<{r}x{s}x{ine}>"),
            format!("vector<{s}x{t}x{ine}>"),
            format!("vector<{r}x{t}x{acce}>"),
        );
        let (wa_ty, wb_ty) = (format!("vector<{r}x{s}x{acce}>"), format!("vector<{s}x{t}x{acce}>"));
        let dims = &self.kernel.dims;
        let (tm, tn, tk) = (dims[c.m].tile, dims[c.n].tile, dims[c.k].tile);
        let zero_idx = self.cidx(0);
        let (cm, cn, ck) = (self.cidx(tm), self.cidx(tn), self.cidx(tk));
        let (sr, ss, st) = (self.cidx(r), self.cidx(s), self.cidx(t));
        let pad_in = if ba.dtype.is_float() {
            self.constant("0.0".into(), ine)
        } else {
            self.constant("0".into(), ine)
        };
        let store_ty = bc.dtype.mlir();
        let pad_c = if bc.dtype.is_float() {
            self.constant("0.0".into(), store_ty)
        } else {
            self.constant("0".into(), store_ty)
        };
        let zero_acc = self.constant(if c.acc == DType::F32 { "dense<0.0>".into() } else { "dense<0>".into() }, &vc_ty);
        let lead: String = (0..c.batch).map(|_| format!("{zero_idx}, ")).collect();
        let i = self.fresh();
        self.line(format!("scf.for {i} = {zero_idx} to {cm} step {sr} {{"));
        self.indent += 2;
        let j = self.fresh();
        self.line(format!("scf.for {j} = {zero_idx} to {cn} step {st} {{"));
        self.indent += 2;
        let init = if stmt.accumulate || partial {
            let stored_ty = format!("vector<{r}x{t}x{store_ty}>");
            let v = self.op(format!(
                "vector.transfer_read {}[{lead}{i}, {j}], {pad_c} {{in_bounds = [true, true]}} : {}, {stored_ty}",
                bc.name, bc.ty
            ));
            if bc.dtype == DType::Bf16 {
                self.op(format!("arith.extf {v} : {stored_ty} to {vc_ty}"))
            } else {
                v
            }
        } else {
            zero_acc
        };
        let kk = self.fresh();
        let carried = self.fresh();
        let res = self.fresh();
        self.line(format!(
            "{res} = scf.for {kk} = {zero_idx} to {ck} step {ss} iter_args({carried} = {init}) -> ({vc_ty}) {{"
        ));
        self.indent += 2;
        // A and B may sit at an offset in a joined FIFO element.
        let batch_idx = vec![zero_idx.clone(); c.batch];
        let a_idx = self
            .joined_indices(&ba, batch_idx.iter().cloned().chain([i.clone(), kk.clone()]).collect())
            .join(", ");
        let b_idx = self
            .joined_indices(&bb, batch_idx.iter().cloned().chain([kk.clone(), j.clone()]).collect())
            .join(", ");
        let va = self.op(format!(
            "vector.transfer_read {}[{a_idx}], {pad_in} {{in_bounds = [true, true]}} : {}, {va_ty}",
            ba.name, ba.ty
        ));
        let vb = self.op(format!(
            "vector.transfer_read {}[{b_idx}], {pad_in} {{in_bounds = [true, true]}} : {}, {vb_ty}",
            bb.name, bb.ty
        ));
        let ext = if c.acc == DType::F32 { "arith.extf" } else { "arith.extsi" };
        let wa = self.op(format!("{ext} {va} : {va_ty} to {wa_ty}"));
        let wb = self.op(format!("{ext} {vb} : {vb_ty} to {wb_ty}"));
        let sum = self.op(format!(
            "vector.contract {{indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = [\"parallel\", \"parallel\", \"reduction\"], kind = #vector.kind<add>}} {wa}, {wb}, {carried} : {wa_ty}, {wb_ty} into {vc_ty}"
        ));
        self.line(format!("scf.yield {sum} : {vc_ty}"));
        self.indent -= 2;
        self.line("}".into());
        let out = if bc.dtype == DType::Bf16 {
            self.op(format!("arith.truncf {res} : {vc_ty} to vector<{r}x{t}xbf16>"))
        } else {
            res
        };
        let out_ty = format!("vector<{r}x{t}x{store_ty}>");
        self.line(format!(
            "vector.transfer_write {out}, {}[{lead}{i}, {j}] {{in_bounds = [true, true]}} : {out_ty}, {}",
            bc.name, bc.ty
        ));
        self.indent -= 2;
        self.line("}".into());
        self.indent -= 2;
        self.line("}".into());
        Ok(())
    }
}

struct Contraction {
    a: TensorId,
    b: TensorId,
    /// Leading tile-1 dims before `m`/`n`: indexed at 0.
    batch: usize,
    m: DimId,
    n: DimId,
    k: DimId,
    shape: (u64, u64, u64),
    acc: DType,
    /// Whether the tiles are multiples of the MAC shape.
    fits: bool,
}

/// An MLIR location for a DSL span: `loc("file":line:col)`, or a name location for builder spans.
fn mlir_loc(span: &Span) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    if span.source.text.is_empty() {
        return format!("loc(\"{}\")", quote(&span.source.name));
    }
    let (line, col) = span.source.line_col(span.start);
    format!("loc(\"{}\":{line}:{col})", quote(&span.source.name))
}

/// The `aie.buffer` holding local `name` on `core`'s tile.
fn local_buffer_name(name: &str, core: &Core) -> String {
    format!("{name}_{}_{}", core.tile.col, core.tile.row)
}

fn kept_buffer_name(name: &str, core: &Core) -> String {
    local_buffer_name(&format!("{name}_kept"), core)
}

/// Tensors a core receives repeated with every reduction tile (in a joined stream), in order.
pub(crate) fn kept_parts(design: &Design, core: &Core) -> Vec<TensorId> {
    let fifos: std::collections::BTreeSet<usize> = core.fifos.values().copied().collect();
    fifos
        .into_iter()
        .flat_map(|f| design.fifos[f].joined.iter().filter(|p| p.repeated).map(|p| p.tensor))
        .collect()
}

fn int_range(t: DType) -> (i64, i64) {
    match t {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        _ => (i32::MIN as i64, i32::MAX as i64),
    }
}

fn memref_type(shape: &[u64], dtype: DType) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.is_empty() {
        format!("memref<{}>", dtype.mlir())
    } else {
        format!("memref<{}x{}>", dims.join("x"), dtype.mlir())
    }
}

/// Arith-only expansions of the functions the AIE core has no instruction for, defined over the
/// whole f32 range. Semantics (the reference interpreter implements the same, see
/// `reference::math`): IEEE results, except that subnormal inputs count as zero and subnormal
/// results are flushed to zero (2^n is built from the exponent field, which has no subnormals).
/// Special values: NaN in, NaN out; `exp` saturates to +inf above ln(f32::MAX) and to 0 below
/// ln(f32::MIN_POSITIVE); `tanh(+-inf) = +-1`; `recip(+-0) = +-inf`, `recip(+-inf) = +-0`;
/// `rsqrt(+0) = +inf`, `rsqrt(+inf) = 0`, `rsqrt(x < 0) = NaN`; `sqrt(+inf) = +inf`;
/// `ln(0) = -inf`, `ln(+inf) = +inf`, `ln(x < 0) = NaN`. Accuracy on normal arguments (tested
/// against libm through the emulator):
/// * `exp`: 2^n * e^u, u = x - n ln2 (Cody-Waite) in [-ln2/2, ln2/2], degree-7 Taylor, 2^n applied
///   in two halves so n = 128 stays representable: rel. error < 1e-6.
/// * `recip` (and `/`): bit-trick seed, 3 Newton steps: rel. error < 3e-7.
/// * `rsqrt`: bit-trick seed, 3 Newton steps: rel. error < 3e-7; `sqrt(x) = x * rsqrt(x)`.
/// * `tanh`: 1 - 2 / (e^{2|x|} + 1) with sign, |x| clamped to 10 (where tanh rounds to 1 in f32):
///   abs. error < 3e-7.
/// * `ln`/`log10`: exponent split, mantissa in [sqrt(1/2), sqrt(2)), atanh series to s^9: rel.
///   error < 3e-7.
struct MathLowering;

impl MathLowering {
    fn abs(e: &mut CoreEmitter, a: &str) -> String {
        let n = e.op(format!("arith.negf {a} : f32"));
        e.op(format!("arith.maximumf {a}, {n} : f32"))
    }

    fn select(e: &mut CoreEmitter, c: &str, a: &str, b: &str) -> String {
        e.op(format!("arith.select {c}, {a}, {b} : f32"))
    }

    fn cmp(e: &mut CoreEmitter, pred: &str, a: &str, b: &str) -> String {
        e.op(format!("arith.cmpf {pred}, {a}, {b} : f32"))
    }

    /// `x` with NaN replaced by 0, so the integer conversions below never see a NaN (the result
    /// is overridden with NaN at the end).
    fn finite_or_zero(e: &mut CoreEmitter, x: &str) -> (String, String) {
        let nan = Self::cmp(e, "uno", x, x);
        let zero = e.cf32(0.0);
        (Self::select(e, &nan, &zero, x), nan)
    }

    fn exp(e: &mut CoreEmitter, x: &str) -> String {
        let (xs, nan) = Self::finite_or_zero(e, x);
        // Beyond these the result is +inf or subnormal (flushed to 0); computing inside them keeps
        // n in [-126, 128].
        let (lo, hi) = (e.cf32(EXP_UNDERFLOW), e.cf32(EXP_OVERFLOW));
        let x1 = e.op(format!("arith.maximumf {xs}, {lo} : f32"));
        let x2 = e.op(format!("arith.minimumf {x1}, {hi} : f32"));
        let log2e = e.cf32(std::f32::consts::LOG2_E);
        let t = e.op(format!("arith.mulf {x2}, {log2e} : f32"));
        let half = e.cf32(0.5);
        let th = e.op(format!("arith.addf {t}, {half} : f32"));
        // floor(t + 0.5) without libm: truncate, then step down for negatives.
        let ni = e.op(format!("arith.fptosi {th} : f32 to i32"));
        let nf = e.op(format!("arith.sitofp {ni} : i32 to f32"));
        let gt = Self::cmp(e, "ogt", &nf, &th);
        // n - 1 as n + (-1): vector subi has no AIE lowering.
        let minus_one = e.ci32(-1);
        let ni_m1 = e.op(format!("arith.addi {ni}, {minus_one} : i32"));
        let n = e.op(format!("arith.select {gt}, {ni_m1}, {ni} : i32"));
        let nf2 = e.op(format!("arith.sitofp {n} : i32 to f32"));
        // u = x - n*ln2 with ln2 split in two (Cody-Waite): the high part has few enough bits that
        // n*hi is exact, so u keeps full precision even for large |x|.
        let (c_hi, c_lo) = (e.cf32(0.693_359_4), e.cf32(-2.121_944_4e-4));
        let nhi = e.op(format!("arith.mulf {nf2}, {c_hi} : f32"));
        let r1 = e.op(format!("arith.subf {x2}, {nhi} : f32"));
        let nlo = e.op(format!("arith.mulf {nf2}, {c_lo} : f32"));
        let u = e.op(format!("arith.subf {r1}, {nlo} : f32"));
        // Horner on sum u^k / k!, k = 0..7.
        let coeffs = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
        let mut p = e.cf32(coeffs[0] as f32);
        for c in &coeffs[1..] {
            let m = e.op(format!("arith.mulf {p}, {u} : f32"));
            let k = e.cf32(*c as f32);
            p = e.op(format!("arith.addf {m}, {k} : f32"));
        }
        // 2^n as 2^(n >> 1) * 2^(n - (n >> 1)): each half has a normal exponent.
        let one = e.ci32(1);
        let n1 = e.op(format!("arith.shrsi {n}, {one} : i32"));
        let n2 = e.op(format!("arith.subi {n}, {n1} : i32"));
        let (bias, sh) = (e.ci32(127), e.ci32(23));
        let mut r = p;
        for half_n in [n1, n2] {
            let biased = e.op(format!("arith.addi {half_n}, {bias} : i32"));
            let bits = e.op(format!("arith.shli {biased}, {sh} : i32"));
            let scale = e.op(format!("arith.bitcast {bits} : i32 to f32"));
            r = e.op(format!("arith.mulf {r}, {scale} : f32"));
        }
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let under = Self::cmp(e, "olt", x, &lo);
        let over = Self::cmp(e, "ogt", x, &hi);
        let r = Self::select(e, &under, &zero, &r);
        let r = Self::select(e, &over, &inf, &r);
        let r = Self::flush(e, &r);
        Self::select(e, &nan, x, &r)
    }

    /// `a / b` as `a * recip(b)`; for |b| above 2^126, where 1/b would be subnormal, both are
    /// scaled by 1/4 first so that huge quotients (1e38 / 1e38) stay right.
    fn div(e: &mut CoreEmitter, a: &str, b: &str) -> String {
        let r = Self::recip(e, b);
        let plain = e.op(format!("arith.mulf {a}, {r} : f32"));
        let quarter = e.cf32(0.25);
        let (aq, bq) = (
            e.op(format!("arith.mulf {a}, {quarter} : f32")),
            e.op(format!("arith.mulf {b}, {quarter} : f32")),
        );
        let rq = Self::recip(e, &bq);
        let scaled = e.op(format!("arith.mulf {aq}, {rq} : f32"));
        let ab = Self::abs(e, b);
        let max = e.cf32(RECIP_MAX);
        let huge = Self::cmp(e, "ogt", &ab, &max);
        Self::select(e, &huge, &scaled, &plain)
    }

    /// Subnormal to (signed) zero.
    fn flush(e: &mut CoreEmitter, x: &str) -> String {
        let a = Self::abs(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let tiny = Self::cmp(e, "olt", &a, &min);
        let zero = e.cf32(0.0);
        let signed_zero = e.op(format!("arith.mulf {x}, {zero} : f32"));
        Self::select(e, &tiny, &signed_zero, x)
    }

    fn recip(e: &mut CoreEmitter, x: &str) -> String {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let bits = e.op(format!("arith.bitcast {xs} : f32 to i32"));
        let sign_mask = e.ci32(i32::MIN as i64);
        let abs_mask = e.ci32(0x7FFF_FFFF);
        let sign = e.op(format!("arith.andi {bits}, {sign_mask} : i32"));
        let ab = e.op(format!("arith.andi {bits}, {abs_mask} : i32"));
        let ax = e.op(format!("arith.bitcast {ab} : i32 to f32"));
        // The Newton iteration below works for normal |x| up to 2^126; outside, the result is
        // decided by the edges: subnormal or zero -> inf, above 2^126 (result subnormal) -> 0.
        let (min, max) = (e.cf32(f32::MIN_POSITIVE), e.cf32(RECIP_MAX));
        let a1 = e.op(format!("arith.maximumf {ax}, {min} : f32"));
        let a2 = e.op(format!("arith.minimumf {a1}, {max} : f32"));
        let ab2 = e.op(format!("arith.bitcast {a2} : f32 to i32"));
        let magic = e.ci32(0x7EF3_11C3);
        let seed = e.op(format!("arith.subi {magic}, {ab2} : i32"));
        let mut y = e.op(format!("arith.bitcast {seed} : i32 to f32"));
        let two = e.cf32(2.0);
        for _ in 0..3 {
            let xy = e.op(format!("arith.mulf {a2}, {y} : f32"));
            let d = e.op(format!("arith.subf {two}, {xy} : f32"));
            y = e.op(format!("arith.mulf {y}, {d} : f32"));
        }
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let small = Self::cmp(e, "olt", &ax, &min);
        let large = Self::cmp(e, "ogt", &ax, &max);
        let y = Self::select(e, &small, &inf, &y);
        let y = Self::select(e, &large, &zero, &y);
        let yb = e.op(format!("arith.bitcast {y} : f32 to i32"));
        let signed = e.op(format!("arith.ori {yb}, {sign} : i32"));
        let r = e.op(format!("arith.bitcast {signed} : i32 to f32"));
        Self::select(e, &nan, x, &r)
    }

    /// 1/sqrt(x) on the whole range; also returns whether x counts as zero and whether it is
    /// NaN (for `sqrt`).
    fn rsqrt_parts(e: &mut CoreEmitter, x: &str) -> (String, String, String) {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let big = e.cf32(f32::MAX);
        let xc = e.op(format!("arith.maximumf {xs}, {min} : f32"));
        let xc = e.op(format!("arith.minimumf {xc}, {big} : f32"));
        let bits = e.op(format!("arith.bitcast {xc} : f32 to i32"));
        let one = e.ci32(1);
        let half_bits = e.op(format!("arith.shrui {bits}, {one} : i32"));
        let magic = e.ci32(0x5F37_59DF);
        let seed = e.op(format!("arith.subi {magic}, {half_bits} : i32"));
        let mut y = e.op(format!("arith.bitcast {seed} : i32 to f32"));
        let (half, three_halves) = (e.cf32(0.5), e.cf32(1.5));
        let hx = e.op(format!("arith.mulf {xc}, {half} : f32"));
        for _ in 0..3 {
            let yy = e.op(format!("arith.mulf {y}, {y} : f32"));
            let hxyy = e.op(format!("arith.mulf {hx}, {yy} : f32"));
            let d = e.op(format!("arith.subf {three_halves}, {hxyy} : f32"));
            y = e.op(format!("arith.mulf {y}, {d} : f32"));
        }
        let (zero, inf, qnan) = (e.cf32(0.0), e.cf32(f32::INFINITY), e.cf32(f32::NAN));
        let is_zero = Self::cmp(e, "olt", &xs, &min);
        let is_zero = {
            let neg_min = e.cf32(-f32::MIN_POSITIVE);
            let above = Self::cmp(e, "ogt", &xs, &neg_min);
            e.op(format!("arith.andi {is_zero}, {above} : i1"))
        };
        let negative = {
            let neg_min = e.cf32(-f32::MIN_POSITIVE);
            Self::cmp(e, "ole", &xs, &neg_min)
        };
        let is_inf = Self::cmp(e, "oeq", &xs, &inf);
        let y = Self::select(e, &is_inf, &zero, &y);
        let y = Self::select(e, &is_zero, &inf, &y);
        let y = Self::select(e, &negative, &qnan, &y);
        (Self::select(e, &nan, x, &y), is_zero, nan)
    }

    fn rsqrt(e: &mut CoreEmitter, x: &str) -> String {
        Self::rsqrt_parts(e, x).0
    }

    fn sqrt(e: &mut CoreEmitter, x: &str) -> String {
        let (r, is_zero, nan) = Self::rsqrt_parts(e, x);
        let s = e.op(format!("arith.mulf {x}, {r} : f32"));
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let is_inf = Self::cmp(e, "oeq", x, &inf);
        let s = Self::select(e, &is_inf, &inf, &s);
        let s = Self::select(e, &is_zero, &zero, &s);
        Self::select(e, &nan, x, &s)
    }

    fn tanh(e: &mut CoreEmitter, x: &str) -> String {
        let x = &Self::flush(e, x);
        let a = Self::abs(e, x);
        // tanh(10) rounds to 1 in f32; clamping keeps e^{2|x|} finite.
        let ten = e.cf32(10.0);
        let a = e.op(format!("arith.minimumf {a}, {ten} : f32"));
        let two = e.cf32(2.0);
        let a2 = e.op(format!("arith.mulf {a}, {two} : f32"));
        let ex = Self::exp(e, &a2);
        let one = e.cf32(1.0);
        let den = e.op(format!("arith.addf {ex}, {one} : f32"));
        let r = Self::recip(e, &den);
        let r2 = e.op(format!("arith.mulf {r}, {two} : f32"));
        let t = e.op(format!("arith.subf {one}, {r2} : f32"));
        let nt = e.op(format!("arith.negf {t} : f32"));
        let zero = e.cf32(0.0);
        let neg = Self::cmp(e, "olt", x, &zero);
        let t = Self::select(e, &neg, &nt, &t);
        // tanh(+-0) = +-0.
        let is_zero = Self::cmp(e, "oeq", x, &zero);
        Self::select(e, &is_zero, x, &t)
    }

    /// `floor(x)` (`with_fraction` also returns `x - floor(x)` for rounding) on the whole range:
    /// above 2^23 every f32 is an integer, and below it the integer fits an i32.
    fn floor_parts(e: &mut CoreEmitter, x: &str) -> (String, String, String) {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let (lo, hi) = (e.cf32(-8_388_608.0), e.cf32(8_388_608.0));
        let c1 = e.op(format!("arith.maximumf {xs}, {lo} : f32"));
        let xc = e.op(format!("arith.minimumf {c1}, {hi} : f32"));
        let t = e.op(format!("arith.fptosi {xc} : f32 to i32"));
        let tf = e.op(format!("arith.sitofp {t} : i32 to f32"));
        // Truncation rounds negatives up: step down where it did.
        let above = Self::cmp(e, "ogt", &tf, &xc);
        let one = e.cf32(1.0);
        let tm1 = e.op(format!("arith.subf {tf}, {one} : f32"));
        let f = Self::select(e, &above, &tm1, &tf);
        let frac = e.op(format!("arith.subf {xc}, {f} : f32"));
        (f, frac, nan)
    }

    /// Keeps `x` itself where it is NaN, infinite or at least 2^23 in magnitude (already an
    /// integer), and where it is zero (so -0 stays -0).
    fn integral_edges(e: &mut CoreEmitter, x: &str, r: &str, nan: &str) -> String {
        let a = Self::abs(e, x);
        let big = e.cf32(8_388_608.0);
        let large = Self::cmp(e, "oge", &a, &big);
        let zero = e.cf32(0.0);
        let is_zero = Self::cmp(e, "oeq", x, &zero);
        let r = Self::select(e, &large, x, r);
        let r = Self::select(e, &is_zero, x, &r);
        Self::select(e, nan, x, &r)
    }

    fn floor(e: &mut CoreEmitter, x: &str) -> String {
        let (f, _, nan) = Self::floor_parts(e, x);
        Self::integral_edges(e, x, &f, &nan)
    }

    /// Round half to even: floor, then up when the fraction is above 1/2, or exactly 1/2 with an
    /// odd floor; a zero result takes the sign of `x` (`round(-0.3) = -0`).
    fn round(e: &mut CoreEmitter, x: &str) -> String {
        let (f, frac, nan) = Self::floor_parts(e, x);
        let half = e.cf32(0.5);
        let gt = Self::cmp(e, "ogt", &frac, &half);
        let tie = Self::cmp(e, "oeq", &frac, &half);
        let fi = e.op(format!("arith.fptosi {f} : f32 to i32"));
        let one_i = e.ci32(1);
        let low_bit = e.op(format!("arith.andi {fi}, {one_i} : i32"));
        let odd = e.op(format!("arith.cmpi eq, {low_bit}, {one_i} : i32"));
        let tie_up = e.op(format!("arith.andi {tie}, {odd} : i1"));
        let up = e.op(format!("arith.ori {gt}, {tie_up} : i1"));
        let one = e.cf32(1.0);
        let f1 = e.op(format!("arith.addf {f}, {one} : f32"));
        let r = Self::select(e, &up, &f1, &f);
        let zero = e.cf32(0.0);
        let r_zero = Self::cmp(e, "oeq", &r, &zero);
        let signed_zero = e.op(format!("arith.mulf {x}, {zero} : f32"));
        let r = Self::select(e, &r_zero, &signed_zero, &r);
        Self::integral_edges(e, x, &r, &nan)
    }

    fn ln(e: &mut CoreEmitter, x: &str) -> String {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let xc = e.op(format!("arith.maximumf {xs}, {min} : f32"));
        let bits = e.op(format!("arith.bitcast {xc} : f32 to i32"));
        let sh = e.ci32(23);
        let ebits = e.op(format!("arith.shrui {bits}, {sh} : i32"));
        // e - 127 as e + (-127): vector subi has no AIE lowering.
        let bias = e.ci32(-127);
        let ex = e.op(format!("arith.addi {ebits}, {bias} : i32"));
        let mmask = e.ci32(0x007F_FFFF);
        let one_bits = e.ci32(0x3F80_0000);
        let mb = e.op(format!("arith.andi {bits}, {mmask} : i32"));
        let mb1 = e.op(format!("arith.ori {mb}, {one_bits} : i32"));
        let m = e.op(format!("arith.bitcast {mb1} : i32 to f32"));
        let sqrt2 = e.cf32(std::f32::consts::SQRT_2);
        let big = Self::cmp(e, "ogt", &m, &sqrt2);
        let half = e.cf32(0.5);
        let mh = e.op(format!("arith.mulf {m}, {half} : f32"));
        let m2 = Self::select(e, &big, &mh, &m);
        let one_i = e.ci32(1);
        let ex1 = e.op(format!("arith.addi {ex}, {one_i} : i32"));
        let ex2 = e.op(format!("arith.select {big}, {ex1}, {ex} : i32"));
        let one = e.cf32(1.0);
        let num = e.op(format!("arith.subf {m2}, {one} : f32"));
        let den = e.op(format!("arith.addf {m2}, {one} : f32"));
        let rd = Self::recip(e, &den);
        let s = e.op(format!("arith.mulf {num}, {rd} : f32"));
        let s2 = e.op(format!("arith.mulf {s}, {s} : f32"));
        let coeffs = [1.0f32 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0];
        let mut p = e.cf32(coeffs[0]);
        for c in &coeffs[1..] {
            let m = e.op(format!("arith.mulf {p}, {s2} : f32"));
            let k = e.cf32(*c);
            p = e.op(format!("arith.addf {m}, {k} : f32"));
        }
        let two = e.cf32(2.0);
        let ps = e.op(format!("arith.mulf {p}, {s} : f32"));
        let lnm = e.op(format!("arith.mulf {ps}, {two} : f32"));
        let exf = e.op(format!("arith.sitofp {ex2} : i32 to f32"));
        let ln2 = e.cf32(std::f32::consts::LN_2);
        let el = e.op(format!("arith.mulf {exf}, {ln2} : f32"));
        let r = e.op(format!("arith.addf {lnm}, {el} : f32"));
        let (inf, ninf, qnan) = (e.cf32(f32::INFINITY), e.cf32(f32::NEG_INFINITY), e.cf32(f32::NAN));
        let is_zero = Self::cmp(e, "olt", &xs, &min);
        // Negative subnormals count as zero: ln(-0) = -inf.
        let neg_min = e.cf32(-f32::MIN_POSITIVE);
        let negative = Self::cmp(e, "ole", &xs, &neg_min);
        let is_inf = Self::cmp(e, "oeq", &xs, &inf);
        let r = Self::select(e, &is_zero, &ninf, &r);
        let r = Self::select(e, &negative, &qnan, &r);
        let r = Self::select(e, &is_inf, &inf, &r);
        Self::select(e, &nan, x, &r)
    }
}

/// Largest f32 whose exp is finite (ln(f32::MAX) rounded down to f32).
pub(crate) const EXP_OVERFLOW: f32 = 88.722_83;
/// Below this exp is subnormal (ln(f32::MIN_POSITIVE) rounded up to f32) and flushes to zero.
pub(crate) const EXP_UNDERFLOW: f32 = -87.336_54;
/// recip(x) for |x| above 2^126 is subnormal and flushes to zero.
const RECIP_MAX: f32 = 8.507_059e37;

/// Rewrites a scalar arith op into its vector form: `arith.addf %a, %b : f32` ->
/// `... : vector<16xf32>`, `arith.select %c, %a, %b : f32` -> `... : vector<16xi1>, vector<16xf32>`.
/// Index arithmetic and non-arith ops are left alone.
fn vector_types(s: &str) -> String {
    if !s.starts_with("arith.") {
        return s.to_string();
    }
    let Some(pos) = s.rfind(" : ") else { return s.to_string() };
    let (head, types) = s.split_at(pos + 3);
    if types.split(' ').any(|w| w == "index") {
        return s.to_string();
    }
    let conv: Vec<String> = types
        .split(' ')
        .map(|w| match w {
            "f32" | "i32" | "bf16" | "i8" | "i16" | "i1" => format!("vector<{VECTOR_LANES}x{w}>"),
            other => other.to_string(),
        })
        .collect();
    if head.starts_with("arith.select") {
        format!("{head}vector<{VECTOR_LANES}xi1>, {}", conv.join(" "))
    } else {
        format!("{head}{}", conv.join(" "))
    }
}
