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

fn xrt_error(context: &str, e: xrt::XrtError) -> RuntimeError {
    match e {
        xrt::XrtError::Unavailable(msg) => RuntimeError::XrtUnavailable(msg.strip_prefix("XRT not available: ").unwrap_or(&msg).to_string()),
        other => RuntimeError::Npu(format!("{context}: {other}")),
    }
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
        let device = xrt::Device::open(0).map_err(|e| xrt_error("opening XRT device 0", e))?;
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
            return Err(RuntimeError::Npu(format!(
                "no NPU: {} does not exist (on a Ryzen AI machine load the amdxdna driver: `sudo modprobe amdxdna`; see `aiec doctor`)",
                accel_node.display()
            )));
        }
        xrt::Device::open(0).map(drop).map_err(|e| xrt_error("opening XRT device 0", e))
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
        let what = |step: &str| format!("{step} {}", xclbin_path.display());
        let xclbin = xrt::Xclbin::load(xclbin_path).map_err(|e| xrt_error(&what("loading"), e))?;
        self.device.register_xclbin(&xclbin).map_err(|e| xrt_error(&what("registering"), e))?;
        let ctx = xrt::HwContext::new(&self.device, &xclbin).map_err(|e| xrt_error(&what("creating a hardware context for"), e))?;
        let kernel = xrt::Kernel::find(&ctx, &xclbin, KERNEL_PREFIX).map_err(|e| xrt_error(&what("finding the kernel in"), e))?;
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
        let e = |what: &str| {
            let what = what.to_string();
            move |err| xrt_error(&what, err)
        };

        let instr_bytes = insts::insts_bytes(&artifact.insts);
        let instr_group = kernel.group_id(ARG_INSTRUCTIONS).map_err(e("instruction buffer group"))?;
        let mut instr_bo = xrt::Bo::new(device, instr_bytes.len(), xrt::BoFlags::Cacheable, instr_group).map_err(e("instruction buffer"))?;
        instr_bo.write(&instr_bytes, 0).map_err(e("instruction buffer"))?;

        let mut bos = Vec::with_capacity(artifact.call.buffers.len());
        for b in &artifact.call.buffers {
            let group = kernel
                .group_id(b.kernel_arg)
                .map_err(e(&format!("argument {} ({}) group", b.sequence_index, b.name)))?;
            let mut bo =
                xrt::Bo::new(device, b.bytes, xrt::BoFlags::HostOnly, group).map_err(e(&format!("argument {} ({}) buffer", b.sequence_index, b.name)))?;
            // Outputs are written too, so their initial contents are the caller's, not stale memory.
            bo.write(&args[b.sequence_index].bytes, 0)
                .map_err(e(&format!("argument {} ({})", b.sequence_index, b.name)))?;
            bos.push(bo);
        }

        let start = Instant::now();
        instr_bo.sync(xrt::SyncDirection::ToDevice).map_err(e("instruction buffer sync"))?;
        for bo in &mut bos {
            bo.sync(xrt::SyncDirection::ToDevice).map_err(e("input sync"))?;
        }
        let mut run = xrt::Run::new(kernel).map_err(e("run"))?;
        run.set_arg_u64(ARG_OPCODE, artifact.call.opcode).map_err(e("opcode argument"))?;
        run.set_arg_bo(ARG_INSTRUCTIONS, &instr_bo).map_err(e("instruction argument"))?;
        run.set_arg_u32(ARG_INSTRUCTION_COUNT, artifact.call.instruction_words)
            .map_err(e("instruction count argument"))?;
        for (b, bo) in artifact.call.buffers.iter().zip(&bos) {
            run.set_arg_bo(b.kernel_arg, bo)
                .map_err(e(&format!("argument {} ({})", b.sequence_index, b.name)))?;
        }
        run.start().map_err(e("starting the kernel"))?;
        run.wait(Some(RUN_TIMEOUT))
            .map_err(e(&format!("kernel '{}' on the NPU", artifact.design.kernel)))?;
        for (b, bo) in artifact.call.buffers.iter().zip(&mut bos) {
            if b.direction == ArgDirection::Out {
                bo.sync(xrt::SyncDirection::FromDevice).map_err(e("output sync"))?;
                bo.read(&mut args[b.sequence_index].bytes, 0)
                    .map_err(e(&format!("reading argument {} ({})", b.sequence_index, b.name)))?;
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
        let what = |step: &str| format!("{step} {}", artifact.xclbin.display());
        let device = xrt::Device::open(0).map_err(|e| xrt_error("opening XRT device 0", e))?;
        let xclbin = xrt::Xclbin::load(&artifact.xclbin).map_err(|e| xrt_error(&what("loading"), e))?;
        device.register_xclbin(&xclbin).map_err(|e| xrt_error(&what("registering"), e))?;
        let ctx = xrt::HwContext::new(&device, &xclbin).map_err(|e| xrt_error(&what("creating a hardware context for"), e))?;
        let kernel = xrt::Kernel::find(&ctx, &xclbin, KERNEL_PREFIX).map_err(|e| xrt_error(&what("finding the kernel in"), e))?;
        let instr_bytes = insts::insts_bytes(&artifact.insts);
        let instr_group = kernel.group_id(ARG_INSTRUCTIONS).map_err(|e| xrt_error("instruction buffer group", e))?;
        let mut instr_bo = xrt::Bo::new(&device, instr_bytes.len(), xrt::BoFlags::Cacheable, instr_group).map_err(|e| xrt_error("instruction buffer", e))?;
        instr_bo.write(&instr_bytes, 0).map_err(|e| xrt_error("instruction buffer", e))?;
        instr_bo
            .sync(xrt::SyncDirection::ToDevice)
            .map_err(|e| xrt_error("instruction buffer sync", e))?;
        let mut bos = Vec::with_capacity(artifact.call.buffers.len());
        for b in &artifact.call.buffers {
            let context = format!("argument {} ({}) buffer", b.sequence_index, b.name);
            let group = kernel.group_id(b.kernel_arg).map_err(|e| xrt_error(&context, e))?;
            bos.push(xrt::Bo::new(&device, b.bytes, xrt::BoFlags::HostOnly, group).map_err(|e| xrt_error(&context, e))?);
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
        let context = format!("stored constant for argument {} ({})", argument, b.name);
        let group = st.kernel.group_id(b.kernel_arg).map_err(|e| xrt_error(&context, e))?;
        let mut bo = xrt::Bo::new(&st.device, b.bytes, xrt::BoFlags::HostOnly, group).map_err(|e| xrt_error(&context, e))?;
        bo.write(&bytes, 0).map_err(|e| xrt_error(&context, e))?;
        bo.sync(xrt::SyncDirection::ToDevice).map_err(|e| xrt_error(&context, e))?;
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
        let e = |what: &str| {
            let what = what.to_string();
            move |err| xrt_error(&what, err)
        };
        let start = Instant::now();
        for (b, bo) in self.artifact.call.buffers.iter().zip(st.bos.iter_mut()) {
            let bytes = match &args[b.sequence_index] {
                ArgData::Input(d) => &d[..],
                ArgData::Output(d) => &d[..],
                ArgData::Resident(_) => continue,
            };
            bo.write(bytes, 0).map_err(e(&format!("argument {} ({})", b.sequence_index, b.name)))?;
            bo.sync(xrt::SyncDirection::ToDevice).map_err(e("input sync"))?;
        }
        let mut run = xrt::Run::new(&st.kernel).map_err(e("run"))?;
        run.set_arg_u64(ARG_OPCODE, self.artifact.call.opcode).map_err(e("opcode argument"))?;
        run.set_arg_bo(ARG_INSTRUCTIONS, &st.instr_bo).map_err(e("instruction argument"))?;
        run.set_arg_u32(ARG_INSTRUCTION_COUNT, self.artifact.call.instruction_words)
            .map_err(e("instruction count argument"))?;
        for (b, bo) in self.artifact.call.buffers.iter().zip(&st.bos) {
            let bo = match &args[b.sequence_index] {
                ArgData::Resident(id) => &st.resident[id.slot],
                _ => bo,
            };
            run.set_arg_bo(b.kernel_arg, bo)
                .map_err(e(&format!("argument {} ({})", b.sequence_index, b.name)))?;
        }
        run.start().map_err(e("starting the kernel"))?;
        run.wait(Some(RUN_TIMEOUT))
            .map_err(e(&format!("kernel '{}' on the NPU", self.artifact.design.kernel)))?;
        for (b, bo) in self.artifact.call.buffers.iter().zip(st.bos.iter_mut()) {
            if let ArgData::Output(out) = &mut args[b.sequence_index] {
                bo.sync(xrt::SyncDirection::FromDevice).map_err(e("output sync"))?;
                bo.read(out, 0).map_err(e(&format!("reading argument {} ({})", b.sequence_index, b.name)))?;
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
