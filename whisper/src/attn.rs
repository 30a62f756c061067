//! Fused multi-head attention for 64-wide heads with AVX-512: per tile of up to 6 queries of
//! one head, the scores against every visible key (keys read transposed, contiguous along
//! the keys, so no packing and no horizontal sums), the softmax in place, and the weighted sum
//! of the values, without materialising a `[n_q, n_k]` score matrix. Every query tile of
//! every head is an independent task. Used when the CPU has AVX-512F and heads are 64 wide;
//! [`crate::ops::CpuOps`] keeps its general path for everything else.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Queries per tile.
const ROWS: usize = 12;
/// Keys per chunk of the online softmax (the chunk's scores stay in L1).
const CHUNK: usize = 256;
/// Keys per strip of the score loop (two registers).
const STRIP: usize = 32;
/// The head width this kernel handles.
pub const HEAD_DIM: usize = 64;

/// True when [`attention`] can run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[derive(Clone, Copy)]
struct Ptr<T>(T);
// SAFETY: the pointers are read-only inputs or outputs written at disjoint (row, head) tiles.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

/// Where one head's keys and values are: key `j`, feature `c` at
/// `kt + (j / 32) * kstrip + c * kts + j % 32`, value row `j` at `v + j * vs`.
#[derive(Clone, Copy)]
struct HeadData {
    kt: *const u8,
    kts: usize,
    kstrip: usize,
    /// Keys row-major instead (f32 only): key `j`, feature `c` at `kt + j * kts + c`.
    krow: bool,
    v: *const u8,
    vs: usize,
}

/// Every head's keys blocked `[head][strip][64][32]` (zero-padded to whole strips) and values
/// `[head][n_k][64]`, in f32 or f16.
pub struct PackedKv<T> {
    heads: usize,
    n_k: usize,
    k: Vec<T>,
    v: Vec<T>,
}

impl<T: Copy + Default + Send + Sync> PackedKv<T> {
    pub fn pack(k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize, parallel: bool, conv: impl Fn(f32) -> T + Sync) -> Self {
        let n_k = k.nrows();
        assert!(k.dim() == (n_k, heads * HEAD_DIM) && v.dim() == k.dim());
        let kb = n_k.div_ceil(STRIP) * HEAD_DIM * STRIP;
        let mut kpack = vec![T::default(); heads * kb];
        let mut vpack = vec![T::default(); heads * n_k * HEAD_DIM];
        // Rows as slices (a column slice of the fused projection keeps unit column stride):
        // indexed views cost a stride multiply and a bounds check per element.
        let (k, v) = (unit_columns(k), unit_columns(v));
        let pack = |(h, (kd, vd)): (usize, (&mut [T], &mut [T]))| {
            let cols = h * HEAD_DIM..(h + 1) * HEAD_DIM;
            for j in 0..n_k {
                let kr = &k.row(j).to_slice().expect("unit column stride")[cols.clone()];
                let vr = &v.row(j).to_slice().expect("unit column stride")[cols.clone()];
                let base = (j / STRIP) * HEAD_DIM * STRIP + j % STRIP;
                for (c, &x) in kr.iter().enumerate() {
                    kd[base + c * STRIP] = conv(x);
                }
                for (d, &x) in vd[j * HEAD_DIM..(j + 1) * HEAD_DIM].iter_mut().zip(vr) {
                    *d = conv(x);
                }
            }
        };
        let zipped = kpack.chunks_mut(kb.max(1)).zip(vpack.chunks_mut((n_k * HEAD_DIM).max(1))).enumerate();
        if parallel {
            zipped.par_bridge().for_each(pack);
        } else {
            zipped.for_each(pack);
        }
        PackedKv {
            heads,
            n_k,
            k: kpack,
            v: vpack,
        }
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    pub fn keys(&self) -> usize {
        self.n_k
    }

    fn head_data(&self) -> Vec<HeadData> {
        let size = std::mem::size_of::<T>();
        let kb = self.n_k.div_ceil(STRIP) * HEAD_DIM * STRIP;
        (0..self.heads)
            .map(|h| HeadData {
                kt: self.k[h * kb..].as_ptr() as *const u8,
                kts: STRIP,
                kstrip: HEAD_DIM * STRIP,
                krow: false,
                v: self.v[h * self.n_k * HEAD_DIM..].as_ptr() as *const u8,
                vs: HEAD_DIM,
            })
            .inspect(|_| debug_assert!(size == 2 || size == 4))
            .collect()
    }
}

/// `a` itself when its columns are contiguous, else a row-major copy.
fn unit_columns(a: ArrayView2<'_, f32>) -> ndarray::CowArray<'_, f32, ndarray::Ix2> {
    if a.strides()[1] == 1 {
        ndarray::CowArray::from(a)
    } else {
        ndarray::CowArray::from(a.as_standard_layout().into_owned())
    }
}

/// [`attention`] (no mask) against keys and values packed in f16.
pub fn attention_packed_f16(q: ArrayView2<f32>, kv: &PackedKv<half::f16>, parallel: bool) -> Array2<f32> {
    assert!(available());
    assert_eq!(q.ncols(), kv.heads * HEAD_DIM);
    let out = Array2::<f32>::zeros(q.dim());
    let q = if q.strides()[1] == 1 {
        ndarray::CowArray::from(q)
    } else {
        ndarray::CowArray::from(q.as_standard_layout().into_owned())
    };
    finish::<true>(&q, kv.head_data(), kv.n_k, kv.heads, false, parallel, out)
}

/// softmax(q kᵀ / √64 + causal mask) v per head; `q` `[n_q, d]`, `k`, `v` `[n_k, d]`,
/// `d = heads * 64`. With `causal`, query `i` sees keys `0 ..= i + n_k - n_q`. With few
/// queries (decoding) the keys are read in place, best as a transposed array (strides
/// `[1, n_k]`, as [`crate::model::CrossKv`] keeps them); with many, every head's keys and
/// values are first packed contiguously. Call only when [`available`].
pub fn attention(q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize, causal: bool, parallel: bool) -> Array2<f32> {
    assert!(available());
    let (n_q, d) = q.dim();
    let n_k = k.nrows();
    assert_eq!(d, heads * HEAD_DIM);
    assert!(k.dim() == (n_k, d) && v.dim() == (n_k, d) && (!causal || n_k >= n_q) && n_k > 0);
    let mut out = Array2::<f32>::zeros((n_q, d));
    if n_q == 0 {
        return out;
    }
    // Rows of q are read through their stride: a column slice of the fused QKV is used as is.
    let q = if q.strides()[1] == 1 {
        ndarray::CowArray::from(q)
    } else {
        ndarray::CowArray::from(q.as_standard_layout().into_owned())
    };
    if n_q >= 2 * ROWS {
        // Many queries: pack once, then every tile reads keys and values sequentially.
        let packed = PackedKv::<f32>::pack(k, v, heads, parallel, |x| x);
        return finish::<false>(&q, packed.head_data(), n_k, heads, causal, parallel, out);
    }
    // Keys transposed (the cross-attention's) or row-major (the self-attention cache's), read
    // in place; anything else is copied row-major.
    let k_owned;
    let (kt, kts, krow) = if k.strides()[0] == 1 {
        (k.as_ptr(), k.strides()[1] as usize, false)
    } else if k.strides()[1] == 1 {
        (k.as_ptr(), k.strides()[0] as usize, true)
    } else {
        k_owned = k.as_standard_layout().into_owned();
        (k_owned.as_ptr(), d, true)
    };
    let v_owned;
    let (vp, vs) = if v.strides()[1] == 1 {
        (v.as_ptr(), v.strides()[0] as usize)
    } else {
        v_owned = v.as_standard_layout().into_owned();
        (v_owned.as_ptr(), d)
    };
    // The pointers stay inside k (or k_owned) and v (or v_owned), which outlive `finish`.
    let hd: Vec<HeadData> = (0..heads)
        .map(|h| HeadData {
            kt: kt.wrapping_add(if krow { h * HEAD_DIM } else { h * HEAD_DIM * kts }) as *const u8,
            kts,
            kstrip: STRIP,
            krow,
            v: vp.wrapping_add(h * HEAD_DIM) as *const u8,
            vs,
        })
        .collect();
    out = finish::<false>(&q, hd, n_k, heads, causal, parallel, out);
    out
}

fn finish<const F16: bool>(
    q: &ndarray::CowArray<f32, ndarray::Ix2>,
    head_data: Vec<HeadData>,
    n_k: usize,
    heads: usize,
    causal: bool,
    parallel: bool,
    mut out: Array2<f32>,
) -> Array2<f32> {
    let (n_q, d) = q.dim();
    let offset = n_k - n_q.min(n_k);
    let tiles = n_q.div_ceil(ROWS);
    // Tasks of up to 8 tiles of one head, consecutive tasks on the same head.
    let per_task = tiles.div_ceil((heads * tiles).div_ceil(64).max(1)).clamp(1, 8);
    let task_tiles = tiles.div_ceil(per_task);
    let (qp, op) = (Ptr(q.as_ptr()), Ptr(out.as_mut_ptr()));
    let qs = q.strides()[0] as usize;
    let head_data = Ptr(head_data);
    let task = |t: usize| {
        let (qp, op) = (qp, op);
        let hd = &head_data;
        let (h, tt) = (t / task_tiles, t % task_tiles);
        let first = tt * per_task * ROWS;
        let last = ((tt + 1) * per_task * ROWS).min(n_q);
        let mut r0 = first;
        while r0 < last {
            let rows = ROWS.min(last - r0);
            let mut visible = [0usize; ROWS];
            for (i, vis) in visible.iter_mut().enumerate().take(rows) {
                *vis = if causal { (r0 + i + offset + 1).min(n_k) } else { n_k };
            }
            // SAFETY: q and out are [n_q, d] (row stride qs, d); the head data covers n_k keys.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                let args = Tile {
                    q: qp.0.add(r0 * qs + h * HEAD_DIM),
                    qs,
                    head: hd.0[h],
                    out: op.0.add(r0 * d + h * HEAD_DIM),
                    os: d,
                    visible,
                };
                macro_rules! go {
                    ($($r:literal)*) => { match rows { $( $r => avx512::tile::<$r, F16>(&args), )* _ => unreachable!() } };
                }
                go!(1 2 3 4 5 6 7 8 9 10 11 12);
            }
            r0 += rows;
        }
    };
    let tasks = heads * task_tiles;
    if parallel && tasks > 1 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
    out
}

#[allow(dead_code)]
struct Tile {
    q: *const f32,
    qs: usize,
    head: HeadData,
    out: *mut f32,
    os: usize,
    visible: [usize; ROWS],
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Tile, CHUNK, HEAD_DIM, STRIP};
    use std::arch::x86_64::*;

    /// e^x for x <= 0 (the softmax's shifted scores): x = n·ln2 + r, a degree-6 polynomial for
    /// e^r, scaled by 2^n (relative error ~1e-7, like [`crate::ops::exp_f32`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
        let n = _mm512_roundscale_ps::<0x08>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_199_9e-3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
        let er = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0));
        _mm512_scalef_ps(er, n)
    }

    /// 16 values from element `at` of `base` (f16 or f32); f32 lanes outside `m` read as 0.
    /// f16 data is packed in whole strips, so it needs no mask.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load<const F16: bool>(base: *const u8, at: usize, m: __mmask16) -> __m512 {
        if F16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(base.add(2 * at) as *const __m256i))
        } else {
            _mm512_maskz_loadu_ps(m, base.add(4 * at) as *const f32)
        }
    }

    /// Exact GELU x·Φ(x) in place, erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the
    /// same formula as [`crate::ops::gelu_scalar`].
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gelu(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < n {
            let m = mask(n - i);
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            let z = _mm512_mul_ps(v, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
            let a = _mm512_abs_ps(z);
            let t = _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_fmadd_ps(a, _mm512_set1_ps(0.327_591_1), _mm512_set1_ps(1.0)));
            let mut poly = _mm512_set1_ps(1.061_405_4);
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453_152));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421_413_7));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284_496_74));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254_829_6));
            poly = _mm512_mul_ps(poly, t);
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
            let y = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.0));
            let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
            let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign));
            let g = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), v), _mm512_add_ps(_mm512_set1_ps(1.0), erf));
            _mm512_mask_storeu_ps(p.add(i), m, g);
            i += 16;
        }
    }

    #[inline]
    fn mask(valid: usize) -> __mmask16 {
        if valid >= 16 {
            0xffff
        } else {
            ((1u32 << valid) - 1) as __mmask16
        }
    }

    /// `R` queries of one head: online softmax over chunks of keys (running max `m`, running
    /// sum `l`, the output rescaled when the max grows).
    // Row and column indices address several arrays of registers and pointers at once.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const R: usize, const F16: bool>(t: &Tile) {
        let hd = t.head;
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let jmax = t.visible[..R].iter().copied().max().unwrap_or(0);
        let mut qv = [[0.0f32; HEAD_DIM]; R];
        for (r, qv) in qv.iter_mut().enumerate() {
            for (c, q) in qv.iter_mut().enumerate() {
                *q = *t.q.add(r * t.qs + c) * scale;
            }
        }
        let mut s = [[0.0f32; CHUNK]; R];
        let mut o = [[0.0f32; HEAD_DIM]; R];
        let mut m = [f32::NEG_INFINITY; R];
        let mut l = [0.0f32; R];
        let mut alpha = [1.0f32; R];
        let mut c0 = 0;
        while c0 < jmax {
            let clen = CHUNK.min(jmax - c0);
            let mut js = 0;
            while js < clen {
                let j0 = c0 + js;
                let (m0, m1) = (mask(jmax - j0), mask(jmax.saturating_sub(j0 + 16)));
                if !F16 && hd.krow {
                    // Row-major keys: one 64-wide dot product per key and query.
                    for jj in 0..STRIP.min(jmax - j0) {
                        let kr = (hd.kt as *const f32).add((j0 + jj) * hd.kts);
                        let kv = [
                            _mm512_loadu_ps(kr),
                            _mm512_loadu_ps(kr.add(16)),
                            _mm512_loadu_ps(kr.add(32)),
                            _mm512_loadu_ps(kr.add(48)),
                        ];
                        for r in 0..R {
                            let qr = qv[r].as_ptr();
                            let mut a = _mm512_mul_ps(_mm512_loadu_ps(qr), kv[0]);
                            a = _mm512_fmadd_ps(_mm512_loadu_ps(qr.add(16)), kv[1], a);
                            a = _mm512_fmadd_ps(_mm512_loadu_ps(qr.add(32)), kv[2], a);
                            a = _mm512_fmadd_ps(_mm512_loadu_ps(qr.add(48)), kv[3], a);
                            s[r][js + jj] = _mm512_reduce_add_ps(a);
                        }
                    }
                    js += STRIP;
                    continue;
                }
                let base = (j0 / STRIP) * hd.kstrip;
                let mut acc = [[_mm512_setzero_ps(); 2]; R];
                for c in 0..HEAD_DIM {
                    let row = base + c * hd.kts;
                    let k0 = load::<F16>(hd.kt, row, m0);
                    let k1 = load::<F16>(hd.kt, row + 16, m1);
                    for r in 0..R {
                        let qb = _mm512_set1_ps(qv[r][c]);
                        acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
                    }
                }
                for r in 0..R {
                    _mm512_storeu_ps(s[r].as_mut_ptr().add(js), acc[r][0]);
                    _mm512_storeu_ps(s[r].as_mut_ptr().add(js + 16), acc[r][1]);
                }
                js += STRIP;
            }
            for r in 0..R {
                let vis = t.visible[r].saturating_sub(c0).min(clen);
                let row = s[r].as_mut_ptr();
                let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
                let mut j = 0;
                while j < vis {
                    mx = _mm512_mask_max_ps(mx, mask(vis - j), mx, _mm512_loadu_ps(row.add(j)));
                    j += 16;
                }
                let m_new = m[r].max(_mm512_reduce_max_ps(mx));
                if m_new == f32::NEG_INFINITY {
                    // Nothing visible yet: zero weights, nothing to rescale.
                    alpha[r] = 1.0;
                    let mut j = 0;
                    while j < clen {
                        _mm512_storeu_ps(row.add(j), _mm512_setzero_ps());
                        j += 16;
                    }
                    continue;
                }
                alpha[r] = if m[r] == f32::NEG_INFINITY { 0.0 } else { crate::ops::exp_f32(m[r] - m_new) };
                let mb = _mm512_set1_ps(m_new);
                let mut sum = _mm512_setzero_ps();
                let mut j = 0;
                while j < clen {
                    let e = _mm512_maskz_mov_ps(mask(vis.saturating_sub(j)), exp(_mm512_sub_ps(_mm512_loadu_ps(row.add(j)), mb)));
                    _mm512_storeu_ps(row.add(j), e);
                    sum = _mm512_add_ps(sum, e);
                    j += 16;
                }
                l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
                m[r] = m_new;
            }
            for half in 0..2 {
                let mut acc = [[_mm512_setzero_ps(); 2]; R];
                for r in 0..R {
                    let a = _mm512_set1_ps(alpha[r]);
                    acc[r][0] = _mm512_mul_ps(a, _mm512_loadu_ps(o[r].as_ptr().add(half * 32)));
                    acc[r][1] = _mm512_mul_ps(a, _mm512_loadu_ps(o[r].as_ptr().add(half * 32 + 16)));
                }
                for j in 0..clen {
                    let vr = (c0 + j) * hd.vs + half * 32;
                    let v0 = load::<F16>(hd.v, vr, 0xffff);
                    let v1 = load::<F16>(hd.v, vr + 16, 0xffff);
                    for r in 0..R {
                        let p = _mm512_set1_ps(s[r][j]);
                        acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
                    }
                }
                for r in 0..R {
                    _mm512_storeu_ps(o[r].as_mut_ptr().add(half * 32), acc[r][0]);
                    _mm512_storeu_ps(o[r].as_mut_ptr().add(half * 32 + 16), acc[r][1]);
                }
            }
            c0 += clen;
        }
        for r in 0..R {
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            for c in 0..HEAD_DIM {
                *t.out.add(r * t.os + c) = o[r][c] * inv;
            }
        }
    }
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

    fn reference(q: &Array2<f32>, k: &Array2<f32>, v: &Array2<f32>, heads: usize, causal: bool) -> Array2<f64> {
        let (n_q, d) = q.dim();
        let n_k = k.nrows();
        let mut out = Array2::<f64>::zeros((n_q, d));
        for h in 0..heads {
            let c = h * HEAD_DIM..(h + 1) * HEAD_DIM;
            for i in 0..n_q {
                let vis = if causal { i + n_k - n_q + 1 } else { n_k };
                let s: Vec<f64> = (0..vis)
                    .map(|j| c.clone().map(|e| q[[i, e]] as f64 * k[[j, e]] as f64).sum::<f64>() / (HEAD_DIM as f64).sqrt())
                    .collect();
                let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                let total: f64 = p.iter().sum();
                for e in c.clone() {
                    out[[i, e]] = (0..vis).map(|j| p[j] * v[[j, e]] as f64).sum::<f64>() / total;
                }
            }
        }
        out
    }

    /// The f16 path: keys and values rounded to f16 when packed, the arithmetic f32, so it
    /// meets the f32 bound against the f64 attention of the rounded keys and values.
    #[test]
    fn f16_packed_attention_matches_f64_reference_on_rounded_kv() {
        if !available() {
            eprintln!("skipped: no AVX-512F");
            return;
        }
        for &(n_q, n_k, heads) in &[(1usize, 1500usize, 2usize), (5, 1500, 1), (13, 77, 3), (30, 33, 1)] {
            let d = heads * HEAD_DIM;
            let q = rand((n_q, d), 11 + n_q as u64, 2.0);
            let k = rand((n_k, d), 12 + n_k as u64, 2.0);
            let v = rand((n_k, d), 13 + n_k as u64, 1.0);
            let round = |a: &Array2<f32>| a.mapv(|x| half::f16::from_f32(x).to_f32());
            let packed = PackedKv::pack(k.view(), v.view(), heads, true, half::f16::from_f32);
            let got = attention_packed_f16(q.view(), &packed, true);
            let want = reference(&q, &round(&k), &round(&v), heads, false);
            let worst = got.iter().zip(want.iter()).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst <= 2e-4, "({n_q},{n_k},{heads}): max error {worst}");
        }
    }

    /// Against f64 attention. Each output is a convex combination of values (|v| <= 1), so
    /// its error is at most max|v| times the total error of the weights: f32 scores over 64
    /// terms (~64·2⁻²⁴·|q||k| ≈ 1e-5 here), the exp polynomial (1e-7 relative) and the f32
    /// sums over up to 1500 keys (~1500·2⁻²⁴ ≈ 1e-4 relative, worst case): 2e-4 covers them.
    #[test]
    fn fused_attention_matches_f64_reference() {
        if !available() {
            eprintln!("skipped: no AVX-512F");
            return;
        }
        for &(n_q, n_k, heads, causal, transposed) in &[
            (1usize, 1usize, 1usize, false, false),
            (1, 1500, 2, false, true),
            (5, 1500, 2, false, true),
            (7, 33, 3, true, false),
            (40, 40, 2, true, false),
            (100, 130, 1, false, false),
            (3, 200, 2, true, false),
            (30, 300, 2, true, false),
            (30, 700, 1, false, true),
        ] {
            let d = heads * HEAD_DIM;
            let q = rand((n_q, d), 1 + n_q as u64, 2.0);
            let k = rand((n_k, d), 2 + n_k as u64, 2.0);
            let v = rand((n_k, d), 3 + n_k as u64, 1.0);
            let kt_storage = k.t().as_standard_layout().into_owned();
            // Otherwise the keys are a column slice of a wider array, as in the fused QKV.
            let wide = ndarray::concatenate![ndarray::Axis(1), rand((n_k, d), 99, 1.0), k]
                .as_standard_layout()
                .into_owned();
            let kview = if transposed { kt_storage.t() } else { wide.slice(ndarray::s![.., d..]) };
            assert_eq!(transposed, kview.strides()[0] == 1 && n_k > 1);
            let got = attention(q.view(), kview, v.view(), heads, causal, true);
            let want = reference(&q, &k, &v, heads, causal);
            let worst = got.iter().zip(want.iter()).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst <= 2e-4, "({n_q},{n_k},{heads},{causal}): max error {worst}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn attention_speed() {
        let (n, heads) = (1500usize, 8usize);
        let d = heads * HEAD_DIM;
        let mk = |seed: usize| Array2::from_shape_fn((n, d), |(i, j)| (((i * 7 + j * 13 + seed) % 17) as f32 - 8.0) * 0.05);
        let (q, k, v) = (mk(1), mk(2), mk(3));
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let y = attention(q.view(), k.view(), v.view(), heads, false, false);
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "attention {n}x{n}x{heads}: {:.1} ms, {:.1} GMAC/s {}",
                s * 1e3,
                (2 * n * n * d) as f64 / s / 1e9,
                y[[0, 0]]
            );
        }
    }
}
