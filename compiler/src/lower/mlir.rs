//! The lowering's MLIR builder: ops are appended at one insertion point (the end of a block),
//! values are handles into the module being built, and the few types and attributes upstream
//! MLIR has no constructor for are made here.

use crate::diag::Span;
use aiec_runtime::aie_syntax::Property;
use aiec_runtime::DType;
use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DenseI32ArrayAttribute, DenseI64ArrayAttribute, FlatSymbolRefAttribute, IntegerAttribute, StringAttribute, TypeAttribute,
};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationBuilder, OperationMutLike};
use melior::ir::r#type::{IntegerType, MemRefType};
use melior::ir::{AffineExpr, AffineMap, Attribute, BlockRef, Identifier, Location, Operation, Type, TypeLike, Value, ValueLike};
use melior::Context;
use mlir_sys::{MlirBlock, MlirOperation, MlirValue};

/// A value of the module being built. The module owns it; the handle stays valid until the op
/// defining it is erased.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Val(MlirValue);

impl Val {
    fn key(self) -> usize {
        self.0.ptr as usize
    }
}

impl PartialEq for Val {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Val {}
impl PartialOrd for Val {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Val {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// An op of the module being built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op(MlirOperation);

impl Op {
    /// Its `i`th result.
    pub(crate) fn result(self, i: usize) -> Val {
        Val(unsafe { mlir_sys::mlirOperationGetResult(self.0, i as isize) })
    }

    /// The entry block of its `i`th region.
    pub(crate) fn body(self, i: usize) -> MlirBlock {
        unsafe { mlir_sys::mlirRegionGetFirstBlock(mlir_sys::mlirOperationGetRegion(self.0, i as isize)) }
    }

    fn same(self, other: Op) -> bool {
        self.0.ptr == other.0.ptr
    }

    /// Sets an inherent attribute: on an unregistered (aie) op, a property.
    pub(crate) fn set_property(self, name: &str, value: Attribute) {
        let mut op = unsafe { melior::ir::operation::OperationRefMut::from_raw(self.0) };
        op.set_inherent_attribute(name, value);
    }

    /// Sets a discardable attribute.
    pub(crate) fn set_discardable(self, name: &str, value: Attribute) {
        let mut op = unsafe { melior::ir::operation::OperationRefMut::from_raw(self.0) };
        op.set_discardable_attribute(name, value);
    }
}

/// Element types of the values the lowering computes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    Index,
    I1,
    I8,
    I16,
    I32,
    Bf16,
    F32,
}

impl Elem {
    /// The storage element type of `dtype`.
    pub(crate) fn of(dtype: DType) -> Elem {
        match dtype {
            DType::I8 => Elem::I8,
            DType::I16 => Elem::I16,
            DType::I32 => Elem::I32,
            DType::Bf16 => Elem::Bf16,
            DType::F32 => Elem::F32,
        }
    }

    /// The type's name as [`crate::target_rules`] lists it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Elem::Index => "index",
            Elem::I1 => "i1",
            Elem::I8 => "i8",
            Elem::I16 => "i16",
            Elem::I32 => "i32",
            Elem::Bf16 => "bf16",
            Elem::F32 => "f32",
        }
    }
}

/// Appends ops at the end of one block at a time.
pub(crate) struct Ir<'c> {
    pub(crate) context: &'c Context,
    block: MlirBlock,
}

impl<'c> Ir<'c> {
    pub(crate) fn new(context: &'c Context, block: MlirBlock) -> Self {
        Ir { context, block }
    }

    pub(crate) fn block(&self) -> MlirBlock {
        self.block
    }

    pub(crate) fn set_block(&mut self, block: MlirBlock) {
        self.block = block;
    }

    /// The block `op` is in.
    pub(crate) fn block_of(op: Op) -> MlirBlock {
        unsafe { mlir_sys::mlirOperationGetBlock(op.0) }
    }

    pub(crate) fn value(&self, v: Val) -> Value<'c, '_> {
        unsafe { Value::from_raw(v.0) }
    }

    pub(crate) fn values(&self, vs: &[Val]) -> Vec<Value<'c, '_>> {
        vs.iter().map(|&v| self.value(v)).collect()
    }

    /// The `i`th argument of `block`.
    pub(crate) fn argument(block: MlirBlock, i: usize) -> Val {
        Val(unsafe { mlir_sys::mlirBlockGetArgument(block, i as isize) })
    }

    /// Appends `op` to the current block.
    pub(crate) fn push(&self, op: Operation<'c>) -> Op {
        let block = unsafe { BlockRef::from_raw(self.block) };
        Op(block.append_operation(op).to_raw())
    }

    /// Inserts `op` before `before`, or first in `block` when there is none.
    pub(crate) fn insert(&self, block: MlirBlock, before: Option<Op>, op: Operation<'c>) -> Op {
        let block = unsafe { BlockRef::from_raw(block) };
        match before {
            Some(b) => {
                let anchor = unsafe { melior::ir::OperationRef::from_raw(b.0) };
                Op(block.insert_operation_before(anchor, op).to_raw())
            }
            None => Op(block.insert_operation(0, op).to_raw()),
        }
    }

    /// Inserts `op` right after `after`.
    pub(crate) fn insert_after(&self, after: Op, op: Operation<'c>) -> Op {
        let block = unsafe { BlockRef::from_raw(Self::block_of(after)) };
        let anchor = unsafe { melior::ir::OperationRef::from_raw(after.0) };
        Op(block.insert_operation_after(anchor, op).to_raw())
    }

    /// An op of an upstream dialect with named attributes, for the ops melior has no builder of
    /// its own for that sets them all.
    pub(crate) fn build_op(
        &self,
        name: &str,
        location: Location<'c>,
        operands: &[Val],
        results: &[Type<'c>],
        attributes: &[(&str, Attribute<'c>)],
    ) -> Operation<'c> {
        let named: Vec<(Identifier, Attribute)> = attributes.iter().map(|&(n, a)| (Identifier::new(self.context, n), a)).collect();
        OperationBuilder::new(name, location)
            .add_operands(&self.values(operands))
            .add_results(results)
            .add_attributes(&named)
            .build()
            .unwrap_or_else(|e| panic!("{name} builds: {e}"))
    }

    /// The ops of `block` after `after` (all of them when `None`), in order.
    pub(crate) fn ops_after(block: MlirBlock, after: Option<Op>) -> Vec<Op> {
        let mut next = match after {
            Some(op) => unsafe { mlir_sys::mlirOperationGetNextInBlock(op.0) },
            None => unsafe { mlir_sys::mlirBlockGetFirstOperation(block) },
        };
        let mut ops = Vec::new();
        while !next.ptr.is_null() {
            ops.push(Op(next));
            next = unsafe { mlir_sys::mlirOperationGetNextInBlock(next) };
        }
        ops
    }

    /// The last op of `block`.
    pub(crate) fn last_op(block: MlirBlock) -> Option<Op> {
        Self::ops_after(block, None).pop()
    }

    /// Erases `ops` (last first, so that no erased op still has users).
    pub(crate) fn erase(ops: &[Op], keep: impl Fn(Op) -> bool) {
        for op in ops.iter().rev().filter(|&&op| !keep(op)) {
            unsafe { mlir_sys::mlirOperationDestroy(op.0) }
        }
    }

    pub(crate) fn is(op: Op, other: Op) -> bool {
        op.same(other)
    }

    pub(crate) fn type_of(&self, v: Val) -> Type<'c> {
        self.value(v).r#type()
    }

    /// The dims of a vector value (none for a scalar).
    pub(crate) fn shape_of(&self, v: Val) -> Vec<u64> {
        let t = self.type_of(v);
        if !t.is_vector() {
            return Vec::new();
        }
        let rank = unsafe { mlir_sys::mlirShapedTypeGetRank(t.to_raw()) };
        (0..rank)
            .map(|i| unsafe { mlir_sys::mlirShapedTypeGetDimSize(t.to_raw(), i as isize) } as u64)
            .collect()
    }

    /// `v`'s type with element type `e`: a scalar, or a vector of the same shape.
    pub(crate) fn like(&self, v: Val, e: Elem) -> Type<'c> {
        let shape = self.shape_of(v);
        if shape.is_empty() {
            self.elem(e)
        } else {
            self.vector(&shape, e)
        }
    }

    /// The element type of a scalar or vector value.
    pub(crate) fn elem_of(&self, v: Val) -> Elem {
        let t = self.type_of(v);
        let e = if t.is_vector() {
            unsafe { Type::from_raw(mlir_sys::mlirShapedTypeGetElementType(t.to_raw())) }
        } else {
            t
        };
        [Elem::Index, Elem::I1, Elem::I8, Elem::I16, Elem::I32, Elem::Bf16, Elem::F32]
            .into_iter()
            .find(|&x| self.elem(x) == e)
            .unwrap_or(Elem::Index)
    }

    pub(crate) fn elem(&self, e: Elem) -> Type<'c> {
        let c = self.context;
        match e {
            Elem::Index => Type::index(c),
            Elem::I1 => IntegerType::new(c, 1).into(),
            Elem::I8 => IntegerType::new(c, 8).into(),
            Elem::I16 => IntegerType::new(c, 16).into(),
            Elem::I32 => IntegerType::new(c, 32).into(),
            Elem::Bf16 => Type::bfloat16(c),
            Elem::F32 => Type::float32(c),
        }
    }

    pub(crate) fn vector(&self, shape: &[u64], e: Elem) -> Type<'c> {
        Type::vector(shape, self.elem(e))
    }

    /// `memref<AxBxT>` (`memref<T>` for no dims).
    pub(crate) fn memref(&self, shape: &[u64], dtype: DType) -> Type<'c> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        MemRefType::new(self.elem(Elem::of(dtype)), &dims, None, None).into()
    }

    /// A symbol-free affine map on `dims` dims with the given dim results.
    pub(crate) fn affine_map(&self, dims: usize, results: &[usize]) -> Attribute<'c> {
        let exprs: Vec<AffineExpr> = results.iter().map(|&r| AffineExpr::dim(self.context, r)).collect();
        let map = AffineMap::new(self.context, dims, 0, &exprs);
        unsafe { Attribute::from_raw(mlir_sys::mlirAffineMapAttrGet(map.to_raw())) }
    }

    /// The minor identity map of a `rank`-d memref read into a `results`-d vector.
    pub(crate) fn minor_identity(&self, rank: usize, results: usize) -> Attribute<'c> {
        let map = AffineMap::minor_identity(self.context, rank, results);
        unsafe { Attribute::from_raw(mlir_sys::mlirAffineMapAttrGet(map.to_raw())) }
    }

    /// `[true, ...]` for `n` in-bounds dims.
    pub(crate) fn in_bounds(&self, n: usize) -> ArrayAttribute<'c> {
        let t: Vec<Attribute> = (0..n).map(|_| BoolAttribute::new(self.context, true).into()).collect();
        ArrayAttribute::new(self.context, &t)
    }

    pub(crate) fn unknown(&self) -> Location<'c> {
        Location::unknown(self.context)
    }
}

/// The MLIR location of a DSL span: file, line and column, or a name for builder spans.
pub(crate) fn span_location<'c>(context: &'c Context, span: &Span) -> Location<'c> {
    if span.source.text.is_empty() {
        return Location::name(context, &span.source.name, Location::unknown(context));
    }
    let (line, col) = span.source.line_col(span.start);
    Location::new(context, &span.source.name, line, col)
}

/// How a vector reduction or contraction combines elements (`#vector.kind<...>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CombiningKind {
    Add,
    MaximumF,
    MinimumF,
    MaxSI,
    MinSI,
}

impl CombiningKind {
    /// `vector.reduction` of this kind as [`crate::target_rules`] names it.
    pub(crate) fn reduction_rule(self) -> &'static str {
        match self {
            CombiningKind::Add => "vector.reduction <add>",
            CombiningKind::MaximumF => "vector.reduction <maximumf>",
            CombiningKind::MinimumF => "vector.reduction <minimumf>",
            CombiningKind::MaxSI => "vector.reduction <maxsi>",
            CombiningKind::MinSI => "vector.reduction <minsi>",
        }
    }
}

// Types and attributes without a C API constructor: the aie dialect's (upstream MLIR does not
// know it, so they are opaque dialect types and attributes, spelled by `aie_syntax`'s table) and
// the vector dialect's enums. They are parsed from their spelling here and nowhere else.

fn parse_attribute<'c>(context: &'c Context, text: &str) -> Attribute<'c> {
    Attribute::parse(context, text).unwrap_or_else(|| panic!("the attribute `{text}` parses"))
}

/// A type of the aie dialect from its spelling.
pub(crate) fn aie_type<'c>(context: &'c Context, spelled: &str) -> Type<'c> {
    Type::parse(context, spelled).unwrap_or_else(|| panic!("the aie type `{spelled}` parses"))
}

/// A property of an aie op ([`aiec_runtime::aie_syntax::AieOp::properties`]) as an attribute.
pub(crate) fn property<'c>(context: &'c Context, p: &Property) -> Attribute<'c> {
    let int = |bits: u32, v: i64| -> Attribute<'c> { IntegerAttribute::new(IntegerType::new(context, bits).into(), v).into() };
    let array = |v: Vec<Attribute<'c>>| -> Attribute<'c> { ArrayAttribute::new(context, &v).into() };
    match p {
        Property::I32(v) => int(32, *v),
        Property::I64(v) => int(64, *v),
        Property::Str(s) => StringAttribute::new(context, s).into(),
        Property::Symbol(s) => FlatSymbolRefAttribute::new(context, s).into(),
        Property::Symbols(v) => array(v.iter().map(|s| FlatSymbolRefAttribute::new(context, s).into()).collect()),
        Property::Ints(v) => array(v.iter().map(|&n| int(64, n)).collect()),
        Property::DenseI32(v) => DenseI32ArrayAttribute::new(context, v).into(),
        Property::DenseI64(v) => DenseI64ArrayAttribute::new(context, v).into(),
        Property::Bool(b) => BoolAttribute::new(context, *b).into(),
        Property::AieType(t) => TypeAttribute::new(aie_type(context, t)).into(),
        Property::Spelled(a) => parse_attribute(context, a),
    }
}

/// `#vector.kind<...>`.
pub(crate) fn combining_kind(context: &Context, kind: CombiningKind) -> Attribute<'_> {
    parse_attribute(
        context,
        match kind {
            CombiningKind::Add => "#vector.kind<add>",
            CombiningKind::MaximumF => "#vector.kind<maximumf>",
            CombiningKind::MinimumF => "#vector.kind<minimumf>",
            CombiningKind::MaxSI => "#vector.kind<maxsi>",
            CombiningKind::MinSI => "#vector.kind<minsi>",
        },
    )
}

/// `#vector.iterator_type<parallel>` or `<reduction>`.
pub(crate) fn iterator_type(context: &Context, parallel: bool) -> Attribute<'_> {
    parse_attribute(
        context,
        if parallel {
            "#vector.iterator_type<parallel>"
        } else {
            "#vector.iterator_type<reduction>"
        },
    )
}
