//! `aiec build`: from `design.mlir` to `final.xclbin` + `insts.bin` with mlir-aie and Peano.
//!
//! The flow has two parts:
//!
//! 1. **The five steps before core compilation** ([`super::steps`]), each an explicit `aie-opt`
//!    pass pipeline (plus `aie-translate` for insts.bin and the cores' LLVM IR): cores to AIE
//!    vector ops, buffers/locks/DMAs, routing, NPU instructions, each core to LLVM IR. Every stage
//!    is left in `build/` with a numbered name and insts.bin in the output directory. A design
//!    mlir-aie cannot lower fails here in a named step with the first diagnostic, and all of this
//!    runs without Peano.
//! 2. **aiecc** — `aiecc --no-xchesscc --no-xbridge --peano DIR --no-compile-host
//!    --tmpdir build/aiecc.prj --aie-generate-xclbin --xclbin-name=final.xclbin
//!    --aie-generate-npu-insts --npu-insts-name=insts.bin design.mlir`, run in the output
//!    directory (aiecc writes both names relative to its working directory). It needs Peano,
//!    bootgen and xclbinutil; when one of them is missing the build stops after the five steps
//!    and says what is missing ([`Until::CoreLlvm`] asks for that end on purpose).
//!
//! Why aiecc rather than spelling out Peano / bootgen / xclbinutil too: after the core LLVM IR
//! come one Peano compile and link per core with a generated linker script, CDO generation, a
//! bootgen BIF and an xclbinutil call with generated partition and kernel JSON. That is mlir-aie's
//! own and changes between its releases; aiecc is the driver mlir-aie ships and tests for exactly
//! this (its npu-xrt tests build with the flags above), so following it keeps `aiec build` working
//! across mlir-aie versions. `--no-xchesscc --no-xbridge --peano` selects the open Peano path
//! instead of AMD's proprietary Vitis compiler. aiecc gets design.mlir and runs its own copy of
//! the five steps: the explicit ones are the check and the inspectable record, not its input.
//!
//! aie-opt and aie-translate are looked up before anything runs; a missing one is a
//! [`BuildError::MissingTool`] naming the others.

use super::config::{Tool, Toolchain};
use super::steps::{self, StepError, StepsReport, Target};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// Lines of a failing step's stderr kept in [`BuildError::StepFailed`].
pub(crate) const STDERR_TAIL_LINES: usize = 30;

/// Tools the build needs, in the order they are reported missing.
pub(crate) const BUILD_TOOLS: [Tool; 6] = [Tool::AieOpt, Tool::AieTranslate, Tool::Aiecc, Tool::PeanoClang, Tool::Bootgen, Tool::Xclbinutil];

/// Tools the five steps up to the cores' LLVM IR need.
pub(crate) const STEP_TOOLS: [Tool; 2] = [Tool::AieOpt, Tool::AieTranslate];

/// Tools needed after the cores' LLVM IR to get final.xclbin.
pub(crate) const XCLBIN_TOOLS: [Tool; 4] = [Tool::PeanoClang, Tool::Aiecc, Tool::Bootgen, Tool::Xclbinutil];

/// Where the build is to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// After step 5: the cores' LLVM IR and insts.bin, no Peano needed.
    CoreLlvm,
    /// final.xclbin, when Peano, aiecc, bootgen and xclbinutil are there.
    Xclbin,
}

/// What a build leaves in the output directory.
#[derive(Debug, Clone)]
pub struct BuildOutputs {
    /// The five steps, with their times and outputs, and the cores taken to LLVM IR.
    pub steps: StepsReport,
    /// The NPU instruction stream (`insts.bin` in the output directory).
    pub insts: PathBuf,
    /// Number of 32-bit words in insts.bin.
    pub insts_words: usize,
    /// `None` when the build ended after step 5.
    pub xclbin: Option<PathBuf>,
    /// Why it ended after step 5 without being asked to: the tools final.xclbin needs that are
    /// missing (empty otherwise).
    pub missing: Vec<Tool>,
    /// build/ under the output directory: every stage and aiecc's project directory.
    pub work_dir: PathBuf,
    /// Every command line, in the order run.
    pub commands: Vec<String>,
}

impl BuildOutputs {
    /// The line that says why the build stopped before final.xclbin, when it did.
    pub fn stop_message(&self) -> Option<String> {
        (self.xclbin.is_none() && !self.missing.is_empty()).then(|| stop_message(&self.missing))
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// aie-opt or aie-translate is not installed (nothing ran).
    #[error("{tool} not found: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// What to install or set, and which other tools are missing too.
        hint: String,
    },
    /// One of the five steps failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// final.xclbin was asked for but tools after step 5 are missing.
    #[error("{}", stop_message(missing))]
    StoppedAfterLlvm {
        /// The missing tools.
        missing: Vec<Tool>,
    },
    /// A tool run after the five steps (aiecc) failed.
    #[error("step '{step}' failed ({status})\n  command: {command_line}\n{stderr_tail}")]
    StepFailed {
        /// The step's name.
        step: String,
        /// The command, as a shell would take it.
        command_line: String,
        /// Its exit status.
        status: String,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// A tool succeeded without writing the file it was run for.
    #[error("step '{step}' finished but did not write {}", path.display())]
    MissingOutput {
        /// The step's name.
        step: String,
        /// The file expected.
        path: PathBuf,
    },
    /// A file or a process could not be read, written or started.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or program.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The design is for another device than the build was asked for.
    #[error("{}: the design targets aie.device({found}) but the build was asked for {requested}", path.display())]
    DeviceMismatch {
        /// The design.
        path: PathBuf,
        /// The device its `aie.device` names.
        found: String,
        /// The device asked for.
        requested: String,
    },
    /// The input has no `aie.device` op.
    #[error("{}: no aie.device(...) op found: not an MLIR-AIE design", path.display())]
    NotADesign {
        /// The input.
        path: PathBuf,
    },
    /// A device other than npu1 and npu2 was asked for.
    #[error("unknown device '{device}': expected npu1 or npu2")]
    UnknownDevice {
        /// The name given.
        device: String,
    },
    /// insts.bin is not a valid instruction stream.
    #[error("{}: {message}", path.display())]
    BadInstructions {
        /// insts.bin.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// The one line saying that the build stopped after the cores' LLVM IR, what for each missing
/// tool is needed for, and where to point aiec at it.
pub(crate) fn stop_message(missing: &[Tool]) -> String {
    let peano = missing.contains(&Tool::PeanoClang);
    let others: Vec<&str> = missing.iter().filter(|&&t| t != Tool::PeanoClang).map(|t| t.key()).collect();
    let others_text = match others.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let mut need = String::new();
    if peano {
        need.push_str("Peano (llvm-aie) is needed to compile the cores to ELF and build final.xclbin");
        if !others.is_empty() {
            need.push_str(&format!(", and {others_text} to link and pack it"));
        }
    } else {
        let verb = if others.len() == 1 { "is" } else { "are" };
        need.push_str(&format!("{others_text} {verb} needed to link the cores and pack final.xclbin"));
    }
    let mut set = Vec::new();
    if peano {
        set.push("[peano] install_dir in toolchain.toml or PEANO_INSTALL_DIR".to_string());
    }
    let from_mlir_aie: Vec<&str> = missing.iter().filter(|t| matches!(t, Tool::Aiecc | Tool::Bootgen)).map(|t| t.key()).collect();
    if !from_mlir_aie.is_empty() {
        set.push(format!(
            "[mlir-aie] install_dir or MLIR_AIE_INSTALL_DIR to an mlir-aie install with {}",
            from_mlir_aie.join(" and ")
        ));
    }
    if missing.contains(&Tool::Xclbinutil) {
        set.push("[xrt] prefix or XILINX_XRT to XRT for xclbinutil".to_string());
    }
    let set_text = match set.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    };
    let found = if missing.len() > 1 { "; none of them was found: set" } else { "; set" };
    format!("stopped after step 5 (core LLVM IR): {need}{found} {set_text} (`aiec doctor` lists what is missing)")
}

/// Builds `design_mlir` for `device` into `out_dir/final.xclbin` and `out_dir/insts.bin`; a
/// missing tool after step 5 is [`BuildError::StoppedAfterLlvm`].
pub fn build(design_mlir: &Path, out_dir: &Path, device: &str, tc: &Toolchain, log: &mut dyn Write) -> Result<BuildOutputs, BuildError> {
    let built = build_until(design_mlir, out_dir, device, tc, Until::Xclbin, log)?;
    if built.xclbin.is_none() {
        return Err(BuildError::StoppedAfterLlvm { missing: built.missing });
    }
    Ok(built)
}

/// Runs the five steps, then — for [`Until::Xclbin`] and with every tool there — aiecc. With
/// tools missing after step 5 it returns what the steps produced, `xclbin: None` and the missing
/// tools. Tool output is streamed to `log` as it comes.
pub fn build_until(design_mlir: &Path, out_dir: &Path, device: &str, tc: &Toolchain, until: Until, log: &mut dyn Write) -> Result<BuildOutputs, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let target = Target::for_device(device).ok_or_else(|| BuildError::UnknownDevice { device: device.to_string() })?;
    // The step tools must be there; everything else missing is named with them.
    let needed: &[Tool] = match until {
        Until::CoreLlvm => &STEP_TOOLS,
        Until::Xclbin => &BUILD_TOOLS,
    };
    let missing: Vec<Tool> = needed.iter().copied().filter(|&t| tc.find(t).is_none()).collect();
    let (aie_opt, aie_translate) = match (tc.find(Tool::AieOpt), tc.find(Tool::AieTranslate)) {
        (Some(opt), Some(translate)) => (opt.path, translate.path),
        _ => {
            // `needed` lists the step tools first, so the first missing one is one of them.
            let first = missing.first().copied().unwrap_or(Tool::AieOpt);
            let mut hint = tc.hint(first);
            let others: Vec<&str> = missing.iter().filter(|&&t| t != first).map(|t| t.key()).collect();
            if !others.is_empty() {
                hint.push_str(&format!(" (also missing: {}; `aiec doctor` lists everything)", others.join(", ")));
            }
            return Err(BuildError::MissingTool {
                tool: first.key().to_string(),
                hint,
            });
        }
    };

    let text = std::fs::read_to_string(design_mlir).map_err(io(design_mlir))?;
    match design_device(&text) {
        None => {
            return Err(BuildError::NotADesign {
                path: design_mlir.to_path_buf(),
            })
        }
        Some(found) if !device_matches(&found, device) => {
            return Err(BuildError::DeviceMismatch {
                path: design_mlir.to_path_buf(),
                found,
                requested: device.to_string(),
            })
        }
        Some(_) => {}
    }

    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let out_dir = out_dir.canonicalize().map_err(io(out_dir))?;
    let design_mlir = design_mlir.canonicalize().map_err(io(design_mlir))?;
    let work_dir = out_dir.join("build");
    std::fs::create_dir_all(&work_dir).map_err(io(&work_dir))?;
    let xclbin = out_dir.join("final.xclbin");
    let insts = out_dir.join("insts.bin");
    // A stale result from an earlier build must not pass for this one.
    for old in [&xclbin, &insts] {
        if old.exists() {
            std::fs::remove_file(old).map_err(io(old))?;
        }
    }

    let _ = writeln!(log, "build: mlir-aie steps for {target} with {}", aie_opt.display());
    let tools = steps::Tools { aie_opt, aie_translate };
    let report = steps::run(&design_mlir, &out_dir, target, &tools, log)?;
    let mut commands: Vec<String> = report.steps.iter().flat_map(|s| s.commands.iter().cloned()).collect();
    let words = read_words(&insts)?;

    let missing: Vec<Tool> = missing.into_iter().filter(|t| XCLBIN_TOOLS.contains(t)).collect();
    if until == Until::CoreLlvm || !missing.is_empty() {
        return Ok(BuildOutputs {
            steps: report,
            insts,
            insts_words: words,
            xclbin: None,
            missing,
            work_dir,
            commands,
        });
    }

    let tool = |t: Tool| tc.find(t).map(|f| f.path).unwrap_or_default();
    // aiecc takes Peano's install dir: the configured one, else the one holding bin/clang.
    let clang = tool(Tool::PeanoClang);
    let peano = match &tc.peano {
        Some(dir) => dir.value.clone(),
        None => clang.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default(),
    };
    let env = tc.tool_env();
    let mut aiecc = Command::new(tool(Tool::Aiecc));
    aiecc
        .arg("--no-xchesscc")
        .arg("--no-xbridge")
        .arg("--peano")
        .arg(&peano)
        .arg("--no-compile-host")
        .arg("--tmpdir")
        .arg(work_dir.join("aiecc.prj"))
        .arg("--aie-generate-xclbin")
        .arg("--xclbin-name=final.xclbin")
        .arg("--aie-generate-npu-insts")
        .arg("--npu-insts-name=insts.bin")
        .arg(&design_mlir)
        .current_dir(&out_dir);
    commands.push(run_step("aiecc", &mut aiecc, &env, log)?);
    if !xclbin.is_file() {
        return Err(BuildError::MissingOutput {
            step: "aiecc".into(),
            path: xclbin,
        });
    }
    // aiecc rewrites insts.bin with its own copy of step 4.
    let words = read_words(&insts)?;
    let _ = writeln!(log, "build: {} and {} ({words} instruction words)", xclbin.display(), insts.display());
    Ok(BuildOutputs {
        steps: report,
        insts,
        insts_words: words,
        xclbin: Some(xclbin),
        missing: Vec::new(),
        work_dir,
        commands,
    })
}

fn read_words(insts: &Path) -> Result<usize, BuildError> {
    aiec_runtime::insts::read_insts(insts)
        .map(|w| w.len())
        .map_err(|e| BuildError::BadInstructions {
            path: insts.to_path_buf(),
            message: e.to_string(),
        })
}

/// The device named by the first `aie.device(...)` op, in custom or generic form.
pub(crate) fn design_device(mlir: &str) -> Option<String> {
    if let Some(i) = mlir.find("aie.device(") {
        let rest = &mlir[i + "aie.device(".len()..];
        return rest.split(')').next().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    }
    // Generic form: "aie.device"() <{device = 1 : i32}> — the enum number, not the name.
    if let Some(i) = mlir.find("\"aie.device\"") {
        let rest = &mlir[i..];
        let start = rest.find("device =")? + "device =".len();
        let value = rest[start..].split([':', '}', ',']).next()?.trim();
        return Some(value.to_string());
    }
    None
}

/// `npu1` accepts the whole-array device names that start with it (`npu1`, `npu1_4col`, ...).
fn device_matches(found: &str, requested: &str) -> bool {
    if found.chars().all(|c| c.is_ascii_digit()) {
        return true; // generic form holds the enum's number; aie-opt checks it
    }
    found == requested || found.strip_prefix(requested).map(|rest| rest.starts_with('_')).unwrap_or(false)
}

enum Chunk {
    Out(String),
    Err(String),
}

fn pump<R: Read + Send + 'static>(reader: R, tx: mpsc::Sender<Chunk>, is_err: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let _ = tx.send(if is_err { Chunk::Err(text) } else { Chunk::Out(text) });
            line.clear();
        }
    })
}

/// Runs one step, streaming its stdout and stderr to `log` line by line; returns its command line.
fn run_step(step: &str, cmd: &mut Command, env: &[(String, std::ffi::OsString)], log: &mut dyn Write) -> Result<String, BuildError> {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let line = steps::command_line(cmd);
    let _ = writeln!(log, "build [{step}]: {line}");
    let program = PathBuf::from(cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Io { path: program, source })?;
    let (tx, rx) = mpsc::channel();
    let threads = [
        pump(child.stdout.take().expect("piped"), tx.clone(), false),
        pump(child.stderr.take().expect("piped"), tx, true),
    ];
    let mut stderr_lines: Vec<String> = Vec::new();
    for chunk in rx {
        match chunk {
            Chunk::Out(s) => {
                let _ = log.write_all(s.as_bytes());
            }
            Chunk::Err(s) => {
                let _ = log.write_all(s.as_bytes());
                stderr_lines.push(s.trim_end().to_string());
                if stderr_lines.len() > STDERR_TAIL_LINES {
                    stderr_lines.remove(0);
                }
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let status: ExitStatus = child.wait().map_err(|source| BuildError::Io {
        path: PathBuf::from(cmd.get_program()),
        source,
    })?;
    let _ = log.flush();
    if status.success() {
        Ok(line)
    } else {
        let status = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("terminated: {status}"),
        };
        Err(BuildError::StepFailed {
            step: step.to_string(),
            command_line: line,
            status,
            stderr_tail: stderr_lines.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_device_in_both_forms() {
        assert_eq!(design_device("module {\n  aie.device(npu1) {\n").as_deref(), Some("npu1"));
        assert_eq!(design_device("\"aie.device\"() <{device = 4 : i32}> ({").as_deref(), Some("4"));
        assert_eq!(design_device("module {}"), None);
        assert!(device_matches("npu1_4col", "npu1"));
        assert!(!device_matches("npu2", "npu1"));
        assert!(!device_matches("npu12", "npu1"));
    }

    #[test]
    fn quotes_what_a_shell_would_split() {
        let mut cmd = Command::new("aiecc");
        cmd.arg("--xclbin-name=final.xclbin").arg("a b");
        assert_eq!(steps::command_line(&cmd), "aiecc --xclbin-name=final.xclbin 'a b'");
    }

    #[test]
    fn the_stop_line_names_every_missing_tool() {
        assert_eq!(
            stop_message(&[Tool::PeanoClang]),
            "stopped after step 5 (core LLVM IR): Peano (llvm-aie) is needed to compile the cores to ELF and build final.xclbin; set [peano] install_dir in toolchain.toml or PEANO_INSTALL_DIR (`aiec doctor` lists what is missing)"
        );
        let all = stop_message(&XCLBIN_TOOLS);
        for t in XCLBIN_TOOLS.iter().skip(1) {
            assert!(all.contains(t.key()), "{all}");
        }
        assert!(
            all.contains("Peano (llvm-aie)") && all.contains("XILINX_XRT") && all.contains("none of them"),
            "{all}"
        );
        let one = stop_message(&[Tool::Xclbinutil]);
        assert!(
            one.contains("xclbinutil is needed to link the cores and pack final.xclbin; set [xrt] prefix"),
            "{one}"
        );
    }
}
