//! argmax.tile written with the Rust API. `cargo run -p aiec --example argmax` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/argmax.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("argmax");
    let m = k.dim("M", 64).tile(4);
    let v = k.dim("V", 2048).whole();
    let logits = k.input("logits", DType::Bf16, [m, v]);
    let best = k.output("best", DType::I32, [m]);
    k.spread_cores(m);
    k.assign(best.at([m]), argmax(v, logits.at([m, v])));
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
