//! quantize.tile written with the Rust API. `cargo run -p aiec --example quantize` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/quantize.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("quantize");
    let m = k.dim("M", 256).tile(8);
    let n = k.dim("N", 512).whole();
    let x = k.input("x", DType::Bf16, [m, n]);
    let q = k.output("q", DType::I8, [m, n]);
    let s = k.output("s", DType::F32, [m]);
    k.spread_cores(m);
    k.assign(s.at([m]), max2(maxr([n], abs(x.at([m, n]))), 1e-30) / 127.0);
    k.assign(q.at([m, n]), cast(DType::I8, round(x.at([m, n]) / s.at([m]))));
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
