//! DMA channels (one per FIFO arriving or leaving a tile; a broadcast is one), locks and buffer
//! descriptors per tile.

use super::{culprit, limit, TileMemoryBudget};
use crate::device::{TileCoord, TileKind};
use crate::diag::CompileError;
use crate::ir::{Kernel, TensorId};
use crate::schedule::Design;
use petgraph::Direction;
use std::collections::BTreeSet;

/// The tile's streams fit its DMA channels, its FIFOs its locks and buffer descriptors.
pub(super) fn check_channels(kernel: &Kernel, design: &Design, b: &TileMemoryBudget) -> Result<(), CompileError> {
    let lim = design.device.limits(b.kind);
    let span = culprit(kernel, design, b.tile);
    let what = format!("{} tile {}", b.kind.name(), b.tile);
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
    Ok(())
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
    notes.push(if kind == TileKind::Compute && dir == Direction::Incoming {
        format!(
            "a compute tile has {limit} input DMA channels: {} streams reach each core here. Inputs join into one stream when they have the same element type, reach the same cores (a per-core split does not join on a grid of several rows: `spread ... over cols` may) and have tiles that stack (equal trailing extents); otherwise cast or stack them into one host tensor, or compute part of it in a separate kernel",
            per_tensor.len()
        )
    } else if kind == TileKind::Compute {
        format!(
            "a compute tile has {limit} output DMA channels: {} outputs leave each core here; stack outputs written with the same indices into one output tensor (a new leading axis), or split the kernel",
            per_tensor.len()
        )
    } else {
        format!(
            "a {} tile has {limit} DMA channels each way; each per-core stream takes one: fewer cores per column (`spread ... over cols`, or smaller tiles so fewer steps) or fewer tensors per core would fit",
            kind.name()
        )
    });
    notes
}
