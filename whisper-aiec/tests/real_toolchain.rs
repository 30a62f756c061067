//! The Whisper kernels through mlir-aie's real aie-opt and aie-translate, for npu1 and npu2: every
//! design whisper tiny.en and base use to encode a window and to decode with one beam (rows padded
//! to 4; self-attention keys at the first and last key class; cross-attention over 1500 positions)
//! compiles and passes the five steps up to each core's LLVM IR. A kernel the NPU toolchain rejects
//! does not count as running on kernels, however well it emulates. The tools are found through
//! MLIR_AIE_INSTALL_DIR; without it the test says it was skipped and passes.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use aiec::toolchain::config::{Overrides, Tool, Toolchain};
use aiec::toolchain::steps::{self, Target};
use aiec::DeviceModel;
use whisper::model::Model;
use whisper_aiec::cache::KernelCache;
use whisper_aiec::kernels::KernelSpec;
use whisper_aiec::shapes::model_design_classes;

const SKIPPED: &str = "skipped: aie-opt not found (set MLIR_AIE_INSTALL_DIR to an mlir-aie install)";

fn real_tools() -> Option<steps::Tools> {
    let env = |k: &str| match k {
        "MLIR_AIE_INSTALL_DIR" => std::env::var(k).ok(),
        _ => None,
    };
    let tc = Toolchain::from_toml("", Path::new("none.toml"), &env, &Overrides::default()).ok()?;
    let Some(aie_opt) = tc.find(Tool::AieOpt) else {
        println!("{SKIPPED}");
        return None;
    };
    let aie_translate = tc.find(Tool::AieTranslate).expect("aie-translate beside aie-opt");
    Some(steps::Tools {
        aie_opt: aie_opt.path,
        aie_translate: aie_translate.path,
    })
}

/// The designs a model uses for one window and beam-1 decoding, at the key classes named above.
fn used_designs(model: &Model) -> BTreeSet<KernelSpec> {
    let audio = whisper_aiec::shapes::pad_rows(model.dims.n_audio_ctx);
    let frames = whisper_aiec::shapes::pad_rows(model.dims.n_frames());
    let last_keys = whisper_aiec::shapes::pad_keys(model.dims.n_text_ctx);
    let audio_keys = whisper_aiec::shapes::pad_keys(model.dims.n_audio_ctx);
    model_design_classes(model, 1)
        .into_iter()
        .filter(|spec| match *spec {
            KernelSpec::Matmul { batch: 1, m, .. } | KernelSpec::LayerNorm { m, .. } | KernelSpec::Gelu { m, .. } => [4, audio, frames].contains(&m),
            KernelSpec::Softmax { m, n, .. } => [4, audio].contains(&m) && [64, last_keys, audio_keys].contains(&n),
            KernelSpec::Matmul { m, k, n, .. } => {
                [4, audio].contains(&m) && (n == 64 && [64, last_keys, audio_keys].contains(&k) || [64, last_keys, audio_keys].contains(&n))
            }
            KernelSpec::LogMel { .. } => true,
        })
        .collect()
}

#[test]
fn every_whisper_kernel_reaches_core_llvm_ir_on_npu1_and_npu2() {
    let Some(tools) = real_tools() else { return };
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let mut specs = BTreeSet::new();
    for name in ["whisper-tiny.en", "whisper-base"] {
        let model = Model::load(&assets.join(name)).unwrap_or_else(|e| panic!("{name}: {e} (run scripts/fetch-assets.sh)"));
        let used = used_designs(&model);
        println!("{name}: {} designs", used.len());
        specs.extend(used);
    }
    let work = tempfile::tempdir().unwrap();
    let cache = KernelCache::new(work.path().join("designs"));
    let jobs: Vec<(KernelSpec, DeviceModel)> = specs.iter().flat_map(|s| [(*s, DeviceModel::npu1()), (*s, DeviceModel::npu2())]).collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(jobs.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((spec, device)) = jobs.get(i) else { break };
                let result = cache.get_or_compile(spec, device).map_err(|e| format!("compile: {e}")).and_then(|design| {
                    let out = work.path().join(format!("{}-{}", spec.name(), device.name));
                    let report = steps::run(
                        &design.dir.join("design.mlir"),
                        &out,
                        Target::for_device(device.name).unwrap(),
                        &tools,
                        &mut Vec::new(),
                    )
                    .map_err(|e| e.to_string().lines().take(3).collect::<Vec<_>>().join(" | "))?;
                    let lls = report
                        .cores
                        .iter()
                        .filter(|c| report.work_dir.join(format!("core_{}_{}.ll", c.col, c.row)).is_file())
                        .count();
                    if lls == 0 || lls != report.cores.len() {
                        return Err(format!("{lls} of {} cores have LLVM IR", report.cores.len()));
                    }
                    Ok(lls)
                });
                results.lock().unwrap().push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut failures = Vec::new();
    for (i, r) in results {
        let (spec, device) = &jobs[i];
        match r {
            Ok(cores) => println!("  {} on {}: {cores} cores to LLVM IR", spec.name(), device.name),
            Err(e) => failures.push(format!("{} on {}: {e}", spec.name(), device.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Whisper kernel x device builds did not reach core LLVM IR:\n  {}",
        failures.len(),
        jobs.len(),
        failures.join("\n  ")
    );
}
