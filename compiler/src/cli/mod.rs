//! The `aiec` command line. Exit codes: 0 success, 1 a compile/run error (message on stderr),
//! 2 bad usage.

use aiec::{compile_kernel, CompileError, DeviceModel, FileError};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

mod run;

#[derive(Parser)]
#[command(
    name = "aiec",
    version,
    about = "Tiling DSL and compiler for AMD Ryzen AI NPUs: .tile -> checked MLIR-AIE -> emulator or NPU",
    long_about = "aiec compiles kernels written in the .tile language to MLIR-AIE for Ryzen AI NPUs \
(npu1 = Phoenix/Hawk Point, npu2 = Strix). Every hardware limit (tile memory, DMA channels, locks, \
buffer descriptors, DMA patterns) is checked at compile time with errors that point at the source. \
The emulator runs the emitted MLIR on any CPU; `aiec build` and `aiec run --npu` need the mlir-aie \
toolchain and XRT (see `aiec doctor`).",
    after_help = "Examples:\n  aiec compile dsl-examples/matmul.tile -o out/matmul\n  aiec check dsl-examples/softmax.tile --device npu2\n  aiec run dsl-examples/matmul.tile --emulate\n  aiec emulate out/matmul/design.mlir --arg A=a.npy --arg B=b.npy --out C=c.npy"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum Emit {
    /// design.mlir in mlir-aie's custom syntax
    Mlir,
    /// the same module with aie ops in MLIR's generic form
    Generic,
    /// design.json
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a .tile kernel to DIR/design.mlir and DIR/design.json
    Compile {
        /// the .tile source
        file: PathBuf,
        /// output directory (default: next to the input, named after the kernel)
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out: Option<PathBuf>,
        /// target device
        #[arg(long, value_name = "npu1|npu2")]
        device: Option<String>,
        /// print one artifact to stdout instead of writing files
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// print the design after PASS to stdout instead of writing files (repeatable; `all`
        /// for every pass). Passes in order: typecheck, place, route, sequence, check, lower,
        /// emit. Dumps of the passes that ran are printed even when a later one fails.
        #[arg(long = "dump-after", value_name = "PASS", value_parser = parse_pass)]
        dump_after: Vec<Vec<aiec::passes::Pass>>,
    },
    /// Run every check (types, tiling, hardware limits) without writing anything
    Check {
        file: PathBuf,
        #[arg(long, value_name = "npu1|npu2")]
        device: Option<String>,
    },
    /// Run a design.mlir (ours or hand-written mlir-aie) on the host emulator
    Emulate(run::EmulateArgs),
    /// Compile a .tile kernel, run it on seeded random inputs, compare with its reference
    Run(run::RunArgs),
    /// Compile to MLIR if needed, run mlir-aie's steps to insts.bin and the cores' LLVM IR, then
    /// aiecc with Peano to final.xclbin
    Build(run::BuildArgs),
    /// Report which parts of the toolchain and which NPU are available
    Doctor(run::DoctorArgs),
}

/// An error from a command, already worded for the user.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A compile or run failure: exit 1.
    Failed(String),
    /// Bad usage: exit 2.
    Usage(String),
}

impl From<CompileError> for CliError {
    fn from(e: CompileError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<FileError> for CliError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Compile(e) => e.into(),
            other => CliError::Failed(format!("error: {other}")),
        }
    }
}

pub(crate) fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Compile {
            file,
            out,
            device,
            emit,
            dump_after,
        } => {
            if dump_after.is_empty() {
                compile(&file, out, device, emit)
            } else {
                dump(&file, device, dump_after.concat())
            }
        }
        Command::Check { file, device } => check(&file, device),
        Command::Emulate(a) => run::emulate(a),
        Command::Run(a) => run::run(a),
        Command::Build(a) => run::build(a),
        Command::Doctor(a) => run::doctor(a),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Failed(msg)) => {
            eprint!("{}", ensure_newline(&msg));
            1
        }
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            eprintln!("For more information, try '--help'.");
            2
        }
    }
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// The device from `--device`, else AIEC_DEVICE, else toolchain.toml's `[device] default`, else npu1.
pub(crate) fn device_model(name: Option<&str>) -> Result<DeviceModel, CliError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let env = |k: &str| std::env::var(k).ok();
            match aiec::toolchain::Toolchain::resolve(None, &env, &Default::default()) {
                Ok(tc) => tc.device.value,
                Err(e) => {
                    eprintln!("warning: ignoring toolchain.toml for the default device: {e}");
                    env("AIEC_DEVICE").unwrap_or_else(|| "npu1".into())
                }
            }
        }
    };
    DeviceModel::by_name(&name).ok_or_else(|| CliError::Usage(format!("unknown device '{name}' for --device: expected npu1 or npu2")))
}

pub(crate) fn require_tile_file(file: &Path) -> Result<(), CliError> {
    if !file.exists() {
        return Err(CliError::Failed(format!("error: {}: no such file", file.display())));
    }
    Ok(())
}

/// Parses and compiles a .tile file; design.json records the source path.
fn compile_file(file: &Path, device: &DeviceModel) -> Result<aiec::Compiled, CliError> {
    require_tile_file(file)?;
    let kernel = aiec::parse_file(file)?;
    let mut compiled = compile_kernel(&kernel, device)?;
    compiled.json.source = Some(file.display().to_string());
    for note in &compiled.notes {
        eprint!("{}", note.render_note());
    }
    Ok(compiled)
}

/// Compiles a .tile file into an artifact directory; returns the directory and the result.
pub(crate) fn compile_to_dir(file: &Path, out: Option<PathBuf>, device: &DeviceModel) -> Result<(PathBuf, aiec::Compiled), CliError> {
    let compiled = compile_file(file, device)?;
    let dir = out.unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).join(&compiled.kernel.name));
    write_artifacts(&dir, &compiled)?;
    Ok((dir, compiled))
}

/// Writes design.mlir and design.json through temporary files, so a failure leaves nothing half-written.
fn write_artifacts(dir: &Path, compiled: &aiec::Compiled) -> Result<(), CliError> {
    compiled.write_to(dir).map_err(|e| CliError::Failed(format!("error: {e}")))
}

fn parse_pass(name: &str) -> Result<Vec<aiec::passes::Pass>, String> {
    use aiec::passes::Pass;
    if name == "all" {
        return Ok(Pass::ALL.to_vec());
    }
    Pass::from_name(name).map(|p| vec![p]).ok_or_else(|| {
        let names: Vec<&str> = Pass::ALL.iter().map(|p| p.name()).collect();
        format!("unknown pass `{name}`; the passes are {} (or all)", names.join(", "))
    })
}

/// `aiec compile --dump-after PASS`: the design after each asked pass, on stdout.
fn dump(file: &Path, device: Option<String>, passes: Vec<aiec::passes::Pass>) -> Result<i32, CliError> {
    let device = device_model(device.as_deref())?;
    require_tile_file(file)?;
    let kernel = aiec::parse_file(file)?;
    let mut dumps = aiec::Dumps::after(&passes);
    let result = aiec::compile_kernel_dumping(&kernel, &device, &mut dumps);
    for (pass, text) in &dumps.texts {
        println!("// ----- after {} ({}) -----", pass.name(), device.name);
        print!("{}", ensure_newline(text));
    }
    result?;
    Ok(0)
}

fn compile(file: &Path, out: Option<PathBuf>, device: Option<String>, emit: Option<Emit>) -> Result<i32, CliError> {
    let device = device_model(device.as_deref())?;
    if let Some(what) = emit {
        let compiled = compile_file(file, &device)?;
        match what {
            Emit::Mlir => print!("{}", compiled.mlir),
            Emit::Generic => print!("{}", compiled.generic),
            Emit::Json => print!("{}", compiled.json.to_pretty_json()),
        }
        return Ok(0);
    }
    let start = std::time::Instant::now();
    let (dir, compiled) = compile_to_dir(file, out, &device)?;
    eprintln!(
        "compiled {} for {} on {} compute tiles in {:.1} ms -> {}",
        compiled.kernel.name,
        device.name,
        compiled.design.cores.len(),
        start.elapsed().as_secs_f64() * 1e3,
        dir.display()
    );
    Ok(0)
}

fn check(file: &Path, device: Option<String>) -> Result<i32, CliError> {
    let device = device_model(device.as_deref())?;
    let compiled = compile_file(file, &device)?;
    let compute = compiled
        .budgets
        .iter()
        .filter(|b| b.kind == aiec::device::TileKind::Compute)
        .map(|b| b.data_bytes)
        .max()
        .unwrap_or(0);
    println!(
        "{}: ok for {} ({} compute tiles, {} bytes of data memory per compute tile of {})",
        file.display(),
        device.name,
        compiled.design.cores.len(),
        compute,
        device.compute.data_bytes
    );
    Ok(0)
}
