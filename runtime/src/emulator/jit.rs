//! Core bodies to host code: each `aie.core` body becomes a `func.func` whose object FIFO ops are calls into
//! the emulator, JIT-compiled with MLIR's own lowering to LLVM through melior's `ExecutionEngine`.
//!
//! The generated module keeps the line structure of the design (lines outside cores are left empty, the
//! callback declarations come after the last line), so MLIR diagnostics point at the design's own lines.
//! For a core on tile (c, r) that touches FIFOs `F0 .. Fk` and uses buffers `%b0 .. %bm` of its tile:
//!
//! ```text
//! func.func @aiec_core_N(%_aiec_ctx: i64, %_aiec_f<k>_<slot>: T, ..., %b0: B0, ...)
//!     // one memref per slot of each FIFO used, then each aie.buffer the body uses (order of first use),
//!     // under the buffer's own SSA name so the body's lines stay as they are
//! %s = aie.objectfifo.acquire @f(Consume, n) : ...
//!     -> %s = func.call @aiec_acquire(%_aiec_ctx, endpoint, n, site) -> index   (number of the first element)
//! %e = aie.objectfifo.subview.access %s[i] : ...
//!     -> slot = (%s + i) mod depth; %e = arith.select chain over the FIFO's slot memrefs
//! aie.objectfifo.release @f(Produce, n) -> func.call @aiec_release(%_aiec_ctx, endpoint, n, site)
//! aie.end -> func.return
//! ```
//!
//! The module's core functions are then checked and instrumented by [`super::checks`] (allowed ops, bounds
//! checks calling `aiec_oob`, division checks calling `aiec_fault`, `aiec_poll` stop points in long loops) before
//! MLIR lowers them; core text cannot name any `@aiec_...` symbol itself.
//!
//! Generated names and constants depend only on an op's position in its core, so cores with the same code
//! up to the FIFOs and buffers they use (the common case in a whole-array design) produce the same function
//! text and share one compiled function; each core keeps its own endpoint table, call-site lines and buffers.
//! A buffer's initial value is turned into bytes by MLIR itself ([`buffer_contents`]).

use super::checks::{self, CheckSite};
use super::design::{endpoint_of, Buffer, Design, DesignError};
use crate::aie_syntax::{AieOp, Line, LineItem, Port};
use melior::dialect::DialectRegistry;
use melior::ir::attribute::AttributeLike;
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationLike;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes};
use melior::Context;
use mlir_sys::{
    mlirExecutionEngineCreate, mlirExecutionEngineDestroy, mlirExecutionEngineLookup, mlirExecutionEngineRegisterSymbol, MlirExecutionEngine, MlirStringRef,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

/// One endpoint a core uses: FIFO index, port, and the endpoint's index on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub fifo: usize,
    pub port: Port,
    pub index: usize,
}

/// What the emulator needs to call one compiled core.
#[derive(Debug, Clone)]
pub struct CoreEntry {
    pub endpoints: Vec<Endpoint>,
    /// The locks the core uses (indices into `Design::locks`), by the number its code passes to `aiec_lock`.
    pub locks: Vec<usize>,
    /// The FIFOs whose slots are passed as memref arguments, in argument order.
    pub slot_fifos: Vec<usize>,
    /// Design line of each FIFO call site, by the site number the core passes to the callbacks.
    pub sites: Vec<usize>,
    /// The bounds-checked accesses of the function the core runs, by the site number it passes to `aiec_oob`
    /// (empty in unchecked mode).
    pub checks: Arc<Vec<CheckSite>>,
    /// What each argument of the core's function is, for messages: `""` for the context, `an element of object
    /// FIFO @f`, `buffer @b`.
    pub arg_names: Vec<String>,
    /// How to turn a line of the compiled function into a line of this core: `Some(shift)` to add, or `None`
    /// when the core runs code compiled from another core's text (equal after simplification), whose index is
    /// `code_of`.
    pub line_shift: Option<i64>,
    pub code_of: usize,
    /// Address of the packed entry point `void(void**)`.
    pub entry: usize,
}

/// The host text of the cores, and per core its endpoints and slot arguments.
pub struct CoreModule {
    pub text: String,
    pub endpoints: Vec<Vec<Endpoint>>,
    pub locks: Vec<Vec<usize>>,
    pub slot_fifos: Vec<Vec<usize>>,
    pub sites: Vec<Vec<usize>>,
    /// Per core, what each argument of its function is (see [`CoreEntry::arg_names`]).
    pub arg_names: Vec<Vec<String>>,
    /// Per core, the line of its `aie.core`.
    pub open_lines: Vec<usize>,
    /// Per function, the core whose text it was written from.
    pub first_core: Vec<usize>,
    /// The function (`@aiec_core_N`) each core runs: cores whose bodies are the same text up to the FIFOs
    /// they use share one compiled function.
    pub function_of: Vec<usize>,
    pub functions: usize,
}

fn line_err(line: usize, m: String) -> DesignError {
    DesignError { line, message: m }
}

/// Core code with memref types' integer memory spaces (`memref<8xi32, 2 : i32>`, as mlir-aie writes tile
/// memory) removed: core functions take their buffers as plain host memrefs.
fn drop_memory_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("memref<") {
        let (head, tail) = rest.split_at(i + "memref<".len());
        out.push_str(head);
        let Some(close) = tail.find(['>', '<']) else {
            rest = tail;
            continue;
        };
        let inner = &tail[..close];
        match inner.rsplit_once(',') {
            Some((shape, space)) if tail[close..].starts_with('>') && is_int_space(space) => {
                out.push_str(shape);
            }
            _ => out.push_str(inner),
        }
        rest = &tail[close..];
    }
    out.push_str(rest);
    out
}

/// ` 2 : i32` or ` 2`.
fn is_int_space(s: &str) -> bool {
    let v = s.trim();
    let v = v.strip_suffix(": i32").map(str::trim).unwrap_or(v);
    !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit())
}

/// Builds the module text holding one function per core.
pub fn core_module(design: &Design, lines: &[Line]) -> Result<CoreModule, DesignError> {
    // Lines outside the cores stay empty, except the module's attribute/type alias definitions.
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            let code = crate::aie_syntax::strip_comment(&l.text);
            if matches!(l.item, LineItem::Plain) && l.indent.is_empty() && super::design::is_alias_definition(code) {
                l.text.clone()
            } else {
                String::new()
            }
        })
        .collect();
    let mut all_endpoints = Vec::new();
    let mut all_locks = Vec::new();
    let lock_index: HashMap<&str, usize> = design
        .locks
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.name.is_empty())
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let mut all_slots = Vec::new();
    let mut all_sites = Vec::new();
    let mut function_of = Vec::new();
    let mut all_arg_names = Vec::new();
    let mut open_lines = Vec::new();
    let mut first_core = Vec::new();
    // Function texts (parameters and body) already emitted, with their function number.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for core in design.cores.iter() {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut locks: Vec<usize> = Vec::new();
        let mut slot_fifos: Vec<usize> = Vec::new();
        let mut sites: Vec<usize> = Vec::new();
        let mut subviews: HashMap<String, (usize, i64)> = HashMap::new();
        for l in &lines[core.open_line..core.close_line - 1] {
            let LineItem::Op { result, op } = &l.item else {
                // The emulator's own callbacks and core functions are named `@aiec_...`: core code cannot call them.
                if crate::aie_syntax::strip_comment(&l.text).contains("@aiec_") {
                    return Err(line_err(l.number, "a core refers to `@aiec_...`, a name the emulator reserves".into()));
                }
                out[l.number - 1] = drop_memory_spaces(&l.text);
                continue;
            };
            let op: &AieOp = op;
            let n = l.number;
            // Generated names and constants depend only on the op's position in the core, so that cores
            // with the same code produce the same text.
            let site = sites.len();
            sites.push(n);
            let p = format!("%_aiec_{site}_");
            let text = match op {
                AieOp::Acquire { fifo, port, size, .. } | AieOp::Release { fifo, port, size } => {
                    let fi = *design.fifo_index.get(fifo).ok_or_else(|| line_err(n, format!("unknown object FIFO @{fifo}")))?;
                    let f = &design.fifos[fi];
                    let idx = endpoint_of(f, core.tile, *port).ok_or_else(|| {
                        line_err(
                            n,
                            format!(
                                "{} on @{fifo} with port {}, but the core's tile {} is not its {}",
                                op.op_name(),
                                port.name(),
                                core.tile,
                                if *port == Port::Produce { "producer" } else { "consumer" }
                            ),
                        )
                    })?;
                    if *size < 1 || *size as usize > f.depth {
                        return Err(line_err(
                            n,
                            format!("{} of {size} elements of @{fifo}, which has depth {}", op.op_name(), f.depth),
                        ));
                    }
                    let ep = Endpoint {
                        fifo: fi,
                        port: *port,
                        index: idx,
                    };
                    let e = match endpoints.iter().position(|x| *x == ep) {
                        Some(e) => e,
                        None => {
                            endpoints.push(ep);
                            endpoints.len() - 1
                        }
                    };
                    if !slot_fifos.contains(&fi) {
                        slot_fifos.push(fi);
                    }
                    let consts = format!("{p}e = arith.constant {e} : i64 {p}n = arith.constant {size} : i64 {p}l = arith.constant {site} : i64");
                    if let AieOp::Acquire { elem_type, .. } = op {
                        if *elem_type != f.elem.text {
                            return Err(line_err(
                                n,
                                format!("acquire on @{fifo} with element type {elem_type}, but @{fifo} holds {}", f.elem.text),
                            ));
                        }
                        let r = result.clone().ok_or_else(|| line_err(n, "acquire without a result".into()))?;
                        subviews.insert(r.clone(), (fi, *size));
                        format!("{consts} {r} = func.call @aiec_acquire(%_aiec_ctx, {p}e, {p}n, {p}l) : (i64, i64, i64, i64) -> index")
                    } else {
                        format!("{consts} func.call @aiec_release(%_aiec_ctx, {p}e, {p}n, {p}l) : (i64, i64, i64, i64) -> ()")
                    }
                }
                AieOp::Access { subview, index, elem_type } => {
                    let (fi, size) = *subviews
                        .get(subview)
                        .ok_or_else(|| line_err(n, format!("`{subview}` is not the result of an aie.objectfifo.acquire in this core")))?;
                    let f = &design.fifos[fi];
                    if *index >= size {
                        return Err(line_err(
                            n,
                            format!("subview.access {subview}[{index}], but the acquire took only {size} element(s)"),
                        ));
                    }
                    if *elem_type != f.elem.text {
                        return Err(line_err(n, format!("element type {elem_type} does not match @{}'s {}", f.name, f.elem.text)));
                    }
                    let r = result.clone().ok_or_else(|| line_err(n, "subview.access without a result".into()))?;
                    let t = &f.elem.text;
                    let local = slot_fifos.iter().position(|&x| x == fi).unwrap_or(0);
                    let slot = |j: usize| format!("%_aiec_f{local}_{j}");
                    let mut s = format!(
                        "{p}i = arith.constant {index} : index {p}d = arith.constant {} : index {p}a = arith.addi {subview}, {p}i : index {p}k = arith.remui {p}a, {p}d : index",
                        f.depth
                    );
                    if f.depth == 1 {
                        s += &format!(" {p}t = arith.constant true {r} = arith.select {p}t, {}, {} : {t}", slot(0), slot(0));
                    } else {
                        let mut prev = slot(0);
                        for j in 1..f.depth {
                            let name = if j + 1 == f.depth { r.clone() } else { format!("{p}s{j}") };
                            s += &format!(
                                " {p}c{j} = arith.constant {j} : index {p}q{j} = arith.cmpi eq, {p}k, {p}c{j} : index {name} = arith.select {p}q{j}, {}, {prev} : {t}",
                                slot(j)
                            );
                            prev = name;
                        }
                    }
                    s
                }
                AieOp::End => "func.return".to_string(),
                AieOp::Hw { name: "aie.use_lock", text } => {
                    let (lock, action, value) = super::hw::parse_use_lock(text).map_err(|m| line_err(n, format!("aie.use_lock: {m}")))?;
                    let li = *lock_index
                        .get(lock.as_str())
                        .ok_or_else(|| line_err(n, format!("`{lock}` is not an aie.lock of the device")))?;
                    let e = match locks.iter().position(|&x| x == li) {
                        Some(e) => e,
                        None => {
                            locks.push(li);
                            locks.len() - 1
                        }
                    };
                    format!(
                        "{p}e = arith.constant {e} : i64 {p}a = arith.constant {} : i64 {p}v = arith.constant {value} : i64 {p}l = arith.constant {site} : i64 func.call @aiec_lock(%_aiec_ctx, {p}e, {p}a, {p}v, {p}l) : (i64, i64, i64, i64, i64) -> ()",
                        action.code()
                    )
                }
                other => {
                    return Err(line_err(n, format!("`{}` inside an aie.core", other.op_name())));
                }
            };
            out[n - 1] = format!("{}{}", l.indent, text);
        }
        let mut params = vec!["%_aiec_ctx: i64".to_string()];
        let mut names = vec![String::new()];
        for (local, &fi) in slot_fifos.iter().enumerate() {
            let f = &design.fifos[fi];
            for j in 0..f.depth {
                params.push(format!("%_aiec_f{local}_{j}: {}", f.elem.text));
                names.push(format!("an element of object FIFO @{}", f.name));
            }
        }
        for &bi in &core.buffers {
            let b = &design.buffers[bi];
            params.push(format!("{}: {}", b.name, b.ty.text));
            names.push(match &b.sym_name {
                Some(s) => format!("buffer @{s}"),
                None => format!("buffer {}", b.name),
            });
        }
        all_arg_names.push(names);
        open_lines.push(core.open_line);
        let body: Vec<&str> = out[core.open_line..core.close_line - 1].iter().map(|l| l.trim()).collect();
        let key = canonical_names(&format!("{}\n{}", params.join(", "), body.join("\n")));
        match seen.iter().find(|(k, _)| *k == key) {
            Some(&(_, f)) => {
                // Same code as an earlier core: run that function; this core's lines stay empty.
                for l in &mut out[core.open_line - 1..core.close_line] {
                    l.clear();
                }
                function_of.push(f);
            }
            None => {
                let f = seen.len();
                seen.push((key, f));
                first_core.push(function_of.len());
                function_of.push(f);
                let open = &lines[core.open_line - 1];
                out[core.open_line - 1] = format!("{}func.func @aiec_core_{f}({}) {{", open.indent, params.join(", "));
                // The closing brace alone: attributes written after a core's region do not belong to the function.
                out[core.close_line - 1] = format!("{}}}", lines[core.close_line - 1].indent);
            }
        }
        all_endpoints.push(endpoints);
        all_locks.push(locks);
        all_slots.push(slot_fifos);
        all_sites.push(sites);
    }
    let mut text = out.join("\n");
    text.push_str("\nfunc.func private @aiec_acquire(i64, i64, i64, i64) -> index\n");
    text.push_str("func.func private @aiec_release(i64, i64, i64, i64)\n");
    text.push_str("func.func private @aiec_poll(i64)\n");
    text.push_str("func.func private @aiec_lock(i64, i64, i64, i64, i64)\n");
    text.push_str("func.func private @aiec_oob(i64, i64, i64, index, i64, i64)\n");
    text.push_str("func.func private @aiec_fault(i64, i64)\n");
    Ok(CoreModule {
        text,
        endpoints: all_endpoints,
        locks: all_locks,
        slot_fifos: all_slots,
        sites: all_sites,
        arg_names: all_arg_names,
        open_lines,
        first_core,
        function_of,
        functions: seen.len(),
    })
}

/// Renames every SSA value (`%name`) to its order of first appearance: two texts that are equal after this
/// differ only by a consistent renaming, so they are the same code.
fn canonical_names(text: &str) -> String {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || "_$.-".contains(c))).unwrap_or(after.len());
        let name = &after[..n];
        let next = names.len();
        let id = *names.entry(name).or_insert(next);
        out.push_str(&format!("%v{id}"));
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

/// The lowering from upstream dialects to LLVM used for the cores.
/// bf16 arithmetic is done in f32 and bf16 conversions become integer code (round to nearest even), so
/// the JIT needs no compiler-rt routines.
pub const PIPELINE: &str = "builtin.module(func.func(arith-emulate-unsupported-floats{source-types=bf16 \
target-type=f32},arith-expand{include-bf16=true}),convert-vector-to-scf,convert-scf-to-cf,convert-vector-to-llvm,\
convert-math-to-llvm,convert-math-to-libm,convert-ub-to-llvm,expand-strided-metadata,lower-affine,finalize-memref-to-llvm,\
convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)";

/// An MLIR execution engine (through the C API, so that a failed creation is an error instead of a null).
struct Engine {
    raw: MlirExecutionEngine,
}

fn string_ref(s: &str) -> MlirStringRef {
    MlirStringRef {
        data: s.as_ptr() as *const _,
        length: s.len(),
    }
}

impl Engine {
    fn lookup(&self, name: &str) -> usize {
        unsafe { mlirExecutionEngineLookup(self.raw, string_ref(name)) as usize }
    }
    unsafe fn register_symbol(&self, name: &str, ptr: *mut ()) {
        unsafe { mlirExecutionEngineRegisterSymbol(self.raw, string_ref(name), ptr as *mut _) }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        unsafe { mlirExecutionEngineDestroy(self.raw) }
    }
}

/// `__bf16 __truncsfbf2(float)`: the bf16 is returned in the low 16 bits of the first SSE register, which
/// is where an f32 return value with those bits lands.
extern "C" fn truncsfbf2(x: f32) -> f32 {
    f32::from_bits(crate::npy::f32_to_bf16_bits(x) as u32)
}

/// A JIT-compiled design. The engine's machine code is immutable once created and its entry points are
/// looked up at creation, so sharing it between the core threads is sound.
pub struct Compiled {
    pub cores: Vec<CoreEntry>,
    // Field order: the engine is dropped before the context it was created in.
    _engine: Option<Engine>,
    _context: Option<Context>,
}

unsafe impl Send for Compiled {}
unsafe impl Sync for Compiled {}

/// A compile failure: MLIR's first diagnostic, as `line:col: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", if *line == 0 { message.clone() } else { format!("{line}:{col}: {message}") })]
pub struct JitError {
    /// The line the diagnostic points at (1-based); 0 when it has no location.
    pub line: usize,
    /// The column (1-based).
    pub col: usize,
    /// MLIR's message.
    pub message: String,
}

fn new_context() -> Context {
    static PASSES: Once = Once::new();
    PASSES.call_once(register_all_passes);
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    context
}

fn location_line_col(loc: &str) -> Option<(usize, usize)> {
    // `loc("name":12:5)` or `loc(unknown)`.
    let t = loc.trim_end_matches(')');
    let mut parts = t.rsplitn(3, ':');
    let col = parts.next()?.trim().parse().ok()?;
    let line = parts.next()?.trim().parse().ok()?;
    Some((line, col))
}

fn with_diagnostics<T>(context: &Context, f: impl FnOnce() -> Option<T>) -> Result<T, Vec<(usize, usize, String)>> {
    let diags: Arc<Mutex<Vec<(usize, usize, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = diags.clone();
    let id = context.attach_diagnostic_handler(move |d| {
        let loc = d.location().to_string();
        let (line, col) = location_line_col(&loc).unwrap_or((0, 0));
        let mut msg = d.to_string();
        for i in 0..d.note_count() {
            if let Ok(n) = d.note(i) {
                msg.push_str(&format!(" (note: {n})"));
            }
        }
        sink.lock().unwrap_or_else(|e| e.into_inner()).push((line, col, msg));
        true
    });
    let r = f();
    context.detach_diagnostic_handler(id);
    let diags = std::mem::take(&mut *diags.lock().unwrap_or_else(|e| e.into_inner()));
    match r {
        Some(v) => Ok(v),
        None => Err(diags),
    }
}

fn first_error(diags: Vec<(usize, usize, String)>, what: &str) -> JitError {
    match diags.into_iter().next() {
        Some((line, col, m)) => JitError { line, col, message: m },
        None => JitError {
            line: 0,
            col: 0,
            message: format!("{what} failed without a diagnostic"),
        },
    }
}

/// The initial contents of each buffer of the design (`None`: zero-initialised), as MLIR reads its
/// `initial_value` attribute: the raw little-endian data of the elements attribute, a splat repeated.
pub fn buffer_contents(design: &Design) -> Result<Vec<Option<Vec<u8>>>, DesignError> {
    if design.buffers.iter().all(|b| b.initial_value.is_none()) {
        return Ok(vec![None; design.buffers.len()]);
    }
    let context = new_context();
    design.buffers.iter().map(|b| initial_bytes(&context, b)).collect()
}

fn initial_bytes(context: &Context, b: &Buffer) -> Result<Option<Vec<u8>>, DesignError> {
    let Some(value) = &b.initial_value else { return Ok(None) };
    let tensor = crate::aie_syntax::tensor_type_of_memref(&b.ty.text).unwrap_or_default();
    let text = format!("{value} : {tensor}");
    let bad = |why: String| DesignError {
        line: b.line,
        message: match (&b.sym_name, b.name.is_empty()) {
            (Some(s), true) => format!("the initial value of aie.buffer @{s}: {why}"),
            (_, true) => format!("the initial value of the aie.buffer: {why}"),
            _ => format!("the initial value of aie.buffer {}: {why}", b.name),
        },
    };
    let attr = with_diagnostics(context, || melior::ir::attribute::Attribute::parse(context, &text))
        .map_err(|d| bad(d.into_iter().next().map(|(_, _, m)| m).unwrap_or_else(|| format!("MLIR cannot parse `{text}`"))))?;
    let raw = attr.to_raw();
    let bytes = b.ty.bytes();
    unsafe {
        if !(mlir_sys::mlirAttributeIsADenseIntElements(raw) || mlir_sys::mlirAttributeIsADenseFPElements(raw)) {
            return Err(bad(format!("`{value}` is not a dense<...> attribute of numbers")));
        }
        let data = mlir_sys::mlirDenseElementsAttrGetRawData(raw) as *const u8;
        let esize = b.ty.dtype.size_bytes();
        let mut out = vec![0u8; bytes];
        if mlir_sys::mlirDenseElementsAttrIsSplat(raw) {
            let one = std::slice::from_raw_parts(data, esize);
            for chunk in out.chunks_exact_mut(esize) {
                chunk.copy_from_slice(one);
            }
        } else {
            let n = mlir_sys::mlirElementsAttrGetNumElements(raw) as usize;
            if n * esize != bytes {
                return Err(bad(format!("{n} elements for a {}", b.ty.text)));
            }
            out.copy_from_slice(std::slice::from_raw_parts(data, bytes));
        }
        Ok(Some(out))
    }
}

/// Checks that a (generic-form) design parses with MLIR.
pub fn check_parses(generic: &str) -> Result<(), JitError> {
    let context = new_context();
    context.set_allow_unregistered_dialects(true);
    with_diagnostics(&context, || Module::parse(&context, generic).map(|_| ())).map_err(|d| first_error(d, "parsing"))
}

/// Compiles the cores of a design. `checked`: only ops whose memory accesses can be checked are taken, and
/// every access is bounds-checked ([`checks`]); otherwise the core code runs as it is.
pub fn compile(module: &CoreModule, checked: bool) -> Result<Compiled, JitError> {
    if module.function_of.is_empty() {
        return Ok(Compiled {
            cores: Vec::new(),
            _engine: None,
            _context: None,
        });
    }
    let context = new_context();
    // Function each core function turns out to be the same as, after simplification.
    let same_as: Vec<usize>;
    let mut site_tables: Vec<Arc<Vec<CheckSite>>> = (0..module.functions).map(|_| Arc::new(Vec::new())).collect();
    let engine = {
        let mut m = with_diagnostics(&context, || Module::parse(&context, &module.text)).map_err(|d| first_error(d, "parsing the cores"))?;
        // affine loops (hand-written designs use them) become scf/memref first, which the checks know.
        {
            let pm = PassManager::new(&context);
            parse_pass_pipeline(pm.as_operation_pass_manager(), "builtin.module(func.func(lower-affine))").map_err(|e| JitError {
                line: 0,
                col: 0,
                message: format!("pass pipeline: {e}"),
            })?;
            with_diagnostics(&context, || pm.run(&mut m).ok()).map_err(|d| first_error(d, "lowering affine loops"))?;
        }
        unsafe { checks::validate(m.as_operation().to_raw(), checked) }.map_err(|e| JitError {
            line: e.line,
            col: 0,
            message: e.message,
        })?;
        same_as = merge_equal_functions(&context, &mut m, module.functions)?;
        if checked {
            for (f, sites) in unsafe { checks::instrument(m.as_operation().to_raw()) } {
                if f < site_tables.len() {
                    site_tables[f] = Arc::new(sites);
                }
            }
            // Checks that integer range analysis proves (an index of a loop whose bounds fit the buffer) fold
            // away here rather than in LLVM, which keeps the JIT time close to the unchecked one.
            let pm = PassManager::new(&context);
            parse_pass_pipeline(
                pm.as_operation_pass_manager(),
                "builtin.module(func.func(int-range-optimizations,canonicalize))",
            )
            .map_err(|e| JitError {
                line: 0,
                col: 0,
                message: format!("pass pipeline: {e}"),
            })?;
            with_diagnostics(&context, || pm.run(&mut m).ok()).map_err(|d| first_error(d, "simplifying the bounds checks"))?;
        }
        unsafe { checks::insert_polls(m.as_operation().to_raw()) };
        let pm = PassManager::new(&context);
        // scf-to-cf leaves several blocks inside memref.alloca_scope until the memref lowering inlines them:
        // verify the input and the result instead of every step.
        pm.enable_verifier(false);
        parse_pass_pipeline(pm.as_operation_pass_manager(), PIPELINE).map_err(|e| JitError {
            line: 0,
            col: 0,
            message: format!("pass pipeline: {e}"),
        })?;
        with_diagnostics(&context, || pm.run(&mut m).ok()).map_err(|d| first_error(d, "lowering the cores to LLVM"))?;
        with_diagnostics(&context, || m.as_operation().verify().then_some(())).map_err(|d| first_error(d, "verifying the lowered cores"))?;
        // Creating the engine translates to LLVM IR; MLIR reports failures as diagnostics and a null engine.
        let raw = with_diagnostics(&context, || {
            let raw = unsafe { mlirExecutionEngineCreate(m.to_raw(), 3, 0, std::ptr::null(), false, false) };
            (!raw.ptr.is_null()).then_some(raw)
        })
        .map_err(|d| first_error(d, "translating the cores to LLVM IR"))?;
        Engine { raw }
    };
    unsafe {
        engine.register_symbol("aiec_acquire", super::exec::aiec_acquire as *mut ());
        engine.register_symbol("aiec_release", super::exec::aiec_release as *mut ());
        engine.register_symbol("aiec_poll", super::exec::aiec_poll as *mut ());
        engine.register_symbol("aiec_lock", super::exec::aiec_lock as *mut ());
        engine.register_symbol("aiec_oob", super::exec::aiec_oob as *mut ());
        engine.register_symbol("aiec_fault", super::exec::aiec_fault as *mut ());
        // Safety net for f32 -> bf16 truncations LLVM itself introduces (the pipeline expands MLIR's own).
        engine.register_symbol("__truncsfbf2", truncsfbf2 as *mut ());
    }
    let mut entries = Vec::new();
    for (f, &kept) in same_as.iter().enumerate() {
        let entry = engine.lookup(&format!("_mlir_aiec_core_{kept}"));
        if entry == 0 {
            return Err(JitError {
                line: 0,
                col: 0,
                message: format!("the JIT has no entry point for core function {f}"),
            });
        }
        entries.push(entry);
    }
    let cores = (0..module.function_of.len())
        .map(|i| {
            let f = module.function_of[i];
            let kept = same_as[f];
            let code_of = module.first_core[kept];
            // Cores written as the same text share their function line for line; a core merged after
            // simplification runs code whose lines are another core's.
            let line_shift = (kept == f).then(|| module.open_lines[i] as i64 - module.open_lines[code_of] as i64);
            CoreEntry {
                endpoints: module.endpoints[i].clone(),
                locks: module.locks[i].clone(),
                slot_fifos: module.slot_fifos[i].clone(),
                sites: module.sites[i].clone(),
                checks: site_tables[kept].clone(),
                arg_names: module.arg_names[i].clone(),
                line_shift,
                code_of,
                entry: entries[f],
            }
        })
        .collect();
    Ok(Compiled {
        cores,
        _engine: Some(engine),
        _context: Some(context),
    })
}

/// Simplifies the core functions (canonicalize, cse) and removes those that became equal to an earlier one,
/// so that cores differing only in dead or foldable code are compiled once. Returns, per function, the
/// function that remains for it.
fn merge_equal_functions(context: &Context, m: &mut Module, functions: usize) -> Result<Vec<usize>, JitError> {
    let pm = PassManager::new(context);
    parse_pass_pipeline(pm.as_operation_pass_manager(), "builtin.module(func.func(canonicalize,cse))").map_err(|e| JitError {
        line: 0,
        col: 0,
        message: format!("pass pipeline: {e}"),
    })?;
    with_diagnostics(context, || pm.run(m).ok()).map_err(|d| first_error(d, "simplifying the cores"))?;
    let mut same_as: Vec<usize> = (0..functions).collect();
    let mut texts: Vec<(String, usize)> = Vec::new();
    let mut duplicates = Vec::new();
    let mut op = m.body().first_operation();
    while let Some(o) = op {
        let text = o.to_string();
        let index = text
            .strip_prefix("func.func @aiec_core_")
            .and_then(|t| t.split('(').next())
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(f) = index.filter(|&f| f < functions) {
            let key = text.replacen(&format!("@aiec_core_{f}("), "@F(", 1);
            match texts.iter().find(|(k, _)| *k == key) {
                Some(&(_, first)) => {
                    same_as[f] = first;
                    duplicates.push(o.to_raw());
                }
                None => texts.push((key, f)),
            }
        }
        op = o.next_in_block();
    }
    for raw in duplicates {
        unsafe {
            mlir_sys::mlirOperationRemoveFromParent(raw);
            mlir_sys::mlirOperationDestroy(raw);
        }
    }
    Ok(same_as)
}

#[cfg(test)]
mod tests {
    use super::canonical_names;

    #[test]
    fn renaming_is_consistent() {
        let a = canonical_names("%40 = arith.addi %arg0, %40 : index %c1 = %arg0");
        let b = canonical_names("%7 = arith.addi %x, %7 : index %c1 = %x");
        assert_eq!(a, b);
        assert_ne!(a, canonical_names("%7 = arith.addi %x, %y : index %c1 = %x"));
    }
}
