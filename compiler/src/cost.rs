//! The cost model: a first-order estimate of one kernel invocation's time on the NPU. Never a
//! measurement — every figure it produces is labelled an estimate.
//!
//! ```text
//! total   = launch overhead + max(compute, data)            (double buffering overlaps the two)
//! compute = Σ statements: MAC work / (MAC peak × MAC efficiency)     on the MAC unit,
//!                         work × ops / 16                            on 16-lane vectors,
//!                         work × ops                                 as scalar code,
//!           divided over the cores the design uses, at the device clock
//! data    = max(busiest shim DMA channel's bytes / shim channel rate,
//!               all shim bytes (in + out) / DDR bandwidth,
//!               busiest memory-tile DMA channel's bytes / memory-tile channel rate)
//! ```
//!
//! How a statement runs is read off the lowering's own output: statements it turned into
//! `vector.contract` run on the MAC unit, statements with 16-lane vector ops on the vector unit, and
//! everything else is scalar code (see [`StmtCode`]). The MAC peak of a tile is the smaller of the
//! device's rate for the input type (256 int8 MACs per cycle on npu1, 512 on npu2; bf16 at half
//! and int16 at a quarter of that) and the MACs of one `aievec.matmul` on the shape the lowering
//! uses ([`mac_shape`]), at one such instruction per cycle.
//!
//! Every constant of the model is in [`CostConstants`] (per-device values from [`DeviceModel`] and
//! documented constants, each with its source or marked an assumption); [`breakdown`] takes them as
//! a parameter.
//!
//! Clock: npu1 at 1.0 GHz is Phoenix's rating (10 TOPS = 20 tiles ×
//! 256 int8 MACs × 2 ops × ~1.0 GHz); the amdxdna driver's npu1 DPM table (npu1_regs.c) lets
//! the array clock (H-clock) reach 1.6 GHz, which is Hawk Point's 16 TOPS rating, so on a Hawk
//! Point at its top power level compute and DMA run up to 1.6× faster than estimated here. npu2
//! at 1.5 GHz is Strix's 50 TOPS rating (32 tiles × 512 int8 MACs × 2 ops × ~1.5 GHz); the
//! driver's npu4 table tops out at 1.8 GHz.

use crate::device::DeviceModel;
use crate::diag::Span;
use crate::dsl::ast::ReduceOp;
use crate::ir::{Expr, Kernel};
use crate::lower::StmtForm;
use crate::schedule::{Design, FifoLevel, SequenceOp};
use crate::target_rules::{mac_shape, AieTarget};
use aiec_runtime::artifact::CostEstimate;
use aiec_runtime::DType;
use std::collections::BTreeMap;

/// Fraction of the MAC peak the lowered `vector.contract` loops sustain. ASSUMPTION anchored on
/// published measurements of compiled (not hand-written) AIE matmul code: iree-amd-aie issue
/// #1198 (2025) measured bf16 512×512×512 on one Phoenix core at 29 % of peak for Peano direct
/// codegen, 39 % with unroll-and-jam and 43 % for a hand-written microkernel, and 26–34 % for
/// int8 microkernels on Strix. aiec emits one unblocked `vector.contract` per MAC block straight
/// from the row-major tiles, like the direct-codegen case, hence 0.3. Not measured for aiec.
pub(crate) const MAC_EFFICIENCY: f64 = 0.3;

/// Host-side time of one kernel invocation through XRT (`kernel(...)` then `run.wait()`),
/// seconds. From mlir-aie issue #2381 (2025): an mlir-aie kernel that computes nothing and moves
/// no data measured about 45 µs per invocation through XRT (about 60 µs with a small kernel).
/// Host buffer syncs around the call are not included.
pub(crate) const LAUNCH_OVERHEAD_S: f64 = 45e-6;

/// DDR bandwidth an npu2 (Strix, XDNA2) NPU can draw, bytes/s: FastFlowLM's description of the
/// Ryzen AI XDNA2 NPU ("the NPU sits at 60 GB/s" of memory bandwidth, against 125 GB/s for the
/// iGPU). A figure from a vendor-ecosystem runtime, not from a datasheet.
pub(crate) const NPU2_DDR_BYTES_PER_S: f64 = 60e9;

/// DDR bandwidth an npu1 (Phoenix / Hawk Point, XDNA) NPU can draw, bytes/s. ASSUMPTION: no
/// public figure found. The platforms' DRAM is DDR5-5600 (89.6 GB/s) or LPDDR5x-7500 (120 GB/s)
/// in theory, shared with CPU and iGPU; we take the npu2 figure scaled by the array width (4
/// columns against 8), just below the 32 GB/s the four shim tiles could read at 1 GHz.
pub(crate) const NPU1_DDR_BYTES_PER_S: f64 = 30e9;

/// The constants of the cost model for one device. [`CostConstants::for_device`] gives the
/// defaults; tests and what-if studies pass modified copies to [`breakdown`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostConstants {
    /// Array clock, Hz: 1.0 GHz on npu1, 1.5 GHz on npu2 (the parts' TOPS ratings).
    pub clock_hz: f64,
    /// Fraction of the MAC peak the lowered `vector.contract` loops reach. Default 0.3, an
    /// assumption anchored on published measurements of compiled AIE matmul code.
    pub mac_efficiency: f64,
    /// Host-side seconds per invocation through XRT. Default 45 µs, as measured for an mlir-aie
    /// kernel that does nothing.
    pub launch_overhead_s: f64,
    /// DDR bytes/s available to the NPU. Default 60 GB/s on npu2 (a vendor-ecosystem figure) and
    /// 30 GB/s on npu1 (an assumption: the npu2 figure scaled by the array width).
    pub ddr_bytes_per_s: f64,
    /// Bytes per cycle one shim DMA channel moves: AM020 (AIE-ML architecture manual), "Array
    /// Interface DMA": each channel sustains 4 bytes per cycle, two MM2S and two S2MM per shim
    /// tile.
    pub shim_channel_bytes_per_cycle: f64,
    /// Bytes per cycle one memory-tile DMA channel moves (six MM2S and six S2MM per memory tile).
    /// ASSUMPTION: the same 4 bytes per cycle as a shim channel,
    /// i.e. a 32-bit stream port; the later AIE-ML v2 manual (AM027) gives its memory tile
    /// 64-bit channels, which would halve this term.
    pub memtile_channel_bytes_per_cycle: f64,
}

impl CostConstants {
    /// The model's default constants for `device`.
    pub fn for_device(device: &DeviceModel) -> CostConstants {
        CostConstants {
            clock_hz: device.clock_hz,
            mac_efficiency: MAC_EFFICIENCY,
            launch_overhead_s: LAUNCH_OVERHEAD_S,
            ddr_bytes_per_s: match device.target {
                AieTarget::Aie2 => NPU1_DDR_BYTES_PER_S,
                AieTarget::Aie2p => NPU2_DDR_BYTES_PER_S,
            },
            shim_channel_bytes_per_cycle: device.dma_bytes_per_cycle as f64,
            memtile_channel_bytes_per_cycle: device.dma_bytes_per_cycle as f64,
        }
    }
}

/// What bounds the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The launch overhead exceeds both compute and data time.
    Launch,
    /// Compute time exceeds data time.
    Compute,
    /// Data time, set by the DDR bandwidth.
    Ddr,
    /// Data time, set by the busiest shim DMA channel.
    Shim,
    /// Data time, set by the busiest memory-tile DMA channel.
    MemoryTile,
}

impl Bound {
    /// How the estimate's note names it (`compute-bound`, `DDR-bound`, ...).
    pub fn phrase(self) -> &'static str {
        match self {
            Bound::Launch => "launch-overhead-bound",
            Bound::Compute => "compute-bound",
            Bound::Ddr => "DDR-bound",
            Bound::Shim => "shim-DMA-bound",
            Bound::MemoryTile => "memory-tile-DMA-bound",
        }
    }
}

/// How the lowering emitted a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtCode {
    /// `vector.contract` on the MAC unit, inputs of this type.
    Mac(DType),
    /// 16-lane vector code.
    Vector,
    /// Scalar code.
    Scalar,
}

/// Every term of an estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct CostBreakdown {
    /// Multiply-accumulates of every `sum` of products, wherever they run.
    pub macs: u64,
    /// How each statement of the kernel runs, in statement order.
    pub stmt_code: Vec<StmtCode>,
    /// Per-core compute cycles (MAC efficiency included).
    pub compute_cycles: u64,
    /// Compute time, seconds: `compute_cycles` at the clock.
    pub compute_s: f64,
    /// Bytes through the shim DMAs, in and out.
    pub shim_bytes: u64,
    /// Bytes on the busiest shim DMA channel.
    pub shim_channel_max_bytes: u64,
    /// Seconds the busiest shim channel takes.
    pub shim_s: f64,
    /// Seconds all shim bytes take at the DDR bandwidth.
    pub ddr_s: f64,
    /// Bytes on the busiest memory-tile DMA channel.
    pub memtile_channel_max_bytes: u64,
    /// Seconds the busiest memory-tile channel takes.
    pub memtile_s: f64,
    /// max(shim, DDR, memory tile).
    pub data_s: f64,
    /// The launch overhead, seconds.
    pub launch_s: f64,
    /// launch + max(compute, data): the estimate.
    pub total_s: f64,
    /// The term that set the total.
    pub bound: Bound,
}

/// The estimate with the device's default constants; `codes` says how the lowering emitted each
/// statement ([`codes_of`]).
pub(crate) fn estimate(kernel: &Kernel, design: &Design, codes: &[StmtCode]) -> CostEstimate {
    let k = CostConstants::for_device(&design.device);
    let b = breakdown_of(kernel, design, codes, &k);
    CostEstimate {
        macs: b.macs,
        compute_cycles: b.compute_cycles,
        dma_bytes: b.shim_bytes,
        estimated_seconds: b.total_s,
        note: format!(
            "cost-model estimate for {} at {:.1} GHz, {} ({:.3} ms compute, {:.3} ms data, {:.0} µs launch), not a measurement",
            design.device.name,
            k.clock_hz / 1e9,
            b.bound.phrase(),
            b.compute_s * 1e3,
            b.data_s * 1e3,
            b.launch_s * 1e6
        ),
    }
}

/// Every term of the estimate for `kernel` scheduled as `design` under the constants `k`;
/// `scalar_stmts` are the spans of the statements the lowering emitted as scalar code
/// (the lowering's notes in [`Compiled::notes`](crate::Compiled::notes) point at them).
pub fn breakdown(kernel: &Kernel, design: &Design, scalar_stmts: &[Span], k: &CostConstants) -> CostBreakdown {
    breakdown_of(kernel, design, &stmt_codes(kernel, design, scalar_stmts), k)
}

/// [`breakdown`] with each statement's code known.
fn breakdown_of(kernel: &Kernel, design: &Design, stmt_code: &[StmtCode], k: &CostConstants) -> CostBreakdown {
    let device = &design.device;
    let cores = (design.rows_used * design.cols_used).max(1) as f64;
    let mut macs = 0u64;
    let mut cycles_total = 0f64;
    for (stmt, code) in kernel.stmts.iter().zip(stmt_code) {
        let target_elems: u64 = stmt.target_dims.iter().map(|&d| kernel.dims[d].size).product();
        let mut ops_per_elem = 0u64;
        let mut reduce_len = 1u64;
        let mut sum_of_products = false;
        stmt.value.walk(&mut |e| {
            ops_per_elem += 1;
            if let Expr::ArgReduce { dim, .. } = e {
                reduce_len *= kernel.dims[*dim].size;
            }
            if let Expr::Reduce { op, dims, body, .. } = e {
                reduce_len *= dims.iter().map(|&d| kernel.dims[d].size).product::<u64>();
                if *op == ReduceOp::Sum {
                    if let Expr::Binary { lhs, .. } = body.as_ref() {
                        sum_of_products |= matches!(lhs.as_ref(), Expr::Load { .. });
                    }
                }
            }
        });
        let work = target_elems * reduce_len;
        if sum_of_products {
            macs += work;
        }
        cycles_total += match *code {
            StmtCode::Mac(dt) => work as f64 / (mac_peak(device, dt) * k.mac_efficiency),
            StmtCode::Vector => (work * ops_per_elem) as f64 / crate::lower::VECTOR_LANES as f64,
            StmtCode::Scalar => (work * ops_per_elem) as f64,
        };
    }
    let compute_cycles = (cycles_total / cores).ceil() as u64;
    let compute_s = compute_cycles as f64 / k.clock_hz;

    // Bytes per shim channel: every FIFO with a shim end is one shim DMA channel.
    let mut channel_bytes: BTreeMap<usize, u64> = BTreeMap::new();
    for op in &design.sequence {
        if let SequenceOp::Dma(d) = op {
            let n: u64 = d.sizes.iter().product();
            *channel_bytes.entry(d.fifo).or_default() += n * kernel.tensors[design.args[d.arg]].dtype.size_bytes() as u64;
        }
    }
    let shim_bytes: u64 = channel_bytes.values().sum();
    let shim_channel_max_bytes = channel_bytes.values().copied().max().unwrap_or(0);
    let memtile_channel_max_bytes = memtile_channel_bytes(design, &channel_bytes).into_iter().max().unwrap_or(0);
    let shim_s = shim_channel_max_bytes as f64 / (k.shim_channel_bytes_per_cycle * k.clock_hz);
    let ddr_s = shim_bytes as f64 / k.ddr_bytes_per_s;
    let memtile_s = memtile_channel_max_bytes as f64 / (k.memtile_channel_bytes_per_cycle * k.clock_hz);
    let data_s = shim_s.max(ddr_s).max(memtile_s);
    let launch_s = k.launch_overhead_s;
    // Ties go to the first: compute, then DDR, then the shim (a memory tile only forwards what
    // the shim moves, so the two tie on a plain forward).
    let mut bound = Bound::Compute;
    let mut worst = compute_s;
    for (b, t) in [(Bound::Ddr, ddr_s), (Bound::Shim, shim_s), (Bound::MemoryTile, memtile_s)] {
        if t > worst {
            bound = b;
            worst = t;
        }
    }
    if launch_s > worst {
        bound = Bound::Launch;
    }
    CostBreakdown {
        macs,
        stmt_code: stmt_code.to_vec(),
        compute_cycles,
        compute_s,
        shim_bytes,
        shim_channel_max_bytes,
        shim_s,
        ddr_s,
        memtile_channel_max_bytes,
        memtile_s,
        data_s,
        launch_s,
        total_s: launch_s + compute_s.max(data_s),
        bound,
    }
}

/// MACs per cycle of one compute tile for inputs of `dtype`: the device's rate, capped by one
/// `aievec.matmul` of the lowering's MAC shape per cycle.
fn mac_peak(device: &DeviceModel, dtype: DType) -> f64 {
    let rate = match dtype {
        DType::I8 => device.int8_macs_per_cycle,
        DType::I16 => device.int8_macs_per_cycle / 4,
        _ => device.bf16_macs_per_cycle,
    };
    let shape = mac_shape(device.target, dtype).map_or(rate, |s| s.m * s.k * s.n);
    rate.min(shape).max(1) as f64
}

/// Bytes on each memory-tile DMA channel: a FIFO between the shim and a memory tile carries what
/// the shim moves on it; the FIFOs a memory tile links to them (forward, split or join) share
/// those bytes in proportion to their element sizes. A broadcast FIFO is one channel.
fn memtile_channel_bytes(design: &Design, shim: &BTreeMap<usize, u64>) -> Vec<u64> {
    let host_side = |f: usize| matches!(design.fifos[f].level, FifoLevel::HostToMem | FifoLevel::MemToHost);
    let mut bytes: Vec<u64> = (0..design.fifos.len())
        .map(|f| if host_side(f) { shim.get(&f).copied().unwrap_or(0) } else { 0 })
        .collect();
    for link in &design.links {
        let all: Vec<usize> = link.inputs.iter().chain(&link.outputs).copied().collect();
        let host: u128 = all.iter().filter(|&&f| host_side(f)).map(|&f| bytes[f] as u128).sum();
        let core: Vec<usize> = all.iter().copied().filter(|&f| !host_side(f)).collect();
        let total: u128 = core.iter().map(|&f| design.fifos[f].bytes() as u128).sum();
        if total == 0 {
            continue;
        }
        for f in core {
            bytes[f] = (host * design.fifos[f].bytes() as u128 / total) as u64;
        }
    }
    bytes
}

/// How the lowering emitted each statement: it records, per statement, whether the ops carrying
/// the statement's location include a `vector.contract` or any vector value. If the lowering
/// cannot be rerun, a statement counts as MAC work when it is a `sum` of a product of loads, as
/// scalar code when it selects on indices or is in `scalar_stmts`, and as vector code otherwise.
pub(crate) fn stmt_codes(kernel: &Kernel, design: &Design, scalar_stmts: &[Span]) -> Vec<StmtCode> {
    let context = crate::emit::mlir_context();
    if let Ok(lowered) = crate::lower::lower(&context, kernel, design) {
        return codes_of(kernel, &lowered.stmt_forms);
    }
    kernel
        .stmts
        .iter()
        .map(|stmt| {
            let mut select = false;
            stmt.value
                .walk(&mut |e| select |= matches!(e, Expr::Select { .. } | Expr::Index { .. } | Expr::ArgReduce { .. }));
            match contraction_dtype(kernel, &stmt.value) {
                _ if select || scalar_stmts.contains(&stmt.span) => StmtCode::Scalar,
                Some(dt) => StmtCode::Mac(dt),
                None => StmtCode::Vector,
            }
        })
        .collect()
}

/// Each statement's code from what its ops use (`forms`, per statement). Statements at the same
/// location (a builder's, which has no lines) share what any of them uses.
pub(crate) fn codes_of(kernel: &Kernel, forms: &[StmtForm]) -> Vec<StmtCode> {
    let at = |span: &Span| {
        (
            span.source.name.clone(),
            (!span.source.text.is_empty()).then(|| span.source.line_col(span.start)),
        )
    };
    let mut seen: BTreeMap<_, StmtForm> = BTreeMap::new();
    for (stmt, form) in kernel.stmts.iter().zip(forms) {
        let e = seen.entry(at(&stmt.span)).or_default();
        e.contract |= form.contract;
        e.vector |= form.vector;
    }
    kernel
        .stmts
        .iter()
        .map(|stmt| {
            let form = seen.get(&at(&stmt.span)).copied().unwrap_or_default();
            if form.contract {
                StmtCode::Mac(contraction_dtype(kernel, &stmt.value).unwrap_or(DType::Bf16))
            } else if form.vector {
                StmtCode::Vector
            } else {
                StmtCode::Scalar
            }
        })
        .collect()
}

/// The input type of a `sum[K](A[..] * B[..])` statement.
fn contraction_dtype(kernel: &Kernel, value: &Expr) -> Option<DType> {
    let Expr::Reduce { op: ReduceOp::Sum, body, .. } = value else {
        return None;
    };
    match body.as_ref() {
        Expr::Binary { lhs, .. } => match lhs.as_ref() {
            Expr::Load { tensor, .. } => Some(kernel.tensors[*tensor].dtype),
            _ => None,
        },
        _ => None,
    }
}
