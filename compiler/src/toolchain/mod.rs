//! The mlir-aie toolchain: where it is ([`config`], from toolchain.toml, the environment and
//! flags), whether it works ([`doctor`]), mlir-aie's steps up to the cores' LLVM IR run one by one
//! ([`steps`]), and driving it from `design.mlir` to `final.xclbin` + `insts.bin` ([`driver`]).

pub mod config;
pub mod doctor;
pub mod driver;
pub mod steps;

pub use config::{Origin, Overrides, Sourced, Tool, ToolPath, Toolchain, ToolchainError};
pub use doctor::DoctorReport;
pub use driver::{BuildError, BuildOutputs, Until};
pub use steps::{StepError, StepsReport};
