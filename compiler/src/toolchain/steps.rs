//! mlir-aie's steps before core compilation, run one by one with `aie-opt` and `aie-translate`.
//!
//! These are the pass pipelines aiecc runs between `design.mlir` and Peano. Running them here,
//! each as its own command with its output kept in `build/`, means a design mlir-aie cannot lower
//! fails in a named step with the first diagnostic, and that everything up to the cores' LLVM IR
//! (and `insts.bin`) is produced and checked on a machine without Peano.
//!
//! | # | step | input | output |
//! |---|---|---|---|
//! | 1 | `aievec` | design.mlir | build/1-aievec.mlir |
//! | 2 | `resources` | build/1-aievec.mlir | build/2-resources.mlir |
//! | 3 | `routing` | build/2-resources.mlir | build/3-routing.mlir |
//! | 4 | `npu-insts` | build/3-routing.mlir | build/4-npu.mlir, insts.bin |
//! | 5 | `core-llvm` | build/2-resources.mlir, once per core | build/core_C_R.mlir, build/core_C_R.ll |
//!
//! A tool's stderr, when it wrote any, is kept next to the step's output as `*.stderr`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Step 1: lowers the cores' `vector` ops (contractions, lane-wise arith, reductions) to the
/// target's AIE vector dialect; ops the target cannot do fail to legalize here.
pub(crate) const AIEVEC_PIPELINE: &str = "builtin.module(convert-vector-to-aievec{aie-target=@TARGET@ target-backend=llvmir})";

/// Step 2: object FIFOs become buffers, locks and DMA buffer descriptors; locks, BDs and buffer
/// addresses are assigned; structured control flow becomes `cf`.
pub const RESOURCES_PIPELINE: &str = "builtin.module(lower-affine,aie-canonicalize-device,aie.device(aie-assign-lock-ids,aie-register-objectFifos,aie-objectFifo-stateful-transform,aie-assign-bd-ids,aie-lower-cascade-flows,aie-lower-broadcast-packet,aie-lower-multicast,aie-assign-tile-controller-ids,aie-generate-column-control-overlay,aie-assign-buffer-addresses),convert-scf-to-cf)";

/// Step 3: routes every flow through the switchboxes.
pub const ROUTING_PIPELINE: &str = "builtin.module(aie.device(aie-create-pathfinder-flows))";

/// Step 4: the runtime sequence (shim DMA tasks, waits, lock sets) becomes NPU instructions,
/// which `aie-translate --aie-npu-to-binary` then writes as insts.bin.
pub const NPU_PIPELINE: &str = "builtin.module(aie-materialize-runtime-sequences,aie.device(aie-materialize-bd-chains,aie-substitute-shim-dma-allocations,aie-assign-runtime-sequence-bd-ids,aie-dma-tasks-to-npu,aie-dma-to-npu,aie-lower-set-lock))";

/// Step 5, per core: keeps only the core at (@COL@, @ROW@), turns its FIFO acquires into lock
/// operations and buffer accesses, and lowers it to the LLVM dialect (AIE vector ops become the
/// target's intrinsics), which `aie-translate --mlir-to-llvmir` writes as the LLVM IR Peano compiles.
pub(crate) const CORE_PIPELINE: &str = "builtin.module(aie.device(aie-localize-locks,aie-normalize-address-spaces,aie-transform-bfp-types),aie-standard-lowering{tilecol=@COL@ tilerow=@ROW@},aiex-standard-lowering,convert-aievec-to-llvm{aie-target=@TARGET@},canonicalize,cse,expand-strided-metadata,lower-affine,arith-expand,finalize-memref-to-llvm,convert-func-to-llvm,convert-to-llvm,convert-vector-to-llvm,convert-ub-to-llvm,canonicalize,cse)";

/// Lines of a failing command's stderr kept in [`StepFailure::stderr_tail`].
pub(crate) const STDERR_TAIL_LINES: usize = 10;

/// The AIE architecture the vector and core lowerings target.
pub use crate::target_rules::AieTarget as Target;

/// The five steps in order: (name, what it produces).
pub const STEPS: [(&str, &str); 5] = [
    ("aievec", "cores to AIE vector ops"),
    ("resources", "buffers, locks and DMAs"),
    ("routing", "flow routing"),
    ("npu-insts", "NPU instructions"),
    ("core-llvm", "core LLVM IR"),
];

/// A compute core: the column and row of its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Core {
    /// Column.
    pub col: u32,
    /// Row.
    pub row: u32,
}

impl fmt::Display for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core ({}, {})", self.col, self.row)
    }
}

/// One step that ran to completion.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// 1-based position in [`STEPS`].
    pub number: usize,
    /// Its short name (`aievec`, `resources`, ...).
    pub name: &'static str,
    /// What it produces, as [`STEPS`] says.
    pub title: &'static str,
    /// Every command the step ran, as a shell would show it.
    pub commands: Vec<String>,
    /// Wall time of its commands.
    pub duration: Duration,
    /// The files it wrote.
    pub outputs: Vec<PathBuf>,
}

/// What the five steps produced.
#[derive(Debug, Clone)]
pub struct StepsReport {
    /// The target the core steps lowered for.
    pub target: Target,
    /// Each step, in order.
    pub steps: Vec<StepRecord>,
    /// The cores taken to LLVM IR, in the order the design lists them.
    pub cores: Vec<Core>,
    /// insts.bin, in the output directory.
    pub insts: PathBuf,
    /// `build/` under the output directory.
    pub work_dir: PathBuf,
}

/// Where a tool's diagnostic points, parsed from `file:line:col: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagLocation {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

/// The first error a tool printed: the location (when it gave one) and the rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDiagnostic {
    /// Where it points, when the tool said.
    pub location: Option<DiagLocation>,
    /// The line without its `file:line:col: ` prefix, e.g. `error: failed to legalize ...`.
    pub message: String,
}

impl ToolDiagnostic {
    /// The first stderr line containing "error", if any.
    pub(crate) fn first_error(stderr: &str) -> Option<ToolDiagnostic> {
        stderr.lines().find(|l| l.contains("error")).map(ToolDiagnostic::parse)
    }

    /// Splits `path:line:col: message`; a line without that prefix is all message.
    pub(crate) fn parse(line: &str) -> ToolDiagnostic {
        let line = line.trim();
        // The prefix ends at the first ":<digits>:<digits>: " (paths may hold ':' themselves).
        for (i, _) in line.match_indices(':') {
            let rest = &line[i + 1..];
            let Some((l, rest)) = rest.split_once(':') else { break };
            let Some((c, message)) = rest.split_once(": ") else { continue };
            if let (Ok(l), Ok(c)) = (l.parse::<u32>(), c.parse::<u32>()) {
                if i > 0 {
                    return ToolDiagnostic {
                        location: Some(DiagLocation {
                            path: PathBuf::from(&line[..i]),
                            line: l,
                            col: c,
                        }),
                        message: message.trim().to_string(),
                    };
                }
            }
        }
        ToolDiagnostic {
            location: None,
            message: line.to_string(),
        }
    }
}

impl fmt::Display for ToolDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{}:{}:{}: {}", at.path.display(), at.line, at.col, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A step whose command failed.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// 1-based position in [`STEPS`].
    pub number: usize,
    /// Its short name (`aievec`, `resources`, ...).
    pub name: &'static str,
    pub(crate) title: &'static str,
    /// The core being lowered when step 5 failed.
    pub core: Option<Core>,
    /// The failing command, as a shell would take it.
    pub command_line: String,
    /// The file the failing command read.
    pub input: PathBuf,
    /// "exit status 1", or how it was terminated.
    pub status: String,
    /// The first stderr line containing "error"; `None` when there was none.
    pub diagnostic: Option<ToolDiagnostic>,
    /// The last lines of stderr.
    pub stderr_tail: String,
    /// The whole stderr, kept in `build/`.
    pub stderr_file: Option<PathBuf>,
    /// The steps that passed before this one.
    pub completed: Vec<StepRecord>,
    /// Time spent in this step until it failed.
    pub duration: Duration,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = self.core.map(|c| format!(", {c}")).unwrap_or_default();
        write!(f, "step {} {} ({}{core}) failed: ", self.number, self.name, self.title)?;
        match &self.diagnostic {
            Some(d) => write!(f, "{d}")?,
            None => {
                write!(f, "{} without an error line", self.status)?;
                if !self.stderr_tail.is_empty() {
                    write!(f, "; its stderr ended with:\n{}", self.stderr_tail)?;
                }
            }
        }
        write!(f, "\n  input:   {}", self.input.display())?;
        write!(f, "\n  command: {}", self.command_line)?;
        if let Some(p) = &self.stderr_file {
            write!(f, "\n  stderr:  {}", p.display())?;
        }
        Ok(())
    }
}

/// Why the steps stopped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A step's command failed.
    #[error("{0}")]
    Failed(Box<StepFailure>),
    /// A step's program could not be started.
    #[error("step {number} ({name}): could not run {}: {source}", program.display())]
    Spawn {
        /// 1-based position in [`STEPS`].
        number: usize,
        /// The step's short name.
        name: &'static str,
        /// The program.
        program: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A step's command succeeded without writing its output.
    #[error("step {number} ({name}) finished but did not write {}", path.display())]
    MissingOutput {
        /// 1-based position in [`STEPS`].
        number: usize,
        /// The step's short name.
        name: &'static str,
        /// The file expected.
        path: PathBuf,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The design has no core to take to LLVM IR.
    #[error("step 5 (core LLVM IR): {} declares no aie.core", path.display())]
    NoCores {
        /// The stage read (build/2-resources.mlir).
        path: PathBuf,
    },
}

impl StepError {
    /// The steps that passed before the failure (empty when nothing ran to completion).
    pub fn completed(&self) -> &[StepRecord] {
        match self {
            StepError::Failed(f) => &f.completed,
            _ => &[],
        }
    }

    /// The number of the step that failed, when one did.
    pub fn step_number(&self) -> Option<usize> {
        match self {
            StepError::Failed(f) => Some(f.number),
            StepError::Spawn { number, .. } | StepError::MissingOutput { number, .. } => Some(*number),
            StepError::NoCores { .. } => Some(5),
            StepError::Io { .. } => None,
        }
    }
}

/// The two programs the steps run.
#[derive(Debug, Clone)]
pub struct Tools {
    /// mlir-aie's aie-opt.
    pub aie_opt: PathBuf,
    /// mlir-aie's aie-translate.
    pub aie_translate: PathBuf,
}

/// The tiles that hold a core, read from MLIR text in mlir-aie's custom syntax:
/// `%t = aie.tile(C, R)` ... `aie.core(%t)`.
pub(crate) fn find_cores(mlir: &str) -> Vec<Core> {
    let mut tiles = std::collections::HashMap::new();
    for (i, _) in mlir.match_indices(" = aie.tile(") {
        let name = mlir[..i].rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
        let args = &mlir[i + " = aie.tile(".len()..];
        let Some((args, _)) = args.split_once(')') else { continue };
        let Some((c, r)) = args.split_once(',') else { continue };
        if let (Ok(col), Ok(row)) = (c.trim().parse(), r.trim().parse()) {
            if name.starts_with('%') {
                tiles.insert(name, Core { col, row });
            }
        }
    }
    let mut cores = Vec::new();
    for (i, _) in mlir.match_indices("aie.core(") {
        let rest = &mlir[i + "aie.core(".len()..];
        let Some((name, _)) = rest.split_once(')') else { continue };
        if let Some(&core) = tiles.get(name.trim()) {
            if !cores.contains(&core) {
                cores.push(core);
            }
        }
    }
    cores
}

/// Runs the five steps on `design` into `out_dir` (stages in `out_dir/build/`, insts.bin in
/// `out_dir`), writing one line per finished step to `log`.
pub fn run(design: &Path, out_dir: &Path, target: Target, tools: &Tools, log: &mut dyn Write) -> Result<StepsReport, StepError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StepError::Io { path, source }
    };
    let work_dir = out_dir.join("build");
    std::fs::create_dir_all(&work_dir).map_err(io(&work_dir))?;
    remove_old_stages(&work_dir)?;
    let t = target.name();
    let mut runner = Runner {
        out_dir,
        work_dir: &work_dir,
        tools,
        completed: Vec::new(),
        log,
    };

    let aievec = work_dir.join("1-aievec.mlir");
    let pipeline = AIEVEC_PIPELINE.replace("@TARGET@", t);
    runner.step(1, |s| s.aie_opt(&pipeline, design, &aievec))?;

    let resources = work_dir.join("2-resources.mlir");
    runner.step(2, |s| s.aie_opt(RESOURCES_PIPELINE, &aievec, &resources))?;

    let routing = work_dir.join("3-routing.mlir");
    runner.step(3, |s| s.aie_opt(ROUTING_PIPELINE, &resources, &routing))?;

    let npu = work_dir.join("4-npu.mlir");
    let insts = out_dir.join("insts.bin");
    runner.step(4, |s| {
        s.aie_opt(NPU_PIPELINE, &routing, &npu)?;
        let mut cmd = Command::new(&s.tools.aie_translate);
        cmd.arg("--aie-npu-to-binary").arg("--aie-output-binary").arg(&npu).arg("-o").arg(&insts);
        s.command(cmd, &npu, &insts, "4-insts")
    })?;

    let text = std::fs::read_to_string(&resources).map_err(io(&resources))?;
    let cores = find_cores(&text);
    if cores.is_empty() {
        return Err(StepError::NoCores { path: resources });
    }
    runner.step(5, |s| {
        for &core in &cores {
            s.core = Some(core);
            let stem = format!("core_{}_{}", core.col, core.row);
            let mlir = s.work_dir.join(format!("{stem}.mlir"));
            let ll = s.work_dir.join(format!("{stem}.ll"));
            let pipeline = CORE_PIPELINE
                .replace("@COL@", &core.col.to_string())
                .replace("@ROW@", &core.row.to_string())
                .replace("@TARGET@", t);
            s.aie_opt(&pipeline, &resources, &mlir)?;
            let mut cmd = Command::new(&s.tools.aie_translate);
            cmd.arg("--mlir-to-llvmir").arg(&mlir).arg("-o").arg(&ll);
            s.command(cmd, &mlir, &ll, &format!("{stem}.ll"))?;
        }
        Ok(())
    })?;

    Ok(StepsReport {
        target,
        steps: runner.completed,
        cores,
        insts,
        work_dir,
    })
}

/// Removes the stages an earlier run left in `work_dir`, so that after a failure every stage
/// there is this run's (per-core files of cores the design no longer has would linger too).
fn remove_old_stages(work_dir: &Path) -> Result<(), StepError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StepError::Io { path, source }
    };
    for entry in std::fs::read_dir(work_dir).map_err(io(work_dir))? {
        let path = entry.map_err(io(work_dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let numbered = name.len() > 2 && name.as_bytes()[0].is_ascii_digit() && name.as_bytes()[1] == b'-';
        if (numbered || name.starts_with("core_")) && path.is_file() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

struct Runner<'a> {
    out_dir: &'a Path,
    work_dir: &'a Path,
    tools: &'a Tools,
    completed: Vec<StepRecord>,
    log: &'a mut dyn Write,
}

/// The state of the step being run: its commands and outputs so far.
struct Step<'a> {
    number: usize,
    work_dir: &'a Path,
    tools: &'a Tools,
    core: Option<Core>,
    commands: Vec<String>,
    outputs: Vec<PathBuf>,
    start: Instant,
}

impl Runner<'_> {
    fn step(&mut self, number: usize, body: impl FnOnce(&mut Step) -> Result<(), StepError>) -> Result<(), StepError> {
        let (name, title) = STEPS[number - 1];
        let mut step = Step {
            number,
            work_dir: self.work_dir,
            tools: self.tools,
            core: None,
            commands: Vec::new(),
            outputs: Vec::new(),
            start: Instant::now(),
        };
        let result = body(&mut step);
        let duration = step.start.elapsed();
        match result {
            Ok(()) => {
                let _ = writeln!(
                    self.log,
                    "step {number} {name:<10} ok   {:>6.2} s  {}",
                    duration.as_secs_f64(),
                    self.describe_outputs(&step.outputs)
                );
                self.completed.push(StepRecord {
                    number,
                    name,
                    title,
                    commands: step.commands,
                    duration,
                    outputs: step.outputs,
                });
                Ok(())
            }
            Err(mut e) => {
                let _ = writeln!(self.log, "step {number} {name:<10} FAIL {:>6.2} s", duration.as_secs_f64());
                if let StepError::Failed(f) = &mut e {
                    f.completed = std::mem::take(&mut self.completed);
                    f.duration = duration;
                }
                Err(e)
            }
        }
    }

    /// Outputs relative to the output directory; the per-core files of step 5 summarised.
    fn describe_outputs(&self, outputs: &[PathBuf]) -> String {
        let rel = |p: &PathBuf| p.strip_prefix(self.out_dir).unwrap_or(p).display().to_string();
        let ll: Vec<&PathBuf> = outputs.iter().filter(|p| p.extension().is_some_and(|e| e == "ll")).collect();
        match ll.as_slice() {
            [] => outputs.iter().map(rel).collect::<Vec<_>>().join(", "),
            [one] => format!("1 core: {}", rel(one)),
            [first, .., last] => format!("{} cores: {} .. {}", ll.len(), rel(first), rel(last)),
        }
    }
}

impl Step<'_> {
    fn aie_opt(&mut self, pipeline: &str, input: &Path, output: &Path) -> Result<(), StepError> {
        let mut cmd = Command::new(&self.tools.aie_opt);
        // Every stage keeps the locations of the op it came from, so a later step's diagnostic
        // still names the line of design.mlir (and through it the kernel's source line).
        cmd.arg(format!("--pass-pipeline={pipeline}"))
            .arg(input)
            .arg("-o")
            .arg(output)
            .arg("--mlir-print-debuginfo");
        let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        self.command(cmd, input, output, &stem)
    }

    /// Runs one command that reads `input` and must write `output`; its stderr, if any, is kept
    /// as `build/<stem>.stderr`.
    fn command(&mut self, mut cmd: Command, input: &Path, output: &Path, stem: &str) -> Result<(), StepError> {
        let (name, title) = STEPS[self.number - 1];
        let line = command_line(&cmd);
        // A stale output from an earlier build must not pass for this one.
        if output.exists() {
            std::fs::remove_file(output).map_err(|source| StepError::Io {
                path: output.to_path_buf(),
                source,
            })?;
        }
        let result = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).output();
        let out = result.map_err(|source| StepError::Spawn {
            number: self.number,
            name,
            program: PathBuf::from(cmd.get_program()),
            source,
        })?;
        self.commands.push(line.clone());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stderr_file = self.work_dir.join(format!("{stem}.stderr"));
        let kept = if stderr.trim().is_empty() {
            let _ = std::fs::remove_file(&stderr_file);
            None
        } else {
            std::fs::write(&stderr_file, &stderr).map_err(|source| StepError::Io {
                path: stderr_file.clone(),
                source,
            })?;
            Some(stderr_file)
        };
        if !out.status.success() {
            let status = match out.status.code() {
                Some(code) => format!("exit status {code}"),
                None => format!("terminated: {}", out.status),
            };
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
            return Err(StepError::Failed(Box::new(StepFailure {
                number: self.number,
                name,
                title,
                core: self.core,
                command_line: line,
                input: input.to_path_buf(),
                status,
                diagnostic: ToolDiagnostic::first_error(&stderr),
                stderr_tail: tail,
                stderr_file: kept,
                completed: Vec::new(),
                duration: Duration::ZERO,
            })));
        }
        if !output.is_file() {
            return Err(StepError::MissingOutput {
                number: self.number,
                name,
                path: output.to_path_buf(),
            });
        }
        self.outputs.push(output.to_path_buf());
        Ok(())
    }
}

fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:+,@%".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The command as a shell would take it (arguments quoted where needed).
pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_located_diagnostic() {
        let d = ToolDiagnostic::parse("/tmp/x/design.mlir:116:19: error: failed to legalize operation 'arith.mulf' that was explicitly marked illegal");
        assert_eq!(
            d.location,
            Some(DiagLocation {
                path: PathBuf::from("/tmp/x/design.mlir"),
                line: 116,
                col: 19
            })
        );
        assert_eq!(d.message, "error: failed to legalize operation 'arith.mulf' that was explicitly marked illegal");
        let plain = ToolDiagnostic::parse("error: could not open input file");
        assert_eq!((plain.location, plain.message.as_str()), (None, "error: could not open input file"));
        let stderr = "warning: x\n/a:b.mlir:3:4: error: boom\n/a.mlir:5:6: error: second\n";
        let first = ToolDiagnostic::first_error(stderr).unwrap();
        assert_eq!(first.location.unwrap().path, PathBuf::from("/a:b.mlir"));
        assert_eq!(first.message, "error: boom");
    }

    #[test]
    fn finds_cores_by_their_tiles() {
        let text = "%tile_0_2 = aie.tile(0, 2) {controller_id = #aie.packet_info<pkt_type = 0, pkt_id = 27>}\n\
                    %mem_tile_0_1 = aie.tile(0, 1)\n    %t13 = aie.tile(1, 3)\n\
                    %core_0_2 = aie.core(%tile_0_2) {\n aie.end\n}\n aie.mem(%mem_tile_0_1) {}\n aie.core(%t13) {}\n";
        assert_eq!(find_cores(text), vec![Core { col: 0, row: 2 }, Core { col: 1, row: 3 }]);
        assert!(find_cores("module {}").is_empty());
    }

    #[test]
    fn devices_map_to_targets() {
        assert_eq!(Target::for_device("npu1"), Some(Target::Aie2));
        assert_eq!(Target::for_device("npu1_4col"), Some(Target::Aie2));
        assert_eq!(Target::for_device("npu2"), Some(Target::Aie2p));
        assert_eq!(Target::for_device("xcve2802"), None);
        assert!(!CORE_PIPELINE
            .replace("@COL@", "1")
            .replace("@ROW@", "2")
            .replace("@TARGET@", "aie2")
            .contains('@'));
    }
}
