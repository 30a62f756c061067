//! embedding.tile written with the Rust API. `cargo run -p aiec --example embedding` prints its
//! MLIR, byte-identical to `aiec compile dsl-examples/embedding.tile --emit mlir`.

use aiec::dsl::builder::*;
use aiec_runtime::DType;

pub fn kernel() -> Result<aiec::ir::Kernel, aiec::CompileError> {
    let mut k = Kernel::new("embedding");
    let t = k.dim("T", 64).tile(8);
    let d = k.dim("D", 64).whole();
    let ids = k.input("ids", DType::I32, [t]);
    let table = k.input("table", DType::Bf16, (100, d));
    let y = k.output("y", DType::Bf16, [t, d]);
    k.spread_cores(t);
    k.assign(y.at([t, d]), table.gather((0, d), 0, ids.at([t])));
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
