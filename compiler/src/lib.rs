//! aiec: a tiling DSL and compiler for AMD Ryzen AI NPUs that emits MLIR-AIE.
//!
//! The pipeline follows the modules: [`dsl`] (parse / build) -> [`ir`] (typed kernel) ->
//! [`schedule`] (placement, object FIFOs, runtime sequence) -> [`check`] (hardware limits) ->
//! [`lower`] (melior MLIR module) -> [`emit`] (mlir-aie custom syntax, design.json).

pub mod diag;
pub mod dsl;
pub mod ir;
pub mod toolchain;
