//! Arith-only expansions of the math functions the AIE core has no instruction for.

use super::core::CoreEmitter;
use super::mlir::{Elem, Val};
use super::ops::Bin;
use melior::dialect::arith::{CmpfPredicate, CmpiPredicate};

/// Arith-only expansions of the functions the AIE core has no instruction for, defined over the
/// whole f32 range. Semantics (the reference interpreter implements the same, see
/// `reference::math`): IEEE results, except that subnormal inputs count as zero and subnormal
/// results are flushed to zero (2^n is built from the exponent field, which has no subnormals).
/// Special values: NaN in, NaN out; `exp` saturates to +inf above ln(f32::MAX) and to 0 below
/// ln(f32::MIN_POSITIVE); `tanh(+-inf) = +-1`; `recip(+-0) = +-inf`, `recip(+-inf) = +-0`;
/// `rsqrt(+0) = +inf`, `rsqrt(+inf) = 0`, `rsqrt(x < 0) = NaN`; `sqrt(+inf) = +inf`;
/// `ln(0) = -inf`, `ln(+inf) = +inf`, `ln(x < 0) = NaN`. Accuracy on normal arguments (tested
/// against libm through the emulator):
/// * `exp`: 2^n * e^u, u = x - n ln2 (Cody-Waite) in [-ln2/2, ln2/2], degree-7 Taylor, 2^n applied
///   in two halves so n = 128 stays representable: rel. error < 1e-6.
/// * `recip` (and `/`): bit-trick seed, 3 Newton steps: rel. error < 3e-7.
/// * `rsqrt`: bit-trick seed, 3 Newton steps: rel. error < 3e-7; `sqrt(x) = x * rsqrt(x)`.
/// * `tanh`: 1 - 2 / (e^{2|x|} + 1) with sign, |x| clamped to 10 (where tanh rounds to 1 in f32):
///   abs. error < 3e-7.
/// * `ln`/`log10`: exponent split, mantissa in [sqrt(1/2), sqrt(2)), atanh series to s^9: rel.
///   error < 3e-7.
pub(super) struct MathLowering;

impl MathLowering {
    pub(super) fn abs(e: &mut CoreEmitter<'_, '_>, a: Val) -> Val {
        let n = e.negf(a);
        e.maximumf(a, n)
    }

    pub(super) fn select(e: &mut CoreEmitter<'_, '_>, c: Val, a: Val, b: Val) -> Val {
        e.select(c, a, b)
    }

    pub(super) fn cmp(e: &mut CoreEmitter<'_, '_>, pred: CmpfPredicate, a: Val, b: Val) -> Val {
        e.cmpf(pred, a, b)
    }

    /// `x` with NaN replaced by 0, so the integer conversions below never see a NaN (the result
    /// is overridden with NaN at the end).
    pub(super) fn finite_or_zero(e: &mut CoreEmitter<'_, '_>, x: Val) -> (Val, Val) {
        let nan = Self::cmp(e, CmpfPredicate::Uno, x, x);
        let zero = e.cf32(0.0);
        (Self::select(e, nan, zero, x), nan)
    }

    pub(super) fn exp(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (xs, nan) = Self::finite_or_zero(e, x);
        // Beyond these the result is +inf or subnormal (flushed to 0); computing inside them keeps
        // n in [-126, 128].
        let (lo, hi) = (e.cf32(EXP_UNDERFLOW), e.cf32(EXP_OVERFLOW));
        let x1 = e.maximumf(xs, lo);
        let x2 = e.minimumf(x1, hi);
        let log2e = e.cf32(std::f32::consts::LOG2_E);
        let t = e.mulf(x2, log2e);
        let half = e.cf32(0.5);
        let th = e.addf(t, half);
        // floor(t + 0.5) without libm: truncate, then step down for negatives.
        let ni = e.fptosi(th);
        let nf = e.sitofp(ni);
        let gt = Self::cmp(e, CmpfPredicate::Ogt, nf, th);
        // n - 1 as n + (-1): vector subi has no AIE lowering.
        let minus_one = e.ci32(-1);
        let ni_m1 = e.addi(ni, minus_one);
        let n = e.select(gt, ni_m1, ni);
        let nf2 = e.sitofp(n);
        // u = x - n*ln2 with ln2 split in two (Cody-Waite): the high part has few enough bits that
        // n*hi is exact, so u keeps full precision even for large |x|.
        let (c_hi, c_lo) = (e.cf32(0.693_359_4), e.cf32(-2.121_944_4e-4));
        let nhi = e.mulf(nf2, c_hi);
        let r1 = e.subf(x2, nhi);
        let nlo = e.mulf(nf2, c_lo);
        let u = e.subf(r1, nlo);
        // Horner on sum u^k / k!, k = 0..7.
        let coeffs = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
        let mut p = e.cf32(coeffs[0] as f32);
        for c in &coeffs[1..] {
            let m = e.mulf(p, u);
            let k = e.cf32(*c as f32);
            p = e.addf(m, k);
        }
        // 2^n as 2^(n >> 1) * 2^(n - (n >> 1)): each half has a normal exponent.
        let one = e.ci32(1);
        let n1 = e.bin(Bin::ShRSI, n, one);
        let n2 = e.subi(n, n1);
        let (bias, sh) = (e.ci32(127), e.ci32(23));
        let mut r = p;
        for half_n in [n1, n2] {
            let biased = e.addi(half_n, bias);
            let bits = e.bin(Bin::ShLI, biased, sh);
            let scale = e.bitcast(bits, Elem::F32);
            r = e.mulf(r, scale);
        }
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let under = Self::cmp(e, CmpfPredicate::Olt, x, lo);
        let over = Self::cmp(e, CmpfPredicate::Ogt, x, hi);
        let r = Self::select(e, under, zero, r);
        let r = Self::select(e, over, inf, r);
        let r = Self::flush(e, r);
        Self::select(e, nan, x, r)
    }

    /// `a / b` as `a * recip(b)`; for |b| above 2^126, where 1/b would be subnormal, both are
    /// scaled by 1/4 first so that huge quotients (1e38 / 1e38) stay right.
    pub(super) fn div(e: &mut CoreEmitter<'_, '_>, a: Val, b: Val) -> Val {
        let r = Self::recip(e, b);
        let plain = e.mulf(a, r);
        let quarter = e.cf32(0.25);
        let (aq, bq) = (e.mulf(a, quarter), e.mulf(b, quarter));
        let rq = Self::recip(e, bq);
        let scaled = e.mulf(aq, rq);
        let ab = Self::abs(e, b);
        let max = e.cf32(RECIP_MAX);
        let huge = Self::cmp(e, CmpfPredicate::Ogt, ab, max);
        Self::select(e, huge, scaled, plain)
    }

    /// Subnormal to (signed) zero.
    pub(super) fn flush(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let a = Self::abs(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let tiny = Self::cmp(e, CmpfPredicate::Olt, a, min);
        let zero = e.cf32(0.0);
        let signed_zero = e.mulf(x, zero);
        Self::select(e, tiny, signed_zero, x)
    }

    pub(super) fn recip(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let bits = e.bitcast(xs, Elem::I32);
        let sign_mask = e.ci32(i32::MIN as i64);
        let abs_mask = e.ci32(0x7FFF_FFFF);
        let sign = e.andi(bits, sign_mask);
        let ab = e.andi(bits, abs_mask);
        let ax = e.bitcast(ab, Elem::F32);
        // The Newton iteration below works for normal |x| up to 2^126; outside, the result is
        // decided by the edges: subnormal or zero -> inf, above 2^126 (result subnormal) -> 0.
        let (min, max) = (e.cf32(f32::MIN_POSITIVE), e.cf32(RECIP_MAX));
        let a1 = e.maximumf(ax, min);
        let a2 = e.minimumf(a1, max);
        let ab2 = e.bitcast(a2, Elem::I32);
        let magic = e.ci32(0x7EF3_11C3);
        let seed = e.subi(magic, ab2);
        let mut y = e.bitcast(seed, Elem::F32);
        let two = e.cf32(2.0);
        for _ in 0..3 {
            let xy = e.mulf(a2, y);
            let d = e.subf(two, xy);
            y = e.mulf(y, d);
        }
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let small = Self::cmp(e, CmpfPredicate::Olt, ax, min);
        let large = Self::cmp(e, CmpfPredicate::Ogt, ax, max);
        let y = Self::select(e, small, inf, y);
        let y = Self::select(e, large, zero, y);
        let yb = e.bitcast(y, Elem::I32);
        let signed = e.ori(yb, sign);
        let r = e.bitcast(signed, Elem::F32);
        Self::select(e, nan, x, r)
    }

    /// 1/sqrt(x) on the whole range; also returns whether x counts as zero and whether it is
    /// NaN (for `sqrt`).
    pub(super) fn rsqrt_parts(e: &mut CoreEmitter<'_, '_>, x: Val) -> (Val, Val, Val) {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let big = e.cf32(f32::MAX);
        let xc = e.maximumf(xs, min);
        let xc = e.minimumf(xc, big);
        let bits = e.bitcast(xc, Elem::I32);
        let one = e.ci32(1);
        let half_bits = e.bin(Bin::ShRUI, bits, one);
        let magic = e.ci32(0x5F37_59DF);
        let seed = e.subi(magic, half_bits);
        let mut y = e.bitcast(seed, Elem::F32);
        let (half, three_halves) = (e.cf32(0.5), e.cf32(1.5));
        let hx = e.mulf(xc, half);
        for _ in 0..3 {
            let yy = e.mulf(y, y);
            let hxyy = e.mulf(hx, yy);
            let d = e.subf(three_halves, hxyy);
            y = e.mulf(y, d);
        }
        let (zero, inf, qnan) = (e.cf32(0.0), e.cf32(f32::INFINITY), e.cf32(f32::NAN));
        let is_zero = Self::cmp(e, CmpfPredicate::Olt, xs, min);
        let is_zero = {
            let neg_min = e.cf32(-f32::MIN_POSITIVE);
            let above = Self::cmp(e, CmpfPredicate::Ogt, xs, neg_min);
            e.andi(is_zero, above)
        };
        let negative = {
            let neg_min = e.cf32(-f32::MIN_POSITIVE);
            Self::cmp(e, CmpfPredicate::Ole, xs, neg_min)
        };
        let is_inf = Self::cmp(e, CmpfPredicate::Oeq, xs, inf);
        let y = Self::select(e, is_inf, zero, y);
        let y = Self::select(e, is_zero, inf, y);
        let y = Self::select(e, negative, qnan, y);
        (Self::select(e, nan, x, y), is_zero, nan)
    }

    pub(super) fn rsqrt(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        Self::rsqrt_parts(e, x).0
    }

    pub(super) fn sqrt(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (r, is_zero, nan) = Self::rsqrt_parts(e, x);
        let s = e.mulf(x, r);
        let (zero, inf) = (e.cf32(0.0), e.cf32(f32::INFINITY));
        let is_inf = Self::cmp(e, CmpfPredicate::Oeq, x, inf);
        let s = Self::select(e, is_inf, inf, s);
        let s = Self::select(e, is_zero, zero, s);
        Self::select(e, nan, x, s)
    }

    pub(super) fn tanh(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let x = Self::flush(e, x);
        let a = Self::abs(e, x);
        // tanh(10) rounds to 1 in f32; clamping keeps e^{2|x|} finite.
        let ten = e.cf32(10.0);
        let a = e.minimumf(a, ten);
        let two = e.cf32(2.0);
        let a2 = e.mulf(a, two);
        let ex = Self::exp(e, a2);
        let one = e.cf32(1.0);
        let den = e.addf(ex, one);
        let r = Self::recip(e, den);
        let r2 = e.mulf(r, two);
        let t = e.subf(one, r2);
        let nt = e.negf(t);
        let zero = e.cf32(0.0);
        let neg = Self::cmp(e, CmpfPredicate::Olt, x, zero);
        let t = Self::select(e, neg, nt, t);
        // tanh(+-0) = +-0.
        let is_zero = Self::cmp(e, CmpfPredicate::Oeq, x, zero);
        Self::select(e, is_zero, x, t)
    }

    /// `floor(x)` (`with_fraction` also returns `x - floor(x)` for rounding) on the whole range:
    /// above 2^23 every f32 is an integer, and below it the integer fits an i32.
    pub(super) fn floor_parts(e: &mut CoreEmitter<'_, '_>, x: Val) -> (Val, Val, Val) {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let (lo, hi) = (e.cf32(-8_388_608.0), e.cf32(8_388_608.0));
        let c1 = e.maximumf(xs, lo);
        let xc = e.minimumf(c1, hi);
        let t = e.fptosi(xc);
        let tf = e.sitofp(t);
        // Truncation rounds negatives up: step down where it did.
        let above = Self::cmp(e, CmpfPredicate::Ogt, tf, xc);
        let one = e.cf32(1.0);
        let tm1 = e.subf(tf, one);
        let f = Self::select(e, above, tm1, tf);
        let frac = e.subf(xc, f);
        (f, frac, nan)
    }

    /// Keeps `x` itself where it is NaN, infinite or at least 2^23 in magnitude (already an
    /// integer), and where it is zero (so -0 stays -0).
    pub(super) fn integral_edges(e: &mut CoreEmitter<'_, '_>, x: Val, r: Val, nan: Val) -> Val {
        let a = Self::abs(e, x);
        let big = e.cf32(8_388_608.0);
        let large = Self::cmp(e, CmpfPredicate::Oge, a, big);
        let zero = e.cf32(0.0);
        let is_zero = Self::cmp(e, CmpfPredicate::Oeq, x, zero);
        let r = Self::select(e, large, x, r);
        let r = Self::select(e, is_zero, x, r);
        Self::select(e, nan, x, r)
    }

    pub(super) fn floor(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (f, _, nan) = Self::floor_parts(e, x);
        Self::integral_edges(e, x, f, nan)
    }

    /// Round half to even: floor, then up when the fraction is above 1/2, or exactly 1/2 with an
    /// odd floor; a zero result takes the sign of `x` (`round(-0.3) = -0`).
    pub(super) fn round(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (f, frac, nan) = Self::floor_parts(e, x);
        let half = e.cf32(0.5);
        let gt = Self::cmp(e, CmpfPredicate::Ogt, frac, half);
        let tie = Self::cmp(e, CmpfPredicate::Oeq, frac, half);
        let fi = e.fptosi(f);
        let one_i = e.ci32(1);
        let low_bit = e.andi(fi, one_i);
        let odd = e.cmpi(CmpiPredicate::Eq, low_bit, one_i);
        let tie_up = e.andi(tie, odd);
        let up = e.ori(gt, tie_up);
        let one = e.cf32(1.0);
        let f1 = e.addf(f, one);
        let r = Self::select(e, up, f1, f);
        let zero = e.cf32(0.0);
        let r_zero = Self::cmp(e, CmpfPredicate::Oeq, r, zero);
        let signed_zero = e.mulf(x, zero);
        let r = Self::select(e, r_zero, signed_zero, r);
        Self::integral_edges(e, x, r, nan)
    }

    pub(super) fn ln(e: &mut CoreEmitter<'_, '_>, x: Val) -> Val {
        let (xs, nan) = Self::finite_or_zero(e, x);
        let min = e.cf32(f32::MIN_POSITIVE);
        let xc = e.maximumf(xs, min);
        let bits = e.bitcast(xc, Elem::I32);
        let sh = e.ci32(23);
        let ebits = e.bin(Bin::ShRUI, bits, sh);
        // e - 127 as e + (-127): vector subi has no AIE lowering.
        let bias = e.ci32(-127);
        let ex = e.addi(ebits, bias);
        let mmask = e.ci32(0x007F_FFFF);
        let one_bits = e.ci32(0x3F80_0000);
        let mb = e.andi(bits, mmask);
        let mb1 = e.ori(mb, one_bits);
        let m = e.bitcast(mb1, Elem::F32);
        let sqrt2 = e.cf32(std::f32::consts::SQRT_2);
        let big = Self::cmp(e, CmpfPredicate::Ogt, m, sqrt2);
        let half = e.cf32(0.5);
        let mh = e.mulf(m, half);
        let m2 = Self::select(e, big, mh, m);
        let one_i = e.ci32(1);
        let ex1 = e.addi(ex, one_i);
        let ex2 = e.select(big, ex1, ex);
        let one = e.cf32(1.0);
        let num = e.subf(m2, one);
        let den = e.addf(m2, one);
        let rd = Self::recip(e, den);
        let s = e.mulf(num, rd);
        let s2 = e.mulf(s, s);
        let coeffs = [1.0f32 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0];
        let mut p = e.cf32(coeffs[0]);
        for c in &coeffs[1..] {
            let m = e.mulf(p, s2);
            let k = e.cf32(*c);
            p = e.addf(m, k);
        }
        let two = e.cf32(2.0);
        let ps = e.mulf(p, s);
        let lnm = e.mulf(ps, two);
        let exf = e.sitofp(ex2);
        let ln2 = e.cf32(std::f32::consts::LN_2);
        let el = e.mulf(exf, ln2);
        let r = e.addf(lnm, el);
        let (inf, ninf, qnan) = (e.cf32(f32::INFINITY), e.cf32(f32::NEG_INFINITY), e.cf32(f32::NAN));
        let is_zero = Self::cmp(e, CmpfPredicate::Olt, xs, min);
        // Negative subnormals count as zero: ln(-0) = -inf.
        let neg_min = e.cf32(-f32::MIN_POSITIVE);
        let negative = Self::cmp(e, CmpfPredicate::Ole, xs, neg_min);
        let is_inf = Self::cmp(e, CmpfPredicate::Oeq, xs, inf);
        let r = Self::select(e, is_zero, ninf, r);
        let r = Self::select(e, negative, qnan, r);
        let r = Self::select(e, is_inf, inf, r);
        Self::select(e, nan, x, r)
    }
}

/// Largest f32 whose exp is finite (ln(f32::MAX) rounded down to f32).
pub(crate) const EXP_OVERFLOW: f32 = 88.722_83;
/// Below this exp is subnormal (ln(f32::MIN_POSITIVE) rounded up to f32) and flushes to zero.
pub(crate) const EXP_UNDERFLOW: f32 = -87.336_54;
/// recip(x) for |x| above 2^126 is subnormal and flushes to zero.
const RECIP_MAX: f32 = 8.507_059e37;
