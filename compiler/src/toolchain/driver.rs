//! `aiec build`: from `design.mlir` to `final.xclbin` + `insts.bin` with mlir-aie and Peano.
//!
//! The flow has two steps:
//!
//! 1. **verify** — `aie-opt design.mlir -o build/design.verified.mlir`. mlir-aie's own parser
//!    and verifiers check what the compiler emitted against the real aie/aiex op definitions and
//!    re-print it in canonical custom form. A mismatch with mlir-aie's dialects fails here, in a
//!    step of a few milliseconds whose stderr names the op, not deep inside the next one.
//! 2. **aiecc** — `aiecc --no-xchesscc --no-xbridge --peano DIR --no-compile-host
//!    --tmpdir build/aiecc.prj --aie-generate-xclbin --xclbin-name=final.xclbin
//!    --aie-generate-npu-insts --npu-insts-name=insts.bin build/design.verified.mlir`, run in the
//!    output directory (aiecc writes both names relative to its working directory).
//!
//! Why aiecc rather than spelling out aie-opt / aie-translate / Peano / bootgen / xclbinutil:
//! between the MLIR and the xclbin sit a long pass pipeline (object FIFO lowering, buffer and lock
//! allocation, routing, DMA and core lowering), one Peano compile and link per core with a
//! generated linker script, CDO generation, a bootgen BIF and an xclbinutil call with generated
//! partition and kernel JSON. That pipeline is mlir-aie's own and changes between its releases;
//! aiecc is the driver mlir-aie ships and tests for exactly this (its npu-xrt tests build with the
//! flags above), so following it keeps `aiec build` working across mlir-aie versions. `--no-xchesscc
//! --no-xbridge --peano` selects the open Peano path instead of AMD's proprietary Vitis compiler.
//!
//! Every tool the flow needs (aie-opt, aiecc, Peano's clang, bootgen, xclbinutil) is looked up
//! before anything runs; the first missing one is a [`BuildError::MissingTool`] naming the others.

use super::config::{Tool, Toolchain};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// Lines of a failing step's stderr kept in [`BuildError::StepFailed`].
pub const STDERR_TAIL_LINES: usize = 30;

/// Tools the build needs, in the order they are reported missing.
pub const BUILD_TOOLS: [Tool; 5] = [Tool::AieOpt, Tool::Aiecc, Tool::PeanoClang, Tool::Bootgen, Tool::Xclbinutil];

/// What a successful build leaves in the output directory.
#[derive(Debug, Clone)]
pub struct BuildOutputs {
    pub xclbin: PathBuf,
    pub insts: PathBuf,
    /// Number of 32-bit words in insts.bin.
    pub insts_words: usize,
    /// build/ under the output directory: the verified MLIR and aiecc's project directory.
    pub work_dir: PathBuf,
    /// Each step's command line, in the order run.
    pub steps: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{tool} not found: {hint}")]
    MissingTool { tool: String, hint: String },
    #[error("step '{step}' failed ({status})\n  command: {command_line}\n{stderr_tail}")]
    StepFailed {
        step: String,
        command_line: String,
        status: String,
        stderr_tail: String,
    },
    #[error("step '{step}' finished but did not write {}", path.display())]
    MissingOutput { step: String, path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the design targets aie.device({found}) but the build was asked for {requested}", path.display())]
    DeviceMismatch { path: PathBuf, found: String, requested: String },
    #[error("{}: no aie.device(...) op found: not an MLIR-AIE design", path.display())]
    NotADesign { path: PathBuf },
    #[error("{}: {message}", path.display())]
    BadInstructions { path: PathBuf, message: String },
}

/// Builds `design_mlir` for `device` into `out_dir/final.xclbin` and `out_dir/insts.bin`.
/// Tool output is streamed to `log` as it comes.
pub fn build(design_mlir: &Path, out_dir: &Path, device: &str, tc: &Toolchain, log: &mut dyn Write) -> Result<BuildOutputs, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    // Everything missing is found before anything runs.
    let missing: Vec<Tool> = BUILD_TOOLS.into_iter().filter(|&t| tc.find(t).is_none()).collect();
    if let Some(&first) = missing.first() {
        let mut hint = tc.hint(first);
        if missing.len() > 1 {
            let others: Vec<&str> = missing[1..].iter().map(|t| t.key()).collect();
            hint.push_str(&format!(" (also missing: {}; `aiec doctor` lists everything)", others.join(", ")));
        }
        return Err(BuildError::MissingTool {
            tool: first.key().to_string(),
            hint,
        });
    }
    let tool = |t: Tool| tc.find(t).expect("checked above").path;

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
    let env = tc.tool_env();
    let mut steps = Vec::new();

    let verified = work_dir.join("design.verified.mlir");
    let mut verify = Command::new(tool(Tool::AieOpt));
    verify.arg(&design_mlir).arg("-o").arg(&verified).current_dir(&out_dir);
    steps.push(run_step("verify (aie-opt)", &mut verify, &env, log)?);
    if !verified.is_file() {
        return Err(BuildError::MissingOutput {
            step: "verify (aie-opt)".into(),
            path: verified,
        });
    }

    let peano = tc.peano.as_ref().expect("Peano's clang was found under it").value.clone();
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
        .arg(&verified)
        .current_dir(&out_dir);
    steps.push(run_step("aiecc", &mut aiecc, &env, log)?);
    for out in [&xclbin, &insts] {
        if !out.is_file() {
            return Err(BuildError::MissingOutput {
                step: "aiecc".into(),
                path: out.clone(),
            });
        }
    }
    let words = aiec_runtime::insts::read_insts(&insts).map_err(|e| BuildError::BadInstructions {
        path: insts.clone(),
        message: e.to_string(),
    })?;
    let _ = writeln!(log, "build: {} and {} ({} instruction words)", xclbin.display(), insts.display(), words.len());
    Ok(BuildOutputs {
        xclbin,
        insts,
        insts_words: words.len(),
        work_dir,
        steps,
    })
}

/// The device named by the first `aie.device(...)` op, in custom or generic form.
pub fn design_device(mlir: &str) -> Option<String> {
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

fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:+,@%".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
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
    let line = command_line(cmd);
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
        assert_eq!(quote("--xclbin-name=final.xclbin"), "--xclbin-name=final.xclbin");
        assert_eq!(quote("a b"), "'a b'");
    }
}
