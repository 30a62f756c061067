//! The one interface every way of running a design implements.

use crate::aie_syntax::SyntaxError;
use crate::artifact::{ArgSpec, DType};
use crate::emulator::design::DesignError;
use crate::emulator::jit::JitError;
use crate::insts::{ContractError, InstsError};
use crate::npu::NpuError;
use crate::npy::NpyError;
use std::path::PathBuf;
use std::time::Duration;

/// A host tensor: raw little-endian bytes plus its element type and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBuffer {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl HostBuffer {
    pub fn zeros(dtype: DType, shape: &[usize]) -> HostBuffer {
        let n: usize = shape.iter().product();
        HostBuffer {
            dtype,
            shape: shape.to_vec(),
            bytes: vec![0; n * dtype.size_bytes()],
        }
    }
    pub fn for_arg(arg: &ArgSpec) -> HostBuffer {
        HostBuffer::zeros(arg.dtype, &arg.shape)
    }
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a backend reports after a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub backend: String,
    /// Time spent compiling/loading before the run (JIT, xclbin load); zero when cached.
    pub prepare: Duration,
    /// Time of the run itself.
    pub run: Duration,
    pub cores: usize,
    pub dma_transfers: usize,
}

/// Why a design could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file of the artifact could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A file of the artifact is missing or malformed.
    #[error("{path}: not a valid artifact: {message}")]
    BadArtifact {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// One argument of a call does not fit the design (size, type, direction, stored constant).
    #[error("argument {index} ({name}): {message}")]
    BadArgument {
        /// Position of the argument in the runtime sequence.
        index: usize,
        /// Its name in the runtime sequence (empty when there is no such argument).
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A call passed another number of buffers than the kernel has runtime-sequence arguments.
    #[error("kernel '{kernel}' takes {expected} runtime-sequence arguments, {given} buffers were given")]
    ArgumentCount {
        /// The kernel's name in design.json.
        kernel: String,
        /// How many arguments the kernel takes.
        expected: usize,
        /// How many buffers were given.
        given: usize,
    },
    /// The design itself is wrong or unsupported: `file:line` and what is wrong, naming the op.
    #[error("{file}:{}: {}", source.line, source.message)]
    Design {
        /// The design's file name, as given by the caller.
        file: String,
        /// The line and what is wrong.
        #[source]
        source: DesignError,
    },
    /// An aie/aiex line of the design cannot be read (malformed, or not supported by the emulator).
    #[error("{file}:{}: {}", source.line(), syntax_detail(source))]
    Syntax {
        /// The design's file name, as given by the caller.
        file: String,
        /// The line and what is wrong with it.
        #[source]
        source: SyntaxError,
    },
    /// MLIR rejected the design, or JIT-compiling its cores failed: the first diagnostic.
    #[error("{file}:{}", jit_located(source))]
    Jit {
        /// The design's file name, as given by the caller.
        file: String,
        /// MLIR's diagnostic and where it points.
        #[source]
        source: JitError,
    },
    /// A core hit an error while running and the run was stopped: an out-of-bounds access, a division
    /// that would trap, a release of elements it does not hold, a lock value out of range. The message
    /// names the core and `file:line`.
    #[error("{0}")]
    Fault(String),
    /// Nothing can make progress; the message lists every blocked core/DMA.
    #[error("deadlock: {0}")]
    Deadlock(String),
    /// A core kept computing without any data movement for the emulator's stall timeout (an endless
    /// loop?); the run was stopped.
    #[error(
        "{file}: no {activity} activity for {:.0} s while {} kept running (an endless loop?); stopped waiting",
        waited.as_secs_f64(),
        cores.join(", ")
    )]
    Stalled {
        /// The design's file name, as given by the caller.
        file: String,
        /// The activity watched: object FIFO or DMA transfers, or locks and DMAs.
        activity: &'static str,
        /// How long nothing moved.
        waited: Duration,
        /// The cores still running (`core (col, row)`).
        cores: Vec<String>,
    },
    /// The emulator could not allocate a design's storage (the design is within
    /// [`crate::emulator::design::HOST_MEMORY_LIMIT`], the host has less free memory).
    #[error("the emulator cannot allocate {} of host memory", crate::emulator::design::show_bytes(*bytes as u128))]
    OutOfMemory {
        /// The size of the failed allocation.
        bytes: usize,
    },
    /// The emulator could not start the thread of a core.
    #[error("cannot start a core thread: {0}")]
    CoreThread(#[source] std::io::Error),
    /// `insts.bin` cannot be read or decoded.
    #[error("{}", insts_message(.0))]
    Insts(#[from] InstsError),
    /// The instruction stream does not move the runtime-sequence arguments as design.json says.
    #[error("insts.bin: {0}")]
    Contract(#[from] ContractError),
    /// A `.npy` file cannot be read or written, or does not hold what the design takes.
    #[error("{0}")]
    Npy(#[from] NpyError),
    /// This build or machine has no usable XRT; the message says why and how to fix it.
    #[error("XRT not available: {0}")]
    XrtUnavailable(String),
    /// The NPU or XRT failed, or the design does not fit the NPU kernel's interface.
    #[error("NPU: {0}")]
    Npu(#[from] NpuError),
}

/// A syntax error's text without its `line N: ` prefix (the file and line are put in front).
fn syntax_detail(e: &SyntaxError) -> String {
    let text = e.to_string();
    text.split_once(": ").map(|(_, d)| d.to_string()).unwrap_or(text)
}

/// `:line:col: message` after the file name, or `: message` when MLIR gave no location.
fn jit_located(e: &JitError) -> String {
    if e.line == 0 {
        format!(" {}", e.message)
    } else {
        format!("{}:{}: {}", e.line, e.col, e.message)
    }
}

/// Read errors name the file already; decoding errors get the file's name in front.
fn insts_message(e: &InstsError) -> String {
    match e {
        InstsError::Io { .. } | InstsError::Empty { .. } | InstsError::BadLength { .. } => e.to_string(),
        _ => format!("insts.bin: {e}"),
    }
}

/// A way to run a compiled design: the emulator, or the NPU through XRT.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Runs the design in artifact directory `dir` with `args` in runtime-sequence order;
    /// output arguments are overwritten in place.
    fn run(&mut self, dir: &std::path::Path, args: &mut [HostBuffer]) -> Result<RunReport, RuntimeError>;
    /// Prepares the design in `dir` once (JIT-compiled cores, or the xclbin in a hardware
    /// context) for many calls through [`LoadedKernel::run`].
    fn load(&mut self, dir: &std::path::Path) -> Result<Box<dyn LoadedKernel>, RuntimeError>;
}

/// One argument of a call to a [`LoadedKernel`], as raw little-endian bytes of exactly the
/// argument's size.
pub enum ArgData<'a> {
    /// Read by the design.
    Input(&'a [u8]),
    /// Written by the design (its previous contents may be read too).
    Output(&'a mut [u8]),
    /// Contents stored in the loaded design earlier ([`LoadedKernel::keep`]): a weight that
    /// stays on the device (or in the emulator) across calls and is not copied again.
    Resident(ResidentId),
}

impl ArgData<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            ArgData::Input(b) => b,
            ArgData::Output(b) => b,
            ArgData::Resident(_) => &[],
        }
    }
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            ArgData::Output(b) => Some(b),
            _ => None,
        }
    }
}

/// A constant operand kept by a [`LoadedKernel`] for the argument it was stored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResidentId {
    pub(crate) argument: usize,
    pub(crate) slot: usize,
}

/// A design prepared for repeated calls: loaded once, run many times with only the changing
/// arguments copied. Runs may come from several threads at once.
pub trait LoadedKernel: Send + Sync {
    /// The runtime-sequence arguments, in order.
    fn arguments(&self) -> &[ArgSpec];
    /// Stores `bytes` as a constant value of argument `argument` for later calls (weights:
    /// converted and laid out once by the caller, then passed as [`ArgData::Resident`]).
    fn keep(&self, argument: usize, bytes: Vec<u8>) -> Result<ResidentId, RuntimeError>;
    /// Runs the design once; `args` follow [`LoadedKernel::arguments`].
    fn run(&self, args: &mut [ArgData<'_>]) -> Result<RunReport, RuntimeError>;
}

/// Checks `args` against `specs` (count, byte sizes, outputs passed writable, residents stored
/// for the same argument) before a [`LoadedKernel`] touches them.
pub(crate) fn check_args(specs: &[ArgSpec], args: &[ArgData<'_>], resident_len: impl Fn(ResidentId) -> Option<usize>) -> Result<(), RuntimeError> {
    if args.len() != specs.len() {
        return Err(RuntimeError::BadArgument {
            index: args.len().min(specs.len()),
            name: specs.get(args.len()).map(|s| s.name.clone()).unwrap_or_default(),
            message: format!("the design takes {} arguments, {} given", specs.len(), args.len()),
        });
    }
    for (index, (a, spec)) in args.iter().zip(specs).enumerate() {
        let bad = |message: String| RuntimeError::BadArgument {
            index,
            name: spec.name.clone(),
            message,
        };
        let len = match a {
            ArgData::Input(b) => {
                if spec.direction == crate::artifact::ArgDirection::Out {
                    return Err(bad("an output passed as an input".into()));
                }
                b.len()
            }
            ArgData::Output(b) => b.len(),
            ArgData::Resident(id) => {
                if id.argument != index {
                    return Err(bad(format!("a constant stored for argument {} passed as argument {index}", id.argument)));
                }
                if spec.direction == crate::artifact::ArgDirection::Out {
                    return Err(bad("an output passed as a stored constant".into()));
                }
                resident_len(*id).ok_or_else(|| bad("no such stored constant in this loaded design".into()))?
            }
        };
        if len != spec.bytes() {
            return Err(bad(format!("expected {} bytes ({} {:?}), got {len}", spec.bytes(), spec.dtype, spec.shape)));
        }
    }
    Ok(())
}
