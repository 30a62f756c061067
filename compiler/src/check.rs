//! Hardware-limit checks on a scheduled design (the limits in `device`). Each violation is a
//! [`CompileError::Limit`] naming the limit, the amount asked for, and the DSL source it comes from.
//! Shim DMA patterns, buffer descriptors on shim tiles and the runtime-sequence argument count are
//! checked while the runtime sequence is built (see [`crate::schedule`]).

use crate::device::{TileCoord, TileKind};
use crate::diag::{CompileError, Diagnostic, Span};
use crate::ir::{Kernel, TensorId};
use crate::schedule::{Design, FifoLevel};
use petgraph::Direction;
use std::collections::BTreeSet;

/// The most bytes one host tensor (one runtime-sequence argument) may hold: 2 GiB. The shim DMA
/// reaches an argument's data at the argument's base address plus a byte offset that the runtime
/// sequence patches into the buffer descriptor (`aiex.npu.address_patch`, whose `arg_plus` is a
/// signed 32-bit value), so no byte past 2^31 of an argument can be addressed. A larger tensor is
/// a compile error at its declaration (in the type checker), never an allocation the host fails.
pub const MAX_ARGUMENT_BYTES: u64 = 1 << 31;

/// The largest dim size, tensor extent or index value the language accepts: the element count
/// of the largest i8 argument ([`MAX_ARGUMENT_BYTES`]). Keeping every extent and index within it
/// (and every host tensor within [`MAX_ARGUMENT_BYTES`]) keeps the index arithmetic of every
/// backend inside 64 bits.
pub const MAX_EXTENT: u64 = MAX_ARGUMENT_BYTES;

/// Memory, locks, buffer descriptors and DMA channels of one tile, as the design uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct TileMemoryBudget {
    pub tile: TileCoord,
    pub kind: TileKind,
    /// (what, bytes) for each buffer on the tile.
    pub buffers: Vec<(String, usize)>,
    pub data_bytes: usize,
    pub locks: usize,
    pub bds: usize,
    pub dma_in: usize,
    pub dma_out: usize,
}

/// Core-local temporaries (`local` tensors): one `aie.buffer` each in every core's tile. The type
/// checker has made sure each size is computable; a size past `usize` saturates (and fails the
/// memory check).
fn local_buffers(kernel: &Kernel) -> impl Iterator<Item = (&str, usize)> {
    kernel.tensors.iter().filter(|t| !t.is_host()).map(|t| {
        let bytes = t.shape.iter().try_fold(t.dtype.size_bytes() as u64, |acc, &n| acc.checked_mul(n));
        (t.name.as_str(), bytes.and_then(|b| usize::try_from(b).ok()).unwrap_or(usize::MAX))
    })
}

/// Stack size of each core: the default (core bodies keep no arrays on the stack).
pub fn stack_bytes(design: &Design) -> usize {
    design.device.default_stack_bytes
}

pub fn budgets(kernel: &Kernel, design: &Design) -> Vec<TileMemoryBudget> {
    let mut out = Vec::new();
    for tile in design.tiles() {
        let kind = design.kind(tile);
        let mut b = TileMemoryBudget {
            tile,
            kind,
            buffers: vec![],
            data_bytes: 0,
            locks: 0,
            bds: 0,
            dma_in: 0,
            dma_out: 0,
        };
        for f in &design.fifos {
            let produces = f.producer == tile;
            let consumes = f.consumers.contains(&tile);
            if !produces && !consumes {
                continue;
            }
            // The scheduler made sure every FIFO's bytes times its depth fit 64 bits.
            let bytes = usize::try_from(f.bytes().saturating_mul(f.depth as u64)).unwrap_or(usize::MAX);
            let holds_buffer = match kind {
                TileKind::Compute => true,
                // Linked FIFOs share the memory tile's buffer: count the side facing the shim.
                TileKind::Memory => matches!(f.level, FifoLevel::HostToMem | FifoLevel::MemToHost),
                TileKind::Shim => false,
            };
            if holds_buffer {
                b.buffers.push((format!("object FIFO {} ({} x {} bytes)", f.name, f.depth, f.bytes()), bytes));
                b.data_bytes = b.data_bytes.saturating_add(bytes);
            }
            if kind != TileKind::Shim {
                b.locks += 2;
                b.bds += f.depth;
            }
        }
        if kind == TileKind::Compute {
            for (name, bytes) in local_buffers(kernel) {
                b.buffers.push((format!("buffer {name} (local, {bytes} bytes)"), bytes));
                b.data_bytes = b.data_bytes.saturating_add(bytes);
            }
            let stack = stack_bytes(design);
            b.buffers.push((format!("stack ({stack} bytes default)"), stack));
            b.data_bytes = b.data_bytes.saturating_add(stack);
        }
        // A DMA channel per FIFO arriving or leaving; a broadcast leaves on one channel whatever
        // its number of consumers (one graph edge each).
        let node = design.tile_nodes[&tile];
        let channels = |dir| design.graph.edges_directed(node, dir).map(|e| *e.weight()).collect::<BTreeSet<usize>>().len();
        b.dma_in = channels(Direction::Incoming);
        b.dma_out = channels(Direction::Outgoing);
        out.push(b);
    }
    out
}

fn limit(msg: String, span: &Span, notes: Vec<String>) -> CompileError {
    let mut d = Diagnostic::new(msg, Some(span));
    d.notes = notes;
    CompileError::Limit(d)
}

/// The tensor span most responsible for a tile's use (its largest FIFO), else the kernel.
fn culprit<'k>(kernel: &'k Kernel, design: &Design, tile: TileCoord) -> &'k Span {
    design
        .fifos
        .iter()
        .filter(|f| f.producer == tile || f.consumers.contains(&tile))
        .max_by_key(|f| f.bytes())
        .map(|f| &kernel.tensors[f.tensor].span)
        .unwrap_or(&kernel.span)
}

/// Notes naming the streams that compete for a tile's DMA channels (one per FIFO, grouped by
/// tensor) and what would fit.
fn competing_streams(kernel: &Kernel, design: &Design, tile: TileCoord, dir: Direction, limit: usize) -> Vec<String> {
    let node = design.tile_nodes[&tile];
    let fifos: BTreeSet<usize> = design.graph.edges_directed(node, dir).map(|e| *e.weight()).collect();
    let mut per_tensor: Vec<(TensorId, Vec<&str>)> = Vec::new();
    for &f in &fifos {
        let fifo = &design.fifos[f];
        match per_tensor.iter_mut().find(|(t, _)| *t == fifo.tensor) {
            Some((_, names)) => names.push(&fifo.name),
            None => per_tensor.push((fifo.tensor, vec![&fifo.name])),
        }
    }
    let mut notes: Vec<String> = per_tensor
        .iter()
        .map(|(t, names)| {
            let tensor = &kernel.tensors[*t];
            format!(
                "{} stream{} for {} {} ({}) at {}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                if tensor.role == crate::dsl::ast::Role::Out { "output" } else { "input" },
                tensor.name,
                names.join(", "),
                tensor.span.location()
            )
        })
        .collect();
    let kind = design.kind(tile);
    notes.push(if kind == TileKind::Compute {
        format!(
            "a compute tile has {limit} {} DMA channels: {} tensors {} each core here; combine tensors read with the same indices into one host tensor (e.g. stack them on a new leading axis), or compute part of it in a separate kernel",
            if dir == Direction::Incoming { "input" } else { "output" },
            per_tensor.len(),
            if dir == Direction::Incoming { "reach" } else { "leave" }
        )
    } else {
        format!(
            "a {} tile has {limit} DMA channels each way; each per-core stream takes one: fewer cores per column (`spread ... over cols`, or smaller tiles so fewer steps) or fewer tensors per core would fit",
            kind.name()
        )
    });
    notes
}

pub fn check(kernel: &Kernel, design: &Design) -> Result<Vec<TileMemoryBudget>, CompileError> {
    let budgets = budgets(kernel, design);
    let dev = &design.device;
    // Compute tiles first: their limits are the ones a kernel author controls most directly.
    let mut order: Vec<&TileMemoryBudget> = budgets.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.kind));
    for b in order {
        let lim = dev.limits(b.kind);
        let span = culprit(kernel, design, b.tile);
        let what = format!("{} tile {}", b.kind.name(), b.tile);
        if b.kind != TileKind::Shim && b.data_bytes > lim.data_bytes {
            let notes = b.buffers.iter().map(|(w, n)| format!("{n} bytes: {w}")).collect();
            let needed = if b.data_bytes == usize::MAX {
                "a size that overflows 64-bit arithmetic is".to_string()
            } else {
                format!("{} bytes", b.data_bytes)
            };
            return Err(limit(
                format!(
                    "data memory exceeded on {what}: {needed} needed, limit {} bytes; use smaller tiles or `depth 1`",
                    lim.data_bytes
                ),
                span,
                notes,
            ));
        }
        if b.dma_in > lim.dma_in {
            return Err(limit(
                format!("DMA input channels exceeded on {what}: {} streams arrive, limit {}", b.dma_in, lim.dma_in),
                span,
                competing_streams(kernel, design, b.tile, Direction::Incoming, lim.dma_in),
            ));
        }
        if b.dma_out > lim.dma_out {
            return Err(limit(
                format!("DMA output channels exceeded on {what}: {} streams leave, limit {}", b.dma_out, lim.dma_out),
                span,
                competing_streams(kernel, design, b.tile, Direction::Outgoing, lim.dma_out),
            ));
        }
        if b.kind != TileKind::Shim && b.locks > lim.locks {
            return Err(limit(
                format!("locks exceeded on {what}: {} needed, limit {}", b.locks, lim.locks),
                span,
                vec![],
            ));
        }
        if b.kind != TileKind::Shim && b.bds > lim.bds {
            return Err(limit(
                format!("buffer descriptors exceeded on {what}: {} needed, limit {}", b.bds, lim.bds),
                span,
                vec![],
            ));
        }
    }
    Ok(budgets)
}

/// Program memory estimate of a core from its lowered body: 16 bytes per MLIR operation (one
/// VLIW bundle per op, the pessimistic case of scalar code) plus 1 KiB of runtime and prologue.
pub fn program_bytes_estimate(core_ops: usize) -> usize {
    1024 + 16 * core_ops
}

pub fn check_program_memory(kernel: &Kernel, design: &Design, core_ops: usize) -> Result<usize, CompileError> {
    let est = program_bytes_estimate(core_ops);
    if est > design.device.program_bytes {
        let span = kernel.stmts.first().map(|s| &s.span).unwrap_or(&kernel.span);
        return Err(limit(
            format!(
                "program memory exceeded on compute tiles: about {est} bytes estimated ({core_ops} operations x 16 bytes + 1024), limit {} bytes",
                design.device.program_bytes
            ),
            span,
            vec!["split the kernel into smaller statements or kernels".into()],
        ));
    }
    Ok(est)
}

/// Deadlock freedom of the schedule: every object FIFO must carry exactly as many elements as its
/// consumers acquire. Cores acquire a fixed number of elements (their step loops, times the
/// reduction loop for tensors read along the reduction dim); the shim DMAs of the runtime sequence
/// must move exactly that many, through each memory-tile link. A mismatch would leave a core or a
/// DMA waiting forever on the NPU, so it is reported here instead.
pub fn check_balance(kernel: &Kernel, design: &Design) -> Result<(), CompileError> {
    use crate::schedule::{element_view, SequenceOp};
    // Element counts are checked products: an overflow is a located error, never a wrap.
    let overflow = |what: &str, span: &Span| limit(format!("size of {what} overflows 64-bit arithmetic; use fewer, larger tiles"), span, vec![]);
    fn product(counts: impl IntoIterator<Item = u64>) -> Option<u64> {
        counts.into_iter().try_fold(1u64, |acc, n| acc.checked_mul(n))
    }
    let reduce_span = crate::schedule::reduction_stmt(kernel).map_or(&kernel.span, |s| &kernel.stmts[s].span);
    let steps = product(design.step_loops.iter().map(|l| l.count)).ok_or_else(|| overflow("the step loops (tiles per core)", &kernel.span))?;
    let reduce = product(design.reduce_loops.iter().map(|l| l.count)).ok_or_else(|| overflow("the reduction loops", reduce_span))?;
    let reduce_dims: Vec<usize> = design.reduce_loops.iter().map(|l| l.dim).collect();
    let per_core = |t: usize| -> Result<u64, CompileError> {
        let along = element_view(kernel, t).dims().iter().any(|d| reduce_dims.contains(d));
        if along {
            steps
                .checked_mul(reduce)
                .ok_or_else(|| overflow("the step loops times the reduction loops", reduce_span))
        } else {
            Ok(steps)
        }
    };
    // Elements moved by the runtime sequence per shim-side FIFO.
    let mut moved = vec![0u64; design.fifos.len()];
    for op in &design.sequence {
        if let SequenceOp::Dma(d) = op {
            let fifo = &design.fifos[d.fifo];
            let span = &kernel.tensors[fifo.tensor].span;
            let n = product(d.sizes.iter().copied()).ok_or_else(|| overflow(&format!("a transfer of {}", fifo.name), span))?;
            let elem = fifo.elements();
            if elem == 0 || !n.is_multiple_of(elem) {
                return Err(deadlock(
                    kernel,
                    d.fifo,
                    design,
                    format!("a transfer of {n} elements is not a whole number of {elem}-element FIFO elements"),
                ));
            }
            moved[d.fifo] = moved[d.fifo]
                .checked_add(n / elem)
                .ok_or_else(|| overflow(&format!("the transfers of {}", fifo.name), span))?;
        }
    }
    for link in &design.links {
        // Split/forward: one input element per consumer acquisition of each output.
        // Join: one output element per producer release of each input.
        let (shim_side, core_side): (Vec<usize>, Vec<usize>) = if link.inputs.iter().all(|&f| design.fifos[f].level == FifoLevel::HostToMem) {
            (link.inputs.clone(), link.outputs.clone())
        } else {
            (link.outputs.clone(), link.inputs.clone())
        };
        for &c in &core_side {
            let f = &design.fifos[c];
            let expected = per_core(f.tensor)?;
            for &s in &shim_side {
                if moved[s] != expected {
                    return Err(deadlock(
                        kernel,
                        s,
                        design,
                        format!(
                            "the runtime sequence moves {} elements through {} but the cores behind {} use {}",
                            moved[s], design.fifos[s].name, f.name, expected
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn deadlock(kernel: &Kernel, fifo: usize, design: &Design, why: String) -> CompileError {
    let span = &kernel.tensors[design.fifos[fifo].tensor].span;
    CompileError::Schedule(Diagnostic::new(format!("the schedule would deadlock: {why}"), Some(span)).note("this is a compiler bug: please report the kernel"))
}
