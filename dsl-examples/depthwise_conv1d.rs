//! depthwise_conv1d.tile written with the Rust API. `cargo run -p aiec --example depthwise_conv1d` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/depthwise_conv1d.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("depthwise_conv1d");
    let t = k.dim("T", 256).tile(16);
    let c = k.dim("C", 128).whole();
    let kk = k.dim("K", 4).whole();
    let x = k.input("x", DType::Bf16, (259, c));
    let w = k.input("w", DType::Bf16, [kk, c]);
    let y = k.output("y", DType::Bf16, [t, c]);
    k.spread_cores(t);
    k.assign(y.at([t, c]), sum([kk], x.at((t + kk, c)) * w.at([kk, c])));
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
