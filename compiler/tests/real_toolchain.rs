//! Every example kernel through mlir-aie's real aie-opt and aie-translate: the five steps up to
//! the cores' LLVM IR, for npu1 and npu2, and `aiec build` up to there. The tools are found
//! through MLIR_AIE_INSTALL_DIR only; without it each test says it was skipped and passes.

use aiec::toolchain::config::{Overrides, Tool, Toolchain};
use aiec::toolchain::steps::{self, StepError, Target};
use aiec::DeviceModel;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const SKIPPED: &str = "skipped: aie-opt not found (set MLIR_AIE_INSTALL_DIR to an mlir-aie install)";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// aie-opt and aie-translate from MLIR_AIE_INSTALL_DIR, or `None` (after printing the skip line).
fn real_tools() -> Option<steps::Tools> {
    let env = |k: &str| match k {
        "MLIR_AIE_INSTALL_DIR" => std::env::var(k).ok(),
        _ => None,
    };
    let tc = Toolchain::from_toml("", &workspace().join("none.toml"), &env, &Overrides::default()).ok()?;
    let Some(aie_opt) = tc.find(Tool::AieOpt) else {
        println!("{SKIPPED}");
        return None;
    };
    let aie_translate = tc
        .find(Tool::AieTranslate)
        .unwrap_or_else(|| panic!("aie-opt is at {} but aie-translate is not beside it", aie_opt.path.display()));
    Some(steps::Tools {
        aie_opt: aie_opt.path,
        aie_translate: aie_translate.path,
    })
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(workspace().join("dsl-examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tile"))
        .collect();
    files.sort();
    files
}

/// One kernel x device that did not make it to LLVM IR.
struct Failure {
    kernel: String,
    device: &'static str,
    step: String,
    diagnostic: String,
}

/// Compiles one example for one device into `work` and runs the five steps: a line for the
/// summary, or what failed.
fn one_build(file: &Path, device: &DeviceModel, tools: &steps::Tools, work: &Path) -> Result<String, Failure> {
    let kernel = file.file_stem().unwrap().to_string_lossy().into_owned();
    let fail = |step: &str, diagnostic: String| Failure {
        kernel: kernel.clone(),
        device: device.name,
        step: step.to_string(),
        diagnostic,
    };
    let text = fs::read_to_string(file).unwrap();
    let compiled = aiec::compile_source(&format!("dsl-examples/{kernel}.tile"), &text, device)
        .map_err(|e| fail("compile", e.to_string().lines().next().unwrap_or("").to_string()))?;
    let dir = work.join(format!("{kernel}-{}", device.name));
    fs::create_dir_all(&dir).unwrap();
    let design = dir.join("design.mlir");
    fs::write(&design, &compiled.mlir).unwrap();
    let target = Target::for_device(device.name).unwrap();
    let report = steps::run(&design, &dir, target, tools, &mut Vec::new()).map_err(|e| match &e {
        StepError::Failed(f) => {
            let core = f.core.map(|c| format!(" ({c})")).unwrap_or_default();
            let first = match &f.diagnostic {
                // The temp dir says nothing: the file name and position do.
                Some(d) => match &d.location {
                    Some(at) => format!(
                        "{}:{}:{}: {}",
                        at.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                        at.line,
                        at.col,
                        d.message
                    ),
                    None => d.message.clone(),
                },
                None => format!("{}: {}", f.status, f.stderr_tail.lines().last().unwrap_or("")),
            };
            fail(&format!("{} {}{core}", f.number, f.name), first)
        }
        other => fail(&other.step_number().map(|n| n.to_string()).unwrap_or_else(|| "?".into()), other.to_string()),
    })?;
    // What the steps claim to have written is there, for every core of the design.
    let insts = fs::metadata(&report.insts).map(|m| m.len()).unwrap_or(0);
    let lls = report
        .cores
        .iter()
        .filter(|c| fs::metadata(report.work_dir.join(format!("core_{}_{}.ll", c.col, c.row))).is_ok_and(|m| m.len() > 0))
        .count();
    if insts == 0 || insts % 4 != 0 {
        return Err(fail("4 npu-insts", format!("insts.bin has {insts} bytes")));
    }
    if report.cores.len() != compiled.design.cores.len() || lls != report.cores.len() {
        return Err(fail(
            "5 core-llvm",
            format!(
                "{} cores in the design, {} found after step 2, {lls} with LLVM IR",
                compiled.design.cores.len(),
                report.cores.len()
            ),
        ));
    }
    let secs: f64 = report.steps.iter().map(|s| s.duration.as_secs_f64()).sum();
    Ok(format!("{kernel} {}: {lls} cores, {insts} B insts.bin, {secs:.1} s", device.name))
}

#[test]
fn every_example_reaches_core_llvm_ir_on_npu1_and_npu2() {
    let Some(tools) = real_tools() else { return };
    let work = tempfile::tempdir().unwrap();
    let jobs: Vec<(PathBuf, DeviceModel)> = examples()
        .into_iter()
        .flat_map(|f| [(f.clone(), DeviceModel::npu1()), (f, DeviceModel::npu2())])
        .collect();
    // The tools are single-threaded: one build per core of the machine.
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(jobs.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, device)) = jobs.get(i) else { break };
                let result = one_build(file, device, &tools, work.path());
                results.lock().unwrap().push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    for (_, r) in results {
        match r {
            Ok(line) => passed.push(line),
            Err(f) => failures.push(format!("{} on {}: step {}: {}", f.kernel, f.device, f.step, f.diagnostic)),
        }
    }
    println!("reached core LLVM IR:\n  {}", passed.join("\n  "));
    assert!(
        failures.is_empty(),
        "{} of {} kernel x device builds did not reach core LLVM IR:\n  {}",
        failures.len(),
        jobs.len(),
        failures.join("\n  ")
    );
}

/// `aiec build` with the real tools and no Peano.
fn aiec_build(args: &[&str], peano: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_aiec"))
        .arg("build")
        .args(args)
        .arg("--peano")
        .arg(peano)
        .current_dir(workspace())
        .env_remove("PEANO_INSTALL_DIR")
        .env_remove("AIEC_DEVICE")
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn aiec_build_runs_the_steps_and_stops_at_core_llvm_ir_without_peano() {
    if real_tools().is_none() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let no_peano = tempfile::tempdir().unwrap();
    let dir = out.path().join("mm");
    let d = dir.to_str().unwrap();

    let (code, stderr) = aiec_build(&["dsl-examples/matmul.tile", "-o", d, "--stop-after-llvm"], no_peano.path());
    assert_eq!(code, 0, "{stderr}");
    for f in [
        "design.mlir",
        "design.json",
        "insts.bin",
        "build/1-aievec.mlir",
        "build/2-resources.mlir",
        "build/3-routing.mlir",
        "build/4-npu.mlir",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing:\n{stderr}");
    }
    let lls: Vec<PathBuf> = fs::read_dir(dir.join("build"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ll"))
        .collect();
    assert_eq!(lls.len(), 16, "one core_C_R.ll per core of the 4x4 matmul:\n{stderr}");
    assert!(lls.iter().all(|p| p.file_name().unwrap().to_string_lossy().starts_with("core_")));
    assert!(stderr.contains("as asked"), "{stderr}");

    // Without the flag the same run is short of final.xclbin: exit 1, and the last line says why.
    let (code, stderr) = aiec_build(&["dsl-examples/matmul.tile", "-o", d], no_peano.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("step 5 core-llvm  ok"), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("stopped after step 5 (core LLVM IR): Peano (llvm-aie) is needed to compile the cores to ELF"),
        "{stderr}"
    );
    assert!(last.contains("PEANO_INSTALL_DIR") && last.contains("`aiec doctor`"), "{last}");
}
