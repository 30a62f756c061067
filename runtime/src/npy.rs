//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) as [`HostBuffer`]s.
//!
//! Supported little-endian dtypes: `<i1` (also `|i1`), `<i2`, `<i4`, `<f4`. `bf16` has no NumPy dtype: it is
//! read from `<f4` (rounded to the nearest bf16, ties to even) or from `<u2` (the raw bf16 bits), and written
//! as `<f4`.

use crate::artifact::DType;
use crate::backend::HostBuffer;
use std::path::{Path, PathBuf};

/// A `.npy` file cannot be read or written, or does not hold what was expected.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid .npy file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: dtype `{descr}` is not supported (use <i1, <i2, <i4, <f4, or <u2 for raw bf16 bits)")]
    UnsupportedDtype { path: PathBuf, descr: String },
    #[error("{path}: holds `{found}` but {expected} was expected")]
    DtypeMismatch { path: PathBuf, found: String, expected: DType },
    #[error("{path}: has shape {found:?} but shape {expected:?} was expected")]
    ShapeMismatch { path: PathBuf, found: Vec<usize>, expected: Vec<usize> },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Rounds an f32 to bf16 bits, nearest even (NaN stays NaN).
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let lsb = (bits >> 16) & 1;
    ((bits.wrapping_add(0x7fff + lsb)) >> 16) as u16
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    for quote in ['\'', '"'] {
        let k = format!("{quote}{key}{quote}");
        if let Some(p) = dict.find(&k) {
            let rest = dict[p + k.len()..].trim_start().strip_prefix(':')?.trim_start();
            return Some(rest);
        }
    }
    None
}

fn parse_header(dict: &str, path: &Path) -> Result<Header, NpyError> {
    let bad = |m: &str| NpyError::Format {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let descr_v = dict_value(dict, "descr").ok_or_else(|| bad("header has no 'descr'"))?;
    let q = descr_v.chars().next().ok_or_else(|| bad("empty 'descr'"))?;
    let descr = descr_v[1..].split(q).next().ok_or_else(|| bad("unterminated 'descr'"))?.to_string();
    let fo = dict_value(dict, "fortran_order").ok_or_else(|| bad("header has no 'fortran_order'"))?;
    let fortran_order = fo.starts_with("True");
    let sh = dict_value(dict, "shape").ok_or_else(|| bad("header has no 'shape'"))?;
    let sh = sh.strip_prefix('(').ok_or_else(|| bad("'shape' is not a tuple"))?;
    let end = sh.find(')').ok_or_else(|| bad("unterminated 'shape'"))?;
    let shape = sh[..end]
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| bad("'shape' holds a non-integer")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { descr, fortran_order, shape })
}

/// Parses the bytes of a .npy file. `path` only names the file in errors. With `expected`, the dtype and
/// shape must match (a bf16 argument accepts `<f4` and `<u2`).
pub fn parse_npy(bytes: &[u8], path: &Path, expected: Option<(DType, &[usize])>) -> Result<HostBuffer, NpyError> {
    let bad = |m: String| NpyError::Format {
        path: path.to_path_buf(),
        message: m,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic".into()));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(format!("format version {v} is not supported"))),
    };
    let dict = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header".into()))
        .and_then(|h| std::str::from_utf8(h).map_err(|_| bad("header is not text".into())))?;
    let header = parse_header(dict, path)?;
    if header.fortran_order {
        return Err(bad("Fortran-ordered arrays are not supported (save with C order)".into()));
    }
    let data = &bytes[start + header_len..];
    let file_dtype = match header.descr.as_str() {
        "<i1" | "|i1" => DType::I8,
        "<i2" => DType::I16,
        "<i4" => DType::I32,
        "<f4" => DType::F32,
        "<u2" => DType::Bf16,
        other => {
            return Err(NpyError::UnsupportedDtype {
                path: path.to_path_buf(),
                descr: other.to_string(),
            })
        }
    };
    let n: usize = header.shape.iter().product();
    let file_size = if header.descr == "<u2" { 2 } else { file_dtype.size_bytes() };
    if data.len() < n * file_size {
        return Err(bad(format!("{} data bytes for {} elements of `{}`", data.len(), n, header.descr)));
    }
    let data = &data[..n * file_size];
    let target = match expected {
        Some((want, shape)) => {
            if header.shape != shape {
                return Err(NpyError::ShapeMismatch {
                    path: path.to_path_buf(),
                    found: header.shape,
                    expected: shape.to_vec(),
                });
            }
            let ok = want == file_dtype || (want == DType::Bf16 && file_dtype == DType::F32);
            if !ok {
                return Err(NpyError::DtypeMismatch {
                    path: path.to_path_buf(),
                    found: header.descr,
                    expected: want,
                });
            }
            want
        }
        None => file_dtype,
    };
    let bytes = if target == DType::Bf16 && file_dtype == DType::F32 {
        data.chunks_exact(4)
            .flat_map(|c| f32_to_bf16_bits(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
            .collect()
    } else {
        data.to_vec()
    };
    Ok(HostBuffer {
        dtype: target,
        shape: header.shape,
        bytes,
    })
}

/// Reads a .npy file for an argument of element type `dtype` and shape `shape` (see [`parse_npy`]).
pub fn read_npy(path: &Path, dtype: DType, shape: &[usize]) -> Result<HostBuffer, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_npy(&bytes, path, Some((dtype, shape)))
}

/// Reads a .npy file with whatever supported dtype and shape it holds (`<u2` is read as bf16 bits).
pub fn read_npy_any(path: &Path) -> Result<HostBuffer, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_npy(&bytes, path, None)
}

/// The bytes of a version 1.0 .npy file holding `buf` (bf16 is written as `<f4`).
pub fn to_npy_bytes(buf: &HostBuffer) -> Vec<u8> {
    let descr = match buf.dtype {
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::F32 | DType::Bf16 => "<f4",
    };
    let shape = match buf.shape.len() {
        1 => format!("({},)", buf.shape[0]),
        _ => format!("({})", buf.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Header (magic + version + length + dict + newline) padded to a multiple of 64 bytes.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len() + buf.bytes.len() * 2);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    if buf.dtype == DType::Bf16 {
        for c in buf.bytes.chunks_exact(2) {
            let bits = (u16::from_le_bytes([c[0], c[1]]) as u32) << 16;
            out.extend_from_slice(&bits.to_le_bytes());
        }
    } else {
        out.extend_from_slice(&buf.bytes);
    }
    out
}

/// Writes `buf` as a .npy file.
pub fn write_npy(path: &Path, buf: &HostBuffer) -> Result<(), NpyError> {
    std::fs::write(path, to_npy_bytes(buf)).map_err(|e| NpyError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_i32_and_bf16() {
        let p = Path::new("x.npy");
        let b = HostBuffer {
            dtype: DType::I32,
            shape: vec![2, 3],
            bytes: (0..6i32).flat_map(|v| (v * 1000 - 7).to_le_bytes()).collect(),
        };
        let bytes = to_npy_bytes(&b);
        assert_eq!((bytes.len() - b.bytes.len()) % 64, 0);
        assert_eq!(parse_npy(&bytes, p, Some((DType::I32, &[2, 3]))).unwrap(), b);
        let bf = HostBuffer {
            dtype: DType::Bf16,
            shape: vec![2],
            bytes: vec![0x80, 0x3f, 0x00, 0xc0],
        };
        let back = parse_npy(&to_npy_bytes(&bf), p, Some((DType::Bf16, &[2]))).unwrap();
        assert_eq!(back, bf);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even gives 1.0.
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // Slightly above halfway rounds up.
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        // 1.0078125 + half an ulp: ties to even gives 1.015625 (0x3f82).
        assert_eq!(f32_to_bf16_bits(1.0078125 + 1.0 / 256.0), 0x3f82);
    }

    #[test]
    fn files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let b = HostBuffer {
            dtype: DType::I16,
            shape: vec![3],
            bytes: vec![1, 0, 0xff, 0xff, 0x34, 0x12],
        };
        write_npy(&p, &b).unwrap();
        assert_eq!(read_npy(&p, DType::I16, &[3]).unwrap(), b);
        assert_eq!(read_npy_any(&p).unwrap(), b);
        let e = read_npy(&dir.path().join("missing.npy"), DType::I16, &[3]).unwrap_err();
        assert!(e.to_string().contains("missing.npy"), "{e}");
    }

    #[test]
    fn mismatches_name_the_file() {
        let p = Path::new("weights.npy");
        let b = HostBuffer::zeros(DType::I8, &[4]);
        let bytes = to_npy_bytes(&b);
        let e = parse_npy(&bytes, p, Some((DType::I8, &[2, 2]))).unwrap_err();
        assert!(matches!(e, NpyError::ShapeMismatch { .. }));
        assert!(e.to_string().contains("weights.npy"), "{e}");
        let e = parse_npy(&bytes, p, Some((DType::I32, &[4]))).unwrap_err();
        assert!(matches!(e, NpyError::DtypeMismatch { .. }), "{e}");
    }
}
