//! What mlir-aie's own core pipeline accepts, per AIE target: the compiler's rules for core code.
//!
//! The emulator JIT-compiles core bodies for the host and would run any upstream MLIR; the NPU
//! flow does not. Core code goes through mlir-aie's `convert-vector-to-aievec` for the device's
//! target, then `convert-aievec-to-llvm` and LLVM IR for Peano. Not every vector op survives
//! those steps on every target, and a contraction converts only on the MAC shapes the target's
//! `aievec.matmul` has. These tables say what does, so the lowering picks a form the toolchain
//! takes and `aiec check` reports the rest with the source line, before any tool runs.
//!
//! Every entry was established by running the op, on 16-lane vectors (the width elementwise code
//! uses), through those steps with mlir-aie's aie-opt and aie-translate; the `target_rules` test
//! re-runs each entry against aie-opt when it is installed, so a newer mlir-aie that disagrees
//! is noticed. Scalar code of every op the lowering emits passes on both targets.

use aiec_runtime::DType;

/// The AIE architecture a device's cores are (mlir-aie's `aie-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AieTarget {
    /// AIE-ML: npu1 (Phoenix, Hawk Point).
    Aie2,
    /// AIE2P: npu2 (Strix).
    Aie2p,
}

impl AieTarget {
    /// Every target, npu1's first.
    pub const ALL: [AieTarget; 2] = [AieTarget::Aie2, AieTarget::Aie2p];

    /// The target of a whole-array device name (`npu1`, `npu1_4col`, `npu2`, ...).
    pub fn for_device(device: &str) -> Option<AieTarget> {
        match device.split('_').next().unwrap_or(device) {
            "npu1" => Some(AieTarget::Aie2),
            "npu2" => Some(AieTarget::Aie2p),
            _ => None,
        }
    }

    /// The name mlir-aie's passes take (`aie-target=...`).
    pub fn name(self) -> &'static str {
        match self {
            AieTarget::Aie2 => "aie2",
            AieTarget::Aie2p => "aie2p",
        }
    }
}

impl std::fmt::Display for AieTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A contraction's MAC shape on a target: rows of A (m), the reduced dim (k), columns of B (n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacShape {
    /// Rows of A (and of the result).
    pub m: u64,
    /// Elements along the reduced dim.
    pub k: u64,
    /// Columns of B (and of the result).
    pub n: u64,
}

/// The MAC shape `vector.contract` converts to `aievec.matmul` on, for inputs of `dtype` with
/// the accumulator the language uses (i32 for integers, f32 for bf16). From `aievec.matmul`
/// (aie2) and `aievec.matmul_aie2p` (aie2p) in mlir-aie's AIEVec dialect; each shape checked
/// through the pipeline. aie2 also has i16 4x4x4 but only into an i64 accumulator, and aie2p
/// has no i8 4x8x8: the shapes differ per target, so a kernel's tiles must fit both to build
/// for both.
pub fn mac_shape(target: AieTarget, dtype: DType) -> Option<MacShape> {
    let s = |m, k, n| Some(MacShape { m, k, n });
    match (target, dtype) {
        (AieTarget::Aie2, DType::I8) => s(4, 8, 8),
        (AieTarget::Aie2, DType::I16) => s(4, 2, 8),
        (AieTarget::Aie2, DType::Bf16) => s(4, 8, 4),
        (AieTarget::Aie2p, DType::I8) => s(8, 8, 8),
        (AieTarget::Aie2p, DType::I16) => s(8, 2, 8),
        (AieTarget::Aie2p, DType::Bf16) => s(4, 8, 4),
        _ => None,
    }
}

/// One 16-lane vector operation the lowering may emit, and whether the toolchain takes it.
#[derive(Debug, Clone, Copy)]
pub struct VectorRule {
    /// The MLIR op (`arith.mulf`, `vector.reduction <maximumf>`, ...).
    pub op: &'static str,
    /// Element type of its operand (the source type for conversions).
    pub elem: &'static str,
    /// Result element type for conversions, else the same as `elem`.
    pub result: &'static str,
    pub(crate) aie2: Verdict,
    pub(crate) aie2p: Verdict,
}

/// How a vector op fares through mlir-aie's steps on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Converted to AIE vector intrinsics.
    Intrinsic,
    /// Left to LLVM's generic vector lowering; passes every step (Peano legalizes it).
    Generic,
    /// Rejected: the reason, as the toolchain words it.
    Rejected(&'static str),
}

use Verdict::{Generic as G, Intrinsic as I, Rejected as R};

const NO_AIEVEC_F32_MINMAX: &str = "aievec.max/min has no f32 lowering to LLVM";
const NO_AIEVEC_NEG: &str = "aievec.neg has no lowering to LLVM";
const NO_AIEVEC_CMP_F32: &str = "aievec.cmp on f32 has no lowering to LLVM";
const NO_AIEVEC_BITWISE: &str = "aievec.band/bor/bxor have no lowering to LLVM";
const NO_VECTOR_SUBI: &str = "vector arith.subi on i32 fails to legalize in convert-vector-to-aievec";
const NO_VECTOR_SHRSI: &str = "vector arith.shrsi on i32 fails to legalize in convert-vector-to-aievec";
const NO_AIE2P_MUL_ELEM: &str = "aievec.mul_elem is not supported for aie2p";
const NO_SRS_I8: &str = "16-lane i32 -> i8 aievec.srs is not supported";
const BAD_EXT_I8: &str = "16-lane i8 -> i32 extension produces an invalid LLVM bitcast";
const NO_MIXED_MUL: &str = "a multiply of a bf16-extended vector by an f32 vector fails to legalize in convert-vector-to-aievec";
const NO_ADD_ELEM_I32: &str = "aievec.add_elem on i32 (reduction) is not supported";

/// `elem` of a vector `arith.mulf` whose operands are both `arith.extf` of bf16 vectors: mlir-aie
/// turns it into a bf16 multiply with an f32 result.
pub const MULF_BF16_OPERANDS: &str = "extf(bf16) x extf(bf16)";
/// `elem` of a vector `arith.mulf` with one operand an `arith.extf` of bf16 and one not.
pub const MULF_MIXED_OPERANDS: &str = "extf(bf16) x f32";

/// The 16-lane vector ops the lowering emits, with each target's verdict. `elem` is the operand
/// element type (for `arith.mulf`, also where the operands come from: see [`MULF_BF16_OPERANDS`]).
pub const VECTOR_RULES: &[VectorRule] = &[
    rule("arith.addf", "f32", "f32", I, I),
    rule("arith.subf", "f32", "f32", I, I),
    rule("arith.mulf", "f32", "f32", I, R(NO_AIE2P_MUL_ELEM)),
    rule("arith.mulf", MULF_BF16_OPERANDS, "f32", I, I),
    rule("arith.mulf", MULF_MIXED_OPERANDS, "f32", R(NO_MIXED_MUL), R(NO_MIXED_MUL)),
    rule("arith.maximumf", "f32", "f32", R(NO_AIEVEC_F32_MINMAX), R(NO_AIEVEC_F32_MINMAX)),
    rule("arith.minimumf", "f32", "f32", R(NO_AIEVEC_F32_MINMAX), R(NO_AIEVEC_F32_MINMAX)),
    rule("arith.negf", "f32", "f32", R(NO_AIEVEC_NEG), R(NO_AIEVEC_NEG)),
    rule("arith.cmpf", "f32", "i1", R(NO_AIEVEC_CMP_F32), R(NO_AIEVEC_CMP_F32)),
    rule("arith.bitcast", "f32", "i32", G, G),
    rule("arith.fptosi", "f32", "i32", G, G),
    rule("arith.truncf", "f32", "bf16", I, I),
    rule("arith.extf", "bf16", "f32", I, I),
    rule("arith.addi", "i32", "i32", G, G),
    rule("arith.subi", "i32", "i32", R(NO_VECTOR_SUBI), R(NO_VECTOR_SUBI)),
    rule("arith.muli", "i32", "i32", I, R(NO_AIE2P_MUL_ELEM)),
    rule("arith.maxsi", "i32", "i32", I, I),
    rule("arith.minsi", "i32", "i32", I, I),
    rule("arith.andi", "i32", "i32", R(NO_AIEVEC_BITWISE), R(NO_AIEVEC_BITWISE)),
    rule("arith.ori", "i32", "i32", R(NO_AIEVEC_BITWISE), R(NO_AIEVEC_BITWISE)),
    rule("arith.shli", "i32", "i32", G, G),
    rule("arith.shrui", "i32", "i32", G, G),
    rule("arith.shrsi", "i32", "i32", R(NO_VECTOR_SHRSI), R(NO_VECTOR_SHRSI)),
    rule("arith.cmpi", "i32", "i1", I, I),
    rule("arith.select", "i32", "i32", I, I),
    rule("arith.sitofp", "i32", "f32", G, G),
    rule("arith.bitcast", "i32", "f32", G, G),
    rule("arith.trunci", "i32", "i16", I, I),
    rule("arith.trunci", "i32", "i8", R(NO_SRS_I8), R(NO_SRS_I8)),
    rule("arith.extsi", "i16", "i32", I, I),
    rule("arith.extsi", "i8", "i32", R(BAD_EXT_I8), R(BAD_EXT_I8)),
    rule("vector.reduction <add>", "f32", "f32", I, I),
    rule("vector.reduction <maximumf>", "f32", "f32", R(NO_AIEVEC_F32_MINMAX), R(NO_AIEVEC_F32_MINMAX)),
    rule("vector.reduction <minimumf>", "f32", "f32", R(NO_AIEVEC_F32_MINMAX), R(NO_AIEVEC_F32_MINMAX)),
    rule("vector.reduction <add>", "i32", "i32", R(NO_ADD_ELEM_I32), R(NO_ADD_ELEM_I32)),
    rule("vector.reduction <maxsi>", "i32", "i32", I, I),
    rule("vector.reduction <minsi>", "i32", "i32", I, I),
];

const fn rule(op: &'static str, elem: &'static str, result: &'static str, aie2: Verdict, aie2p: Verdict) -> VectorRule {
    VectorRule { op, elem, result, aie2, aie2p }
}

impl VectorRule {
    /// The verdict on `target`.
    pub fn verdict(&self, target: AieTarget) -> Verdict {
        match target {
            AieTarget::Aie2 => self.aie2,
            AieTarget::Aie2p => self.aie2p,
        }
    }
}

/// The verdict for a 16-lane `op` on `elem` (to `result`) on `target`. An op the table does not
/// list is rejected: the lowering never emits it in vector form without a checked rule.
pub(crate) fn vector_verdict(target: AieTarget, op: &str, elem: &str, result: &str) -> Verdict {
    VECTOR_RULES
        .iter()
        .find(|r| r.op == op && r.elem == elem && r.result == result)
        .map(|r| r.verdict(target))
        .unwrap_or(Verdict::Rejected("no checked rule for this vector op"))
}
