//! The design level: `aie.device` with its tiles, object FIFOs, links, buffers, cores and the
//! runtime sequence, as unregistered ops in the generic form [`aiec_runtime::aie_syntax`] reads
//! (inherent attributes as properties, enums as their `i32` values).

use super::mlir::{no_dim_layout, no_dim_layouts, objectfifo_type, Ir, Op, Val};
use crate::device::TileCoord;
use crate::schedule::{Design, SequenceOp};
use aiec_runtime::aie_syntax::device_value;
use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DenseI32ArrayAttribute, DenseI64ArrayAttribute, FlatSymbolRefAttribute, IntegerAttribute,
    StringAttribute, TypeAttribute,
};
use melior::ir::operation::OperationBuilder;
use melior::ir::r#type::IntegerType;
use melior::ir::{Attribute, Block, Identifier, Location, Region, RegionLike, Type};
use melior::Context;
use std::collections::BTreeMap;

/// Builds the aie ops of one design into a block.
pub(super) struct DesignBuilder<'c> {
    pub(super) ir: Ir<'c>,
    tiles: BTreeMap<TileCoord, Val>,
}

fn int<'c>(context: &'c Context, bits: u32, v: i64) -> Attribute<'c> {
    IntegerAttribute::new(IntegerType::new(context, bits).into(), v).into()
}

fn symbol<'c>(context: &'c Context, name: &str) -> Attribute<'c> {
    FlatSymbolRefAttribute::new(context, name).into()
}

impl<'c> DesignBuilder<'c> {
    /// `aie.device(name)` appended to `block`; the builder's insertion point is its body.
    pub(super) fn device(context: &'c Context, module_body: mlir_sys::MlirBlock, name: &str) -> Self {
        let ir = Ir::new(context, module_body);
        let region = Region::new();
        region.append_block(Block::new(&[]));
        let op = OperationBuilder::new("aie.device", ir.unknown())
            .add_regions([region])
            .build()
            .expect("aie.device builds");
        let device = ir.push(op);
        device.set_property("device", int(context, 32, device_value(name).unwrap_or(0)));
        let mut ir = ir;
        ir.set_block(device.body(0));
        DesignBuilder { ir, tiles: BTreeMap::new() }
    }

    fn build(&self, name: &str, operands: &[Val], results: &[Type<'c>], regions: Vec<Region<'c>>) -> Op {
        let op = OperationBuilder::new(name, self.ir.unknown())
            .add_operands(&self.ir.values(operands))
            .add_results(results)
            .add_regions_vec(regions)
            .build()
            .unwrap_or_else(|e| panic!("{name} builds: {e}"));
        self.ir.push(op)
    }

    fn set(&self, op: Op, props: &[(&str, Attribute<'c>)]) {
        for (name, value) in props {
            op.set_property(name, *value);
        }
    }

    pub(super) fn tile(&mut self, t: TileCoord) {
        let c = self.ir.context;
        let op = self.build("aie.tile", &[], &[Type::index(c)], vec![]);
        self.set(op, &[("col", int(c, 32, t.col as i64)), ("row", int(c, 32, t.row as i64))]);
        self.tiles.insert(t, op.result(0));
    }

    pub(super) fn tile_value(&self, t: TileCoord) -> Val {
        self.tiles[&t]
    }

    pub(super) fn objectfifo(&self, name: &str, producer: TileCoord, consumers: &[TileCoord], depth: usize, elem: Type<'c>) {
        let c = self.ir.context;
        let operands: Vec<Val> = std::iter::once(producer).chain(consumers.iter().copied()).map(|t| self.tiles[&t]).collect();
        let op = self.build("aie.objectfifo", &operands, &[], vec![]);
        self.set(
            op,
            &[
                ("dimensionsFromStreamPerConsumer", no_dim_layouts(c, consumers.len())),
                ("dimensionsToStream", no_dim_layout(c)),
                ("elemNumber", int(c, 32, depth as i64)),
                ("elemType", TypeAttribute::new(objectfifo_type(c, elem)).into()),
                ("sym_name", StringAttribute::new(c, name).into()),
            ],
        );
    }

    pub(super) fn link(&self, ins: &[&str], outs: &[&str], src_offsets: &[u64], dst_offsets: &[u64]) {
        let c = self.ir.context;
        let symbols = |v: &[&str]| -> Attribute<'c> {
            let s: Vec<Attribute> = v.iter().map(|n| symbol(c, n)).collect();
            ArrayAttribute::new(c, &s).into()
        };
        let offsets = |v: &[u64]| -> Attribute<'c> {
            let s: Vec<Attribute> = v.iter().map(|&n| int(c, 64, n as i64)).collect();
            ArrayAttribute::new(c, &s).into()
        };
        let op = self.build("aie.objectfifo.link", &[], &[], vec![]);
        self.set(
            op,
            &[
                ("dst_offsets", offsets(dst_offsets)),
                ("fifoIns", symbols(ins)),
                ("fifoOuts", symbols(outs)),
                ("src_offsets", offsets(src_offsets)),
            ],
        );
    }

    /// `aie.buffer` in `tile`, named `name`.
    pub(super) fn buffer(&self, tile: TileCoord, name: &str, ty: Type<'c>) -> Val {
        let op = self.build("aie.buffer", &[self.tiles[&tile]], &[ty], vec![]);
        self.set(op, &[("sym_name", StringAttribute::new(self.ir.context, name).into())]);
        op.result(0)
    }

    /// `aie.core` on `tile`, its body empty; returns the op (its body is region 0).
    pub(super) fn core(&self, tile: TileCoord, stack_size: u64) -> Op {
        let c = self.ir.context;
        let region = Region::new();
        region.append_block(Block::new(&[]));
        let op = OperationBuilder::new("aie.core", self.ir.unknown())
            .add_operands(&self.ir.values(&[self.tiles[&tile]]))
            .add_results(&[Type::index(c)])
            .add_regions([region])
            .add_attributes(&[(Identifier::new(c, "stack_size"), int(c, 32, stack_size as i64))])
            .build()
            .expect("aie.core builds");
        self.ir.push(op)
    }

    /// `aie.end`, closing the current block (the device's or, with `Ir::set_block`, a core's).
    pub(super) fn end(ir: &Ir<'c>) {
        let op = OperationBuilder::new("aie.end", ir.unknown()).build().expect("aie.end builds");
        ir.push(op);
    }

    /// `aie.runtime_sequence` with the host tensors as arguments; returns them and its body.
    pub(super) fn runtime_sequence(&self, args: &[Type<'c>]) -> (Vec<Val>, mlir_sys::MlirBlock) {
        let located: Vec<(Type, Location)> = args.iter().map(|&t| (t, self.ir.unknown())).collect();
        let region = Region::new();
        region.append_block(Block::new(&located));
        let op = self.build("aie.runtime_sequence", &[], &[], vec![region]);
        let body = op.body(0);
        ((0..args.len()).map(|i| Ir::argument(body, i)).collect(), body)
    }

    /// `aiex.npu.dma_memcpy_nd` of host tensor `memref` through FIFO `metadata`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dma_memcpy_nd(&self, memref: Val, offsets: [u64; 4], sizes: [u64; 4], strides: [u64; 4], id: u64, issue_token: bool, metadata: &str) {
        let c = self.ir.context;
        let a = |v: [u64; 4]| -> Attribute<'c> { DenseI64ArrayAttribute::new(c, &v.map(|x| x as i64)).into() };
        let op = self.build("aiex.npu.dma_memcpy_nd", &[memref], &[], vec![]);
        let mut props = vec![
            ("id", int(c, 64, id as i64)),
            ("metadata", symbol(c, metadata)),
            ("operandSegmentSizes", DenseI32ArrayAttribute::new(c, &[1, 0, 0, 0]).into()),
            ("static_offsets", a(offsets)),
            ("static_sizes", a(sizes)),
            ("static_strides", a(strides)),
        ];
        if issue_token {
            props.push(("issue_token", BoolAttribute::new(c, true).into()));
        }
        self.set(op, &props);
    }

    pub(super) fn dma_wait(&self, fifo: &str) {
        let op = self.build("aiex.npu.dma_wait", &[], &[], vec![]);
        self.set(op, &[("symbol", symbol(self.ir.context, fifo))]);
    }

    /// Appends the design's runtime sequence.
    pub(super) fn sequence(&mut self, kernel: &crate::ir::Kernel, design: &Design) {
        let types: Vec<Type> = design
            .args
            .iter()
            .map(|&t| {
                let tensor = &kernel.tensors[t];
                self.ir.memref(&[tensor.shape.iter().product::<u64>()], tensor.dtype)
            })
            .collect();
        let (args, body) = self.runtime_sequence(&types);
        let device_body = self.ir.block();
        self.ir.set_block(body);
        for op in &design.sequence {
            match op {
                SequenceOp::Dma(d) => {
                    let offsets = [0, 0, 0, d.offset];
                    self.dma_memcpy_nd(args[d.arg], offsets, d.sizes, d.strides, d.id as u64, d.issue_token, &design.fifos[d.fifo].name);
                }
                SequenceOp::Wait { fifo } => self.dma_wait(&design.fifos[*fifo].name),
            }
        }
        self.ir.set_block(device_body);
    }
}
