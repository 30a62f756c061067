//! The `place` pass: which compute tiles run which output tiles. The grid follows the spread
//! request on at most the given rows and columns (the placement search in `lib.rs` asks for fewer
//! when a channel limit breaks); each core loops over its share of the output's split dims and,
//! inside each step, over the tiles of the dims reduced across tiles.

use super::{host_dims, largest_divisor_at_most, reduction_dims, schedule_error, Placement, TileLoop};
use crate::device::DeviceModel;
use crate::diag::CompileError;
use crate::dsl::ast::Role;
use crate::ir::{Kernel, TensorId};

/// Places `kernel` on at most `max_rows` x `max_cols` compute tiles.
pub(crate) fn place(kernel: &Kernel, device: &DeviceModel, max_rows: u64, max_cols: u64) -> Result<Placement, CompileError> {
    let max_rows = max_rows.clamp(1, device.compute_rows as u64);
    let max_cols = max_cols.clamp(1, device.columns as u64);
    let outputs: Vec<TensorId> = kernel.tensor_ids().filter(|(_, t)| t.role == Role::Out).map(|(i, _)| i).collect();
    let Some(&first_output) = outputs.first() else {
        return Err(schedule_error("kernel has no `out` tensor", Some(&kernel.span)));
    };
    let out_dims = host_dims(kernel, first_output);
    let reduce = reduction_dims(kernel);

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

    Ok(Placement {
        rows_used,
        cols_used,
        rows_dim,
        cols_dim,
        cores_mode,
        step_loops,
        reduce_loops,
    })
}
