//! The pass list, in order, and the text each pass's result dumps as (`aiec compile --dump-after
//! PASS`, like mlir-opt's print-after):
//!
//! | pass | module | result |
//! |---|---|---|
//! | `typecheck` | [`crate::dsl::typecheck`] (with the tiling rules) | the kernel IR, printed in `.tile` form with every hidden local |
//! | `place` | `schedule/place.rs` | the grid, the step and reduction loops, the cores |
//! | `route` | `schedule/route.rs` | the object FIFOs and memory-tile links |
//! | `sequence` | `schedule/sequence.rs` | the runtime sequence's shim DMAs |
//! | `check` | [`crate::check`] | every tile's memory, channels, locks and buffer descriptors |
//! | `lower` | `lower/` | the module as built, in custom syntax, before MLIR verifies it |
//! | `emit` | [`crate::emit`] | design.mlir |
//!
//! `place`, `route`, `sequence` and `check` run together inside the placement search (see
//! [`compile_kernel`](crate::compile_kernel)): their dumps show the placement that was kept.

use crate::check::TileMemoryBudget;
use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use crate::ir::{Affine, Convert, DimId, Expr, Kernel};
use crate::schedule::{Design, FifoLevel, SequenceOp, TileLoop};
use std::fmt::Write;

/// One compiler pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pass {
    /// Names resolved, types and tiling rules checked: the kernel IR.
    Typecheck,
    /// The grid and each core's loops.
    Place,
    /// Object FIFOs and links.
    Route,
    /// The runtime sequence.
    Sequence,
    /// Hardware limits.
    Check,
    /// Core bodies and the module, built as MLIR ops.
    Lower,
    /// The module verified and printed.
    Emit,
}

impl Pass {
    /// Every pass, in the order they run.
    pub const ALL: [Pass; 7] = [Pass::Typecheck, Pass::Place, Pass::Route, Pass::Sequence, Pass::Check, Pass::Lower, Pass::Emit];

    /// The pass's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Typecheck => "typecheck",
            Pass::Place => "place",
            Pass::Route => "route",
            Pass::Sequence => "sequence",
            Pass::Check => "check",
            Pass::Lower => "lower",
            Pass::Emit => "emit",
        }
    }

    /// The pass named `name`.
    pub fn from_name(name: &str) -> Option<Pass> {
        Pass::ALL.into_iter().find(|p| p.name() == name)
    }
}

fn affine(kernel: &Kernel, a: &Affine) -> String {
    let mut out = String::new();
    for &(c, d) in &a.terms {
        let name = &kernel.dims[d].name;
        let sign = if c < 0 { "-" } else { "+" };
        let term = if c.abs() == 1 { name.clone() } else { format!("{}*{name}", c.abs()) };
        if out.is_empty() {
            out = if c < 0 { format!("-{term}") } else { term };
        } else {
            let _ = write!(out, " {sign} {term}");
        }
    }
    for (c, q) in &a.divmods {
        let op = if q.op == crate::ir::DivMod::Div { "/" } else { "%" };
        let inner = affine(kernel, &q.inner);
        let inner = if q.inner.as_dim().is_some() { inner } else { format!("({inner})") };
        let term = if c.abs() == 1 {
            format!("{inner} {op} {}", q.by)
        } else {
            format!("{}*({inner} {op} {})", c.abs(), q.by)
        };
        if out.is_empty() {
            out = if *c < 0 { format!("-{term}") } else { term };
        } else {
            let _ = write!(out, " {} {term}", if *c < 0 { "-" } else { "+" });
        }
    }
    if out.is_empty() {
        return a.constant.to_string();
    }
    match a.constant {
        0 => out,
        c if c < 0 => format!("{out} - {}", -c),
        c => format!("{out} + {c}"),
    }
}

fn cmp(c: CmpOp) -> &'static str {
    match c {
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
    }
}

/// An IR expression in `.tile` syntax, fully parenthesised.
pub(crate) fn expr(kernel: &Kernel, e: &Expr) -> String {
    let dims = |ds: &[DimId]| ds.iter().map(|&d| kernel.dims[d].name.as_str()).collect::<Vec<_>>().join(", ");
    match e {
        Expr::Const { value, .. } => {
            if value.is_infinite() {
                if *value > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }
            } else {
                format!("{value:?}")
            }
        }
        Expr::Load { tensor, indices, .. } => format!(
            "{}[{}]",
            kernel.tensors[*tensor].name,
            indices.iter().map(|a| affine(kernel, a)).collect::<Vec<_>>().join(", ")
        ),
        Expr::Unary { op, arg, .. } => {
            let f = match op {
                UnaryOp::Neg => return format!("-({})", expr(kernel, arg)),
                UnaryOp::Exp => "exp",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Rsqrt => "rsqrt",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Log10 => "log10",
                UnaryOp::Ln => "ln",
                UnaryOp::Abs => "abs",
                UnaryOp::Recip => "recip",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Floor => "floor",
                UnaryOp::Round => "round",
            };
            format!("{f}({})", expr(kernel, arg))
        }
        Expr::Binary { op, lhs, rhs, .. } => {
            let (l, r) = (expr(kernel, lhs), expr(kernel, rhs));
            match op {
                BinaryOp::Add => format!("({l} + {r})"),
                BinaryOp::Sub => format!("({l} - {r})"),
                BinaryOp::Mul => format!("({l} * {r})"),
                BinaryOp::Div => format!("({l} / {r})"),
                BinaryOp::Max => format!("max({l}, {r})"),
                BinaryOp::Min => format!("min({l}, {r})"),
            }
        }
        Expr::Reduce { op, dims: ds, body, .. } => {
            let f = match op {
                ReduceOp::Sum => "sum",
                ReduceOp::Max => "max",
                ReduceOp::Min => "min",
            };
            format!("{f}[{}]({})", dims(ds), expr(kernel, body))
        }
        Expr::Convert { to, kind, arg, .. } => match kind {
            Convert::Cast => format!("cast<{}>({})", to.mlir(), expr(kernel, arg)),
            Convert::Srs(s) => format!("srs<{}>({}, {s})", to.mlir(), expr(kernel, arg)),
        },
        Expr::Select {
            lhs,
            cmp: c,
            rhs,
            then,
            otherwise,
            ..
        } => format!(
            "select({} {} {}, {}, {})",
            affine(kernel, lhs),
            cmp(*c),
            affine(kernel, rhs),
            expr(kernel, then),
            expr(kernel, otherwise)
        ),
        Expr::ValueSelect {
            lhs,
            cmp: c,
            rhs,
            then,
            otherwise,
            ..
        } => format!(
            "select({} {} {}, {}, {})",
            expr(kernel, lhs),
            cmp(*c),
            expr(kernel, rhs),
            expr(kernel, then),
            expr(kernel, otherwise)
        ),
        Expr::Index { dim } => kernel.dims[*dim].name.clone(),
        Expr::Gather {
            tensor, indices, axis, index, ..
        } => {
            let mut parts: Vec<String> = indices.iter().map(|a| affine(kernel, a)).collect();
            if let Some(p) = parts.get_mut(*axis) {
                *p = expr(kernel, index);
            }
            format!("{}[{}]", kernel.tensors[*tensor].name, parts.join(", "))
        }
        Expr::ArgReduce { max, dim, body } => format!("{}[{}]({})", if *max { "argmax" } else { "argmin" }, kernel.dims[*dim].name, expr(kernel, body)),
    }
}

/// The kernel IR in `.tile` form: what type checking made of the source (resolved types, hidden
/// locals, rewritten functions).
pub(crate) fn dump_kernel(kernel: &Kernel) -> String {
    let mut out = format!("kernel {} {{\n", kernel.name);
    for d in &kernel.dims {
        if d.is_split() {
            let _ = writeln!(out, "  dim {} = {} tile {}", d.name, d.size, d.tile);
        } else {
            let _ = writeln!(out, "  dim {} = {}", d.name, d.size);
        }
    }
    for t in &kernel.tensors {
        let role = match t.role {
            Role::In => "in",
            Role::Out => "out",
            Role::Local => "local",
        };
        let shape: Vec<String> = if t.role == Role::Local {
            t.local_dims.iter().map(|&d| kernel.dims[d].name.clone()).collect()
        } else {
            t.shape.iter().map(|n| n.to_string()).collect()
        };
        let _ = writeln!(out, "  {role} {}: {}[{}]", t.name, t.dtype.mlir(), shape.join(", "));
    }
    let spread = |d: Option<DimId>| d.map(|d| kernel.dims[d].name.clone());
    match (spread(kernel.spread.rows), spread(kernel.spread.cols)) {
        (Some(r), Some(c)) if r == c => {
            let _ = writeln!(out, "  spread {r} over cores");
        }
        (r, c) => {
            let parts: Vec<String> = r
                .map(|r| format!("{r} over rows"))
                .into_iter()
                .chain(c.map(|c| format!("{c} over cols")))
                .collect();
            if !parts.is_empty() {
                let _ = writeln!(out, "  spread {}", parts.join(", "));
            }
        }
    }
    let _ = writeln!(out, "  depth {}", kernel.depth);
    for s in &kernel.stmts {
        let target: Vec<&str> = s.target_dims.iter().map(|&d| kernel.dims[d].name.as_str()).collect();
        let _ = writeln!(
            out,
            "  {}[{}] {} {}    # {}",
            kernel.tensors[s.target].name,
            target.join(", "),
            if s.accumulate { "+=" } else { "=" },
            expr(kernel, &s.value),
            s.span.location()
        );
    }
    out.push_str("}\n");
    out
}

fn tile_loop(kernel: &Kernel, l: &TileLoop) -> String {
    format!(
        "{}: {} iteration(s), tile = step * {} + row * {} + col * {}",
        kernel.dims[l.dim].name, l.count, l.step_coef, l.row_coef, l.col_coef
    )
}

/// The placement: grid, loops and cores.
pub(crate) fn dump_placement(kernel: &Kernel, design: &Design) -> String {
    let mut out = format!(
        "placement on {}: {} row(s) x {} column(s) = {} cores\n",
        design.device.name,
        design.rows_used,
        design.cols_used,
        design.cores.len()
    );
    for l in &design.step_loops {
        let _ = writeln!(out, "  step loop {}", tile_loop(kernel, l));
    }
    for l in &design.reduce_loops {
        let _ = writeln!(out, "  reduction loop {}", tile_loop(kernel, l));
    }
    for c in &design.cores {
        let _ = writeln!(out, "  core {} (row index {}, column index {})", c.tile, c.row_index, c.col_index);
    }
    out
}

/// The object FIFOs and links.
pub(crate) fn dump_routes(kernel: &Kernel, design: &Design) -> String {
    let mut out = String::new();
    for (t, r) in &design.routing {
        let _ = writeln!(out, "tensor {}: {r:?}", kernel.tensors[*t].name);
    }
    for f in &design.fifos {
        let level = match f.level {
            FifoLevel::HostToMem => "shim -> memory tile",
            FifoLevel::MemToCore => "memory tile -> cores",
            FifoLevel::CoreToMem => "core -> memory tile",
            FifoLevel::MemToHost => "memory tile -> shim",
        };
        let consumers: Vec<String> = f.consumers.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            out,
            "fifo {}: {} -> {} depth {} of {} ({level}, tensor {})",
            f.name,
            f.producer,
            consumers.join(", "),
            f.depth,
            f.memref(),
            kernel.tensors[f.tensor].name
        );
    }
    for l in &design.links {
        let names = |v: &[usize]| v.iter().map(|&f| design.fifos[f].name.as_str()).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "link [{}] -> [{}] src_offsets {:?} dst_offsets {:?}",
            names(&l.inputs),
            names(&l.outputs),
            l.src_offsets,
            l.dst_offsets
        );
    }
    out
}

/// The runtime sequence.
pub(crate) fn dump_sequence(kernel: &Kernel, design: &Design) -> String {
    let mut out = String::new();
    for op in &design.sequence {
        match op {
            SequenceOp::Dma(d) => {
                let _ = writeln!(
                    out,
                    "dma {} (arg {}) via {}: offset {} sizes {:?} strides {:?} id {}{}",
                    kernel.tensors[design.args[d.arg]].name,
                    d.arg,
                    design.fifos[d.fifo].name,
                    d.offset,
                    d.sizes,
                    d.strides,
                    d.id,
                    if d.issue_token { " issue_token" } else { "" }
                );
            }
            SequenceOp::Wait { fifo } => {
                let _ = writeln!(out, "wait {}", design.fifos[*fifo].name);
            }
        }
    }
    out
}

/// Every tile's budget against its limits.
pub(crate) fn dump_budgets(design: &Design, budgets: &[TileMemoryBudget]) -> String {
    let mut out = String::new();
    for b in budgets {
        let lim = design.device.limits(b.kind);
        let data = if lim.data_bytes > 0 {
            format!("data {} of {} bytes, ", b.data_bytes, lim.data_bytes)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} tile {}: {data}DMA in {} of {}, out {} of {}, locks {} of {}, BDs {} of {}",
            b.kind.name(),
            b.tile,
            b.dma_in,
            lim.dma_in,
            b.dma_out,
            lim.dma_out,
            b.locks,
            lim.locks,
            b.bds,
            lim.bds
        );
        for (what, bytes) in &b.buffers {
            let _ = writeln!(out, "  {bytes} bytes: {what}");
        }
    }
    out
}
