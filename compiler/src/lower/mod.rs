//! Lowering: a scheduled design to an MLIR-AIE module, built as typed MLIR operations.
//!
//! Core bodies use only upstream `arith`, `memref`, `scf` and `vector` plus the aie object FIFO
//! ops. The AIE core has no libm, so transcendentals and division are expanded here into
//! arith-only sequences (see [`MathLowering`](math::MathLowering) for their semantics and
//! accuracy). Contractions (`sum[K](A[M,K] * B[K,N])`) become `vector.contract` on the target's
//! MAC shape ([`crate::target_rules::mac_shape`]). Elementwise statements and single-dim
//! reductions run on 16-lane vectors when the dim on the lanes is read contiguously (or
//! broadcast) and the target's toolchain takes every vector op they need
//! ([`crate::target_rules`]); everything else is scalar loops.
//!
//! Upstream ops are built with melior's dialect builders, the aie/aiex ops as unregistered ops
//! in the generic form of [`aiec_runtime::aie_syntax`] (`design.rs`); [`crate::emit`] verifies
//! and prints the module.

mod contract;
mod core;
mod design;
mod expr;
mod math;
mod mlir;
mod ops;

use crate::check::stack_bytes;
use crate::diag::{CompileError, Diagnostic, Span};
use crate::dsl::ast::Role;
use crate::ir::{Kernel, TensorId};
use crate::schedule::{element_view, Core, Design};
use aiec_runtime::DType;
use design::DesignBuilder;
use melior::ir::block::BlockLike;
use melior::ir::{Location, Module};
use melior::Context;

pub(crate) use math::{EXP_OVERFLOW, EXP_UNDERFLOW};

/// The lowered module and what the lowering learned on the way.
pub(crate) struct Lowered<'c> {
    /// The module, not yet verified.
    pub(crate) module: Module<'c>,
    /// Operations in the largest core body (for the program-memory estimate).
    pub(crate) max_core_ops: usize,
    /// Statements lowered to scalar code because the target rejects a vector op they need.
    pub(crate) notes: Vec<Diagnostic>,
    /// Per kernel statement, how its ops came out.
    pub(crate) stmt_forms: Vec<StmtForm>,
}

/// What the ops a statement lowered to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StmtForm {
    /// A `vector.contract` (the MAC).
    pub(crate) contract: bool,
    /// Any vector value.
    pub(crate) vector: bool,
}

impl Lowered<'_> {
    /// The module in mlir-aie custom syntax as built (before verification).
    pub(crate) fn text(&self) -> String {
        let generic = self.module.as_operation().to_string();
        aiec_runtime::aie_syntax::generic_to_custom(&generic).unwrap_or(generic)
    }
}

fn lower_error(msg: impl Into<String>, span: &Span) -> CompileError {
    CompileError::Lower(Diagnostic::new(msg, Some(span)))
}

/// Lanes of the vectors elementwise code and reductions use: 16 x 32-bit, the width AIE-ML's
/// vector unit computes f32/i32 at (512-bit registers hold 32 bf16 or 64 int8 for the MACs).
pub(crate) const VECTOR_LANES: u64 = 16;

pub(crate) fn lower<'c>(context: &'c Context, kernel: &Kernel, design: &Design) -> Result<Lowered<'c>, CompileError> {
    let module = Module::new(Location::unknown(context));
    let mut d = DesignBuilder::device(context, module.body().to_raw(), design.device.name);
    for t in design.tiles() {
        d.tile(t);
    }
    for f in &design.fifos {
        let elem = d.ir.memref(&f.shape, f.dtype);
        d.objectfifo(&f.name, f.producer, &f.consumers, f.depth, elem);
    }
    for l in &design.links {
        let names = |v: &[usize]| v.iter().map(|&i| design.fifos[i].name.as_str()).collect::<Vec<_>>();
        d.link(&names(&l.inputs), &names(&l.outputs), &l.src_offsets, &l.dst_offsets);
    }
    // Locals: one buffer per core, in the core's own tile (mlir-aie assigns its address).
    let mut locals = Vec::new();
    for core in &design.cores {
        let mut mine = Vec::new();
        for (t, tensor) in kernel.tensor_ids().filter(|(_, t)| t.role == Role::Local) {
            let ty = d.ir.memref(&tensor.shape, tensor.dtype);
            mine.push((t, d.buffer(core.tile, &local_buffer_name(&tensor.name, core), ty)));
        }
        locals.push(mine);
    }
    // The last tile of each repeated part of a joined stream, kept for the statements after the
    // reduction loop.
    let mut kept = Vec::new();
    for core in &design.cores {
        let mut mine = Vec::new();
        for part in kept_parts(design, core) {
            let tensor = &kernel.tensors[part];
            let ty = d.ir.memref(&element_view(kernel, part).shape(), tensor.dtype);
            mine.push((part, d.buffer(core.tile, &kept_buffer_name(&tensor.name, core), ty)));
        }
        kept.push(mine);
    }
    let mut max_core_ops = 0;
    let mut notes: Vec<Diagnostic> = Vec::new();
    let mut stmt_forms = vec![StmtForm::default(); kernel.stmts.len()];
    for ((core, mine), kept) in design.cores.iter().zip(locals).zip(kept) {
        let op = d.core(core.tile, stack_bytes(design) as u64);
        let emitted = core::CoreEmitter::new(context, op.body(0), kernel, design, core, &mine, &kept).emit()?;
        max_core_ops = max_core_ops.max(emitted.ops);
        for n in emitted.notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        for (all, mine) in stmt_forms.iter_mut().zip(emitted.forms) {
            all.contract |= mine.contract;
            all.vector |= mine.vector;
        }
    }
    d.sequence(kernel, design);
    DesignBuilder::end(&d.ir);
    Ok(Lowered {
        module,
        max_core_ops,
        notes,
        stmt_forms,
    })
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
