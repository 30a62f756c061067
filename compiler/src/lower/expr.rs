//! Expressions of a statement: loads, arithmetic, selects, conversions and reductions.

use super::core::{Buffer, CoreEmitter};
use super::math::MathLowering;
use super::mlir::{combining_kind, CombiningKind, Elem, Val};
use super::ops::Bin;
use super::{int_range, lower_error, VECTOR_LANES};
use crate::diag::{CompileError, Span};
use crate::dsl::ast::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use crate::ir::{Affine, Convert, DimId, DivMod, Expr, ScalarType};
use aiec_runtime::DType;
use melior::dialect::arith::{CmpfPredicate, CmpiPredicate};
use melior::dialect::ods;
use std::collections::BTreeMap;

type Ivs = BTreeMap<DimId, Val>;

fn elem(ty: ScalarType) -> Elem {
    match ty {
        ScalarType::I32 => Elem::I32,
        ScalarType::F32 => Elem::F32,
    }
}

impl<'c> CoreEmitter<'_, 'c> {
    /// Whether `e` can be computed with dim `d` on vector lanes: every load either reads `d`
    /// contiguously on its innermost axis or does not depend on `d`; no index selects.
    pub(super) fn vectorizable(&self, e: &Expr, d: DimId) -> bool {
        if !self.kernel.dims[d].tile.is_multiple_of(VECTOR_LANES) {
            return false;
        }
        let mut ok = true;
        e.walk(&mut |x| match x {
            Expr::Select { .. } | Expr::Index { .. } | Expr::ArgReduce { .. } => ok = false,
            Expr::Reduce { dims, .. } if dims.contains(&d) => ok = false,
            Expr::Load { tensor, indices, .. } => {
                let Some(buf) = self.buffers.get(tensor) else {
                    ok = false;
                    return;
                };
                let uses: Vec<usize> = indices.iter().enumerate().filter(|(_, a)| a.dims().any(|x| x == d)).map(|(i, _)| i).collect();
                if uses.is_empty() {
                    return;
                }
                let last_plain = match &buf.axes {
                    Some(_) => uses == [indices.len() - 1] && indices[indices.len() - 1].as_dim() == Some(d),
                    None => buf.dims.last() == Some(&d) && buf.dims.iter().filter(|&&x| x == d).count() == 1,
                };
                if !last_plain {
                    ok = false;
                }
            }
            _ => {}
        });
        ok
    }

    pub(super) fn combine(&mut self, op: ReduceOp, ty: ScalarType, a: Val, b: Val) -> Val {
        let bin = match (op, ty) {
            (ReduceOp::Sum, ScalarType::I32) => Bin::AddI,
            (ReduceOp::Sum, ScalarType::F32) => Bin::AddF,
            (ReduceOp::Max, ScalarType::I32) => Bin::MaxSI,
            (ReduceOp::Max, ScalarType::F32) => Bin::MaximumF,
            (ReduceOp::Min, ScalarType::I32) => Bin::MinSI,
            (ReduceOp::Min, ScalarType::F32) => Bin::MinimumF,
        };
        self.bin(bin, a, b)
    }

    /// Index value of an affine expression of global indices.
    pub(super) fn affine_index(&mut self, a: &Affine, ivs: &Ivs) -> Val {
        let mut acc = self.cidx(a.constant.max(0) as u64);
        for &(coef, d) in &a.terms {
            let local = match ivs.get(&d) {
                Some(&v) => v,
                None => self.cidx(0),
            };
            let global = match self.tile_index.get(&d).copied() {
                Some(ti) => {
                    let tile = self.cidx(self.kernel.dims[d].tile);
                    let base = self.muli(ti, tile);
                    self.addi(base, local)
                }
                None => local,
            };
            let c = self.cidx(coef.unsigned_abs());
            let term = self.muli(global, c);
            acc = if coef >= 0 { self.addi(acc, term) } else { self.subi(acc, term) };
        }
        for (coef, q) in &a.divmods {
            // The dividend is never negative (type checking), so unsigned division is floor
            // division; a power of two is a shift or a mask.
            let v = self.affine_index(&q.inner, ivs);
            let by = q.by as u64;
            let r = match (q.op, by.is_power_of_two()) {
                (DivMod::Div, true) => {
                    let k = self.cidx(by.trailing_zeros() as u64);
                    self.bin(Bin::ShRUI, v, k)
                }
                (DivMod::Mod, true) => {
                    let m = self.cidx(by - 1);
                    self.andi(v, m)
                }
                (DivMod::Div, false) => {
                    let k = self.cidx(by);
                    self.bin(Bin::DivUI, v, k)
                }
                (DivMod::Mod, false) => {
                    let k = self.cidx(by);
                    self.bin(Bin::RemUI, v, k)
                }
            };
            let c = self.cidx(coef.unsigned_abs());
            let term = self.muli(r, c);
            acc = if *coef >= 0 { self.addi(acc, term) } else { self.subi(acc, term) };
        }
        if a.constant < 0 {
            let c = self.cidx(a.constant.unsigned_abs());
            acc = self.subi(acc, c);
        }
        acc
    }

    pub(super) fn expr(&mut self, e: &Expr, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        Ok(match e {
            Expr::Const { value, ty } => match ty {
                ScalarType::I32 => self.ci32(*value as i64),
                ScalarType::F32 => self.cf32(*value as f32),
            },
            Expr::Load { tensor, indices, .. } => self.load(*tensor, indices, None, ivs, span)?,
            Expr::Gather {
                tensor, indices, axis, index, ..
            } => {
                // The index, clamped into the axis (the whole axis is in the core's memory).
                let extent = self.kernel.tensors[*tensor].shape[*axis] as i64;
                let at = self.scalar(|e| -> Result<Val, CompileError> {
                    let v = e.expr(index, ivs, span)?;
                    let (lo, hi) = (e.ci32(0), e.ci32(extent - 1));
                    let c1 = e.maxsi(v, lo);
                    let c2 = e.minsi(c1, hi);
                    Ok(e.index_cast(c2, Elem::Index))
                })?;
                self.load(*tensor, indices, Some((*axis, at)), ivs, span)?
            }
            Expr::Unary { op, arg, ty } => {
                let a = self.expr(arg, ivs, span)?;
                self.unary(*op, *ty, a, span)?
            }
            Expr::Binary { op, lhs, rhs, ty } => {
                let a = self.expr(lhs, ivs, span)?;
                let b = self.expr(rhs, ivs, span)?;
                self.binary(*op, *ty, a, b, span)?
            }
            Expr::Reduce { op, dims, body, ty } if self.lanes.is_none() && dims.len() == 1 && self.vectorizable(body, dims[0]) => {
                let cp = self.checkpoint();
                let v = self.vector_reduce(*op, dims[0], body, *ty, ivs, span)?;
                if self.vector_accepted(cp, span) {
                    v
                } else {
                    let init = self.identity(*op, *ty);
                    self.reduce(*op, dims, body, *ty, init, ivs, span)?
                }
            }
            Expr::Reduce { op, dims, body, ty } => {
                let init = self.identity(*op, *ty);
                self.reduce(*op, dims, body, *ty, init, ivs, span)?
            }
            Expr::Convert { to, kind, arg, .. } => {
                let a = self.expr(arg, ivs, span)?;
                self.convert(*to, kind, arg.ty(), a)
            }
            Expr::Select {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ..
            } => self.index_select(lhs, *cmp, rhs, then, otherwise, ivs, span)?,
            Expr::ValueSelect {
                lhs,
                cmp,
                rhs,
                then,
                otherwise,
                ..
            } => {
                let l = self.expr(lhs, ivs, span)?;
                let r = self.expr(rhs, ivs, span)?;
                let c = self.compare(*cmp, lhs.ty(), l, r);
                let a = self.expr(then, ivs, span)?;
                let b = self.expr(otherwise, ivs, span)?;
                self.select(c, a, b)
            }
            Expr::Index { dim } => {
                let i = self.affine_index(&Affine::dim(*dim), ivs);
                self.index_cast(i, Elem::I32)
            }
            Expr::ArgReduce { max, dim, body } => self.arg_reduce(*max, *dim, body, ivs, span)?,
        })
    }

    fn binary(&mut self, op: BinaryOp, ty: ScalarType, a: Val, b: Val, span: &Span) -> Result<Val, CompileError> {
        let bin = match (op, ty) {
            (BinaryOp::Add, ScalarType::I32) => Bin::AddI,
            (BinaryOp::Sub, ScalarType::I32) => Bin::SubI,
            (BinaryOp::Mul, ScalarType::I32) => Bin::MulI,
            (BinaryOp::Max, ScalarType::I32) => Bin::MaxSI,
            (BinaryOp::Min, ScalarType::I32) => Bin::MinSI,
            (BinaryOp::Div, ScalarType::I32) => {
                return Err(lower_error(
                    "integer division is not supported on AIE-ML cores; use srs<..>(x, shift) for powers of two",
                    span,
                ))
            }
            (BinaryOp::Add, ScalarType::F32) => Bin::AddF,
            (BinaryOp::Sub, ScalarType::F32) => Bin::SubF,
            (BinaryOp::Mul, ScalarType::F32) => Bin::MulF,
            (BinaryOp::Max, ScalarType::F32) => Bin::MaximumF,
            (BinaryOp::Min, ScalarType::F32) => Bin::MinimumF,
            (BinaryOp::Div, ScalarType::F32) => return Ok(MathLowering::div(self, a, b)),
        };
        Ok(self.bin(bin, a, b))
    }

    /// A load from a tensor's buffer at `indices` (a gather passes the value for its axis in
    /// `dynamic`); on vector lanes a contiguous read along the lane dim, else a broadcast scalar.
    fn load(&mut self, tensor: TensorIdx, indices: &[Affine], dynamic: Option<(usize, Val)>, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        let buf = self
            .buffers
            .get(&tensor)
            .cloned()
            .ok_or_else(|| lower_error(format!("{} is not available on this core", self.kernel.tensors[tensor].name), span))?;
        let idx = self.load_indices(&buf, indices, dynamic, ivs);
        let idx = self.joined_indices(&buf, idx);
        let lanes = self.lanes;
        let along = lanes.map(|d| indices.iter().any(|a| a.dims().any(|x| x == d))).unwrap_or(false);
        if along {
            let v = self.transfer_read(&buf, &idx, &[VECTOR_LANES]);
            return Ok(self.decode_storage(v, buf.dtype));
        }
        let s = self.scalar(|e| {
            let v = e.load_scalar(&buf, &idx);
            e.decode_storage(v, buf.dtype)
        });
        Ok(match lanes {
            Some(_) => {
                let t = if buf.dtype.is_float() { Elem::F32 } else { Elem::I32 };
                let ty = self.ir.vector(&[VECTOR_LANES], t);
                let op = ods::vector::broadcast(self.ir.context, ty, self.ir.value(s), self.location());
                self.push1(op.into())
            }
            None => s,
        })
    }

    fn load_indices(&mut self, buf: &Buffer, indices: &[Affine], dynamic: Option<(usize, Val)>, ivs: &Ivs) -> Vec<Val> {
        match &buf.axes {
            Some(axes) => {
                let mut idx = Vec::new();
                for (axis, d) in axes.iter().enumerate() {
                    idx.push(match d {
                        Some(d) => match ivs.get(d) {
                            Some(&v) => v,
                            None => self.cidx(0),
                        },
                        None => match dynamic {
                            Some((a, at)) if a == axis => at,
                            _ => self.affine_index(&indices[axis], ivs),
                        },
                    });
                }
                idx
            }
            None => buf
                .dims
                .iter()
                .map(|d| match ivs.get(d) {
                    Some(&v) => v,
                    None => self.cidx(0),
                })
                .collect(),
        }
    }

    /// `l cmp r` as an i1: ordered float predicates (`!=` unordered, true on NaN), signed ints.
    pub(super) fn compare(&mut self, cmp: CmpOp, ty: ScalarType, l: Val, r: Val) -> Val {
        match ty {
            ScalarType::F32 => {
                let pred = match cmp {
                    CmpOp::Lt => CmpfPredicate::Olt,
                    CmpOp::Le => CmpfPredicate::Ole,
                    CmpOp::Gt => CmpfPredicate::Ogt,
                    CmpOp::Ge => CmpfPredicate::Oge,
                    CmpOp::Eq => CmpfPredicate::Oeq,
                    CmpOp::Ne => CmpfPredicate::Une,
                };
                self.cmpf(pred, l, r)
            }
            ScalarType::I32 => self.cmpi(signed(cmp), l, r),
        }
    }

    /// `argmax|argmin[d](body)` on scalars: one loop over the (unsplit) dim carrying the best
    /// value and its index; a value replaces the best only when strictly better, so the first
    /// of equal values wins and NaN never does.
    fn arg_reduce(&mut self, max: bool, d: DimId, body: &Expr, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        let float = body.ty() == ScalarType::F32;
        let init = match (float, max) {
            (true, true) => self.cf32(f32::NEG_INFINITY),
            (true, false) => self.cf32(f32::INFINITY),
            (false, true) => self.ci32(i32::MIN as i64),
            (false, false) => self.ci32(i32::MAX as i64),
        };
        let zero = self.ci32(0);
        let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
        let lp = self.open_for(lo, hi, one, &[init, zero]);
        let (best, best_i) = (lp.carried(0), lp.carried(1));
        let mut ivs2 = ivs.clone();
        ivs2.insert(d, lp.iv());
        let v = self.expr(body, &ivs2, span)?;
        let cmp = if max { CmpOp::Gt } else { CmpOp::Lt };
        let better = self.compare(cmp, body.ty(), v, best);
        let gi = self.affine_index(&Affine::dim(d), &ivs2);
        let gi = self.index_cast(gi, Elem::I32);
        let nb = self.select(better, v, best);
        let ni = self.select(better, gi, best_i);
        let index = lp.result(1);
        self.close_for(lp, &[nb, ni]);
        Ok(index)
    }

    /// A reduction along `d` on vector lanes: lane-wise partial results, then one horizontal
    /// `vector.reduction` (float sums are therefore added in a different order than one by one).
    fn vector_reduce(&mut self, op: ReduceOp, d: DimId, body: &Expr, ty: ScalarType, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        self.lanes = Some(d);
        let init = self.identity(op, ty);
        let (lo, hi, step) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(VECTOR_LANES));
        let lp = self.open_for(lo, hi, step, &[init]);
        let carried = lp.carried(0);
        let mut ivs2 = ivs.clone();
        ivs2.insert(d, lp.iv());
        let v = match self.expr(body, &ivs2, span) {
            Ok(v) => v,
            Err(e) => {
                self.lanes = None;
                return Err(e);
            }
        };
        let next = self.combine(op, ty, carried, v);
        let res = lp.result(0);
        self.close_for(lp, &[next]);
        self.lanes = None;
        let kind = match (op, ty) {
            (ReduceOp::Sum, _) => CombiningKind::Add,
            (ReduceOp::Max, ScalarType::F32) => CombiningKind::MaximumF,
            (ReduceOp::Min, ScalarType::F32) => CombiningKind::MinimumF,
            (ReduceOp::Max, ScalarType::I32) => CombiningKind::MaxSI,
            (ReduceOp::Min, ScalarType::I32) => CombiningKind::MinSI,
        };
        let t = elem(ty);
        self.check_vector_op(kind.reduction_rule(), t.name(), t.name());
        let reduction = ods::vector::reduction(
            self.ir.context,
            self.ir.elem(t),
            self.ir.value(res),
            combining_kind(self.ir.context, kind),
            self.location(),
        );
        Ok(self.push1(reduction.into()))
    }

    /// Nested scalar loops over `dims` carrying the accumulator, from `init`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce(&mut self, op: ReduceOp, dims: &[DimId], body: &Expr, ty: ScalarType, init: Val, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        let mut ivs2 = ivs.clone();
        let mut loops = Vec::new();
        let mut acc = init;
        for &d in dims {
            let (lo, hi, one) = (self.cidx(0), self.cidx(self.kernel.dims[d].tile), self.cidx(1));
            let lp = self.open_for(lo, hi, one, &[acc]);
            ivs2.insert(d, lp.iv());
            acc = lp.carried(0);
            loops.push(lp);
        }
        let v = self.expr(body, &ivs2, span)?;
        let mut next = self.combine(op, ty, acc, v);
        for lp in loops.into_iter().rev() {
            let res = lp.result(0);
            self.close_for(lp, &[next]);
            next = res;
        }
        Ok(next)
    }

    /// `then` where the index comparison holds, else `otherwise`.
    #[allow(clippy::too_many_arguments)]
    fn index_select(&mut self, lhs: &Affine, cmp: CmpOp, rhs: &Affine, then: &Expr, otherwise: &Expr, ivs: &Ivs, span: &Span) -> Result<Val, CompileError> {
        let l = self.affine_index(lhs, ivs);
        let r = self.affine_index(rhs, ivs);
        let c = self.cmpi(signed(cmp), l, r);
        let a = self.expr(then, ivs, span)?;
        let b = self.expr(otherwise, ivs, span)?;
        Ok(self.select(c, a, b))
    }

    fn convert(&mut self, to: DType, kind: &Convert, from: ScalarType, a: Val) -> Val {
        match (kind, from, to) {
            (Convert::Srs(shift), ScalarType::I32, _) => {
                let mut v = a;
                if *shift > 0 {
                    let half = self.ci32(1i64 << (shift - 1));
                    let s = self.ci32(*shift as i64);
                    let r = self.addi(v, half);
                    v = self.bin(Bin::ShRSI, r, s);
                }
                self.saturate(v, to)
            }
            (Convert::Cast, ScalarType::I32, DType::Bf16 | DType::F32) => {
                let f = self.sitofp(a);
                if to == DType::Bf16 {
                    self.round_bf16(f)
                } else {
                    f
                }
            }
            (Convert::Cast, ScalarType::I32, _) => self.saturate(a, to),
            (Convert::Cast, ScalarType::F32, DType::Bf16) => self.round_bf16(a),
            (Convert::Cast, ScalarType::F32, DType::F32) => a,
            (Convert::Cast, ScalarType::F32, _) => {
                let (lo, hi) = int_range(to);
                let (flo, fhi) = (self.cf32(lo as f32), self.cf32(hi as f32));
                let c1 = self.maximumf(a, flo);
                let c2 = self.minimumf(c1, fhi);
                self.fptosi(c2)
            }
            (Convert::Srs(_), ScalarType::F32, _) => a,
        }
    }

    fn saturate(&mut self, v: Val, to: DType) -> Val {
        if to == DType::I32 {
            return v;
        }
        let (lo, hi) = int_range(to);
        let (clo, chi) = (self.ci32(lo), self.ci32(hi));
        let a = self.maxsi(v, clo);
        self.minsi(a, chi)
    }

    fn round_bf16(&mut self, v: Val) -> Val {
        let t = self.truncf(v, Elem::Bf16);
        self.extf(t, Elem::F32)
    }

    fn unary(&mut self, op: UnaryOp, ty: ScalarType, a: Val, span: &Span) -> Result<Val, CompileError> {
        if ty == ScalarType::I32 {
            return match op {
                UnaryOp::Neg => {
                    let z = self.ci32(0);
                    Ok(self.subi(z, a))
                }
                UnaryOp::Abs => {
                    let z = self.ci32(0);
                    let n = self.subi(z, a);
                    Ok(self.maxsi(a, n))
                }
                _ => Err(lower_error(format!("{op:?} needs a floating-point argument; cast<f32>(...) it first"), span)),
            };
        }
        Ok(match op {
            UnaryOp::Neg => self.negf(a),
            UnaryOp::Abs => MathLowering::abs(self, a),
            UnaryOp::Exp => MathLowering::exp(self, a),
            UnaryOp::Tanh => MathLowering::tanh(self, a),
            UnaryOp::Rsqrt => MathLowering::rsqrt(self, a),
            UnaryOp::Sqrt => MathLowering::sqrt(self, a),
            UnaryOp::Recip => MathLowering::recip(self, a),
            UnaryOp::Ln => MathLowering::ln(self, a),
            UnaryOp::Floor => MathLowering::floor(self, a),
            UnaryOp::Round => MathLowering::round(self, a),
            UnaryOp::Sigmoid => return Err(lower_error("sigmoid reached the lowering (type checking rewrites it)", span)),
            UnaryOp::Log10 => {
                let l = MathLowering::ln(self, a);
                let k = self.cf32(std::f32::consts::LOG10_E);
                self.mulf(l, k)
            }
        })
    }
}

type TensorIdx = crate::ir::TensorId;

/// The signed integer predicate of a comparison.
fn signed(cmp: CmpOp) -> CmpiPredicate {
    match cmp {
        CmpOp::Lt => CmpiPredicate::Slt,
        CmpOp::Le => CmpiPredicate::Sle,
        CmpOp::Gt => CmpiPredicate::Sgt,
        CmpOp::Ge => CmpiPredicate::Sge,
        CmpOp::Eq => CmpiPredicate::Eq,
        CmpOp::Ne => CmpiPredicate::Ne,
    }
}
