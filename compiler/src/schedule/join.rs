//! Joined input streams: when a core would read more input tensors than a compute tile has input
//! DMA channels, inputs that reach the same cores at the same rate travel as one stream. Each
//! keeps its own shim DMA and memory-tile FIFO; a memory-tile join link writes a tile of each into
//! one element of a single FIFO to the cores, stacked along the element's first axis:
//!
//! * `cos[T, I]` and `sin[T, I]` with tiles `[16, 32]` join into `[32, 32]`, sin from row 16;
//! * a bias `b[N]` (tile `[32]`) after weights `w[K, N]` (tile `[64, 32]`) is row 64 of `[65, 32]`.
//!
//! Tensors join only when they have the same element type and the same consumers (a broadcast per
//! row, per column or to all cores; a per-core split cannot also be a join on the memory tile).
//! Tensors read at the same rate join first; a tensor read once per output tile (a bias) joins one
//! read once per reduction tile (the weights) by being sent with each reduction tile.

use super::{Routing, TileLoop};
use crate::device::{DeviceModel, TileKind};
use crate::ir::{DimId, Kernel, TensorId};
use crate::schedule::element_view;
use std::collections::BTreeMap;

/// One tensor's place in a joined FIFO element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedPart {
    pub(crate) tensor: TensorId,
    /// Where its tile starts in the element, in elements.
    pub(crate) element_offset: u64,
    /// Where its tile starts along the element's first axis.
    pub(crate) first_axis_offset: u64,
    /// Its tile has one axis fewer than the element: it fills one index of the first axis.
    pub(crate) new_axis: bool,
    /// Read once per output tile but joined to a tensor read once per reduction tile: its tile
    /// is sent again with every reduction tile, and the cores keep the last one (see `lower`).
    pub(crate) repeated: bool,
}

/// Tensors that travel as one stream, in their order in the element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinGroup {
    pub(crate) parts: Vec<JoinedPart>,
    /// Shape of the joined element.
    pub(crate) shape: Vec<u64>,
}

/// Groups inputs into joined streams until each core's input streams fit its channels, or no
/// further join is possible (the channel check then names the competing streams). `shapes` holds
/// each input's tile element shape. Joined tensors split per core on a one-row grid are routed as
/// per-column broadcasts (the same thing there).
pub(crate) fn plan(
    kernel: &Kernel,
    device: &DeviceModel,
    inputs: &[TensorId],
    routing: &mut BTreeMap<TensorId, Routing>,
    shapes: &BTreeMap<TensorId, (Vec<u64>, u64)>,
    rows_used: u64,
    reduce_loops: &[TileLoop],
) -> Vec<JoinGroup> {
    let limit = device.limits(TileKind::Compute).dma_in;
    let reduce_dims: Vec<DimId> = reduce_loops.iter().map(|l| l.dim).collect();
    let key = |t: TensorId| -> Option<(Routing, aiec_runtime::DType)> {
        let route = match routing[&t] {
            Routing::PerCore if rows_used == 1 => Routing::PerColumn,
            Routing::PerCore => return None,
            r => r,
        };
        if shapes[&t].0.is_empty() {
            return None;
        }
        Some((route, kernel.tensors[t].dtype))
    };
    let in_reduction = |t: TensorId| element_view(kernel, t).dims().iter().any(|d| reduce_dims.contains(d));
    let rate = |g: &[TensorId]| g.iter().any(|&t| in_reduction(t));
    let mut groups: Vec<Vec<TensorId>> = inputs.iter().map(|&t| vec![t]).collect();
    while groups.len() > limit {
        let mut pair = None;
        // Same-rate joins first: a repeated tile costs bandwidth.
        'search: for same_rate in [true, false] {
            for i in 0..groups.len() {
                for j in i + 1..groups.len() {
                    let (ki, kj) = (key(groups[i][0]), key(groups[j][0]));
                    if ki.is_none() || ki != kj || (same_rate && rate(&groups[i]) != rate(&groups[j])) {
                        continue;
                    }
                    let members: Vec<TensorId> = groups[i].iter().chain(&groups[j]).copied().collect();
                    if layout(&members, shapes, &in_reduction).is_some() {
                        pair = Some((i, j));
                        break 'search;
                    }
                }
            }
        }
        let Some((i, j)) = pair else { break };
        let moved = groups.remove(j);
        groups[i].extend(moved);
    }
    let joined: Vec<(Routing, JoinGroup)> = groups
        .into_iter()
        .filter(|g| g.len() > 1)
        .filter_map(|g| Some((key(g[0])?.0, layout(&g, shapes, &in_reduction)?)))
        .collect();
    for (route, group) in &joined {
        for p in &group.parts {
            routing.insert(p.tensor, *route);
        }
    }
    joined.into_iter().map(|(_, g)| g).collect()
}

/// The joined element of `members`: the tiles of the highest rank first (in the given order),
/// then those of one axis fewer, each of which must equal the others' trailing axes.
fn layout(members: &[TensorId], shapes: &BTreeMap<TensorId, (Vec<u64>, u64)>, in_reduction: &dyn Fn(TensorId) -> bool) -> Option<JoinGroup> {
    let reduction_rate = members.iter().any(|&t| in_reduction(t));
    let rank = members.iter().map(|t| shapes[t].0.len()).max()?;
    let full: Vec<TensorId> = members.iter().copied().filter(|t| shapes[t].0.len() == rank).collect();
    let trailing = shapes[&full[0]].0[1..].to_vec();
    let row: u64 = trailing.iter().product();
    let mut parts = Vec::new();
    let mut first_axis = 0u64;
    for &t in &full {
        let shape = &shapes[&t].0;
        if shape[1..] != trailing[..] {
            return None;
        }
        parts.push(JoinedPart {
            tensor: t,
            element_offset: first_axis.checked_mul(row)?,
            first_axis_offset: first_axis,
            new_axis: false,
            repeated: reduction_rate && !in_reduction(t),
        });
        first_axis = first_axis.checked_add(shape[0])?;
    }
    for &t in members.iter().filter(|t| shapes[t].0.len() != rank) {
        if shapes[&t].0 != trailing {
            return None;
        }
        parts.push(JoinedPart {
            tensor: t,
            element_offset: first_axis.checked_mul(row)?,
            first_axis_offset: first_axis,
            new_axis: true,
            repeated: reduction_rate && !in_reduction(t),
        });
        first_axis += 1;
    }
    let mut shape = vec![first_axis];
    shape.extend(trailing);
    Some(JoinGroup { parts, shape })
}
