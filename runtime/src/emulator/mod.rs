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
//!   `ExecutionEngine`, opt level 3); compiled designs are cached per process by a hash of the MLIR text.
//! * Failures are errors, never hangs: a deadlock is reported as [`RuntimeError::Deadlock`] listing every
//!   blocked core, DMA and wait (cores blocked in JIT code are left parked); a core computing without any
//!   FIFO activity for [`Emulator::stall_timeout`] is reported (its thread cannot be stopped and keeps
//!   running); bad patterns, element-count mismatches, waits on FIFOs nothing fills, unknown symbols and
//!   unsupported ops are [`RuntimeError::Design`] errors naming the op and `file:line`.
//!
//! Not emulated (an error naming the op): lower-level designs (`aie.lock`, `aie.mem`, `aie.dma_bd`,
//! `aie.flow`, `aie.external_buffer`, ...), buffers shared with neighbouring tiles, several `aie.device`s,
//! object FIFO data-layout transforms, per-tile depths, `repeat_count`/`via_DMA` and other FIFO attributes,
//! packet headers, external kernels (`func.func` with `link_with`), and runtime-sequence ops other than
//! `arith.constant`, `dma_memcpy_nd` and `dma_wait`.

pub mod design;
pub mod exec;
pub mod jit;

use crate::aie_syntax::{custom_to_generic, parse_custom, Line};
use crate::artifact::{ArgSpec, ArtifactDir, DesignJson};
use crate::backend::{Backend, HostBuffer, RunReport, RuntimeError};
use design::Design;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A design ready to run: its model and its compiled cores.
struct Prepared {
    text: String,
    design: Design,
    compiled: Arc<jit::Compiled>,
    /// Per `aie.buffer`: its initial contents, `None` for zeros.
    buffers: Vec<Option<Vec<u8>>>,
}

fn cache() -> &'static Mutex<HashMap<u64, Arc<Prepared>>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<Prepared>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn design_error(file: &str, line: usize, message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Design(format!("{file}:{line}: {message}"))
}

fn syntax_error(file: &str, e: crate::aie_syntax::SyntaxError) -> RuntimeError {
    let text = e.to_string();
    let detail = text.split_once(": ").map(|(_, d)| d.to_string()).unwrap_or(text);
    design_error(file, e.line(), detail)
}

fn jit_error(file: &str, e: jit::JitError) -> RuntimeError {
    if e.line == 0 {
        RuntimeError::Design(format!("{file}: {}", e.message))
    } else {
        RuntimeError::Design(format!("{file}:{}:{}: {}", e.line, e.col, e.message))
    }
}

fn analyse(mlir_text: &str, file: &str) -> Result<(Vec<Line>, Design), RuntimeError> {
    let lines = parse_custom(mlir_text).map_err(|e| syntax_error(file, e))?;
    let design = Design::from_lines(&lines).map_err(|e| design_error(file, e.line, e.message))?;
    Ok((lines, design))
}

/// The runtime-sequence arguments of a design (shape and dtype from the memref types; an argument a DMA
/// drains into is an output).
pub fn sequence_args(mlir_text: &str) -> Result<Vec<ArgSpec>, RuntimeError> {
    let (_, design) = analyse(mlir_text, "design.mlir")?;
    Ok(design.arg_specs())
}

/// A `design.json` for a design that comes without one (a hand-written mlir-aie design): the kernel is named
/// after the file, the device and arguments come from the MLIR.
pub fn design_json_from_mlir(mlir_text: &str, file_name: &str) -> Result<DesignJson, RuntimeError> {
    let (_, design) = analyse(mlir_text, file_name)?;
    let kernel = Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "design".to_string());
    Ok(DesignJson {
        format: crate::artifact::DESIGN_JSON_FORMAT,
        kernel,
        device: design.device.clone(),
        source: Some(file_name.to_string()),
        arguments: design.arg_specs(),
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
    /// it is reported as stuck (a core in an endless loop cannot be stopped; its thread is left running).
    pub stall_timeout: Duration,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator {
            compiled: 0,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

impl Emulator {
    pub fn new() -> Self {
        Emulator::default()
    }

    fn prepare(&mut self, mlir_text: &str, file: &str) -> Result<Arc<Prepared>, RuntimeError> {
        let mut h = DefaultHasher::new();
        mlir_text.hash(&mut h);
        let key = h.finish();
        if let Some(p) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if p.text == mlir_text {
                return Ok(p.clone());
            }
        }
        let (lines, design) = analyse(mlir_text, file)?;
        // The whole design must be valid MLIR (aie ops as unregistered generic ops).
        let generic = custom_to_generic(mlir_text).map_err(|e| syntax_error(file, e))?;
        jit::check_parses(&generic).map_err(|e| jit_error(file, e))?;
        let module = jit::core_module(&design, &lines).map_err(|e| design_error(file, e.line, e.message))?;
        let compiled = jit::compile(&module).map_err(|e| jit_error(file, e))?;
        let buffers = jit::buffer_contents(&design).map_err(|e| design_error(file, e.line, e.message))?;
        self.compiled += 1;
        let p = Arc::new(Prepared {
            text: mlir_text.to_string(),
            design,
            compiled: Arc::new(compiled),
            buffers,
        });
        cache().lock().unwrap_or_else(|e| e.into_inner()).insert(key, p.clone());
        Ok(p)
    }

    /// Runs a design given as mlir-aie text; `file_name` names it in errors. `args` follow the runtime
    /// sequence's parameters; outputs are overwritten.
    pub fn run_mlir(&mut self, mlir_text: &str, file_name: &str, args: &mut [HostBuffer]) -> Result<RunReport, RuntimeError> {
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
        let transfers = exec::run(design, &prepared.compiled, &prepared.buffers, file_name, args, self.stall_timeout)?;
        Ok(RunReport {
            backend: "emulator".into(),
            prepare,
            run: t1.elapsed(),
            cores: design.cores.len(),
            dma_transfers: transfers,
        })
    }
}

impl Backend for Emulator {
    fn name(&self) -> &'static str {
        "emulator"
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
