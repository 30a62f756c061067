//! matmul.tile written with the Rust API. `cargo run -p aiec --example matmul` prints its MLIR,
//! byte-identical to `aiec compile dsl-examples/matmul.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("matmul");
    let m = k.dim("M", 512).tile(64);
    let n = k.dim("N", 512).tile(64);
    let kk = k.dim("K", 512).tile(64);
    let a = k.input("A", DType::I8, [m, kk]);
    let b = k.input("B", DType::I8, [kk, n]);
    let c = k.output("C", DType::I32, [m, n]);
    k.spread_rows(m).spread_cols(n);
    k.assign(c.at([m, n]), sum([kk], a.at([m, kk]) * b.at([kk, n])));
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
