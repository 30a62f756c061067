//! Emission: the lowered module goes through MLIR (melior) — parsed, verified and printed by
//! MLIR's own printer — and comes out in mlir-aie's custom syntax, byte-for-byte deterministic.
//!
//! Upstream MLIR has no aie dialect, so aie/aiex ops cross the boundary in generic form through
//! [`aiec_runtime::aie_syntax`], the same bridge the emulator reads designs with.

use crate::diag::{CompileError, Diagnostic};
use aiec_runtime::aie_syntax;
use melior::dialect::DialectRegistry;
use melior::ir::operation::OperationLike;
use melior::ir::Module;
use melior::utility::register_all_dialects;
use melior::Context;
use std::cell::RefCell;
use std::rc::Rc;

/// An MLIR context with every upstream dialect and unregistered (aie) ops allowed.
pub fn mlir_context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new_with_registry(&registry, false);
    context.load_all_available_dialects();
    context.set_allow_unregistered_dialects(true);
    context
}

fn internal(msg: String) -> CompileError {
    CompileError::Lower(Diagnostic::new(msg, None).note("this is a compiler bug: the design passed every check"))
}

/// Parses and verifies MLIR text (aie ops in generic form); returns MLIR's own printing of it.
pub fn verify_generic(text: &str) -> Result<String, String> {
    let context = mlir_context();
    let messages = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = messages.clone();
    let id = context.attach_diagnostic_handler(move |d| {
        sink.borrow_mut().push(format!("{}: {}", d.location(), d));
        true
    });
    let result = match Module::parse(&context, text) {
        None => Err(format!("MLIR did not parse the module: {}", messages.borrow().join("; "))),
        Some(module) => {
            if module.as_operation().verify() {
                Ok(module.as_operation().to_string())
            } else {
                Err(format!("MLIR did not verify the module: {}", messages.borrow().join("; ")))
            }
        }
    };
    context.detach_diagnostic_handler(id);
    result
}

/// The emitted module in both syntaxes.
pub struct EmittedMlir {
    /// mlir-aie custom syntax (design.mlir).
    pub custom: String,
    /// aie ops in generic form, as MLIR printed them.
    pub generic: String,
}

pub fn emit(lowered_custom: &str) -> Result<EmittedMlir, CompileError> {
    let generic_in = aie_syntax::custom_to_generic(lowered_custom).map_err(|e| internal(format!("syntax bridge: {e}")))?;
    let generic = verify_generic(&generic_in).map_err(|e| internal(format!("{e}\n{generic_in}")))?;
    let custom = aie_syntax::generic_to_custom(&generic).map_err(|e| internal(format!("syntax bridge: {e}")))?;
    Ok(EmittedMlir { custom, generic })
}
