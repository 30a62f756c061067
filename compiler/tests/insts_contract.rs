//! The contract between `insts.bin` and the NPU backend: the backend passes one buffer per
//! design.json argument, in order (`aiec_runtime::insts::kernel_call`), so the instruction stream
//! mlir-aie makes from our runtime sequence must patch exactly those argument indices, keep every
//! shim buffer descriptor inside its argument, only read inputs and write every output whole.
//!
//! Every `dsl-examples/*.tile` is compiled for npu1 and npu2 and put through mlir-aie's steps up
//! to insts.bin (resources, routing, runtime sequence to NPU instructions, then
//! `aie-translate --aie-npu-to-binary`; the aievec step only touches cores and is skipped), and
//! the decoded stream is checked. Runs when aie-opt is installed (`MLIR_AIE_INSTALL_DIR`);
//! otherwise prints one line saying it skipped. An example that does not compile, or that
//! mlir-aie's steps reject, is listed as not checked (compile.rs and toolchain.rs own those);
//! matmul must always be checked on both devices.

use aiec::toolchain::steps::{NPU_PIPELINE, RESOURCES_PIPELINE, ROUTING_PIPELINE};
use aiec::{compile_source, DeviceModel};
use aiec_runtime::artifact::{ArgDirection, DesignJson};
use aiec_runtime::insts::{self, merge_ranges, DmaDirection, Instruction};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("MLIR_AIE_INSTALL_DIR")?).join("bin");
    (dir.join("aie-opt").is_file() && dir.join("aie-translate").is_file()).then_some(dir)
}

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tile"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

fn first_error(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("(no output)");
    line.chars().take(200).collect()
}

/// Steps 2-4 and aie-translate on `dir/design.mlir`; the words of `dir/insts.bin`.
fn steps_to_insts(bin: &Path, dir: &Path) -> Result<Vec<u32>, String> {
    let stages = [
        ("resources", RESOURCES_PIPELINE, "design.mlir", "s1.mlir"),
        ("routing", ROUTING_PIPELINE, "s1.mlir", "s2.mlir"),
        ("npu", NPU_PIPELINE, "s2.mlir", "s3.mlir"),
    ];
    for (name, pipeline, input, output) in stages {
        let out = Command::new(bin.join("aie-opt"))
            .arg(format!("--pass-pipeline={pipeline}"))
            .arg(dir.join(input))
            .arg("-o")
            .arg(dir.join(output))
            .output()
            .map_err(|e| format!("aie-opt: {e}"))?;
        if !out.status.success() {
            return Err(format!("step {name}: {}", first_error(&String::from_utf8_lossy(&out.stderr))));
        }
    }
    let out = Command::new(bin.join("aie-translate"))
        .args(["--aie-npu-to-binary", "--aie-output-binary"])
        .arg(dir.join("s3.mlir"))
        .arg("-o")
        .arg(dir.join("insts.bin"))
        .output()
        .map_err(|e| format!("aie-translate: {e}"))?;
    if !out.status.success() {
        return Err(format!("aie-translate: {}", first_error(&String::from_utf8_lossy(&out.stderr))));
    }
    insts::read_insts(&dir.join("insts.bin")).map_err(|e| e.to_string())
}

/// `aiex.npu.dma_memcpy_nd(%NAME[offsets][sizes][strides])` of the runtime sequence, in order:
/// (argument name, offsets, sizes, strides), outermost dimension first, in elements.
type Memcpy = (String, [u64; 4], [u64; 4], [u64; 4]);

fn memcpys(mlir: &str) -> Vec<Memcpy> {
    let groups = |text: &str| -> Option<Vec<[u64; 4]>> {
        text.split('[')
            .skip(1)
            .map(|g| {
                let nums: Vec<u64> = g.split(']').next()?.split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
                nums.try_into().ok()
            })
            .collect()
    };
    mlir.lines()
        .filter_map(|l| Some((l, l.split_once("aiex.npu.dma_memcpy_nd(%")?.1)))
        .map(|(line, rest)| {
            let parsed = (|| {
                let (name, rest) = rest.split_once('[')?;
                let g = groups(&format!("[{}", rest.split_once(')')?.0))?;
                (g.len() == 3).then(|| (name.to_string(), g[0], g[1], g[2]))
            })();
            parsed.unwrap_or_else(|| panic!("cannot read the runtime sequence's DMA: {line}"))
        })
        .collect()
}

/// The bytes a `dma_memcpy_nd` moves, merged, and how many it moves (repeats counted).
fn memcpy_bytes(elem: u64, (_, o, s, t): &Memcpy) -> (Vec<std::ops::Range<u64>>, u64) {
    let base: u64 = o.iter().zip(t).map(|(o, t)| o * t).sum();
    let mut r = Vec::new();
    for i3 in 0..s[0] {
        for i2 in 0..s[1] {
            for i1 in 0..s[2] {
                let start = base + i3 * t[0] + i2 * t[1] + i1 * t[2];
                if t[3] == 1 {
                    r.push(start * elem..(start + s[3]) * elem);
                } else {
                    r.extend((0..s[3]).map(|i0| (start + i0 * t[3]) * elem..(start + i0 * t[3] + 1) * elem));
                }
            }
        }
    }
    merge_ranges(&mut r);
    (r, s.iter().product::<u64>() * elem)
}

/// Everything the contract says about one built design; Err lists what is wrong.
fn check_design(design: &DesignJson, mlir: &str, words: &[u32]) -> Result<String, String> {
    let decoded = insts::decode(words).map_err(|e| format!("decode: {e}"))?;
    let call = insts::kernel_call(design, words.len()).map_err(|e| format!("kernel_call: {e}"))?;
    insts::check_contract(design, &decoded).map_err(|e| e.to_string())?;
    let uses = insts::argument_uses(&decoded).map_err(|e| e.to_string())?;

    let mut wrong = Vec::new();
    let mut summary = Vec::new();
    if let Some(Instruction::Header {
        dev_gen,
        columns,
        rows,
        op_count,
        ..
    }) = decoded.first()
    {
        summary.push(format!("{} words, {op_count} ops, dev_gen {dev_gen}, {columns}x{rows}", words.len()));
    }
    // Each started BD against the runtime-sequence DMA it came from (mlir-aie keeps their order):
    // same argument, same bytes, same amount moved. This checks the BD decoding too.
    let mut started: Vec<_> = uses.values().flatten().filter(|a| a.start.is_some()).collect();
    started.sort_by_key(|a| a.start.map(|s| s.at));
    let source = memcpys(mlir);
    if started.len() != source.len() {
        wrong.push(format!("{} started BDs for {} runtime-sequence DMAs", started.len(), source.len()));
    }
    for (k, (a, m)) in started.iter().zip(&source).enumerate() {
        let Some(index) = design.arguments.iter().position(|x| x.name == m.0) else {
            wrong.push(format!("DMA {k} moves %{}, which design.json does not list", m.0));
            continue;
        };
        let (ranges, moved) = memcpy_bytes(design.arguments[index].dtype.size_bytes() as u64, m);
        let runs = u64::from(a.start.map_or(0, |s| s.repeat_count)) + 1;
        if a.arg_index as usize != index || a.byte_ranges() != ranges || a.bytes_per_run * runs != moved {
            wrong.push(format!(
                "DMA {k} (%{} {:?} {:?} {:?}) became BD {} of column {} on argument {} moving {} x {} bytes at {:?}, expected {moved} bytes at {:?}",
                m.0,
                m.1,
                m.2,
                m.3,
                a.bd_id,
                a.column,
                a.arg_index,
                runs,
                a.bytes_per_run,
                a.byte_ranges().iter().take(3).collect::<Vec<_>>(),
                ranges.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
    if call.instruction_words as usize != words.len() {
        wrong.push(format!(
            "kernel_call passes {} instruction words, the stream has {}",
            call.instruction_words,
            words.len()
        ));
    }
    for (i, (spec, buf)) in design.arguments.iter().zip(&call.buffers).enumerate() {
        let accesses = uses.get(&(i as u32)).map(Vec::as_slice).unwrap_or(&[]);
        // The buffer the backend allocates for this argument holds every byte the BDs touch.
        if let Some(a) = accesses.iter().find(|a| a.range.end > buf.bytes as u64) {
            wrong.push(format!(
                "argument {i} ({}): BD reaches byte {}, kernel buffer has {}",
                spec.name, a.range.end, buf.bytes
            ));
        }
        // Each direction's bytes, merged over all its BDs.
        let touched = |dir: DmaDirection| {
            let mut r: Vec<_> = accesses.iter().filter(|a| a.direction() == Some(dir)).flat_map(|a| a.byte_ranges()).collect();
            merge_ranges(&mut r);
            r
        };
        let (written, read) = (touched(DmaDirection::S2mm), touched(DmaDirection::Mm2s));
        let whole = written.len() == 1 && written[0] == (0..spec.bytes() as u64);
        if spec.direction == ArgDirection::Out && !whole {
            let shown: Vec<_> = written.iter().take(4).collect();
            wrong.push(format!("output {i} ({}, {} bytes) is written at {shown:?}, not whole", spec.name, spec.bytes()));
        }
        let lo = accesses.iter().map(|a| a.range.start).min().unwrap_or(0);
        let hi = accesses.iter().map(|a| a.range.end).max().unwrap_or(0);
        summary.push(format!(
            "arg {i} {} {:?} {}B: {} BDs ({} read, {} written), bytes {lo}..{hi}, covered {:?}",
            spec.name,
            spec.direction,
            spec.bytes(),
            accesses.len(),
            accesses.iter().filter(|a| a.direction() == Some(DmaDirection::Mm2s)).count(),
            accesses.iter().filter(|a| a.direction() == Some(DmaDirection::S2mm)).count(),
            if spec.direction == ArgDirection::Out { &written } else { &read },
        ));
    }
    if wrong.is_empty() {
        Ok(summary.join("\n    "))
    } else {
        Err(wrong.join("\n  "))
    }
}

#[test]
fn every_example_keeps_the_argument_contract() {
    let Some(bin) = tools() else {
        println!("skipped: aie-opt not found (set MLIR_AIE_INSTALL_DIR to an mlir-aie install)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (mut checked, mut not_checked, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for (device_name, device) in [("npu1", DeviceModel::npu1()), ("npu2", DeviceModel::npu2())] {
        for (name, text) in examples() {
            let what = format!("{name} on {device_name}");
            let compiled = match compile_source(&format!("dsl-examples/{name}"), &text, &device) {
                Ok(c) => c,
                Err(e) => {
                    not_checked.push(format!("{what}: does not compile: {}", e.to_string().lines().next().unwrap_or("")));
                    continue;
                }
            };
            let dir = root.path().join(format!("{}_{device_name}", name.trim_end_matches(".tile")));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("design.mlir"), &compiled.mlir).unwrap();
            std::fs::write(dir.join("design.json"), compiled.json.to_pretty_json()).unwrap();
            // The backend reads design.json from disk: check what it would read.
            let design = DesignJson::read(&dir.join("design.json")).unwrap();
            assert_eq!(design.device, device_name);
            let words = match steps_to_insts(&bin, &dir) {
                Ok(w) => w,
                Err(e) => {
                    not_checked.push(format!("{what}: mlir-aie's steps stop: {e}"));
                    continue;
                }
            };
            match check_design(&design, &compiled.mlir, &words) {
                Ok(summary) => {
                    println!("{what}: {summary}");
                    checked.push(what);
                }
                Err(e) => failures.push(format!("{what}:\n  {e}")),
            }
        }
    }
    println!("checked ({}): {}", checked.len(), checked.join(", "));
    for n in &not_checked {
        println!("not checked: {n}");
    }
    assert!(failures.is_empty(), "the instruction stream breaks the contract:\n{}", failures.join("\n"));
    for must in ["matmul.tile on npu1", "matmul.tile on npu2"] {
        assert!(checked.iter().any(|c| c == must), "{must} was not checked:\n{}", not_checked.join("\n"));
    }
}
