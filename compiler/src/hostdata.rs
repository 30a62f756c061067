//! Host tensors: conversion between the reference's f64 arrays and the backends' raw buffers, seeded
//! random inputs, and result comparison.

use aiec_runtime::{DType, HostBuffer};
use half::bf16;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};

/// Encodes values (already representable in `dtype`, or rounded to it) as little-endian bytes.
pub fn to_buffer(a: &ArrayD<f64>, dtype: DType) -> HostBuffer {
    let mut bytes = Vec::with_capacity(a.len() * dtype.size_bytes());
    for &v in a.iter() {
        match dtype {
            DType::I8 => bytes.push(v as i8 as u8),
            DType::I16 => bytes.extend_from_slice(&(v as i16).to_le_bytes()),
            DType::I32 => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::Bf16 => bytes.extend_from_slice(&bf16::from_f64(v).to_bits().to_le_bytes()),
            DType::F32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
        }
    }
    HostBuffer {
        dtype,
        shape: a.shape().to_vec(),
        bytes,
    }
}

pub fn from_buffer(b: &HostBuffer) -> ArrayD<f64> {
    let n = b.elements();
    let sz = b.dtype.size_bytes();
    let mut v = Vec::with_capacity(n);
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
    ArrayD::from_shape_vec(b.shape.clone(), v).expect("shape matches the buffer")
}

/// Seeded random values representable in `dtype`: full range for i8, +-2048 for i16, +-65536 for
/// i32, uniform in [-2, 2) for floats (rounded to bf16 where needed).
pub fn random(shape: &[usize], dtype: DType, rng: &mut rand::rngs::StdRng) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| match dtype {
            DType::I8 => rng.gen_range(-128i32..=127) as f64,
            DType::I16 => rng.gen_range(-2048i32..=2047) as f64,
            DType::I32 => rng.gen_range(-65536i32..=65535) as f64,
            DType::Bf16 => bf16::from_f64(rng.gen_range(-2.0..2.0)).to_f64(),
            DType::F32 => rng.gen_range(-2.0f32..2.0) as f64,
        })
        .collect();
    ArrayD::from_shape_vec(shape.to_vec(), v).unwrap()
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Seeded random values for every input argument (in order) and one buffer per argument:
/// inputs encoded, outputs zeroed. `shape_input` may adjust an input (name, values) first.
pub fn random_arguments(args: &[aiec_runtime::ArgSpec], seed: u64, mut shape_input: impl FnMut(&str, &mut ArrayD<f64>)) -> (Vec<ArrayD<f64>>, Vec<HostBuffer>) {
    let mut rng = rng(seed);
    let mut inputs = Vec::new();
    let mut bufs = Vec::new();
    for arg in args {
        if arg.direction == aiec_runtime::ArgDirection::In {
            let mut v = random(&arg.shape, arg.dtype, &mut rng);
            shape_input(&arg.name, &mut v);
            bufs.push(to_buffer(&v, arg.dtype));
            inputs.push(v);
        } else {
            bufs.push(HostBuffer::for_arg(arg));
        }
    }
    (inputs, bufs)
}

/// How an output compared with its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub exact: bool,
    pub max_abs: f64,
    pub max_rel: f64,
    pub mismatches: usize,
    pub first_mismatch: Option<(usize, f64, f64)>,
    pub rtol: f64,
    pub atol: f64,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.mismatches == 0
    }
}

/// Tolerances by output type: integers exact; bf16 two units in the last place (2^-7 relative)
/// plus 1e-3 of the output's largest magnitude (summation order across tiles, arith-only
/// transcendentals before rounding); f32 1e-4 relative plus 1e-4 of the largest magnitude.
pub fn tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::Bf16 => (1.0 / 128.0, 1e-3),
        DType::F32 => (1e-4, 1e-4),
        _ => (0.0, 0.0),
    }
}

pub fn compare(got: &ArrayD<f64>, want: &ArrayD<f64>, dtype: DType) -> Comparison {
    let (rtol, atol_frac) = tolerance(dtype);
    let scale = want.iter().fold(0f64, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
    let atol = atol_frac * scale;
    let mut c = Comparison {
        exact: true,
        max_abs: 0.0,
        max_rel: 0.0,
        mismatches: 0,
        first_mismatch: None,
        rtol,
        atol,
    };
    for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
        let same = g == w || (g.is_nan() && w.is_nan());
        if !same {
            c.exact = false;
        }
        let err = if same { 0.0 } else { (g - w).abs() };
        if err.is_finite() {
            c.max_abs = c.max_abs.max(err);
            if w != 0.0 {
                c.max_rel = c.max_rel.max(err / w.abs());
            }
        }
        let ok = same || err <= rtol * w.abs() + atol;
        if !ok {
            c.mismatches += 1;
            c.first_mismatch.get_or_insert((i, g, w));
        }
    }
    if got.shape() != want.shape() {
        c.mismatches += 1;
        c.exact = false;
    }
    c
}
