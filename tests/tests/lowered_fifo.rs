//! The emulator's two levels agree: every dsl-examples/*.tile kernel, compiled for npu1 and npu2, runs
//! as aiec emits it (object FIFOs, the emulator's FIFO model) and after mlir-aie's own lowering with
//! `aie-opt` (see [`LEVELS`]: buffers, locks, buffer descriptors, DMA chains and flows, and at the second
//! level the runtime sequence as NPU register writes, all run by the hardware-level model), on the same
//! seeded inputs; the outputs must be identical byte for byte. Needs `aie-opt`
//! (`$MLIR_AIE_INSTALL_DIR/bin/aie-opt`); without it the test says so and passes.
//! `AIEC_LOWERED_ONLY=matmul` limits it to matching examples.

use aiec::{compile_source, hostdata, DeviceModel};
use aiec_runtime::artifact::ArgDirection;
use aiec_runtime::emulator::Emulator;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The lowerings each example runs through: object FIFOs to buffers, locks and DMAs alone; and
/// aiecc's resource step (lock, BD and buffer-address assignment, the column control overlay) followed
/// by its runtime-sequence lowering to NPU register writes (`blockwrite` of descriptors,
/// `address_patch`, queue pushes, `sync`), as `insts.bin` holds them.
const LEVELS: [(&str, &str); 2] = [
    ("objectfifo", "builtin.module(aie.device(aie-objectFifo-stateful-transform))"),
    (
        "npu",
        "builtin.module(aie.device(aie-assign-lock-ids,aie-register-objectFifos,aie-objectFifo-stateful-transform,\
         aie-assign-bd-ids,aie-lower-cascade-flows,aie-lower-broadcast-packet,aie-lower-multicast,\
         aie-assign-tile-controller-ids,aie-generate-column-control-overlay,aie-assign-buffer-addresses),\
         aie-materialize-runtime-sequences,aie.device(aie-materialize-bd-chains,aie-substitute-shim-dma-allocations,\
         aie-assign-runtime-sequence-bd-ids,aie-dma-tasks-to-npu,aie-dma-to-npu,aie-lower-set-lock))",
    ),
];

fn aie_opt() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("MLIR_AIE_INSTALL_DIR")?).join("bin/aie-opt");
    path.is_file().then_some(path)
}

fn lower(aie_opt: &Path, pipeline: &str, mlir: &str, dir: &Path, stem: &str) -> Result<String, String> {
    let input = dir.join(format!("{stem}.mlir"));
    let output = dir.join(format!("{stem}.lowered.mlir"));
    std::fs::write(&input, mlir).map_err(|e| e.to_string())?;
    let out = Command::new(aie_opt)
        .arg(format!("--pass-pipeline={pipeline}"))
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .map_err(|e| format!("{}: {e}", aie_opt.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("aie-opt failed: {}", err.lines().take(3).collect::<Vec<_>>().join(" | ")));
    }
    std::fs::read_to_string(&output).map_err(|e| e.to_string())
}

/// Runs one example as emitted and at each lowered level; per level, `Ok(bytes compared)` when the
/// outputs agree.
fn agree(aie_opt: &Path, dir: &Path, name: &str, text: &str, device: &DeviceModel, tag: &str) -> Result<Vec<Result<usize, String>>, String> {
    let path = format!("dsl-examples/{name}");
    let compiled = compile_source(&path, text, device).map_err(|e| format!("compile: {e}"))?;
    let (_, bufs) = hostdata::random_arguments(&compiled.json.arguments, 11, |_, _| {});
    let mut fifo_bufs = bufs.clone();
    let mut emu = Emulator::new();
    emu.run_mlir(&compiled.mlir, &path, &mut fifo_bufs)
        .map_err(|e| format!("object-FIFO run: {e}"))?;
    let outputs = compiled.json.arguments.iter().map(|a| a.direction == ArgDirection::Out).collect::<Vec<_>>();
    assert!(
        fifo_bufs.iter().zip(&outputs).any(|(b, &o)| o && b.bytes.iter().any(|&x| x != 0)),
        "{name} {tag}: every output is zero"
    );
    let mut results = Vec::new();
    for (level, pipeline) in LEVELS {
        let stem = format!("{}_{tag}_{level}", name.trim_end_matches(".tile"));
        results.push(lower(aie_opt, pipeline, &compiled.mlir, dir, &stem).and_then(|lowered| {
            if lowered.contains("aie.objectfifo") || !lowered.contains("aie.use_lock") {
                return Err("aie-opt left object FIFOs in the design".into());
            }
            let mut hw_bufs = bufs.clone();
            emu.run_mlir(&lowered, &format!("{stem}.lowered.mlir"), &mut hw_bufs)
                .map_err(|e| format!("lowered run: {e}"))?;
            compare(&compiled.json.arguments, &fifo_bufs, &hw_bufs)
        }));
    }
    Ok(results)
}

fn compare(args: &[aiec_runtime::ArgSpec], fifo_bufs: &[aiec_runtime::HostBuffer], hw_bufs: &[aiec_runtime::HostBuffer]) -> Result<usize, String> {
    let mut compared = 0;
    for (i, arg) in args.iter().enumerate() {
        if arg.direction != ArgDirection::Out {
            continue;
        }
        let (a, b) = (&fifo_bufs[i].bytes, &hw_bufs[i].bytes);
        if a != b {
            let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
            let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
            return Err(format!(
                "output {} differs: {differing} of {} bytes, first at byte {first} ({} vs {})",
                arg.name,
                a.len(),
                a[first],
                b[first]
            ));
        }
        compared += a.len();
    }
    Ok(compared)
}

#[test]
fn object_fifo_and_lowered_designs_agree() {
    let Some(aie_opt) = aie_opt() else {
        println!("lowered_fifo: skipped, aie-opt not found (set MLIR_AIE_INSTALL_DIR)");
        return;
    };
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tile"))
        .collect();
    names.sort();
    let only = std::env::var("AIEC_LOWERED_ONLY").ok();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in &names {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let text = std::fs::read_to_string(examples.join(name)).unwrap();
        for (tag, device) in [("npu1", DeviceModel::npu1()), ("npu2", DeviceModel::npu2())] {
            let t = std::time::Instant::now();
            let results = match agree(&aie_opt, dir.path(), name, &text, &device, tag) {
                Ok(r) => r,
                Err(e) => vec![Err(e)],
            };
            for ((level, _), r) in LEVELS.iter().zip(results) {
                match r {
                    Ok(n) => println!("{name} {tag} {level}: agree ({n} output bytes)"),
                    Err(e) => {
                        println!("{name} {tag} {level}: {e}");
                        failures.push(format!("{name} {tag} {level}: {e}"));
                    }
                }
            }
            println!("  ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    assert!(failures.is_empty(), "levels disagree:\n{}", failures.join("\n"));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Cached-run time of the 512x512x512 int8 matmul (npu1) at each level, interleaved:
/// `cargo test --release -p aiec-e2e --test lowered_fifo -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_time_at_each_level() {
    let Some(aie_opt) = aie_opt() else {
        println!("lowered_fifo: skipped, aie-opt not found (set MLIR_AIE_INSTALL_DIR)");
        return;
    };
    let runs: usize = std::env::var("AIEC_TIME_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples/matmul.tile");
    let text = std::fs::read_to_string(&path).unwrap();
    let compiled = compile_source("dsl-examples/matmul.tile", &text, &DeviceModel::npu1()).unwrap();
    let (_, bufs) = hostdata::random_arguments(&compiled.json.arguments, 11, |_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let mut designs = vec![("object FIFOs".to_string(), compiled.mlir.clone())];
    for (level, pipeline) in LEVELS {
        designs.push((
            format!("lowered ({level})"),
            lower(&aie_opt, pipeline, &compiled.mlir, dir.path(), level).unwrap(),
        ));
    }
    let mut emu = Emulator::new();
    let mut times = vec![Vec::new(); designs.len()];
    for (name, mlir) in &designs {
        let t = std::time::Instant::now();
        emu.run_mlir(mlir, name, &mut bufs.clone()).unwrap();
        println!("{name}: first run (parse, checks, JIT) {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    for _ in 0..runs {
        for (i, (name, mlir)) in designs.iter().enumerate() {
            let mut b = bufs.clone();
            let t = std::time::Instant::now();
            emu.run_mlir(mlir, name, &mut b).unwrap();
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let base = median(times[0].clone());
    for ((name, _), t) in designs.iter().zip(&times) {
        let min = t.iter().cloned().fold(f64::INFINITY, f64::min);
        let m = median(t.clone());
        println!(
            "{name}: cached run median {m:.1} ms (min {min:.1}, {runs} runs), {:.2}x the object-FIFO path",
            m / base
        );
    }
}
