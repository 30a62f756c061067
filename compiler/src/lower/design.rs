//! The design level: `aie.device` with its tiles, object FIFOs, links, buffers, cores and the
//! runtime sequence. Each op is described by an [`AieOp`], whose properties
//! ([`AieOp::properties`]) are the same table `aie_syntax` prints the generic form from; here
//! they become typed attributes of an unregistered op.

use super::mlir::{aie_type, property, Ir, Op, Val};
use crate::device::TileCoord;
use crate::schedule::{Design, SequenceOp};
use aiec_runtime::aie_syntax::{AieOp, DmaIndex};
use melior::ir::attribute::IntegerAttribute;
use melior::ir::operation::OperationBuilder;
use melior::ir::r#type::IntegerType;
use melior::ir::{Block, Location, Region, RegionLike, Type};
use std::collections::BTreeMap;

/// Builds the aie ops of one design into the device's block.
pub(super) struct DesignBuilder<'c> {
    pub(super) ir: Ir<'c>,
    tiles: BTreeMap<TileCoord, Val>,
}

/// Appends `op` as an unregistered op with its properties; `regions` get one block each.
pub(super) fn build_aie(ir: &Ir<'_>, op: &AieOp, operands: &[Val], results: &[Type<'_>], regions: usize) -> Op {
    let name = op.op_name();
    let regions: Vec<Region> = (0..regions)
        .map(|_| {
            let r = Region::new();
            r.append_block(Block::new(&[]));
            r
        })
        .collect();
    let built = OperationBuilder::new(name, ir.unknown())
        .add_operands(&ir.values(operands))
        .add_results(results)
        .add_regions_vec(regions)
        .build()
        .unwrap_or_else(|e| panic!("{name} builds: {e}"));
    let built = ir.push(built);
    for (key, value) in op.properties() {
        built.set_property(key, property(ir.context, &value));
    }
    built
}

impl<'c> DesignBuilder<'c> {
    /// `aie.device(name)` appended to `module_body`; the builder's insertion point is its body.
    pub(super) fn device(context: &'c melior::Context, module_body: mlir_sys::MlirBlock, name: &str) -> Self {
        let mut ir = Ir::new(context, module_body);
        let op = AieOp::Device {
            device: name.to_string(),
            sym_name: None,
        };
        let device = build_aie(&ir, &op, &[], &[], 1);
        ir.set_block(device.body(0));
        DesignBuilder { ir, tiles: BTreeMap::new() }
    }

    pub(super) fn tile(&mut self, t: TileCoord) {
        let op = AieOp::Tile {
            col: t.col as i64,
            row: t.row as i64,
            attrs: None,
        };
        let index = Type::index(self.ir.context);
        let tile = build_aie(&self.ir, &op, &[], &[index], 0);
        self.tiles.insert(t, tile.result(0));
    }

    pub(super) fn objectfifo(&self, name: &str, producer: TileCoord, consumers: &[TileCoord], depth: usize, elem: Type<'c>) {
        let op = AieOp::ObjectFifo {
            name: name.to_string(),
            producer: String::new(),
            consumers: vec![String::new(); consumers.len()],
            depth: depth as i64,
            elem_type: elem.to_string(),
        };
        let operands: Vec<Val> = std::iter::once(producer).chain(consumers.iter().copied()).map(|t| self.tiles[&t]).collect();
        build_aie(&self.ir, &op, &operands, &[], 0);
    }

    pub(super) fn link(&self, ins: &[&str], outs: &[&str], src_offsets: &[u64], dst_offsets: &[u64]) {
        let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect();
        let offsets = |v: &[u64]| v.iter().map(|&n| n as i64).collect();
        let op = AieOp::Link {
            fifo_ins: names(ins),
            fifo_outs: names(outs),
            src_offsets: offsets(src_offsets),
            dst_offsets: offsets(dst_offsets),
        };
        build_aie(&self.ir, &op, &[], &[], 0);
    }

    /// `aie.buffer` in `tile`, named `name`.
    pub(super) fn buffer(&self, tile: TileCoord, name: &str, ty: Type<'c>) -> Val {
        let op = AieOp::Buffer {
            tile: String::new(),
            ty: ty.to_string(),
            sym_name: Some(name.to_string()),
            address: None,
            mem_bank: None,
            initial_value: None,
        };
        build_aie(&self.ir, &op, &[self.tiles[&tile]], &[ty], 0).result(0)
    }

    /// `aie.core` on `tile`, its body empty; returns the op (its body is region 0).
    pub(super) fn core(&self, tile: TileCoord, stack_size: u64) -> Op {
        let c = self.ir.context;
        let op = AieOp::Core { tile: String::new() };
        let core = build_aie(&self.ir, &op, &[self.tiles[&tile]], &[Type::index(c)], 1);
        // Not a property: mlir-aie's custom form writes it after the region.
        core.set_discardable("stack_size", IntegerAttribute::new(IntegerType::new(c, 32).into(), stack_size as i64).into());
        core
    }

    /// `aie.end`, closing the block `ir` appends to (the device's or a core's).
    pub(super) fn end(ir: &Ir<'c>) {
        build_aie(ir, &AieOp::End, &[], &[], 0);
    }

    /// Appends the design's runtime sequence: the host tensors as flat memref arguments, then
    /// the shim DMAs and waits.
    pub(super) fn sequence(&mut self, kernel: &crate::ir::Kernel, design: &Design) {
        let types: Vec<Type> = design
            .args
            .iter()
            .map(|&t| {
                let tensor = &kernel.tensors[t];
                self.ir.memref(&[tensor.shape.iter().product::<u64>()], tensor.dtype)
            })
            .collect();
        let located: Vec<(Type, Location)> = types.iter().map(|&t| (t, self.ir.unknown())).collect();
        let region = Region::new();
        region.append_block(Block::new(&located));
        let op = AieOp::RuntimeSequence {
            sym_name: None,
            args: Vec::new(),
        };
        let sequence = OperationBuilder::new(op.op_name(), self.ir.unknown())
            .add_regions([region])
            .build()
            .expect("aie.runtime_sequence builds");
        let body = self.ir.push(sequence).body(0);
        let args: Vec<Val> = (0..types.len()).map(|i| Ir::argument(body, i)).collect();
        let device_body = self.ir.block();
        self.ir.set_block(body);
        let index = |v: [u64; 4]| v.iter().map(|&x| DmaIndex::Static(x as i64)).collect();
        for op in &design.sequence {
            let (aie, operands) = match op {
                SequenceOp::Dma(d) => (
                    AieOp::DmaMemcpyNd {
                        memref: String::new(),
                        offsets: index([0, 0, 0, d.offset]),
                        sizes: index(d.sizes),
                        strides: index(d.strides),
                        metadata: design.fifos[d.fifo].name.clone(),
                        id: d.id as i64,
                        issue_token: d.issue_token.then_some(true),
                        memref_type: String::new(),
                        packet: None,
                    },
                    vec![args[d.arg]],
                ),
                SequenceOp::Wait { fifo } => (
                    AieOp::DmaWait {
                        symbol: design.fifos[*fifo].name.clone(),
                    },
                    Vec::new(),
                ),
            };
            build_aie(&self.ir, &aie, &operands, &[], 0);
        }
        self.ir.set_block(device_body);
    }
}

/// The element type of an object FIFO's acquire: `!aie.objectfifosubview<T>`.
pub(super) fn subview_type<'c>(context: &'c melior::Context, elem: Type<'c>) -> Type<'c> {
    aie_type(context, &aiec_runtime::aie_syntax::subview_type(&elem.to_string()))
}
