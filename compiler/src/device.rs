//! The devices aiec targets and their hardware limits: tile memories, DMA channels, locks,
//! buffer descriptors, shim DMA pattern widths and the runtime-sequence argument count.

use crate::target_rules::AieTarget;
use serde::Serialize;

/// A tile of the AIE array: column and row (row 0 is the shim row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TileCoord {
    pub(crate) col: u32,
    pub(crate) row: u32,
}

impl TileCoord {
    /// The tile at column `col`, row `row`.
    pub fn new(col: u32, row: u32) -> TileCoord {
        TileCoord { col, row }
    }
}

impl std::fmt::Display for TileCoord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.col, self.row)
    }
}

/// What a tile is, by its row: each kind has its own memory and DMA resources ([`TileLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TileKind {
    /// Row 0: the interface to host memory (DDR); no data memory of its own.
    Shim,
    /// The memory-tile row: a large buffer between the shim and the compute tiles.
    Memory,
    /// The rows of cores, each with its own data and program memory.
    Compute,
}

impl TileKind {
    /// The kind's name as design.json and the diagnostics spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TileKind::Shim => "shim",
            TileKind::Memory => "memory",
            TileKind::Compute => "compute",
        }
    }
}

/// Per-tile-kind resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileLimits {
    /// Data memory a tile of this kind has, bytes.
    pub data_bytes: usize,
    pub(crate) locks: usize,
    pub(crate) bds: usize,
    pub(crate) dma_in: usize,
    pub(crate) dma_out: usize,
    /// Dimensions a buffer descriptor can address.
    pub(crate) bd_dims: usize,
}

/// One NPU generation as the compiler sees it: the array's shape, each tile kind's resources,
/// the shim DMA limits and the rates the cost model uses. [`DeviceModel::npu1`] and
/// [`DeviceModel::npu2`] are the devices aiec targets.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceModel {
    /// The device name mlir-aie uses (`npu1`, `npu2`).
    pub name: &'static str,
    /// The AIE architecture of the compute tiles (what mlir-aie's core passes target).
    pub(crate) target: AieTarget,
    pub(crate) columns: u32,
    /// Compute rows are `first_compute_row .. first_compute_row + compute_rows`.
    pub(crate) compute_rows: u32,
    pub(crate) first_compute_row: u32,
    pub(crate) memory_row: u32,
    pub(crate) shim_row: u32,
    /// A compute tile's resources.
    pub compute: TileLimits,
    pub(crate) memory: TileLimits,
    pub(crate) shim: TileLimits,
    pub(crate) program_bytes: usize,
    pub(crate) default_stack_bytes: usize,
    /// Shim DMA (dma_memcpy_nd) limits, from the AIE-ML NoC module's BD fields.
    pub(crate) shim_wrap_max_words: u64,
    pub(crate) shim_step_max_words: u64,
    pub(crate) shim_repeat_max: u64,
    pub(crate) max_sequence_args: usize,
    /// Multiply-accumulates per cycle per compute tile.
    pub(crate) int8_macs_per_cycle: u64,
    pub(crate) bf16_macs_per_cycle: u64,
    pub(crate) clock_hz: f64,
    /// Bytes per cycle per DMA channel (4-byte words).
    pub(crate) dma_bytes_per_cycle: u64,
}

impl DeviceModel {
    /// Phoenix / Hawk Point (XDNA): 4 columns of AIE2 tiles.
    pub fn npu1() -> DeviceModel {
        DeviceModel {
            name: "npu1",
            target: AieTarget::Aie2,
            columns: 4,
            int8_macs_per_cycle: 256,
            bf16_macs_per_cycle: 128,
            clock_hz: 1.0e9,
            ..Self::common()
        }
    }
    /// Strix (XDNA2): 8 columns of AIE2P tiles.
    pub fn npu2() -> DeviceModel {
        DeviceModel {
            name: "npu2",
            target: AieTarget::Aie2p,
            columns: 8,
            int8_macs_per_cycle: 512,
            bf16_macs_per_cycle: 256,
            clock_hz: 1.5e9,
            ..Self::common()
        }
    }
    fn common() -> DeviceModel {
        DeviceModel {
            name: "",
            target: AieTarget::Aie2,
            columns: 0,
            compute_rows: 4,
            first_compute_row: 2,
            memory_row: 1,
            shim_row: 0,
            compute: TileLimits {
                data_bytes: 64 * 1024,
                locks: 16,
                bds: 16,
                dma_in: 2,
                dma_out: 2,
                bd_dims: 3,
            },
            memory: TileLimits {
                data_bytes: 512 * 1024,
                locks: 64,
                bds: 48,
                dma_in: 6,
                dma_out: 6,
                bd_dims: 4,
            },
            shim: TileLimits {
                data_bytes: 0,
                locks: 16,
                bds: 16,
                dma_in: 2,
                dma_out: 2,
                bd_dims: 4,
            },
            program_bytes: 16 * 1024,
            default_stack_bytes: 1024,
            shim_wrap_max_words: 1023,
            shim_step_max_words: 1 << 20,
            shim_repeat_max: 64,
            max_sequence_args: 5,
            int8_macs_per_cycle: 0,
            bf16_macs_per_cycle: 0,
            clock_hz: 0.0,
            dma_bytes_per_cycle: 4,
        }
    }
    /// The device called `name` (`npu1` or `npu2`), if aiec targets it.
    pub fn by_name(name: &str) -> Option<DeviceModel> {
        match name {
            "npu1" => Some(Self::npu1()),
            "npu2" => Some(Self::npu2()),
            _ => None,
        }
    }
    pub(crate) fn kind(&self, t: TileCoord) -> TileKind {
        if t.row == self.shim_row {
            TileKind::Shim
        } else if t.row == self.memory_row {
            TileKind::Memory
        } else {
            TileKind::Compute
        }
    }
    pub(crate) fn limits(&self, kind: TileKind) -> &TileLimits {
        match kind {
            TileKind::Shim => &self.shim,
            TileKind::Memory => &self.memory,
            TileKind::Compute => &self.compute,
        }
    }
    pub(crate) fn compute_tile(&self, col: u32, row_index: u32) -> TileCoord {
        TileCoord::new(col, self.first_compute_row + row_index)
    }
}
