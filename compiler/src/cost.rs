//! The cost model: a first-order estimate of a design's time on the NPU. Never a measurement —
//! every figure it produces is labelled an estimate.
//!
//! Compute: contractions run at the tile's MAC rate (int8/int16 at the int8 rate halved for int16,
//! bf16 at the bf16 rate); other statements at 16 lanes per cycle per operation, or 1 when they
//! select on indices or the target's toolchain takes them only as scalar code (the lowering says
//! which). DMA: every byte
//! crossing the shim at 4 bytes per cycle per channel in use. The estimate is the larger of the
//! two (they overlap with double buffering), at the device's nominal clock.

use crate::diag::Span;
use crate::dsl::ast::ReduceOp;
use crate::ir::{Expr, Kernel};
use crate::schedule::{Design, SequenceOp};
use aiec_runtime::artifact::CostEstimate;
use aiec_runtime::DType;

/// `scalar_stmts`: spans of the statements the lowering emitted as scalar code for the target.
pub fn estimate(kernel: &Kernel, design: &Design, scalar_stmts: &[Span]) -> CostEstimate {
    let cores = (design.rows_used * design.cols_used) as u64;
    let mut macs = 0u64;
    let mut cycles_total = 0f64;
    for stmt in &kernel.stmts {
        let target_elems: u64 = stmt.target_dims.iter().map(|&d| kernel.dims[d].size).product();
        let mut ops_per_elem = 0u64;
        let mut reduce_len = 1u64;
        let mut is_mac = None;
        let mut scalar = scalar_stmts.contains(&stmt.span);
        stmt.value.walk(&mut |e| {
            ops_per_elem += 1;
            scalar |= matches!(e, Expr::Select { .. });
            if let Expr::Reduce {
                op: ReduceOp::Sum, dims, body, ..
            } = e
            {
                reduce_len *= dims.iter().map(|&d| kernel.dims[d].size).product::<u64>();
                if let Expr::Binary { lhs, .. } = body.as_ref() {
                    if let Expr::Load { tensor, .. } = lhs.as_ref() {
                        is_mac = Some(kernel.tensors[*tensor].dtype);
                    }
                }
            } else if let Expr::Reduce { dims, .. } = e {
                reduce_len *= dims.iter().map(|&d| kernel.dims[d].size).product::<u64>();
            }
        });
        let work = target_elems * reduce_len;
        match is_mac {
            Some(dt) => {
                macs += work;
                let rate = match dt {
                    DType::I8 => design.device.int8_macs_per_cycle,
                    DType::I16 => design.device.int8_macs_per_cycle / 2,
                    _ => design.device.bf16_macs_per_cycle,
                };
                cycles_total += work as f64 / rate as f64;
            }
            None => cycles_total += (work * ops_per_elem) as f64 / if scalar { 1.0 } else { crate::lower::VECTOR_LANES as f64 },
        }
    }
    let compute_cycles = (cycles_total / cores as f64).ceil() as u64;
    let mut dma_bytes = 0u64;
    let mut channels = std::collections::BTreeSet::new();
    for op in &design.sequence {
        if let SequenceOp::Dma(d) = op {
            let n: u64 = d.sizes.iter().product();
            dma_bytes += n * kernel.tensors[design.args[d.arg]].dtype.size_bytes() as u64;
            channels.insert(d.fifo);
        }
    }
    let dma_cycles = dma_bytes / (design.device.dma_bytes_per_cycle * channels.len().max(1) as u64);
    let cycles = compute_cycles.max(dma_cycles);
    CostEstimate {
        macs,
        compute_cycles,
        dma_bytes,
        estimated_seconds: cycles as f64 / design.device.clock_hz,
        note: format!(
            "cost-model estimate for {} at {:.1} GHz, not a measurement",
            design.device.name,
            design.device.clock_hz / 1e9
        ),
    }
}
