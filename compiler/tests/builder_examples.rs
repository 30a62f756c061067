//! The Rust-API versions of matmul and softmax in dsl-examples/ emit byte-identical MLIR (and
//! design.json) to their `.tile` versions: both front ends produce one IR.

#[path = "../../dsl-examples/matmul.rs"]
mod matmul_rs;
#[path = "../../dsl-examples/softmax.rs"]
mod softmax_rs;

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
