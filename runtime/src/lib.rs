//! aiec runtime: artifacts produced by the compiler, and the backends that run them.
//!
//! * [`artifact`] — `design.json` and the artifact directory layout (the compiler's output contract).
//! * [`backend`] — the [`backend::Backend`] trait every way of running a design implements.
//! * [`aie_syntax`] — the bridge between mlir-aie's custom syntax and MLIR's generic form.
//! * [`emulator`] — runs `design.mlir` on the host, cores JIT-compiled through MLIR's LLVM lowering.
//! * [`npu`] — runs `final.xclbin` + `insts.bin` on a Ryzen AI NPU through XRT.

pub mod aie_syntax;
pub mod artifact;
pub mod backend;
pub mod emulator;
pub mod insts;
pub mod npu;
pub mod npy;

pub use artifact::{ArgDirection, ArgSpec, DType, DesignJson};
pub use backend::{ArgData, Backend, HostBuffer, LoadedKernel, ResidentId, RunReport, RuntimeError};
