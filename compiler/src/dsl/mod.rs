//! The front ends: the `.tile` text language (pest) and the Rust builder API. Both produce a
//! [`ast::KernelAst`]; [`typecheck`] resolves it into [`crate::ir::Kernel`].

pub mod ast;
pub mod builder;
pub mod parse;
mod tiling;
pub mod typecheck;

use crate::diag::{CompileError, Source};
use std::sync::Arc;

/// Parses and type-checks `.tile` source text.
pub fn compile_source(source: &Arc<Source>) -> Result<crate::ir::Kernel, CompileError> {
    let ast = parse::parse(source)?;
    typecheck::typecheck(&ast)
}
