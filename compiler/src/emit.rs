//! Emission: the lowered module, built in memory, is verified and printed by MLIR's own printer
//! and comes out in mlir-aie's custom syntax, byte-for-byte deterministic.
//!
//! Upstream MLIR has no aie dialect, so aie/aiex ops are printed in generic form and converted
//! by [`aiec_runtime::aie_syntax`], the same bridge the emulator reads designs with.

use crate::diag::{CompileError, Diagnostic};
use crate::lower::Lowered;
use aiec_runtime::aie_syntax;
use melior::dialect::DialectRegistry;
use melior::ir::operation::{OperationLike, OperationPrintingFlags};
use melior::ir::Module;
use melior::utility::register_all_dialects;
use melior::Context;
use std::cell::RefCell;
use std::rc::Rc;

/// An MLIR context with every upstream dialect and unregistered (aie) ops allowed.
pub(crate) fn mlir_context() -> Context {
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

/// Why MLIR did not take a module, with its diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlirError {
    /// The text is not MLIR.
    #[error("MLIR did not parse the module: {0}")]
    Parse(String),
    /// The module does not verify.
    #[error("MLIR did not verify the module: {0}")]
    Verify(String),
}

/// Parses and verifies MLIR text (aie ops in generic form); returns MLIR's own printing of it.
pub fn verify_generic(text: &str) -> Result<String, MlirError> {
    let context = mlir_context();
    let diagnostics = Diagnostics::attach(&context);
    let result = match Module::parse(&context, text) {
        None => Err(MlirError::Parse(diagnostics.take())),
        Some(module) => verified(&module, &diagnostics).map(|(plain, _)| plain),
    };
    diagnostics.detach(&context);
    result
}

/// MLIR's diagnostics while attached to a context.
struct Diagnostics {
    messages: Rc<RefCell<Vec<String>>>,
    id: melior::diagnostic::DiagnosticHandlerId,
}

impl Diagnostics {
    fn attach(context: &Context) -> Self {
        let messages = Rc::new(RefCell::new(Vec::<String>::new()));
        let sink = messages.clone();
        let id = context.attach_diagnostic_handler(move |d| {
            sink.borrow_mut().push(format!("{}: {}", d.location(), d));
            true
        });
        Diagnostics { messages, id }
    }

    fn take(&self) -> String {
        std::mem::take(&mut *self.messages.borrow_mut()).join("; ")
    }

    fn detach(self, context: &Context) {
        context.detach_diagnostic_handler(self.id);
    }
}

/// Verifies `module`; returns MLIR's printing of it and per printed line the DSL location its
/// op carries, if any.
fn verified(module: &Module, diagnostics: &Diagnostics) -> Result<(String, Vec<Option<String>>), MlirError> {
    if !module.as_operation().verify() {
        return Err(MlirError::Verify(diagnostics.take()));
    }
    let plain = module.as_operation().to_string();
    let flags = OperationPrintingFlags::new().enable_debug_info(true, false);
    let located = module
        .as_operation()
        .to_string_with_flags(flags)
        .map(|dbg| line_locations(&plain, &dbg))
        .unwrap_or_default();
    Ok((plain, located))
}

/// The emitted module in both syntaxes.
pub(crate) struct EmittedMlir {
    /// mlir-aie custom syntax (design.mlir).
    pub(crate) custom: String,
    /// aie ops in generic form, as MLIR printed them.
    pub(crate) generic: String,
    /// Per line of `custom` (0-based), the DSL location (`file:line:col`) of the op on it.
    pub(crate) source_lines: Vec<Option<String>>,
}

/// Pairs each line of MLIR's plain printing with the location the debug-info printing of the
/// same module shows for it (`loc("f":1:2)` inline or through a `#locN = loc(...)` alias). A
/// line whose text differs between the two printings gets no location.
fn line_locations(plain: &str, dbg: &str) -> Vec<Option<String>> {
    let mut aliases = std::collections::HashMap::new();
    for l in dbg.lines() {
        if let Some((name, rest)) = l.split_once(" = loc(") {
            if name.starts_with("#loc") {
                aliases.insert(name.trim().to_string(), rest.trim_end_matches(')').to_string());
            }
        }
    }
    let resolve = |loc: &str| -> Option<String> {
        let loc = aliases.get(loc).map(String::as_str).unwrap_or(loc);
        // `"file":L:C` -> file:L:C; unknown and name-only locations carry no line.
        let (file, line_col) = loc.strip_prefix('"')?.rsplit_once('"')?;
        let line_col = line_col.strip_prefix(':')?;
        // "-" is the module text itself: ops the lowering wrote without a DSL location.
        (file != "-").then(|| format!("{file}:{line_col}"))
    };
    // Alias definitions come before and after the module; the module's lines are the rest.
    let dbg_lines: Vec<&str> = dbg.lines().filter(|l| !l.starts_with("#loc")).collect();
    plain
        .lines()
        .enumerate()
        .map(|(i, p)| {
            let d = dbg_lines.get(i)?;
            let (code, loc) = d.rsplit_once(" loc(")?;
            (code == p).then(|| resolve(loc.strip_suffix(')')?)).flatten()
        })
        .collect()
}

/// Verifies and prints the lowered module; `arg_names` names the runtime-sequence arguments
/// (the host tensors) in order.
pub(crate) fn emit(context: &Context, lowered: &Lowered, arg_names: &[String]) -> Result<EmittedMlir, CompileError> {
    let diagnostics = Diagnostics::attach(context);
    let result = verified(&lowered.module, &diagnostics);
    diagnostics.detach(context);
    let (generic, located) = result.map_err(|e| internal(format!("{e}\n{}", lowered.module.as_operation())))?;
    let custom = aie_syntax::generic_to_custom(&generic).map_err(|e| internal(format!("syntax bridge: {e}")))?;
    // The bridge rewrites aie ops line by line and folds the runtime sequence's block header
    // (`^bb0(...)`) into its op line; otherwise every op keeps its line.
    let kept: Vec<Option<String>> = generic
        .lines()
        .zip(located.into_iter().chain(std::iter::repeat(None)))
        .filter(|(l, _)| !l.trim_start().starts_with("^bb"))
        .map(|(_, loc)| loc)
        .collect();
    let source_lines = if kept.len() == custom.lines().count() { kept } else { Vec::new() };
    Ok(EmittedMlir {
        custom: readable_names(&custom, arg_names),
        generic,
        source_lines,
    })
}

/// MLIR numbers the results of unregistered ops (`%0 = aie.tile(0, 2)`); mlir-aie designs name
/// them. Renames tiles to `%tile_C_R`, cores to `%core_C_R`, buffers to their symbol and the
/// runtime-sequence arguments to their tensors' names. Deterministic: a pure function of the printed text.
pub(crate) fn readable_names(text: &str, arg_names: &[String]) -> String {
    let mut map: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        let Some((lhs, rhs)) = l.split_once(" = ") else { continue };
        if !lhs.starts_with('%') || !lhs[1..].chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Some(args) = rhs.strip_prefix("aie.tile(").and_then(|r| r.strip_suffix(')')) {
            if let Some((c, r)) = args.split_once(", ") {
                map.push((lhs.to_string(), format!("%tile_{c}_{r}")));
            }
        } else if let Some(tile) = rhs.strip_prefix("aie.core(").and_then(|r| r.split(')').next()) {
            let renamed = map.iter().find(|(k, _)| k == tile).map(|(_, v)| v.clone());
            if let Some(t) = renamed {
                map.push((lhs.to_string(), t.replacen("%tile_", "%core_", 1)));
            }
        } else if rhs.starts_with("aie.buffer(") {
            // A buffer is named after its symbol, as mlir-aie prints it.
            let sym = rhs.split("sym_name = \"").nth(1).and_then(|r| r.split('"').next());
            if let Some(sym) = sym {
                map.push((lhs.to_string(), format!("%{sym}")));
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let args: Vec<(String, String)> = arg_names.iter().enumerate().map(|(i, n)| (format!("%arg{i}"), format!("%{n}"))).collect();
    let mut in_sequence: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("aie.runtime_sequence(") {
            in_sequence = Some(indent);
        }
        let mut l = replace_values(line, &map);
        if in_sequence.is_some() {
            l = replace_values(&l, &args);
        }
        if in_sequence == Some(indent) && line.trim() == "}" {
            in_sequence = None;
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Replaces whole SSA value tokens (`%12` but not `%123` or `%12abc`).
fn replace_values(line: &str, map: &[(String, String)]) -> String {
    if !line.contains('%') {
        return line.to_string();
    }
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let token = &line[i..j];
            match map.iter().find(|(k, _)| k == token) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(token),
            }
            i = j;
        } else {
            let ch = line[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}
