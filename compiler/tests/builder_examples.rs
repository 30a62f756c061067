//! The Rust-API versions of the examples in dsl-examples/ (matmul, softmax, quantize, swiglu,
//! argmax, conv2d, depthwise_conv1d, embedding) emit byte-identical MLIR (and design.json) to their `.tile`
//! versions, on npu1 and npu2: both front ends produce one IR.

#[path = "../../dsl-examples/argmax.rs"]
mod argmax_rs;
#[path = "../../dsl-examples/conv2d.rs"]
mod conv2d_rs;
#[path = "../../dsl-examples/depthwise_conv1d.rs"]
mod depthwise_conv1d_rs;
#[path = "../../dsl-examples/embedding.rs"]
mod embedding_rs;
#[path = "../../dsl-examples/matmul.rs"]
mod matmul_rs;
#[path = "../../dsl-examples/quantize.rs"]
mod quantize_rs;
#[path = "../../dsl-examples/softmax.rs"]
mod softmax_rs;
#[path = "../../dsl-examples/swiglu.rs"]
mod swiglu_rs;

use aiec::{compile_kernel, compile_source, DeviceModel};

fn tile(name: &str) -> aiec::Compiled {
    let path = format!("{}/../dsl-examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    compile_source(&path, &text, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn matmul_rust_api_matches_tile() {
    let from_rust = compile_kernel(&matmul_rs::kernel().unwrap(), &DeviceModel::npu1()).unwrap();
    let from_tile = tile("matmul.tile");
    assert_eq!(from_rust.mlir, from_tile.mlir);
    assert_eq!(from_rust.json.to_pretty_json(), from_tile.json.to_pretty_json());
}

#[test]
fn softmax_rust_api_matches_tile() {
    let from_rust = compile_kernel(&softmax_rs::kernel().unwrap(), &DeviceModel::npu1()).unwrap();
    let from_tile = tile("softmax.tile");
    assert_eq!(from_rust.mlir, from_tile.mlir);
    assert_eq!(from_rust.json.to_pretty_json(), from_tile.json.to_pretty_json());
}

fn same_mlir(kernel: &aiec::ir::Kernel, name: &str) {
    let path = format!("{}/../dsl-examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    for device in [DeviceModel::npu1(), DeviceModel::npu2()] {
        let from_rust = compile_kernel(kernel, &device).unwrap_or_else(|e| panic!("{e}"));
        let from_tile = compile_source(&path, &text, &device).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_rust.mlir, from_tile.mlir, "{name} on {}", device.name);
        assert_eq!(from_rust.json.to_pretty_json(), from_tile.json.to_pretty_json());
    }
}

#[test]
fn quantize_rust_api_matches_tile() {
    same_mlir(&quantize_rs::kernel().unwrap(), "quantize.tile");
}

#[test]
fn swiglu_rust_api_matches_tile() {
    same_mlir(&swiglu_rs::kernel().unwrap(), "swiglu.tile");
}

#[test]
fn argmax_rust_api_matches_tile() {
    same_mlir(&argmax_rs::kernel().unwrap(), "argmax.tile");
}

#[test]
fn conv2d_rust_api_matches_tile() {
    same_mlir(&conv2d_rs::kernel().unwrap(), "conv2d.tile");
}

#[test]
fn depthwise_conv1d_rust_api_matches_tile() {
    same_mlir(&depthwise_conv1d_rs::kernel().unwrap(), "depthwise_conv1d.tile");
}

#[test]
fn embedding_rust_api_matches_tile() {
    same_mlir(&embedding_rs::kernel().unwrap(), "embedding.tile");
}

#[test]
fn builder_errors_point_at_the_rust_line() {
    use aiec::dsl::builder::*;
    use aiec_runtime::DType;
    let mut k = Kernel::new("bad");
    let m = k.dim("M", 100).tile(64);
    let x = k.input("x", DType::F32, [m]);
    let y = k.output("y", DType::F32, [m]);
    k.spread_rows(m);
    k.assign(y.at([m]), x.at([m]));
    let err = k.build().unwrap_err().to_string();
    assert!(err.contains("does not divide"), "{err}");
    assert!(err.contains("builder_examples.rs:"), "error names the Rust source line: {err}");
}

/// The Rust API on one dependency: a kernel built, compiled, written and checked against the
/// reference without a driver — tuple indices mixing dims and numbers, scalars on the left.
#[test]
fn one_dependency_compile_write_and_verify() {
    use aiec::dsl::builder::*;
    use aiec::{DType, DeviceModel};
    let mut k = Kernel::new("scale_rows");
    let m = k.dim("M", 64).tile(16);
    let n = k.dim("N", 32).whole();
    let x = k.input("x", DType::F32, (m, 2, n));
    let y = k.output("y", DType::F32, [m, n]);
    k.spread_rows(m);
    k.assign(y.at([m, n]), 2 * x.at((m, 0, n)) + 0.5 * x.at((m, 1, n)) - 1);
    let compiled = k.compile(&DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    compiled.write_to(dir.path()).unwrap();
    let written = std::fs::read_to_string(dir.path().join("design.mlir")).unwrap();
    assert_eq!(written, compiled.mlir);
    assert!(dir.path().join("design.json").exists());
    let checks = compiled.emulate_against_reference(5).unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].name, "y");
    assert!(checks[0].passed(), "{:?}", checks[0].comparison);
}

#[test]
fn quotients_and_remainders_in_rust_indices_match_tile() {
    use aiec::dsl::builder::*;
    use aiec::DType;
    let text = "kernel upsample {\n  dim T = 256 tile 16\n  dim D = 64\n  in  x: f32[128, 8]\n  in  g: f32[4]\n  out y: f32[T, D]\n  spread T over cols\n  y[T, D] = x[T / 2, D % 8] * g[(T + 2*D) % 4] + x[T / 4 + 2*(T % 2), 7 - D / 9]\n}\n";
    let mut k = Kernel::new("upsample");
    let t = k.dim("T", 256).tile(16);
    let d = k.dim("D", 64).whole();
    let x = k.input("x", DType::F32, (128, 8));
    let g = k.input("g", DType::F32, [4]);
    let y = k.output("y", DType::F32, [t, d]);
    k.spread_cols(t);
    k.assign(
        y.at([t, d]),
        x.at((t / 2, d % 8)) * g.at([(t + d * 2) % 4]) + x.at((t / 4 + (t % 2) * 2, 7 - d / 9)),
    );
    let kernel = k.build().unwrap_or_else(|e| panic!("{e}"));
    for device in [DeviceModel::npu1(), DeviceModel::npu2()] {
        let from_rust = compile_kernel(&kernel, &device).unwrap_or_else(|e| panic!("{e}"));
        let from_tile = compile_source("upsample.tile", text, &device).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_rust.mlir, from_tile.mlir, "on {}", device.name);
        let checks = from_rust.emulate_against_reference(7).unwrap();
        assert!(checks.iter().all(|c| c.comparison.exact), "{:?}", checks[0].comparison);
    }
}
