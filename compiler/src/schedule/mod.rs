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

pub mod place;
pub mod route;
pub mod sequence;

/// One loop of a core's program over the tiles of a dim.
#[derive(Debug, Clone, PartialEq)]
pub struct TileLoop {
    pub dim: DimId,
    /// Iterations per core.
    pub count: u64,
    /// Global tile index = step * `step_coef` + row_index * `row_coef` + col_index * `col_coef`.
    pub step_coef: u64,
    pub row_coef: u64,
    pub col_coef: u64,
}

/// Where output tiles run: the [`place`] pass's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Compute rows and columns used.
    pub rows_used: u64,
    pub cols_used: u64,
    /// The dims spread over rows and columns (the same dim for `over cores`).
    pub rows_dim: Option<DimId>,
    pub cols_dim: Option<DimId>,
    /// `spread D over cores`: output tiles of one dim go to every core.
    pub cores_mode: bool,
    /// Per core: the loops over output tiles (outermost first) and, inside each step, over the
    /// tiles of the dims reduced across tiles.
    pub step_loops: Vec<TileLoop>,
    pub reduce_loops: Vec<TileLoop>,
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFifo {
    pub name: String,
    pub producer: TileCoord,
    pub consumers: Vec<TileCoord>,
    pub depth: usize,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub tensor: TensorId,
    pub level: FifoLevel,
}

impl ObjectFifo {
    /// Elements of one FIFO element. The scheduler rejects a FIFO whose bytes times depth do not
    /// fit 64 bits (`fifo_elements`), so this and [`Self::bytes`] never saturate on a scheduled
    /// design.
    pub fn elements(&self) -> u64 {
        self.shape.iter().fold(1u64, |acc, &n| acc.saturating_mul(n))
    }
    pub fn bytes(&self) -> u64 {
        self.elements().saturating_mul(self.dtype.size_bytes() as u64)
    }
    /// The MLIR type of one element; a 0-d element (an input no statement reads) is `memref<T>`.
    pub fn memref(&self) -> String {
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
pub struct Link {
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub src_offsets: Vec<u64>,
    pub dst_offsets: Vec<u64>,
}

/// How a host tensor reaches (or leaves) the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    PerCore,
    PerRow,
    PerColumn,
    AllCores,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    pub tile: TileCoord,
    pub row_index: u32,
    pub col_index: u32,
    /// FIFO each host tensor arrives on / leaves by, for this core.
    pub fifos: BTreeMap<TensorId, usize>,
}

/// One shim DMA: 4 offsets/sizes/strides in elements, outermost first (offsets folded into d0).
#[derive(Debug, Clone, PartialEq)]
pub struct DmaTransfer {
    pub arg: usize,
    pub fifo: usize,
    pub offset: u64,
    pub sizes: [u64; 4],
    pub strides: [u64; 4],
    pub id: u32,
    pub issue_token: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SequenceOp {
    Dma(DmaTransfer),
    Wait { fifo: usize },
}

#[derive(Debug, Clone)]
pub struct Design {
    pub device: DeviceModel,
    pub rows_used: u32,
    pub cols_used: u32,
    pub step_loops: Vec<TileLoop>,
    pub reduce_loops: Vec<TileLoop>,
    pub fifos: Vec<ObjectFifo>,
    pub links: Vec<Link>,
    pub cores: Vec<Core>,
    pub routing: BTreeMap<TensorId, Routing>,
    /// Runtime-sequence arguments: the host tensors, ins then outs in declaration order.
    pub args: Vec<TensorId>,
    pub sequence: Vec<SequenceOp>,
    /// Tiles as nodes, object FIFOs as edges (one edge per consumer).
    pub graph: DiGraph<TileCoord, usize>,
    pub tile_nodes: BTreeMap<TileCoord, NodeIndex>,
}

impl Design {
    pub fn tiles(&self) -> impl Iterator<Item = TileCoord> + '_ {
        self.tile_nodes.keys().copied()
    }
    pub fn kind(&self, t: TileCoord) -> TileKind {
        self.device.kind(t)
    }
    pub fn fifo_by_name(&self, name: &str) -> Option<usize> {
        self.fifos.iter().position(|f| f.name == name)
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
pub fn reduction_stmt(kernel: &Kernel) -> Option<usize> {
    kernel.stmts.iter().position(|s| match &s.value {
        Expr::Reduce { dims, .. } => dims.iter().any(|&d| kernel.dims[d].is_split()),
        _ => false,
    })
}

/// Split dims reduced across tiles by the reduction statement.
pub fn reduction_dims(kernel: &Kernel) -> Vec<DimId> {
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
pub fn access_patterns(kernel: &Kernel, t: TensorId) -> Vec<Vec<Affine>> {
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
            if let Expr::Load { tensor, indices, .. } = e {
                if *tensor == t && !out.contains(indices) {
                    out.push(indices.clone());
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
pub struct ViewAxis {
    /// The dim this axis walks (None: a whole tensor axis, indexed by the access's expression).
    pub dim: Option<DimId>,
    pub extent: u64,
    /// Element stride in the host tensor.
    pub stride: u64,
}

/// The tile element of a host tensor: which part of the tensor one FIFO element holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementView {
    pub axes: Vec<ViewAxis>,
    /// Constant element offset of the access.
    pub constant: u64,
    /// Axes follow the tensor's axes one to one (several access patterns); otherwise they follow
    /// the distinct dims of the single pattern (`audio[160*T + S]` gives axes T and S).
    pub by_tensor_axis: bool,
}

impl ElementView {
    pub fn shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.extent).collect()
    }
    pub fn dims(&self) -> Vec<DimId> {
        self.axes.iter().filter_map(|a| a.dim).collect()
    }
    pub fn stride_of(&self, d: DimId) -> u64 {
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
pub fn element_view(kernel: &Kernel, t: TensorId) -> ElementView {
    let tensor = &kernel.tensors[t];
    let patterns = access_patterns(kernel, t);
    let mut axis_strides = vec![1u64; tensor.shape.len()];
    for i in (0..tensor.shape.len().saturating_sub(1)).rev() {
        axis_strides[i] = axis_strides[i + 1].saturating_mul(tensor.shape[i + 1]);
    }
    if patterns.len() <= 1 {
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
        let same = first.is_some() && patterns.iter().all(|p| p[axis].as_dim() == first);
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

/// Runs the scheduling passes on the whole array: [`place`], [`route`], [`sequence`].
pub fn schedule(kernel: &Kernel, device: &DeviceModel) -> Result<Design, CompileError> {
    schedule_within(kernel, device, device.compute_rows as u64, device.columns as u64)
}

/// [`schedule`] using at most `max_rows` compute rows and `max_cols` columns of the array (the
/// placement search's smaller candidates).
pub fn schedule_within(kernel: &Kernel, device: &DeviceModel, max_rows: u64, max_cols: u64) -> Result<Design, CompileError> {
    let placement = place::place(kernel, device, max_rows, max_cols)?;
    let mut design = route::route(kernel, device, placement)?;
    design.sequence = sequence::sequence(kernel, &design)?;
    Ok(design)
}
