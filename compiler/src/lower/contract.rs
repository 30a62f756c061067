//! Contractions: `T[m, n] (+)= sum[k](A[m, k] * B[k, n])` as `vector.contract` on the target's
//! MAC shape.

use super::core::{Constant, CoreEmitter};
use super::mlir::{combining_kind, iterator_type, CombiningKind, Elem, Val};
use crate::diag::{CompileError, Diagnostic};
use crate::dsl::ast::{BinaryOp, ReduceOp};
use crate::ir::{DimId, Expr, Stmt, TensorId};
use crate::target_rules::{mac_shape, AieTarget, MacShape};
use aiec_runtime::DType;
use melior::ir::attribute::ArrayAttribute;

pub(super) struct Contraction {
    a: TensorId,
    b: TensorId,
    /// Leading tile-1 dims before `m`/`n`: indexed at 0.
    batch: usize,
    m: DimId,
    n: DimId,
    k: DimId,
    shape: (u64, u64, u64),
    acc: DType,
    /// Whether the tiles are multiples of the MAC shape.
    fits: bool,
}

impl<'c> CoreEmitter<'_, 'c> {
    /// Recognizes `T[m, n] (+)= sum[k](A[m, k] * B[k, n])` on buffers whose axes are exactly those
    /// dims and whose extents are multiples of the MAC shape.
    pub(super) fn contraction(&self, stmt: &Stmt) -> Option<Contraction> {
        let Expr::Reduce {
            op: ReduceOp::Sum, dims, body, ..
        } = &stmt.value
        else {
            return None;
        };
        let [k] = dims.as_slice() else { return None };
        let Expr::Binary {
            op: BinaryOp::Mul, lhs, rhs, ..
        } = body.as_ref()
        else {
            return None;
        };
        let (Expr::Load { tensor: a, .. }, Expr::Load { tensor: b, .. }) = (lhs.as_ref(), rhs.as_ref()) else {
            return None;
        };
        // Leading dims of tile 1 (a batch, e.g. attention heads) index the same element of all
        // three buffers; the product runs on the trailing two.
        let [batch @ .., m, n] = stmt.target_dims.as_slice() else { return None };
        if batch.iter().any(|&d| self.kernel.dims[d].tile != 1) {
            return None;
        }
        let with_batch = |last: [DimId; 2]| batch.iter().copied().chain(last).collect::<Vec<DimId>>();
        let (ba, bb, bc) = (self.buffers.get(a)?, self.buffers.get(b)?, self.buffers.get(&stmt.target)?);
        if ba.axes.is_some()
            || bb.axes.is_some()
            || ba.dims != with_batch([*m, *k])
            || bb.dims != with_batch([*k, *n])
            || bc.dims != with_batch([*m, *n])
            || ba.dtype != bb.dtype
        {
            return None;
        }
        let target = self.design.device.target;
        let MacShape { m: r, k: s, n: t } = mac_shape(target, ba.dtype)?;
        let acc = match ba.dtype {
            DType::Bf16 => DType::F32,
            _ => DType::I32,
        };
        if !(bc.dtype == acc || (acc == DType::F32 && bc.dtype == DType::Bf16)) {
            return None;
        }
        let d = &self.kernel.dims;
        let fits = d[*m].tile.is_multiple_of(r) && d[*k].tile.is_multiple_of(s) && d[*n].tile.is_multiple_of(t);
        Some(Contraction {
            a: *a,
            b: *b,
            batch: batch.len(),
            m: *m,
            n: *n,
            k: *k,
            shape: (r, s, t),
            acc,
            fits,
        })
    }

    /// A matrix product the target's MAC cannot take is an error, not a silent scalar loop
    /// (which would run orders of magnitude slower on the core).
    pub(super) fn check_mac_fit(&self, stmt: &Stmt, c: &Contraction) -> Result<(), CompileError> {
        if c.fits {
            return Ok(());
        }
        let d = &self.kernel.dims;
        let (r, s, t) = c.shape;
        let dtype = self.buffers[&c.a].dtype;
        let target = self.design.device.target;
        let mut msg = format!(
            "this {} matrix product does not fit the {target} MAC shape {r}x{s}x{t} ({}, {}, {}): tiles {} = {}, {} = {}, {} = {} must be multiples of {r}, {s}, {t}",
            dtype.mlir(),
            d[c.m].name,
            d[c.k].name,
            d[c.n].name,
            d[c.m].name,
            d[c.m].tile,
            d[c.k].name,
            d[c.k].tile,
            d[c.n].name,
            d[c.n].tile
        );
        let shapes: Vec<String> = AieTarget::ALL
            .iter()
            .filter_map(|&tg| mac_shape(tg, dtype).map(|m| format!("{tg} {}x{}x{}", m.m, m.k, m.n)))
            .collect();
        msg.push_str(&format!(" (MAC shapes for {}: {})", dtype.mlir(), shapes.join(", ")));
        Err(CompileError::Target(Diagnostic::new(msg, Some(&stmt.span)).note(format!(
            "mlir-aie converts `vector.contract` to the {target} MAC only on these shapes; anything else fails its convert-vector-to-aievec step"
        ))))
    }

    pub(super) fn contract(&mut self, stmt: &Stmt, c: Contraction, partial: bool) -> Result<(), CompileError> {
        let (ba, bb, bc) = (self.buffers[&c.a].clone(), self.buffers[&c.b].clone(), self.buffers[&stmt.target].clone());
        let (r, s, t) = c.shape;
        let acc = Elem::of(c.acc);
        let vc_ty = self.ir.vector(&[r, t], acc);
        let dims = &self.kernel.dims;
        let (tm, tn, tk) = (dims[c.m].tile, dims[c.n].tile, dims[c.k].tile);
        let zero_idx = self.cidx(0);
        let (cm, cn, ck) = (self.cidx(tm), self.cidx(tn), self.cidx(tk));
        let (sr, ss, st) = (self.cidx(r), self.cidx(s), self.cidx(t));
        let zero_acc = self.constant(Constant::ZeroTile([r, t], c.acc));
        let lead = vec![zero_idx; c.batch];
        let at = |x: Val, y: Val| -> Vec<Val> { lead.iter().copied().chain([x, y]).collect() };
        let rows = self.open_for(zero_idx, cm, sr, &[]);
        let i = rows.iv();
        let cols = self.open_for(zero_idx, cn, st, &[]);
        let j = cols.iv();
        let init = if stmt.accumulate || partial {
            let v = self.transfer_read(&bc, &at(i, j), &[r, t]);
            if bc.dtype == DType::Bf16 {
                self.extf(v, Elem::F32)
            } else {
                v
            }
        } else {
            zero_acc
        };
        let red = self.open_for(zero_idx, ck, ss, &[init]);
        let (kk, carried) = (red.iv(), red.carried(0));
        // A and B may sit at an offset in a joined FIFO element.
        let a_idx = self.joined_indices(&ba, at(i, kk));
        let b_idx = self.joined_indices(&bb, at(kk, j));
        let va = self.transfer_read(&ba, &a_idx, &[r, s]);
        let vb = self.transfer_read(&bb, &b_idx, &[s, t]);
        let (wa, wb) = if c.acc == DType::F32 {
            (self.extf(va, acc), self.extf(vb, acc))
        } else {
            (self.extsi(va, acc), self.extsi(vb, acc))
        };
        let ctx = self.ir.context;
        let maps = [self.ir.affine_map(3, &[0, 2]), self.ir.affine_map(3, &[2, 1]), self.ir.affine_map(3, &[0, 1])];
        let iterators = [iterator_type(ctx, true), iterator_type(ctx, true), iterator_type(ctx, false)];
        let contract = self.ir.build_op(
            "vector.contract",
            self.location(),
            &[wa, wb, carried],
            &[vc_ty],
            &[
                ("indexing_maps", ArrayAttribute::new(ctx, &maps).into()),
                ("iterator_types", ArrayAttribute::new(ctx, &iterators).into()),
                ("kind", combining_kind(ctx, CombiningKind::Add)),
            ],
        );
        let sum = self.push1(contract);
        let res = red.result(0);
        self.close_for(red, &[sum]);
        let out = if bc.dtype == DType::Bf16 { self.truncf(res, Elem::Bf16) } else { res };
        self.transfer_write(out, &bc, &at(i, j));
        self.close_for(cols, &[]);
        self.close_for(rows, &[]);
        Ok(())
    }
}
