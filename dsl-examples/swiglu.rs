//! swiglu.tile written with the Rust API. `cargo run -p aiec --example swiglu` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/swiglu.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("swiglu");
    let m = k.dim("M", 128).tile(8);
    let n = k.dim("N", 1024).tile(256);
    let gate = k.input("gate", DType::Bf16, [m, n]);
    let up = k.input("up", DType::Bf16, [m, n]);
    let y = k.output("y", DType::Bf16, [m, n]);
    k.spread_rows(m).spread_cols(n);
    k.assign(y.at([m, n]), gate.at([m, n]) * sigmoid(gate.at([m, n])) * up.at([m, n]));
    k.build()
}

#[allow(dead_code)]
fn main() {
    match kernel().and_then(|k| aiec::compile_kernel(&k, &aiec::DeviceModel::npu1())) {
        Ok(c) => print!("{}", c.mlir),
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    }
}
