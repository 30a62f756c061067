//! Name resolution and type checking: [`KernelAst`] -> [`ir::Kernel`], with the semantics of the
//! [`crate::ir`] module doc. Every error carries the span of the culprit.
//!
//! Rules worth stating:
//! * Dims and tensors share one namespace; items may come in any order (statements run in order).
//! * A dim's tile must divide its size (a [`CompileError::Limit`]); no tile means not split.
//! * Expressions compute in `I32` or `F32` only. A literal takes the type of the values around it
//!   (an integer literal in a float expression is a float; a fractional one in an integer
//!   expression is an error). Mixing `I32` and `F32` values needs an explicit `cast<..>`.
//! * Stores: float values go to bf16/f32 tensors (bf16 rounds); i32 values go to i32 tensors, and
//!   to i8/i16 tensors only when the value is already in range: a `srs<..>`/`cast<..>` to that type
//!   or narrower, or a load of such a tensor (or max/min/select of those).
//! * Every dim a value uses is in the target or reduced by an enclosing `sum|max|min[..]`; with
//!   `+=`, dims in neither are summed (`acc[M, N] += A[M, K] * B[K, N]` adds all K terms).
//! * Host tensors may be accessed with several index patterns (e.g. `gb[0, D]` and `gb[1, D]`);
//!   `ir::Tensor::access` holds the first one (the scheduler collects the others). An output is
//!   written with one pattern only. With a single pattern, an axis indexed by a plain dim must have
//!   the dim's size as its extent; with several, indices need only stay inside the extents.
//! * Default spread (no `spread` item): the first dim of the first statement writing an output
//!   goes over rows, its second dim (if any) over columns.

use super::ast::{self, Extent, Item, KernelAst, Role, SpreadAxis, MAX_EXPR_DEPTH};
use super::parse::too_deep;
use crate::check::{MAX_ARGUMENT_BYTES, MAX_EXTENT};
use crate::diag::{CompileError, Diagnostic, Span};
use crate::ir::{self, scalar_type_of, Affine, Convert, DimId, ScalarType, TensorId};
use aiec_runtime::DType;
use std::collections::HashMap;

/// Resolves and type-checks a kernel AST (from either front end).
pub fn typecheck(ast: &KernelAst) -> Result<ir::Kernel, CompileError> {
    let kernel = Checker::default().kernel(ast)?;
    super::tiling::check(&kernel)?;
    Ok(kernel)
}

fn type_error(message: impl Into<String>, span: &Span) -> CompileError {
    CompileError::Type(Diagnostic::new(message, Some(span)))
}

fn limit_error(message: impl Into<String>, span: &Span) -> CompileError {
    CompileError::Limit(Diagnostic::new(message, Some(span)))
}

fn type_name(t: ScalarType) -> &'static str {
    match t {
        ScalarType::I32 => "i32",
        ScalarType::F32 => "f32",
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::In => "input",
        Role::Out => "output",
        Role::Local => "local",
    }
}

/// The dims an expression depends on that no reduction inside it binds.
fn free_dims(e: &ir::Expr) -> Vec<DimId> {
    fn visit(e: &ir::Expr, bound: &mut Vec<DimId>, out: &mut Vec<DimId>) {
        let add = |d: DimId, bound: &Vec<DimId>, out: &mut Vec<DimId>| {
            if !bound.contains(&d) && !out.contains(&d) {
                out.push(d);
            }
        };
        match e {
            ir::Expr::Load { indices, .. } => {
                for a in indices {
                    for d in a.dims() {
                        add(d, bound, out);
                    }
                }
            }
            ir::Expr::Index { dim } => add(*dim, bound, out),
            ir::Expr::Gather { indices, index, .. } => {
                for a in indices {
                    for d in a.dims() {
                        add(d, bound, out);
                    }
                }
                visit(index, bound, out);
            }
            ir::Expr::Select { lhs, rhs, then, otherwise, .. } => {
                for d in lhs.dims().chain(rhs.dims()) {
                    add(d, bound, out);
                }
                visit(then, bound, out);
                visit(otherwise, bound, out);
            }
            ir::Expr::Reduce { dims, body, .. } => {
                let n = bound.len();
                bound.extend(dims);
                visit(body, bound, out);
                bound.truncate(n);
            }
            ir::Expr::ArgReduce { dim, body, .. } => {
                bound.push(*dim);
                visit(body, bound, out);
                bound.pop();
            }
            ir::Expr::Const { .. } => {}
            ir::Expr::Unary { arg, .. } | ir::Expr::Convert { arg, .. } => visit(arg, bound, out),
            ir::Expr::Binary { lhs, rhs, .. } => {
                visit(lhs, bound, out);
                visit(rhs, bound, out);
            }
            ir::Expr::ValueSelect { lhs, rhs, then, otherwise, .. } => {
                for x in [lhs, rhs, then, otherwise] {
                    visit(x, bound, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    visit(e, &mut Vec::new(), &mut out);
    out
}

/// `x^n` by repeated squaring (at most 2 log2(n) multiplications), then `recip` when the
/// exponent was negative; `x^0 = 1`.
fn power(x: ir::Expr, n: u32, negative: bool) -> ir::Expr {
    let ty = x.ty();
    let mul = |a: ir::Expr, b: ir::Expr| ir::Expr::Binary {
        op: ast::BinaryOp::Mul,
        lhs: Box::new(a),
        rhs: Box::new(b),
        ty,
    };
    let mut result: Option<ir::Expr> = None;
    let mut square = x;
    let mut k = n;
    while k > 0 {
        if k & 1 == 1 {
            result = Some(match result {
                None => square.clone(),
                Some(r) => mul(r, square.clone()),
            });
        }
        k >>= 1;
        if k > 0 {
            square = mul(square.clone(), square);
        }
    }
    let r = result.unwrap_or(ir::Expr::Const { value: 1.0, ty });
    if negative {
        ir::Expr::Unary {
            op: ast::UnaryOp::Recip,
            arg: Box::new(r),
            ty,
        }
    } else {
        r
    }
}

fn unary_name(op: ast::UnaryOp) -> &'static str {
    match op {
        ast::UnaryOp::Neg => "negation",
        ast::UnaryOp::Exp => "exp",
        ast::UnaryOp::Tanh => "tanh",
        ast::UnaryOp::Rsqrt => "rsqrt",
        ast::UnaryOp::Sqrt => "sqrt",
        ast::UnaryOp::Log10 => "log10",
        ast::UnaryOp::Ln => "ln",
        ast::UnaryOp::Abs => "abs",
        ast::UnaryOp::Recip => "recip",
        ast::UnaryOp::Sigmoid => "sigmoid",
        ast::UnaryOp::Floor => "floor",
        ast::UnaryOp::Round => "round",
    }
}

/// Edit distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(!ca.eq_ignore_ascii_case(&cb));
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether a stored i32 value is known to fit a narrow integer type without `srs`/`cast`.
fn int_width(d: DType) -> u32 {
    match d {
        DType::I8 => 8,
        DType::I16 => 16,
        _ => 32,
    }
}

#[derive(Default)]
struct Checker {
    dims: Vec<ir::Dim>,
    tensors: Vec<ir::Tensor>,
    /// Name -> where it was declared, for duplicates.
    declared: HashMap<String, Span>,
    dim_ids: HashMap<String, DimId>,
    tensor_ids: HashMap<String, TensorId>,
    /// Per host tensor: distinct access patterns, in order of first use, with that use's span.
    patterns: HashMap<TensorId, Vec<(Vec<Affine>, Span)>>,
    /// Per output: the first target pattern written.
    written: HashMap<TensorId, (Vec<DimId>, Span)>,
    /// Locals assigned by the statements checked so far.
    assigned_locals: Vec<TensorId>,
    /// Dims bound by the enclosing reductions while checking a value.
    bound: Vec<DimId>,
    /// Dims a value uses outside any reduction binding them, with the first use's span.
    free: Vec<(DimId, Span)>,
    /// Dims used inside the reduction bodies being checked (one set per open reduction).
    used_in_reduce: Vec<Vec<DimId>>,
}

impl Checker {
    fn kernel(mut self, ast: &KernelAst) -> Result<ir::Kernel, CompileError> {
        // Dims first: tensors and statements may name dims declared after them.
        for item in &ast.items {
            if let Item::Dim { name, size, tile, span } = item {
                self.declare(name)?;
                let tile_value = tile.unwrap_or(*size);
                if *size == 0 {
                    return Err(type_error(format!("dim {} has size 0", name.name), span));
                }
                if *size > MAX_EXTENT {
                    return Err(limit_error(
                        format!("dim {} = {size}: larger than the largest supported extent {MAX_EXTENT}", name.name),
                        span,
                    ));
                }
                if tile_value == 0 {
                    return Err(limit_error(
                        format!("tile 0 of dim {} = {}: a tile needs at least one element", name.name, size),
                        span,
                    ));
                }
                if tile_value > *size {
                    return Err(limit_error(
                        format!("tile {tile_value} does not divide dim {} = {size}: it is larger than the dim", name.name),
                        span,
                    ));
                }
                if size % tile_value != 0 {
                    return Err(limit_error(format!("tile {tile_value} does not divide dim {} = {size}", name.name), span));
                }
                self.dim_ids.insert(name.name.clone(), DimId(self.dims.len()));
                self.dims.push(ir::Dim {
                    name: name.name.clone(),
                    size: *size,
                    tile: tile_value,
                    span: span.clone(),
                });
            }
        }
        for item in &ast.items {
            if let Item::Tensor {
                role,
                name,
                dtype,
                shape,
                span,
                ..
            } = item
            {
                self.tensor(*role, name, *dtype, shape, span)?;
            }
        }
        let mut depth: Option<(usize, Span)> = None;
        for item in &ast.items {
            if let Item::Depth { depth: d, span } = item {
                if let Some((_, first)) = &depth {
                    return Err(type_error(format!("depth is given twice (first at {})", first.location()), span));
                }
                if !(1..=4).contains(d) {
                    return Err(type_error(
                        format!("depth {d} is out of range: object FIFO depth must be 1..=4 (2 = double buffering)"),
                        span,
                    ));
                }
                depth = Some((*d as usize, span.clone()));
            }
        }
        let mut stmts = Vec::new();
        for item in &ast.items {
            if let Item::Stmt(s) = item {
                let stmt = self.stmt(s)?;
                stmts.extend(self.hoist_split_reductions(stmt));
            }
        }
        for (id, t) in self.tensors.iter().enumerate() {
            if t.role == Role::Out && !self.written.contains_key(&TensorId(id)) {
                return Err(type_error(format!("output {} is never assigned", t.name), &t.span));
            }
        }
        let spread = self.spread(ast, &stmts)?;
        self.finish_host_accesses()?;
        let (depth, depth_span) = match depth {
            Some((d, s)) => (d, Some(s)),
            None => (2, None),
        };
        Ok(ir::Kernel {
            name: ast.name.name.clone(),
            dims: self.dims,
            tensors: self.tensors,
            spread,
            depth,
            depth_span,
            stmts,
            span: ast.span.clone(),
        })
    }

    /// A reduction over a split dim inside a larger expression (`y = sum[K](..) * 2.0 + b[N]`)
    /// becomes its own statement into a new local, read where it stood: the scheduler runs the
    /// reduction across tiles, and the rest of the expression after the last tile.
    fn hoist_split_reductions(&mut self, mut stmt: ir::Stmt) -> Vec<ir::Stmt> {
        let mut hoisted = Vec::new();
        if !matches!(&stmt.value, ir::Expr::Reduce { .. }) {
            let target_name = self.tensors[stmt.target].name.clone();
            let mut value = std::mem::replace(
                &mut stmt.value,
                ir::Expr::Const {
                    value: 0.0,
                    ty: ScalarType::I32,
                },
            );
            self.hoist_in(&mut value, &stmt, &target_name, &mut hoisted);
            stmt.value = value;
        }
        hoisted.push(stmt);
        hoisted
    }

    fn hoist_in(&mut self, e: &mut ir::Expr, stmt: &ir::Stmt, target_name: &str, out: &mut Vec<ir::Stmt>) {
        match e {
            ir::Expr::Reduce { dims, .. } if dims.iter().any(|&d| self.dims[d].tile < self.dims[d].size) => {
                let free = free_dims(e);
                // Indexed by the target's dims that it uses, in the target's order.
                if !free.iter().all(|d| stmt.target_dims.contains(d)) {
                    return;
                }
                let local_dims: Vec<DimId> = stmt.target_dims.iter().copied().filter(|d| free.contains(d)).collect();
                let ty = e.ty();
                let mut name = format!("{target_name}_sum");
                let mut k = 1;
                while self.tensor_ids.contains_key(&name) || self.declared.contains_key(&name) {
                    k += 1;
                    name = format!("{target_name}_sum{k}");
                }
                let id = TensorId(self.tensors.len());
                self.tensor_ids.insert(name.clone(), id);
                self.tensors.push(ir::Tensor {
                    name,
                    role: Role::Local,
                    dtype: if ty == ScalarType::F32 { DType::F32 } else { DType::I32 },
                    shape: local_dims.iter().map(|&d| self.dims[d].tile).collect(),
                    local_dims: local_dims.clone(),
                    access: None,
                    span: stmt.span.clone(),
                });
                self.assigned_locals.push(id);
                let load = ir::Expr::Load {
                    tensor: id,
                    indices: local_dims.iter().map(|&d| Affine::dim(d)).collect(),
                    ty,
                };
                let reduce = std::mem::replace(e, load);
                out.push(ir::Stmt {
                    target: id,
                    target_dims: local_dims,
                    accumulate: false,
                    value: reduce,
                    span: stmt.span.clone(),
                });
            }
            // Inside another reduction the hoisted value would need that reduction's dims too.
            ir::Expr::Reduce { .. } | ir::Expr::ArgReduce { .. } => {}
            ir::Expr::Const { .. } | ir::Expr::Load { .. } | ir::Expr::Index { .. } | ir::Expr::Gather { .. } => {}
            ir::Expr::Unary { arg, .. } | ir::Expr::Convert { arg, .. } => self.hoist_in(arg, stmt, target_name, out),
            ir::Expr::Binary { lhs, rhs, .. } => {
                self.hoist_in(lhs, stmt, target_name, out);
                self.hoist_in(rhs, stmt, target_name, out);
            }
            ir::Expr::Select { then, otherwise, .. } => {
                self.hoist_in(then, stmt, target_name, out);
                self.hoist_in(otherwise, stmt, target_name, out);
            }
            ir::Expr::ValueSelect { lhs, rhs, then, otherwise, .. } => {
                for x in [lhs, rhs, then, otherwise] {
                    self.hoist_in(x, stmt, target_name, out);
                }
            }
        }
    }

    fn declare(&mut self, name: &ast::Ident) -> Result<(), CompileError> {
        if let Some(first) = self.declared.get(&name.name) {
            return Err(type_error(
                format!("duplicate name {}: already declared at {}", name.name, first.location()),
                &name.span,
            ));
        }
        self.declared.insert(name.name.clone(), name.span.clone());
        Ok(())
    }

    fn unknown(&self, what: &str, name: &ast::Ident) -> CompileError {
        let (others, other_kind): (Vec<&str>, &str) = if what == "dim" {
            (self.tensor_ids.keys().map(String::as_str).collect(), "a tensor")
        } else {
            (self.dim_ids.keys().map(String::as_str).collect(), "a dim")
        };
        if others.contains(&name.name.as_str()) {
            return type_error(format!("{} is {other_kind}, not a {what}", name.name), &name.span);
        }
        let pool: Vec<&str> = if what == "dim" {
            self.dim_ids.keys().map(String::as_str).collect()
        } else {
            self.tensor_ids.keys().map(String::as_str).collect()
        };
        let mut pool = pool;
        pool.sort();
        let mut msg = format!("unknown {what} `{}`", name.name);
        if let Some(s) = closest(&name.name, pool.into_iter()) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        type_error(msg, &name.span)
    }

    fn dim(&self, name: &ast::Ident) -> Result<DimId, CompileError> {
        self.dim_ids.get(&name.name).copied().ok_or_else(|| self.unknown("dim", name))
    }

    fn tensor_id(&self, name: &ast::Ident) -> Result<TensorId, CompileError> {
        self.tensor_ids.get(&name.name).copied().ok_or_else(|| self.unknown("tensor", name))
    }

    fn tensor(&mut self, role: Role, name: &ast::Ident, dtype: DType, shape: &[Extent], span: &Span) -> Result<(), CompileError> {
        self.declare(name)?;
        if shape.is_empty() {
            return Err(type_error(format!("tensor {} needs at least one extent", name.name), span));
        }
        let mut sizes = Vec::new();
        let mut local_dims = Vec::new();
        for e in shape {
            match (role, e) {
                (Role::Local, Extent::Dim(d)) => {
                    let id = self.dim(d)?;
                    if local_dims.contains(&id) {
                        return Err(type_error(format!("local {} names dim {} twice", name.name, d.name), &d.span));
                    }
                    local_dims.push(id);
                    sizes.push(self.dims[id].tile);
                }
                (Role::Local, Extent::Number(n, s)) => {
                    return Err(type_error(format!("local {} is indexed by dims only; extent {n} must be a dim", name.name), s));
                }
                (_, Extent::Dim(d)) => sizes.push(self.dims[self.dim(d)?].size),
                (_, Extent::Number(0, s)) => return Err(type_error(format!("tensor {} has an extent of 0", name.name), s)),
                (_, Extent::Number(n, s)) if *n > MAX_EXTENT => {
                    return Err(limit_error(
                        format!("extent {n} of tensor {}: larger than the largest supported extent {MAX_EXTENT}", name.name),
                        s,
                    ))
                }
                (_, Extent::Number(n, _)) => sizes.push(*n),
            }
        }
        self.check_tensor_size(role, &name.name, dtype, &sizes, span)?;
        self.tensor_ids.insert(name.name.clone(), TensorId(self.tensors.len()));
        self.tensors.push(ir::Tensor {
            name: name.name.clone(),
            role,
            dtype,
            shape: sizes,
            local_dims,
            access: None,
            span: span.clone(),
        });
        Ok(())
    }

    /// A host tensor's bytes must fit one runtime-sequence argument ([`MAX_ARGUMENT_BYTES`]); a
    /// local's size must at least be computable (the checker then holds it to the tile's memory).
    fn check_tensor_size(&self, role: Role, name: &str, dtype: DType, shape: &[u64], span: &Span) -> Result<(), CompileError> {
        let shape_text = shape.iter().map(u64::to_string).collect::<Vec<_>>().join(" x ");
        let bytes = shape.iter().try_fold(dtype.size_bytes() as u64, |acc, &n| acc.checked_mul(n));
        let Some(bytes) = bytes else {
            return Err(limit_error(
                format!(
                    "size of {} {name} ({shape_text} {} elements) overflows 64-bit arithmetic",
                    role_name(role),
                    dtype.mlir()
                ),
                span,
            ));
        };
        if role != Role::Local && bytes > MAX_ARGUMENT_BYTES {
            return Err(CompileError::Limit(
                Diagnostic::new(
                    format!(
                        "{} {name} is {bytes} bytes ({shape_text} {} elements), larger than the {MAX_ARGUMENT_BYTES} bytes (2 GiB) a runtime-sequence argument may span",
                        role_name(role),
                        dtype.mlir()
                    ),
                    Some(span),
                )
                .note("the shim DMA reaches an argument's data at its base address plus a signed 32-bit byte offset (aiex.npu.address_patch's arg_plus)"),
            ));
        }
        Ok(())
    }

    fn affine(&mut self, a: &ast::AffineAst) -> Result<Affine, CompileError> {
        let mut terms: Vec<(i64, DimId)> = Vec::new();
        for (coef, name) in &a.terms {
            let d = self.dim(name)?;
            self.use_dim(d, &name.span);
            match terms.iter_mut().find(|(_, t)| *t == d) {
                Some(t) => {
                    t.0 = t.0.checked_add(*coef).ok_or_else(|| {
                        limit_error(
                            format!("the coefficient of dim {} is larger than the largest supported extent {MAX_EXTENT}", name.name),
                            &a.span,
                        )
                    })?
                }
                None => terms.push((*coef, d)),
            }
        }
        terms.retain(|(c, _)| *c != 0);
        // Canonical order (by dim), so equal indices written differently are one pattern.
        terms.sort_by_key(|(_, d)| *d);
        let mut divmods = Vec::new();
        for (coef, q) in &a.divmods {
            let inner = self.affine(&q.inner)?;
            let sign = if q.op == ast::DivMod::Div { "/" } else { "%" };
            if q.by <= 0 {
                return Err(type_error(format!("an index {sign} by {}: the divisor must be at least 1", q.by), &q.span));
            }
            let (lo, _) = inner.range(&|d| self.dims[d].size);
            if lo < 0 {
                return Err(type_error(
                    format!("the index before `{sign}` reaches {lo}, below 0; `/` and `%` in an index take a non-negative left side"),
                    &q.inner.span,
                ));
            }
            if *coef != 0 {
                divmods.push((*coef, ir::DivModIndex { inner, op: q.op, by: q.by }));
            }
        }
        Ok(Affine {
            terms,
            constant: a.constant,
            divmods,
        })
    }

    fn use_dim(&mut self, d: DimId, span: &Span) {
        for used in self.used_in_reduce.iter_mut() {
            if !used.contains(&d) {
                used.push(d);
            }
        }
        if !self.bound.contains(&d) && !self.free.iter().any(|(f, _)| *f == d) {
            self.free.push((d, span.clone()));
        }
    }

    /// Resolves an access; for locals the indices must be the local's dims, in order.
    fn access(&mut self, a: &ast::Access) -> Result<(TensorId, Vec<Affine>), CompileError> {
        let t = self.tensor_id(&a.tensor)?;
        let rank = self.tensors[t].shape.len();
        if a.indices.len() != rank {
            return Err(type_error(
                format!(
                    "tensor {} has {rank} ind{}, found {}",
                    a.tensor.name,
                    if rank == 1 { "ex" } else { "ices" },
                    a.indices.len()
                ),
                &a.span,
            ));
        }
        let mut indices = Vec::new();
        for i in &a.indices {
            indices.push(self.affine(i)?);
        }
        let tensor = &self.tensors[t];
        if tensor.role == Role::Local {
            for (k, (idx, ast_idx)) in indices.iter().zip(&a.indices).enumerate() {
                if idx.as_dim() != Some(tensor.local_dims[k]) {
                    let names: Vec<&str> = tensor.local_dims.iter().map(|&d| self.dims[d].name.as_str()).collect();
                    return Err(type_error(
                        format!(
                            "local {} is declared over [{}]; index it as {}[{}]",
                            tensor.name,
                            names.join(", "),
                            tensor.name,
                            names.join(", ")
                        ),
                        &ast_idx.span,
                    ));
                }
            }
        } else {
            self.check_bounds(t, &indices, a)?;
            let list = self.patterns.entry(t).or_default();
            if !list.iter().any(|(p, _)| *p == indices) {
                list.push((indices.clone(), a.span.clone()));
            }
        }
        Ok((t, indices))
    }

    /// Every index of a host access stays inside the tensor's extent.
    fn check_bounds(&self, t: TensorId, indices: &[Affine], a: &ast::Access) -> Result<(), CompileError> {
        let tensor = &self.tensors[t];
        for (axis, (idx, ast_idx)) in indices.iter().zip(&a.indices).enumerate() {
            let (lo, hi) = idx.range(&|d| self.dims[d].size);
            let extent = tensor.shape[axis];
            if hi >= extent as i128 {
                return Err(type_error(
                    format!(
                        "index out of bounds: {} axis {axis} reaches index {hi}, but its extent is {extent}",
                        tensor.name
                    ),
                    &ast_idx.span,
                ));
            }
            if lo < 0 {
                return Err(type_error(
                    format!("index out of bounds: {} axis {axis} reaches index {lo}, below 0", tensor.name),
                    &ast_idx.span,
                ));
            }
            // Only a dim of size 1 gets here with a larger coefficient (its term is always 0); the
            // bound keeps every stride the scheduler derives within the tensor's size.
            if let Some((c, _)) = idx.divmods.iter().find(|(c, _)| c.unsigned_abs() > extent) {
                return Err(type_error(
                    format!("index coefficient {c} is larger than {} axis {axis}'s extent {extent}", tensor.name),
                    &ast_idx.span,
                ));
            }
            if let Some(&(c, d)) = idx.terms.iter().find(|(c, _)| c.unsigned_abs() > extent) {
                return Err(type_error(
                    format!(
                        "index coefficient {c} of dim {} is larger than {} axis {axis}'s extent {extent}",
                        self.dims[d].name, tensor.name
                    ),
                    &ast_idx.span,
                ));
            }
        }
        Ok(())
    }

    /// The values of a `select` comparison's index stay within the supported extent, so every
    /// backend computes them without overflow.
    fn check_select_index(&self, idx: &Affine, ast_idx: &ast::AffineAst) -> Result<(), CompileError> {
        let (lo, hi) = idx.range(&|d| self.dims[d].size);
        let max = MAX_EXTENT as i128;
        if let Some(v) = [lo, hi].into_iter().find(|v| v.abs() > max) {
            return Err(limit_error(
                format!("index value {v} of this comparison is beyond the largest supported extent {MAX_EXTENT}"),
                &ast_idx.span,
            ));
        }
        Ok(())
    }

    fn stmt(&mut self, s: &ast::Stmt) -> Result<ir::Stmt, CompileError> {
        // The parser never builds deeper trees; the Rust builder can, and every pass recurses.
        if let Some(deep) = s.value.deeper_than(MAX_EXPR_DEPTH) {
            return Err(CompileError::Limit(too_deep(deep.span())));
        }
        let t = self.tensor_id(&s.target.tensor)?;
        if self.tensors[t].role == Role::In {
            return Err(type_error(
                format!("cannot assign to input tensor {}; declare it `out` or `local`", self.tensors[t].name),
                &s.target.tensor.span,
            ));
        }
        if let Some((_, by)) = &s.target.gather {
            return Err(type_error(
                "a target cannot be indexed by a tensor read (a scatter); targets take plain dims",
                &by.span,
            ));
        }
        for i in &s.target.indices {
            let plain = matches!(i.terms.as_slice(), [(1, _)]) && i.constant == 0 && i.divmods.is_empty();
            if !plain {
                let name = &s.target.tensor.name;
                return Err(CompileError::Type(
                    Diagnostic::new(format!("target indices must be plain dims (e.g. {name}[M, N]); found an index expression"), Some(&i.span)).note(format!(
                    "a statement writes every element of its target's tiles, which the cores hand to the DMA whole; a strided, offset or sliced target would leave elements unwritten. Give the interleaved part its own axis instead: {name}[..., I, J] with `dim J = 2` and select(J == 0, a, b) writes the pairs of {name}[..., 2*I + J] (dsl-examples/rope.tile does this)"
                    )),
                ));
            }
        }
        self.free.clear();
        self.bound.clear();
        let (_, target_idx) = self.access(&s.target)?;
        let target_dims: Vec<DimId> = target_idx.iter().map(|a| a.as_dim().expect("checked plain above")).collect();
        for (k, d) in target_dims.iter().enumerate() {
            if target_dims[..k].contains(d) {
                return Err(type_error(
                    format!("dim {} appears twice in the target", self.dims[*d].name),
                    &s.target.indices[k].span,
                ));
            }
        }
        let tensor = self.tensors[t].clone();
        if tensor.role == Role::Out {
            match self.written.get(&t) {
                Some((first, first_span)) if *first != target_dims => {
                    return Err(type_error(
                        format!(
                            "output {} is written with two different index patterns (first at {})",
                            tensor.name,
                            first_span.location()
                        ),
                        &s.target.span,
                    ))
                }
                Some(_) => {}
                None => {
                    self.written.insert(t, (target_dims.clone(), s.target.span.clone()));
                }
            }
        }
        self.free.clear();
        let want = scalar_type_of(tensor.dtype);
        let mut value = self.expr(&s.value, Some(want))?;
        let mut implicit = Vec::new();
        for (d, span) in self.free.clone() {
            if !target_dims.contains(&d) {
                if s.accumulate {
                    implicit.push(d);
                    continue;
                }
                let n = &self.dims[d].name;
                return Err(type_error(
                    format!("dim {n} is neither in the target nor reduced; wrap in sum[{n}](...)"),
                    &span,
                ));
            }
        }
        // `acc[M, N] += A[M, K] * B[K, N]` adds every term into the target: a sum over K.
        if !implicit.is_empty() {
            let ty = value.ty();
            value = ir::Expr::Reduce {
                op: ast::ReduceOp::Sum,
                dims: implicit,
                body: Box::new(value),
                ty,
            };
        }
        self.check_store(&tensor, s, &value)?;
        if tensor.role == Role::Local && !self.assigned_locals.contains(&t) {
            self.assigned_locals.push(t);
        }
        Ok(ir::Stmt {
            target: t,
            target_dims,
            accumulate: s.accumulate,
            value,
            span: s.span.clone(),
        })
    }

    fn check_store(&self, tensor: &ir::Tensor, s: &ast::Stmt, value: &ir::Expr) -> Result<(), CompileError> {
        let vty = value.ty();
        let span = s.value.span();
        if tensor.dtype.is_float() {
            if vty == ScalarType::I32 {
                return Err(type_error(
                    format!(
                        "dtype mismatch: i32 value stored into {} tensor {}; convert it with cast<{}>(...)",
                        tensor.dtype.mlir(),
                        tensor.name,
                        tensor.dtype.mlir()
                    ),
                    span,
                ));
            }
            return Ok(());
        }
        if vty == ScalarType::F32 {
            return Err(type_error(
                format!(
                    "dtype mismatch: f32 value stored into {} tensor {}; convert it with cast<{}>(...)",
                    tensor.dtype.mlir(),
                    tensor.name,
                    tensor.dtype.mlir()
                ),
                span,
            ));
        }
        let width = int_width(tensor.dtype);
        if width < 32 {
            if s.accumulate {
                return Err(type_error(
                    format!(
                        "dtype mismatch: `+=` into {} tensor {} would overflow silently; accumulate into an i32 local and store with srs<{}>(..., shift)",
                        tensor.dtype.mlir(),
                        tensor.name,
                        tensor.dtype.mlir()
                    ),
                    &s.target.span,
                ));
            }
            if !self.fits(value, width) {
                let d = tensor.dtype.mlir();
                return Err(type_error(
                    format!(
                        "dtype mismatch: i32 value stored into {d} tensor {}; narrow it with srs<{d}>(..., shift) or cast<{d}>(...)",
                        tensor.name
                    ),
                    span,
                ));
            }
        }
        Ok(())
    }

    /// Whether an i32 value is known to lie in the range of a `width`-bit integer.
    fn fits(&self, e: &ir::Expr, width: u32) -> bool {
        match e {
            ir::Expr::Convert { to, .. } => !to.is_float() && int_width(*to) <= width,
            ir::Expr::Load { tensor, .. } => int_width(self.tensors[*tensor].dtype) <= width,
            ir::Expr::Const { value, .. } => {
                let half = 1i64 << (width - 1);
                (*value as i64) >= -half && (*value as i64) < half
            }
            ir::Expr::Binary {
                op: ast::BinaryOp::Max | ast::BinaryOp::Min,
                lhs,
                rhs,
                ..
            } => self.fits(lhs, width) && self.fits(rhs, width),
            ir::Expr::Select { then, otherwise, .. } => self.fits(then, width) && self.fits(otherwise, width),
            ir::Expr::Reduce {
                op: ast::ReduceOp::Max | ast::ReduceOp::Min,
                body,
                ..
            } => self.fits(body, width),
            _ => false,
        }
    }

    /// The type an expression has on its own (None: only literals decide, so the context does).
    fn natural(&self, e: &ast::Expr) -> Option<ScalarType> {
        match e {
            ast::Expr::Number(..) => None,
            ast::Expr::Access(a) => self.tensor_ids.get(&a.tensor.name).map(|&t| scalar_type_of(self.tensors[t].dtype)),
            ast::Expr::Unary(op, a, _) => match op {
                ast::UnaryOp::Neg | ast::UnaryOp::Abs => self.natural(a),
                _ => Some(ScalarType::F32),
            },
            ast::Expr::Binary(_, l, r, _) => self.natural(l).or_else(|| self.natural(r)),
            ast::Expr::Reduce { body, .. } => self.natural(body),
            ast::Expr::Cast { to, .. } | ast::Expr::Srs { to, .. } => Some(scalar_type_of(*to)),
            ast::Expr::Select { then, otherwise, .. } | ast::Expr::ValueSelect { then, otherwise, .. } => {
                self.natural(then).or_else(|| self.natural(otherwise))
            }
            ast::Expr::Pow { base, .. } => self.natural(base),
            ast::Expr::Index(_) | ast::Expr::ArgReduce { .. } => Some(ScalarType::I32),
        }
    }

    fn literal_default(e: &ast::Expr) -> ScalarType {
        let mut all_int = true;
        fn visit(e: &ast::Expr, all_int: &mut bool) {
            match e {
                ast::Expr::Number(v, _) => *all_int &= v.fract() == 0.0 && v.is_finite(),
                ast::Expr::Unary(_, a, _) => visit(a, all_int),
                ast::Expr::Binary(_, l, r, _) => {
                    visit(l, all_int);
                    visit(r, all_int);
                }
                _ => {}
            }
        }
        visit(e, &mut all_int);
        if all_int {
            ScalarType::I32
        } else {
            ScalarType::F32
        }
    }

    fn mismatch(&self, span: &Span, got: ScalarType, want: ScalarType) -> CompileError {
        let hint = match got {
            ScalarType::I32 => "convert the integer operand with cast<f32>(...)",
            ScalarType::F32 => "convert with cast<i32>(...) or make the other operand a float",
        };
        type_error(
            format!("dtype mismatch: {} value where {} is expected; {hint}", type_name(got), type_name(want)),
            span,
        )
    }

    /// Checks `e` expecting type `want` (the context's type); literals take it.
    fn expr(&mut self, e: &ast::Expr, want: Option<ScalarType>) -> Result<ir::Expr, CompileError> {
        Ok(match e {
            ast::Expr::Number(v, span) => {
                let ty = want.unwrap_or_else(|| Self::literal_default(e));
                if ty == ScalarType::I32 && v.fract() == 0.0 && (*v < i32::MIN as f64 || *v > i32::MAX as f64) {
                    return Err(type_error(
                        format!(
                            "literal {v} is out of the i32 range {}..={}; convert the integer operand with cast<f32>(...) for a float expression",
                            i32::MIN,
                            i32::MAX
                        ),
                        span,
                    ));
                }
                if ty == ScalarType::F32 && v.is_finite() && v.abs() > f32::MAX as f64 {
                    return Err(type_error(
                        format!("literal {v:e} is out of the f32 range (largest {:e}); write `inf` for infinity", f32::MAX),
                        span,
                    ));
                }
                if ty == ScalarType::I32 && (v.fract() != 0.0 || !v.is_finite() || *v < i32::MIN as f64 || *v > i32::MAX as f64) {
                    return Err(type_error(
                        format!("dtype mismatch: literal {v} in an i32 expression; convert the integer operand with cast<f32>(...)"),
                        span,
                    ));
                }
                ir::Expr::Const { value: *v, ty }
            }
            ast::Expr::Access(a) if a.gather.is_some() => {
                let (axis, by) = a.gather.as_ref().expect("checked by the guard");
                let (tensor, indices) = self.access(a)?;
                let role = self.tensors[tensor].role;
                if role != Role::In {
                    return Err(type_error(
                        format!(
                            "only inputs can be gathered; {} is {} {}",
                            self.tensors[tensor].name,
                            if role == Role::Out { "an output" } else { "a local" },
                            self.tensors[tensor].name
                        ),
                        &a.tensor.span,
                    ));
                }
                if by.tensor.name.is_empty() || by.gather.is_some() {
                    return Err(type_error(
                        "a gather index must be a read of an integer tensor with plain indices, e.g. table[ids[M], D]",
                        &by.span,
                    ));
                }
                let (by_tensor, by_indices) = self.access(by)?;
                if self.tensors[by_tensor].role == Role::Local && !self.assigned_locals.contains(&by_tensor) {
                    return Err(type_error(
                        format!("local {} is read before any statement assigns it", self.tensors[by_tensor].name),
                        &by.span,
                    ));
                }
                if self.tensors[by_tensor].dtype.is_float() {
                    return Err(type_error(
                        format!(
                            "a gather index must be an integer; {} is {}",
                            self.tensors[by_tensor].name,
                            self.tensors[by_tensor].dtype.mlir()
                        ),
                        &by.span,
                    ));
                }
                ir::Expr::Gather {
                    tensor,
                    indices,
                    axis: *axis,
                    index: Box::new(ir::Expr::Load {
                        tensor: by_tensor,
                        indices: by_indices,
                        ty: ScalarType::I32,
                    }),
                    ty: scalar_type_of(self.tensors[tensor].dtype),
                }
            }
            ast::Expr::Access(a) => {
                let (tensor, indices) = self.access(a)?;
                if self.tensors[tensor].role == Role::Local && !self.assigned_locals.contains(&tensor) {
                    return Err(type_error(
                        format!("local {} is read before any statement assigns it", self.tensors[tensor].name),
                        &a.span,
                    ));
                }
                ir::Expr::Load {
                    tensor,
                    indices,
                    ty: scalar_type_of(self.tensors[tensor].dtype),
                }
            }
            ast::Expr::Unary(ast::UnaryOp::Sigmoid, a, span) => {
                // 1 / (1 + exp(-x)): saturates to 0 and 1 with exp, NaN stays NaN.
                let x = self.expr(a, Some(ScalarType::F32))?;
                if x.ty() == ScalarType::I32 {
                    return Err(type_error(
                        "dtype mismatch: sigmoid needs a floating-point argument, found i32; convert it with cast<f32>(...)",
                        span,
                    ));
                }
                let f = ScalarType::F32;
                // -x as 0 - x: same exp, and vector subtraction has an AIE lowering where negation has none.
                let zero = ir::Expr::Const { value: 0.0, ty: f };
                let neg = ir::Expr::Binary {
                    op: ast::BinaryOp::Sub,
                    lhs: Box::new(zero),
                    rhs: Box::new(x),
                    ty: f,
                };
                let e = ir::Expr::Unary {
                    op: ast::UnaryOp::Exp,
                    arg: Box::new(neg),
                    ty: f,
                };
                let one = ir::Expr::Const { value: 1.0, ty: f };
                let den = ir::Expr::Binary {
                    op: ast::BinaryOp::Add,
                    lhs: Box::new(one),
                    rhs: Box::new(e),
                    ty: f,
                };
                ir::Expr::Unary {
                    op: ast::UnaryOp::Recip,
                    arg: Box::new(den),
                    ty: f,
                }
            }
            ast::Expr::Pow { base, exponent, .. } => {
                let ty = self.natural(base).or(want).unwrap_or_else(|| Self::literal_default(base));
                let x = self.expr(base, Some(ty))?;
                if *exponent < 0 && x.ty() == ScalarType::I32 {
                    return Err(type_error(
                        "pow of an i32 value with a negative exponent; convert it with cast<f32>(...)",
                        e.span(),
                    ));
                }
                power(x, exponent.unsigned_abs(), *exponent < 0)
            }
            ast::Expr::Index(name) => {
                let d = self.dim(name).map_err(|err| match self.tensor_ids.get(&name.name) {
                    Some(_) => type_error(
                        format!("{} is a tensor; a value needs its indices, e.g. {}[...]", name.name, name.name),
                        &name.span,
                    ),
                    None => err,
                })?;
                self.use_dim(d, &name.span);
                ir::Expr::Index { dim: d }
            }
            ast::Expr::ArgReduce { max, dim, body, .. } => {
                let id = self.dim(dim)?;
                if self.bound.contains(&id) {
                    return Err(type_error(format!("dim {} is already reduced here", dim.name), &dim.span));
                }
                let depth = self.bound.len();
                self.bound.push(id);
                self.used_in_reduce.push(Vec::new());
                let hint = self.natural(body).unwrap_or_else(|| Self::literal_default(body));
                let body_ir = self.expr(body, Some(hint));
                let used = self.used_in_reduce.pop().unwrap_or_default();
                self.bound.truncate(depth);
                let body_ir = body_ir?;
                if !used.contains(&id) {
                    let opname = if *max { "argmax" } else { "argmin" };
                    return Err(type_error(format!("{opname} over dim {}, which its body does not use", dim.name), &dim.span));
                }
                if self.dims[id].tile < self.dims[id].size {
                    let opname = if *max { "argmax" } else { "argmin" };
                    return Err(type_error(
                        format!(
                            "{opname} over dim {}, which is split (tile {} of {}); an arg-reduction runs inside one tile, so leave {} unsplit",
                            dim.name, self.dims[id].tile, self.dims[id].size, dim.name
                        ),
                        &dim.span,
                    ));
                }
                ir::Expr::ArgReduce {
                    max: *max,
                    dim: id,
                    body: Box::new(body_ir),
                }
            }
            ast::Expr::ValueSelect {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ..
            } => {
                let cty = self.natural(lhs).or_else(|| self.natural(rhs)).unwrap_or_else(|| {
                    if Self::literal_default(lhs) == ScalarType::F32 || Self::literal_default(rhs) == ScalarType::F32 {
                        ScalarType::F32
                    } else {
                        ScalarType::I32
                    }
                });
                let l = self.expr(lhs, Some(cty))?;
                let r = self.expr(rhs, Some(cty))?;
                if l.ty() != cty {
                    return Err(self.mismatch(lhs.span(), l.ty(), cty));
                }
                if r.ty() != cty {
                    return Err(self.mismatch(rhs.span(), r.ty(), cty));
                }
                let ty = self
                    .natural(then)
                    .or_else(|| self.natural(otherwise))
                    .or(want)
                    .unwrap_or_else(|| Self::literal_default(then));
                let a = self.expr(then, Some(ty))?;
                let b = self.expr(otherwise, Some(ty))?;
                if a.ty() != ty {
                    return Err(self.mismatch(then.span(), a.ty(), ty));
                }
                if b.ty() != ty {
                    return Err(self.mismatch(otherwise.span(), b.ty(), ty));
                }
                ir::Expr::ValueSelect {
                    lhs: Box::new(l),
                    cmp: *cmp,
                    rhs: Box::new(r),
                    then: Box::new(a),
                    otherwise: Box::new(b),
                    ty,
                }
            }
            ast::Expr::Unary(op, a, span) => {
                let float_only = !matches!(op, ast::UnaryOp::Neg | ast::UnaryOp::Abs);
                let hint = if float_only {
                    Some(ScalarType::F32)
                } else {
                    self.natural(a).or(want).or(Some(Self::literal_default(a)))
                };
                let arg = self.expr(a, hint)?;
                if float_only && arg.ty() == ScalarType::I32 {
                    return Err(type_error(
                        format!(
                            "dtype mismatch: {} needs a floating-point argument, found i32; convert it with cast<f32>(...)",
                            unary_name(*op)
                        ),
                        span,
                    ));
                }
                ir::Expr::Unary {
                    op: *op,
                    ty: arg.ty(),
                    arg: Box::new(arg),
                }
            }
            ast::Expr::Binary(op, l, r, span) => {
                let ty = self.natural(l).or_else(|| self.natural(r)).or(want).unwrap_or_else(|| Self::literal_default(e));
                let lhs = self.expr(l, Some(ty))?;
                let rhs = self.expr(r, Some(ty))?;
                if lhs.ty() != ty {
                    return Err(self.mismatch(l.span(), lhs.ty(), ty));
                }
                if rhs.ty() != ty {
                    return Err(self.mismatch(r.span(), rhs.ty(), ty));
                }
                if *op == ast::BinaryOp::Div && ty == ScalarType::I32 {
                    return Err(type_error(
                        "integer division is not supported; use srs<..>(x, shift) to divide by a power of two, or cast<f32>(...)",
                        span,
                    ));
                }
                ir::Expr::Binary {
                    op: *op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    ty,
                }
            }
            ast::Expr::Reduce { op, dims, body, span } => {
                let mut ids = Vec::new();
                for d in dims {
                    let id = self.dim(d)?;
                    if ids.contains(&id) || self.bound.contains(&id) {
                        return Err(type_error(format!("dim {} is already reduced here", d.name), &d.span));
                    }
                    ids.push(id);
                }
                let depth = self.bound.len();
                self.bound.extend(&ids);
                self.used_in_reduce.push(Vec::new());
                let body_ir = self.expr(body, want);
                let used = self.used_in_reduce.pop().unwrap_or_default();
                self.bound.truncate(depth);
                let body_ir = body_ir?;
                for (d, id) in dims.iter().zip(&ids) {
                    if !used.contains(id) {
                        let opname = match op {
                            ast::ReduceOp::Sum => "sum",
                            ast::ReduceOp::Max => "max",
                            ast::ReduceOp::Min => "min",
                        };
                        return Err(type_error(format!("{opname} over dim {}, which its body does not use", d.name), &d.span));
                    }
                }
                let _ = span;
                ir::Expr::Reduce {
                    op: *op,
                    dims: ids,
                    ty: body_ir.ty(),
                    body: Box::new(body_ir),
                }
            }
            ast::Expr::Cast { to, expr, .. } => {
                let hint = self.natural(expr).unwrap_or_else(|| Self::literal_default(expr));
                let arg = self.expr(expr, Some(hint))?;
                ir::Expr::Convert {
                    to: *to,
                    kind: Convert::Cast,
                    arg: Box::new(arg),
                    ty: scalar_type_of(*to),
                }
            }
            ast::Expr::Srs { to, shift, expr, span } => {
                if to.is_float() {
                    return Err(type_error(
                        format!("srs converts to an integer type, not {}; use cast<{}>(...)", to.mlir(), to.mlir()),
                        span,
                    ));
                }
                let arg = self.expr(expr, Some(ScalarType::I32))?;
                if arg.ty() != ScalarType::I32 {
                    return Err(type_error(
                        "dtype mismatch: srs needs an i32 value, found f32; use cast<..>(...) to convert floats",
                        expr.span(),
                    ));
                }
                ir::Expr::Convert {
                    to: *to,
                    kind: Convert::Srs(*shift),
                    arg: Box::new(arg),
                    ty: ScalarType::I32,
                }
            }
            ast::Expr::Select {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ..
            } => {
                let l = self.affine(lhs)?;
                let r = self.affine(rhs)?;
                self.check_select_index(&l, lhs)?;
                self.check_select_index(&r, rhs)?;
                let ty = self
                    .natural(then)
                    .or_else(|| self.natural(otherwise))
                    .or(want)
                    .unwrap_or_else(|| Self::literal_default(then));
                let a = self.expr(then, Some(ty))?;
                let b = self.expr(otherwise, Some(ty))?;
                if a.ty() != ty {
                    return Err(self.mismatch(then.span(), a.ty(), ty));
                }
                if b.ty() != ty {
                    return Err(self.mismatch(otherwise.span(), b.ty(), ty));
                }
                ir::Expr::Select {
                    lhs: l,
                    cmp: *cmp,
                    rhs: r,
                    then: Box::new(a),
                    otherwise: Box::new(b),
                    ty,
                }
            }
        })
    }

    fn spread(&self, ast: &KernelAst, stmts: &[ir::Stmt]) -> Result<ir::Spread, CompileError> {
        let mut out_dims: Vec<DimId> = Vec::new();
        for s in stmts.iter().filter(|s| self.tensors[s.target].role == Role::Out) {
            for d in &s.target_dims {
                if !out_dims.contains(d) {
                    out_dims.push(*d);
                }
            }
        }
        let spreads: Vec<(&Vec<(ast::Ident, SpreadAxis)>, &Span)> = ast
            .items
            .iter()
            .filter_map(|i| if let Item::Spread { parts, span } = i { Some((parts, span)) } else { None })
            .collect();
        if spreads.is_empty() {
            let first = stmts.iter().find(|s| self.tensors[s.target].role == Role::Out);
            let dims = first.map(|s| s.target_dims.clone()).unwrap_or_default();
            return Ok(ir::Spread {
                rows: dims.first().copied(),
                cols: dims.get(1).copied(),
                span: None,
            });
        }
        let mut rows: Option<(DimId, Span)> = None;
        let mut cols: Option<(DimId, Span)> = None;
        let mut cores = false;
        let mut span = spreads[0].1.clone();
        for (parts, s) in &spreads {
            span = span.to(s);
            for (name, axis) in parts.iter() {
                let d = self.dim(name)?;
                if !out_dims.contains(&d) {
                    let mut err = Diagnostic::new(format!("spread names dim {} which is not a dim of the output", name.name), Some(&name.span));
                    let mut reduced = false;
                    for st in stmts.iter() {
                        st.value.walk(&mut |e| {
                            if let ir::Expr::Reduce { dims, .. } = e {
                                reduced |= dims.contains(&d);
                            }
                        });
                    }
                    if reduced {
                        let n = &name.name;
                        err = err.note(format!(
                            "{n} is reduced, and a reduction runs in one core's loop over the tiles of {n}: the cores have no path to add up each other's partial results. Spread a dim of the output instead, or reduce in two kernels: the first writes partial results with a dim P for the parts (part[P, ...] = sum over {n}'s tiles of part P, P spread over cores), the second sums over P"
                        ));
                    }
                    return Err(CompileError::Type(err));
                }
                let used = |slot: &Option<(DimId, Span)>| slot.as_ref().map(|(x, _)| *x == d).unwrap_or(false);
                if used(&rows) || used(&cols) {
                    return Err(type_error(format!("dim {} is spread twice", name.name), &name.span));
                }
                if cores || (*axis == SpreadAxis::Cores && (rows.is_some() || cols.is_some())) {
                    return Err(type_error(
                        "`over cores` uses the whole array; it cannot be combined with another spread",
                        &name.span,
                    ));
                }
                match axis {
                    SpreadAxis::Rows if rows.is_some() => return Err(type_error("two dims are spread over rows", &name.span)),
                    SpreadAxis::Cols if cols.is_some() => return Err(type_error("two dims are spread over cols", &name.span)),
                    SpreadAxis::Rows => rows = Some((d, name.span.clone())),
                    SpreadAxis::Cols => cols = Some((d, name.span.clone())),
                    SpreadAxis::Cores => {
                        cores = true;
                        rows = Some((d, name.span.clone()));
                        cols = Some((d, name.span.clone()));
                    }
                }
            }
        }
        Ok(ir::Spread {
            rows: rows.map(|(d, _)| d),
            cols: cols.map(|(d, _)| d),
            span: Some(span),
        })
    }

    /// Records each host tensor's first access pattern and checks extents against plain dims.
    fn finish_host_accesses(&mut self) -> Result<(), CompileError> {
        for (t, tensor) in self.tensors.iter_mut().enumerate().map(|(i, t)| (TensorId(i), t)) {
            if tensor.role == Role::Local {
                continue;
            }
            // An input no statement reads stays an argument, with no access pattern.
            let Some(patterns) = self.patterns.get(&t) else { continue };
            if let [(only, span)] = patterns.as_slice() {
                for (axis, idx) in only.iter().enumerate() {
                    if let Some(d) = idx.as_dim() {
                        let dim = &self.dims[d];
                        if tensor.shape[axis] != dim.size {
                            return Err(type_error(
                                format!(
                                    "{} {} axis {axis} has extent {} but is indexed by dim {} = {}",
                                    role_name(tensor.role),
                                    tensor.name,
                                    tensor.shape[axis],
                                    dim.name,
                                    dim.size
                                ),
                                span,
                            ));
                        }
                    }
                }
            }
            tensor.access = patterns.first().map(|(p, _)| p.clone());
        }
        Ok(())
    }
}
