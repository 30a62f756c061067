//! The compiler's rules for core code (`aiec::target_rules`) against mlir-aie's real tools: each
//! 16-lane vector rule and each MAC shape is put through the steps core code takes before Peano
//! (convert-vector-to-aievec, then the core lowering to LLVM and LLVM IR), on both targets, and
//! the outcome must be the one the table states. Runs when aie-opt is installed
//! (`MLIR_AIE_INSTALL_DIR`); otherwise prints one line saying it skipped.

use aiec::target_rules::{mac_shape, AieTarget, Verdict, MULF_BF16_OPERANDS, MULF_MIXED_OPERANDS, VECTOR_RULES};
use aiec_runtime::DType;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("MLIR_AIE_INSTALL_DIR")?).join("bin");
    (dir.join("aie-opt").is_file() && dir.join("aie-translate").is_file()).then_some(dir)
}

/// Outcome of the core steps on a module: Ok(number of AIE intrinsic calls) or the first error.
fn core_steps(bin: &Path, dir: &Path, text: &str, target: AieTarget) -> Result<usize, String> {
    let input = dir.join("in.mlir");
    std::fs::write(&input, text).unwrap();
    let (s1, s5, ll) = (dir.join("s1.mlir"), dir.join("s5.mlir"), dir.join("out.ll"));
    let t = target.name();
    let run = |args: Vec<String>, tool: &str| -> Result<(), String> {
        let out = Command::new(bin.join(tool)).args(&args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .find(|l| l.contains("error") || l.contains("warning"))
            .unwrap_or("failed")
            .to_string())
    };
    let path = |p: &Path| p.display().to_string();
    run(
        vec![
            format!("--pass-pipeline=builtin.module(convert-vector-to-aievec{{aie-target={t} target-backend=llvmir}})"),
            path(&input),
            "-o".into(),
            path(&s1),
        ],
        "aie-opt",
    )?;
    run(
        vec![
            format!(
                "--pass-pipeline=builtin.module(convert-aievec-to-llvm{{aie-target={t}}},canonicalize,cse,expand-strided-metadata,\
                 lower-affine,arith-expand,finalize-memref-to-llvm,convert-func-to-llvm,convert-to-llvm,convert-vector-to-llvm,\
                 convert-ub-to-llvm,canonicalize,cse)"
            ),
            path(&s1),
            "-o".into(),
            path(&s5),
        ],
        "aie-opt",
    )?;
    run(vec!["--mlir-to-llvmir".into(), path(&s5), "-o".into(), path(&ll)], "aie-translate")?;
    let ir = std::fs::read_to_string(&ll).unwrap();
    Ok(ir.matches("@llvm.aie2").count())
}

fn zero(elem: &str) -> &'static str {
    if elem.starts_with('f') || elem == "bf16" {
        "0.0"
    } else {
        "0"
    }
}

/// A function reading 16-lane operands, applying the rule's op, storing the result.
fn rule_module(op: &str, elem: &str, result: &str) -> String {
    // Multiplies whose operands come from bf16 vectors: extend them first.
    if elem == MULF_BF16_OPERANDS || elem == MULF_MIXED_OPERANDS {
        let second = if elem == MULF_BF16_OPERANDS { "%w" } else { "%f" };
        return format!(
            "func.func @f(%x: memref<64xbf16>, %y: memref<64xbf16>, %g: memref<64xf32>, %o: memref<64xf32>) {{
  %c0 = arith.constant 0 : index
  %pb = arith.constant 0.0 : bf16
  %pf = arith.constant 0.0 : f32
  %xb = vector.transfer_read %x[%c0], %pb {{in_bounds = [true]}} : memref<64xbf16>, vector<16xbf16>
  %yb = vector.transfer_read %y[%c0], %pb {{in_bounds = [true]}} : memref<64xbf16>, vector<16xbf16>
  %f = vector.transfer_read %g[%c0], %pf {{in_bounds = [true]}} : memref<64xf32>, vector<16xf32>
  %v = arith.extf %xb : vector<16xbf16> to vector<16xf32>
  %w = arith.extf %yb : vector<16xbf16> to vector<16xf32>
  %r = {op} %v, {second} : vector<16xf32>
  vector.transfer_write %r, %o[%c0] {{in_bounds = [true]}} : vector<16xf32>, memref<64xf32>
  return
}}
"
        );
    }
    let v = |t: &str| format!("vector<16x{t}>");
    // An i1 vector is not stored: a comparison feeds a select, as in the lowering.
    let out = if result == "i1" { elem } else { result };
    let mut s = format!(
        "func.func @f(%m0: memref<64x{elem}>, %m1: memref<64x{elem}>, %o: memref<64x{out}>) {{\n  %c0 = arith.constant 0 : index\n  %p = arith.constant {} : {elem}\n",
        zero(elem)
    );
    for i in 0..2 {
        s += &format!(
            "  %a{i} = vector.transfer_read %m{i}[%c0], %p {{in_bounds = [true]}} : memref<64x{elem}>, {}\n",
            v(elem)
        );
    }
    if let Some(kind) = op.strip_prefix("vector.reduction ") {
        s += &format!("  %r = vector.reduction {kind}, %a0 : {} into {elem}\n", v(elem));
        s += &format!("  memref.store %r, %o[%c0] : memref<64x{out}>\n  return\n}}\n");
        return s;
    }
    let body = match op {
        "arith.cmpf" => format!(
            "%c = arith.cmpf ogt, %a0, %a1 : {0}\n  %r = arith.select %c, %a0, %a1 : vector<16xi1>, {0}",
            v(elem)
        ),
        "arith.cmpi" | "arith.select" => format!(
            "%c = arith.cmpi sgt, %a0, %a1 : {0}\n  %r = arith.select %c, %a0, %a1 : vector<16xi1>, {0}",
            v(elem)
        ),
        "arith.negf" => format!("%r = arith.negf %a0 : {}", v(elem)),
        _ if elem != result => format!("%r = {op} %a0 : {} to {}", v(elem), v(result)),
        _ => format!("%r = {op} %a0, %a1 : {}", v(elem)),
    };
    s += &format!("  {body}\n");
    s += &format!(
        "  vector.transfer_write %r, %o[%c0] {{in_bounds = [true]}} : {}, memref<64x{out}>\n  return\n}}\n",
        v(out)
    );
    s
}

#[test]
fn every_vector_rule_matches_aie_opt() {
    let Some(bin) = tools() else {
        println!("skipped: aie-opt not found (set MLIR_AIE_INSTALL_DIR to an mlir-aie install)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for rule in VECTOR_RULES {
        let text = rule_module(rule.op, rule.elem, rule.result);
        for target in AieTarget::ALL {
            let got = core_steps(&bin, dir.path(), &text, target);
            let ok = match (rule.verdict(target), &got) {
                (Verdict::Intrinsic, Ok(n)) => *n > 0,
                (Verdict::Generic, Ok(n)) => *n == 0,
                (Verdict::Rejected(_), Err(_)) => true,
                _ => false,
            };
            if !ok {
                wrong.push(format!(
                    "{} on {} -> {} for {target}: table says {:?}, tools gave {got:?}",
                    rule.op,
                    rule.elem,
                    rule.result,
                    rule.verdict(target)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "the rules disagree with aie-opt:\n{}", wrong.join("\n"));
}

fn contract_module(dtype: DType, m: u64, k: u64, n: u64) -> String {
    let (e, acc, ext) = match dtype {
        DType::Bf16 => ("bf16", "f32", "arith.extf"),
        _ => (dtype.mlir(), "i32", "arith.extsi"),
    };
    let z = |t: &str| zero(t);
    format!(
        "func.func @f(%A: memref<64x64x{e}>, %B: memref<64x64x{e}>, %C: memref<64x64x{acc}>) {{
  %c0 = arith.constant 0 : index
  %pa = arith.constant {ze} : {e}
  %pc = arith.constant {zc} : {acc}
  %a = vector.transfer_read %A[%c0, %c0], %pa {{in_bounds = [true, true]}} : memref<64x64x{e}>, vector<{m}x{k}x{e}>
  %b = vector.transfer_read %B[%c0, %c0], %pa {{in_bounds = [true, true]}} : memref<64x64x{e}>, vector<{k}x{n}x{e}>
  %c = vector.transfer_read %C[%c0, %c0], %pc {{in_bounds = [true, true]}} : memref<64x64x{acc}>, vector<{m}x{n}x{acc}>
  %wa = {ext} %a : vector<{m}x{k}x{e}> to vector<{m}x{k}x{acc}>
  %wb = {ext} %b : vector<{k}x{n}x{e}> to vector<{k}x{n}x{acc}>
  %r = vector.contract {{indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = [\"parallel\", \"parallel\", \"reduction\"], kind = #vector.kind<add>}} %wa, %wb, %c : vector<{m}x{k}x{acc}>, vector<{k}x{n}x{acc}> into vector<{m}x{n}x{acc}>
  vector.transfer_write %r, %C[%c0, %c0] {{in_bounds = [true, true]}} : vector<{m}x{n}x{acc}>, memref<64x64x{acc}>
  return
}}
",
        ze = z(e),
        zc = z(acc)
    )
}

#[test]
fn every_mac_shape_converts_and_the_other_targets_shape_does_not_always() {
    let Some(bin) = tools() else {
        println!("skipped: aie-opt not found (set MLIR_AIE_INSTALL_DIR to an mlir-aie install)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for target in AieTarget::ALL {
        for dtype in [DType::I8, DType::I16, DType::Bf16] {
            let s = mac_shape(target, dtype).expect("every MAC dtype has a shape");
            match core_steps(&bin, dir.path(), &contract_module(dtype, s.m, s.k, s.n), target) {
                Ok(n) if n > 0 => {}
                other => wrong.push(format!("{dtype:?} {}x{}x{} on {target}: {other:?}", s.m, s.k, s.n)),
            }
        }
    }
    // The shapes really are per target: aie2's int8 shape is not aie2p's, and the other way round.
    for (target, other) in [(AieTarget::Aie2, AieTarget::Aie2p), (AieTarget::Aie2p, AieTarget::Aie2)] {
        let s = mac_shape(other, DType::I8).unwrap();
        if core_steps(&bin, dir.path(), &contract_module(DType::I8, s.m, s.k, s.n), target).is_ok() {
            wrong.push(format!("i8 {}x{}x{} ({other}'s shape) unexpectedly converts on {target}", s.m, s.k, s.n));
        }
    }
    assert!(wrong.is_empty(), "MAC shapes disagree with aie-opt:\n{}", wrong.join("\n"));
}
