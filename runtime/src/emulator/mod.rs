//! The emulator: runs an mlir-aie design (`design.mlir`) on the host, bit-exactly.
//!
//! * Tiles, object FIFOs (depth, Produce/Consume acquire and release of n elements, the k-th acquired
//!   element is slot k mod depth, broadcast to several consumers), memory-tile links (forward, split at
//!   `dst_offsets`, join at `src_offsets`) and the runtime sequence (`aiex.npu.dma_memcpy_nd` with its 4-D
//!   offsets/sizes/strides, outermost first, stride 0 repeating; `aiex.npu.dma_wait`) are modelled by
//!   [`exec`]: one thread per core, the sequence, shim DMAs and links in an event loop on the calling thread,
//!   shared state in a `Mutex` + `Condvar`.
//! * Core-local buffers (`aie.buffer`) belong to their tile; the core of that tile may use them (a core
//!   using another tile's buffer is an error naming the buffer, the line and both tiles). Each run allocates
//!   every buffer once, zeroed or holding its `initial_value`, and passes the ones a core uses to its
//!   function: they are state that persists across the core's loop iterations, not per-iteration temporaries.
//! * Core bodies are JIT-compiled by [`jit`] through MLIR's own lowering to LLVM (melior's
//!   `ExecutionEngine`, opt level 3); the 16 most recently used compiled designs are cached per process by a
//!   hash of the MLIR text (and the checked mode).
//! * Failures are errors, never hangs: a deadlock is reported as [`RuntimeError::Deadlock`] listing every
//!   blocked core, DMA and wait; a core computing without any FIFO activity for [`Emulator::stall_timeout`]
//!   is reported as [`RuntimeError::Stalled`]; bad patterns, element-count mismatches, waits on FIFOs nothing
//!   fills and unknown symbols are [`RuntimeError::Design`] errors naming the op and `file:line`; malformed or
//!   unsupported aie/aiex ops are [`RuntimeError::Syntax`] errors, core code MLIR or the checks reject a
//!   [`RuntimeError::Jit`] error, and a core's out-of-bounds access or trapping division at run time a
//!   [`RuntimeError::Fault`]. When a run ends with cores still inside their code, each stops at its next FIFO
//!   acquire or release or loop stop point ([`checks`]) and its thread parks for good, giving up the run's
//!   memory and compiled code.
//!
//! # Safety on any design
//!
//! Whatever `design.mlir` holds, the emulator returns a result or an error: it does not crash, write
//! outside its own allocations, abort on an allocation or hang.
//!
//! * **Bounds-checked cores** (default). Core code may only use ops whose memory accesses can be checked (see
//!   [`checks`]; anything else, e.g. `memref.alloca`, `memref.subview`, `llvm.*`, `cf.assert`, is a design
//!   error naming the op and line), and before every `memref.load`/`store`, `vector.load`/`store` and
//!   `vector.transfer_read`/`write` each index is compared with its dimension. The first out-of-bounds access
//!   stops the run before it happens:
//!   `core (0, 2): out-of-bounds load on an element of object FIFO @x_c0r0 at design.mlir:143 (index 1024, size
//!   1024) in dimension 1 of memref<4x1024xbf16>` (or `... store on buffer @acc ...`). [`Emulator::unchecked`]
//!   (`aiec emulate --unchecked`, `aiec run --unchecked`) JIT-compiles core code as written instead.
//!
//!   Integer divisions and remainders are checked the same way (a zero divisor, or the most negative value
//!   divided by -1, would trap on the host); the error names the core, the op and its line. In both modes a
//!   vector value in core code has at most [`checks::MAX_VECTOR_ELEMENTS`] elements (longer ones make LLVM's
//!   code generation explode in time and stack).
//!
//!   Cost: a check whose index provably stays in bounds (a loop variable with constant bounds and step, plus
//!   or times constants; or what MLIR's integer range analysis proves) is not emitted, and in every design aiec
//!   generates for dsl-examples/ (matmul, matmul_bf16, softmax, layernorm, rmsnorm, gelu, attention, mel) that
//!   is every check: no check is left at run time. Measured with `tests/checks_cost.rs` (15 cached runs each,
//!   checked and unchecked interleaved, on the 2-core machine while other builds ran, so differences within
//!   about 15% are noise): 512x512x512 int8 matmul on 16 cores, median 80 ms checked vs 86 ms unchecked (min 61
//!   vs 65), JIT 140 vs 160 ms; softmax 256x1024 bf16, 16.8 vs 14.7 ms (min 9.3 vs 9.4); layernorm 256x512,
//!   19.2 vs 21.0 ms (min 12.1 vs 10.8). `cargo bench -p aiec --bench emulate_matmul` (checked): first run
//!   317 ms (JIT 115 ms), cached run 116 ms. Where a check stays (an index the analysis cannot bound) it costs
//!   two compares and a predictable branch per access.
//! * **Allocation limits.** Memref types, object FIFO depths ([`design::MAX_FIFO_DEPTH`]), DMA patterns and
//!   link offsets are checked with checked arithmetic, and everything a run allocates (arguments, every FIFO
//!   slot, every buffer) must fit [`design::HOST_MEMORY_LIMIT`] (4 GiB) together; a DMA moves at most that
//!   much. A design asking for more is an error naming the op, its line and the amount, before any
//!   allocation. DMA access patterns are walked, not materialised, so a long repeating pattern costs no memory.
//! * `tests/fuzz_design.rs` runs mutated designs (numbers replaced, lines deleted or duplicated, tokens
//!   swapped) and requires a result or an error for each, within a time bound, without a panic.
//!
//! * Hardware-level designs (the level mlir-aie lowers object FIFOs to, and its own hardware tests use) run
//!   on the model in [`hw`]: `aie.lock` (AIE-ML semaphores: `AcquireGreaterEqual` waits for >= v and
//!   subtracts v, `Acquire` waits for == v, `Release` adds v; values 0..=63) used by cores (`aie.use_lock`
//!   becomes a call like the FIFO ops) and by buffer descriptors; `aie.mem` / `aie.memtile_dma` /
//!   `aie.shim_dma` with `aie.dma_start` chains or `aie.dma` ops, `aie.dma_bd` (offset, length, `[<size,
//!   stride>]` dimensions, memory-tile padding, packet headers; `len`/`offset` also as attributes), `aie.next_bd`,
//!   repeat counts;
//!   `aie.shim_dma_allocation`; `aie.flow` and `aie.packet_flow` (ids, fan-in/out, `keep_pkt_header`) between
//!   DMA ports, each stream buffering up to 64 KiB; and in the runtime sequence `dma_memcpy_nd` (also with
//!   `packet`), `dma_wait`, `npu.sync`, `npu.write32`/`maskwrite32`/`blockwrite`/`writebd`/`address_patch`/
//!   `push_queue` on the state the model has (descriptor registers, task queues, channel control, lock values,
//!   data memory; any other address is an error naming it), and DMA tasks (`dma_configure_task[_for]`,
//!   `dma_start_task`, `dma_await_task`, `dma_free_task`). Buffers without an `address` get the one mlir-aie's
//!   bank-aware allocation would give them (largest first, banks round robin, the core's stack at the bottom
//!   of bank 0), so register writes and register-built descriptors find them; `write32`/`maskwrite32`/
//!   `blockwrite` with `buffer = @sym` address words of that buffer; a tile whose registers the sequence writes
//!   has its whole data memory behind its buffers (descriptors at addresses no buffer holds). Several
//!   `aie.dma_start`s of one channel queue their chains in order. Cores start before the sequence: it begins
//!   once every core waits on a lock or has ended. A hardware-level run ends when the sequence is done and
//!   every shim transfer it started has finished; a deadlock names the blocked cores and channels with their
//!   locks' values and descriptor lines.
//! * The two levels agree: `tests/tests/lowered_fifo.rs` (crate `aiec-e2e`) runs every dsl-examples kernel for
//!   npu1 and npu2 as aiec emits it and after mlir-aie's own lowering with `aie-opt` (the object-FIFO
//!   transform alone; and aiecc's resource passes plus its runtime-sequence lowering to `blockwrite`,
//!   `address_patch`, queue writes and `sync`) on the same inputs, and requires identical output bytes. Cached
//!   runs of the 512x512x512 int8 matmul (npu1, 16 cores; `matmul_time_at_each_level` there, 15 interleaved
//!   runs on the shared 2-core machine): object FIFOs 34 ms median, lowered 41 ms (1.18x), NPU-instruction
//!   level 43 ms (1.24x).
//! * Modules with several `aie.device`s ([`devices`]): a main device's `aiex.configure @dev { aiex.run
//!   @seq(...) }` run lists execute each run in order on contiguous views (`memref.subview`) of the main
//!   sequence's arguments, data memory persisting between runs and configurations as on the hardware (a
//!   configuration loads its buffers' initial values; other buffers keep the bytes at their tile and address);
//!   without one, [`Emulator::device`] picks the device to run. Object-FIFO designs may drive FIFOs with DMA
//!   tasks (`dma_configure_task_for @fifo`) and start with `aiex.npu.load_pdi` of their own device.
//!
//! Not emulated (an error naming the op): routed `aie.switchbox`/`aie.connect`, core stream and cascade ports,
//! control and trace packets, `aie.external_buffer`, buffers shared with neighbouring tiles, `load_pdi` other
//! than at the start of a sequence, object FIFOs mixed with locks/DMAs in one design, object FIFO data-layout
//! transforms, per-tile depths, `repeat_count`/`via_DMA` and other FIFO attributes, external kernels
//! (`func.func` with `link_with`), and runtime-sequence ops of object-FIFO designs other than `arith.constant`,
//! `dma_memcpy_nd`, `dma_wait` and DMA tasks on FIFOs (`aiex.npu.rtp_write` among them).

pub mod checks;
pub mod design;
pub mod devices;
pub mod exec;
pub mod hw;
pub mod jit;

use crate::aie_syntax::{custom_to_generic, parse_custom, Line};
use crate::artifact::{ArgSpec, ArtifactDir, DesignJson};
use crate::backend::{check_args, ArgData, Backend, HostBuffer, LoadedKernel, ResidentId, RunReport, RuntimeError};
use design::Design;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A design ready to run: its model and its compiled cores.
struct Prepared {
    text: String,
    checked: bool,
    design: Design,
    compiled: Arc<jit::Compiled>,
    /// Per `aie.buffer`: its initial contents, `None` for zeros.
    buffers: Vec<Option<Vec<u8>>>,
}

/// Compiled designs kept per process, most recently used last.
const CACHE_SIZE: usize = 16;

type Cache = Mutex<Vec<(u64, Arc<Prepared>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn design_error(file: &str, source: design::DesignError) -> RuntimeError {
    RuntimeError::Design {
        file: file.to_string(),
        source,
    }
}

fn syntax_error(file: &str, source: crate::aie_syntax::SyntaxError) -> RuntimeError {
    RuntimeError::Syntax {
        file: file.to_string(),
        source,
    }
}

fn jit_error(file: &str, source: jit::JitError) -> RuntimeError {
    RuntimeError::Jit {
        file: file.to_string(),
        source,
    }
}

fn analyse(mlir_text: &str, file: &str) -> Result<(Vec<Line>, Design), RuntimeError> {
    let rewritten = devices::rewrite_fifo_tasks(mlir_text).map_err(|e| design_error(file, e))?;
    let text = rewritten.as_deref().unwrap_or(mlir_text);
    let lines = parse_custom(text).map_err(|e| syntax_error(file, e))?;
    let design = Design::from_lines(&lines).map_err(|e| design_error(file, e))?;
    Ok((lines, design))
}

/// The runtime-sequence arguments of a module: of its device, or of the device that configures the others
/// (an argument is an output when a run writes any part of it).
fn module_args(mlir_text: &str, file: &str) -> Result<(String, Vec<ArgSpec>), RuntimeError> {
    match devices::plan(mlir_text, None).map_err(|e| design_error(file, e))? {
        devices::Plan::Configure { args, steps } => {
            let mut out = vec![false; args.len()];
            let mut device = String::new();
            for s in &steps {
                let (_, d) = analyse(&s.text, file)?;
                device = d.device.clone();
                for (spec, v) in d.arg_specs().iter().zip(&s.args) {
                    out[v.parent] |= spec.direction == crate::artifact::ArgDirection::Out;
                }
            }
            let specs = args
                .iter()
                .zip(out)
                .map(|((name, ty), o)| ArgSpec {
                    name: name.trim_start_matches('%').to_string(),
                    dtype: ty.dtype,
                    shape: ty.shape.clone(),
                    direction: if o {
                        crate::artifact::ArgDirection::Out
                    } else {
                        crate::artifact::ArgDirection::In
                    },
                })
                .collect();
            Ok((device, specs))
        }
        _ => {
            let (_, design) = analyse(mlir_text, file)?;
            Ok((design.device.clone(), design.arg_specs()))
        }
    }
}

/// The runtime-sequence arguments of a design (shape and dtype from the memref types; an argument a DMA
/// drains into is an output).
pub fn sequence_args(mlir_text: &str) -> Result<Vec<ArgSpec>, RuntimeError> {
    Ok(module_args(mlir_text, "design.mlir")?.1)
}

/// A `design.json` for a design that comes without one (a hand-written mlir-aie design): the kernel is named
/// after the file, the device and arguments come from the MLIR.
pub fn design_json_from_mlir(mlir_text: &str, file_name: &str) -> Result<DesignJson, RuntimeError> {
    let (device, arguments) = module_args(mlir_text, file_name)?;
    let kernel = Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "design".to_string());
    Ok(DesignJson {
        format: crate::artifact::DESIGN_JSON_FORMAT,
        kernel,
        device,
        source: Some(file_name.to_string()),
        arguments,
        tiles: Vec::new(),
        estimate: None,
    })
}

/// Runs designs on the host.
#[derive(Debug)]
pub struct Emulator {
    /// How many designs this emulator compiled (cache misses).
    pub compiled: usize,
    /// How long a run may go without any object FIFO or DMA activity while a core is still computing before
    /// it is reported as stuck (the core stops at its loop's next stop point; see [`checks`]).
    pub stall_timeout: Duration,
    /// Run core code as it is: no bounds checks before memory accesses and no restriction on the ops a core
    /// may use (`aiec emulate --unchecked`). A core that indexes outside its buffers then corrupts host memory
    /// or crashes the process. Off by default.
    pub unchecked: bool,
    /// In a module with several `aie.device`s and no `aiex.configure`, the device (its symbol, without `@`)
    /// [`Emulator::run_mlir`] runs.
    pub device: Option<String>,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator {
            compiled: 0,
            stall_timeout: Duration::from_secs(60),
            unchecked: false,
            device: None,
        }
    }
}

impl Emulator {
    pub fn new() -> Self {
        Emulator::default()
    }

    fn prepare(&mut self, mlir_text: &str, file: &str) -> Result<Arc<Prepared>, RuntimeError> {
        let checked = !self.unchecked;
        let mut h = DefaultHasher::new();
        mlir_text.hash(&mut h);
        checked.hash(&mut h);
        let key = h.finish();
        {
            let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = c.iter().position(|(k, p)| *k == key && p.text == mlir_text && p.checked == checked) {
                let hit = c.remove(i);
                let p = hit.1.clone();
                c.push(hit);
                return Ok(p);
            }
        }
        let rewritten = devices::rewrite_fifo_tasks(mlir_text).map_err(|e| design_error(file, e))?;
        let text = rewritten.as_deref().unwrap_or(mlir_text);
        let (lines, design) = analyse(text, file)?;
        // The whole design must be valid MLIR (aie ops as unregistered generic ops).
        let generic = custom_to_generic(text).map_err(|e| syntax_error(file, e))?;
        jit::check_parses(&generic).map_err(|e| jit_error(file, e))?;
        let module = jit::core_module(&design, &lines).map_err(|e| design_error(file, e))?;
        let compiled = jit::compile(&module, checked).map_err(|e| jit_error(file, e))?;
        let buffers = jit::buffer_contents(&design).map_err(|e| design_error(file, e))?;
        self.compiled += 1;
        let p = Arc::new(Prepared {
            text: mlir_text.to_string(),
            checked,
            design,
            compiled: Arc::new(compiled),
            buffers,
        });
        let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
        c.push((key, p.clone()));
        if c.len() > CACHE_SIZE {
            c.remove(0);
        }
        Ok(p)
    }

    /// Runs a design given as mlir-aie text; `file_name` names it in errors. `args` follow the runtime
    /// sequence's parameters; outputs are overwritten.
    pub fn run_mlir(&mut self, mlir_text: &str, file_name: &str, args: &mut [HostBuffer]) -> Result<RunReport, RuntimeError> {
        let plan = devices::plan(mlir_text, self.device.as_deref()).map_err(|e| design_error(file_name, e))?;
        match plan {
            devices::Plan::Single => self.run_one(mlir_text, file_name, args, None),
            devices::Plan::Select(text) => self.run_one(&text, file_name, args, None),
            devices::Plan::Configure { args: params, steps } => self.run_configurations(file_name, args, &params, &steps),
        }
    }

    /// Runs a main device's `aiex.run`s in order on views of `args` (see [`devices`]).
    fn run_configurations(
        &mut self,
        file_name: &str,
        args: &mut [HostBuffer],
        params: &[(String, design::MemrefType)],
        steps: &[devices::Step],
    ) -> Result<RunReport, RuntimeError> {
        let t0 = Instant::now();
        for (i, (a, (name, ty))) in args.iter().zip(params).enumerate() {
            if a.dtype != ty.dtype || a.bytes.len() != ty.bytes() {
                return Err(RuntimeError::BadArgument {
                    index: i,
                    name: name.clone(),
                    message: format!("expected {} ({} elements), got {:?} of {}", ty.text, ty.elements(), a.shape, a.dtype),
                });
            }
        }
        if args.len() != params.len() {
            return Err(RuntimeError::BadArgument {
                index: args.len().min(params.len()),
                name: params.get(args.len()).map(|p| p.0.clone()).unwrap_or_default(),
                message: format!("the runtime sequence takes {} arguments, {} given", params.len(), args.len()),
            });
        }
        let mut memory = devices::Memory::default();
        let mut loaded = None;
        let mut report = RunReport {
            backend: "emulator".into(),
            prepare: Duration::ZERO,
            run: Duration::ZERO,
            cores: 0,
            dma_transfers: 0,
        };
        for s in steps {
            let mut sub: Vec<HostBuffer> = s
                .args
                .iter()
                .map(|v| {
                    let es = v.ty.dtype.size_bytes();
                    let start = v.offset * args[v.parent].dtype.size_bytes();
                    HostBuffer {
                        dtype: v.ty.dtype,
                        shape: v.ty.shape.clone(),
                        bytes: args[v.parent].bytes[start..start + v.ty.elements() * es].to_vec(),
                    }
                })
                .collect();
            let fresh = loaded != Some(s.configuration);
            loaded = Some(s.configuration);
            let r = self.run_one(&s.text, file_name, &mut sub, Some((&mut memory, fresh))).map_err(|e| match e {
                RuntimeError::BadArgument { index, message, .. } => design_error(
                    file_name,
                    design::DesignError {
                        line: s.line,
                        message: format!("aiex.run on @{}: argument {index}: {message}", s.device),
                    },
                ),
                other => other,
            })?;
            for (v, b) in s.args.iter().zip(&sub) {
                let start = v.offset * args[v.parent].dtype.size_bytes();
                args[v.parent].bytes[start..start + b.bytes.len()].copy_from_slice(&b.bytes);
            }
            report.prepare += r.prepare;
            report.run += r.run;
            report.cores = report.cores.max(r.cores);
            report.dma_transfers += r.dma_transfers;
        }
        report.run = t0.elapsed().saturating_sub(report.prepare);
        Ok(report)
    }

    /// Runs one device; with `memory`, its buffers start from (and leave their bytes in) the tiles' data
    /// memories, loading initial values when the configuration is `fresh`.
    fn run_one(
        &mut self,
        mlir_text: &str,
        file_name: &str,
        args: &mut [HostBuffer],
        memory: Option<(&mut devices::Memory, bool)>,
    ) -> Result<RunReport, RuntimeError> {
        let t0 = Instant::now();
        let prepared = self.prepare(mlir_text, file_name)?;
        let prepare = t0.elapsed();
        let design = &prepared.design;
        let params = &design.sequence.args;
        if args.len() != params.len() {
            return Err(RuntimeError::BadArgument {
                index: args.len().min(params.len()),
                name: params.get(args.len()).map(|p| p.0.clone()).unwrap_or_default(),
                message: format!("the runtime sequence takes {} arguments, {} given", params.len(), args.len()),
            });
        }
        for (i, (a, (name, ty))) in args.iter().zip(params).enumerate() {
            if a.dtype != ty.dtype || a.elements() != ty.elements() || a.bytes.len() != ty.bytes() {
                return Err(RuntimeError::BadArgument {
                    index: i,
                    name: name.clone(),
                    message: format!("expected {} ({} elements), got {:?} of {}", ty.text, ty.elements(), a.shape, a.dtype),
                });
            }
        }
        let t1 = Instant::now();
        let mut data: Vec<ArgData<'_>> = args.iter_mut().map(|a| ArgData::Output(&mut a.bytes)).collect();
        let transfers = match memory {
            None => exec::run(design, &prepared.compiled, &prepared.buffers, file_name, &mut data, self.stall_timeout, None)?,
            Some((memory, fresh)) => {
                let initial = memory.initial(design, &prepared.buffers, fresh);
                let mut finals = Vec::new();
                let t = exec::run(
                    design,
                    &prepared.compiled,
                    &initial,
                    file_name,
                    &mut data,
                    self.stall_timeout,
                    Some(&mut finals),
                )?;
                memory.store(design, &finals);
                t
            }
        };
        Ok(RunReport {
            backend: "emulator".into(),
            prepare,
            run: t1.elapsed(),
            cores: design.cores.len(),
            dma_transfers: transfers,
        })
    }
}

impl Emulator {
    /// Prepares a design given as mlir-aie text for repeated calls ([`LoadedKernel`]): parsed, checked
    /// and JIT-compiled once.
    pub fn load_mlir(&mut self, mlir_text: &str, file_name: &str) -> Result<EmulatedKernel, RuntimeError> {
        let t0 = Instant::now();
        let prepared = self.prepare(mlir_text, file_name)?;
        let arguments = prepared.design.arg_specs();
        Ok(EmulatedKernel {
            prepared,
            file: file_name.to_string(),
            arguments,
            resident: Mutex::new(Vec::new()),
            stall_timeout: self.stall_timeout,
            prepare: t0.elapsed(),
        })
    }
}

/// A design loaded into the emulator: cores JIT-compiled once; each [`LoadedKernel::run`] only creates
/// the run's FIFO state and core threads.
pub struct EmulatedKernel {
    prepared: Arc<Prepared>,
    file: String,
    arguments: Vec<ArgSpec>,
    /// Constant operands kept by [`LoadedKernel::keep`], shared with every run.
    resident: Mutex<Vec<Arc<[u8]>>>,
    stall_timeout: Duration,
    /// Time [`Emulator::load_mlir`] took (JIT, or zero when the design was cached).
    pub prepare: Duration,
}

impl LoadedKernel for EmulatedKernel {
    fn arguments(&self) -> &[ArgSpec] {
        &self.arguments
    }

    fn keep(&self, argument: usize, bytes: Vec<u8>) -> Result<ResidentId, RuntimeError> {
        let spec = self.arguments.get(argument).ok_or_else(|| RuntimeError::BadArgument {
            index: argument,
            name: String::new(),
            message: format!("the design takes {} arguments", self.arguments.len()),
        })?;
        if bytes.len() != spec.bytes() {
            return Err(RuntimeError::BadArgument {
                index: argument,
                name: spec.name.clone(),
                message: format!("expected {} bytes ({} {:?}), got {}", spec.bytes(), spec.dtype, spec.shape, bytes.len()),
            });
        }
        let mut resident = self.resident.lock().unwrap_or_else(|e| e.into_inner());
        resident.push(bytes.into());
        Ok(ResidentId {
            argument,
            slot: resident.len() - 1,
        })
    }

    fn run(&self, args: &mut [ArgData<'_>]) -> Result<RunReport, RuntimeError> {
        let stored: Vec<Arc<[u8]>> = self.resident.lock().unwrap_or_else(|e| e.into_inner()).clone();
        check_args(&self.arguments, args, |id| stored.get(id.slot).map(|b| b.len()))?;
        let mut data: Vec<ArgData<'_>> = args
            .iter_mut()
            .map(|a| match a {
                ArgData::Input(b) => ArgData::Input(b),
                ArgData::Output(b) => ArgData::Output(b),
                ArgData::Resident(id) => ArgData::Input(&stored[id.slot]),
            })
            .collect();
        let t0 = Instant::now();
        let design = &self.prepared.design;
        let transfers = exec::run(
            design,
            &self.prepared.compiled,
            &self.prepared.buffers,
            &self.file,
            &mut data,
            self.stall_timeout,
            None,
        )?;
        Ok(RunReport {
            backend: "emulator".into(),
            prepare: Duration::ZERO,
            run: t0.elapsed(),
            cores: design.cores.len(),
            dma_transfers: transfers,
        })
    }
}

impl Backend for Emulator {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn load(&mut self, dir: &Path) -> Result<Box<dyn LoadedKernel>, RuntimeError> {
        let path = ArtifactDir::new(dir).mlir();
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::Io { path: path.clone(), source: e })?;
        Ok(Box::new(self.load_mlir(&text, &path.display().to_string())?))
    }

    fn run(&mut self, dir: &Path, args: &mut [HostBuffer]) -> Result<RunReport, RuntimeError> {
        let art = ArtifactDir::new(dir);
        let path = art.mlir();
        let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::Io { path: path.clone(), source: e })?;
        let json_path = art.json();
        if json_path.exists() {
            let json = DesignJson::read(&json_path)?;
            if json.arguments.len() != args.len() {
                return Err(RuntimeError::BadArgument {
                    index: args.len().min(json.arguments.len()),
                    name: String::new(),
                    message: format!("{} takes {} arguments, {} given", json.kernel, json.arguments.len(), args.len()),
                });
            }
            for (i, (a, spec)) in args.iter().zip(&json.arguments).enumerate() {
                if a.dtype != spec.dtype || a.shape != spec.shape {
                    return Err(RuntimeError::BadArgument {
                        index: i,
                        name: spec.name.clone(),
                        message: format!("expected {} {:?}, got {} {:?}", spec.dtype, spec.shape, a.dtype, a.shape),
                    });
                }
            }
        }
        self.run_mlir(&text, &path.display().to_string(), args)
    }
}
