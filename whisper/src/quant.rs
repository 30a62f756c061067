//! Int8 matrix products for the CPU: weights quantised once per output channel (symmetric,
//! scale = max|w| / 127), activations per row at run time (asymmetric 8-bit codes over the
//! row's [min, max], see [`QuantRows`]), products summed exactly in i32 and scaled back to f32.
//!
//! Kernels, chosen once at run time: AVX-512 VNNI (`vpdpbusd` on the u8 codes), AVX2
//! (`vpmaddubsw`/`vpmaddwd` on |a| and sign(a)·w with a = code - 128: |a| <= 128 and
//! |w| <= 127, so a pair sums to at most 32512 and the i16 step cannot saturate), and a
//! portable scalar loop. All three compute the same exact integer sums, bring them to the same
//! form (codes centred on 128) and scale them back with the same f32 operations, so their
//! outputs are bit-identical: the products do not depend on which kernel the CPU has.

use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Output features per packed block (one 512-bit register of i32 sums).
const BLOCK: usize = 16;
/// Products smaller than this (multiply-adds) run on the calling thread.
pub(crate) const SERIAL_WORK: usize = 16 << 20;
/// Largest row tile of any kernel.
const MAX_ROWS: usize = 6;

/// Which kernel runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Vnni512,
    Avx2,
    Scalar,
}

impl Isa {
    /// The fastest kernel this CPU runs (checked once).
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni") {
                    return Isa::Vnni512;
                }
                if is_x86_feature_detected!("avx2") {
                    return Isa::Avx2;
                }
            }
            Isa::Scalar
        })
    }

    /// Every kernel this CPU can run (for tests).
    pub fn available() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Vnni512, Isa::Avx2, Isa::Scalar]
            .into_iter()
            .filter(|&i| match best {
                Isa::Vnni512 => true,
                Isa::Avx2 => i != Isa::Vnni512,
                Isa::Scalar => i == Isa::Scalar,
            })
            .collect()
    }

    fn rows(self) -> usize {
        match self {
            Isa::Vnni512 => 6,
            Isa::Avx2 => 4,
            Isa::Scalar => 4,
        }
    }
}

/// A weight `[n, k]` quantised per output row and packed for the kernels:
/// blocks of 16 outputs, within a block groups of 4 inputs, within a group the 16 outputs'
/// 4 bytes each (`[n/16][k/4][16][4]`, zero-padded).
#[derive(Debug, Clone)]
pub struct QuantWeights {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4.
    kp: usize,
    packed: Vec<i8>,
    /// Per output (padding outputs: 0).
    scales: Vec<f32>,
    /// Per output: the sum of its quantised weights (the u8-offset correction).
    sums: Vec<i32>,
}

impl QuantWeights {
    /// Quantises `w[n, k]` (rows are output features).
    pub fn quantize(w: ArrayView2<f32>) -> QuantWeights {
        Self::quantize_rows(w, |row, out| out.copy_from_slice(row))
    }

    /// [`Self::quantize`] of f16 weights, widened a row at a time inside the parallel loop:
    /// no f32 copy of the whole matrix is made.
    pub fn quantize_f16(w: ArrayView2<f16>) -> QuantWeights {
        Self::quantize_rows(w, |row, out| row.convert_to_f32_slice(out))
    }

    /// [`Self::quantize`] of weights in any element type, widened to f32 a row at a time by
    /// `widen(row, out)`.
    pub(crate) fn quantize_rows<T: Copy + Sync>(w: ArrayView2<T>, widen: impl Fn(&[T], &mut [f32]) + Sync) -> QuantWeights {
        let (n, k) = w.dim();
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(BLOCK);
        let block_len = kp * BLOCK;
        let mut packed = vec![0i8; blocks * block_len];
        let mut scales = vec![0.0f32; blocks * BLOCK];
        let mut sums = vec![0i32; blocks * BLOCK];
        packed
            .par_chunks_mut(block_len)
            .zip(scales.par_chunks_mut(BLOCK))
            .zip(sums.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(b, ((dst, sc), su))| {
                let mut codes = vec![0i8; k];
                let mut row = vec![0.0f32; k];
                for j in 0..BLOCK {
                    let o = b * BLOCK + j;
                    if o >= n {
                        break;
                    }
                    let src = w.row(o);
                    match src.as_slice() {
                        Some(src) => widen(src, &mut row),
                        None => widen(&src.to_vec(), &mut row),
                    }
                    let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                    quantize_slice(&row, 0.0, 1.0 / scale, -127.0, 127.0, 0, &mut codes);
                    // Interleave into the block: groups of 4 inputs, each group 16 outputs wide.
                    let mut sum = 0i32;
                    for (g, quad) in codes.chunks(4).enumerate() {
                        let at = (g * BLOCK + j) * 4;
                        dst[at..at + quad.len()].copy_from_slice(quad);
                        sum += quad.iter().map(|&q| q as i32).sum::<i32>();
                    }
                    sc[j] = scale;
                    su[j] = sum;
                }
            });
        QuantWeights {
            n,
            k,
            kp,
            packed,
            scales,
            sums,
        }
    }

    /// `(out_features, in_features)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The quantised weight of output `o`, input `i`.
    pub fn q(&self, o: usize, i: usize) -> i8 {
        let (b, j) = (o / BLOCK, o % BLOCK);
        self.packed[b * self.kp * BLOCK + ((i / 4) * BLOCK + j) * 4 + i % 4]
    }

    /// The scale of output `o` (weight ≈ scale · q).
    pub fn scale(&self, o: usize) -> f32 {
        self.scales[o]
    }

    /// The f32 weights these stand for, `[n, k]`.
    pub fn dequantize(&self) -> Array2<f32> {
        Array2::from_shape_fn((self.n, self.k), |(o, i)| self.q(o, i) as f32 * self.scales[o])
    }

    fn block_len(&self) -> usize {
        self.kp * BLOCK
    }
}

/// Rows of activations quantised per row, asymmetrically: `x ≈ scale · u + min` with
/// `u = round((x - min) / scale)` in 0..=255, `scale = (max - min) / 255`, which resolves
/// one-sided rows (GELU outputs) twice as finely as a symmetric ±127 code. Stored as
/// `u - 128` (i8) for the AVX2 and scalar kernels and as `u` (u8) for VNNI; `kp` bytes per row
/// (padding multiplies zero weights).
pub struct QuantRows {
    kp: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    mins: Vec<f32>,
}

impl QuantRows {
    pub fn quantize(x: ArrayView2<f32>, kp: usize, isa: Isa) -> QuantRows {
        let (m, k) = x.dim();
        assert!(k <= kp);
        let mut data = vec![0i8; m * kp];
        let mut params = vec![(0.0f32, 0.0f32); m];
        // VNNI takes the codes as u8: stored unshifted, an i8 holds the u8's bits.
        let shift = if isa == Isa::Vnni512 { 0 } else { 128 };
        let work = |(r, (dst, p)): (usize, (&mut [i8], &mut (f32, f32)))| {
            let row = x.row(r);
            let row = row.as_standard_layout();
            *p = quantize_row(row.as_slice().expect("standard layout"), shift, &mut dst[..k]);
        };
        if m >= 64 {
            data.par_chunks_mut(kp).zip(params.par_iter_mut()).enumerate().for_each(work);
        } else {
            data.chunks_mut(kp).zip(params.iter_mut()).enumerate().for_each(work);
        }
        let (scales, mins) = params.into_iter().unzip();
        QuantRows { kp, data, scales, mins }
    }

    /// The code of row `r`, input `i`: `x ≈ scale · code + min`.
    #[cfg(test)]
    fn code(&self, r: usize, i: usize, isa: Isa) -> i32 {
        let v = self.data[r * self.kp + i];
        if isa == Isa::Vnni512 {
            v as u8 as i32
        } else {
            v as i32 + 128
        }
    }
}

/// One activation row to 8-bit codes over its [min, max]: returns (scale, min).
#[inline(always)]
fn quantize_row_body(row: &[f32], shift: i32, out: &mut [i8]) -> (f32, f32) {
    let (lo, hi) = min_max(row);
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    quantize_body(row, lo, 1.0 / scale, 0.0, 255.0, shift, out);
    (scale, lo)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(row: &[f32], shift: i32, out: &mut [i8]) -> (f32, f32) {
    quantize_row_body(row, shift, out)
}

fn quantize_row(row: &[f32], shift: i32, out: &mut [i8]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the enabled features.
        return unsafe { quantize_row_avx2(row, shift, out) };
    }
    quantize_row_body(row, shift, out)
}

/// (min, max) of finite values, in a form that vectorises.
#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut lo = [f32::INFINITY; 16];
    let mut hi = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let mut l = lo.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let mut h = hi.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for &v in chunks.remainder() {
        l = l.min(v);
        h = h.max(v);
    }
    if l > h {
        (0.0, 0.0)
    } else {
        (l, h)
    }
}

/// `out = round((x - lo) · inv)` clamped to `qmin..=qmax`, minus `shift`.
#[inline(always)]
fn quantize_body(x: &[f32], lo: f32, inv: f32, qmin: f32, qmax: f32, shift: i32, out: &mut [i8]) {
    for (d, &v) in out.iter_mut().zip(x) {
        // max/min return the non-NaN operand, so q is a finite integer in range even for NaN.
        let q = ((v - lo) * inv).round_ties_even().max(qmin).min(qmax);
        // SAFETY: q is finite and within qmin..=qmax (i32 range); the plain conversion
        // vectorises, `as` does not.
        *d = (unsafe { q.to_int_unchecked::<i32>() } - shift) as i8;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_avx2(x: &[f32], lo: f32, inv: f32, qmin: f32, qmax: f32, shift: i32, out: &mut [i8]) {
    quantize_body(x, lo, inv, qmin, qmax, shift, out)
}

fn quantize_slice(x: &[f32], lo: f32, inv: f32, qmin: f32, qmax: f32, shift: i32, out: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the enabled features.
        return unsafe { quantize_avx2(x, lo, inv, qmin, qmax, shift, out) };
    }
    quantize_body(x, lo, inv, qmin, qmax, shift, out)
}

/// i32 sums of one tile: up to 6 rows by up to 32 outputs.
type Acc = [[i32; 2 * BLOCK]; MAX_ROWS];

/// Sums of `rows` activation rows (from `a`, stride `kp`) with `blocks` (1 or 2) consecutive
/// weight blocks starting at `w`.
fn tile(isa: Isa, a: &[i8], kp: usize, rows: usize, w: &[i8], blocks: usize, acc: &mut Acc) {
    debug_assert!(a.len() >= (rows - 1) * kp + kp && w.len() >= blocks * kp * BLOCK);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found the features; the asserts above bound every access.
        Isa::Vnni512 => unsafe {
            macro_rules! go {
                ($($r:literal)*) => {
                    match (rows, blocks) {
                        $( ($r, 1) => vnni::tile::<$r, 1>(a.as_ptr(), kp, w.as_ptr(), acc), )*
                        $( ($r, _) => vnni::tile::<$r, 2>(a.as_ptr(), kp, w.as_ptr(), acc), )*
                        _ => unreachable!(),
                    }
                };
            }
            go!(1 2 3 4 5 6)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe {
            for b in 0..blocks {
                let wb = w.as_ptr().add(b * kp * BLOCK);
                match rows {
                    1 => avx2::tile::<1>(a.as_ptr(), kp, wb, acc, b),
                    2 => avx2::tile::<2>(a.as_ptr(), kp, wb, acc, b),
                    3 => avx2::tile::<3>(a.as_ptr(), kp, wb, acc, b),
                    _ => avx2::tile::<4>(a.as_ptr(), kp, wb, acc, b),
                }
            }
        },
        _ => {
            for r in 0..rows {
                let ar = &a[r * kp..(r + 1) * kp];
                for b in 0..blocks {
                    let wb = &w[b * kp * BLOCK..(b + 1) * kp * BLOCK];
                    let out = &mut acc[r][b * BLOCK..(b + 1) * BLOCK];
                    out.fill(0);
                    for (g, wg) in wb.chunks_exact(4 * BLOCK).enumerate() {
                        let av = &ar[g * 4..g * 4 + 4];
                        for (j, o) in out.iter_mut().enumerate() {
                            let wj = &wg[j * 4..j * 4 + 4];
                            *o += (0..4).map(|t| av[t] as i32 * wj[t] as i32).sum::<i32>();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{Acc, BLOCK};
    use std::arch::x86_64::*;

    /// `R` rows of u8 (offset) activations by `B` blocks of 16 outputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize, const B: usize>(a: *const i8, kp: usize, w: *const i8, acc_out: &mut Acc) {
        let mut acc = [[_mm512_setzero_si512(); B]; R];
        let stride = kp * BLOCK;
        for g in 0..kp / 4 {
            let mut bv = [_mm512_setzero_si512(); B];
            for (j, bv) in bv.iter_mut().enumerate() {
                *bv = _mm512_loadu_si512(w.add(j * stride + g * 4 * BLOCK) as *const _);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(std::ptr::read_unaligned(a.add(r * kp + g * 4) as *const i32));
                for j in 0..B {
                    acc[j] = _mm512_dpbusd_epi32(acc[j], av, bv[j]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, acc) in acc.iter().enumerate() {
                _mm512_storeu_si512(acc_out[r][j * BLOCK..].as_mut_ptr() as *mut _, *acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Acc, BLOCK};
    use std::arch::x86_64::*;

    /// `R` rows of i8 activations by one block of 16 outputs, into columns `16 * slot ..`.
    /// |a| · (sign(a) · w) = a · w with both factors within ±127: no i16 saturation.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile<const R: usize>(a: *const i8, kp: usize, w: *const i8, acc_out: &mut Acc, slot: usize) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for g in 0..kp / 4 {
            let b0 = _mm256_loadu_si256(w.add(g * 4 * BLOCK) as *const __m256i);
            let b1 = _mm256_loadu_si256(w.add(g * 4 * BLOCK + 32) as *const __m256i);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi32(std::ptr::read_unaligned(a.add(r * kp + g * 4) as *const i32));
                let aa = _mm256_abs_epi8(av);
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, av)), ones);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, av)), ones);
                acc[0] = _mm256_add_epi32(acc[0], p0);
                acc[1] = _mm256_add_epi32(acc[1], p1);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let out = acc_out[r][slot * BLOCK..].as_mut_ptr();
            _mm256_storeu_si256(out as *mut __m256i, acc[0]);
            _mm256_storeu_si256(out.add(8) as *mut __m256i, acc[1]);
        }
    }
}

/// `dst = sc · (acc · sa + su · za) + bias`: one output row of a tile back in f32.
#[inline(always)]
fn epilogue_body(acc: &[i32], sa: f32, za: f32, sc: &[f32], su: &[i32], bias: Option<&[f32]>, dst: &mut [f32]) {
    let n = dst.len();
    let (acc, sc, su) = (&acc[..n], &sc[..n], &su[..n]);
    match bias {
        Some(b) => {
            let b = &b[..n];
            for j in 0..n {
                dst[j] = sc[j] * (acc[j] as f32 * sa + su[j] as f32 * za) + b[j];
            }
        }
        None => {
            for j in 0..n {
                dst[j] = sc[j] * (acc[j] as f32 * sa + su[j] as f32 * za);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn epilogue_avx2(acc: &[i32], sa: f32, za: f32, sc: &[f32], su: &[i32], bias: Option<&[f32]>, dst: &mut [f32]) {
    epilogue_body(acc, sa, za, sc, su, bias, dst)
}

fn epilogue(acc: &[i32], sa: f32, za: f32, sc: &[f32], su: &[i32], bias: Option<&[f32]>, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the enabled features.
        return unsafe { epilogue_avx2(acc, sa, za, sc, su, bias, dst) };
    }
    epilogue_body(acc, sa, za, sc, su, bias, dst)
}

/// A pointer to the output that tasks writing disjoint parts share.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint set of elements (distinct rows x output blocks).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `x[m, k] · wᵀ + bias` -> `[m, n]` with the best kernel, on the current rayon pool.
pub fn linear(x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>, gelu: bool, threads: usize) -> Array2<f32> {
    linear_with(Isa::detect(), x, w, bias, gelu, threads)
}

/// [`linear`] with a chosen kernel (which the CPU must support: one of [`Isa::available`]);
/// with `gelu`, GELU is applied to each output tile while it is in cache.
pub fn linear_with(isa: Isa, x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>, gelu: bool, threads: usize) -> Array2<f32> {
    assert!(Isa::available().contains(&isa), "kernel {isa:?} not supported by this CPU");
    let (m, k) = x.dim();
    assert_eq!(k, w.k, "int8 linear: input features");
    let n = w.n;
    let mut y = Array2::<f32>::zeros((m, n));
    if m == 0 || n == 0 {
        return y;
    }
    let a = QuantRows::quantize(x, w.kp, isa);
    let bias = bias.map(|b| b.to_vec());
    let blocks = n.div_ceil(BLOCK);
    let out = OutPtr(y.as_mut_ptr());
    let mr = isa.rows();
    // Tasks: (row range, block range). Few rows (decoding): split the outputs so each thread
    // streams its share of the weights once. Many rows: tiles of rows x 512 outputs, so a
    // row tile stays in L1 while the weight tile (at most 1 MiB) stays in L2.
    let (row_step, block_step) = if m <= 2 * mr {
        (m, blocks.div_ceil(threads.max(1) * 4).max(2))
    } else {
        (16 * mr, 32)
    };
    let row_tasks = m.div_ceil(row_step);
    let block_tasks = blocks.div_ceil(block_step);
    let task = |t: usize| {
        let (rt, bt) = (t / block_tasks, t % block_tasks);
        let (r0, r1) = (rt * row_step, ((rt + 1) * row_step).min(m));
        let (b0, b1) = (bt * block_step, ((bt + 1) * block_step).min(blocks));
        let mut acc: Acc = [[0; 2 * BLOCK]; MAX_ROWS];
        // Captures the whole (Send) wrapper rather than its raw pointer field.
        #[allow(clippy::redundant_locals)]
        let out = out;
        let mut r = r0;
        while r < r1 {
            let rows = mr.min(r1 - r);
            let mut b = b0;
            while b < b1 {
                let nb = 2.min(b1 - b);
                let wb = &w.packed[b * w.block_len()..(b + nb) * w.block_len()];
                tile(isa, &a.data[r * a.kp..(r + rows) * a.kp], a.kp, rows, wb, nb, &mut acc);
                let o0 = b * BLOCK;
                let cols = (nb * BLOCK).min(n - o0);
                let (sc, su) = (&w.scales[o0..o0 + cols], &w.sums[o0..o0 + cols]);
                for (i, acc) in acc.iter_mut().enumerate().take(rows) {
                    if isa == Isa::Vnni512 {
                        // VNNI sums u·q; every kernel scales Σ (u - 128)·q (exact in i32), so
                        // all of them round alike and the large terms do not cancel.
                        for (s, &q) in acc[..cols].iter_mut().zip(su) {
                            *s -= 128 * q;
                        }
                    }
                    // x·w ≈ sw·(sa·Σ (u - 128)·q + (min + 128·sa)·Σ q).
                    let sa = a.scales[r + i];
                    let za = a.mins[r + i] + 128.0 * sa;
                    // SAFETY: row r + i, columns o0 .. o0 + cols are inside [m, n]; tasks
                    // cover disjoint tiles.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add((r + i) * n + o0), cols) };
                    let bb = bias.as_ref().map(|b| &b[o0..o0 + cols]);
                    epilogue(&acc[..cols], sa, za, sc, su, bb, dst);
                    if gelu {
                        crate::ops::gelu_slice(dst);
                    }
                }
                b += nb;
            }
            r += rows;
        }
    };
    let tasks = row_tasks * block_tasks;
    // Below ~16M multiply-adds (a decoder layer's products and its cross-attention for five
    // beams) waking the other threads costs more than it saves, and on a busy machine much more.
    if tasks == 1 || threads <= 1 || m * n * k < SERIAL_WORK {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(shape: (usize, usize), seed: u64, scale: f32) -> Array2<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        Array2::from_shape_fn(shape, |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
    }

    /// Every kernel equals the exact integer product of the quantised operands (the only
    /// rounding left is the f32 scaling: a few ulps of the terms), and stays within the
    /// quantisation bound of the f64 product of the unquantised operands: with
    /// x = x̂ + ex, x̂ = sa·code + min, |ex| <= sa/2 and w = ŵ + ew, ŵ = sw·q, |ew| <= sw/2,
    /// |Σ x·w - Σ x̂·ŵ| = |Σ ex·w + x̂·ew| <= Σ (sa·|w| + sw·|x̂|) / 2.
    #[test]
    fn int8_linear_matches_f64_reference_within_quantisation_bound() {
        for &(m, k, n) in &[(1usize, 64usize, 16usize), (5, 512, 200), (7, 30, 33), (13, 100, 48), (70, 256, 130)] {
            let mut x = rand((m, k), (m * 31 + k) as u64, 3.0);
            // A one-sided row (like GELU outputs) and a constant row.
            x.row_mut(0).mapv_inplace(|v| v.abs() - 0.1);
            if m > 2 {
                x.row_mut(2).fill(0.75);
            }
            let mut wf = rand((n, k), (n * 17 + k) as u64, 0.2);
            wf.row_mut(0).fill(0.0); // an all-zero channel
            let bias = rand((1, n), 5, 1.0).row(0).to_owned();
            let w = QuantWeights::quantize(wf.view());
            for isa in Isa::available() {
                let y = linear_with(isa, x.view(), &w, Some(bias.view()), false, 2);
                let a = QuantRows::quantize(x.view(), w.kp, isa);
                for r in 0..m {
                    let (sa, za) = (a.scales[r] as f64, a.mins[r] as f64);
                    for o in 0..n {
                        let sw = w.scale(o) as f64;
                        let (mut codes, mut sums, mut bound, mut reference) = (0i64, 0i64, 0.0f64, 0.0f64);
                        for i in 0..k {
                            let (c, q) = (a.code(r, i, isa) as i64, w.q(o, i) as i64);
                            codes += c * q;
                            sums += q;
                            let xhat = sa * c as f64 + za;
                            assert!((xhat - x[[r, i]] as f64).abs() <= sa / 2.0 * (1.0 + 1e-5) + 1e-6, "{isa:?} code of [{r},{i}]");
                            bound += (sa * (wf[[o, i]] as f64).abs() + sw * xhat.abs()) / 2.0;
                            reference += x[[r, i]] as f64 * wf[[o, i]] as f64;
                        }
                        let b = bias[o] as f64;
                        let got = y[[r, o]] as f64;
                        let (t1, t2) = (sw * sa * codes as f64, sw * za * sums as f64);
                        let want_q = t1 + t2 + b;
                        let ulps = 8.0 * f32::EPSILON as f64 * (t1.abs() + t2.abs() + b.abs()) + 1e-30;
                        assert!((got - want_q).abs() <= ulps, "{isa:?} ({m},{k},{n}) [{r},{o}]: {got} vs exact {want_q}");
                        let tol = bound * (1.0 + 1e-6) + ulps;
                        assert!(
                            (got - reference - b).abs() <= tol,
                            "{isa:?} [{r},{o}]: {got} vs f64 {}, bound {tol}",
                            reference + b
                        );
                    }
                }
            }
        }
    }

    /// Every kernel, with or without GELU, for any thread count and task split (few rows:
    /// split by outputs; many rows: tiles), gives exactly the same f32 outputs.
    #[test]
    fn every_kernel_and_thread_count_gives_identical_outputs() {
        for &(m, k, n) in &[(1usize, 512usize, 2048usize), (3, 100, 200), (13, 384, 130), (100, 512, 1536)] {
            let x = rand((m, k), (m * 7 + k) as u64, 2.0);
            let w = QuantWeights::quantize(rand((n, k), (n * 3 + k) as u64, 0.3).view());
            let bias = rand((1, n), 8, 0.5).row(0).to_owned();
            for gelu in [false, true] {
                let want = linear_with(Isa::Scalar, x.view(), &w, Some(bias.view()), gelu, 1);
                for isa in Isa::available() {
                    for threads in [1, 2, 3, 8] {
                        let got = linear_with(isa, x.view(), &w, Some(bias.view()), gelu, threads);
                        let same = got.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{isa:?}, {threads} threads, ({m},{k},{n}), gelu {gelu}: differs from the scalar kernel");
                    }
                }
            }
        }
    }

    #[test]
    fn quantised_weights_round_trip_within_half_a_step() {
        let wf = rand((37, 45), 9, 0.5);
        let w = QuantWeights::quantize(wf.view());
        let back = w.dequantize();
        for o in 0..37 {
            let step = w.scale(o);
            let row_max = wf.row(o).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((step - row_max / 127.0).abs() <= 1e-6 * row_max);
            for i in 0..45 {
                assert!((back[[o, i]] - wf[[o, i]]).abs() <= 0.5 * step * (1.0 + 1e-5), "[{o},{i}]");
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn gemm_speed() {
        for &(m, k, n) in &[(1500usize, 512usize, 2048usize), (1500, 2048, 512), (1500, 512, 1536)] {
            let x = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 13) % 17) as f32 - 8.0);
            let w = Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j * 11) % 19) as f32 - 9.0);
            let q = QuantWeights::quantize(w.view());
            let mut best = f64::MAX;
            for _ in 0..15 {
                let t = std::time::Instant::now();
                let y = linear_with(Isa::detect(), x.view(), &q, None, false, 1);
                best = best.min(t.elapsed().as_secs_f64());
                assert!(y[[0, 0]].is_finite());
            }
            eprintln!("{m}x{k}x{n}: best {:.1} ms, {:.1} GMAC/s", best * 1e3, (m * k * n) as f64 / best / 1e9);
            let t = std::time::Instant::now();
            let _ = QuantRows::quantize(x.view(), q.kp, Isa::detect());
            eprintln!("  quantize rows {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
        }
    }
}
