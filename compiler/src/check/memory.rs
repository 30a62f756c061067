//! Data memory per tile (FIFO buffers times depth, locals, stack) and program memory per core.

use super::{culprit, limit, TileMemoryBudget};
use crate::device::TileKind;
use crate::diag::CompileError;
use crate::ir::Kernel;
use crate::schedule::Design;

/// The tile's buffers fit its data memory.
pub(super) fn check_data_memory(kernel: &Kernel, design: &Design, b: &TileMemoryBudget) -> Result<(), CompileError> {
    let lim = design.device.limits(b.kind);
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
    Ok(())
}

/// Program memory estimate of a core from its lowered body: 16 bytes per MLIR operation (one
/// VLIW bundle per op, the pessimistic case of scalar code) plus 1 KiB of runtime and prologue.
fn program_bytes_estimate(core_ops: usize) -> usize {
    1024 + 16 * core_ops
}

/// Checks a core's estimated program memory ([`program_bytes_estimate`] of its `core_ops`
/// operations) against the device's; returns the estimate.
pub(crate) fn check_program_memory(kernel: &Kernel, design: &Design, core_ops: usize) -> Result<usize, CompileError> {
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
