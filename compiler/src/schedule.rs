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
use crate::dsl::ast::{ReduceOp, Role};
use crate::ir::{Affine, DimId, Expr, Kernel, TensorId};
use aiec_runtime::DType;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeMap;

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
fn host_dims(kernel: &Kernel, t: TensorId) -> Vec<DimId> {
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

pub fn schedule(kernel: &Kernel, device: &DeviceModel) -> Result<Design, CompileError> {
    schedule_within(kernel, device, device.compute_rows as u64, device.columns as u64)
}

/// [`schedule`] using at most `max_rows` compute rows and `max_cols` columns of the array (the
/// placement search's smaller candidates).
pub fn schedule_within(kernel: &Kernel, device: &DeviceModel, max_rows: u64, max_cols: u64) -> Result<Design, CompileError> {
    let max_rows = max_rows.clamp(1, device.compute_rows as u64);
    let max_cols = max_cols.clamp(1, device.columns as u64);
    let outputs: Vec<TensorId> = kernel.tensors.iter().enumerate().filter(|(_, t)| t.role == Role::Out).map(|(i, _)| i).collect();
    let inputs: Vec<TensorId> = kernel.tensors.iter().enumerate().filter(|(_, t)| t.role == Role::In).map(|(i, _)| i).collect();
    if outputs.is_empty() {
        return Err(schedule_error("kernel has no `out` tensor", Some(&kernel.span)));
    }
    let out_dims = host_dims(kernel, outputs[0]);
    let reduce = reduction_dims(kernel);

    // Every split dim must be a step dim (in the outputs) or a reduction dim of the first statement.
    for (d, dim) in kernel.dims.iter().enumerate() {
        if !dim.is_split() || reduce.contains(&d) {
            continue;
        }
        if !outputs.iter().all(|&o| host_dims(kernel, o).contains(&d)) {
            return Err(schedule_error(
                format!(
                    "dim {} is split (tile {} of {}) but is neither a dim of every output nor reduced across tiles by the first statement; only the first statement may reduce across tiles, so leave {} unsplit",
                    dim.name, dim.tile, dim.size, dim.name
                ),
                Some(&dim.span),
            ));
        }
    }
    // A split dim is either stepped over (an output dim) or reduced across tiles, never both: the
    // reduction loop and the step loop over it would be one loop with two meanings.
    for &d in &reduce {
        let dim = &kernel.dims[d];
        if let Some(&o) = outputs.iter().find(|&&o| host_dims(kernel, o).contains(&d)) {
            return Err(schedule_error(
                format!(
                    "dim {} is split (tile {} of {}) and reduced across tiles by the first statement, so it cannot also index the output {}; leave {} unsplit, or reduce in one kernel and use the result in another",
                    dim.name, dim.tile, dim.size, kernel.tensors[o].name, dim.name
                ),
                Some(&kernel.tensors[o].span),
            ));
        }
    }
    // Outputs step together: they share the split dims, in one order; unsplit dims may differ
    // (`q[M, N]` with its per-row scale `s[M]`).
    let split_of = |o: TensorId| -> Vec<DimId> { host_dims(kernel, o).into_iter().filter(|&d| kernel.dims[d].is_split()).collect() };
    for &o in &outputs[1..] {
        if split_of(o) != split_of(outputs[0]) {
            let names = |o: TensorId| -> String {
                let v: Vec<&str> = split_of(o).iter().map(|&d| kernel.dims[d].name.as_str()).collect();
                if v.is_empty() {
                    "none".into()
                } else {
                    v.join(", ")
                }
            };
            return Err(schedule_error(
                format!(
                    "outputs {} and {} must have the same split dims in the same order (found [{}] and [{}]); their unsplit dims may differ",
                    kernel.tensors[outputs[0]].name,
                    kernel.tensors[o].name,
                    names(outputs[0]),
                    names(o)
                ),
                Some(&kernel.tensors[o].span),
            ));
        }
    }
    // Tensors indexed by a reduction dim may only be read inside the reduction loop.
    let red_stmt = reduction_stmt(kernel);
    let split_reduce_nested = |e: &Expr| {
        let mut found = false;
        e.walk(&mut |x| {
            if let Expr::Reduce { dims, .. } = x {
                if dims.iter().any(|&d| kernel.dims[d].is_split()) {
                    found = true;
                }
            }
        });
        found
    };
    for (si, stmt) in kernel.stmts.iter().enumerate() {
        let inside = red_stmt.map(|r| si <= r).unwrap_or(false);
        let top_is_reduce = Some(si) == red_stmt;
        let nested = match (&stmt.value, top_is_reduce) {
            (Expr::Reduce { body, .. }, true) => split_reduce_nested(body),
            (v, _) => split_reduce_nested(v),
        };
        if nested {
            return Err(schedule_error(
                "a reduction across tiles of a split dim must be the whole value of its statement (`T[...] = sum[K](...)`)",
                Some(&stmt.span),
            ));
        }
        if inside {
            continue;
        }
        let mut bad = None;
        stmt.value.walk(&mut |e| {
            if let Expr::Load { tensor, indices, .. } = e {
                if indices.iter().any(|a| a.dims().any(|d| reduce.contains(&d))) {
                    bad = Some(*tensor);
                }
            }
        });
        if let Some(t) = bad {
            return Err(schedule_error(
                format!(
                    "statement {} reads {} along the split reduction dim, but runs after the reduction loop; only the reducing statement and those before it run inside it",
                    si + 1,
                    kernel.tensors[t].name
                ),
                Some(&stmt.span),
            ));
        }
    }
    if let Some(r) = red_stmt {
        if let Expr::Reduce { op, .. } = &kernel.stmts[r].value {
            if *op != ReduceOp::Sum && kernel.stmts[r].accumulate {
                return Err(schedule_error(
                    "`+=` with a max/min reduction across tiles is ambiguous; use `=`",
                    Some(&kernel.stmts[r].span),
                ));
            }
        }
    }

    // Grid.
    let spread_span = kernel.spread.span.as_ref();
    let (rows_dim, cols_dim) = (kernel.spread.rows, kernel.spread.cols);
    for d in [rows_dim, cols_dim].into_iter().flatten() {
        if !out_dims.contains(&d) {
            return Err(schedule_error(
                format!("spread names dim {} which is not a dim of the output", kernel.dims[d].name),
                spread_span,
            ));
        }
    }
    let (rows_used, cols_used);
    let cores_mode = rows_dim.is_some() && rows_dim == cols_dim;
    if cores_mode {
        let d = rows_dim.unwrap();
        let t = kernel.dims[d].tiles();
        // The most cores whose count divides the tiles and fits rows x columns.
        let (r, c) = (1..=(max_rows * max_cols).min(t))
            .rev()
            .filter(|n| t.is_multiple_of(*n))
            .find_map(|n| {
                let r = largest_divisor_at_most(n, max_rows);
                (n / r <= max_cols).then_some((r, n / r))
            })
            .unwrap_or((1, 1));
        rows_used = r;
        cols_used = c;
    } else {
        rows_used = rows_dim.map(|d| largest_divisor_at_most(kernel.dims[d].tiles(), max_rows)).unwrap_or(1);
        cols_used = cols_dim.map(|d| largest_divisor_at_most(kernel.dims[d].tiles(), max_cols)).unwrap_or(1);
    }

    // Step loops over the output's split dims, in the output's dim order.
    let mut step_loops = Vec::new();
    for &d in &out_dims {
        let dim = &kernel.dims[d];
        if !dim.is_split() {
            continue;
        }
        let t = dim.tiles();
        let lp = if cores_mode && Some(d) == rows_dim {
            let total = rows_used * cols_used;
            TileLoop {
                dim: d,
                count: t / total,
                step_coef: total,
                row_coef: 1,
                col_coef: rows_used,
            }
        } else if Some(d) == rows_dim {
            TileLoop {
                dim: d,
                count: t / rows_used,
                step_coef: rows_used,
                row_coef: 1,
                col_coef: 0,
            }
        } else if Some(d) == cols_dim {
            TileLoop {
                dim: d,
                count: t / cols_used,
                step_coef: cols_used,
                row_coef: 0,
                col_coef: 1,
            }
        } else {
            TileLoop {
                dim: d,
                count: t,
                step_coef: 1,
                row_coef: 0,
                col_coef: 0,
            }
        };
        step_loops.push(lp);
    }
    let reduce_loops: Vec<TileLoop> = reduce
        .iter()
        .map(|&d| TileLoop {
            dim: d,
            count: kernel.dims[d].tiles(),
            step_coef: 1,
            row_coef: 0,
            col_coef: 0,
        })
        .collect();

    let depth = kernel.depth;
    let mut fifos: Vec<ObjectFifo> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut cores: Vec<Core> = Vec::new();
    for c in 0..cols_used as u32 {
        for r in 0..rows_used as u32 {
            cores.push(Core {
                tile: device.compute_tile(c, r),
                row_index: r,
                col_index: c,
                fifos: BTreeMap::new(),
            });
        }
    }
    let core_at = |c: u32, r: u32| -> usize { (c as u64 * rows_used + r as u64) as usize };
    let shim = |c: u32| TileCoord::new(c, device.shim_row);
    let mem = |c: u32| TileCoord::new(c, device.memory_row);

    let depends = |t: TensorId, d: Option<DimId>| d.map(|d| host_dims(kernel, t).contains(&d)).unwrap_or(false);
    let mut routing = BTreeMap::new();
    for &t in &inputs {
        let tensor = &kernel.tensors[t];
        let view = element_view(kernel, t);
        for p in access_patterns(kernel, t) {
            for (axis, a) in p.iter().enumerate() {
                if view.by_tensor_axis && view.axes[axis].dim.is_none() {
                    if let Some(d) = a.dims().find(|&d| kernel.dims[d].is_split()) {
                        return Err(schedule_error(
                            format!(
                                "{} is accessed with several index patterns, so its axis {} is sent whole; dim {} used there must not be split",
                                tensor.name, axis, kernel.dims[d].name
                            ),
                            Some(&tensor.span),
                        ));
                    }
                }
            }
        }
        let elem_shape: Vec<u64> = view.shape();
        let elems = fifo_elements(kernel, t, &elem_shape, rows_used, depth)?;
        let by_row = depends(t, rows_dim) && rows_used > 1;
        let by_col = depends(t, cols_dim) && cols_used > 1;
        let route = if cores_mode {
            if depends(t, rows_dim) && rows_used * cols_used > 1 {
                Routing::PerCore
            } else {
                Routing::AllCores
            }
        } else {
            match (by_row, by_col) {
                (true, true) => Routing::PerCore,
                // One broadcast per row needs a shim column per row; with more rows than columns
                // each column gets its own copy, split over its cores.
                (true, false) if rows_used <= cols_used => Routing::PerRow,
                (true, false) => Routing::PerCore,
                (false, true) => Routing::PerColumn,
                (false, false) => Routing::AllCores,
            }
        };
        routing.insert(t, route);
        let mk = |name: String, producer, consumers: Vec<TileCoord>, shape: Vec<u64>, level| ObjectFifo {
            name,
            producer,
            consumers,
            depth,
            dtype: tensor.dtype,
            shape,
            tensor: t,
            level,
        };
        match route {
            Routing::PerCore => {
                for c in 0..cols_used as u32 {
                    let l2 = fifos.len();
                    fifos.push(mk(
                        format!("{}_L2_c{}", tensor.name, c),
                        shim(c),
                        vec![mem(c)],
                        vec![elems * rows_used],
                        FifoLevel::HostToMem,
                    ));
                    let mut outs = Vec::new();
                    let mut offs = Vec::new();
                    for r in 0..rows_used as u32 {
                        let f = fifos.len();
                        let core = core_at(c, r);
                        fifos.push(mk(
                            format!("{}_c{}r{}", tensor.name, c, r),
                            mem(c),
                            vec![cores[core].tile],
                            elem_shape.clone(),
                            FifoLevel::MemToCore,
                        ));
                        cores[core].fifos.insert(t, f);
                        outs.push(f);
                        offs.push(r as u64 * elems);
                    }
                    let dst = if outs.len() > 1 { offs } else { vec![] };
                    links.push(Link {
                        inputs: vec![l2],
                        outputs: outs,
                        src_offsets: vec![],
                        dst_offsets: dst,
                    });
                }
            }
            Routing::PerRow | Routing::PerColumn | Routing::AllCores => {
                // Broadcasts: (name suffix, shim/memory column, member cores) per FIFO.
                let groups: Vec<(String, u32, Vec<usize>)> = match route {
                    Routing::PerRow => (0..rows_used as u32)
                        .map(|r| (format!("_r{r}"), r % cols_used as u32, (0..cols_used as u32).map(|c| core_at(c, r)).collect()))
                        .collect(),
                    Routing::PerColumn => (0..cols_used as u32)
                        .map(|c| (format!("_c{c}"), c, (0..rows_used as u32).map(|r| core_at(c, r)).collect()))
                        .collect(),
                    _ => vec![(String::new(), 0, (0..cores.len()).collect())],
                };
                for (suffix, c, members) in groups {
                    let l2 = fifos.len();
                    fifos.push(mk(
                        format!("{}_L2{suffix}", tensor.name),
                        shim(c),
                        vec![mem(c)],
                        elem_shape.clone(),
                        FifoLevel::HostToMem,
                    ));
                    let f = fifos.len();
                    let consumers: Vec<TileCoord> = members.iter().map(|&m| cores[m].tile).collect();
                    fifos.push(mk(
                        format!("{}{suffix}", tensor.name),
                        mem(c),
                        consumers,
                        elem_shape.clone(),
                        FifoLevel::MemToCore,
                    ));
                    for m in members {
                        cores[m].fifos.insert(t, f);
                    }
                    links.push(Link {
                        inputs: vec![l2],
                        outputs: vec![f],
                        src_offsets: vec![],
                        dst_offsets: vec![],
                    });
                }
            }
        }
    }
    for &t in &outputs {
        let tensor = &kernel.tensors[t];
        let all_spread_used = (rows_used == 1 || depends(t, rows_dim)) && (cols_used == 1 || depends(t, cols_dim));
        if !all_spread_used {
            return Err(schedule_error(
                format!("output {} must depend on every spread dim", tensor.name),
                Some(&tensor.span),
            ));
        }
        routing.insert(t, Routing::PerCore);
        let view = element_view(kernel, t);
        let elem_shape: Vec<u64> = view.shape();
        let elems = fifo_elements(kernel, t, &elem_shape, rows_used, depth)?;
        for c in 0..cols_used as u32 {
            let mut ins = Vec::new();
            let mut offs = Vec::new();
            for r in 0..rows_used as u32 {
                let core = core_at(c, r);
                let f = fifos.len();
                fifos.push(ObjectFifo {
                    name: format!("{}_c{}r{}", tensor.name, c, r),
                    producer: cores[core].tile,
                    consumers: vec![mem(c)],
                    depth,
                    dtype: tensor.dtype,
                    shape: elem_shape.clone(),
                    tensor: t,
                    level: FifoLevel::CoreToMem,
                });
                cores[core].fifos.insert(t, f);
                ins.push(f);
                offs.push(r as u64 * elems);
            }
            let l2 = fifos.len();
            fifos.push(ObjectFifo {
                name: format!("{}_L2_c{}", tensor.name, c),
                producer: mem(c),
                consumers: vec![shim(c)],
                depth,
                dtype: tensor.dtype,
                shape: vec![elems * rows_used],
                tensor: t,
                level: FifoLevel::MemToHost,
            });
            let src = if ins.len() > 1 { offs } else { vec![] };
            links.push(Link {
                inputs: ins,
                outputs: vec![l2],
                src_offsets: src,
                dst_offsets: vec![],
            });
        }
    }

    // The design graph.
    let mut graph = DiGraph::new();
    let mut tile_nodes = BTreeMap::new();
    for f in &fifos {
        for t in std::iter::once(f.producer).chain(f.consumers.iter().copied()) {
            tile_nodes.entry(t).or_insert_with(|| graph.add_node(t));
        }
    }
    for (i, f) in fifos.iter().enumerate() {
        for c in &f.consumers {
            graph.add_edge(tile_nodes[&f.producer], tile_nodes[c], i);
        }
    }

    let args: Vec<TensorId> = inputs.iter().chain(outputs.iter()).copied().collect();
    if args.len() > device.max_sequence_args {
        return Err(limit_error(
            format!(
                "runtime sequence buffer arguments: {} needed, limit {} per runtime sequence",
                args.len(),
                device.max_sequence_args
            ),
            Some(&kernel.tensors[args[device.max_sequence_args]].span),
        ));
    }

    let mut design = Design {
        device: device.clone(),
        rows_used: rows_used as u32,
        cols_used: cols_used as u32,
        step_loops,
        reduce_loops,
        fifos,
        links,
        cores,
        routing,
        args,
        sequence: Vec::new(),
        graph,
        tile_nodes,
    };
    design.sequence = runtime_sequence(kernel, &design)?;
    Ok(design)
}

/// One (count, stride) access-pattern dimension, in elements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PatDim {
    count: u64,
    stride: u64,
}

/// A stream between a host tensor and one shim-side FIFO, before chunking.
struct Stream {
    arg: usize,
    fifo: usize,
    tensor: TensorId,
    /// The tensor's tile element (computed once: it walks every statement).
    view: ElementView,
    /// Fixed core coordinates of this stream (None: enumerated by the split/join dim).
    row: Option<u32>,
    col: u32,
    /// Whether the rows of one column are enumerated inside each element (split/join).
    per_core_rows: bool,
    is_output: bool,
}

fn runtime_sequence(kernel: &Kernel, design: &Design) -> Result<Vec<SequenceOp>, CompileError> {
    let mut streams = Vec::new();
    for (i, f) in design.fifos.iter().enumerate() {
        let arg = design.args.iter().position(|&t| t == f.tensor).unwrap();
        let route = design.routing[&f.tensor];
        // The core row a per-row broadcast feeds: that of the cores behind its link.
        let row_of = |fifo: usize| {
            design
                .links
                .iter()
                .find(|l| l.inputs == [fifo])
                .map(|l| design.fifos[l.outputs[0]].consumers[0].row - design.device.first_compute_row)
        };
        match f.level {
            FifoLevel::HostToMem => {
                let (row, per_core_rows) = match route {
                    Routing::PerCore => (None, true),
                    Routing::PerRow => (row_of(i), false),
                    Routing::PerColumn | Routing::AllCores => (Some(0), false),
                };
                let col = match route {
                    Routing::PerRow | Routing::AllCores => 0,
                    _ => f.producer.col,
                };
                streams.push(Stream {
                    arg,
                    fifo: i,
                    tensor: f.tensor,
                    view: element_view(kernel, f.tensor),
                    row,
                    col,
                    per_core_rows,
                    is_output: false,
                });
            }
            FifoLevel::MemToHost => {
                streams.push(Stream {
                    arg,
                    fifo: i,
                    tensor: f.tensor,
                    view: element_view(kernel, f.tensor),
                    row: None,
                    col: f.producer.col,
                    per_core_rows: true,
                    is_output: true,
                });
            }
            _ => {}
        }
    }

    let reduce_dims: Vec<DimId> = design.reduce_loops.iter().map(|l| l.dim).collect();
    // Outputs first so the S2MM side is ready, then inputs.
    let mut ordered: Vec<&Stream> = streams.iter().filter(|s| s.is_output).collect();
    ordered.extend(streams.iter().filter(|s| !s.is_output));
    // Try chunking along 0, 1, ... outer step loops until every stream fits a shim BD.
    for chunk_depth in 0..=design.step_loops.len() {
        let mut ops = Vec::new();
        let chunk_loops = &design.step_loops[..chunk_depth];
        let chunk_count = chunk_loops.iter().try_fold(1u64, |acc, l| acc.checked_mul(l.count));
        let Some(chunk_count) = chunk_count.filter(|&n| n <= 1024) else {
            break;
        };
        let mut fits = true;
        let mut first_failure = None;
        'chunks: for chunk in 0..chunk_count {
            // Decompose the chunk number into outer step indices.
            let mut rem = chunk;
            let mut outer_steps = vec![0u64; chunk_depth];
            for i in (0..chunk_depth).rev() {
                outer_steps[i] = rem % chunk_loops[i].count;
                rem /= chunk_loops[i].count;
            }
            let mut ids: BTreeMap<u32, u32> = BTreeMap::new();
            let mut waits = Vec::new();
            for s in &ordered {
                let view = &s.view;
                // Strides and offsets are computed as signed 128-bit values (a negative index
                // coefficient gives a negative stride, held in two's complement in the view) and
                // checked back into 64 bits: an overflow is a located error, never a wrap.
                let stride_of = |d: DimId| view.stride_of(d) as i64 as i128;
                let tile_of = |d: DimId| kernel.dims[d].tile as i128;
                let too_large = || {
                    limit_error(
                        format!(
                            "size of the shim DMA pattern of tensor {} overflows 64-bit arithmetic; use fewer, larger tiles",
                            kernel.tensors[s.tensor].name
                        ),
                        Some(&kernel.tensors[s.tensor].span),
                    )
                };
                let stride64 = |v: Option<i128>| v.and_then(|v| i64::try_from(v).ok()).map(|v| v as u64).ok_or_else(too_large);
                let mut offset = view.constant as i128;
                let row = s.row.unwrap_or(0) as i128;
                for (i, lp) in design.step_loops.iter().enumerate() {
                    let step = if i < chunk_depth { outer_steps[i] as i128 * lp.step_coef as i128 } else { 0 };
                    let base_tile = lp.row_coef as i128 * row + lp.col_coef as i128 * s.col as i128 + step;
                    offset = base_tile
                        .checked_mul(tile_of(lp.dim))
                        .and_then(|v| v.checked_mul(stride_of(lp.dim)))
                        .and_then(|v| v.checked_add(offset))
                        .ok_or_else(too_large)?;
                }
                let offset = u64::try_from(offset).map_err(|_| too_large())?;
                let mut dims: Vec<PatDim> = Vec::new();
                for lp in &design.step_loops[chunk_depth..] {
                    dims.push(PatDim {
                        count: lp.count,
                        stride: stride64((lp.step_coef as i128 * tile_of(lp.dim)).checked_mul(stride_of(lp.dim)))?,
                    });
                }
                let uses_reduce = view.dims().iter().any(|d| reduce_dims.contains(d));
                if uses_reduce {
                    for lp in &design.reduce_loops {
                        dims.push(PatDim {
                            count: lp.count,
                            stride: stride64(tile_of(lp.dim).checked_mul(stride_of(lp.dim)))?,
                        });
                    }
                }
                if s.per_core_rows {
                    let stride = design.step_loops.iter().try_fold(0i128, |acc, lp| {
                        (lp.row_coef as i128 * tile_of(lp.dim))
                            .checked_mul(stride_of(lp.dim))
                            .and_then(|v| v.checked_add(acc))
                    });
                    dims.push(PatDim {
                        count: design.rows_used as u64,
                        stride: stride64(stride)?,
                    });
                }
                for v in &view.axes {
                    dims.push(PatDim {
                        count: v.extent,
                        stride: v.stride,
                    });
                }
                let elem_bytes = kernel.tensors[s.tensor].dtype.size_bytes() as u64;
                match fit_shim_bd(&dims, elem_bytes, &design.device) {
                    Ok((sizes, strides)) => {
                        let f = &design.fifos[s.fifo];
                        let shim_col = if s.is_output { f.consumers[0].col } else { f.producer.col };
                        let id = ids.entry(shim_col).or_insert(0);
                        ops.push(SequenceOp::Dma(DmaTransfer {
                            arg: s.arg,
                            fifo: s.fifo,
                            offset,
                            sizes,
                            strides,
                            id: *id,
                            issue_token: s.is_output,
                        }));
                        *id += 1;
                        if s.is_output {
                            waits.push(s.fifo);
                        }
                    }
                    Err(why) => {
                        fits = false;
                        first_failure.get_or_insert((s.tensor, why));
                        break 'chunks;
                    }
                }
            }
            for (col, n) in &ids {
                if *n as usize > design.device.shim.bds {
                    return Err(limit_error(
                        format!(
                            "buffer descriptors on shim tile ({}, 0): {} needed at once, limit {}",
                            col, n, design.device.shim.bds
                        ),
                        Some(&kernel.span),
                    ));
                }
            }
            for w in waits {
                ops.push(SequenceOp::Wait { fifo: w });
            }
        }
        if fits {
            return Ok(ops);
        }
        if chunk_depth == design.step_loops.len() {
            let (t, why) = first_failure.unwrap();
            return Err(limit_error(
                format!(
                    "the shim DMA cannot address tensor {} in one transfer per tile: {}",
                    kernel.tensors[t].name, why
                ),
                Some(&kernel.tensors[t].span),
            ));
        }
    }
    Err(limit_error(
        "too many DMA chunks (over 1024) in the runtime sequence; use larger tiles",
        Some(&kernel.span),
    ))
}

/// Simplifies an access pattern and maps it onto a shim BD: d0..d2 with positive strides and
/// d0/d1 wraps within 10 bits (in 4-byte words), d3 the repeat/iteration dim (stride may be 0).
fn fit_shim_bd(dims: &[PatDim], elem_bytes: u64, dev: &DeviceModel) -> Result<([u64; 4], [u64; 4]), String> {
    // Drop unit dims, merge contiguous neighbours.
    let mut v: Vec<PatDim> = dims.iter().copied().filter(|d| d.count > 1).collect();
    // Strides are two's complement: a negative one (a negative index coefficient) walks back.
    if let Some(k) = v.iter().position(|d| (d.stride as i64) < 0) {
        return Err(format!(
            "dimension {} walks backwards (stride {}); the shim DMA takes non-negative strides only",
            v.len() - 1 - k,
            v[k].stride as i64
        ));
    }
    let overflow = || "the transfer's size overflows 64-bit arithmetic".to_string();
    let mut i = v.len();
    while i >= 2 {
        let (outer, inner) = (v[i - 2], v[i - 1]);
        if inner.count.checked_mul(inner.stride) == Some(outer.stride) && inner.stride != 0 {
            v[i - 2] = PatDim {
                count: outer.count.checked_mul(inner.count).ok_or_else(overflow)?,
                stride: inner.stride,
            };
            v.remove(i - 1);
        }
        i -= 1;
    }
    let bytes = |n: u64| n.checked_mul(elem_bytes).ok_or_else(overflow);
    if v.is_empty() {
        v.push(PatDim { count: 1, stride: 1 });
    }
    // A contiguous innermost run longer than the wrap limit is split into rows.
    let max_words = dev.shim_wrap_max_words;
    if let Some(last) = v.last().copied() {
        if last.stride == 1 && bytes(last.count)? / 4 > max_words {
            let words_per_elem = 4 / elem_bytes.min(4);
            let mut inner = (max_words * words_per_elem.max(1)).min(last.count);
            while inner > 1 && last.count % inner != 0 {
                inner -= 1;
            }
            let n = v.len();
            v[n - 1] = PatDim {
                count: last.count / inner,
                stride: inner,
            };
            v.push(PatDim { count: inner, stride: 1 });
        }
    }
    // A second dimension longer than the wrap limit is split in two (count = outer x inner, the
    // inner part within the limit) while the BD has a dimension to spare: a long reduction read
    // as rows of a tile, e.g. 1184 rows of 64 columns, becomes 37 blocks of 32 rows.
    if v.len() >= 2 && v.len() < 4 {
        let at = v.len() - 2;
        let d1 = v[at];
        if d1.count > max_words {
            if let Some(inner) = (2..=max_words.min(d1.count)).rev().find(|b| d1.count % b == 0) {
                v[at] = PatDim {
                    count: d1.count / inner,
                    stride: d1.stride.checked_mul(inner).ok_or_else(overflow)?,
                };
                v.insert(
                    at + 1,
                    PatDim {
                        count: inner,
                        stride: d1.stride,
                    },
                );
            }
        }
    }
    if v.len() > 4 {
        return Err(format!("{} dimensions needed, the shim DMA has 4", v.len()));
    }
    while v.len() < 4 {
        v.insert(0, PatDim { count: 1, stride: 0 });
    }
    let d0 = v[3];
    if d0.stride != 1 {
        return Err(format!("the innermost dimension has stride {}, it must be contiguous (stride 1)", d0.stride));
    }
    if !bytes(d0.count)?.is_multiple_of(4) {
        return Err(format!("the innermost run is {} bytes, not a multiple of 4", bytes(d0.count)?));
    }
    for k in 1..3 {
        if v[3 - k].count > 1 && v[3 - k].stride == 0 {
            return Err(format!("dimension {} repeats data (stride 0); only the outermost dimension may", k));
        }
        if v[3 - k].count > 1 && !bytes(v[3 - k].stride)?.is_multiple_of(4) {
            return Err(format!("stride {} of dimension {} is not a multiple of 4 bytes", v[3 - k].stride, k));
        }
    }
    if bytes(d0.count)? / 4 > max_words {
        return Err(format!("d0 wrap of {} words exceeds {}", bytes(d0.count)? / 4, max_words));
    }
    if v[2].count > max_words {
        return Err(format!("d1 wrap of {} exceeds {}", v[2].count, max_words));
    }
    if v[0].count > dev.shim_repeat_max {
        return Err(format!("d3 repeat count {} exceeds {}", v[0].count, dev.shim_repeat_max));
    }
    for d in &v {
        if bytes(d.stride)? / 4 > dev.shim_step_max_words {
            return Err(format!("stride {} exceeds the {}-word step limit", d.stride, dev.shim_step_max_words));
        }
    }
    Ok((
        [v[0].count, v[1].count, v[2].count, v[3].count],
        [v[0].stride, v[1].stride, v[2].stride, v[3].stride],
    ))
}
