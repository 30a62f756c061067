//! Safety of JIT-compiled core code: what a core body may contain, bounds checks before every memory access
//! and integer division, and stop points in long loops.
//!
//! Runs on the parsed module of core functions ([`super::jit::core_module`]), before MLIR's lowering to LLVM
//! (called by [`super::jit::compile`]):
//!
//! * `validate`, checked mode: every op of a core function is one whose memory effects the emulator can
//!   check: `arith`, `math`, `index`, `scf`, `cf` branches, the `vector` ops that touch no memory, and of the
//!   memory ops only `memref.load`/`store`, `vector.load`/`store`, `vector.transfer_read`/`transfer_write`
//!   (checked below), with `memref.dim`/`rank`/`cast`/`collapse_shape`/`expand_shape` on statically shaped,
//!   identity-layout memrefs. Every memref value of a core is then one of its FIFO slots or buffers, seen
//!   whole (a select among them, a reshape of one): no op can make a view past an allocation (no `subview`,
//!   `reinterpret_cast`, `alloca`, `llvm.*`, casts from integers, ...). Anything else is an error naming the op
//!   and its line.
//! * `validate`, both modes: no vector value in core code has more than [`MAX_VECTOR_ELEMENTS`] elements.
//! * `instrument`, checked mode: before each access, every index is compared with its dimension's size (for
//!   a vector access, the last index the vector reaches; for a transfer dimension without `in_bounds`, which
//!   MLIR masks, only that the start is within `0..=size`). An index proven in bounds (a constant, an `scf.for`
//!   variable with constant bounds and step, sums and products of those) gets no check, and MLIR's integer
//!   range analysis then folds the checks it proves. On a violation the core calls
//!   `aiec_oob(ctx, site, dim, index, size, len)` once per dimension; the emulator records the first violation
//!   (core, access, buffer or FIFO, design line, index and size), stops the run and parks that core for good
//!   before the access happens ([`CheckSite`] describes each site).
//!   Integer divisions and remainders (`arith.divsi`, `remui`, ...; scalar or vector) are checked too: a zero
//!   divisor, or the most negative value divided by -1, would trap on the host (SIGFPE); the core calls
//!   `aiec_fault(ctx, site)` instead and the run stops with the op and its line.
//! * `insert_polls`, both modes: a loop whose iteration count is not known, or known to exceed
//!   [`POLL_THRESHOLD`] iterations in total with its nested loops, calls `aiec_poll(ctx)` once per iteration,
//!   and so does every block a branch can reach again (a `cf` loop). A run that has ended (an error elsewhere,
//!   a deadlock, a stall timeout) parks its cores at their next poll, FIFO acquire or release: no core thread
//!   keeps computing after its run.

use mlir_sys::*;
use std::ffi::c_void;

/// Loops nested up to this many iterations in total (known statically) run without a stop point.
pub const POLL_THRESHOLD: u128 = 1 << 20;

/// The most elements a vector value in core code may have: longer vectors (far beyond an AIE register) make
/// LLVM's code generation explode in time and stack use.
pub const MAX_VECTOR_ELEMENTS: i64 = 1024;

/// One checked op of a core function.
#[derive(Debug, Clone)]
pub struct CheckSite {
    /// Line of the op in the module text (the design's line).
    pub line: usize,
    pub kind: SiteKind,
}

#[derive(Debug, Clone)]
pub enum SiteKind {
    /// A memory access (`aiec_oob` reports it).
    Access {
        store: bool,
        /// The core function's argument (FIFO slot or buffer) the accessed memref is, when it can be traced.
        root: Option<usize>,
        /// The accessed memref's type and rank.
        memref: String,
        rank: usize,
    },
    /// An integer division or remainder (`aiec_fault` reports a zero divisor or a signed overflow, which
    /// trap on the host).
    Division { op: String },
}

/// A checked-mode violation: the design line and what is wrong.
#[derive(Debug, Clone)]
pub struct CheckError {
    pub line: usize,
    pub message: String,
}

fn string_ref(s: &str) -> MlirStringRef {
    MlirStringRef {
        data: s.as_ptr() as *const _,
        length: s.len(),
    }
}

unsafe fn from_ref(s: MlirStringRef) -> String {
    if s.data.is_null() {
        return String::new();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(s.data as *const u8, s.length)).into_owned()
}

unsafe extern "C" fn collect(s: MlirStringRef, user: *mut c_void) {
    let out = &mut *(user as *mut String);
    out.push_str(&from_ref(s));
}

unsafe fn type_text(t: MlirType) -> String {
    let mut s = String::new();
    mlirTypePrint(t, Some(collect), &mut s as *mut String as *mut c_void);
    s
}

unsafe fn op_name(op: MlirOperation) -> String {
    from_ref(mlirIdentifierStr(mlirOperationGetName(op)))
}

/// The first line number in an op's location (`loc("name":12:5)`, fused or not); 0 when there is none.
pub(crate) unsafe fn op_line(op: MlirOperation) -> usize {
    let mut s = String::new();
    mlirLocationPrint(mlirOperationGetLocation(op), Some(collect), &mut s as *mut String as *mut c_void);
    line_of_location(&s)
}

fn line_of_location(s: &str) -> usize {
    // After the closing quote of a file name: `":LINE:COL`.
    let mut rest = s;
    while let Some(p) = rest.find("\":") {
        let after = &rest[p + 2..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(n) = digits.parse() {
            return n;
        }
        rest = after;
    }
    0
}

unsafe fn operands(op: MlirOperation) -> Vec<MlirValue> {
    (0..mlirOperationGetNumOperands(op)).map(|i| mlirOperationGetOperand(op, i)).collect()
}

unsafe fn results(op: MlirOperation) -> Vec<MlirValue> {
    (0..mlirOperationGetNumResults(op)).map(|i| mlirOperationGetResult(op, i)).collect()
}

unsafe fn regions(op: MlirOperation) -> Vec<MlirRegion> {
    let mut out = Vec::new();
    let mut r = mlirOperationGetFirstRegion(op);
    while !r.ptr.is_null() {
        out.push(r);
        r = mlirRegionGetNextInOperation(r);
    }
    out
}

unsafe fn blocks(r: MlirRegion) -> Vec<MlirBlock> {
    let mut out = Vec::new();
    let mut b = mlirRegionGetFirstBlock(r);
    while !b.ptr.is_null() {
        out.push(b);
        b = mlirBlockGetNextInRegion(b);
    }
    out
}

unsafe fn block_ops(b: MlirBlock) -> Vec<MlirOperation> {
    let mut out = Vec::new();
    let mut o = mlirBlockGetFirstOperation(b);
    while !o.ptr.is_null() {
        out.push(o);
        o = mlirOperationGetNextInBlock(o);
    }
    out
}

/// Every op nested in `op` (not `op` itself), parents before children.
unsafe fn nested_ops(op: MlirOperation, out: &mut Vec<MlirOperation>) {
    for r in regions(op) {
        for b in blocks(r) {
            for o in block_ops(b) {
                out.push(o);
                nested_ops(o, out);
            }
        }
    }
}

/// The core functions (`func.func @aiec_core_N`) of a module, with their index N.
pub(crate) unsafe fn core_functions(module_op: MlirOperation) -> Vec<(usize, MlirOperation)> {
    let mut out = Vec::new();
    for r in regions(module_op) {
        for b in blocks(r) {
            for o in block_ops(b) {
                if op_name(o) != "func.func" {
                    continue;
                }
                let sym = mlirOperationGetAttributeByName(o, string_ref("sym_name"));
                if sym.ptr.is_null() {
                    continue;
                }
                let name = from_ref(mlirStringAttrGetValue(sym));
                if let Some(n) = name.strip_prefix("aiec_core_").and_then(|n| n.parse().ok()) {
                    out.push((n, o));
                }
            }
        }
    }
    out
}

unsafe fn symbol_attr(op: MlirOperation, name: &str) -> Option<String> {
    let a = mlirOperationGetAttributeByName(op, string_ref(name));
    if a.ptr.is_null() || !mlirAttributeIsAFlatSymbolRef(a) {
        return None;
    }
    Some(from_ref(mlirFlatSymbolRefAttrGetValue(a)))
}

unsafe fn is_memref(v: MlirValue) -> bool {
    mlirTypeIsAMemRef(mlirValueGetType(v)) || mlirTypeIsAUnrankedMemRef(mlirValueGetType(v))
}

/// A memref type the checks can rely on: static shape, identity layout, default memory space, a scalar
/// element type the emulator knows.
unsafe fn plain_memref(t: MlirType) -> bool {
    mlirTypeIsAMemRef(t) && super::design::MemrefType::parse(&type_text(t), 0).is_ok()
}

/// Ops allowed in a checked core, by name.
fn allowed_op(name: &str) -> Result<(), &'static str> {
    const MEMORY_VECTOR_OPS: [&str; 8] = [
        "vector.gather",
        "vector.scatter",
        "vector.maskedload",
        "vector.maskedstore",
        "vector.expandload",
        "vector.compressstore",
        "vector.type_cast",
        "vector.print",
    ];
    let (dialect, _) = name.split_once('.').unwrap_or((name, ""));
    match dialect {
        "arith" | "math" | "index" | "scf" => Ok(()),
        "vector" if MEMORY_VECTOR_OPS.contains(&name) => Err("a vector memory op the emulator cannot bounds-check"),
        "vector" => Ok(()),
        "cf" if name == "cf.assert" => Err("it would abort the host process"),
        "cf" => Ok(()),
        "ub" if name == "ub.poison" => Ok(()),
        "memref" => match name {
            "memref.load" | "memref.store" | "memref.dim" | "memref.rank" | "memref.cast" | "memref.collapse_shape" | "memref.expand_shape" => Ok(()),
            "memref.copy" => Ok(()),
            _ => Err("only memref.load/store (bounds-checked), copy (between equal static types), dim, rank, cast, collapse_shape and expand_shape are"),
        },
        "affine" if matches!(name, "affine.apply" | "affine.min" | "affine.max") => Ok(()),
        "func" if matches!(name, "func.call" | "func.return") => Ok(()),
        _ => Err("not an op the emulator can check"),
    }
}

/// A vector type with more than [`MAX_VECTOR_ELEMENTS`] elements (or a scalable one).
unsafe fn oversized_vector(t: MlirType) -> bool {
    if !mlirTypeIsAVector(t) {
        return false;
    }
    if mlirVectorTypeIsScalable(t) {
        return true;
    }
    let mut n: i64 = 1;
    for d in 0..mlirShapedTypeGetRank(t) {
        n = n.saturating_mul(mlirShapedTypeGetDimSize(t, d as isize).max(0));
    }
    n > MAX_VECTOR_ELEMENTS
}

/// Checks the core functions: always, that no vector is longer than [`MAX_VECTOR_ELEMENTS`]; when `checked`,
/// that every op is one whose memory accesses [`instrument`] can bounds-check.
pub(crate) unsafe fn validate(module_op: MlirOperation, checked: bool) -> Result<(), CheckError> {
    for (_, f) in core_functions(module_op) {
        let mut ops = Vec::new();
        nested_ops(f, &mut ops);
        for op in ops {
            let name = op_name(op);
            let line = op_line(op);
            let fail = |why: String| Err(CheckError { line, message: why });
            let mut types: Vec<MlirType> = results(op).into_iter().chain(operands(op)).map(|v| mlirValueGetType(v)).collect();
            for r in regions(op) {
                for b in blocks(r) {
                    types.extend((0..mlirBlockGetNumArguments(b)).map(|i| mlirValueGetType(mlirBlockGetArgument(b, i))));
                }
            }
            if let Some(t) = types.into_iter().find(|t| oversized_vector(*t)) {
                return fail(format!(
                    "`{name}` uses a {}: the emulator takes vectors of up to {MAX_VECTOR_ELEMENTS} elements",
                    type_text(t)
                ));
            }
            if !checked {
                continue;
            }
            if let Err(why) = allowed_op(&name) {
                return fail(format!(
                    "`{name}` in a core is not supported by the emulator's checked mode ({why} allowed; `--unchecked` runs \
                     core code as it is, without bounds checks)"
                ));
            }
            if name == "memref.copy" {
                // Whole memrefs of one static type: source and target are the same size.
                let t: Vec<MlirType> = operands(op).into_iter().map(|v| mlirValueGetType(v)).collect();
                let same = t.len() == 2 && plain_memref(t[0]) && plain_memref(t[1]) && type_text(t[0]) == type_text(t[1]);
                if !same {
                    return fail(
                        "`memref.copy` in a core between memrefs of different or non-static types is not supported by the emulator's checked mode".into(),
                    );
                }
            }
            if name == "func.call" {
                // Only the emulator's own callbacks (the design's text cannot name them).
                let callee = symbol_attr(op, "callee").unwrap_or_default();
                if !callee.starts_with("aiec_") || callee.starts_with("aiec_core_") {
                    return fail(format!("`func.call @{callee}` in a core is not supported by the emulator"));
                }
            }
            // Memref values: only whole FIFO slots and buffers, passed along or reshaped.
            let makes_memref = results(op).into_iter().any(|v| is_memref(v));
            if makes_memref {
                let ok = name.starts_with("scf.") || matches!(name.as_str(), "arith.select" | "memref.cast" | "memref.collapse_shape" | "memref.expand_shape");
                if !ok {
                    return fail(format!("`{name}` making a memref in a core is not supported by the emulator's checked mode"));
                }
            }
            for v in results(op).into_iter().filter(|v| is_memref(*v)) {
                let t = mlirValueGetType(v);
                if !plain_memref(t) {
                    return fail(format!(
                        "`{name}` makes a {}: the emulator's checked mode takes memrefs of static shape with the identity layout",
                        type_text(t)
                    ));
                }
            }
            for r in regions(op) {
                for b in blocks(r) {
                    for i in 0..mlirBlockGetNumArguments(b) {
                        let t = mlirValueGetType(mlirBlockGetArgument(b, i));
                        if (mlirTypeIsAMemRef(t) || mlirTypeIsAUnrankedMemRef(t)) && !plain_memref(t) {
                            return fail(format!(
                                "a block argument of `{name}` is a {}: the emulator's checked mode takes memrefs of static \
                                 shape with the identity layout",
                                type_text(t)
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Builds ops before a reference op.
struct Builder {
    ctx: MlirContext,
    loc: MlirLocation,
    index: MlirType,
    i1: MlirType,
    i64: MlirType,
}

impl Builder {
    unsafe fn new(ctx: MlirContext, loc: MlirLocation) -> Self {
        Builder {
            ctx,
            loc,
            index: mlirIndexTypeGet(ctx),
            i1: mlirIntegerTypeGet(ctx, 1),
            i64: mlirIntegerTypeGet(ctx, 64),
        }
    }

    unsafe fn op(&self, name: &str, operands: &[MlirValue], results: &[MlirType], attrs: &[(&str, MlirAttribute)], regions: Vec<MlirRegion>) -> MlirOperation {
        let mut st = mlirOperationStateGet(string_ref(name), self.loc);
        if !operands.is_empty() {
            mlirOperationStateAddOperands(&mut st, operands.len() as isize, operands.as_ptr());
        }
        if !results.is_empty() {
            mlirOperationStateAddResults(&mut st, results.len() as isize, results.as_ptr());
        }
        let named: Vec<MlirNamedAttribute> = attrs
            .iter()
            .map(|(n, a)| mlirNamedAttributeGet(mlirIdentifierGet(self.ctx, string_ref(n)), *a))
            .collect();
        if !named.is_empty() {
            mlirOperationStateAddAttributes(&mut st, named.len() as isize, named.as_ptr());
        }
        if !regions.is_empty() {
            mlirOperationStateAddOwnedRegions(&mut st, regions.len() as isize, regions.as_ptr());
        }
        mlirOperationCreate(&mut st)
    }

    unsafe fn constant(&self, t: MlirType, v: i64) -> MlirOperation {
        self.op("arith.constant", &[], &[t], &[("value", mlirIntegerAttrGet(t, v))], Vec::new())
    }

    unsafe fn cmpi(&self, predicate: i64, a: MlirValue, b: MlirValue) -> MlirOperation {
        let attr = mlirIntegerAttrGet(self.i64, predicate);
        self.op("arith.cmpi", &[a, b], &[self.i1], &[("predicate", attr)], Vec::new())
    }

    unsafe fn call(&self, callee: &str, args: &[MlirValue]) -> MlirOperation {
        let sym = mlirFlatSymbolRefAttrGet(self.ctx, string_ref(callee));
        self.op("func.call", args, &[], &[("callee", sym)], Vec::new())
    }
}

const CMPI_UGT: i64 = 8;

/// Inserts `op` before `before` in its block and returns its first result (if any).
unsafe fn insert_before(before: MlirOperation, op: MlirOperation) -> MlirValue {
    mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(before), before, op);
    mlirOperationGetResult(op, 0)
}

/// The function argument a memref value is, through selects (both sides the same argument's kind) and reshapes.
unsafe fn root_argument(v: MlirValue, entry: MlirBlock) -> Option<usize> {
    if mlirValueIsABlockArgument(v) {
        if mlirBlockArgumentGetOwner(v).ptr == entry.ptr {
            return Some(mlirBlockArgumentGetArgNumber(v) as usize);
        }
        return None;
    }
    let op = mlirOpResultGetOwner(v);
    match op_name(op).as_str() {
        "arith.select" => root_argument(mlirOperationGetOperand(op, 1), entry),
        "memref.cast" | "memref.collapse_shape" | "memref.expand_shape" => root_argument(mlirOperationGetOperand(op, 0), entry),
        _ => None,
    }
}

/// Per memref dimension: how many elements from the index on the access touches (1 for a scalar access; 0 for
/// a masked transfer dimension, where only the start is checked).
unsafe fn access_lengths(op: MlirOperation, name: &str, rank: usize, vector: Option<MlirType>) -> Vec<i64> {
    let mut lens = vec![1i64; rank];
    let Some(vt) = vector else { return lens };
    let vrank = mlirShapedTypeGetRank(vt) as usize;
    let vdim = |i: usize| mlirShapedTypeGetDimSize(vt, i as isize);
    if name == "vector.load" || name == "vector.store" {
        // The vector covers the innermost dimensions.
        for i in 0..vrank.min(rank) {
            lens[rank - vrank.min(rank) + i] = vdim(vrank - vrank.min(rank) + i);
        }
        return lens;
    }
    // Transfers: the permutation map sends vector dimension p to memref dimension d (or broadcasts it).
    let map_attr = mlirOperationGetAttributeByName(op, string_ref("permutation_map"));
    let in_bounds = mlirOperationGetAttributeByName(op, string_ref("in_bounds"));
    let in_bounds_at = |p: usize| -> bool {
        if in_bounds.ptr.is_null() || !mlirAttributeIsAArray(in_bounds) || p as isize >= mlirArrayAttrGetNumElements(in_bounds) {
            return false;
        }
        let e = mlirArrayAttrGetElement(in_bounds, p as isize);
        mlirAttributeIsABool(e) && mlirBoolAttrGetValue(e)
    };
    if map_attr.ptr.is_null() || !mlirAttributeIsAAffineMap(map_attr) {
        // Minor identity: the vector's dims are the memref's innermost ones.
        for p in 0..vrank.min(rank) {
            let d = rank - vrank.min(rank) + p;
            lens[d] = if in_bounds_at(p) { vdim(p) } else { 0 };
        }
        return lens;
    }
    let map = mlirAffineMapAttrGetValue(map_attr);
    for p in 0..(mlirAffineMapGetNumResults(map) as usize).min(vrank) {
        let e = mlirAffineMapGetResult(map, p as isize);
        if mlirAffineExprIsADim(e) {
            let d = mlirAffineDimExprGetPosition(e) as usize;
            if d < rank {
                lens[d] = if in_bounds_at(p) { vdim(p) } else { 0 };
            }
        }
    }
    lens
}

/// Inserts a bounds check before every memory access of the core functions. Returns, per function index, its
/// check sites (the site number is the position in that list).
pub(crate) unsafe fn instrument(module_op: MlirOperation) -> Vec<(usize, Vec<CheckSite>)> {
    let ctx = mlirOperationGetContext(module_op);
    let mut out = Vec::new();
    for (fi, f) in core_functions(module_op) {
        let body = regions(f);
        let Some(&region) = body.first() else { continue };
        let Some(&entry) = blocks(region).first() else { continue };
        let ctx_value = mlirBlockGetArgument(entry, 0);
        let mut ops = Vec::new();
        nested_ops(f, &mut ops);
        let mut sites = Vec::new();
        for op in ops {
            let name = op_name(op);
            if let Some(signed) = division(&name) {
                if let Some(cond) = division_fault(ctx, op, signed) {
                    let site = sites.len() as i64;
                    sites.push(CheckSite {
                        line: op_line(op),
                        kind: SiteKind::Division { op: name.clone() },
                    });
                    let b = Builder::new(ctx, mlirOperationGetLocation(op));
                    let then_block = mlirBlockCreate(0, std::ptr::null(), std::ptr::null());
                    let site_op = b.constant(b.i64, site);
                    mlirBlockAppendOwnedOperation(then_block, site_op);
                    mlirBlockAppendOwnedOperation(then_block, b.call("aiec_fault", &[ctx_value, mlirOperationGetResult(site_op, 0)]));
                    mlirBlockAppendOwnedOperation(then_block, b.op("scf.yield", &[], &[], &[], Vec::new()));
                    let then_region = mlirRegionCreate();
                    mlirRegionAppendOwnedBlock(then_region, then_block);
                    let if_op = b.op("scf.if", &[cond], &[], &[], vec![then_region, mlirRegionCreate()]);
                    mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(op), op, if_op);
                }
                continue;
            }
            // (memref operand, first index operand, store, vector type)
            let (mpos, ipos, store, vector) = match name.as_str() {
                "memref.load" => (0, 1, false, None),
                "memref.store" => (1, 2, true, None),
                "vector.load" => (0, 1, false, Some(mlirValueGetType(mlirOperationGetResult(op, 0)))),
                "vector.store" => (1, 2, true, Some(mlirValueGetType(mlirOperationGetOperand(op, 0)))),
                "vector.transfer_read" => (0, 1, false, Some(mlirValueGetType(mlirOperationGetResult(op, 0)))),
                "vector.transfer_write" => (1, 2, true, Some(mlirValueGetType(mlirOperationGetOperand(op, 0)))),
                _ => continue,
            };
            let all = operands(op);
            let Some(&memref) = all.get(mpos) else { continue };
            let mt = mlirValueGetType(memref);
            if !mlirTypeIsAMemRef(mt) {
                // vector.transfer_* on a tensor: no memory.
                continue;
            }
            let rank = mlirShapedTypeGetRank(mt) as usize;
            if rank == 0 || all.len() < ipos + rank {
                continue;
            }
            let indices = &all[ipos..ipos + rank];
            let lens = access_lengths(op, &name, rank, vector);
            let b = Builder::new(ctx, mlirOperationGetLocation(op));
            // bad = OR over dims of (index >u size - len); a size smaller than the access is always bad.
            let mut bad: Option<MlirValue> = None;
            let mut always_bad = false;
            for d in 0..rank {
                let size = mlirShapedTypeGetDimSize(mt, d as isize);
                let limit = size - lens[d];
                if size < 0 || limit < 0 {
                    always_bad = true;
                    continue;
                }
                if static_range(indices[d], 8).is_some_and(|(lo, hi)| lo >= 0 && hi <= limit as i128) {
                    continue; // proven in bounds
                }
                let c = insert_before(op, b.constant(b.index, limit));
                let cmp = insert_before(op, b.cmpi(CMPI_UGT, indices[d], c));
                bad = Some(match bad {
                    None => cmp,
                    Some(prev) => insert_before(op, b.op("arith.ori", &[prev, cmp], &[b.i1], &[], Vec::new())),
                });
            }
            let cond = if always_bad {
                insert_before(op, b.constant(b.i1, 1))
            } else {
                match bad {
                    Some(v) => v,
                    None => continue,
                }
            };
            let site = sites.len() as i64;
            sites.push(CheckSite {
                line: op_line(op),
                kind: SiteKind::Access {
                    store,
                    root: root_argument(memref, entry),
                    memref: type_text(mt),
                    rank,
                },
            });
            // scf.if %bad { aiec_oob(ctx, site, d, index_d, size_d, len_d) per dim; aiec_oob(ctx, site, -1, ..) }
            let then_block = mlirBlockCreate(0, std::ptr::null(), std::ptr::null());
            let append = |o: MlirOperation| {
                mlirBlockAppendOwnedOperation(then_block, o);
                mlirOperationGetResult(o, 0)
            };
            let site_v = append(b.constant(b.i64, site));
            for d in 0..rank {
                let size = mlirShapedTypeGetDimSize(mt, d as isize);
                let dv = append(b.constant(b.i64, d as i64));
                let sv = append(b.constant(b.i64, size));
                let lv = append(b.constant(b.i64, lens[d]));
                mlirBlockAppendOwnedOperation(then_block, b.call("aiec_oob", &[ctx_value, site_v, dv, indices[d], sv, lv]));
            }
            let minus = append(b.constant(b.i64, -1));
            let zero = append(b.constant(b.index, 0));
            mlirBlockAppendOwnedOperation(then_block, b.call("aiec_oob", &[ctx_value, site_v, minus, zero, minus, minus]));
            mlirBlockAppendOwnedOperation(then_block, b.op("scf.yield", &[], &[], &[], Vec::new()));
            let then_region = mlirRegionCreate();
            mlirRegionAppendOwnedBlock(then_region, then_block);
            let else_region = mlirRegionCreate();
            let if_op = b.op("scf.if", &[cond], &[], &[], vec![then_region, else_region]);
            mlirBlockInsertOwnedOperationBefore(mlirOperationGetBlock(op), op, if_op);
        }
        out.push((fi, sites));
    }
    out
}

/// Integer division and remainder ops: `Some(signed)`.
fn division(name: &str) -> Option<bool> {
    match name {
        "arith.divsi" | "arith.remsi" | "arith.ceildivsi" | "arith.floordivsi" => Some(true),
        "arith.divui" | "arith.remui" | "arith.ceildivui" => Some(false),
        _ => None,
    }
}

/// Inserts, before a division `op`, the i1 that is true when it would trap on the host: a zero divisor, or
/// for a signed one the most negative dividend divided by -1 (on any lane of a vector).
unsafe fn division_fault(ctx: MlirContext, op: MlirOperation, signed: bool) -> Option<MlirValue> {
    let ops = operands(op);
    if ops.len() != 2 {
        return None;
    }
    let (n, d) = (ops[0], ops[1]);
    let t = mlirValueGetType(d);
    let (elem, vector) = if mlirTypeIsAVector(t) {
        (mlirShapedTypeGetElementType(t), Some(t))
    } else {
        (t, None)
    };
    let width = if mlirTypeIsAIndex(elem) {
        64
    } else if mlirTypeIsAInteger(elem) {
        mlirIntegerTypeGetWidth(elem) as i64
    } else {
        return None;
    };
    if width > 64 || vector.is_some_and(|v| mlirVectorTypeIsScalable(v)) {
        return None;
    }
    let b = Builder::new(ctx, mlirOperationGetLocation(op));
    let splat = |v: i64| -> MlirValue {
        let attr = match vector {
            None => mlirIntegerAttrGet(t, v),
            Some(_) => {
                let text = format!("dense<{v}> : {}", type_text(t));
                mlirAttributeParseGet(ctx, string_ref(&text))
            }
        };
        insert_before(op, b.op("arith.constant", &[], &[t], &[("value", attr)], Vec::new()))
    };
    let mask_type = match vector {
        None => b.i1,
        Some(v) => {
            let shape: Vec<i64> = (0..mlirShapedTypeGetRank(v)).map(|i| mlirShapedTypeGetDimSize(v, i as isize)).collect();
            mlirVectorTypeGet(shape.len() as isize, shape.as_ptr(), b.i1)
        }
    };
    const CMPI_EQ: i64 = 0;
    let zero = splat(0);
    let cmp = |a: MlirValue, c: MlirValue| {
        insert_before(
            op,
            b.op(
                "arith.cmpi",
                &[a, c],
                &[mask_type],
                &[("predicate", mlirIntegerAttrGet(b.i64, CMPI_EQ))],
                Vec::new(),
            ),
        )
    };
    let mut bad = cmp(d, zero);
    if signed && width >= 2 {
        let min = if width == 64 { i64::MIN } else { -(1i64 << (width - 1)) };
        let n_min = cmp(n, splat(min));
        let d_minus = cmp(d, splat(-1));
        let both = insert_before(op, b.op("arith.andi", &[n_min, d_minus], &[mask_type], &[], Vec::new()));
        bad = insert_before(op, b.op("arith.ori", &[bad, both], &[mask_type], &[], Vec::new()));
    }
    let Some(v) = vector else { return Some(bad) };
    // Any lane: flatten to 1-D and reduce with `or`.
    let count: i64 = (0..mlirShapedTypeGetRank(v)).map(|i| mlirShapedTypeGetDimSize(v, i as isize)).product();
    let flat_type = mlirVectorTypeGet(1, &count, b.i1);
    let flat = if mlirShapedTypeGetRank(v) == 1 {
        bad
    } else {
        insert_before(op, b.op("vector.shape_cast", &[bad], &[flat_type], &[], Vec::new()))
    };
    let kind = mlirAttributeParseGet(ctx, string_ref("#vector.kind<or>"));
    Some(insert_before(op, b.op("vector.reduction", &[flat], &[b.i1], &[("kind", kind)], Vec::new())))
}

unsafe fn constant_int(v: MlirValue) -> Option<i64> {
    if !mlirValueIsAOpResult(v) {
        return None;
    }
    let op = mlirOpResultGetOwner(v);
    if op_name(op) != "arith.constant" {
        return None;
    }
    let a = mlirOperationGetAttributeByName(op, string_ref("value"));
    if a.ptr.is_null() || !mlirAttributeIsAInteger(a) {
        return None;
    }
    Some(mlirIntegerAttrGetValueInt(a))
}

/// The values an index can take, when known statically: constants, `scf.for` induction variables with
/// constant bounds (their last value, which integer range analysis does not see through the step), and sums and
/// products of those. An empty loop's variable gets its lower bound (its body never runs).
unsafe fn static_range(v: MlirValue, depth: u32) -> Option<(i128, i128)> {
    if depth == 0 {
        return None;
    }
    if let Some(c) = constant_int(v) {
        return Some((c as i128, c as i128));
    }
    if mlirValueIsABlockArgument(v) {
        if mlirBlockArgumentGetArgNumber(v) != 0 {
            return None;
        }
        let owner = mlirBlockGetParentOperation(mlirBlockArgumentGetOwner(v));
        if owner.ptr.is_null() || op_name(owner) != "scf.for" || !mlirOperationGetAttributeByName(owner, string_ref("unsignedCmp")).ptr.is_null() {
            return None;
        }
        let ops = operands(owner);
        let (lb, ub, step) = (constant_int(ops[0])? as i128, constant_int(ops[1])? as i128, constant_int(ops[2])? as i128);
        if step <= 0 {
            return None;
        }
        let last = if ub > lb { lb + (ub - lb - 1) / step * step } else { lb };
        return Some((lb, last));
    }
    let op = mlirOpResultGetOwner(v);
    let name = op_name(op);
    if !matches!(name.as_str(), "arith.addi" | "arith.muli") {
        return None;
    }
    let ops = operands(op);
    let (a, b) = (static_range(ops[0], depth - 1)?, static_range(ops[1], depth - 1)?);
    let r = if name == "arith.addi" {
        (a.0 + b.0, a.1 + b.1)
    } else {
        let p = [a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1];
        (*p.iter().min()?, *p.iter().max()?)
    };
    // Outside i64 the op wraps: unknown.
    (r.0 >= i64::MIN as i128 && r.1 <= i64::MAX as i128).then_some(r)
}

/// Iterations of the loops inside `op` (itself included), when statically known.
unsafe fn work(op: MlirOperation) -> Option<u128> {
    let name = op_name(op);
    let mut inner: u128 = 0;
    for r in regions(op) {
        let bs = blocks(r);
        if bs.len() > 1 {
            return None; // a CFG region may loop
        }
        for b in bs {
            for o in block_ops(b) {
                inner = inner.saturating_add(work(o)?);
            }
        }
    }
    match name.as_str() {
        "scf.for" => {
            let ops = operands(op);
            let (lb, ub, step) = (constant_int(ops[0])?, constant_int(ops[1])?, constant_int(ops[2])?);
            if step <= 0 {
                return None;
            }
            let trips = if ub > lb {
                ((ub as i128 - lb as i128 + step as i128 - 1) / step as i128) as u128
            } else {
                0
            };
            Some(trips.saturating_mul(inner.saturating_add(1)))
        }
        "scf.while" | "scf.parallel" | "scf.forall" => None,
        _ => Some(inner),
    }
}

/// Inserts `aiec_poll(ctx)` at the start of every loop body that may run long (see the module docs).
pub(crate) unsafe fn insert_polls(module_op: MlirOperation) {
    let ctx = mlirOperationGetContext(module_op);
    for (_, f) in core_functions(module_op) {
        let body = regions(f);
        let Some(&region) = body.first() else { continue };
        let Some(&entry) = blocks(region).first() else { continue };
        let ctx_value = mlirBlockGetArgument(entry, 0);
        let mut ops = vec![f];
        nested_ops(f, &mut ops);
        let mut targets: Vec<(MlirBlock, MlirLocation)> = Vec::new();
        for op in ops {
            let loc = mlirOperationGetLocation(op);
            let rs = regions(op);
            // Blocks a branch can reach: every block of a region but its entry.
            for r in &rs {
                for b in blocks(*r).into_iter().skip(1) {
                    targets.push((b, loc));
                }
            }
            let name = op_name(op);
            let body_region = match name.as_str() {
                "scf.for" | "scf.parallel" | "scf.forall" => rs.first().copied(),
                "scf.while" => rs.get(1).copied(),
                _ => None,
            };
            let Some(r) = body_region else { continue };
            let long = work(op).is_none_or(|w| w > POLL_THRESHOLD);
            if long {
                if let Some(&b) = blocks(r).first() {
                    targets.push((b, loc));
                }
            }
        }
        for (b, loc) in targets {
            let builder = Builder::new(ctx, loc);
            let call = builder.call("aiec_poll", &[ctx_value]);
            let first = mlirBlockGetFirstOperation(b);
            if first.ptr.is_null() {
                mlirBlockAppendOwnedOperation(b, call);
            } else {
                mlirBlockInsertOwnedOperationBefore(b, first, call);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line_of_location;

    #[test]
    fn lines_from_locations() {
        assert_eq!(line_of_location("loc(\"-\":12:5)"), 12);
        assert_eq!(line_of_location("loc(fused[\"-\":7:3, \"-\":9:1])"), 7);
        assert_eq!(line_of_location("loc(unknown)"), 0);
    }
}
