//! Running a built design on a Ryzen AI NPU through XRT (the in-tree `xrt-sys` binding).
//!
//! The artifact directory must hold `design.json`, `final.xclbin` and `insts.bin` (`aiec build`).
//! One run: load the xclbin once per directory (register it, open a hardware context, find the
//! `MLIR_AIE` kernel), put the instruction stream in a cacheable buffer, one host-only buffer per
//! runtime-sequence argument, copy the inputs in, run, wait, copy the outputs back.
//!
//! [`RunReport::prepare`] is the xclbin load (zero when the design was already loaded);
//! [`RunReport::run`] is from the first copy to the device to the last copy back.

use crate::artifact::{ArgDirection, ArgSpec, ArtifactDir, DesignJson};
use crate::backend::{check_args, ArgData, Backend, HostBuffer, LoadedKernel, ResidentId, RunReport, RuntimeError};
use crate::insts::{self, KernelCall, ARG_INSTRUCTIONS, ARG_INSTRUCTION_COUNT, ARG_OPCODE};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The binding, for callers that want XRT facts (compiled in? which version?).
pub use xrt_sys as xrt;

/// mlir-aie names the NPU kernel in the xclbin `MLIR_AIE` (possibly with a suffix).
pub const KERNEL_PREFIX: &str = "MLIR_AIE";

/// The device node the amdxdna driver creates for the NPU.
pub const ACCEL_NODE: &str = "/dev/accel/accel0";

/// How long a run may take before it is reported as hung rather than waited on forever.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What failed on the NPU: the XRT step and XRT's own error, or why the design cannot be called there.
#[derive(Debug, thiserror::Error)]
pub enum NpuError {
    /// The amdxdna driver's device node is missing.
    #[error(
        "no NPU: {} does not exist (on a Ryzen AI machine load the amdxdna driver: `sudo modprobe amdxdna`; see `aiec doctor`)",
        node.display()
    )]
    NoDevice {
        /// The device node looked for.
        node: PathBuf,
    },
    /// Opening the XRT device failed.
    #[error("opening XRT device {index}: {source}")]
    OpenDevice {
        /// The device index.
        index: u32,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Loading the xclbin file failed.
    #[error("loading {}: {source}", xclbin.display())]
    LoadXclbin {
        /// The xclbin file.
        xclbin: PathBuf,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Registering the xclbin with the device failed.
    #[error("registering {}: {source}", xclbin.display())]
    RegisterXclbin {
        /// The xclbin file.
        xclbin: PathBuf,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Creating the hardware context for the xclbin failed.
    #[error("creating a hardware context for {}: {source}", xclbin.display())]
    HwContext {
        /// The xclbin file.
        xclbin: PathBuf,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Finding or opening the `MLIR_AIE` kernel in the xclbin failed.
    #[error("finding the kernel in {}: {source}", xclbin.display())]
    Kernel {
        /// The xclbin file.
        xclbin: PathBuf,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Asking the kernel for a buffer's memory group failed.
    #[error("memory group of {buffer}: {source}")]
    MemoryGroup {
        /// The buffer.
        buffer: NpuBuffer,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Allocating a buffer object failed.
    #[error("allocating {buffer} ({bytes} bytes): {source}")]
    AllocateBo {
        /// The buffer.
        buffer: NpuBuffer,
        /// Its size.
        bytes: usize,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Copying host data into a buffer object failed.
    #[error("writing {buffer}: {source}")]
    WriteBo {
        /// The buffer.
        buffer: NpuBuffer,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Syncing a buffer object to or from the device failed.
    #[error("syncing {buffer} {}: {source}", if *direction == xrt::SyncDirection::ToDevice { "to the device" } else { "from the device" })]
    SyncBo {
        /// The buffer.
        buffer: NpuBuffer,
        /// Which way.
        direction: xrt::SyncDirection,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Copying a buffer object's contents to the host failed.
    #[error("reading {buffer}: {source}")]
    ReadBo {
        /// The buffer.
        buffer: NpuBuffer,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Creating a run of the kernel failed.
    #[error("creating a run of kernel '{kernel}': {source}")]
    CreateRun {
        /// The kernel's name in design.json.
        kernel: String,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Setting one argument of the run failed.
    #[error("setting kernel argument {index} ({what}): {source}")]
    SetArgument {
        /// The kernel argument index (see [`insts`]).
        index: u32,
        /// The opcode, the instructions, their count, or the name of a runtime-sequence argument.
        what: String,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// Starting the run failed.
    #[error("starting kernel '{kernel}': {source}")]
    Start {
        /// The kernel's name in design.json.
        kernel: String,
        /// XRT's error.
        #[source]
        source: xrt::XrtError,
    },
    /// The run did not complete: its XRT command state, or a timeout after [`RUN_TIMEOUT`].
    #[error("running kernel '{kernel}': {source}")]
    Run {
        /// The kernel's name in design.json.
        kernel: String,
        /// XRT's error, with the run's state.
        #[source]
        source: xrt::XrtError,
    },
    /// The design has no runtime-sequence arguments: the kernel has nothing to work on.
    #[error("kernel '{kernel}' has no runtime-sequence arguments: nothing to run on the NPU")]
    NoArguments {
        /// The kernel's name in design.json.
        kernel: String,
    },
    /// The design has more runtime-sequence arguments than the kernel interface has buffers.
    #[error(
        "kernel '{kernel}' has {count} runtime-sequence arguments; the NPU kernel interface takes at most {}",
        insts::MAX_BUFFER_ARGS
    )]
    TooManyArguments {
        /// The kernel's name in design.json.
        kernel: String,
        /// How many it has.
        count: usize,
    },
    /// The instruction stream is empty or too long for the kernel's 32-bit word count.
    #[error("instruction word count {words} does not fit the kernel's 32-bit argument or is zero")]
    InstructionCount {
        /// The number of words in `insts.bin`.
        words: usize,
    },
}

/// A buffer object of a kernel call, as named in [`NpuError`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpuBuffer {
    /// The instruction stream (kernel argument [`ARG_INSTRUCTIONS`]).
    Instructions,
    /// The buffer of a runtime-sequence argument.
    Argument {
        /// Its position in the runtime sequence.
        index: usize,
        /// Its name.
        name: String,
    },
    /// A constant stored for a runtime-sequence argument ([`LoadedKernel::keep`]).
    Stored {
        /// The argument's position in the runtime sequence.
        index: usize,
        /// Its name.
        name: String,
    },
}

impl std::fmt::Display for NpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NpuBuffer::Instructions => write!(f, "the instruction buffer"),
            NpuBuffer::Argument { index, name } => write!(f, "the buffer of argument {index} ({name})"),
            NpuBuffer::Stored { index, name } => write!(f, "the stored constant for argument {index} ({name})"),
        }
    }
}

impl NpuBuffer {
    fn argument(b: &insts::BufferArg) -> NpuBuffer {
        NpuBuffer::Argument {
            index: b.sequence_index,
            name: b.name.clone(),
        }
    }
}

/// XRT calls whose errors become [`RuntimeError`]s.
trait OrNpu<T> {
    /// A missing XRT is [`RuntimeError::XrtUnavailable`] whatever the step; any other error is the
    /// step's [`NpuError`].
    fn or_npu(self, step: impl FnOnce(xrt::XrtError) -> NpuError) -> Result<T, RuntimeError>;
}

impl<T> OrNpu<T> for Result<T, xrt::XrtError> {
    fn or_npu(self, step: impl FnOnce(xrt::XrtError) -> NpuError) -> Result<T, RuntimeError> {
        self.map_err(|e| match e {
            xrt::XrtError::Unavailable(msg) => RuntimeError::XrtUnavailable(msg.strip_prefix("XRT not available: ").unwrap_or(&msg).to_string()),
            other => RuntimeError::Npu(step(other)),
        })
    }
}

fn open_device() -> Result<xrt::Device, RuntimeError> {
    xrt::Device::open(0).or_npu(|source| NpuError::OpenDevice { index: 0, source })
}

/// Loads and registers the xclbin at `path` on `device`, opens a hardware context and finds the kernel.
fn open_xclbin(device: &xrt::Device, path: &Path) -> Result<(xrt::Xclbin, xrt::HwContext, xrt::Kernel), RuntimeError> {
    let xclbin = xrt::Xclbin::load(path).or_npu(|source| NpuError::LoadXclbin {
        xclbin: path.to_path_buf(),
        source,
    })?;
    device.register_xclbin(&xclbin).or_npu(|source| NpuError::RegisterXclbin {
        xclbin: path.to_path_buf(),
        source,
    })?;
    let ctx = xrt::HwContext::new(device, &xclbin).or_npu(|source| NpuError::HwContext {
        xclbin: path.to_path_buf(),
        source,
    })?;
    let kernel = xrt::Kernel::find(&ctx, &xclbin, KERNEL_PREFIX).or_npu(|source| NpuError::Kernel {
        xclbin: path.to_path_buf(),
        source,
    })?;
    Ok((xclbin, ctx, kernel))
}

/// A buffer object of `bytes` bytes in the memory group of `kernel`'s argument `kernel_arg`.
fn new_bo(device: &xrt::Device, kernel: &xrt::Kernel, kernel_arg: u32, flags: xrt::BoFlags, buffer: &NpuBuffer, bytes: usize) -> Result<xrt::Bo, RuntimeError> {
    let group = kernel.group_id(kernel_arg).or_npu(|source| NpuError::MemoryGroup {
        buffer: buffer.clone(),
        source,
    })?;
    xrt::Bo::new(device, bytes, flags, group).or_npu(|source| NpuError::AllocateBo {
        buffer: buffer.clone(),
        bytes,
        source,
    })
}

fn write_bo(bo: &mut xrt::Bo, data: &[u8], buffer: impl FnOnce() -> NpuBuffer) -> Result<(), RuntimeError> {
    bo.write(data, 0).or_npu(|source| NpuError::WriteBo { buffer: buffer(), source })
}

fn sync_bo(bo: &mut xrt::Bo, direction: xrt::SyncDirection, buffer: impl FnOnce() -> NpuBuffer) -> Result<(), RuntimeError> {
    bo.sync(direction).or_npu(|source| NpuError::SyncBo {
        buffer: buffer(),
        direction,
        source,
    })
}

fn read_bo(bo: &xrt::Bo, out: &mut [u8], buffer: impl FnOnce() -> NpuBuffer) -> Result<(), RuntimeError> {
    bo.read(out, 0).or_npu(|source| NpuError::ReadBo { buffer: buffer(), source })
}

/// Runs `kernel` once with the instruction buffer and one buffer object per argument (`bos`, in
/// `call.buffers` order), waiting at most [`RUN_TIMEOUT`].
fn run_kernel(kernel: &xrt::Kernel, name: &str, call: &KernelCall, instr_bo: &xrt::Bo, bos: &[&xrt::Bo]) -> Result<(), RuntimeError> {
    let set = |index: u32, what: &str| {
        let what = what.to_string();
        move |source| NpuError::SetArgument { index, what, source }
    };
    let mut run = xrt::Run::new(kernel).or_npu(|source| NpuError::CreateRun {
        kernel: name.to_string(),
        source,
    })?;
    run.set_arg_u64(ARG_OPCODE, call.opcode).or_npu(set(ARG_OPCODE, "opcode"))?;
    run.set_arg_bo(ARG_INSTRUCTIONS, instr_bo).or_npu(set(ARG_INSTRUCTIONS, "instructions"))?;
    run.set_arg_u32(ARG_INSTRUCTION_COUNT, call.instruction_words)
        .or_npu(set(ARG_INSTRUCTION_COUNT, "instruction count"))?;
    for (b, bo) in call.buffers.iter().zip(bos) {
        run.set_arg_bo(b.kernel_arg, bo).or_npu(set(b.kernel_arg, &b.name))?;
    }
    run.start().or_npu(|source| NpuError::Start {
        kernel: name.to_string(),
        source,
    })?;
    run.wait(Some(RUN_TIMEOUT)).or_npu(|source| NpuError::Run {
        kernel: name.to_string(),
        source,
    })
}

/// What a run needs from the artifact directory, read and checked before XRT is touched.
#[derive(Debug, Clone)]
pub struct NpuArtifact {
    pub dir: PathBuf,
    pub design: DesignJson,
    pub xclbin: PathBuf,
    pub insts: Vec<u32>,
    pub call: KernelCall,
}

impl NpuArtifact {
    pub fn load(dir: &Path) -> Result<NpuArtifact, RuntimeError> {
        let art = ArtifactDir::new(dir);
        let design = DesignJson::read(&art.json())?;
        for (path, what) in [(art.xclbin(), "final.xclbin"), (art.insts(), "insts.bin")] {
            if !path.is_file() {
                return Err(RuntimeError::BadArtifact {
                    path: path.clone(),
                    message: format!("no {what}: build the design for the NPU first (`aiec build {}`)", art.mlir().display()),
                });
            }
        }
        let insts = insts::read_insts(&art.insts())?;
        let call = insts::kernel_call(&design, insts.len())?;
        Ok(NpuArtifact {
            dir: dir.to_path_buf(),
            design,
            xclbin: art.xclbin(),
            insts,
            call,
        })
    }
}

/// The xclbin currently loaded, kept across runs of the same design.
struct Loaded {
    xclbin_path: PathBuf,
    modified: Option<SystemTime>,
    kernel: xrt::Kernel,
    // Kept alive for the kernel: dropped after it (fields drop in order).
    _ctx: xrt::HwContext,
    _xclbin: xrt::Xclbin,
}

/// The NPU backend: XRT device 0.
pub struct NpuBackend {
    loaded: Option<Loaded>,
    device: xrt::Device,
}

impl NpuBackend {
    /// Opens the NPU; fails with the reason when there is none or XRT is missing.
    pub fn new() -> Result<NpuBackend, RuntimeError> {
        Self::probe()?;
        let device = open_device()?;
        Ok(NpuBackend { loaded: None, device })
    }

    /// Whether an NPU and XRT are usable here, and if not, why (for `--backend auto`).
    pub fn probe() -> Result<(), RuntimeError> {
        Self::probe_at(Path::new(ACCEL_NODE))
    }

    /// [`NpuBackend::probe`] with the NPU's device node at `accel_node`.
    pub fn probe_at(accel_node: &Path) -> Result<(), RuntimeError> {
        if let Some(reason) = xrt::unavailable_reason() {
            return Err(RuntimeError::XrtUnavailable(
                reason.strip_prefix("XRT not available: ").unwrap_or(&reason).to_string(),
            ));
        }
        if !accel_node.exists() {
            return Err(NpuError::NoDevice {
                node: accel_node.to_path_buf(),
            }
            .into());
        }
        open_device().map(drop)
    }

    fn ensure_loaded(&mut self, xclbin_path: &Path) -> Result<Duration, RuntimeError> {
        let modified = std::fs::metadata(xclbin_path).and_then(|m| m.modified()).ok();
        if let Some(l) = &self.loaded {
            if l.xclbin_path == xclbin_path && l.modified == modified {
                return Ok(Duration::ZERO);
            }
        }
        self.loaded = None;
        let start = Instant::now();
        let (xclbin, ctx, kernel) = open_xclbin(&self.device, xclbin_path)?;
        self.loaded = Some(Loaded {
            xclbin_path: xclbin_path.to_path_buf(),
            modified,
            kernel,
            _ctx: ctx,
            _xclbin: xclbin,
        });
        Ok(start.elapsed())
    }
}

impl Backend for NpuBackend {
    fn name(&self) -> &'static str {
        "npu"
    }

    fn run(&mut self, dir: &Path, args: &mut [HostBuffer]) -> Result<RunReport, RuntimeError> {
        let artifact = NpuArtifact::load(dir)?;
        insts::check_host_buffers(&artifact.design, args)?;
        let prepare = self.ensure_loaded(&artifact.xclbin)?;
        let kernel = &self.loaded.as_ref().expect("loaded above").kernel;
        let device = &self.device;

        let instr_bytes = insts::insts_bytes(&artifact.insts);
        let mut instr_bo = new_bo(
            device,
            kernel,
            ARG_INSTRUCTIONS,
            xrt::BoFlags::Cacheable,
            &NpuBuffer::Instructions,
            instr_bytes.len(),
        )?;
        write_bo(&mut instr_bo, &instr_bytes, || NpuBuffer::Instructions)?;

        let mut bos = Vec::with_capacity(artifact.call.buffers.len());
        for b in &artifact.call.buffers {
            let mut bo = new_bo(device, kernel, b.kernel_arg, xrt::BoFlags::HostOnly, &NpuBuffer::argument(b), b.bytes)?;
            // Outputs are written too, so their initial contents are the caller's, not stale memory.
            write_bo(&mut bo, &args[b.sequence_index].bytes, || NpuBuffer::argument(b))?;
            bos.push(bo);
        }

        let start = Instant::now();
        sync_bo(&mut instr_bo, xrt::SyncDirection::ToDevice, || NpuBuffer::Instructions)?;
        for (b, bo) in artifact.call.buffers.iter().zip(&mut bos) {
            sync_bo(bo, xrt::SyncDirection::ToDevice, || NpuBuffer::argument(b))?;
        }
        run_kernel(kernel, &artifact.design.kernel, &artifact.call, &instr_bo, &bos.iter().collect::<Vec<_>>())?;
        for (b, bo) in artifact.call.buffers.iter().zip(&mut bos) {
            if b.direction == ArgDirection::Out {
                sync_bo(bo, xrt::SyncDirection::FromDevice, || NpuBuffer::argument(b))?;
                read_bo(bo, &mut args[b.sequence_index].bytes, || NpuBuffer::argument(b))?;
            }
        }
        let run_time = start.elapsed();
        Ok(RunReport {
            backend: "npu".to_string(),
            prepare,
            run: run_time,
            cores: artifact.design.tiles.iter().filter(|t| t.kind == "compute").count(),
            // The shim DMAs run inside the NPU; the host cannot count them.
            dma_transfers: 0,
        })
    }

    fn load(&mut self, dir: &Path) -> Result<Box<dyn LoadedKernel>, RuntimeError> {
        Ok(Box::new(NpuKernel::load(dir)?))
    }
}

/// A design loaded on the NPU for repeated calls: its own device handle and hardware context, the
/// instruction buffer and one buffer object per argument allocated once; stored constants
/// ([`LoadedKernel::keep`]) get a buffer object each, written and synced once.
pub struct NpuKernel {
    artifact: NpuArtifact,
    arguments: Vec<ArgSpec>,
    state: Mutex<NpuState>,
}

struct NpuState {
    /// Per runtime-sequence argument (by `call.buffers` order): the buffer used when the caller
    /// passes the data with the call.
    bos: Vec<xrt::Bo>,
    resident: Vec<xrt::Bo>,
    instr_bo: xrt::Bo,
    kernel: xrt::Kernel,
    // Dropped after the kernel and buffers (fields drop in order).
    _ctx: xrt::HwContext,
    _xclbin: xrt::Xclbin,
    device: xrt::Device,
}

// SAFETY: the XRT handles are only used with the mutex held, one thread at a time; XRT objects
// may be used from any thread.
unsafe impl Send for NpuState {}

impl NpuKernel {
    pub fn load(dir: &Path) -> Result<NpuKernel, RuntimeError> {
        let artifact = NpuArtifact::load(dir)?;
        NpuBackend::probe()?;
        let device = open_device()?;
        let (xclbin, ctx, kernel) = open_xclbin(&device, &artifact.xclbin)?;
        let instr_bytes = insts::insts_bytes(&artifact.insts);
        let mut instr_bo = new_bo(
            &device,
            &kernel,
            ARG_INSTRUCTIONS,
            xrt::BoFlags::Cacheable,
            &NpuBuffer::Instructions,
            instr_bytes.len(),
        )?;
        write_bo(&mut instr_bo, &instr_bytes, || NpuBuffer::Instructions)?;
        sync_bo(&mut instr_bo, xrt::SyncDirection::ToDevice, || NpuBuffer::Instructions)?;
        let mut bos = Vec::with_capacity(artifact.call.buffers.len());
        for b in &artifact.call.buffers {
            bos.push(new_bo(
                &device,
                &kernel,
                b.kernel_arg,
                xrt::BoFlags::HostOnly,
                &NpuBuffer::argument(b),
                b.bytes,
            )?);
        }
        let arguments = artifact.design.arguments.clone();
        Ok(NpuKernel {
            artifact,
            arguments,
            state: Mutex::new(NpuState {
                bos,
                resident: Vec::new(),
                instr_bo,
                kernel,
                _ctx: ctx,
                _xclbin: xclbin,
                device,
            }),
        })
    }
}

impl LoadedKernel for NpuKernel {
    fn arguments(&self) -> &[ArgSpec] {
        &self.arguments
    }

    fn keep(&self, argument: usize, bytes: Vec<u8>) -> Result<ResidentId, RuntimeError> {
        let b = self
            .artifact
            .call
            .buffers
            .iter()
            .find(|b| b.sequence_index == argument)
            .ok_or_else(|| RuntimeError::BadArgument {
                index: argument,
                name: String::new(),
                message: format!("the design takes {} arguments", self.arguments.len()),
            })?;
        if bytes.len() != b.bytes {
            return Err(RuntimeError::BadArgument {
                index: argument,
                name: b.name.clone(),
                message: format!("expected {} bytes, got {}", b.bytes, bytes.len()),
            });
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = NpuBuffer::Stored {
            index: argument,
            name: b.name.clone(),
        };
        let mut bo = new_bo(&st.device, &st.kernel, b.kernel_arg, xrt::BoFlags::HostOnly, &buffer, b.bytes)?;
        write_bo(&mut bo, &bytes, || buffer.clone())?;
        sync_bo(&mut bo, xrt::SyncDirection::ToDevice, || buffer.clone())?;
        st.resident.push(bo);
        Ok(ResidentId {
            argument,
            slot: st.resident.len() - 1,
        })
    }

    fn run(&self, args: &mut [ArgData<'_>]) -> Result<RunReport, RuntimeError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let sizes: Vec<usize> = st.resident.iter().map(|b| b.size()).collect();
        check_args(&self.arguments, args, |id| sizes.get(id.slot).copied())?;
        let start = Instant::now();
        for (b, bo) in self.artifact.call.buffers.iter().zip(st.bos.iter_mut()) {
            let bytes = match &args[b.sequence_index] {
                ArgData::Input(d) => &d[..],
                ArgData::Output(d) => &d[..],
                ArgData::Resident(_) => continue,
            };
            write_bo(bo, bytes, || NpuBuffer::argument(b))?;
            sync_bo(bo, xrt::SyncDirection::ToDevice, || NpuBuffer::argument(b))?;
        }
        let bos: Vec<&xrt::Bo> = self
            .artifact
            .call
            .buffers
            .iter()
            .zip(&st.bos)
            .map(|(b, bo)| match &args[b.sequence_index] {
                ArgData::Resident(id) => &st.resident[id.slot],
                _ => bo,
            })
            .collect();
        run_kernel(&st.kernel, &self.artifact.design.kernel, &self.artifact.call, &st.instr_bo, &bos)?;
        for (b, bo) in self.artifact.call.buffers.iter().zip(st.bos.iter_mut()) {
            if let ArgData::Output(out) = &mut args[b.sequence_index] {
                sync_bo(bo, xrt::SyncDirection::FromDevice, || NpuBuffer::argument(b))?;
                read_bo(bo, out, || NpuBuffer::argument(b))?;
            }
        }
        Ok(RunReport {
            backend: "npu".to_string(),
            prepare: Duration::ZERO,
            run: start.elapsed(),
            cores: self.artifact.design.tiles.iter().filter(|t| t.kind == "compute").count(),
            dma_transfers: 0,
        })
    }
}
