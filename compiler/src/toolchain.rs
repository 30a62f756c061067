//! Toolchain discovery and the mlir-aie build driver.
