//! The NPU instruction stream (`insts.bin`) and how a design's arguments become XRT kernel
//! arguments.
//!
//! `insts.bin` is what aiecc writes for the runtime sequence: little-endian 32-bit words that the
//! NPU's command processor executes to configure DMAs and wait for them. The kernel mlir-aie puts
//! in the xclbin takes, in this order: the opcode (3: run an instruction stream), the instruction
//! buffer (memory group of argument 1), the number of instruction words, then one buffer per
//! runtime-sequence argument (arguments 3, 4, ... with their own memory groups), five at most.
//! The opcode is a 64-bit scalar and the word count a 32-bit one; XRT checks the sizes.

use crate::artifact::{ArgDirection, DesignJson};
use crate::backend::{HostBuffer, RuntimeError};
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
}

impl From<InstsError> for RuntimeError {
    fn from(e: InstsError) -> Self {
        match e {
            InstsError::Io { path, source } => RuntimeError::Io { path, source },
            InstsError::Empty { ref path } | InstsError::BadLength { ref path, .. } => RuntimeError::BadArtifact {
                path: path.clone(),
                message: e.to_string(),
            },
        }
    }
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
        return Err(RuntimeError::Design(format!(
            "kernel '{}' has no runtime-sequence arguments: nothing to run on the NPU",
            design.kernel
        )));
    }
    if design.arguments.len() > MAX_BUFFER_ARGS {
        return Err(RuntimeError::Design(format!(
            "kernel '{}' has {} runtime-sequence arguments; the NPU kernel interface takes at most {MAX_BUFFER_ARGS}",
            design.kernel,
            design.arguments.len()
        )));
    }
    let instruction_words = u32::try_from(instruction_words).ok().filter(|&n| n > 0).ok_or_else(|| {
        RuntimeError::Design(format!(
            "instruction word count {instruction_words} does not fit the kernel's 32-bit argument or is zero"
        ))
    })?;
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
        return Err(RuntimeError::Design(format!(
            "kernel '{}' takes {} runtime-sequence arguments, {} buffers were given",
            design.kernel,
            design.arguments.len(),
            args.len()
        )));
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
