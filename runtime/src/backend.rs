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
}
