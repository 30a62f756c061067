//! The language's tiling rules: what may be split, and how statements relate to a reduction
//! across tiles. They depend on the kernel's tiles only, not on the device, so type checking
//! enforces them before any placement is tried.

use crate::diag::{CompileError, Diagnostic};
use crate::dsl::ast::{ReduceOp, Role};
use crate::ir::{DimId, Expr, Kernel, TensorId};
use crate::schedule::{host_dims, reduction_dims, reduction_stmt};

fn schedule_error(msg: impl Into<String>, span: Option<&crate::diag::Span>) -> CompileError {
    CompileError::Schedule(Diagnostic::new(msg, span))
}

/// Checks the tiling rules of a typed kernel.
pub(crate) fn check(kernel: &Kernel) -> Result<(), CompileError> {
    let outputs: Vec<TensorId> = kernel.tensor_ids().filter(|(_, t)| t.role == Role::Out).map(|(i, _)| i).collect();
    if outputs.is_empty() {
        return Err(schedule_error("kernel has no `out` tensor", Some(&kernel.span)));
    }
    let reduce = reduction_dims(kernel);
    // Every split dim must be a step dim (in the outputs) or a reduction dim of the first statement.
    for (d, dim) in kernel.dim_ids() {
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
            let first = red_stmt.map(|r| kernel.stmts[r].span.location()).unwrap_or_default();
            return Err(schedule_error(
                if top_is_reduce || red_stmt.is_none() {
                    "a reduction across the tiles of a split dim inside another reduction; reduce into a local first, or leave the dim unsplit".to_string()
                } else {
                    format!(
                        "a second reduction across the tiles of a split dim (the first is at {first}); a kernel has one loop over those tiles: reduce in a separate kernel, or leave the dim unsplit"
                    )
                },
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
    Ok(())
}
