//! The NPU instruction stream (`insts.bin`) and how a design's arguments become XRT kernel
//! arguments.
//!
//! `insts.bin` is what aiecc writes for the runtime sequence: little-endian 32-bit words that the
//! NPU's command processor executes to configure DMAs and wait for them. The kernel mlir-aie puts
//! in the xclbin takes, in this order: the opcode (3: run an instruction stream), the instruction
//! buffer (memory group of argument 1), the number of instruction words, then one buffer per
//! runtime-sequence argument (arguments 3, 4, ... with their own memory groups), five at most.
//! The opcode is a 64-bit scalar and the word count a 32-bit one; XRT checks the sizes.
//!
//! [`decode`] turns the words into typed [`Instruction`]s (the format is described where it is
//! defined), [`argument_uses`] replays them to find which bytes of which runtime-sequence
//! argument every shim buffer descriptor reads or writes, and [`check_contract`] checks that
//! against design.json: what [`kernel_call`]'s one buffer per argument, in order, relies on.

use crate::artifact::{ArgDirection, DesignJson};
use crate::backend::{HostBuffer, RuntimeError};
use crate::npu::NpuError;
use std::path::{Path, PathBuf};

/// The kernel opcode that runs the instruction stream in argument 1 (a 64-bit scalar).
pub const OPCODE_RUN_INSTRUCTIONS: u64 = 3;
/// Kernel argument index of the opcode.
pub const ARG_OPCODE: u32 = 0;
/// Kernel argument index of the instruction buffer (its memory group is this argument's).
pub const ARG_INSTRUCTIONS: u32 = 1;
/// Kernel argument index of the instruction word count.
pub const ARG_INSTRUCTION_COUNT: u32 = 2;
/// Kernel argument index of the first runtime-sequence buffer.
pub const ARG_FIRST_BUFFER: u32 = 3;
/// Buffer arguments the mlir-aie kernel interface has room for.
pub const MAX_BUFFER_ARGS: usize = 5;

/// `insts.bin` cannot be read, or its words are not an instruction stream.
#[derive(Debug, thiserror::Error)]
pub enum InstsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: empty instruction stream", path.display())]
    Empty { path: PathBuf },
    #[error("{}: {len} bytes is not a whole number of 32-bit instruction words", path.display())]
    BadLength { path: PathBuf, len: usize },
    // Decoding (`decode`): word indices count from the start of the stream (the header's first
    // word is word 0).
    #[error("the stream has {len} words; its header alone takes {HEADER_WORDS}")]
    TruncatedHeader { len: usize },
    #[error("the header gives the stream's size as {header} bytes, it has {actual}")]
    SizeMismatch { header: u32, actual: usize },
    #[error("the header counts {header} operations, the stream holds {actual}")]
    CountMismatch { header: u32, actual: usize },
    #[error("word {index}: unknown opcode {opcode} (word {word:#010x})")]
    UnknownOpcode { index: usize, opcode: u32, word: u32 },
    #[error("word {index}: {op} needs {needed} words, only {available} remain")]
    Truncated {
        index: usize,
        op: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("word {index}: {op} gives its size as {size} bytes, {expected}")]
    BadOpSize {
        index: usize,
        op: &'static str,
        size: u32,
        expected: String,
    },
}

/// Reads `insts.bin` into instruction words.
pub fn read_insts(path: &Path) -> Result<Vec<u32>, InstsError> {
    let bytes = std::fs::read(path).map_err(|source| InstsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_insts(&bytes, path)
}

/// Splits little-endian bytes into words; `path` only names the source in errors.
pub fn parse_insts(bytes: &[u8], path: &Path) -> Result<Vec<u32>, InstsError> {
    if bytes.is_empty() {
        return Err(InstsError::Empty { path: path.to_path_buf() });
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(InstsError::BadLength {
            path: path.to_path_buf(),
            len: bytes.len(),
        });
    }
    Ok(bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect())
}

/// The words as the bytes that go into the instruction buffer.
pub fn insts_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// One runtime-sequence argument's place in the kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferArg {
    /// Position in the runtime sequence (and in `design.json`'s arguments).
    pub sequence_index: usize,
    pub name: String,
    /// Kernel argument index; its memory group is `kernel.group_id(kernel_arg)`.
    pub kernel_arg: u32,
    pub bytes: usize,
    /// Inputs are copied to the device before the run, outputs back after it.
    pub direction: ArgDirection,
}

/// The whole kernel call for a design: opcode, instructions, then its buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCall {
    /// 64-bit scalar argument 0.
    pub opcode: u64,
    /// 32-bit scalar argument 2.
    pub instruction_words: u32,
    pub buffers: Vec<BufferArg>,
}

/// Maps `design.json`'s runtime-sequence arguments to kernel arguments.
pub fn kernel_call(design: &DesignJson, instruction_words: usize) -> Result<KernelCall, RuntimeError> {
    if design.arguments.is_empty() {
        return Err(NpuError::NoArguments { kernel: design.kernel.clone() }.into());
    }
    if design.arguments.len() > MAX_BUFFER_ARGS {
        return Err(NpuError::TooManyArguments {
            kernel: design.kernel.clone(),
            count: design.arguments.len(),
        }
        .into());
    }
    let instruction_words = u32::try_from(instruction_words)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(NpuError::InstructionCount { words: instruction_words })?;
    let buffers = design
        .arguments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if a.bytes() == 0 {
                return Err(RuntimeError::BadArgument {
                    index: i,
                    name: a.name.clone(),
                    message: format!("shape {:?} has no elements", a.shape),
                });
            }
            Ok(BufferArg {
                sequence_index: i,
                name: a.name.clone(),
                kernel_arg: ARG_FIRST_BUFFER + i as u32,
                bytes: a.bytes(),
                direction: a.direction,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KernelCall {
        opcode: OPCODE_RUN_INSTRUCTIONS,
        instruction_words,
        buffers,
    })
}

/// Checks host buffers against the design's arguments (count, element type, shape).
pub fn check_host_buffers(design: &DesignJson, args: &[HostBuffer]) -> Result<(), RuntimeError> {
    if args.len() != design.arguments.len() {
        return Err(RuntimeError::ArgumentCount {
            kernel: design.kernel.clone(),
            expected: design.arguments.len(),
            given: args.len(),
        });
    }
    for (i, (spec, buf)) in design.arguments.iter().zip(args).enumerate() {
        let bad = |message: String| RuntimeError::BadArgument {
            index: i,
            name: spec.name.clone(),
            message,
        };
        if buf.dtype != spec.dtype {
            return Err(bad(format!("element type {} given, the design takes {}", buf.dtype, spec.dtype)));
        }
        if buf.shape != spec.shape {
            return Err(bad(format!("shape {:?} given, the design takes {:?}", buf.shape, spec.shape)));
        }
        if buf.bytes.len() != spec.bytes() {
            return Err(bad(format!(
                "{} bytes given, shape {:?} of {} needs {}",
                buf.bytes.len(),
                spec.shape,
                spec.dtype,
                spec.bytes()
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding the instruction stream
// ---------------------------------------------------------------------------------------------
//
// Format (mlir-aie `aie-translate --aie-npu-to-binary`, which writes aie-rt's transaction
// format): a 4-word header, then operations. Every operation starts with a word whose low byte
// is the opcode; most carry their own size in bytes in a fixed word, and all have fixed lengths
// except the block write, whose size word gives its length.
//
// | opcode | operation | words | layout |
// |---|---|---|---|
// | 0 | write32 | 6 | `[0, 0, address, 0 (address high bits), value, 24]` |
// | 1 | blockwrite | 4 + n | `[1, col \| row << 8, address, size bytes, data x n]` |
// | 3 | maskwrite32 | 7 | `[3, 0, address, 0, value, mask, 28]` |
// | 6 | preempt | 1 | `[6 \| level << 8]` |
// | 8 | load PDI | 4 | `[8 \| id << 16, size, address low, address high]` |
// | 128 | sync (task-complete token) | 4 | `[128, 16, direction \| row << 8 \| col << 16, row_num << 8 \| col_num << 16 \| channel << 24]` |
// | 129 | address patch (DDR patch) | 12 | `[129, 48, 0, 0, 0, action, register address, 0, argument index, 0, byte offset, 0]` |
//
// Header: `[rows << 24 | device generation << 16 | minor << 8 | major, mem-tile rows << 8 |
// columns, operation count, stream size in bytes]`; the device generation is 3 for npu1
// (Phoenix/Hawk Point) and 4 for npu2 (Strix/Krackan).

/// Opcode of a 32-bit register write.
pub const OP_WRITE32: u32 = 0;
/// Opcode of a block of consecutive register writes.
pub const OP_BLOCKWRITE: u32 = 1;
/// Opcode of a masked register write.
pub const OP_MASKWRITE32: u32 = 3;
/// Opcode of a preemption point.
pub const OP_PREEMPT: u32 = 6;
/// Opcode of a PDI load.
pub const OP_LOADPDI: u32 = 8;
/// Opcode of a wait for a DMA's task-complete token (`npu.sync`).
pub const OP_SYNC: u32 = 128;
/// Opcode of an address patch: a register gets a host buffer's device address plus an offset.
pub const OP_ADDRESS_PATCH: u32 = 129;

/// Words in the stream header.
pub const HEADER_WORDS: usize = 4;
const WRITE32_WORDS: usize = 6;
const MASKWRITE32_WORDS: usize = 7;
const BLOCKWRITE_HEADER_WORDS: usize = 4;
const SYNC_WORDS: usize = 4;
const PATCH_WORDS: usize = 12;
const LOADPDI_WORDS: usize = 4;

/// The header's device generation for npu1 (Phoenix, Hawk Point).
pub const DEV_GEN_NPU1: u8 = 3;
/// The header's device generation for npu2 (Strix, Krackan).
pub const DEV_GEN_NPU2: u8 = 4;

/// The device generation an instruction stream for `device` ("npu1", "npu2") carries.
pub fn dev_gen_for_device(device: &str) -> Option<u8> {
    match device {
        "npu1" => Some(DEV_GEN_NPU1),
        "npu2" => Some(DEV_GEN_NPU2),
        _ => None,
    }
}

/// One decoded entry of the instruction stream. The first is always the [`Instruction::Header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Header {
        major: u8,
        minor: u8,
        /// 3: npu1, 4: npu2.
        dev_gen: u8,
        rows: u8,
        columns: u8,
        mem_tile_rows: u8,
        /// Number of operations after the header.
        op_count: u32,
        /// Size of the whole stream, header included, in bytes.
        size_bytes: u32,
    },
    Write32 {
        address: u32,
        value: u32,
    },
    /// Writes `data` to consecutive registers from `address`. `col`/`row` are what the op
    /// recorded (both 0 when it gave none; the address holds the tile either way).
    BlockWrite {
        address: u32,
        col: u8,
        row: u8,
        data: Vec<u32>,
    },
    MaskWrite32 {
        address: u32,
        value: u32,
        mask: u32,
    },
    /// Waits for `channel`'s task-complete token in the given tile range (`npu.sync`).
    /// `direction`: 0 = S2MM, 1 = MM2S.
    Sync {
        direction: u8,
        row: u8,
        column: u8,
        row_num: u8,
        column_num: u8,
        channel: u8,
    },
    /// Sets the register at `address` to the device address of runtime-sequence argument
    /// `arg_index` plus `offset` bytes.
    AddressPatch {
        address: u32,
        arg_index: u32,
        offset: u32,
        action: u32,
    },
    LoadPdi {
        id: u16,
        size: u32,
        address: u64,
    },
    Preempt {
        level: u32,
    },
}

fn take<'a>(words: &'a [u32], index: usize, needed: usize, op: &'static str) -> Result<&'a [u32], InstsError> {
    let available = words.len() - index;
    if available < needed {
        return Err(InstsError::Truncated { index, op, needed, available });
    }
    Ok(&words[index..index + needed])
}

fn expect_size(index: usize, op: &'static str, size: u32, words: usize) -> Result<(), InstsError> {
    if size as usize != words * 4 {
        return Err(InstsError::BadOpSize {
            index,
            op,
            size,
            expected: format!("the operation is {} bytes", words * 4),
        });
    }
    Ok(())
}

/// Decodes an instruction stream (as [`read_insts`] returns it) into its header and operations.
/// Never panics: every length, the header's size and count fields and every operation's own
/// size are checked, and anything else is an error naming the word.
pub fn decode(words: &[u32]) -> Result<Vec<Instruction>, InstsError> {
    if words.len() < HEADER_WORDS {
        return Err(InstsError::TruncatedHeader { len: words.len() });
    }
    let (h0, h1, op_count, size_bytes) = (words[0], words[1], words[2], words[3]);
    if size_bytes as usize != words.len() * 4 {
        return Err(InstsError::SizeMismatch {
            header: size_bytes,
            actual: words.len() * 4,
        });
    }
    let mut out = Vec::with_capacity(1 + (op_count as usize).min(words.len()));
    out.push(Instruction::Header {
        major: h0 as u8,
        minor: (h0 >> 8) as u8,
        dev_gen: (h0 >> 16) as u8,
        rows: (h0 >> 24) as u8,
        columns: h1 as u8,
        mem_tile_rows: (h1 >> 8) as u8,
        op_count,
        size_bytes,
    });
    let mut i = HEADER_WORDS;
    while i < words.len() {
        let opcode = words[i] & 0xff;
        let (inst, len) = match opcode {
            OP_WRITE32 => {
                let w = take(words, i, WRITE32_WORDS, "write32")?;
                expect_size(i, "write32", w[5], WRITE32_WORDS)?;
                (Instruction::Write32 { address: w[2], value: w[4] }, WRITE32_WORDS)
            }
            OP_BLOCKWRITE => {
                let w = take(words, i, BLOCKWRITE_HEADER_WORDS, "blockwrite")?;
                let size = w[3];
                if size % 4 != 0 || (size as usize) < BLOCKWRITE_HEADER_WORDS * 4 {
                    return Err(InstsError::BadOpSize {
                        index: i,
                        op: "blockwrite",
                        size,
                        expected: format!("expected a multiple of 4 of at least {}", BLOCKWRITE_HEADER_WORDS * 4),
                    });
                }
                let len = size as usize / 4;
                let w = take(words, i, len, "blockwrite")?;
                (
                    Instruction::BlockWrite {
                        address: w[2],
                        col: w[1] as u8,
                        row: (w[1] >> 8) as u8,
                        data: w[BLOCKWRITE_HEADER_WORDS..].to_vec(),
                    },
                    len,
                )
            }
            OP_MASKWRITE32 => {
                let w = take(words, i, MASKWRITE32_WORDS, "maskwrite32")?;
                expect_size(i, "maskwrite32", w[6], MASKWRITE32_WORDS)?;
                (
                    Instruction::MaskWrite32 {
                        address: w[2],
                        value: w[4],
                        mask: w[5],
                    },
                    MASKWRITE32_WORDS,
                )
            }
            OP_PREEMPT => (Instruction::Preempt { level: words[i] >> 8 }, 1),
            OP_LOADPDI => {
                let w = take(words, i, LOADPDI_WORDS, "load_pdi")?;
                (
                    Instruction::LoadPdi {
                        id: (w[0] >> 16) as u16,
                        size: w[1],
                        address: u64::from(w[2]) | u64::from(w[3]) << 32,
                    },
                    LOADPDI_WORDS,
                )
            }
            OP_SYNC => {
                let w = take(words, i, SYNC_WORDS, "sync")?;
                expect_size(i, "sync", w[1], SYNC_WORDS)?;
                (
                    Instruction::Sync {
                        direction: w[2] as u8,
                        row: (w[2] >> 8) as u8,
                        column: (w[2] >> 16) as u8,
                        row_num: (w[3] >> 8) as u8,
                        column_num: (w[3] >> 16) as u8,
                        channel: (w[3] >> 24) as u8,
                    },
                    SYNC_WORDS,
                )
            }
            OP_ADDRESS_PATCH => {
                let w = take(words, i, PATCH_WORDS, "address_patch")?;
                expect_size(i, "address_patch", w[1], PATCH_WORDS)?;
                (
                    Instruction::AddressPatch {
                        action: w[5],
                        address: w[6],
                        arg_index: w[8],
                        offset: w[10],
                    },
                    PATCH_WORDS,
                )
            }
            _ => {
                return Err(InstsError::UnknownOpcode {
                    index: i,
                    opcode,
                    word: words[i],
                })
            }
        };
        out.push(inst);
        i += len;
    }
    let ops = out.len() - 1;
    if ops != op_count as usize {
        return Err(InstsError::CountMismatch { header: op_count, actual: ops });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// What the stream does with the runtime-sequence arguments
// ---------------------------------------------------------------------------------------------
//
// mlir-aie lowers each `npu.dma_memcpy_nd` of the runtime sequence to three steps on a shim
// tile (row 0): a blockwrite of the 8-word buffer descriptor (BD) at `0x1D000 + 0x20 * bd`, an
// address patch of the BD's address word (`+ 4`) with the argument index and the byte offset,
// and a write32 to the channel's task queue that starts the BD. Register addresses hold the tile:
// column in bits 31..25, row in 24..20, the register in 19..0 (npu1 and npu2 alike).
//
// Shim BD words (AIE2/AIE2P NoC tile), in 32-bit units throughout:
// 0: buffer length (words moved per run); 1: address low (overwritten by the patch);
// 2: address high, packet fields; 3: d0 wrap [29:20], d0 step - 1 [19:0];
// 4: burst [31:30], d1 wrap [29:20], d1 step - 1 [19:0]; 5: AXI cache [27:24], d2 step - 1 [19:0];
// 6: iteration current [31:26], iteration wrap - 1 [25:20], iteration step - 1 [19:0];
// 7: next BD [30:27], use next BD [26], valid [25], locks.
// A wrap of 0 means the dimension never wraps (d0 wrap 0: a linear transfer). d2 has no wrap:
// it counts what is left of the length. Each run of a BD (a queue write with repeat count r runs
// it r + 1 times) adds `iteration current * iteration step` to the address, the current iteration
// advancing per run modulo the iteration wrap.
//
// Task queue registers: S2MM channel c (writes host memory) at `0x1D204 + 8c`, MM2S channel c
// (reads host memory) at `0x1D214 + 8c`; value: BD id [3:0], repeat count [23:16], issue a
// task-complete token [31].

/// First shim buffer-descriptor register.
pub const SHIM_BD_BASE: u32 = 0x1D000;
/// Bytes between consecutive shim BDs.
pub const SHIM_BD_STRIDE: u32 = 0x20;
/// Buffer descriptors per shim tile.
pub const SHIM_BDS: u32 = 16;
/// Words in a shim BD.
pub const SHIM_BD_WORDS: usize = 8;
/// Byte offset of the address word inside a shim BD (what an address patch targets).
pub const SHIM_BD_ADDRESS_WORD: u32 = 4;
/// Task queue register of S2MM channel 0 (channel c at `+ 8c`; MM2S at `+ 0x10`).
pub const SHIM_S2MM_QUEUE: u32 = 0x1D204;
/// Task queue register of MM2S channel 0.
pub const SHIM_MM2S_QUEUE: u32 = 0x1D214;
/// DMA channels per direction on a shim tile.
pub const SHIM_CHANNELS: u32 = 2;
const COL_SHIFT: u32 = 25;
const ROW_SHIFT: u32 = 20;
const TILE_REG_MASK: u32 = (1 << ROW_SHIFT) - 1;

/// Splits a register address into (column, row, register).
pub fn split_address(address: u32) -> (u32, u32, u32) {
    (address >> COL_SHIFT, (address >> ROW_SHIFT) & 0x1f, address & TILE_REG_MASK)
}

/// Which way a shim DMA channel moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmaDirection {
    /// Stream to memory-mapped: the DMA writes host memory (an output).
    S2mm,
    /// Memory-mapped to stream: the DMA reads host memory (an input).
    Mm2s,
}

impl std::fmt::Display for DmaDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DmaDirection::S2mm => "S2MM (writes)",
            DmaDirection::Mm2s => "MM2S (reads)",
        })
    }
}

/// One dimension of a BD's address pattern, in 32-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdDim {
    /// Elements before the dimension wraps; 0: it never wraps.
    pub wrap: u32,
    /// Address step in words (the register holds `step - 1`).
    pub step: u32,
}

/// A shim buffer descriptor's address generation, decoded from its 8 register words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimBd {
    /// Words moved per run.
    pub length_words: u32,
    pub d0: BdDim,
    pub d1: BdDim,
    /// d2 has no wrap: it counts what the length leaves after d0 and d1.
    pub d2_step: u32,
    /// Iteration (the 4th dimension): advances once per run.
    pub iteration: BdDim,
    pub iteration_current: u32,
    pub next_bd: Option<u32>,
    pub valid: bool,
}

impl ShimBd {
    pub fn from_words(w: &[u32; SHIM_BD_WORDS]) -> ShimBd {
        let dim = |word: u32| BdDim {
            wrap: (word >> 20) & 0x3ff,
            step: (word & 0xfffff) + 1,
        };
        ShimBd {
            length_words: w[0],
            d0: dim(w[3]),
            d1: dim(w[4]),
            d2_step: (w[5] & 0xfffff) + 1,
            iteration: BdDim {
                wrap: ((w[6] >> 20) & 0x3f) + 1,
                step: (w[6] & 0xfffff) + 1,
            },
            iteration_current: (w[6] >> 26) & 0x3f,
            next_bd: ((w[7] >> 26) & 1 == 1).then_some((w[7] >> 27) & 0xf),
            valid: (w[7] >> 25) & 1 == 1,
        }
    }

    /// Word offset of the `i`-th word a run moves (before the iteration offset).
    pub fn word_offset(&self, i: u64) -> u64 {
        let (d0, d1) = (u64::from(self.d0.wrap), u64::from(self.d1.wrap));
        let (i0, rest) = if d0 == 0 { (i, 0) } else { (i % d0, i / d0) };
        let (i1, i2) = if d1 == 0 { (rest, 0) } else { (rest % d1, rest / d1) };
        i0 * u64::from(self.d0.step) + i1 * u64::from(self.d1.step) + i2 * u64::from(self.d2_step)
    }

    /// The largest word offset one run reaches (None for a zero length). Offsets grow with each
    /// index, and the indices a run visits are a prefix of the d0/d1/d2 counter, so the largest
    /// is at the last word or at the word before the last row or the last plane began.
    pub fn max_word_offset(&self) -> Option<u64> {
        let len = u64::from(self.length_words);
        let last = len.checked_sub(1)?;
        let (d0, d1) = (u64::from(self.d0.wrap), u64::from(self.d1.wrap));
        let mut candidates = vec![Some(last)];
        if let Some(rows) = last.checked_div(d0) {
            candidates.push((rows * d0).checked_sub(1));
            if let Some(planes) = last.checked_div(d0 * d1) {
                candidates.push((planes * d0 * d1).checked_sub(1));
            }
        }
        candidates.into_iter().flatten().map(|c| self.word_offset(c)).max()
    }

    /// Iteration indices `runs` runs of the BD use (the current iteration advances per run).
    pub fn iterations(&self, runs: u64) -> Vec<u64> {
        let wrap = u64::from(self.iteration.wrap.max(1));
        let mut ks: Vec<u64> = (0..runs.min(wrap)).map(|r| (u64::from(self.iteration_current) + r) % wrap).collect();
        ks.sort_unstable();
        ks
    }

    /// The contiguous word ranges one run at iteration `k` moves, in the order it moves them
    /// (adjacent ones merged).
    pub fn word_runs(&self, k: u64) -> Vec<std::ops::Range<u64>> {
        let base = k * u64::from(self.iteration.step);
        let len = u64::from(self.length_words);
        let mut out: Vec<std::ops::Range<u64>> = Vec::new();
        let mut push = |r: std::ops::Range<u64>| match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        };
        let d0 = u64::from(self.d0.wrap);
        if d0 == 0 {
            if self.d0.step == 1 {
                push(base..base + len);
            } else {
                (0..len).for_each(|i| {
                    let o = base + self.word_offset(i);
                    push(o..o + 1)
                });
            }
            return out;
        }
        let mut i = 0;
        while i < len {
            let row = (len - i).min(d0);
            let o = base + self.word_offset(i);
            if self.d0.step == 1 {
                push(o..o + row);
            } else {
                (0..row).for_each(|j| push(o + j * u64::from(self.d0.step)..o + j * u64::from(self.d0.step) + 1));
            }
            i += row;
        }
        out
    }
}

/// How a BD was started: a write to a shim channel's task queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStart {
    /// Index of the write32 in the decoded instruction list.
    pub at: usize,
    pub direction: DmaDirection,
    pub channel: u32,
    /// The BD runs `repeat_count + 1` times.
    pub repeat_count: u32,
    pub issue_token: bool,
}

/// One use of a runtime-sequence argument: a shim BD whose address was patched to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdAccess {
    pub arg_index: u32,
    /// Index of the address patch in the decoded instruction list.
    pub patch_at: usize,
    pub column: u32,
    pub bd_id: u32,
    /// None: the BD was patched but never started.
    pub start: Option<QueueStart>,
    /// The patch's byte offset into the argument.
    pub offset: u64,
    pub bd: ShimBd,
    /// Bytes one run moves.
    pub bytes_per_run: u64,
    /// The bytes of the argument the BD touches over all its runs: from its first byte to one
    /// past its last (empty for a zero-length BD).
    pub range: std::ops::Range<u64>,
}

impl BdAccess {
    pub fn direction(&self) -> Option<DmaDirection> {
        self.start.map(|s| s.direction)
    }
    fn runs(&self) -> u64 {
        self.start.map_or(u64::from(self.bd.iteration.wrap), |s| u64::from(s.repeat_count) + 1)
    }
    /// Byte ranges of the argument this access touches (sorted, merged).
    pub fn byte_ranges(&self) -> Vec<std::ops::Range<u64>> {
        let mut all: Vec<std::ops::Range<u64>> = self
            .bd
            .iterations(self.runs())
            .into_iter()
            .flat_map(|k| self.bd.word_runs(k))
            .map(|r| self.offset + r.start * 4..self.offset + r.end * 4)
            .collect();
        merge_ranges(&mut all);
        all
    }
}

/// Sorts and merges overlapping or adjacent ranges in place.
pub fn merge_ranges(ranges: &mut Vec<std::ops::Range<u64>>) {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    *ranges = out;
}

/// The stream does something the contract cannot account for, or breaks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("instruction {at}: address patch of register {address:#010x} (column {col}, row {row}, register {reg:#x}), which is not a shim buffer descriptor's address word")]
    PatchTarget { at: usize, address: u32, col: u32, row: u32, reg: u32 },
    #[error("instruction {at}: starts BD {bd} of shim column {col} whose address was never patched: it would use a raw address no argument owns")]
    UnpatchedBd { at: usize, col: u32, bd: u32 },
    #[error("instruction {at}: starts BD {bd} of shim column {col} whose registers were never written")]
    UnwrittenBd { at: usize, col: u32, bd: u32 },
    #[error("the instruction stream has no header")]
    NoHeader,
    #[error("kernel '{kernel}': the instruction stream breaks the argument contract:\n  {}", .violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n  "))]
    Violations { kernel: String, violations: Vec<ContractViolation> },
}

/// One way the stream and design.json disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("the stream was built for device generation {dev_gen}, design.json says {device}")]
    WrongDevice { device: String, dev_gen: u8 },
    #[error("instruction {at}: BD {bd} of column {col} uses argument {arg_index}; design.json lists {arguments}")]
    UnknownArgument {
        at: usize,
        col: u32,
        bd: u32,
        arg_index: u32,
        arguments: usize,
    },
    #[error("argument {index} ({name}) is never moved by a started shim DMA")]
    Unused { index: usize, name: String },
    #[error("argument {index} ({name}): BD {bd} of column {col} (patched at instruction {at}) touches bytes {start}..{end}, the argument has {bytes}")]
    PastEnd {
        index: usize,
        name: String,
        at: usize,
        col: u32,
        bd: u32,
        start: u64,
        end: u64,
        bytes: usize,
    },
    #[error("argument {index} ({name}): BD {bd} of column {col} (patched at instruction {at}) starts at byte offset {offset}, not a multiple of 4")]
    Misaligned {
        index: usize,
        name: String,
        at: usize,
        col: u32,
        bd: u32,
        offset: u64,
    },
    #[error("argument {index} ({name}) is an input but BD {bd} of column {col} (started at instruction {at}) writes it")]
    WritesInput { index: usize, name: String, at: usize, col: u32, bd: u32 },
    #[error("argument {index} ({name}) is an output but no started shim DMA writes it")]
    OutputNeverWritten { index: usize, name: String },
}

fn shim_bd_base(col: u32, bd: u32) -> u32 {
    (col << COL_SHIFT) | (SHIM_BD_BASE + bd * SHIM_BD_STRIDE)
}

/// A task-queue write: (col, direction, channel) for a shim queue register.
fn shim_queue(address: u32) -> Option<(u32, DmaDirection, u32)> {
    let (col, row, reg) = split_address(address);
    if row != 0 {
        return None;
    }
    for (base, dir) in [(SHIM_S2MM_QUEUE, DmaDirection::S2mm), (SHIM_MM2S_QUEUE, DmaDirection::Mm2s)] {
        for ch in 0..SHIM_CHANNELS {
            if reg == base + 8 * ch {
                return Some((col, dir, ch));
            }
        }
    }
    None
}

/// Every use the stream makes of runtime-sequence arguments, per argument index: for each
/// started shim BD whose address was patched to an argument (each start separately, with the
/// BD's registers at that moment and its chain followed), and for each patch never started,
/// the bytes of the argument it reads or writes.
///
/// The stream is replayed on a model of the registers: write32, blockwrite and maskwrite32 set
/// them, an address patch ties a shim BD to an argument until the BD's address word is written
/// again, and a task-queue write starts a BD.
pub fn argument_uses(insts: &[Instruction]) -> Result<std::collections::BTreeMap<u32, Vec<BdAccess>>, ContractError> {
    use std::collections::{BTreeMap, HashMap};
    let mut regs: HashMap<u32, u32> = HashMap::new();
    // BD base address -> (patch instruction index, argument index, offset).
    let mut patches: HashMap<u32, (usize, u32, u32)> = HashMap::new();
    let mut started: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut uses: BTreeMap<u32, Vec<BdAccess>> = BTreeMap::new();

    let access = |regs: &HashMap<u32, u32>,
                  at_start: usize,
                  base: u32,
                  col: u32,
                  bd: u32,
                  patch: (usize, u32, u32),
                  start: Option<QueueStart>|
     -> Result<BdAccess, ContractError> {
        let mut w = [0u32; SHIM_BD_WORDS];
        for (k, slot) in w.iter_mut().enumerate() {
            *slot = *regs.get(&(base + 4 * k as u32)).ok_or(ContractError::UnwrittenBd { at: at_start, col, bd })?;
        }
        let shim = ShimBd::from_words(&w);
        let (patch_at, arg_index, offset) = patch;
        let offset = u64::from(offset);
        let runs = start.map_or(u64::from(shim.iteration.wrap), |s| u64::from(s.repeat_count) + 1);
        let range = match shim.max_word_offset() {
            None => offset..offset,
            Some(max) => {
                let k = shim.iterations(runs).last().copied().unwrap_or(0);
                offset..offset + (max + k * u64::from(shim.iteration.step) + 1) * 4
            }
        };
        Ok(BdAccess {
            arg_index,
            patch_at,
            column: col,
            bd_id: bd,
            start,
            offset,
            bd: shim,
            bytes_per_run: u64::from(shim.length_words) * 4,
            range,
        })
    };

    for (at, inst) in insts.iter().enumerate() {
        // Registers an instruction writes, for dropping patches whose address word is rewritten.
        let mut written: Vec<u32> = Vec::new();
        match inst {
            Instruction::Write32 { address, value } => {
                regs.insert(*address, *value);
                written.push(*address);
                if let Some((col, direction, channel)) = shim_queue(*address) {
                    let start = QueueStart {
                        at,
                        direction,
                        channel,
                        repeat_count: (value >> 16) & 0xff,
                        issue_token: value >> 31 == 1,
                    };
                    let mut bd = value & 0xf;
                    let mut seen = std::collections::HashSet::new();
                    while seen.insert(bd) {
                        let base = shim_bd_base(col, bd);
                        let patch = *patches.get(&base).ok_or(ContractError::UnpatchedBd { at, col, bd })?;
                        started.insert(patch.0);
                        let a = access(&regs, at, base, col, bd, patch, Some(start))?;
                        let next = a.bd.next_bd;
                        uses.entry(a.arg_index).or_default().push(a);
                        match next {
                            Some(n) => bd = n,
                            None => break,
                        }
                    }
                }
            }
            Instruction::MaskWrite32 { address, value, mask } => {
                let old = regs.get(address).copied().unwrap_or(0);
                regs.insert(*address, (old & !mask) | (value & mask));
                written.push(*address);
            }
            Instruction::BlockWrite { address, data, .. } => {
                for (k, v) in data.iter().enumerate() {
                    let a = address.wrapping_add(4 * k as u32);
                    regs.insert(a, *v);
                    written.push(a);
                }
            }
            Instruction::AddressPatch {
                address, arg_index, offset, ..
            } => {
                let (col, row, reg) = split_address(*address);
                let in_bds = (SHIM_BD_BASE..SHIM_BD_BASE + SHIM_BDS * SHIM_BD_STRIDE).contains(&reg);
                if row != 0 || !in_bds || (reg - SHIM_BD_BASE) % SHIM_BD_STRIDE != SHIM_BD_ADDRESS_WORD {
                    return Err(ContractError::PatchTarget {
                        at,
                        address: *address,
                        col,
                        row,
                        reg,
                    });
                }
                patches.insert(address - SHIM_BD_ADDRESS_WORD, (at, *arg_index, *offset));
                continue;
            }
            _ => {}
        }
        for a in written {
            if let Some(base) = a.checked_sub(SHIM_BD_ADDRESS_WORD) {
                patches.remove(&base);
            }
        }
    }
    // Patches never started still name an argument: report them with the BD as it stands.
    let mut unstarted: Vec<(u32, (usize, u32, u32))> = patches.into_iter().filter(|(_, p)| !started.contains(&p.0)).collect();
    unstarted.sort_by_key(|(_, p)| p.0);
    for (base, patch) in unstarted {
        let (col, _, reg) = split_address(base);
        let bd = (reg - SHIM_BD_BASE) / SHIM_BD_STRIDE;
        let a = access(&regs, patch.0, base, col, bd, patch, None)?;
        uses.entry(a.arg_index).or_default().push(a);
    }
    Ok(uses)
}

/// Checks the contract the NPU backend relies on when it passes one buffer per design.json
/// argument, in order: the stream is for the design's device; every argument is moved by a
/// started shim DMA and no other index is used; no BD reaches past its argument's size (dtype
/// size x shape product) or starts at an offset the shim cannot address (not a multiple of 4);
/// inputs are only read and every output is written.
pub fn check_contract(design: &DesignJson, insts: &[Instruction]) -> Result<(), ContractError> {
    let Some(Instruction::Header { dev_gen, .. }) = insts.first() else {
        return Err(ContractError::NoHeader);
    };
    let uses = argument_uses(insts)?;
    let mut violations = Vec::new();
    if let Some(expected) = dev_gen_for_device(&design.device) {
        if expected != *dev_gen {
            violations.push(ContractViolation::WrongDevice {
                device: design.device.clone(),
                dev_gen: *dev_gen,
            });
        }
    }
    for (&arg_index, accesses) in &uses {
        let Some(spec) = design.arguments.get(arg_index as usize) else {
            for a in accesses {
                violations.push(ContractViolation::UnknownArgument {
                    at: a.patch_at,
                    col: a.column,
                    bd: a.bd_id,
                    arg_index,
                    arguments: design.arguments.len(),
                });
            }
            continue;
        };
        let (index, name) = (arg_index as usize, spec.name.clone());
        for a in accesses {
            if a.offset % 4 != 0 {
                violations.push(ContractViolation::Misaligned {
                    index,
                    name: name.clone(),
                    at: a.patch_at,
                    col: a.column,
                    bd: a.bd_id,
                    offset: a.offset,
                });
            }
            if a.range.end > spec.bytes() as u64 {
                violations.push(ContractViolation::PastEnd {
                    index,
                    name: name.clone(),
                    at: a.patch_at,
                    col: a.column,
                    bd: a.bd_id,
                    start: a.range.start,
                    end: a.range.end,
                    bytes: spec.bytes(),
                });
            }
            if let (ArgDirection::In, Some(s)) = (spec.direction, a.start) {
                if s.direction == DmaDirection::S2mm {
                    violations.push(ContractViolation::WritesInput {
                        index,
                        name: name.clone(),
                        at: s.at,
                        col: a.column,
                        bd: a.bd_id,
                    });
                }
            }
        }
    }
    for (index, spec) in design.arguments.iter().enumerate() {
        let accesses = uses.get(&(index as u32)).map(Vec::as_slice).unwrap_or(&[]);
        if !accesses.iter().any(|a| a.start.is_some()) {
            violations.push(ContractViolation::Unused {
                index,
                name: spec.name.clone(),
            });
        } else if spec.direction == ArgDirection::Out && !accesses.iter().any(|a| a.direction() == Some(DmaDirection::S2mm)) {
            violations.push(ContractViolation::OutputNeverWritten {
                index,
                name: spec.name.clone(),
            });
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ContractError::Violations {
            kernel: design.kernel.clone(),
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ArgSpec, DType, DESIGN_JSON_FORMAT};

    // Hand-made streams in the layout the table at the top of the decoder gives.
    fn write32(address: u32, value: u32) -> Vec<u32> {
        vec![OP_WRITE32, 0, address, 0, value, 24]
    }
    fn maskwrite32(address: u32, value: u32, mask: u32) -> Vec<u32> {
        vec![OP_MASKWRITE32, 0, address, 0, value, mask, 28]
    }
    fn blockwrite(address: u32, data: &[u32]) -> Vec<u32> {
        let mut w = vec![OP_BLOCKWRITE, 0, address, (4 + data.len() as u32) * 4];
        w.extend_from_slice(data);
        w
    }
    fn patch(address: u32, arg: u32, offset: u32) -> Vec<u32> {
        vec![OP_ADDRESS_PATCH, 48, 0, 0, 0, 0, address, 0, arg, 0, offset, 0]
    }
    fn sync(col: u32, channel: u32) -> Vec<u32> {
        vec![OP_SYNC, 16, col << 16, 1 << 8 | 1 << 16 | channel << 24]
    }
    /// A stream for `dev_gen` (4 columns, 6 rows, 1 mem-tile row) holding `ops`.
    fn stream(dev_gen: u32, ops: &[Vec<u32>]) -> Vec<u32> {
        let body: Vec<u32> = ops.concat();
        let size = ((HEADER_WORDS + body.len()) * 4) as u32;
        let mut w = vec![6 << 24 | dev_gen << 16 | 1 << 8, 1 << 8 | 4, ops.len() as u32, size];
        w.extend(body);
        w
    }

    /// The 8 words mlir-aie writes for a shim BD: `len` words, d0/d1 (wrap, step), d2 step,
    /// iteration (wrap, step); steps are real steps (the register holds step - 1).
    fn bd_words(len: u32, d0: (u32, u32), d1: (u32, u32), d2_step: u32, iter: (u32, u32)) -> Vec<u32> {
        let f = |(wrap, step): (u32, u32)| wrap << 20 | step.saturating_sub(1);
        vec![
            len,
            0,
            0,
            f(d0),
            2 << 30 | f(d1),
            2 << 24 | d2_step.saturating_sub(1),
            iter.0.saturating_sub(1) << 20 | iter.1.saturating_sub(1),
            1 << 25,
        ]
    }
    fn bd_addr(col: u32, bd: u32) -> u32 {
        col << 25 | (SHIM_BD_BASE + bd * SHIM_BD_STRIDE)
    }
    fn queue(col: u32, direction: DmaDirection, channel: u32, bd: u32, repeat: u32) -> Vec<u32> {
        let (reg, token) = match direction {
            DmaDirection::S2mm => (SHIM_S2MM_QUEUE, 1 << 31),
            DmaDirection::Mm2s => (SHIM_MM2S_QUEUE, 0),
        };
        write32(col << 25 | (reg + 8 * channel), token | repeat << 16 | bd)
    }
    /// One `dma_memcpy_nd` the way mlir-aie lowers it.
    fn dma(col: u32, bd: u32, arg: u32, offset: u32, (dir, ch, repeat): (DmaDirection, u32, u32), words: Vec<u32>) -> Vec<Vec<u32>> {
        let mut ops = vec![blockwrite(bd_addr(col, bd), &words), patch(bd_addr(col, bd) + 4, arg, offset)];
        if dir == DmaDirection::S2mm {
            ops.push(maskwrite32(col << 25 | 0x1D200, 0xF00, 0x1F00));
        }
        ops.push(queue(col, dir, ch, bd, repeat));
        ops
    }

    fn arg(name: &str, dtype: DType, shape: &[usize], direction: ArgDirection) -> ArgSpec {
        ArgSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            direction,
        }
    }
    fn design(device: &str, args: Vec<ArgSpec>) -> DesignJson {
        DesignJson {
            format: DESIGN_JSON_FORMAT,
            kernel: "k".into(),
            device: device.into(),
            source: None,
            arguments: args,
            tiles: vec![],
            estimate: None,
        }
    }

    /// A 64x64 i8 input A read as two 32-row halves by two columns (d0: 16 words of a row, d1:
    /// 32 rows), B read whole and linearly, twice (repeat, no iteration step), and a 64x64 i32
    /// output written in two halves with an iteration step. Arguments: A, B, C.
    fn small_matmul() -> (DesignJson, Vec<u32>) {
        use DmaDirection::*;
        let a = bd_words(512, (16, 1), (32, 16), 512, (1, 1));
        let b = bd_words(1024, (0, 1), (0, 1), 1, (1, 1));
        let c = bd_words(2048, (64, 1), (32, 64), 2048, (2, 2048));
        let mut ops = Vec::new();
        ops.extend(dma(0, 0, 2, 0, (S2mm, 0, 1), c));
        ops.extend(dma(0, 1, 0, 0, (Mm2s, 0, 0), a.clone()));
        ops.extend(dma(1, 1, 0, 2048, (Mm2s, 0, 0), a));
        ops.extend(dma(0, 2, 1, 0, (Mm2s, 1, 1), b));
        ops.push(sync(0, 0));
        let d = design(
            "npu1",
            vec![
                arg("A", DType::I8, &[64, 64], ArgDirection::In),
                arg("B", DType::I8, &[64, 64], ArgDirection::In),
                arg("C", DType::I32, &[64, 64], ArgDirection::Out),
            ],
        );
        (d, stream(3, &ops))
    }

    #[test]
    fn decodes_every_operation() {
        let words = stream(
            4,
            &[
                write32(0x0201_D214, 0x1_0001),
                blockwrite(0x0201_D020, &[7, 8, 9]),
                maskwrite32(0x1D200, 0xF00, 0x1F00),
                sync(3, 1),
                patch(0x1D004, 2, 256),
                vec![OP_LOADPDI | 5 << 16, 4096, 0x2000, 0x1],
                vec![OP_PREEMPT | 2 << 8],
            ],
        );
        let got = decode(&words).unwrap();
        assert_eq!(
            got,
            vec![
                Instruction::Header {
                    major: 0,
                    minor: 1,
                    dev_gen: 4,
                    rows: 6,
                    columns: 4,
                    mem_tile_rows: 1,
                    op_count: 7,
                    size_bytes: words.len() as u32 * 4,
                },
                Instruction::Write32 {
                    address: 0x0201_D214,
                    value: 0x1_0001
                },
                Instruction::BlockWrite {
                    address: 0x0201_D020,
                    col: 0,
                    row: 0,
                    data: vec![7, 8, 9]
                },
                Instruction::MaskWrite32 {
                    address: 0x1D200,
                    value: 0xF00,
                    mask: 0x1F00
                },
                Instruction::Sync {
                    direction: 0,
                    row: 0,
                    column: 3,
                    row_num: 1,
                    column_num: 1,
                    channel: 1
                },
                Instruction::AddressPatch {
                    address: 0x1D004,
                    arg_index: 2,
                    offset: 256,
                    action: 0
                },
                Instruction::LoadPdi {
                    id: 5,
                    size: 4096,
                    address: 0x1_0000_2000
                },
                Instruction::Preempt { level: 2 },
            ]
        );
        // An empty sequence is just the header.
        assert_eq!(decode(&stream(3, &[])).unwrap().len(), 1);
    }

    #[test]
    fn malformed_streams_are_errors_naming_the_word() {
        use InstsError::*;
        let ok = stream(3, &[write32(1, 2), patch(0x1D004, 0, 0)]);
        assert!(matches!(decode(&[]), Err(TruncatedHeader { len: 0 })));
        assert!(matches!(decode(&ok[..3]), Err(TruncatedHeader { len: 3 })));
        // Cut off: the header's size no longer matches.
        assert!(matches!(decode(&ok[..ok.len() - 1]), Err(SizeMismatch { .. })));
        // Cut off with the size fixed up: the patch is truncated.
        let mut cut = ok[..ok.len() - 1].to_vec();
        cut[3] = cut.len() as u32 * 4;
        let e = decode(&cut).unwrap_err();
        assert!(matches!(
            e,
            Truncated {
                index: 10,
                op: "address_patch",
                needed: 12,
                available: 11
            }
        ));
        assert_eq!(e.to_string(), "word 10: address_patch needs 12 words, only 11 remain");
        // Wrong operation count.
        let mut count = ok.clone();
        count[2] = 3;
        assert!(matches!(decode(&count), Err(CountMismatch { header: 3, actual: 2 })));
        // Unknown opcode, named with its word.
        let bad = stream(3, &[write32(1, 2), vec![0x42, 0, 0]]);
        let e = decode(&bad).unwrap_err();
        assert!(matches!(
            e,
            UnknownOpcode {
                index: 10,
                opcode: 0x42,
                word: 0x42
            }
        ));
        assert!(e.to_string().contains("word 10: unknown opcode 66"), "{e}");
        // A fixed-size operation whose size word is wrong.
        let mut w = write32(1, 2);
        w[5] = 20;
        assert!(matches!(
            decode(&stream(3, &[w])),
            Err(BadOpSize {
                index: 4,
                op: "write32",
                size: 20,
                ..
            })
        ));
        // Block writes whose size is too small, ragged, or past the end.
        for size in [0, 12, 18, 4000] {
            let w = vec![OP_BLOCKWRITE, 0, 0, size, 1, 2];
            let e = decode(&stream(3, &[w])).unwrap_err();
            assert!(
                matches!(e, BadOpSize { op: "blockwrite", .. } | Truncated { op: "blockwrite", .. }),
                "{size}: {e:?}"
            );
        }
        // Decode errors reach the backend's error type naming insts.bin.
        let r: RuntimeError = decode(&bad).unwrap_err().into();
        assert!(r.to_string().starts_with("insts.bin: word 10"), "{r}");
    }

    #[test]
    fn never_panics_on_garbage_or_any_prefix() {
        let (_, good) = small_matmul();
        for n in 0..=good.len() {
            let _ = decode(&good[..n]);
            // With the header's size made to agree, every op boundary is reached.
            let mut w = good[..n].to_vec();
            if w.len() >= 4 {
                w[3] = (n * 4) as u32;
                if let Ok(insts) = decode(&w) {
                    let _ = argument_uses(&insts);
                }
            }
        }
        // xorshift: garbage after a plausible header, opcodes biased to the known ones.
        let mut x: u32 = 0x9E37_79B9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..2000 {
            let n = (next() % 64) as usize;
            let mut w: Vec<u32> = (0..n)
                .map(|_| {
                    let r = next();
                    match r % 4 {
                        0 => [0, 1, 3, 6, 8, 128, 129][(r >> 8) as usize % 7],
                        1 => r % 64,
                        _ => r,
                    }
                })
                .collect();
            if w.len() >= 4 && next() % 2 == 0 {
                w[3] = (w.len() * 4) as u32;
            }
            if let Ok(insts) = decode(&w) {
                let _ = argument_uses(&insts);
                let _ = check_contract(&small_matmul().0, &insts);
            }
        }
    }

    #[test]
    fn argument_uses_follow_patches_and_queue_writes() {
        let (d, words) = small_matmul();
        let insts = decode(&words).unwrap();
        let uses = argument_uses(&insts).unwrap();
        assert_eq!(uses.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        let a = &uses[&0];
        assert_eq!(a.len(), 2);
        // 32 rows of 64 bytes, rows 64 bytes apart: rows 0..32 and 32..64.
        assert_eq!((a[0].column, a[0].bd_id, a[0].direction()), (0, 1, Some(DmaDirection::Mm2s)));
        assert_eq!(a[0].range, 0..2048);
        assert_eq!(a[1].range, 2048..4096);
        assert_eq!(a[0].byte_ranges(), vec![0..2048]);
        assert_eq!(a[0].bytes_per_run, 2048);
        // B: linear, repeated once: the same 4096 bytes twice.
        let b = &uses[&1][0];
        assert_eq!((b.range.clone(), b.start.unwrap().repeat_count, b.start.unwrap().channel), (0..4096, 1, 1));
        // C: 32 rows of 64 words with a row step of 64 words, two iterations 2048 words apart.
        let c = &uses[&2][0];
        let s = c.start.unwrap();
        assert_eq!((s.direction, s.issue_token, s.repeat_count), (DmaDirection::S2mm, true, 1));
        assert_eq!(c.range, 0..16384);
        assert_eq!(c.byte_ranges(), vec![0..16384]);
        check_contract(&d, &insts).unwrap();
        kernel_call(&d, words.len()).unwrap();
    }

    #[test]
    fn a_bd_is_read_when_it_is_started_and_a_rewrite_drops_the_patch() {
        use DmaDirection::*;
        let bd = bd_words(16, (0, 1), (0, 1), 1, (1, 1));
        let longer = bd_words(64, (0, 1), (0, 1), 1, (1, 1));
        // Patched, then the length grows before the start: the start sees 256 bytes.
        let words = stream(
            3,
            &[
                blockwrite(bd_addr(0, 3), &bd),
                patch(bd_addr(0, 3) + 4, 0, 0),
                write32(bd_addr(0, 3), 64),
                queue(0, Mm2s, 0, 3, 0),
            ],
        );
        let uses = argument_uses(&decode(&words).unwrap()).unwrap();
        assert_eq!(uses[&0][0].range, 0..256);
        // The address word rewritten after the patch: the start has no argument.
        let words = stream(
            3,
            &[
                blockwrite(bd_addr(0, 3), &bd),
                patch(bd_addr(0, 3) + 4, 0, 0),
                blockwrite(bd_addr(0, 3), &longer),
                queue(0, Mm2s, 0, 3, 0),
            ],
        );
        let e = argument_uses(&decode(&words).unwrap()).unwrap_err();
        assert_eq!(e, ContractError::UnpatchedBd { at: 4, col: 0, bd: 3 });
        // Started without ever being written.
        let words = stream(3, &[patch(bd_addr(2, 5) + 4, 0, 0), queue(2, Mm2s, 1, 5, 0)]);
        assert_eq!(
            argument_uses(&decode(&words).unwrap()).unwrap_err(),
            ContractError::UnwrittenBd { at: 2, col: 2, bd: 5 }
        );
        // A patch of something that is not a shim BD's address word.
        for address in [bd_addr(0, 0), bd_addr(0, 0) + 8, 2 << 20 | 0x1D004, bd_addr(0, 16) + 4] {
            let words = stream(3, &[patch(address, 0, 0)]);
            assert!(
                matches!(argument_uses(&decode(&words).unwrap()), Err(ContractError::PatchTarget { at: 1, .. })),
                "{address:#x}"
            );
        }
        // Chained BDs: the start runs BD 0 then BD 1, each with its own patch.
        let mut first = bd.clone();
        first[7] |= 1 << 27 | 1 << 26;
        let words = stream(
            3,
            &[
                blockwrite(bd_addr(0, 0), &first),
                patch(bd_addr(0, 0) + 4, 0, 0),
                blockwrite(bd_addr(0, 1), &bd),
                patch(bd_addr(0, 1) + 4, 0, 64),
                queue(0, Mm2s, 0, 0, 0),
            ],
        );
        let uses = argument_uses(&decode(&words).unwrap()).unwrap();
        let ranges: Vec<_> = uses[&0].iter().map(|a| (a.bd_id, a.range.clone(), a.start.is_some())).collect();
        assert_eq!(ranges, vec![(0, 0..64, true), (1, 64..128, true)]);
        // A chain that loops back ends at the BD it started from.
        let mut second = bd.clone();
        second[7] |= 1 << 26;
        let words = stream(
            3,
            &[
                blockwrite(bd_addr(0, 0), &first),
                patch(bd_addr(0, 0) + 4, 0, 0),
                blockwrite(bd_addr(0, 1), &second),
                patch(bd_addr(0, 1) + 4, 0, 64),
                queue(0, Mm2s, 0, 0, 0),
            ],
        );
        assert_eq!(argument_uses(&decode(&words).unwrap()).unwrap()[&0].len(), 2);
    }

    fn violations(d: &DesignJson, words: &[u32]) -> Vec<ContractViolation> {
        match check_contract(d, &decode(words).unwrap()) {
            Err(ContractError::Violations { violations, .. }) => violations,
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn contract_violations_are_each_reported() {
        use DmaDirection::*;
        let (d, _) = small_matmul();
        let lin = |len| bd_words(len, (0, 1), (0, 1), 1, (1, 1));
        let ok_c = dma(0, 0, 2, 0, (S2mm, 0, 0), lin(4096));
        let ok_b = dma(0, 2, 1, 0, (Mm2s, 1, 0), lin(1024));
        let ok_a = dma(0, 1, 0, 0, (Mm2s, 0, 0), lin(1024));
        let build = |extra: Vec<Vec<Vec<u32>>>| stream(3, &extra.concat().into_iter().collect::<Vec<_>>());

        // Past the end: A is 4096 bytes; 4 bytes in, 1024 words reach 4100.
        let v = violations(&d, &build(vec![ok_c.clone(), ok_b.clone(), dma(0, 1, 0, 4, (Mm2s, 0, 0), lin(1024))]));
        assert!(
            matches!(
                &v[..],
                [ContractViolation::PastEnd {
                    index: 0,
                    start: 4,
                    end: 4100,
                    bytes: 4096,
                    ..
                }]
            ),
            "{v:?}"
        );
        assert!(v[0].to_string().contains("argument 0 (A)"), "{}", v[0]);
        // Past the end through the iteration dimension only.
        let iter = bd_words(512, (0, 1), (0, 1), 1, (2, 512));
        let v = violations(&d, &build(vec![ok_c.clone(), ok_b.clone(), dma(0, 1, 0, 2048, (Mm2s, 0, 1), iter)]));
        assert!(matches!(&v[..], [ContractViolation::PastEnd { end: 6144, .. }]), "{v:?}");
        // Misaligned offset (and therefore past the end too).
        let v = violations(&d, &build(vec![ok_c.clone(), ok_b.clone(), dma(0, 1, 0, 2, (Mm2s, 0, 0), lin(16))]));
        assert!(matches!(&v[..], [ContractViolation::Misaligned { offset: 2, .. }]), "{v:?}");
        // An index beyond design.json's arguments, and A never used.
        let v = violations(&d, &build(vec![ok_c.clone(), ok_b.clone(), dma(0, 1, 3, 0, (Mm2s, 0, 0), lin(16))]));
        assert!(
            matches!(
                &v[..],
                [
                    ContractViolation::UnknownArgument {
                        arg_index: 3,
                        arguments: 3,
                        ..
                    },
                    ContractViolation::Unused { index: 0, .. }
                ]
            ),
            "{v:?}"
        );
        // Patched but never started does not count as used.
        let patched_only = vec![blockwrite(bd_addr(0, 1), &lin(16)), patch(bd_addr(0, 1) + 4, 0, 0)];
        let v = violations(&d, &build(vec![ok_c.clone(), ok_b.clone(), patched_only]));
        assert!(matches!(&v[..], [ContractViolation::Unused { index: 0, .. }]), "{v:?}");
        // An input written, an output only read.
        let v = violations(
            &d,
            &build(vec![
                dma(0, 0, 2, 0, (Mm2s, 0, 0), lin(16)),
                ok_b.clone(),
                dma(0, 1, 0, 0, (S2mm, 1, 0), lin(16)),
            ]),
        );
        assert!(
            matches!(
                &v[..],
                [
                    ContractViolation::WritesInput { index: 0, .. },
                    ContractViolation::OutputNeverWritten { index: 2, .. }
                ]
            ),
            "{v:?}"
        );
        // A stream for the other device.
        let v = violations(&d, &stream(4, &[ok_c.clone(), ok_b.clone(), ok_a.clone()].concat()));
        assert!(matches!(&v[..], [ContractViolation::WrongDevice { dev_gen: 4, .. }]), "{v:?}");
        // All fine.
        check_contract(&d, &decode(&build(vec![ok_c, ok_b, ok_a])).unwrap()).unwrap();
        // No header at all.
        assert_eq!(check_contract(&d, &[]), Err(ContractError::NoHeader));
        // The full message names the kernel and every violation, and reaches the backend's error type.
        let e = check_contract(&d, &decode(&stream(3, &[])).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 'k': the instruction stream breaks the argument contract:\n  argument 0 (A) is never moved by a started shim DMA\n  argument 1 (B) is never moved by a started shim DMA\n  argument 2 (C) is never moved by a started shim DMA"
        );
        assert!(matches!(RuntimeError::from(e), RuntimeError::Contract(_)));
    }

    #[test]
    fn largest_offset_matches_walking_every_word() {
        let mut x: u32 = 12345;
        let mut next = |m: u32| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 8) % m
        };
        for _ in 0..3000 {
            let w: [u32; SHIM_BD_WORDS] = bd_words(
                next(200),
                (next(6), next(5) + 1),
                (next(5), next(40) + 1),
                next(300) + 1,
                (next(4) + 1, next(100) + 1),
            )
            .try_into()
            .unwrap();
            let bd = ShimBd::from_words(&w);
            let walked = (0..u64::from(bd.length_words)).map(|i| bd.word_offset(i)).max();
            assert_eq!(bd.max_word_offset(), walked, "{bd:?}");
            // The runs cover exactly the words walked.
            let mut words: Vec<u64> = (0..u64::from(bd.length_words)).map(|i| bd.word_offset(i)).collect();
            words.sort_unstable();
            words.dedup();
            let mut from_runs: Vec<u64> = bd.word_runs(0).into_iter().flatten().collect();
            from_runs.sort_unstable();
            from_runs.dedup();
            assert_eq!(from_runs, words, "{bd:?}");
        }
    }
}
