//! Scheduling and placement: from a typed kernel to a design graph — which compute tiles run which
//! output tiles, the object FIFOs (shim -> memory tile -> compute tiles and back) that carry every
//! tensor, and the runtime sequence of shim DMAs that feeds and drains them.
//!
//! The placement rule is uniform (no kernel is known by name):
//! * The split dims of the output are the *step* dims; each compute tile loops over its share of
//!   their tiles. `spread X over rows` gives tile `x` to core row `x mod R`, `over cols` to column
//!   `x mod C`, `over cores` to core `x mod (R*C)` (rows first within a column).
//! * Split dims reduced by the first statement are *reduction* dims, looped inside each step.
//! * Each host input is routed by what it depends on: different data per core -> per-column
//!   memory-tile split; only on the row dim -> one broadcast FIFO per row; only on the column dim ->
//!   one broadcast per column; on neither -> one broadcast to all cores. Outputs are joined per
//!   column on the memory tile.
//! * Every FIFO is fed/drained by one shim DMA pattern per step chunk; patterns that do not fit the
//!   shim BD's 4 dimensions are chunked along the outer step loops, with a `dma_wait` per chunk.

use crate::device::{DeviceModel, TileCoord, TileKind};
use crate::diag::{CompileError, Diagnostic, Span};
use crate::ir::{Affine, DimId, Expr, Kernel, TensorId};
use aiec_runtime::DType;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeMap;

pub(crate) mod join;
pub(crate) mod place;
pub(crate) mod route;
pub(crate) mod sequence;

/// One loop of a core's program over the tiles of a dim.
#[derive(Debug, Clone, PartialEq)]
pub struct TileLoop {
    /// The dim whose tiles the loop walks.
    pub(crate) dim: DimId,
    /// Iterations per core.
    pub(crate) count: u64,
    /// Global tile index = step * `step_coef` + row_index * `row_coef` + col_index * `col_coef`.
    pub(crate) step_coef: u64,
    pub(crate) row_coef: u64,
    pub(crate) col_coef: u64,
}

/// Where output tiles run: the [`place`] pass's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    /// Compute rows and columns used.
    pub(crate) rows_used: u64,
    pub(crate) cols_used: u64,
    /// The dims spread over rows and columns (the same dim for `over cores`).
    pub(crate) rows_dim: Option<DimId>,
    pub(crate) cols_dim: Option<DimId>,
    /// `spread D over cores`: output tiles of one dim go to every core.
    pub(crate) cores_mode: bool,
    /// Per core: the loops over output tiles (outermost first) and, inside each step, over the
    /// tiles of the dims reduced across tiles.
    pub(crate) step_loops: Vec<TileLoop>,
    pub(crate) reduce_loops: Vec<TileLoop>,
}

/// Which hop of the data path an object FIFO is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoLevel {
    /// shim -> memory tile
    HostToMem,
    /// memory tile -> compute tile(s)
    MemToCore,
    /// compute tile -> memory tile
    CoreToMem,
    /// memory tile -> shim
    MemToHost,
}

/// An `aie.objectfifo`: a producer tile, its consumers and the buffers between them.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFifo {
    /// The symbol name in design.mlir.
    pub(crate) name: String,
    pub(crate) producer: TileCoord,
    pub(crate) consumers: Vec<TileCoord>,
    /// Buffers (elements) in flight; 2 is double buffering.
    pub depth: usize,
    pub(crate) dtype: DType,
    /// Shape of one element (a tile of the tensor).
    pub shape: Vec<u64>,
    /// The host tensor it carries (the first, for a joined stream).
    pub(crate) tensor: TensorId,
    /// For a joined stream to the cores, each tensor's place in the element (`tensor` first);
    /// empty otherwise.
    pub(crate) joined: Vec<join::JoinedPart>,
    /// Which hop it is.
    pub level: FifoLevel,
}

impl ObjectFifo {
    /// Elements of one FIFO element. The scheduler rejects a FIFO whose bytes times depth do not
    /// fit 64 bits (`fifo_elements`), so this and [`Self::bytes`] never saturate on a scheduled
    /// design.
    pub(crate) fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |acc, &n| acc.saturating_mul(n))
    }
    pub(crate) fn bytes(&self) -> u64 {
        self.elements().saturating_mul(self.dtype.size_bytes() as u64)
    }
    /// The MLIR type of one element; a 0-d element (an input no statement reads) is `memref<T>`.
    pub(crate) fn memref(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        if dims.is_empty() {
            format!("memref<{}>", self.dtype.mlir())
        } else {
            format!("memref<{}x{}>", dims.join("x"), self.dtype.mlir())
        }
    }
}

/// `aie.objectfifo.link`: forward (1 -> 1), split (1 -> N, `dst_offsets`) or join (N -> 1, `src_offsets`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    pub(crate) inputs: Vec<usize>,
    pub(crate) outputs: Vec<usize>,
    pub(crate) src_offsets: Vec<u64>,
    pub(crate) dst_offsets: Vec<u64>,
}

/// How a host tensor reaches (or leaves) the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    PerCore,
    PerRow,
    PerColumn,
    AllCores,
}

/// A compute tile running the kernel, with its place in the grid of cores used.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    pub(crate) tile: TileCoord,
    /// Row and column within the grid of cores used (0-based).
    pub(crate) row_index: u32,
    pub(crate) col_index: u32,
    /// FIFO each host tensor arrives on / leaves by, for this core.
    pub(crate) fifos: BTreeMap<TensorId, usize>,
}

/// One shim DMA: 4 offsets/sizes/strides in elements, outermost first (offsets folded into d0).
#[derive(Debug, Clone, PartialEq)]
pub struct DmaTransfer {
    /// Runtime-sequence argument index.
    pub(crate) arg: usize,
    /// The FIFO (index into [`Design::fifos`]) it feeds or drains.
    pub(crate) fifo: usize,
    pub(crate) offset: u64,
    pub(crate) sizes: [u64; 4],
    pub(crate) strides: [u64; 4],
    /// Buffer-descriptor id.
    pub(crate) id: u32,
    /// Issues a completion token: true for output transfers, which a `dma_wait` waits on.
    pub issue_token: bool,
}

/// One operation of the runtime sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceOp {
    /// Starts a shim DMA.
    Dma(DmaTransfer),
    /// `dma_wait`: waits for the output transfers issued so far on the FIFO.
    Wait {
        /// The FIFO (index into [`Design::fifos`]).
        fifo: usize,
    },
}

/// A scheduled kernel: placement, object FIFOs and links, cores and the runtime sequence.
#[derive(Debug, Clone)]
pub struct Design {
    pub(crate) device: DeviceModel,
    /// Compute rows used.
    pub rows_used: u32,
    /// Columns used.
    pub cols_used: u32,
    pub(crate) step_loops: Vec<TileLoop>,
    /// Per core, inside each step: the loops over the tiles of dims reduced across tiles.
    pub reduce_loops: Vec<TileLoop>,
    /// Every object FIFO.
    pub fifos: Vec<ObjectFifo>,
    pub(crate) links: Vec<Link>,
    /// The compute tiles used.
    pub cores: Vec<Core>,
    pub(crate) routing: BTreeMap<TensorId, Routing>,
    /// Runtime-sequence arguments: the host tensors, ins then outs in declaration order.
    pub(crate) args: Vec<TensorId>,
    /// The runtime sequence, in order.
    pub sequence: Vec<SequenceOp>,
    /// Tiles as nodes, object FIFOs as edges (one edge per consumer).
    pub(crate) graph: DiGraph<TileCoord, usize>,
    pub(crate) tile_nodes: BTreeMap<TileCoord, NodeIndex>,
}

impl Design {
    /// Whether the cores acquire FIFO `f` inside the reduction loop: it carries a tensor read
    /// along a reduced dim (a joined stream carries every tensor at that rate).
    pub(crate) fn in_reduction_loop(&self, kernel: &Kernel, f: usize) -> bool {
        let fifo = &self.fifos[f];
        let reduced = |t: TensorId| element_view(kernel, t).dims().iter().any(|d| self.reduce_loops.iter().any(|l| l.dim == *d));
        reduced(fifo.tensor) || fifo.joined.iter().any(|p| reduced(p.tensor))
    }
    /// Whether a shim-side FIFO's tensor is sent once per reduction tile though read once per
    /// output tile (a join with a tensor of the reduction rate).
    pub(crate) fn repeated_per_reduction(&self, f: usize) -> bool {
        let tensor = self.fifos[f].tensor;
        self.links
            .iter()
            .filter(|l| l.inputs.contains(&f))
            .flat_map(|l| &l.outputs)
            .any(|&o| self.fifos[o].joined.iter().any(|p| p.repeated && p.tensor == tensor))
    }
    pub(crate) fn tiles(&self) -> impl Iterator<Item = TileCoord> + '_ {
        self.tile_nodes.keys().copied()
    }
    pub(crate) fn kind(&self, t: TileCoord) -> TileKind {
        self.device.kind(t)
    }
}

fn schedule_error(msg: impl Into<String>, span: Option<&Span>) -> CompileError {
    CompileError::Schedule(Diagnostic::new(msg, span))
}

fn limit_error(msg: impl Into<String>, span: Option<&Span>) -> CompileError {
    CompileError::Limit(Diagnostic::new(msg, span))
}

/// Elements of one tile element of tensor `t` (`shape`), after checking that the largest FIFO
/// built from it (a memory-tile FIFO of `rows` elements, `depth` deep) has a size that fits 64
/// bits: every later size computation on FIFOs is then exact.
fn fifo_elements(kernel: &Kernel, t: TensorId, shape: &[u64], rows: u64, depth: usize) -> Result<u64, CompileError> {
    let tensor = &kernel.tensors[t];
    let elems = shape.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n));
    let total = elems
        .and_then(|e| e.checked_mul(rows))
        .and_then(|e| e.checked_mul(tensor.dtype.size_bytes() as u64))
        .and_then(|e| e.checked_mul(depth as u64));
    match (elems, total) {
        (Some(e), Some(_)) => Ok(e),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            Err(limit_error(
                format!(
                    "size of the tile element of {} ({} {} elements) overflows 64-bit arithmetic; use smaller tiles",
                    tensor.name,
                    dims.join(" x "),
                    tensor.dtype.mlir()
                ),
                Some(&tensor.span),
            ))
        }
    }
}

/// The largest divisor of `n` that is at most `max`.
fn largest_divisor_at_most(n: u64, max: u64) -> u64 {
    (1..=max.min(n)).rev().find(|d| n.is_multiple_of(*d)).unwrap_or(1)
}

/// The statement that reduces across tiles of a split dim (the K of a matmul), if any. It and the
/// statements before it run inside the reduction loop.
pub(crate) fn reduction_stmt(kernel: &Kernel) -> Option<usize> {
    kernel.stmts.iter().position(|s| match &s.value {
        Expr::Reduce { dims, .. } => dims.iter().any(|&d| kernel.dims[d].is_split()),
        _ => false,
    })
}

/// Split dims reduced across tiles by the reduction statement.
pub(crate) fn reduction_dims(kernel: &Kernel) -> Vec<DimId> {
    let Some(i) = reduction_stmt(kernel) else { return vec![] };
    let mut out = Vec::new();
    if let Expr::Reduce { dims, .. } = &kernel.stmts[i].value {
        for &d in dims {
            if kernel.dims[d].is_split() {
                out.push(d);
            }
        }
    }
    out
}

/// Every distinct index pattern a host tensor is accessed with (loads, and stores for outputs).
pub(crate) fn access_patterns(kernel: &Kernel, t: TensorId) -> Vec<Vec<Affine>> {
    let mut out: Vec<Vec<Affine>> = Vec::new();
    if let Some(a) = &kernel.tensors[t].access {
        out.push(a.clone());
    }
    for stmt in &kernel.stmts {
        if stmt.target == t {
            let p: Vec<Affine> = stmt.target_dims.iter().map(|&d| Affine::dim(d)).collect();
            if !out.contains(&p) {
                out.push(p);
            }
        }
        stmt.value.walk(&mut |e| {
            if let Expr::Load { tensor, indices, .. } | Expr::Gather { tensor, indices, .. } = e {
                if *tensor == t && !out.contains(indices) {
                    out.push(indices.clone());
                }
            }
        });
    }
    out
}

/// The axes of a host tensor that some statement gathers (indexes by a tensor's values).
pub(crate) fn gathered_axes(kernel: &Kernel, t: TensorId) -> Vec<usize> {
    let mut out = Vec::new();
    for stmt in &kernel.stmts {
        stmt.value.walk(&mut |e| {
            if let Expr::Gather { tensor, axis, .. } = e {
                if *tensor == t && !out.contains(axis) {
                    out.push(*axis);
                }
            }
        });
    }
    out
}

/// The dims a host tensor's accesses use.
pub(crate) fn host_dims(kernel: &Kernel, t: TensorId) -> Vec<DimId> {
    let mut dims = Vec::new();
    for p in access_patterns(kernel, t) {
        for a in &p {
            for d in a.dims() {
                if !dims.contains(&d) {
                    dims.push(d);
                }
            }
        }
    }
    dims
}

/// One axis of the tile element a FIFO carries for a host tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewAxis {
    /// The dim this axis walks (None: a whole tensor axis, indexed by the access's expression).
    pub(crate) dim: Option<DimId>,
    pub(crate) extent: u64,
    /// Element stride in the host tensor.
    pub(crate) stride: u64,
}

/// The tile element of a host tensor: which part of the tensor one FIFO element holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ElementView {
    pub(crate) axes: Vec<ViewAxis>,
    /// Constant element offset of the access.
    pub(crate) constant: u64,
    /// Axes follow the tensor's axes one to one (several access patterns); otherwise they follow
    /// the distinct dims of the single pattern (`audio[160*T + S]` gives axes T and S).
    pub(crate) by_tensor_axis: bool,
}

impl ElementView {
    pub(crate) fn shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.extent).collect()
    }
    pub(crate) fn dims(&self) -> Vec<DimId> {
        self.axes.iter().filter_map(|a| a.dim).collect()
    }
    pub(crate) fn stride_of(&self, d: DimId) -> u64 {
        self.axes.iter().filter(|a| a.dim == Some(d)).fold(0u64, |acc, a| acc.wrapping_add(a.stride))
    }
}

/// Tile-element view of a host tensor. With one access pattern the element has one axis per
/// distinct dim (in order of first appearance); with several (e.g. `gb[0, D]` and `gb[1, D]`),
/// one axis per tensor axis: a tile of the dim where every pattern uses the same plain dim there,
/// the whole axis elsewhere (such axes may only involve unsplit dims; checked by the scheduler).
///
/// The type checker keeps host tensors within [`crate::check::MAX_ARGUMENT_BYTES`], index
/// constants inside their axis and coefficients at most their axis's extent, so every stride and
/// offset here is at most the tensor's element count times its rank, and no product overflows
/// (they saturate rather than trust that). A negative coefficient gives a negative stride, held
/// in two's complement (sums of strides wrap accordingly; the shim DMA rejects such strides).
pub(crate) fn element_view(kernel: &Kernel, t: TensorId) -> ElementView {
    let tensor = &kernel.tensors[t];
    let patterns = access_patterns(kernel, t);
    let mut axis_strides = vec![1u64; tensor.shape.len()];
    for i in (0..tensor.shape.len().saturating_sub(1)).rev() {
        axis_strides[i] = axis_strides[i + 1].saturating_mul(tensor.shape[i + 1]);
    }
    // A gathered axis is sent whole: which element a core reads is known only at run time.
    let gathered = gathered_axes(kernel, t);
    // A quotient or remainder has no stride: its axis is sent whole and indexed on the core.
    let affine = patterns.iter().all(|p| p.iter().all(Affine::is_affine));
    if patterns.len() <= 1 && gathered.is_empty() && affine {
        let access = patterns.first().cloned().unwrap_or_default();
        let mut axes: Vec<ViewAxis> = Vec::new();
        let mut constant = 0i64;
        for (axis, a) in access.iter().enumerate() {
            let axis_stride = i64::try_from(axis_strides[axis]).unwrap_or(i64::MAX);
            constant = constant.saturating_add(a.constant.saturating_mul(axis_stride));
            for &(coef, d) in &a.terms {
                let stride = coef.saturating_mul(axis_stride) as u64;
                if let Some(v) = axes.iter_mut().find(|v| v.dim == Some(d)) {
                    v.stride = v.stride.wrapping_add(stride);
                } else {
                    axes.push(ViewAxis {
                        dim: Some(d),
                        extent: kernel.dims[d].tile,
                        stride,
                    });
                }
            }
        }
        return ElementView {
            axes,
            constant: constant.max(0) as u64,
            by_tensor_axis: false,
        };
    }
    let mut axes = Vec::new();
    for (axis, &extent) in tensor.shape.iter().enumerate() {
        let first = patterns[0][axis].as_dim();
        let same = first.is_some() && !gathered.contains(&axis) && patterns.iter().all(|p| p[axis].as_dim() == first);
        match (same, first) {
            (true, Some(d)) => axes.push(ViewAxis {
                dim: Some(d),
                extent: kernel.dims[d].tile,
                stride: axis_strides[axis],
            }),
            _ => axes.push(ViewAxis {
                dim: None,
                extent,
                stride: axis_strides[axis],
            }),
        }
    }
    ElementView {
        axes,
        constant: 0,
        by_tensor_axis: true,
    }
}

/// Runs the scheduling passes on the whole array: `place`, `route`, `sequence`.
pub fn schedule(kernel: &Kernel, device: &DeviceModel) -> Result<Design, CompileError> {
    schedule_within(kernel, device, device.compute_rows as u64, device.columns as u64)
}

/// [`schedule`] using at most `max_rows` compute rows and `max_cols` columns of the array (the
/// placement search's smaller candidates).
pub(crate) fn schedule_within(kernel: &Kernel, device: &DeviceModel, max_rows: u64, max_cols: u64) -> Result<Design, CompileError> {
    let placement = place::place(kernel, device, max_rows, max_cols)?;
    let mut design = route::route(kernel, device, placement)?;
    design.sequence = sequence::sequence(kernel, &design)?;
    Ok(design)
}
