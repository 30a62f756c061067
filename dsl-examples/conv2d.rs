//! conv2d.tile written with the Rust API. `cargo run -p aiec --example conv2d` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/conv2d.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("conv2d");
    let i = k.dim("I", 64).tile(4);
    let j = k.dim("J", 64).whole();
    let p = k.dim("P", 3).whole();
    let q = k.dim("Q", 3).whole();
    let x = k.input("x", DType::F32, [66, 66]);
    let w = k.input("w", DType::F32, [p, q]);
    let y = k.output("y", DType::F32, [i, j]);
    k.spread_cores(i);
    k.assign(y.at([i, j]), sum([p, q], x.at([i + p, j + q]) * w.at([p, q])));
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
