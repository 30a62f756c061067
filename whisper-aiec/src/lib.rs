//! Whisper on aiec kernels: every heavy op of the model runs as a design compiled from the kernels
//! in [`kernels`], on the emulator or on the NPU.
//!
//! * [`kernels`] — the Whisper kernels, written with aiec's Rust builder, one per op and shape class.
//! * [`cache`] — compiled designs on disk, keyed by kernel, shape, device and compiler build.
//! * [`ops`] — [`ops::KernelOps`], whisper's `Ops` on those designs: pads to shape classes, lays
//!   operands out as the kernels want, keeps weights resident, and records what ran.
//! * [`shapes`] — which design serves a call of a given shape; the bound on designs per model.
//! * [`report`] — per op: calls, shapes, backend, host time and the cost model's estimate.
//!
//! Dependencies point one way: this crate uses `aiec` (to generate and compile kernels),
//! `aiec-runtime` (to run them) and `whisper` (the model and its `Ops` boundary); none of them
//! knows this crate.

// The error types hold their causes by value; boxing them would save nothing measurable.
#![allow(clippy::result_large_err)]

pub mod cache;
pub mod kernels;
pub mod ops;
pub mod report;
pub mod shapes;
