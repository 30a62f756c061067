//! The one interface every way of running a design implements.

use crate::artifact::{ArgSpec, DType};
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

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid artifact: {message}")]
    BadArtifact { path: PathBuf, message: String },
    #[error("argument {index} ({name}): {message}")]
    BadArgument { index: usize, name: String, message: String },
    /// The design itself is wrong or unsupported (names the op and its line).
    #[error("{0}")]
    Design(String),
    /// Nothing can make progress; the message lists every blocked core/DMA.
    #[error("deadlock: {0}")]
    Deadlock(String),
    #[error("XRT not available: {0}")]
    XrtUnavailable(String),
    #[error("NPU: {0}")]
    Npu(String),
    #[error("{0}")]
    Other(String),
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
