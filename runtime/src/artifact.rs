//! The artifact directory the compiler writes and the backends read.
//!
//! ```text
//! DIR/design.mlir   MLIR-AIE in mlir-aie's custom syntax (what aie-opt/aiecc read)
//! DIR/design.json   this module's [`DesignJson`]
//! DIR/final.xclbin  DIR/insts.bin   (only after `aiec build`, with the mlir-aie toolchain)
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Element types a host tensor / runtime-sequence argument can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    I8,
    I16,
    I32,
    Bf16,
    F32,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::Bf16 => 2,
            DType::I32 | DType::F32 => 4,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::Bf16 | DType::F32)
    }
    /// The MLIR spelling of the element type.
    pub fn mlir(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::Bf16 => "bf16",
            DType::F32 => "f32",
        }
    }
    pub fn from_mlir(s: &str) -> Option<DType> {
        Some(match s {
            "i8" => DType::I8,
            "i16" => DType::I16,
            "i32" => DType::I32,
            "bf16" => DType::Bf16,
            "f32" => DType::F32,
            _ => return None,
        })
    }
    pub const ALL: [DType; 5] = [DType::I8, DType::I16, DType::I32, DType::Bf16, DType::F32];
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mlir())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgDirection {
    In,
    Out,
}

/// One runtime-sequence argument, in the order of `aie.runtime_sequence`'s parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub direction: ArgDirection,
}

impl ArgSpec {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size_bytes()
    }
}

/// Memory use of one tile, as the checker computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileUse {
    pub col: u32,
    pub row: u32,
    /// "compute" | "memory" | "shim"
    pub kind: String,
    pub data_bytes: usize,
    pub data_limit: usize,
    /// Estimated program memory (compute tiles only); see the compiler's cost model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_bytes_estimate: Option<usize>,
    pub locks: usize,
    pub bds: usize,
}

/// The cost model's estimate for one run on the device. Never a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub macs: u64,
    pub compute_cycles: u64,
    pub dma_bytes: u64,
    pub estimated_seconds: f64,
    pub note: String,
}

/// `design.json`: everything a backend needs besides the MLIR itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignJson {
    /// Format version of this file.
    pub format: u32,
    pub kernel: String,
    /// "npu1" | "npu2"
    pub device: String,
    #[serde(default)]
    pub source: Option<String>,
    pub arguments: Vec<ArgSpec>,
    #[serde(default)]
    pub tiles: Vec<TileUse>,
    #[serde(default)]
    pub estimate: Option<CostEstimate>,
}

pub const DESIGN_JSON_FORMAT: u32 = 1;

impl DesignJson {
    pub fn read(path: &Path) -> Result<DesignJson, crate::RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::RuntimeError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| crate::RuntimeError::BadArtifact {
            path: path.to_path_buf(),
            message: format!("line {}, column {}: {}", e.line(), e.column(), e),
        })
    }
    pub fn to_pretty_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("design.json serializes");
        s.push('\n');
        s
    }
    /// Index of a runtime-sequence argument given as a 0-based number or a name.
    pub fn arg_index(&self, key: &str) -> Option<usize> {
        if let Ok(i) = key.parse::<usize>() {
            return (i < self.arguments.len()).then_some(i);
        }
        self.arguments.iter().position(|a| a.name == key)
    }
}

/// Paths inside an artifact directory.
#[derive(Debug, Clone)]
pub struct ArtifactDir {
    pub dir: PathBuf,
}

impl ArtifactDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactDir { dir: dir.into() }
    }
    pub fn mlir(&self) -> PathBuf {
        self.dir.join("design.mlir")
    }
    pub fn json(&self) -> PathBuf {
        self.dir.join("design.json")
    }
    pub fn xclbin(&self) -> PathBuf {
        self.dir.join("final.xclbin")
    }
    pub fn insts(&self) -> PathBuf {
        self.dir.join("insts.bin")
    }
}
