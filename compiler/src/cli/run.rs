//! `aiec emulate`, `aiec run`, `aiec build`, `aiec doctor`.

use super::{compile_to_dir, device_model, CliError};
use aiec::hostdata;
use aiec::toolchain;
use aiec::toolchain::Until;
use aiec_runtime::artifact::{ArgDirection, ArtifactDir, DesignJson};
use aiec_runtime::emulator::Emulator;
use aiec_runtime::npu::NpuBackend;
use aiec_runtime::{Backend, HostBuffer};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub(crate) struct EmulateArgs {
    /// design.mlir (aiec's output or a hand-written mlir-aie design)
    design: PathBuf,
    /// initialise runtime-sequence argument I (0-based index or name) from a .npy file
    #[arg(long = "arg", value_name = "I=IN.npy")]
    args: Vec<String>,
    /// after the run, write argument I to a .npy file
    #[arg(long = "out", value_name = "I=OUT.npy")]
    outs: Vec<String>,
    /// run core code without the emulator's bounds checks (faster; an out-of-bounds access in a core may then
    /// crash the process or corrupt its memory)
    #[arg(long)]
    unchecked: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum BackendChoice {
    /// the NPU when one is usable, else the emulator (says which and why)
    Auto,
    Emulator,
    Npu,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// the .tile kernel
    file: PathBuf,
    /// run on the host emulator
    #[arg(long, conflicts_with_all = ["npu", "backend"])]
    emulate: bool,
    /// run on the NPU through XRT (needs `aiec build` prerequisites)
    #[arg(long, conflicts_with = "backend")]
    npu: bool,
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    #[arg(long, value_name = "npu1|npu2")]
    device: Option<String>,
    /// seed of the random inputs
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// artifact directory (default: a temporary one)
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    out: Option<PathBuf>,
    /// on the emulator, run core code without bounds checks (faster; an out-of-bounds access in a core may
    /// then crash the process or corrupt its memory)
    #[arg(long)]
    unchecked: bool,
}

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// a .tile kernel or a design.mlir
    file: PathBuf,
    #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, value_name = "npu1|npu2")]
    device: Option<String>,
    /// end after step 5 (the cores' LLVM IR and insts.bin), which needs no Peano: exit 0 there
    #[arg(long)]
    stop_after_llvm: bool,
    /// also print each step to stdout as tab-separated lines for scripts:
    /// `step N NAME ok|FAIL SECONDS`, then `cores N` (the cores taken to LLVM IR)
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    tools: ToolFlags,
}

#[derive(Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    tools: ToolFlags,
}

#[derive(Args, Default)]
pub(crate) struct ToolFlags {
    /// toolchain.toml to use (default: found by walking up from the current directory)
    #[arg(long, value_name = "FILE")]
    toolchain: Option<PathBuf>,
    /// mlir-aie install directory (overrides toolchain.toml and MLIR_AIE_INSTALL_DIR)
    #[arg(long = "mlir-aie", value_name = "DIR")]
    mlir_aie: Option<PathBuf>,
    /// Peano (llvm-aie) install directory (overrides PEANO_INSTALL_DIR)
    #[arg(long, value_name = "DIR")]
    peano: Option<PathBuf>,
    /// XRT prefix (overrides XILINX_XRT)
    #[arg(long, value_name = "DIR")]
    xrt: Option<PathBuf>,
}

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("error: {msg}"))
}

/// `I=path` -> (argument index, path), checking I against design.json or the sequence signature.
fn parse_binding(spec: &str, json: &DesignJson, flag: &str) -> Result<(usize, PathBuf), CliError> {
    let (key, path) = spec
        .split_once('=')
        .ok_or_else(|| CliError::Usage(format!("{flag} {spec}: expected I=FILE.npy")))?;
    let index = json.arg_index(key).ok_or_else(|| {
        let names: Vec<String> = json.arguments.iter().enumerate().map(|(i, a)| format!("{i}={}", a.name)).collect();
        CliError::Usage(format!("{flag} {spec}: no runtime-sequence argument '{key}' (arguments: {})", names.join(", ")))
    })?;
    Ok((index, PathBuf::from(path)))
}

pub(crate) fn emulate(a: EmulateArgs) -> Result<i32, CliError> {
    let text = std::fs::read_to_string(&a.design).map_err(|e| failed(format!("{}: {e}", a.design.display())))?;
    let json_path = a.design.with_file_name("design.json");
    // The MLIR's own signature (checked against the emulator's host limit before anything is allocated);
    // a design.json beside it must agree with it.
    let from_mlir = aiec_runtime::emulator::design_json_from_mlir(&text, &a.design.display().to_string()).map_err(failed)?;
    let json = if json_path.exists() {
        let json = DesignJson::read(&json_path).map_err(failed)?;
        let same = json.arguments.len() == from_mlir.arguments.len()
            && json.arguments.iter().zip(&from_mlir.arguments).all(|(j, m)| {
                // design.json may give a flat memref its tensor's shape: the element counts must agree.
                let count = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                j.dtype == m.dtype && count(&j.shape) == count(&m.shape)
            });
        if !same {
            return Err(failed(format!(
                "{}: its arguments do not match the runtime sequence of {}",
                json_path.display(),
                a.design.display()
            )));
        }
        json
    } else {
        from_mlir
    };
    // Every input needs exactly one --arg.
    let mut bindings: Vec<(usize, PathBuf)> = Vec::new();
    for spec in &a.args {
        let (i, path) = parse_binding(spec, &json, "--arg")?;
        if let Some(p) = bindings.iter().position(|(j, _)| *j == i) {
            return Err(CliError::Usage(format!(
                "--arg {spec}: argument {i} ({}) is already given by --arg {}",
                json.arguments[i].name, a.args[p]
            )));
        }
        bindings.push((i, path));
    }
    let mut outs = Vec::new();
    for spec in &a.outs {
        outs.push(parse_binding(spec, &json, "--out")?);
    }
    let mut given: Vec<Option<HostBuffer>> = json.arguments.iter().map(|_| None).collect();
    for (i, path) in &bindings {
        let arg = &json.arguments[*i];
        given[*i] = Some(aiec_runtime::npy::read_npy(path, arg.dtype, &arg.shape).map_err(failed)?);
    }
    let missing: Vec<String> = json
        .arguments
        .iter()
        .enumerate()
        .filter(|(i, arg)| arg.direction == ArgDirection::In && !bindings.iter().any(|(j, _)| j == i))
        .map(|(i, arg)| format!("{i} ({})", arg.name))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "no --arg for input argument{} {}: give each input as --arg NAME=FILE.npy",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        )));
    }
    let mut bufs: Vec<HostBuffer> = given
        .into_iter()
        .zip(&json.arguments)
        .map(|(g, arg)| g.unwrap_or_else(|| HostBuffer::for_arg(arg)))
        .collect();
    let mut emu = Emulator::new();
    emu.unchecked = a.unchecked;
    let start = Instant::now();
    let report = emu.run_mlir(&text, &a.design.display().to_string(), &mut bufs).map_err(failed)?;
    for (i, path) in outs {
        aiec_runtime::npy::write_npy(&path, &bufs[i]).map_err(failed)?;
    }
    println!(
        "emulated {}: {} cores, {} DMA transfers, {:.1} ms (JIT {:.1} ms, run {:.1} ms)",
        a.design.display(),
        report.cores,
        report.dma_transfers,
        start.elapsed().as_secs_f64() * 1e3,
        report.prepare.as_secs_f64() * 1e3,
        report.run.as_secs_f64() * 1e3
    );
    Ok(0)
}

pub(crate) fn run(a: RunArgs) -> Result<i32, CliError> {
    let device = device_model(a.device.as_deref())?;
    let choice = if a.emulate {
        BackendChoice::Emulator
    } else if a.npu {
        BackendChoice::Npu
    } else {
        a.backend
            .ok_or_else(|| CliError::Usage("choose a backend: --emulate, --npu or --backend auto|emulator|npu".into()))?
    };
    // Without -o the artifacts go to a temporary directory removed when the run ends.
    let _scratch;
    let out = match a.out.clone() {
        Some(d) => d,
        None => {
            _scratch = ScratchDir::new()?;
            _scratch.0.clone()
        }
    };
    let t0 = Instant::now();
    let (dir, compiled) = compile_to_dir(&a.file, Some(out), &device)?;
    let compile_time = t0.elapsed();

    let emulator = || {
        let mut e = Emulator::new();
        e.unchecked = a.unchecked;
        Box::new(e)
    };
    let mut backend: Box<dyn Backend> = match choice {
        BackendChoice::Emulator => emulator(),
        BackendChoice::Npu => npu_backend(&dir, device.name)?,
        BackendChoice::Auto => match NpuBackend::probe() {
            Ok(()) => {
                eprintln!("backend: npu (an NPU and XRT are usable)");
                npu_backend(&dir, device.name)?
            }
            Err(why) => {
                eprintln!("backend: emulator (no usable NPU: {why})");
                emulator()
            }
        },
    };

    let kernel = &compiled.kernel;
    let (inputs, mut bufs) = hostdata::try_random_arguments(&compiled.json.arguments, a.seed, |_, _| {}).map_err(failed)?;
    let t1 = Instant::now();
    let expected = aiec::reference::run_reference_with_bounds(kernel, &inputs).map_err(failed)?;
    let reference_time = t1.elapsed();
    let report = backend.run(&dir, &mut bufs).map_err(failed)?;

    let mut all_ok = true;
    let outs: Vec<usize> = compiled
        .json
        .arguments
        .iter()
        .enumerate()
        .filter(|(_, a)| a.direction == ArgDirection::Out)
        .map(|(i, _)| i)
        .collect();
    for (k, &i) in outs.iter().enumerate() {
        let arg = &compiled.json.arguments[i];
        let got = hostdata::try_from_buffer(&bufs[i]).map_err(failed)?;
        let (want, bound) = &expected[k];
        let c = hostdata::compare_bounded(&got, want, bound, arg.dtype);
        all_ok &= c.passed();
        let verdict = verdict(&c);
        println!("{} {}{:?} vs reference: {}", arg.name, arg.dtype, arg.shape, verdict);
    }
    println!(
        "{}: compile {:.1} ms, {} prepare {:.1} ms, run {:.1} ms, reference {:.1} ms",
        kernel.name,
        compile_time.as_secs_f64() * 1e3,
        report.backend,
        report.prepare.as_secs_f64() * 1e3,
        report.run.as_secs_f64() * 1e3,
        reference_time.as_secs_f64() * 1e3
    );
    if let Some(e) = &compiled.json.estimate {
        println!(
            "{} estimate: {:.3} ms ({} MACs, {} compute cycles, {} DMA bytes) — {}",
            device.name,
            e.estimated_seconds * 1e3,
            e.macs,
            e.compute_cycles,
            e.dma_bytes,
            e.note
        );
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// How an output compared with the reference's values and error bounds, for `aiec run`.
fn verdict(c: &hostdata::Comparison) -> String {
    let at = |index: &[usize]| format!("{index:?}");
    let unbounded = match c.unbounded {
        0 => String::new(),
        1 => "; 1 element has no finite bound (not checked)".to_string(),
        n => format!("; {n} elements have no finite bound (not checked)"),
    };
    if c.exact {
        return "bit-exact match".to_string();
    }
    let Some(w) = &c.worst else {
        return format!("no element has a finite error bound: nothing checked{unbounded}");
    };
    if c.passed() {
        return format!(
            "every element within its error bound (worst {} of its bound at {}){unbounded}",
            fraction(w.fraction),
            at(&w.index)
        );
    }
    let what = if c.mismatches == 1 {
        "element outside its error bound"
    } else {
        "elements outside their error bounds"
    };
    format!(
        "MISMATCH: {} {what}; worst at {}: value {}, reference {}, bound {:.3e} ({}){unbounded}",
        c.mismatches,
        at(&w.index),
        w.got,
        w.want,
        w.bound,
        if w.fraction.is_finite() {
            format!("{} of its bound", fraction(w.fraction))
        } else if !w.want.is_finite() {
            "a special value must match exactly".to_string()
        } else if !w.got.is_finite() {
            "not a finite value".to_string()
        } else {
            "the bound is 0: must match exactly".to_string()
        }
    )
}

/// A fraction of a bound, two decimals, or two significant digits below 0.01.
fn fraction(f: f64) -> String {
    if f == 0.0 || f >= 0.01 {
        format!("{f:.2}")
    } else {
        format!("{f:.1e}")
    }
}

struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, CliError> {
        let dir = std::env::temp_dir().join(format!("aiec-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn resolve_toolchain(flags: &ToolFlags) -> Result<toolchain::Toolchain, CliError> {
    let overrides = toolchain::Overrides {
        mlir_aie: flags.mlir_aie.clone(),
        peano: flags.peano.clone(),
        xrt: flags.xrt.clone(),
        ..Default::default()
    };
    let env = |k: &str| std::env::var(k).ok();
    toolchain::Toolchain::resolve(flags.toolchain.as_deref(), &env, &overrides).map_err(failed)
}

/// Builds the artifact directory with the toolchain from toolchain.toml and the environment, then
/// opens the NPU.
fn npu_backend(dir: &Path, device: &str) -> Result<Box<dyn Backend>, CliError> {
    build_into(dir, device, &ToolFlags::default())?;
    Ok(Box::new(NpuBackend::new().map_err(failed)?))
}

fn build_into(dir: &Path, device: &str, flags: &ToolFlags) -> Result<(), CliError> {
    let tc = resolve_toolchain(flags)?;
    let artifact = ArtifactDir::new(dir);
    let mut log = std::io::stderr();
    toolchain::driver::build(&artifact.mlir(), dir, device, &tc, &mut log).map_err(failed)?;
    Ok(())
}

/// The `--timings` lines: every finished step, the failing one, and the number of cores.
fn print_timings(result: &Result<toolchain::BuildOutputs, toolchain::BuildError>) {
    let line = |number: usize, status: &str, seconds: String| {
        let name = toolchain::steps::STEPS.get(number - 1).map(|s| s.0).unwrap_or("?");
        println!("step\t{number}\t{name}\t{status}\t{seconds}");
    };
    match result {
        Ok(built) => {
            for s in &built.steps.steps {
                line(s.number, "ok", format!("{:.3}", s.duration.as_secs_f64()));
            }
            println!("cores\t{}", built.steps.cores.len());
        }
        Err(toolchain::BuildError::Step(e)) => {
            for s in e.completed() {
                line(s.number, "ok", format!("{:.3}", s.duration.as_secs_f64()));
            }
            let seconds = match e {
                toolchain::StepError::Failed(f) => format!("{:.3}", f.duration.as_secs_f64()),
                _ => "-".to_string(),
            };
            if let Some(n) = e.step_number() {
                line(n, "FAIL", seconds);
            }
        }
        Err(_) => {}
    }
}

pub(crate) fn build(a: BuildArgs) -> Result<i32, CliError> {
    let device = device_model(a.device.as_deref())?;
    let is_mlir = a.file.extension().map(|e| e == "mlir").unwrap_or(false);
    let (dir, compiled) = if is_mlir {
        let dir = a.out.clone().unwrap_or_else(|| a.file.parent().unwrap_or(Path::new(".")).to_path_buf());
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let dst = dir.join("design.mlir");
        if dst != a.file {
            std::fs::copy(&a.file, &dst).map_err(|e| failed(format!("{}: {e}", a.file.display())))?;
        }
        (dir, None)
    } else {
        let (dir, compiled) = compile_to_dir(&a.file, a.out.clone(), &device)?;
        (dir, Some(compiled))
    };
    let tc = resolve_toolchain(&a.tools)?;
    let until = if a.stop_after_llvm { Until::CoreLlvm } else { Until::Xclbin };
    let mut log = std::io::stderr();
    let result = toolchain::driver::build_until(&ArtifactDir::new(&dir).mlir(), &dir, device.name, &tc, until, &mut log);
    if a.timings {
        print_timings(&result);
    }
    let built = result.map_err(|e| {
        let source = compiled.as_ref().and_then(|c| kernel_source_of(&e, c));
        failed(format!("{e}{}", source.unwrap_or_default()))
    })?;
    if built.xclbin.is_some() {
        eprintln!("built {} -> {}", a.file.display(), dir.display());
        return Ok(0);
    }
    // Not asked to stop here: the line says which tools final.xclbin still needs.
    if let Some(line) = built.stop_message().filter(|_| !a.stop_after_llvm) {
        return Err(CliError::Failed(line));
    }
    eprintln!(
        "stopped after step 5 (core LLVM IR) as asked: {} cores to LLVM IR in {}, insts.bin ({} instruction words) in {}",
        built.steps.cores.len(),
        built.work_dir.display(),
        built.insts_words,
        dir.display()
    );
    Ok(0)
}

/// For a step that failed on an op of design.mlir (the steps keep design.mlir's locations in
/// every stage they write), the kernel line that op was lowered from: ` --> file:line:col` and
/// the line itself.
fn kernel_source_of(e: &toolchain::BuildError, compiled: &aiec::Compiled) -> Option<String> {
    let toolchain::BuildError::Step(toolchain::StepError::Failed(f)) = e else {
        return None;
    };
    let at = f.diagnostic.as_ref()?.location.as_ref()?;
    if at.path.file_name()? != "design.mlir" {
        return None;
    }
    let loc = compiled.kernel_location(at.line as usize)?;
    let mut out = format!("\n  --> {loc} (the kernel line this op was lowered from)");
    let mut parts = loc.rsplitn(3, ':');
    let (_col, line, file) = (parts.next()?, parts.next()?.parse::<usize>().ok()?, parts.next()?);
    if let Some(text) = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().nth(line.checked_sub(1)?).map(str::to_string))
    {
        out.push_str(&format!("\n   | {}", text.trim_end()));
    }
    Some(out)
}

pub(crate) fn doctor(a: DoctorArgs) -> Result<i32, CliError> {
    let tc = resolve_toolchain(&a.tools)?;
    let mut out = std::io::stdout();
    let report = toolchain::doctor::run(&tc, &mut out);
    Ok(if report.can_build() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::verdict;
    use aiec::hostdata::compare_bounded;
    use aiec_runtime::DType;
    use ndarray::ArrayD;

    fn a(v: &[f64]) -> ArrayD<f64> {
        ArrayD::from_shape_vec(vec![2, 2], v.to_vec()).unwrap()
    }

    #[test]
    fn verdicts_name_the_worst_element_and_its_bound() {
        let want = a(&[1.0, 2.0, 3.0, 4.0]);
        let bound = a(&[0.1, 0.1, f64::INFINITY, 0.2]);
        let c = compare_bounded(&want, &want, &bound, DType::F32);
        assert_eq!(verdict(&c), "bit-exact match");
        let c = compare_bounded(&a(&[1.0, 2.05, 3.0, 4.0]), &want, &bound, DType::F32);
        assert_eq!(
            verdict(&c),
            "every element within its error bound (worst 0.50 of its bound at [0, 1]); 1 element has no finite bound (not checked)"
        );
        let c = compare_bounded(&a(&[1.0, 2.05, 30.0, 5.0]), &want, &bound, DType::F32);
        assert_eq!(
            verdict(&c),
            "MISMATCH: 1 element outside its error bound; worst at [1, 1]: value 5, reference 4, bound 2.000e-1 (5.00 of its bound); 1 element has no finite bound (not checked)"
        );
        let c = compare_bounded(&a(&[1.0, 2.0, 3.0, f64::NAN]), &want, &bound, DType::F32);
        assert!(
            verdict(&c).contains("value NaN, reference 4, bound 2.000e-1 (not a finite value)"),
            "{}",
            verdict(&c)
        );
    }
}
