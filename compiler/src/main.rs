//! `aiec`: compile `.tile` kernels to MLIR-AIE, check them, emulate them, build and run them.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
