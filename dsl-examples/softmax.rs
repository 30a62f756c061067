//! softmax.tile written with the Rust API. `cargo run -p aiec --example softmax` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/softmax.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("softmax");
    let m = k.dim("M", 256).tile(4);
    let n = k.dim("N", 1024).whole();
    let x = k.input("x", DType::Bf16, [m, n]);
    let y = k.output("y", DType::Bf16, [m, n]);
    let mx = k.local("mx", DType::F32, [m]);
    let inv = k.local("inv", DType::F32, [m]);
    k.spread_cores(m);
    k.assign(mx.at([m]), maxr([n], x.at([m, n])));
    k.assign(inv.at([m]), recip(sum([n], exp(x.at([m, n]) - mx.at([m])))));
    k.assign(y.at([m, n]), exp(x.at([m, n]) - mx.at([m])) * inv.at([m]));
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
