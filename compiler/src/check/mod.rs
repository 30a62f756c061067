//! The `check` pass: hardware limits on a routed and sequenced design (the limits in `device`),
//! one file per family: `memory.rs` (data and program memory), `channels.rs` (DMA channels, locks,
//! buffer descriptors), `balance.rs` (every FIFO moves what its cores acquire, so the schedule
//! cannot deadlock). Each violation is a [`CompileError::Limit`] (or `Schedule`, for balance)
//! naming the limit, the amount asked for, and the DSL source it comes from. Shim DMA patterns and
//! their buffer descriptors, and the runtime-sequence argument count, are checked where the
//! runtime sequence is built (`schedule::sequence`, `schedule::route`), since the sequence's
//! chunking depends on them.

use crate::device::{TileCoord, TileKind};
use crate::diag::{CompileError, Diagnostic, Span};
use crate::ir::Kernel;
use crate::schedule::{Design, FifoLevel};
use petgraph::Direction;
use std::collections::BTreeSet;

mod balance;
mod channels;
mod memory;

pub use balance::check_balance;
pub(crate) use memory::check_program_memory;

/// The most bytes one host tensor (one runtime-sequence argument) may hold: 2 GiB. The shim DMA
/// reaches an argument's data at the argument's base address plus a byte offset that the runtime
/// sequence patches into the buffer descriptor (`aiex.npu.address_patch`, whose `arg_plus` is a
/// signed 32-bit value), so no byte past 2^31 of an argument can be addressed. A larger tensor is
/// a compile error at its declaration (in the type checker), never an allocation the host fails.
pub(crate) const MAX_ARGUMENT_BYTES: u64 = 1 << 31;

/// The largest dim size, tensor extent or index value the language accepts: the element count
/// of the largest i8 argument ([`MAX_ARGUMENT_BYTES`]). Keeping every extent and index within it
/// (and every host tensor within [`MAX_ARGUMENT_BYTES`]) keeps the index arithmetic of every
/// backend inside 64 bits.
pub(crate) const MAX_EXTENT: u64 = MAX_ARGUMENT_BYTES;

/// Memory, locks, buffer descriptors and DMA channels of one tile, as the design uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct TileMemoryBudget {
    /// The tile.
    pub tile: TileCoord,
    /// Its kind (which limits apply).
    pub kind: TileKind,
    /// (what, bytes) for each buffer on the tile.
    pub buffers: Vec<(String, usize)>,
    /// Data memory used, bytes: FIFO buffers times their depth, and on a compute tile the stack
    /// and the locals.
    pub data_bytes: usize,
    pub(crate) locks: usize,
    pub(crate) bds: usize,
    pub(crate) dma_in: usize,
    pub(crate) dma_out: usize,
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
pub(crate) fn stack_bytes(design: &Design) -> usize {
    design.device.default_stack_bytes
}

/// What every tile of `design` uses, before any limit is checked.
pub(crate) fn budgets(kernel: &Kernel, design: &Design) -> Vec<TileMemoryBudget> {
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
            if let Some(core) = design.cores.iter().find(|c| c.tile == tile) {
                for t in crate::lower::kept_parts(design, core) {
                    let tensor = &kernel.tensors[t];
                    let elems = crate::schedule::element_view(kernel, t).shape().iter().product::<u64>();
                    let bytes = usize::try_from(elems.saturating_mul(tensor.dtype.size_bytes() as u64)).unwrap_or(usize::MAX);
                    b.buffers
                        .push((format!("buffer {}_kept (the last tile of {}, {bytes} bytes)", tensor.name, tensor.name), bytes));
                    b.data_bytes = b.data_bytes.saturating_add(bytes);
                }
            }
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

/// Checks every tile's memory, DMA channels, locks and buffer descriptors; returns the budgets.
pub fn check(kernel: &Kernel, design: &Design) -> Result<Vec<TileMemoryBudget>, CompileError> {
    let budgets = budgets(kernel, design);
    // Compute tiles first: their limits are the ones a kernel author controls most directly.
    let mut order: Vec<&TileMemoryBudget> = budgets.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.kind));
    for b in order {
        memory::check_data_memory(kernel, design, b)?;
        channels::check_channels(kernel, design, b)?;
    }
    Ok(budgets)
}
