//! aiec: a tiling DSL and compiler for AMD Ryzen AI NPUs that emits MLIR-AIE.
//!
//! The pipeline follows the modules: [`dsl`] (parse / build) -> [`ir`] (typed kernel) ->
//! [`schedule`] (placement, object FIFOs, runtime sequence) -> [`check`] (hardware limits) ->
//! `lower` (core bodies under the per-target rules of [`target_rules`], the module as typed MLIR
//! ops) -> [`emit`] (MLIR verify/print, custom syntax) and design.json.
//! [`reference`](mod@reference) runs any kernel on the host as the ground truth; [`toolchain`]
//! drives mlir-aie's tools; [`passes`] names the passes and prints their results.
//!
//! Entry points: [`compile_source`] (`.tile` text), [`parse_file`] then [`compile_kernel`], or a
//! kernel written with [`dsl::builder`] passed to [`compile_kernel`]. The result, [`Compiled`],
//! holds design.mlir and design.json ([`Compiled::write_to`] writes them) and can check itself on
//! the emulator against the reference ([`Compiled::emulate_against_reference`]).

#![warn(missing_docs)]

pub mod check;
pub mod cost;
pub mod device;
pub mod diag;
pub mod dsl;
pub mod emit;
pub mod hostdata;
pub mod ir;
pub(crate) mod lower;
pub mod passes;
pub mod reference;
pub mod schedule;
pub mod target_rules;
pub mod toolchain;

use aiec_runtime::artifact::{ArgDirection, ArgSpec, DesignJson, TileUse, DESIGN_JSON_FORMAT};
pub use aiec_runtime::emulator::Emulator;
pub use aiec_runtime::{DType, HostBuffer};
pub use device::DeviceModel;
pub use diag::{CompileError, Diagnostic, Source, Span};
use std::path::Path;

/// Everything the compiler produces for one kernel on one device.
pub struct Compiled {
    /// The type-checked kernel.
    pub kernel: ir::Kernel,
    /// The placement, object FIFOs and runtime sequence kept by the placement search.
    pub design: schedule::Design,
    /// What each tile of the design uses (all within the device's limits).
    pub budgets: Vec<check::TileMemoryBudget>,
    /// design.mlir: mlir-aie custom syntax.
    pub mlir: String,
    /// The same module with aie ops in MLIR's generic form.
    pub generic: String,
    /// design.json: the runtime-sequence arguments, per-tile use and the cost estimate.
    pub json: DesignJson,
    /// Advice that did not stop compilation (e.g. statements the target runs as scalar code).
    pub notes: Vec<Diagnostic>,
    /// Per line of `mlir` (0-based), the DSL location (`file:line:col`) of the op on it.
    pub(crate) source_lines: Vec<Option<String>>,
}

/// One output of [`Compiled::emulate_against_reference`]: how the emulator's values compared
/// with the reference interpreter's, element by element within its error bounds.
#[derive(Debug, Clone)]
pub struct OutputCheck {
    /// The output tensor's name.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The comparison (exactness, worst element, elements outside their bound).
    pub comparison: hostdata::Comparison,
}

impl OutputCheck {
    /// Every element within its bound.
    pub fn passed(&self) -> bool {
        self.comparison.passed()
    }
}

/// Why [`Compiled::emulate_against_reference`] could not compare.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The random inputs could not be made (an argument too large for the host).
    #[error("inputs: {0}")]
    Inputs(#[from] hostdata::HostDataError),
    /// The reference interpreter failed.
    #[error("reference: {0}")]
    Reference(#[from] reference::ReferenceError),
    /// The emulator failed (a deadlock, an out-of-bounds access, a design error).
    #[error("emulator: {0}")]
    Emulator(#[from] aiec_runtime::RuntimeError),
}

impl Compiled {
    /// Writes `design.mlir` and `design.json` into `dir` (created if missing), each through a
    /// temporary file renamed into place, so a failure leaves no half-written artifact.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<(), FileError> {
        let dir = dir.as_ref();
        let io = |p: &Path, source: std::io::Error| FileError::Io {
            path: p.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let files = [("design.mlir", self.mlir.clone()), ("design.json", self.json.to_pretty_json())];
        let mut temps = Vec::new();
        for (name, text) in &files {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
            temps.push((tmp, dir.join(name)));
        }
        for (tmp, dst) in temps {
            std::fs::rename(&tmp, &dst).map_err(|e| io(&dst, e))?;
        }
        Ok(())
    }

    /// Runs the design on the emulator with random inputs drawn from `seed` (as `aiec run
    /// --emulate --seed SEED` does) and compares every output with the reference interpreter
    /// within its per-element error bound.
    pub fn emulate_against_reference(&self, seed: u64) -> Result<Vec<OutputCheck>, VerifyError> {
        let (inputs, mut bufs) = hostdata::try_random_arguments(&self.json.arguments, seed, |_, _| {})?;
        let expected = reference::run_reference_with_bounds(&self.kernel, &inputs)?;
        Emulator::new().run_mlir(&self.mlir, &format!("{}.mlir", self.kernel.name), &mut bufs)?;
        let outs = self.json.arguments.iter().enumerate().filter(|(_, a)| a.direction == ArgDirection::Out);
        let mut checks = Vec::new();
        for ((i, arg), (want, bound)) in outs.zip(&expected) {
            let got = hostdata::try_from_buffer(&bufs[i])?;
            checks.push(OutputCheck {
                name: arg.name.clone(),
                dtype: arg.dtype,
                shape: arg.shape.clone(),
                comparison: hostdata::compare_bounded(&got, want, bound, arg.dtype),
            });
        }
        Ok(checks)
    }

    /// The kernel source location (`file:line:col`) of the op on line `line` (1-based) of
    /// design.mlir, when that op was lowered from a statement.
    pub fn kernel_location(&self, line: usize) -> Option<&str> {
        self.source_lines.get(line.checked_sub(1)?)?.as_deref()
    }
}

/// Schedules, checks, lowers and emits a typed kernel.
pub fn compile_kernel(kernel: &ir::Kernel, device: &DeviceModel) -> Result<Compiled, CompileError> {
    compile_kernel_dumping(kernel, device, &mut Dumps::none())
}

/// The dumps asked for (`--dump-after PASS`): the text of each wanted pass's result, in pass
/// order, kept even when a later pass fails.
#[derive(Debug, Default)]
pub struct Dumps {
    wanted: Vec<passes::Pass>,
    /// (pass, its result as text), in the order the passes ran.
    pub texts: Vec<(passes::Pass, String)>,
}

impl Dumps {
    /// No dumps.
    pub(crate) fn none() -> Dumps {
        Dumps::default()
    }
    /// Dumps after each of `passes`.
    pub fn after(passes: &[passes::Pass]) -> Dumps {
        Dumps {
            wanted: passes.to_vec(),
            texts: Vec::new(),
        }
    }
    fn add(&mut self, pass: passes::Pass, text: impl FnOnce() -> String) {
        if self.wanted.contains(&pass) {
            self.texts.push((pass, text()));
        }
    }
    fn add_design(&mut self, kernel: &ir::Kernel, design: &schedule::Design) {
        self.add(passes::Pass::Place, || passes::dump_placement(kernel, design));
        self.add(passes::Pass::Route, || passes::dump_routes(kernel, design));
        self.add(passes::Pass::Sequence, || passes::dump_sequence(kernel, design));
    }
}

/// [`compile_kernel`], recording the result of each pass `dumps` asks for (the pass list is in
/// [`passes`]): place, route, sequence and check as kept by the placement search, then lower and
/// emit.
pub fn compile_kernel_dumping(kernel: &ir::Kernel, device: &DeviceModel, dumps: &mut Dumps) -> Result<Compiled, CompileError> {
    dumps.add(passes::Pass::Typecheck, || passes::dump_kernel(kernel));
    let (design, budgets, placement_note) = match place(kernel, device) {
        Ok(placed) => placed,
        Err(e) => {
            // The literal placement, when it schedules, shows what broke the limit.
            if let Ok(design) = schedule::schedule(kernel, device) {
                dumps.add_design(kernel, &design);
            }
            return Err(e);
        }
    };
    dumps.add_design(kernel, &design);
    dumps.add(passes::Pass::Check, || passes::dump_budgets(&design, &budgets));
    let context = emit::mlir_context();
    let lowered = lower::lower(&context, kernel, &design)?;
    let arg_names: Vec<String> = design.args.iter().map(|&t| kernel.tensors[t].name.clone()).collect();
    dumps.add(passes::Pass::Lower, || emit::readable_names(&lowered.text(), &arg_names));
    let program_bytes = check::check_program_memory(kernel, &design, lowered.max_core_ops)?;
    let emitted = emit::emit(&context, &lowered, &arg_names)?;
    dumps.add(passes::Pass::Emit, || emitted.custom.clone());
    let codes = cost::codes_of(kernel, &lowered.stmt_forms);
    let json = design_json(kernel, &design, &budgets, program_bytes, &codes);
    Ok(Compiled {
        kernel: kernel.clone(),
        design,
        budgets,
        mlir: emitted.custom,
        generic: emitted.generic,
        json,
        notes: placement_note.into_iter().chain(lowered.notes).collect(),
        source_lines: emitted.source_lines,
    })
}

/// Schedules and checks `kernel`. When the placement as written needs more DMA channels than a
/// tile has, tries the same spread on fewer rows and columns, most cores first, and keeps the
/// first that passes every check, with a note saying what changed and why; if none does, the
/// original error stands, with a note that no smaller placement fits either.
fn place(kernel: &ir::Kernel, device: &DeviceModel) -> Result<(schedule::Design, Vec<check::TileMemoryBudget>, Option<Diagnostic>), CompileError> {
    let attempt = |rows: u64, cols: u64| -> Result<(schedule::Design, Vec<check::TileMemoryBudget>), CompileError> {
        let design = schedule::schedule_within(kernel, device, rows, cols)?;
        let budgets = check::check(kernel, &design)?;
        check::check_balance(kernel, &design)?;
        Ok((design, budgets))
    };
    let (rows, cols) = (device.compute_rows as u64, device.columns as u64);
    let first = match attempt(rows, cols) {
        Ok((design, budgets)) => return Ok((design, budgets, None)),
        Err(e) => e,
    };
    let CompileError::Limit(diag) = &first else { return Err(first) };
    if !diag.message.starts_with("DMA input channels exceeded") && !diag.message.starts_with("DMA output channels exceeded") {
        return Err(first);
    }
    let mut candidates: Vec<(u64, u64)> = (1..=rows)
        .flat_map(|r| (1..=cols).map(move |c| (r, c)))
        .filter(|&rc| rc != (rows, cols))
        .collect();
    candidates.sort_by_key(|&(r, c)| (std::cmp::Reverse(r * c), std::cmp::Reverse(c)));
    let mut tried = std::collections::HashSet::new();
    for (r, c) in candidates {
        let Ok(design) = schedule::schedule_within(kernel, device, r, c) else {
            continue;
        };
        // Caps that lead to the same placement were tried already.
        if !tried.insert((design.rows_used, design.cols_used)) {
            continue;
        }
        if let Ok((design, budgets)) = attempt(r, c) {
            let cores = design.rows_used * design.cols_used;
            let note = Diagnostic::new(
                format!(
                    "placement: as written it needs more DMA channels than a tile has ({}); using {} row(s) x {} column(s) ({cores} cores) instead",
                    diag.message, design.rows_used, design.cols_used
                ),
                diag.span.as_ref(),
            );
            return Ok((design, budgets, Some(note)));
        }
    }
    Err(CompileError::Limit(diag.clone().note(
        "no placement on fewer rows or columns fits either: fewer tensors per core (stack them into one tensor) or a spread over columns may",
    )))
}

/// Parses, type-checks and compiles `.tile` source text.
pub fn compile_source(name: &str, text: &str, device: &DeviceModel) -> Result<Compiled, CompileError> {
    let source = Source::new(name, text);
    let kernel = dsl::compile_source(&source)?;
    compile_kernel(&kernel, device)
}

/// Parses and type-checks a `.tile` file without scheduling it.
pub fn parse_file(path: &Path) -> Result<ir::Kernel, FileError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FileError::Io { path: name.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| FileError::NotUtf8 {
        path: name.clone(),
        offset: e.utf8_error().valid_up_to(),
        source: e.utf8_error(),
    })?;
    let source = Source::new(name, text);
    Ok(dsl::compile_source(&source)?)
}

/// Why a `.tile` file did not compile. The `Io` and `NotUtf8` messages are `PATH: what`; the
/// command line prints every variant as `error: ...` (a [`CompileError`] renders its own).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file (or directory) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The `.tile` file is not UTF-8 text.
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: String,
        /// Byte offset of the first invalid byte.
        offset: usize,
        /// The decoding error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// The source does not parse or type-check.
    #[error("{0}")]
    Compile(#[from] CompileError),
}

/// design.json for a compiled kernel; `codes` says how the lowering emitted each statement.
pub(crate) fn design_json(
    kernel: &ir::Kernel,
    design: &schedule::Design,
    budgets: &[check::TileMemoryBudget],
    program_bytes: usize,
    codes: &[cost::StmtCode],
) -> DesignJson {
    let arguments = design
        .args
        .iter()
        .map(|&t| {
            let tensor = &kernel.tensors[t];
            ArgSpec {
                name: tensor.name.clone(),
                dtype: tensor.dtype,
                shape: tensor.shape.iter().map(|&d| d as usize).collect(),
                direction: if tensor.role == dsl::ast::Role::Out {
                    ArgDirection::Out
                } else {
                    ArgDirection::In
                },
            }
        })
        .collect();
    let tiles = budgets
        .iter()
        .map(|b| TileUse {
            col: b.tile.col,
            row: b.tile.row,
            kind: b.kind.name().to_string(),
            data_bytes: b.data_bytes,
            data_limit: design.device.limits(b.kind).data_bytes,
            program_bytes_estimate: (b.kind == device::TileKind::Compute).then_some(program_bytes),
            locks: b.locks,
            bds: b.bds,
        })
        .collect();
    DesignJson {
        format: DESIGN_JSON_FORMAT,
        kernel: kernel.name.clone(),
        device: design.device.name.to_string(),
        source: None,
        arguments,
        tiles,
        estimate: Some(cost::estimate(kernel, design, codes)),
    }
}
