//! Host tensors: conversion between the reference's f64 arrays and the backends' raw buffers, seeded
//! random inputs, and result comparison.
//!
//! Allocation is fallible: the `try_*` functions return a [`HostDataError`] naming the size and
//! the limit instead of aborting the process when a tensor cannot exist on the host. The other
//! functions are the same with a panic carrying that message (for tests and benches).

use crate::check::MAX_ARGUMENT_BYTES;
use aiec_runtime::{DType, HostBuffer};
use half::bf16;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};

/// A host tensor that cannot be allocated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostDataError {
    /// Larger than a runtime-sequence argument may be (2 GiB).
    #[error("{what} is {bytes} bytes ({elements} {dtype} elements), larger than the {limit} bytes a runtime-sequence argument may hold")]
    TooLarge {
        /// The tensor (`argument x`, `a host buffer`, ...).
        what: String,
        /// Its size.
        bytes: u128,
        /// Its element count.
        elements: u128,
        /// Its element type, as MLIR spells it.
        dtype: &'static str,
        /// The largest size allowed, bytes.
        limit: u64,
    },
    /// The host refused the memory.
    #[error("{what}: cannot allocate {bytes} bytes of host memory ({elements} elements of {elem_bytes} bytes)")]
    OutOfMemory {
        /// The tensor (`argument x`, `a host buffer`, ...).
        what: String,
        /// The bytes asked for.
        bytes: u128,
        /// The element count.
        elements: usize,
        /// Bytes per element.
        elem_bytes: usize,
    },
}

impl HostDataError {
    fn named(mut self, name: &str) -> Self {
        let (HostDataError::TooLarge { what, .. } | HostDataError::OutOfMemory { what, .. }) = &mut self;
        *what = format!("argument {name} ({what})");
        self
    }
}

/// Checks a tensor of `shape` x `dtype` against [`MAX_ARGUMENT_BYTES`]; returns its element count.
pub(crate) fn check_size(what: &str, shape: &[usize], dtype: DType) -> Result<usize, HostDataError> {
    let elements = shape.iter().try_fold(1u128, |acc, &n| acc.checked_mul(n as u128)).unwrap_or(u128::MAX);
    let bytes = elements.saturating_mul(dtype.size_bytes() as u128);
    if bytes > MAX_ARGUMENT_BYTES as u128 {
        return Err(HostDataError::TooLarge {
            what: what.to_string(),
            bytes,
            elements,
            dtype: dtype.mlir(),
            limit: MAX_ARGUMENT_BYTES,
        });
    }
    Ok(elements as usize)
}

/// An empty vector with room for `n` values of `T`, or the error naming the size.
fn try_vec<T>(what: &str, n: usize) -> Result<Vec<T>, HostDataError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| HostDataError::OutOfMemory {
        what: what.to_string(),
        bytes: n as u128 * std::mem::size_of::<T>() as u128,
        elements: n,
        elem_bytes: std::mem::size_of::<T>(),
    })?;
    Ok(v)
}

/// Encodes values (already representable in `dtype`, or rounded to it) as little-endian bytes.
pub fn to_buffer(a: &ArrayD<f64>, dtype: DType) -> HostBuffer {
    try_to_buffer(a, dtype).unwrap_or_else(|e| panic!("{e}"))
}

/// [`to_buffer`], failing cleanly when the buffer is too large or the memory is refused.
pub(crate) fn try_to_buffer(a: &ArrayD<f64>, dtype: DType) -> Result<HostBuffer, HostDataError> {
    check_size("a host buffer", a.shape(), dtype)?;
    let mut bytes = try_vec::<u8>("a host buffer", a.len() * dtype.size_bytes())?;
    for &v in a.iter() {
        match dtype {
            DType::I8 => bytes.push(v as i8 as u8),
            DType::I16 => bytes.extend_from_slice(&(v as i16).to_le_bytes()),
            DType::I32 => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::Bf16 => bytes.extend_from_slice(&bf16::from_f64(v).to_bits().to_le_bytes()),
            DType::F32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
        }
    }
    Ok(HostBuffer {
        dtype,
        shape: a.shape().to_vec(),
        bytes,
    })
}

/// Decodes a buffer into f64 values.
pub fn from_buffer(b: &HostBuffer) -> ArrayD<f64> {
    try_from_buffer(b).unwrap_or_else(|e| panic!("{e}"))
}

/// [`from_buffer`], failing cleanly when the values cannot be allocated.
pub fn try_from_buffer(b: &HostBuffer) -> Result<ArrayD<f64>, HostDataError> {
    let n = b.elements();
    let sz = b.dtype.size_bytes();
    assert!(b.bytes.len() >= n * sz, "a host buffer of {} elements holds only {} bytes", n, b.bytes.len());
    let mut v = try_vec::<f64>("the values of a host buffer", n)?;
    for i in 0..n {
        let c = &b.bytes[i * sz..(i + 1) * sz];
        v.push(match b.dtype {
            DType::I8 => c[0] as i8 as f64,
            DType::I16 => i16::from_le_bytes([c[0], c[1]]) as f64,
            DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            DType::Bf16 => bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64(),
            DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        });
    }
    Ok(ArrayD::from_shape_vec(b.shape.clone(), v).expect("shape matches the buffer"))
}

/// Seeded random values representable in `dtype`: full range for i8, +-2048 for i16, +-65536 for
/// i32, uniform in [-2, 2) for floats (rounded to bf16 where needed).
pub fn random(shape: &[usize], dtype: DType, rng: &mut rand::rngs::StdRng) -> ArrayD<f64> {
    try_random(shape, dtype, rng).unwrap_or_else(|e| panic!("{e}"))
}

/// [`random`], failing cleanly when the tensor is too large or the memory is refused.
pub(crate) fn try_random(shape: &[usize], dtype: DType, rng: &mut rand::rngs::StdRng) -> Result<ArrayD<f64>, HostDataError> {
    let n = check_size("a host tensor", shape, dtype)?;
    let mut v = try_vec::<f64>("the values of a host tensor", n)?;
    v.extend((0..n).map(|_| match dtype {
        DType::I8 => rng.gen_range(-128i32..=127) as f64,
        DType::I16 => rng.gen_range(-2048i32..=2047) as f64,
        DType::I32 => rng.gen_range(-65536i32..=65535) as f64,
        DType::Bf16 => bf16::from_f64(rng.gen_range(-2.0..2.0)).to_f64(),
        DType::F32 => rng.gen_range(-2.0f32..2.0) as f64,
    }));
    Ok(ArrayD::from_shape_vec(shape.to_vec(), v).expect("shape matches the values"))
}

/// A zeroed buffer for an argument, failing cleanly when it is too large or the memory is refused.
pub(crate) fn try_zeros(arg: &aiec_runtime::ArgSpec) -> Result<HostBuffer, HostDataError> {
    let what = format!("argument {}", arg.name);
    let n = check_size(&what, &arg.shape, arg.dtype)?;
    let len = n * arg.dtype.size_bytes();
    let mut bytes = try_vec::<u8>(&what, len)?;
    bytes.resize(len, 0);
    Ok(HostBuffer {
        dtype: arg.dtype,
        shape: arg.shape.clone(),
        bytes,
    })
}

/// The seeded random number generator the `random*` functions draw from.
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Seeded random values for every input argument (in order) and one buffer per argument:
/// inputs encoded, outputs zeroed. `shape_input` may adjust an input (name, values) first.
pub fn random_arguments(args: &[aiec_runtime::ArgSpec], seed: u64, shape_input: impl FnMut(&str, &mut ArrayD<f64>)) -> (Vec<ArrayD<f64>>, Vec<HostBuffer>) {
    try_random_arguments(args, seed, shape_input).unwrap_or_else(|e| panic!("{e}"))
}

/// [`random_arguments`], failing cleanly (naming the argument, its size and the limit) when an
/// argument is larger than a runtime-sequence argument may be (2 GiB) or the host refuses the
/// memory.
pub fn try_random_arguments(
    args: &[aiec_runtime::ArgSpec],
    seed: u64,
    mut shape_input: impl FnMut(&str, &mut ArrayD<f64>),
) -> Result<(Vec<ArrayD<f64>>, Vec<HostBuffer>), HostDataError> {
    // Every size first, so nothing is allocated for a set of arguments that cannot all exist.
    for arg in args {
        check_size(&format!("argument {}", arg.name), &arg.shape, arg.dtype)?;
    }
    let mut rng = rng(seed);
    let mut inputs = Vec::new();
    let mut bufs = Vec::new();
    for arg in args {
        if arg.direction == aiec_runtime::ArgDirection::In {
            let mut v = try_random(&arg.shape, arg.dtype, &mut rng).map_err(|e| e.named(&arg.name))?;
            shape_input(&arg.name, &mut v);
            bufs.push(try_to_buffer(&v, arg.dtype).map_err(|e| e.named(&arg.name))?);
            inputs.push(v);
        } else {
            bufs.push(try_zeros(arg)?);
        }
    }
    Ok((inputs, bufs))
}

/// How an output compared with its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every element equal to the reference's value (a NaN matching a NaN).
    pub exact: bool,
    pub(crate) max_abs: f64,
    pub(crate) max_rel: f64,
    /// Elements outside their bound (a shape mismatch counts as one).
    pub mismatches: usize,
    /// (flat index, got, want) of the first element out of its bound.
    pub first_mismatch: Option<(usize, f64, f64)>,
    /// The checked element whose error is the largest fraction of its bound
    /// (the worst mismatch when there are some).
    pub worst: Option<Worst>,
    /// Elements whose bound is infinite, so not checked.
    pub unbounded: usize,
}

/// One element of a [`compare_bounded`] comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    /// Index into the reference's shape.
    pub index: Vec<usize>,
    /// The value the backend produced.
    pub got: f64,
    /// The reference's value.
    pub want: f64,
    /// The reference's error bound for this element.
    pub bound: f64,
    /// `|got - want| / bound`: at most 1 inside the bound; infinite for a difference where the
    /// bound is 0 or for a wrong special value.
    pub fraction: f64,
}

impl Comparison {
    /// No element outside its bound.
    pub fn passed(&self) -> bool {
        self.mismatches == 0
    }

    /// The worst checked element's error as a fraction of its bound (0 when none was checked).
    pub fn worst_fraction(&self) -> f64 {
        self.worst.as_ref().map_or(0.0, |w| w.fraction)
    }
}

/// Compares `got` with the reference's values `want` element by element against the reference's
/// error bounds `bound` (`reference::run_reference_with_bounds`): `|got - want| <= bound`.
/// A NaN or infinite reference value with bound 0 must be matched exactly (same class and sign);
/// a finite one may come back as an infinity of its sign when `|want| + bound` reaches the
/// largest finite value of `dtype` (the backend overflowed); an infinite bound checks nothing
/// (counted in `unbounded`). Integer outputs have bound 0 unless computed from floats, so they
/// compare exactly.
pub fn compare_bounded(got: &ArrayD<f64>, want: &ArrayD<f64>, bound: &ArrayD<f64>, dtype: DType) -> Comparison {
    let largest = match dtype {
        DType::Bf16 => bf16::MAX.to_f64(),
        DType::F32 => f32::MAX as f64,
        _ => f64::INFINITY,
    };
    let mut c = Comparison {
        exact: true,
        max_abs: 0.0,
        max_rel: 0.0,
        mismatches: 0,
        first_mismatch: None,
        worst: None,
        unbounded: 0,
    };
    for (i, ((&g, &w), &b)) in got.iter().zip(want.iter()).zip(bound.iter()).enumerate() {
        let same = g == w || (g.is_nan() && w.is_nan());
        c.exact &= same;
        let err = if same { 0.0 } else { (g - w).abs() };
        if err.is_finite() {
            c.max_abs = c.max_abs.max(err);
            if w != 0.0 {
                c.max_rel = c.max_rel.max(err / w.abs());
            }
        }
        if b.is_nan() || b == f64::INFINITY {
            c.unbounded += 1;
            continue;
        }
        let fraction = if same {
            0.0
        } else if !w.is_finite() || g.is_nan() {
            f64::INFINITY
        } else if g.is_infinite() {
            // Overflow on the backend's side: fine when the bound reaches the largest value.
            if (g > 0.0 && w + b >= largest) || (g < 0.0 && w - b <= -largest) {
                1.0
            } else {
                f64::INFINITY
            }
        } else if b > 0.0 {
            err / b
        } else {
            f64::INFINITY
        };
        if fraction > 1.0 {
            c.mismatches += 1;
            c.first_mismatch.get_or_insert((i, g, w));
        }
        if c.worst.as_ref().is_none_or(|x| fraction > x.fraction) {
            c.worst = Some(Worst {
                index: unravel(i, want.shape()),
                got: g,
                want: w,
                bound: b,
                fraction,
            });
        }
    }
    if got.shape() != want.shape() || bound.shape() != want.shape() {
        c.mismatches += 1;
        c.exact = false;
    }
    c
}

/// The index in `shape` (row-major) of flat position `flat`.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (k, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            index[k] = flat % n;
            flat /= n;
        }
    }
    index
}
