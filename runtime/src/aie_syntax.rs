//! The bridge between mlir-aie's custom syntax and MLIR's generic form for the aie/aiex ops aiec uses.
//!
//! Upstream MLIR (and so melior) has no `aie` dialect: it can only build, parse and print aie ops as
//! unregistered ops in generic form. mlir-aie's tools, tests and users write the custom form. This module maps
//! between the two, line by line: [`custom_to_generic`] keeps the line structure (one line in, one line out,
//! so MLIR diagnostics on the generic text still point at the line of the original file), and
//! [`generic_to_custom`] is its inverse (it also accepts MLIR's own printing of the generic module, where a
//! region's entry block label sits on its own line).
//!
//! # The generic form of each op
//!
//! The generic form follows the ops' ODS definitions in mlir-aie (`AIEOps.td`, `AIEX.td`). Each op's
//! properties come from one table, [`AieOp::properties`]: the generic printer here writes them, and aiec's
//! lowering builds the same ops in memory with them as typed attributes. Inherent attributes are properties (`<{...}>`, printed by MLIR in sorted key order), enum attributes are their
//! `i32` values, default-valued attributes that the custom text leaves out are left out. `%x` stand for SSA
//! names, `T` for an element memref type such as `memref<16xi32>`.
//!
//! | custom | generic |
//! |---|---|
//! | `aie.device(npu1) {` | `"aie.device"() <{device = 4 : i32}> ({` |
//! | `aie.device(npu1) @dev {` | `"aie.device"() <{device = 4 : i32, sym_name = "dev"}> ({` |
//! | `}` (closing the device) | `"aie.end"() : () -> () }) : () -> ()` |
//! | `%t = aie.tile(0, 2)` | `%t = "aie.tile"() <{col = 0 : i32, row = 2 : i32}> : () -> index` |
//! | `aie.objectfifo @f(%p, {%c1, %c2}, 2 : i32) : !aie.objectfifo<T>` | `"aie.objectfifo"(%p, %c1, %c2) <{dimensionsFromStreamPerConsumer = #aie<bd_dim_layout_array_array[[], []]>, dimensionsToStream = #aie<bd_dim_layout_array[]>, elemNumber = 2 : i32, elemType = !aie.objectfifo<T>, sym_name = "f"}> : (index, index, index) -> ()` |
//! | `aie.objectfifo.link [@a] -> [@b, @c] ([] [0, 64])` | `"aie.objectfifo.link"() <{dst_offsets = [0, 64], fifoIns = [@a], fifoOuts = [@b, @c], src_offsets = []}> : () -> ()` |
//! | `%b = aie.buffer(%t) : T` | `%b = "aie.buffer"(%t) : (index) -> T` |
//! | `%b = aie.buffer(%t) {address = 1024 : i32, mem_bank = 0 : i32, sym_name = "b"} : memref<4xi32> = dense<[1, 2, 3, 4]>` | `%b = "aie.buffer"(%t) <{address = 1024 : i32, initial_value = dense<[1, 2, 3, 4]> : tensor<4xi32>, mem_bank = 0 : i32, sym_name = "b"}> : (index) -> memref<4xi32>` |
//! | `%c = aie.core(%t) {` | `%c = "aie.core"(%t) ({` |
//! | `aie.core(%t) {` (no result name) | `%aiec_unnamed_N = "aie.core"(%t) ({` |
//! | `}` (closing a core) | `}) : (index) -> index` |
//! | `aie.end` | `"aie.end"() : () -> ()` |
//! | `%s = aie.objectfifo.acquire @f(Consume, 1) : !aie.objectfifosubview<T>` | `%s = "aie.objectfifo.acquire"() <{objFifo_name = @f, port = 1 : i32, size = 1 : i32}> : () -> !aie.objectfifosubview<T>` |
//! | `%e = aie.objectfifo.subview.access %s[0] : !aie.objectfifosubview<T> -> T` | `%e = "aie.objectfifo.subview.access"(%s) <{index = 0 : i32}> : (!aie.objectfifosubview<T>) -> T` |
//! | `aie.objectfifo.release @f(Produce, 1)` | `"aie.objectfifo.release"() <{objFifo_name = @f, port = 0 : i32, size = 1 : i32}> : () -> ()` |
//! | `aie.runtime_sequence(%a: memref<64xi32>, %b: memref<64xi32>) {` | `"aie.runtime_sequence"() ({ ^bb0(%a: memref<64xi32>, %b: memref<64xi32>):` |
//! | `aie.runtime_sequence @seq(%a: memref<64xi32>) {` | `"aie.runtime_sequence"() <{sym_name = "seq"}> ({ ^bb0(%a: memref<64xi32>):` |
//! | `}` (closing the runtime sequence) | `}) : () -> ()` |
//! | `aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 0 : i64, metadata = @f, issue_token = true} : memref<64xi32>` | `"aiex.npu.dma_memcpy_nd"(%a) <{id = 0 : i64, issue_token = true, metadata = @f, operandSegmentSizes = array<i32: 1, 0, 0, 0>, static_offsets = array<i64: 0, 0, 0, 0>, static_sizes = array<i64: 1, 1, 1, 64>, static_strides = array<i64: 0, 0, 0, 1>}> : (memref<64xi32>) -> ()` |
//! | `aiex.npu.dma_memcpy_nd(%a[%c0, 0, 0, 0][...][...]) ...` (SSA values) | the SSA values become `i64` operands after the memref, counted in `operandSegmentSizes = array<i32: 1, nOffsets, nSizes, nStrides>`, and their slots in `static_*` hold `-9223372036854775808` (MLIR's dynamic marker) |
//! | `aiex.npu.dma_wait {symbol = @f}` | `"aiex.npu.dma_wait"() <{symbol = @f}> : () -> ()` |
//!
//! Enum values: `device` — xcvc1902 1, xcve2302 2, xcve2802 3, npu1 4, npu1_1col 5, npu1_2col 6,
//! npu1_3col 7, npu2 8, npu2_1col 9 ... npu2_7col 15 (npu1_4col is an alias accepted for npu1);
//! `port` — Produce 0, Consume 1. `issue_token` is present only when the custom text gives it.
//! `dimensionsFromStreamPerConsumer` has one empty `[]` per consumer tile. A buffer's attributes are all
//! optional (`sym_name`, `address` and `mem_bank` are written in the custom form's attribute dictionary, which
//! [`print_custom`] writes in sorted order like mlir-aie); its `initial_value` is an elements attribute whose
//! type, in the generic form, is the tensor of the memref's shape and element type, and which the custom form
//! writes without that type after `=`. The generic runtime-sequence region has no terminator (the op is `NoTerminator`); the device's and the cores' regions end in `aie.end`.
//! The generic-to-custom direction reads properties in any order and with or without the `: i64` suffix on
//! `id`. It also accepts inherent attributes given as a trailing attribute dictionary (`{col = 0 : i32, ...}`,
//! which is how MLIR prints attributes added with `OperationBuilder::add_attributes`) on ops without regions;
//! properties are what `OperationMutLike::set_inherent_attribute` sets on an unregistered op and are the
//! documented form above.
//!
//! Hardware-level ops (`aie.lock`, `aie.use_lock`, `aie.mem`, `aie.dma_bd`, `aie.flow`, `aie.packet_flow`,
//! register writes and DMA tasks in the runtime sequence; [`HW_OPS`]) are kept as [`AieOp::Hw`] with their
//! text, which the emulator's hardware model reads; their regions may close with `}]`, `}, {` or `} {attrs}`.
//! In the generic form a lock is `%l = "aie.lock"(%tile) : (index) -> index` and a lock use
//! `"aie.use_lock"(%l) : (index) -> ()` (so that core code naming them parses); every other hardware-level
//! line, the lines inside their regions and the `memref.global`s register writes use are left empty.
//! Routed switchboxes, cascade and core stream ports, external buffers and reconfiguration (`aiex.configure`,
//! `aiex.npu.load_pdi`) are an error naming the op and its line.

use std::collections::HashMap;

/// A problem in the aie/aiex part of an MLIR text; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("line {line}: `{op}` is not supported by the emulator yet: {why}")]
    Unsupported { line: usize, op: String, why: String },
    #[error("line {line}: malformed `{op}`: {message}")]
    Malformed { line: usize, op: String, message: String },
    #[error("line {line}: {message}")]
    Structure { line: usize, message: String },
}

impl SyntaxError {
    pub fn line(&self) -> usize {
        match self {
            SyntaxError::Unsupported { line, .. } | SyntaxError::Malformed { line, .. } | SyntaxError::Structure { line, .. } => *line,
        }
    }
}

/// The object FIFO port an acquire/release works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    Produce,
    Consume,
}

impl Port {
    pub fn name(self) -> &'static str {
        match self {
            Port::Produce => "Produce",
            Port::Consume => "Consume",
        }
    }
    /// The `i32` value of the `port` enum attribute.
    pub fn value(self) -> i64 {
        match self {
            Port::Produce => 0,
            Port::Consume => 1,
        }
    }
}

/// One entry of a `dma_memcpy_nd` offsets/sizes/strides list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaIndex {
    Static(i64),
    /// An SSA value (with its `%`), defined by an `arith.constant` in the runtime sequence.
    Dynamic(String),
}

/// MLIR's marker for a dynamic entry in `static_offsets` & co.
pub const DYNAMIC_INDEX: i64 = i64::MIN;

/// A supported aie/aiex op, as written on one line.
#[derive(Debug, Clone, PartialEq)]
pub enum AieOp {
    Device {
        device: String,
        sym_name: Option<String>,
    },
    Tile {
        col: i64,
        row: i64,
        /// The attribute dictionary written after the tile (`{controller_id = ...}`), as written; the emulator
        /// does not use it.
        attrs: Option<String>,
    },
    ObjectFifo {
        name: String,
        producer: String,
        consumers: Vec<String>,
        depth: i64,
        elem_type: String,
    },
    Link {
        fifo_ins: Vec<String>,
        fifo_outs: Vec<String>,
        src_offsets: Vec<i64>,
        dst_offsets: Vec<i64>,
    },
    Core {
        tile: String,
    },
    /// `aie.buffer`: memory of a tile, `ty` its memref type; `initial_value` is the attribute's text
    /// without its type (`dense<[1, 2]>`), as mlir-aie's custom form writes it after `=`.
    Buffer {
        tile: String,
        ty: String,
        sym_name: Option<String>,
        address: Option<i64>,
        mem_bank: Option<i64>,
        initial_value: Option<String>,
    },
    End,
    Acquire {
        fifo: String,
        port: Port,
        size: i64,
        elem_type: String,
    },
    Access {
        subview: String,
        index: i64,
        elem_type: String,
    },
    Release {
        fifo: String,
        port: Port,
        size: i64,
    },
    RuntimeSequence {
        sym_name: Option<String>,
        args: Vec<(String, String)>,
    },
    DmaMemcpyNd {
        memref: String,
        offsets: Vec<DmaIndex>,
        sizes: Vec<DmaIndex>,
        strides: Vec<DmaIndex>,
        metadata: String,
        id: i64,
        issue_token: Option<bool>,
        memref_type: String,
        /// `packet = <pkt_type = T, pkt_id = I>`: (type, id).
        packet: Option<(i64, i64)>,
    },
    DmaWait {
        symbol: String,
    },
    /// An op of a lower-level (hardware-level) design: locks, DMAs, buffer descriptors, flows, register
    /// writes, DMA tasks. `text` is the op as written (after its result names); the emulator's hardware model
    /// reads it.
    Hw {
        name: &'static str,
        text: String,
    },
}

impl AieOp {
    /// The op's full name, e.g. `aie.objectfifo.acquire`.
    pub fn op_name(&self) -> &'static str {
        match self {
            AieOp::Device { .. } => "aie.device",
            AieOp::Tile { .. } => "aie.tile",
            AieOp::ObjectFifo { .. } => "aie.objectfifo",
            AieOp::Link { .. } => "aie.objectfifo.link",
            AieOp::Core { .. } => "aie.core",
            AieOp::Buffer { .. } => "aie.buffer",
            AieOp::End => "aie.end",
            AieOp::Acquire { .. } => "aie.objectfifo.acquire",
            AieOp::Access { .. } => "aie.objectfifo.subview.access",
            AieOp::Release { .. } => "aie.objectfifo.release",
            AieOp::RuntimeSequence { .. } => "aie.runtime_sequence",
            AieOp::DmaMemcpyNd { .. } => "aiex.npu.dma_memcpy_nd",
            AieOp::DmaWait { .. } => "aiex.npu.dma_wait",
            AieOp::Hw { name, .. } => name,
        }
    }
    pub fn opens_region(&self) -> Option<RegionKind> {
        match self {
            AieOp::Device { .. } => Some(RegionKind::Device),
            AieOp::Core { .. } => Some(RegionKind::Core),
            AieOp::RuntimeSequence { .. } => Some(RegionKind::Sequence),
            AieOp::Hw { text, .. } if text.trim_end().ends_with('{') => Some(RegionKind::Hw),
            _ => None,
        }
    }
}

/// The region an open brace belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Device,
    Core,
    Sequence,
    /// The region of a hardware-level op (`aie.mem`, `aie.packet_flow`, `aiex.dma_configure_task`, ...).
    Hw,
    /// Any other region or brace pair (scf.for bodies, attribute dictionaries spanning lines, ...).
    Other,
}

/// What one line of a design holds, as far as the aie/aiex ops are concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum LineItem {
    /// Not an aie/aiex line: kept as it is.
    Plain,
    /// An aie/aiex op, with its result name (with `%`) when it has one.
    Op { result: Option<String>, op: Box<AieOp> },
    /// The `}` closing the region of an aie.device / aie.core / aie.runtime_sequence.
    Close(RegionKind),
}

/// One analysed line: its indentation, its item and any trailing `//` comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// Attribute dictionary written after a core's closing brace (`{stack_size = 2048 : i32}`), or empty.
    pub region_attrs: String,
    pub indent: String,
    pub item: LineItem,
    pub comment: String,
    /// The line's original text.
    pub text: String,
}

const DEVICES: &[(&str, i64)] = &[
    ("xcvc1902", 1),
    ("xcve2302", 2),
    ("xcve2802", 3),
    ("npu1", 4),
    ("npu1_1col", 5),
    ("npu1_2col", 6),
    ("npu1_3col", 7),
    ("npu2", 8),
    ("npu2_1col", 9),
    ("npu2_2col", 10),
    ("npu2_3col", 11),
    ("npu2_4col", 12),
    ("npu2_5col", 13),
    ("npu2_6col", 14),
    ("npu2_7col", 15),
];

/// The `i32` value of the `device` enum attribute for a device name.
pub fn device_value(name: &str) -> Option<i64> {
    if name == "npu1_4col" {
        return Some(4);
    }
    DEVICES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn device_name(value: i64) -> Option<&'static str> {
    DEVICES.iter().find(|(_, v)| *v == value).map(|(n, _)| *n)
}

/// The hardware-level ops the emulator's hardware model reads (`AieOp::Hw`).
pub const HW_OPS: &[&str] = &[
    "aie.mem",
    "aie.memtile_dma",
    "aie.shim_dma",
    "aie.dma_bd",
    "aie.dma_bd_packet",
    "aie.dma_start",
    "aie.dma",
    "aie.next_bd",
    "aie.flow",
    "aie.packet_flow",
    "aie.packet_source",
    "aie.packet_dest",
    "aie.lock",
    "aie.use_lock",
    "aie.shim_dma_allocation",
    "aiex.npu.write32",
    "aiex.npu.maskwrite32",
    "aiex.npu.blockwrite",
    "aiex.npu.sync",
    "aiex.npu.push_queue",
    "aiex.npu.writebd",
    "aiex.npu.address_patch",
    "aiex.dma_configure_task",
    "aiex.dma_configure_task_for",
    "aiex.dma_start_task",
    "aiex.dma_await_task",
    "aiex.dma_free_task",
];

/// Lower-level ops the emulator does not model.
const LOWER_LEVEL: &[&str] = &[
    "aie.switchbox",
    "aie.shim_switchbox",
    "aie.shim_mux",
    "aie.connect",
    "aie.masterset",
    "aie.packet_rules",
    "aie.rule",
    "aie.amsel",
    "aie.wire",
    "aie.external_buffer",
    "aie.cascade_flow",
    "aie.put_cascade",
    "aie.get_cascade",
    "aie.put_stream",
    "aie.get_stream",
    "aiex.npu.dma_memcpy_nd_task",
    "aiex.npu.load_pdi",
    "aiex.configure",
    "aiex.run",
];

fn unsupported(line: usize, op: &str) -> SyntaxError {
    let why = if LOWER_LEVEL.contains(&op) {
        "routed switchboxes, cascade and core stream ports, external buffers and reconfiguration are not modelled".to_string()
    } else {
        "not an op the emulator models".to_string()
    };
    SyntaxError::Unsupported { line, op: op.to_string(), why }
}

// ---------------------------------------------------------------------------------------------------------
// A small cursor over one line.

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
    op: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str, line: usize, op: &'static str) -> Self {
        Cursor { s, pos: 0, line, op }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }
    fn err(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError::Malformed {
            line: self.line,
            op: self.op.to_string(),
            message: message.into(),
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        self.ws();
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, lit: &str) -> Result<(), SyntaxError> {
        if self.eat(lit) {
            Ok(())
        } else {
            let near: String = self.rest().chars().take(20).collect();
            Err(self.err(format!("expected `{lit}` at `{near}`")))
        }
    }
    fn at_end(&mut self) -> bool {
        self.ws();
        self.rest().is_empty()
    }
    fn word(&mut self) -> &'a str {
        self.ws();
        let r = self.rest();
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.' || c == '-'))
            .unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }
    /// `%name` (returned with its `%`).
    fn ssa(&mut self) -> Result<String, SyntaxError> {
        self.expect("%")?;
        let w = self.word();
        if w.is_empty() {
            return Err(self.err("expected an SSA value name after `%`"));
        }
        Ok(format!("%{w}"))
    }
    /// `@name` (returned without its `@`).
    fn symbol(&mut self) -> Result<String, SyntaxError> {
        self.expect("@")?;
        self.ws();
        if self.rest().starts_with('"') {
            return Err(self.err("quoted symbol names are not supported"));
        }
        let w = self.word();
        if w.is_empty() {
            return Err(self.err("expected a symbol name after `@`"));
        }
        Ok(w.to_string())
    }
    fn int(&mut self) -> Result<i64, SyntaxError> {
        self.ws();
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        let v = r[..n].parse::<i64>().map_err(|_| {
            let near: String = r.chars().take(20).collect();
            self.err(format!("expected an integer at `{near}`"))
        })?;
        self.pos += n;
        Ok(v)
    }
    /// An integer with an optional `: iN` type suffix.
    fn typed_int(&mut self, ty: &str) -> Result<i64, SyntaxError> {
        let v = self.int()?;
        let save = self.pos;
        if self.eat(":") {
            let t = self.word();
            if t != ty {
                if t.starts_with('i') {
                    return Err(self.err(format!("expected a `{ty}` integer, found `{t}`")));
                }
                self.pos = save;
            }
        }
        Ok(v)
    }
    /// A type (memref<...>, !aie.objectfifo<...>, i64, ...): up to a `,`, `)`, `]`, `}` or space at depth 0.
    fn ty(&mut self) -> Result<String, SyntaxError> {
        self.ws();
        let r = self.rest();
        let mut depth = 0i32;
        let mut end = r.len();
        for (i, c) in r.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' if depth > 0 && !r[..i].ends_with('-') => depth -= 1,
                ')' | ']' if depth > 0 => depth -= 1,
                ',' | ')' | ']' | '}' | ' ' | '\t' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if end == 0 {
            return Err(self.err("expected a type"));
        }
        self.pos += end;
        Ok(r[..end].to_string())
    }
    /// `[a, b, ...]` of items parsed by `f`.
    fn list<T>(&mut self, open: &str, close: &str, mut f: impl FnMut(&mut Self) -> Result<T, SyntaxError>) -> Result<Vec<T>, SyntaxError> {
        self.expect(open)?;
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(f(self)?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }
    /// A `{key = value, ...}` or `<{...}>` dictionary: raw value texts by key.
    fn dict(&mut self, open: &str, close: &str) -> Result<HashMap<String, String>, SyntaxError> {
        self.expect(open)?;
        let mut out = HashMap::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            let key = self.word().to_string();
            if key.is_empty() {
                return Err(self.err("expected an attribute name"));
            }
            let value = if self.eat("=") { self.attr_value()? } else { "unit".to_string() };
            out.insert(key, value);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }
    /// The raw text of one attribute value, up to a `,` or closing bracket at depth 0.
    fn attr_value(&mut self) -> Result<String, SyntaxError> {
        self.ws();
        let r = self.rest();
        let mut depth = 0i32;
        let mut in_str = false;
        let mut end = r.len();
        let mut prev = ' ';
        for (i, c) in r.char_indices() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
            } else {
                match c {
                    '"' => in_str = true,
                    '<' | '(' | '[' | '{' => depth += 1,
                    '>' if prev == '-' => {}
                    '>' | ')' | ']' | '}' if depth > 0 => depth -= 1,
                    ',' | '}' | '>' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            prev = c;
        }
        self.pos += end;
        Ok(r[..end].trim().to_string())
    }
}

fn split_comment(s: &str) -> (&str, &str) {
    let mut in_str = false;
    let b = s.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'"' if i == 0 || b[i - 1] != b'\\' => in_str = !in_str,
            b'/' if !in_str && i + 1 < b.len() && b[i + 1] == b'/' => return (&s[..i], &s[i..]),
            _ => {}
        }
    }
    (s, "")
}

/// The code part of a line, without a trailing `//` comment.
pub fn strip_comment(s: &str) -> &str {
    split_comment(s).0
}

fn indent_of(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

/// Opening/closing braces of a non-aie line, in order, outside strings.
fn braces(code: &str) -> Vec<char> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut prev = ' ';
    for c in code.chars() {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '{' || c == '}' {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Splits `%a = rest` / `%a, %b = rest` into the result text and the rest.
fn split_result(code: &str) -> (Option<&str>, &str) {
    let t = code.trim_start();
    if t.starts_with('%') {
        if let Some(eq) = t.find('=') {
            let lhs = t[..eq].trim();
            if lhs.chars().all(|c| c.is_ascii_alphanumeric() || "%_$.-#:, ".contains(c)) {
                return (Some(lhs), t[eq + 1..].trim_start());
            }
        }
    }
    (None, t)
}

fn aie_op_name(rest: &str) -> Option<&str> {
    if !(rest.starts_with("aie.") || rest.starts_with("aiex.")) {
        return None;
    }
    let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
    Some(&rest[..n])
}

fn static_name(name: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "aie.device",
        "aie.tile",
        "aie.objectfifo",
        "aie.objectfifo.link",
        "aie.core",
        "aie.buffer",
        "aie.end",
        "aie.objectfifo.acquire",
        "aie.objectfifo.subview.access",
        "aie.objectfifo.release",
        "aie.runtime_sequence",
        "aiex.npu.dma_memcpy_nd",
        "aiex.npu.dma_wait",
    ];
    NAMES.iter().copied().find(|n| *n == name)
}

// ---------------------------------------------------------------------------------------------------------
// Custom form.

fn parse_port(c: &mut Cursor) -> Result<Port, SyntaxError> {
    match c.word() {
        "Produce" => Ok(Port::Produce),
        "Consume" => Ok(Port::Consume),
        other => Err(c.err(format!("expected `Produce` or `Consume`, found `{other}`"))),
    }
}

fn inner_of(ty: &str, wrapper: &str, c: &Cursor) -> Result<String, SyntaxError> {
    ty.strip_prefix(wrapper)
        .and_then(|t| t.strip_prefix('<'))
        .and_then(|t| t.strip_suffix('>'))
        .map(|t| t.to_string())
        .ok_or_else(|| c.err(format!("expected a `{wrapper}<...>` type, found `{ty}`")))
}

fn parse_dma_index(c: &mut Cursor) -> Result<DmaIndex, SyntaxError> {
    c.ws();
    if c.rest().starts_with('%') {
        Ok(DmaIndex::Dynamic(c.ssa()?))
    } else {
        Ok(DmaIndex::Static(c.int()?))
    }
}

fn symbol_value(v: &str, c: &Cursor, key: &str) -> Result<String, SyntaxError> {
    v.strip_prefix('@')
        .filter(|s| !s.is_empty() && !s.contains("::"))
        .map(|s| s.to_string())
        .ok_or_else(|| c.err(format!("`{key}` must be a symbol like @name, found `{v}`")))
}

fn int_value(v: &str, c: &Cursor, key: &str, ty: &str) -> Result<i64, SyntaxError> {
    let mut vc = Cursor::new(v, c.line, c.op);
    let n = vc.typed_int(ty).map_err(|_| c.err(format!("`{key}` must be an integer, found `{v}`")))?;
    if !vc.at_end() {
        return Err(c.err(format!("`{key}` must be an integer, found `{v}`")));
    }
    Ok(n)
}

/// A string attribute `"text"` (returned without its quotes; escapes are kept as written).
fn string_value(v: &str, c: &Cursor, key: &str) -> Result<String, SyntaxError> {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map(|s| s.to_string())
        .ok_or_else(|| c.err(format!("`{key}` must be a string, found `{v}`")))
}

/// The tensor type mlir-aie gives a buffer's initial value: the memref's shape and element type
/// (`memref<2x4xi32>` -> `tensor<2x4xi32>`; a layout or memory space is dropped).
pub fn tensor_type_of_memref(memref: &str) -> Option<String> {
    let inner = memref.strip_prefix("memref<")?.strip_suffix('>')?;
    let mut depth = 0i32;
    let mut end = inner.len();
    for (i, ch) in inner.char_indices() {
        match ch {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    Some(format!("tensor<{}>", inner[..end].trim()))
}

fn bool_value(v: &str, c: &Cursor, key: &str) -> Result<bool, SyntaxError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(c.err(format!("`{key}` must be true or false, found `{v}`"))),
    }
}

fn no_extra_keys(d: &HashMap<String, String>, allowed: &[&str], c: &Cursor) -> Result<(), SyntaxError> {
    let mut extra: Vec<&String> = d.keys().filter(|k| !allowed.contains(&k.as_str())).collect();
    extra.sort();
    if let Some(k) = extra.first() {
        return Err(SyntaxError::Unsupported {
            line: c.line,
            op: c.op.to_string(),
            why: format!("attribute `{k}`"),
        });
    }
    Ok(())
}

fn parse_custom_op(name: &'static str, text: &str, line: usize) -> Result<AieOp, SyntaxError> {
    let mut c = Cursor::new(text, line, name);
    c.pos = name.len();
    let op = match name {
        "aie.device" => {
            c.expect("(")?;
            let device = c.word().to_string();
            if device_value(&device).is_none() {
                return Err(c.err(format!("unknown device `{device}`")));
            }
            c.expect(")")?;
            c.ws();
            let sym_name = if c.rest().starts_with('@') { Some(c.symbol()?) } else { None };
            c.expect("{")?;
            AieOp::Device { device, sym_name }
        }
        "aie.tile" => {
            c.expect("(")?;
            let col = c.int()?;
            c.expect(",")?;
            let row = c.int()?;
            c.expect(")")?;
            c.ws();
            let attrs = if c.rest().starts_with('{') {
                let start = c.pos;
                c.dict("{", "}")?;
                Some(c.s[start..c.pos].trim().to_string())
            } else {
                None
            };
            AieOp::Tile { col, row, attrs }
        }
        "aie.objectfifo" => {
            let fifo = c.symbol()?;
            c.expect("(")?;
            let producer = c.ssa()?;
            if c.eat("dimensionsToStream") {
                return Err(SyntaxError::Unsupported {
                    line,
                    op: name.into(),
                    why: "dimensionsToStream".into(),
                });
            }
            c.expect(",")?;
            let consumers = c.list("{", "}", |c| {
                let v = c.ssa()?;
                if c.eat("dimensionsFromStream") {
                    return Err(SyntaxError::Unsupported {
                        line,
                        op: name.into(),
                        why: "dimensionsFromStream".into(),
                    });
                }
                Ok(v)
            })?;
            c.expect(",")?;
            c.ws();
            if c.rest().starts_with('[') {
                return Err(SyntaxError::Unsupported {
                    line,
                    op: name.into(),
                    why: "per-tile depths ([n, m, ...])".into(),
                });
            }
            let depth = c.typed_int("i32")?;
            c.expect(")")?;
            c.ws();
            if c.rest().starts_with('{') {
                return Err(SyntaxError::Unsupported {
                    line,
                    op: name.into(),
                    why: "object FIFO attributes (via_DMA, repeat_count, streams, ...)".into(),
                });
            }
            c.expect(":")?;
            let ty = c.ty()?;
            let elem_type = inner_of(&ty, "!aie.objectfifo", &c)?;
            if !c.at_end() {
                return Err(SyntaxError::Unsupported {
                    line,
                    op: name.into(),
                    why: "initial values".into(),
                });
            }
            AieOp::ObjectFifo {
                name: fifo,
                producer,
                consumers,
                depth,
                elem_type,
            }
        }
        "aie.objectfifo.link" => {
            let fifo_ins = c.list("[", "]", |c| c.symbol())?;
            c.expect("->")?;
            let fifo_outs = c.list("[", "]", |c| c.symbol())?;
            c.expect("(")?;
            let src_offsets = c.list("[", "]", |c| c.int())?;
            let dst_offsets = c.list("[", "]", |c| c.int())?;
            c.expect(")")?;
            AieOp::Link {
                fifo_ins,
                fifo_outs,
                src_offsets,
                dst_offsets,
            }
        }
        "aie.core" => {
            c.expect("(")?;
            let tile = c.ssa()?;
            c.expect(")")?;
            c.expect("{")?;
            if !c.at_end() {
                return Err(c.err("the core's body must start on the next line"));
            }
            AieOp::Core { tile }
        }
        "aie.buffer" => {
            c.expect("(")?;
            let tile = c.ssa()?;
            c.expect(")")?;
            c.ws();
            let d = if c.rest().starts_with('{') { c.dict("{", "}")? } else { HashMap::new() };
            no_extra_keys(&d, &["sym_name", "address", "mem_bank", "initial_value"], &c)?;
            let sym_name = d.get("sym_name").map(|v| string_value(v, &c, "sym_name")).transpose()?;
            let address = d.get("address").map(|v| int_value(v, &c, "address", "i32")).transpose()?;
            let mem_bank = d.get("mem_bank").map(|v| int_value(v, &c, "mem_bank", "i32")).transpose()?;
            // `{initial_value = dense<...> : tensor<...>}` in the dictionary: the same value as `= dense<...>`.
            let dict_value = d.get("initial_value").map(|v| match v.rfind("> :") {
                Some(i) => v[..i + 1].trim().to_string(),
                None => v.trim().to_string(),
            });
            c.expect(":")?;
            let ty = c.ty()?;
            let initial_value = if dict_value.is_some() {
                dict_value
            } else if c.eat("=") {
                c.ws();
                let v = c.rest().trim_end().to_string();
                if v.is_empty() {
                    return Err(c.err("expected an initial value after `=`"));
                }
                c.pos = c.s.len();
                Some(v)
            } else {
                None
            };
            AieOp::Buffer {
                tile,
                ty,
                sym_name,
                address,
                mem_bank,
                initial_value,
            }
        }
        "aie.end" => AieOp::End,
        "aie.objectfifo.acquire" | "aie.objectfifo.release" => {
            let fifo = c.symbol()?;
            c.expect("(")?;
            let port = parse_port(&mut c)?;
            c.expect(",")?;
            let size = c.int()?;
            c.expect(")")?;
            if name == "aie.objectfifo.release" {
                AieOp::Release { fifo, port, size }
            } else {
                c.expect(":")?;
                let ty = c.ty()?;
                let elem_type = inner_of(&ty, "!aie.objectfifosubview", &c)?;
                AieOp::Acquire { fifo, port, size, elem_type }
            }
        }
        "aie.objectfifo.subview.access" => {
            let subview = c.ssa()?;
            c.expect("[")?;
            let index = c.int()?;
            c.expect("]")?;
            c.expect(":")?;
            let ty = c.ty()?;
            let elem_type = inner_of(&ty, "!aie.objectfifosubview", &c)?;
            c.expect("->")?;
            let out = c.ty()?;
            if out != elem_type {
                return Err(c.err(format!("result type `{out}` is not the subview's element type `{elem_type}`")));
            }
            AieOp::Access { subview, index, elem_type }
        }
        "aie.runtime_sequence" => {
            c.ws();
            let sym_name = if c.rest().starts_with('@') { Some(c.symbol()?) } else { None };
            let args = c.list("(", ")", |c| {
                let n = c.ssa()?;
                c.expect(":")?;
                Ok((n, c.ty()?))
            })?;
            c.expect("{")?;
            AieOp::RuntimeSequence { sym_name, args }
        }
        "aiex.npu.dma_memcpy_nd" => {
            c.expect("(")?;
            c.ws();
            if !c.rest().starts_with('%') {
                return Err(SyntaxError::Unsupported {
                    line,
                    op: name.into(),
                    why: "the old form with leading x, y operands".into(),
                });
            }
            let memref = c.ssa()?;
            let offsets = c.list("[", "]", parse_dma_index)?;
            let sizes = c.list("[", "]", parse_dma_index)?;
            let strides = c.list("[", "]", parse_dma_index)?;
            for (what, l) in [("offsets", &offsets), ("sizes", &sizes), ("strides", &strides)] {
                if l.len() != 4 {
                    return Err(c.err(format!("{what} must have 4 entries, found {}", l.len())));
                }
            }
            let packet = if c.eat(",") {
                c.expect("packet")?;
                c.expect("=")?;
                let d = c.dict("<", ">")?;
                no_extra_keys(&d, &["pkt_type", "pkt_id"], &c)?;
                let t = int_value(d.get("pkt_type").map(String::as_str).unwrap_or("0"), &c, "pkt_type", "i32")?;
                let i = int_value(d.get("pkt_id").ok_or_else(|| c.err("missing `pkt_id`"))?, &c, "pkt_id", "i32")?;
                Some((t, i))
            } else {
                None
            };
            c.expect(")")?;
            let d = c.dict("{", "}")?;
            no_extra_keys(&d, &["id", "metadata", "issue_token"], &c)?;
            let metadata = symbol_value(d.get("metadata").ok_or_else(|| c.err("missing `metadata`"))?, &c, "metadata")?;
            let id = int_value(d.get("id").ok_or_else(|| c.err("missing `id`"))?, &c, "id", "i64")?;
            let issue_token = d.get("issue_token").map(|v| bool_value(v, &c, "issue_token")).transpose()?;
            c.expect(":")?;
            let memref_type = c.ty()?;
            AieOp::DmaMemcpyNd {
                memref,
                offsets,
                sizes,
                strides,
                metadata,
                id,
                issue_token,
                memref_type,
                packet,
            }
        }
        "aiex.npu.dma_wait" => {
            let d = c.dict("{", "}")?;
            no_extra_keys(&d, &["symbol"], &c)?;
            let symbol = symbol_value(d.get("symbol").ok_or_else(|| c.err("missing `symbol`"))?, &c, "symbol")?;
            AieOp::DmaWait { symbol }
        }
        _ => return Err(unsupported(line, name)),
    };
    if !c.at_end() {
        let near: String = c.rest().chars().take(30).collect();
        return Err(c.err(format!("unexpected `{near}`")));
    }
    Ok(op)
}

/// Analyses a design in mlir-aie's custom syntax line by line.
pub fn parse_custom(text: &str) -> Result<Vec<Line>, SyntaxError> {
    let mut stack: Vec<RegionKind> = Vec::new();
    let mut out = Vec::new();
    let mut region_attrs = String::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let (code, comment) = split_comment(raw);
        let indent = indent_of(code).to_string();
        let (result, rest) = split_result(code);
        let item = if let Some(name) = aie_op_name(rest) {
            let op = if let Some(hw) = HW_OPS.iter().copied().find(|n| *n == name) {
                AieOp::Hw {
                    name: hw,
                    text: rest.trim().to_string(),
                }
            } else {
                let sname = static_name(name).ok_or_else(|| unsupported(number, name))?;
                parse_custom_op(sname, rest.trim_end(), number)?
            };
            if let Some(kind) = op.opens_region() {
                stack.push(kind);
            }
            LineItem::Op {
                result: result.map(|r| r.to_string()),
                op: Box::new(op),
            }
        } else {
            let mut item = LineItem::Plain;
            region_attrs.clear();
            for (k, b) in braces(code).into_iter().enumerate() {
                if b == '{' {
                    stack.push(RegionKind::Other);
                    continue;
                }
                let kind = stack.pop().ok_or_else(|| SyntaxError::Structure {
                    line: number,
                    message: "`}` without a matching `{`".into(),
                })?;
                if kind == RegionKind::Hw {
                    // `}]`, `}, {`, `} {issue_token = true}`: hardware-level regions are read by the hardware model.
                    if k == 0 {
                        let after = code.trim().strip_prefix('}').map(str::trim).unwrap_or("");
                        if after.starts_with('{') && after.ends_with('}') {
                            region_attrs = after.to_string();
                            item = LineItem::Close(kind);
                            break;
                        }
                        item = LineItem::Close(kind);
                    }
                    continue;
                }
                if kind != RegionKind::Other {
                    // `} {stack_size = 2048 : i32}`: a core's attribute dictionary after its region.
                    let after = code.trim().strip_prefix('}').map(str::trim).unwrap_or("");
                    if k == 0 && kind == RegionKind::Core && after.starts_with('{') && after.ends_with('}') {
                        region_attrs = after.to_string();
                        item = LineItem::Close(kind);
                        break;
                    }
                    if k != 0 || code.trim() != "}" {
                        return Err(SyntaxError::Structure {
                            line: number,
                            message: "the `}` closing an aie.device/aie.core/aie.runtime_sequence must be alone on \
                                      its line (attributes after a region are not supported)"
                                .into(),
                        });
                    }
                    item = LineItem::Close(kind);
                }
            }
            item
        };
        out.push(Line {
            number,
            indent,
            item,
            comment: comment.to_string(),
            text: raw.to_string(),
            region_attrs: std::mem::take(&mut region_attrs),
        });
    }
    if let Some(_kind) = stack.last() {
        return Err(SyntaxError::Structure {
            line: text.lines().count(),
            message: "unclosed region at the end of the text".into(),
        });
    }
    Ok(out)
}

fn join_indices(v: &[DmaIndex]) -> String {
    v.iter()
        .map(|x| match x {
            DmaIndex::Static(n) => n.to_string(),
            DmaIndex::Dynamic(s) => s.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn join<T: ToString>(v: &[T], prefix: &str) -> String {
    v.iter().map(|x| format!("{prefix}{}", x.to_string())).collect::<Vec<_>>().join(", ")
}

/// Prints one op in custom form (without indentation, result or comment).
pub fn print_custom(op: &AieOp) -> String {
    match op {
        AieOp::Device { device, sym_name } => match sym_name {
            Some(s) => format!("aie.device({device}) @{s} {{"),
            None => format!("aie.device({device}) {{"),
        },
        AieOp::Tile { col, row, attrs } => match attrs {
            Some(a) => format!("aie.tile({col}, {row}) {a}"),
            None => format!("aie.tile({col}, {row})"),
        },
        AieOp::ObjectFifo {
            name,
            producer,
            consumers,
            depth,
            elem_type,
        } => format!(
            "aie.objectfifo @{name}({producer}, {{{}}}, {depth} : i32) : {}",
            consumers.join(", "),
            objectfifo_type(elem_type)
        ),
        AieOp::Link {
            fifo_ins,
            fifo_outs,
            src_offsets,
            dst_offsets,
        } => format!(
            "aie.objectfifo.link [{}] -> [{}] ([{}] [{}])",
            join(fifo_ins, "@"),
            join(fifo_outs, "@"),
            join(src_offsets, ""),
            join(dst_offsets, "")
        ),
        AieOp::Core { tile } => format!("aie.core({tile}) {{"),
        AieOp::Buffer {
            tile,
            ty,
            sym_name,
            address,
            mem_bank,
            initial_value,
        } => {
            let mut attrs = Vec::new();
            if let Some(a) = address {
                attrs.push(format!("address = {a} : i32"));
            }
            if let Some(m) = mem_bank {
                attrs.push(format!("mem_bank = {m} : i32"));
            }
            if let Some(s) = sym_name {
                attrs.push(format!("sym_name = \"{s}\""));
            }
            let mut out = format!("aie.buffer({tile})");
            if !attrs.is_empty() {
                out += &format!(" {{{}}}", attrs.join(", "));
            }
            out += &format!(" : {ty}");
            if let Some(v) = initial_value {
                out += &format!(" = {v}");
            }
            out
        }
        AieOp::End => "aie.end".to_string(),
        AieOp::Acquire { fifo, port, size, elem_type } => {
            format!("aie.objectfifo.acquire @{fifo}({}, {size}) : {}", port.name(), subview_type(elem_type))
        }
        AieOp::Access { subview, index, elem_type } => {
            format!("aie.objectfifo.subview.access {subview}[{index}] : {} -> {elem_type}", subview_type(elem_type))
        }
        AieOp::Release { fifo, port, size } => format!("aie.objectfifo.release @{fifo}({}, {size})", port.name()),
        AieOp::RuntimeSequence { sym_name, args } => {
            let a = args.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ");
            match sym_name {
                Some(s) => format!("aie.runtime_sequence @{s}({a}) {{"),
                None => format!("aie.runtime_sequence({a}) {{"),
            }
        }
        AieOp::DmaMemcpyNd {
            memref,
            offsets,
            sizes,
            strides,
            metadata,
            id,
            issue_token,
            memref_type,
            packet,
        } => {
            let tok = match issue_token {
                Some(b) => format!(", issue_token = {b}"),
                None => String::new(),
            };
            let pkt = match packet {
                Some((t, i)) => format!(", packet = <pkt_type = {t}, pkt_id = {i}>"),
                None => String::new(),
            };
            format!(
                "aiex.npu.dma_memcpy_nd({memref}[{}][{}][{}]{pkt}) {{id = {id} : i64, metadata = @{metadata}{tok}}} : \
                 {memref_type}",
                join_indices(offsets),
                join_indices(sizes),
                join_indices(strides)
            )
        }
        AieOp::DmaWait { symbol } => format!("aiex.npu.dma_wait {{symbol = @{symbol}}}"),
        AieOp::Hw { text, .. } => text.clone(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Generic form.

const UNNAMED_PREFIX: &str = "%aiec_unnamed_";

/// The generic form of the hardware-level ops that core code refers to (locks and their uses); the others
/// have none here.
fn hw_generic(name: &str, text: &str, result: &str) -> String {
    let operand = text.find('%').map(|i| {
        let r = &text[i + 1..];
        let n = r.find(|c: char| !(c.is_ascii_alphanumeric() || "_$.-".contains(c))).unwrap_or(r.len());
        format!("%{}", &r[..n])
    });
    match (name, operand) {
        ("aie.lock", Some(t)) => format!("{result} = \"aie.lock\"({t}) : (index) -> index"),
        ("aie.use_lock", Some(l)) => format!("\"aie.use_lock\"({l}) : (index) -> ()"),
        _ => String::new(),
    }
}

/// The value of one inherent attribute (a property) of an op's generic form.
#[derive(Debug, Clone, PartialEq)]
pub enum Property {
    /// `N : i32`.
    I32(i64),
    /// `N : i64`.
    I64(i64),
    /// `"text"`.
    Str(String),
    /// `@name`.
    Symbol(String),
    /// `[@a, @b]`.
    Symbols(Vec<String>),
    /// `[1, 2]`: integers of MLIR's default attribute type, i64.
    Ints(Vec<i64>),
    /// `array<i32: ...>`.
    DenseI32(Vec<i32>),
    /// `array<i64: ...>`.
    DenseI64(Vec<i64>),
    /// `true` or `false`.
    Bool(bool),
    /// A type attribute of the aie dialect, spelled (`!aie.objectfifo<T>`).
    AieType(String),
    /// Any other attribute, spelled: the aie dialect's (`#aie<...>`, `#aie.packet_info<...>`) or
    /// an elements attribute with its type.
    Spelled(String),
}

impl Property {
    /// The property as the generic form writes it.
    pub fn spelling(&self) -> String {
        let list = |v: Vec<String>| v.join(", ");
        match self {
            Property::I32(v) => format!("{v} : i32"),
            Property::I64(v) => format!("{v} : i64"),
            Property::Str(v) => format!("\"{v}\""),
            Property::Symbol(v) => format!("@{v}"),
            Property::Symbols(v) => format!("[{}]", list(v.iter().map(|n| format!("@{n}")).collect())),
            Property::Ints(v) => format!("[{}]", list(v.iter().map(|n| n.to_string()).collect())),
            Property::DenseI32(v) => format!("array<i32: {}>", list(v.iter().map(|n| n.to_string()).collect())),
            Property::DenseI64(v) => format!("array<i64: {}>", list(v.iter().map(|n| n.to_string()).collect())),
            Property::Bool(v) => v.to_string(),
            Property::AieType(v) | Property::Spelled(v) => v.clone(),
        }
    }
}

/// `!aie.objectfifo<T>` for an element type `T`.
pub fn objectfifo_type(elem_type: &str) -> String {
    format!("!aie.objectfifo<{elem_type}>")
}

/// `!aie.objectfifosubview<T>` for an element type `T`.
pub fn subview_type(elem_type: &str) -> String {
    format!("!aie.objectfifosubview<{elem_type}>")
}

impl AieOp {
    /// The op's properties in its generic form, sorted by name: the one description of them that
    /// [`custom_to_generic`] prints and that a typed builder (aiec's lowering) builds from.
    pub fn properties(&self) -> Vec<(&'static str, Property)> {
        let mut kv = match self {
            AieOp::Device { device, sym_name } => {
                let mut kv = vec![("device", Property::I32(device_value(device).unwrap_or(0)))];
                if let Some(s) = sym_name {
                    kv.push(("sym_name", Property::Str(s.clone())));
                }
                kv
            }
            AieOp::Tile { col, row, .. } => vec![("col", Property::I32(*col)), ("row", Property::I32(*row))],
            AieOp::ObjectFifo {
                name,
                consumers,
                depth,
                elem_type,
                ..
            } => {
                let per_consumer = vec!["[]"; consumers.len()].join(", ");
                vec![
                    (
                        "dimensionsFromStreamPerConsumer",
                        Property::Spelled(format!("#aie<bd_dim_layout_array_array[{per_consumer}]>")),
                    ),
                    ("dimensionsToStream", Property::Spelled("#aie<bd_dim_layout_array[]>".to_string())),
                    ("elemNumber", Property::I32(*depth)),
                    ("elemType", Property::AieType(objectfifo_type(elem_type))),
                    ("sym_name", Property::Str(name.clone())),
                ]
            }
            AieOp::Link {
                fifo_ins,
                fifo_outs,
                src_offsets,
                dst_offsets,
            } => vec![
                ("dst_offsets", Property::Ints(dst_offsets.clone())),
                ("fifoIns", Property::Symbols(fifo_ins.clone())),
                ("fifoOuts", Property::Symbols(fifo_outs.clone())),
                ("src_offsets", Property::Ints(src_offsets.clone())),
            ],
            AieOp::Buffer {
                ty,
                sym_name,
                address,
                mem_bank,
                initial_value,
                ..
            } => {
                let mut kv = Vec::new();
                if let Some(a) = address {
                    kv.push(("address", Property::I32(*a)));
                }
                if let Some(v) = initial_value {
                    let tensor = tensor_type_of_memref(ty).unwrap_or_else(|| ty.clone());
                    kv.push(("initial_value", Property::Spelled(format!("{v} : {tensor}"))));
                }
                if let Some(m) = mem_bank {
                    kv.push(("mem_bank", Property::I32(*m)));
                }
                if let Some(s) = sym_name {
                    kv.push(("sym_name", Property::Str(s.clone())));
                }
                kv
            }
            AieOp::Acquire { fifo, port, size, .. } => vec![
                ("objFifo_name", Property::Symbol(fifo.clone())),
                ("port", Property::I32(port.value())),
                ("size", Property::I32(*size)),
            ],
            AieOp::Access { index, .. } => vec![("index", Property::I32(*index))],
            AieOp::Release { fifo, port, size } => vec![
                ("objFifo_name", Property::Symbol(fifo.clone())),
                ("port", Property::I32(port.value())),
                ("size", Property::I32(*size)),
            ],
            AieOp::RuntimeSequence { sym_name, .. } => sym_name.iter().map(|s| ("sym_name", Property::Str(s.clone()))).collect(),
            AieOp::DmaMemcpyNd {
                offsets,
                sizes,
                strides,
                metadata,
                id,
                issue_token,
                packet,
                ..
            } => {
                let statics = |l: &[DmaIndex]| -> (i32, Property) {
                    let dynamic = l.iter().filter(|x| matches!(x, DmaIndex::Dynamic(_))).count() as i32;
                    let values = l
                        .iter()
                        .map(|x| match x {
                            DmaIndex::Static(v) => *v,
                            DmaIndex::Dynamic(_) => DYNAMIC_INDEX,
                        })
                        .collect();
                    (dynamic, Property::DenseI64(values))
                };
                let (no, so) = statics(offsets);
                let (ns, ss) = statics(sizes);
                let (nt, st) = statics(strides);
                let mut kv = vec![
                    ("id", Property::I64(*id)),
                    ("metadata", Property::Symbol(metadata.clone())),
                    ("operandSegmentSizes", Property::DenseI32(vec![1, no, ns, nt])),
                    ("static_offsets", so),
                    ("static_sizes", ss),
                    ("static_strides", st),
                ];
                if let Some(b) = issue_token {
                    kv.push(("issue_token", Property::Bool(*b)));
                }
                if let Some((t, i)) = packet {
                    kv.push(("packet", Property::Spelled(format!("#aie.packet_info<pkt_type = {t}, pkt_id = {i}>"))));
                }
                kv
            }
            AieOp::DmaWait { symbol } => vec![("symbol", Property::Symbol(symbol.clone()))],
            AieOp::Core { .. } | AieOp::End | AieOp::Hw { .. } => Vec::new(),
        };
        kv.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        kv
    }
}

/// Prints one op in generic form, with `result` (which it needs for ops that have one).
fn print_generic(op: &AieOp, result: &str) -> String {
    let kv = op.properties();
    let props = if kv.is_empty() {
        String::new()
    } else {
        let body = kv.iter().map(|(k, v)| format!("{k} = {}", v.spelling())).collect::<Vec<_>>().join(", ");
        format!(" <{{{body}}}>")
    };
    match op {
        AieOp::Device { .. } => format!("\"aie.device\"(){props} ({{"),
        AieOp::Tile { attrs, .. } => format!(
            "{result} = \"aie.tile\"(){props}{} : () -> index",
            attrs.as_ref().map(|a| format!(" {a}")).unwrap_or_default()
        ),
        AieOp::ObjectFifo { producer, consumers, .. } => {
            let mut operands = vec![producer.clone()];
            operands.extend(consumers.iter().cloned());
            format!(
                "\"aie.objectfifo\"({}){props} : ({}) -> ()",
                operands.join(", "),
                vec!["index"; operands.len()].join(", ")
            )
        }
        AieOp::Link { .. } => format!("\"aie.objectfifo.link\"(){props} : () -> ()"),
        AieOp::Core { tile } => format!("{result} = \"aie.core\"({tile}) ({{"),
        AieOp::Buffer { tile, ty, .. } => format!("{result} = \"aie.buffer\"({tile}){props} : (index) -> {ty}"),
        AieOp::End => "\"aie.end\"() : () -> ()".to_string(),
        AieOp::Acquire { elem_type, .. } => {
            format!("{result} = \"aie.objectfifo.acquire\"(){props} : () -> {}", subview_type(elem_type))
        }
        AieOp::Access { subview, elem_type, .. } => format!(
            "{result} = \"aie.objectfifo.subview.access\"({subview}){props} : ({}) -> {elem_type}",
            subview_type(elem_type)
        ),
        AieOp::Release { .. } => format!("\"aie.objectfifo.release\"(){props} : () -> ()"),
        AieOp::RuntimeSequence { args, .. } => {
            let a = args.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ");
            format!("\"aie.runtime_sequence\"(){props} ({{ ^bb0({a}):")
        }
        AieOp::DmaMemcpyNd {
            memref,
            offsets,
            sizes,
            strides,
            memref_type,
            ..
        } => {
            let mut operands = vec![memref.clone()];
            let mut types = vec![memref_type.clone()];
            for x in offsets.iter().chain(sizes).chain(strides) {
                if let DmaIndex::Dynamic(name) = x {
                    operands.push(name.clone());
                    types.push("i64".into());
                }
            }
            format!("\"aiex.npu.dma_memcpy_nd\"({}){props} : ({}) -> ()", operands.join(", "), types.join(", "))
        }
        AieOp::DmaWait { .. } => format!("\"aiex.npu.dma_wait\"(){props} : () -> ()"),
        AieOp::Hw { name, text } => hw_generic(name, text, result),
    }
}

/// Rewrites every supported aie/aiex op of a custom-syntax design into generic form, one line for one line.
pub fn custom_to_generic(text: &str) -> Result<String, SyntaxError> {
    let lines = parse_custom(text)?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut unnamed = 0usize;
    // Per open device: whether an explicit aie.end was written directly inside it.
    let mut stack: Vec<(RegionKind, bool)> = Vec::new();
    // Hardware-level designs: the generic text keeps locks and lock uses (so that core code referring to
    // them parses) and leaves the other hardware-level lines, and the globals only they use, empty.
    let has_hw = lines
        .iter()
        .any(|l| matches!(&l.item, LineItem::Op { op, .. } if matches!(**op, AieOp::Hw { .. })));
    for l in &lines {
        let in_hw = stack.iter().any(|(k, _)| *k == RegionKind::Hw);
        let blank = match &l.item {
            _ if in_hw => true,
            LineItem::Op { op, .. } => match &**op {
                AieOp::Hw { name, .. } => !matches!(*name, "aie.lock" | "aie.use_lock"),
                _ => false,
            },
            LineItem::Plain => {
                has_hw && (split_comment(&l.text).0.contains("memref.get_global") || split_comment(&l.text).0.trim_start().starts_with("memref.global"))
            }
            _ => false,
        };
        if blank {
            match &l.item {
                LineItem::Plain => {
                    for b in braces(split_comment(&l.text).0) {
                        if b == '{' {
                            stack.push((RegionKind::Other, false));
                        } else {
                            stack.pop();
                        }
                    }
                }
                LineItem::Op { op, .. } => {
                    if let Some(kind) = op.opens_region() {
                        stack.push((kind, false));
                    }
                }
                LineItem::Close(_) => {
                    stack.pop();
                    // `}, {` in an aie.dma op opens the next descriptor's region.
                    if split_comment(&l.text).0.trim_end().ends_with('{') {
                        stack.push((RegionKind::Other, false));
                    }
                }
            }
            out.push('\n');
            continue;
        }
        match &l.item {
            LineItem::Plain => {
                for b in braces(split_comment(&l.text).0) {
                    if b == '{' {
                        stack.push((RegionKind::Other, false));
                    } else {
                        stack.pop();
                    }
                }
                out.push_str(&l.text);
            }
            LineItem::Op { result, op } => {
                let op: &AieOp = op;
                if matches!(op, AieOp::End) {
                    if let Some(top) = stack.last_mut() {
                        top.1 = true;
                    }
                }
                if let Some(kind) = op.opens_region() {
                    stack.push((kind, false));
                }
                let result = match result {
                    Some(r) => r.clone(),
                    None => {
                        unnamed += 1;
                        format!("{UNNAMED_PREFIX}{unnamed}")
                    }
                };
                out.push_str(&l.indent);
                out.push_str(&print_generic(op, &result));
                if !l.comment.is_empty() {
                    out.push(' ');
                    out.push_str(&l.comment);
                }
            }
            LineItem::Close(kind) => {
                let (_, had_end) = stack.pop().unwrap_or((*kind, false));
                out.push_str(&l.indent);
                let close = match kind {
                    RegionKind::Device if !had_end => "\"aie.end\"() : () -> () }) : () -> ()".to_string(),
                    RegionKind::Core if !l.region_attrs.is_empty() => format!("}}) {} : (index) -> index", l.region_attrs),
                    RegionKind::Core => "}) : (index) -> index".to_string(),
                    _ => "}) : () -> ()".to_string(),
                };
                out.push_str(&close);
                if !l.comment.is_empty() {
                    out.push(' ');
                    out.push_str(&l.comment);
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn parse_generic_op(name: &'static str, text: &str, line: usize) -> Result<AieOp, SyntaxError> {
    let mut c = Cursor::new(text, line, name);
    c.pos = name.len() + 2;
    let operands = c.list("(", ")", |c| c.ssa())?;
    c.ws();
    let mut d = if c.rest().starts_with("<{") { c.dict("<{", "}>")? } else { HashMap::new() };
    // Ops built with attributes instead of properties print them as a trailing attribute dictionary.
    c.ws();
    if c.rest().starts_with('{') {
        for (k, v) in c.dict("{", "}")? {
            d.entry(k).or_insert(v);
        }
    }
    let get = |k: &str| {
        d.get(k).ok_or_else(|| SyntaxError::Malformed {
            line,
            op: name.to_string(),
            message: format!("missing property `{k}`"),
        })
    };
    let port = |c: &Cursor| -> Result<Port, SyntaxError> {
        match int_value(get("port")?, c, "port", "i32")? {
            0 => Ok(Port::Produce),
            1 => Ok(Port::Consume),
            v => Err(c.err(format!("unknown port value {v}"))),
        }
    };
    let dense = |c: &Cursor, key: &str| -> Result<Vec<i64>, SyntaxError> {
        let v = get(key)?;
        let inner = v
            .strip_prefix("array<i64:")
            .or_else(|| v.strip_prefix("array<i64 :"))
            .and_then(|s| s.strip_suffix('>'))
            .ok_or_else(|| c.err(format!("`{key}` must be array<i64: ...>, found `{v}`")))?;
        inner.split(',').map(|s| int_value(s.trim(), c, key, "i64")).collect()
    };
    let sym_list = |c: &Cursor, key: &str| -> Result<Vec<String>, SyntaxError> {
        let v = get(key)?;
        let mut vc = Cursor::new(v, line, name);
        let l = vc.list("[", "]", |c| c.symbol())?;
        if !vc.at_end() {
            return Err(c.err(format!("bad `{key}`")));
        }
        Ok(l)
    };
    let int_list = |c: &Cursor, key: &str| -> Result<Vec<i64>, SyntaxError> {
        let v = get(key)?;
        let mut vc = Cursor::new(v, line, name);
        let l = vc.list("[", "]", |c| c.typed_int("i64"))?;
        if !vc.at_end() {
            return Err(c.err(format!("bad `{key}`")));
        }
        Ok(l)
    };
    let string = |c: &Cursor, key: &str| -> Result<String, SyntaxError> {
        let v = get(key)?;
        v.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(|s| s.to_string())
            .ok_or_else(|| c.err(format!("`{key}` must be a string, found `{v}`")))
    };
    let op = match name {
        "aie.device" => {
            let v = int_value(get("device")?, &c, "device", "i32")?;
            let device = device_name(v).ok_or_else(|| c.err(format!("unknown device value {v}")))?.to_string();
            let sym_name = if d.contains_key("sym_name") { Some(string(&c, "sym_name")?) } else { None };
            AieOp::Device { device, sym_name }
        }
        "aie.tile" => AieOp::Tile {
            col: int_value(get("col")?, &c, "col", "i32")?,
            row: int_value(get("row")?, &c, "row", "i32")?,
            attrs: None,
        },
        "aie.objectfifo" => {
            let (producer, consumers) = operands.split_first().ok_or_else(|| c.err("expected a producer tile operand"))?;
            let ty = get("elemType")?;
            AieOp::ObjectFifo {
                name: string(&c, "sym_name")?,
                producer: producer.clone(),
                consumers: consumers.to_vec(),
                depth: int_value(get("elemNumber")?, &c, "elemNumber", "i32")?,
                elem_type: inner_of(ty, "!aie.objectfifo", &c)?,
            }
        }
        "aie.objectfifo.link" => AieOp::Link {
            fifo_ins: sym_list(&c, "fifoIns")?,
            fifo_outs: sym_list(&c, "fifoOuts")?,
            src_offsets: int_list(&c, "src_offsets")?,
            dst_offsets: int_list(&c, "dst_offsets")?,
        },
        "aie.core" => AieOp::Core {
            tile: operands.first().cloned().ok_or_else(|| c.err("expected a tile operand"))?,
        },
        "aie.buffer" => {
            let tile = match operands.as_slice() {
                [t] => t.clone(),
                _ => return Err(c.err(format!("expected one tile operand, found {}", operands.len()))),
            };
            c.expect(":")?;
            c.expect("(")?;
            let operand_type = c.ty()?;
            if operand_type != "index" {
                return Err(c.err(format!("the tile operand must be an `index`, found `{operand_type}`")));
            }
            c.expect(")")?;
            c.expect("->")?;
            let ty = c.ty()?;
            let tensor = tensor_type_of_memref(&ty).ok_or_else(|| c.err(format!("expected a memref result type, found `{ty}`")))?;
            let initial_value = match d.get("initial_value") {
                None => None,
                Some(v) => {
                    // `dense<...> : tensor<...>`: the custom form leaves the type, which the memref implies, out.
                    let (value, value_type) = v.rsplit_once(" : ").ok_or_else(|| c.err(format!("`initial_value` without a type: `{v}`")))?;
                    if value_type.trim() != tensor {
                        return Err(c.err(format!("`initial_value` has type `{}`, expected `{tensor}`", value_type.trim())));
                    }
                    Some(value.trim().to_string())
                }
            };
            AieOp::Buffer {
                tile,
                ty,
                sym_name: if d.contains_key("sym_name") { Some(string(&c, "sym_name")?) } else { None },
                address: d.get("address").map(|v| int_value(v, &c, "address", "i32")).transpose()?,
                mem_bank: d.get("mem_bank").map(|v| int_value(v, &c, "mem_bank", "i32")).transpose()?,
                initial_value,
            }
        }
        "aie.end" => AieOp::End,
        "aie.objectfifo.acquire" | "aie.objectfifo.release" => {
            let fifo = symbol_value(get("objFifo_name")?, &c, "objFifo_name")?;
            let port = port(&c)?;
            let size = int_value(get("size")?, &c, "size", "i32")?;
            if name == "aie.objectfifo.release" {
                AieOp::Release { fifo, port, size }
            } else {
                c.expect(":")?;
                c.expect("(")?;
                c.expect(")")?;
                c.expect("->")?;
                let ty = c.ty()?;
                AieOp::Acquire {
                    fifo,
                    port,
                    size,
                    elem_type: inner_of(&ty, "!aie.objectfifosubview", &c)?,
                }
            }
        }
        "aie.objectfifo.subview.access" => {
            c.expect(":")?;
            c.expect("(")?;
            let ty = c.ty()?;
            AieOp::Access {
                subview: operands.first().cloned().ok_or_else(|| c.err("expected a subview operand"))?,
                index: int_value(get("index")?, &c, "index", "i32")?,
                elem_type: inner_of(&ty, "!aie.objectfifosubview", &c)?,
            }
        }
        "aie.runtime_sequence" => {
            let sym_name = if d.contains_key("sym_name") { Some(string(&c, "sym_name")?) } else { None };
            c.expect("({")?;
            let mut args = Vec::new();
            if c.eat("^bb0") {
                args = c.list("(", ")", |c| {
                    let n = c.ssa()?;
                    c.expect(":")?;
                    Ok((n, c.ty()?))
                })?;
                c.expect(":")?;
            }
            AieOp::RuntimeSequence { sym_name, args }
        }
        "aiex.npu.dma_memcpy_nd" => {
            let seg = get("operandSegmentSizes")?;
            let seg: Vec<i64> = seg
                .strip_prefix("array<i32:")
                .and_then(|s| s.strip_suffix('>'))
                .ok_or_else(|| c.err("bad operandSegmentSizes"))?
                .split(',')
                .map(|s| s.trim().parse::<i64>().map_err(|_| c.err("bad operandSegmentSizes")))
                .collect::<Result<_, _>>()?;
            if seg.len() != 4 || seg[0] != 1 || seg.iter().sum::<i64>() as usize != operands.len() {
                return Err(c.err("operandSegmentSizes does not match the operands"));
            }
            let mut dynamic = operands[1..].iter();
            let mut take = |key: &str, n: i64| -> Result<Vec<DmaIndex>, SyntaxError> {
                let s = dense(&c, key)?;
                if s.len() != 4 {
                    return Err(c.err(format!("`{key}` must have 4 entries")));
                }
                let out: Vec<DmaIndex> = s
                    .into_iter()
                    .map(|v| {
                        if v == DYNAMIC_INDEX {
                            dynamic.next().map(|d| DmaIndex::Dynamic(d.clone())).ok_or_else(|| c.err("too few operands"))
                        } else {
                            Ok(DmaIndex::Static(v))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                let nd = out.iter().filter(|x| matches!(x, DmaIndex::Dynamic(_))).count() as i64;
                if nd != n {
                    return Err(c.err(format!("`{key}` has {nd} dynamic entries but its operand segment {n}")));
                }
                Ok(out)
            };
            let offsets = take("static_offsets", seg[1])?;
            let sizes = take("static_sizes", seg[2])?;
            let strides = take("static_strides", seg[3])?;
            c.expect(":")?;
            c.expect("(")?;
            let memref_type = c.ty()?;
            AieOp::DmaMemcpyNd {
                memref: operands[0].clone(),
                offsets,
                sizes,
                strides,
                metadata: symbol_value(get("metadata")?, &c, "metadata")?,
                id: int_value(get("id")?, &c, "id", "i64")?,
                issue_token: d.get("issue_token").map(|v| bool_value(v, &c, "issue_token")).transpose()?,
                memref_type,
                packet: None,
            }
        }
        "aiex.npu.dma_wait" => AieOp::DmaWait {
            symbol: symbol_value(get("symbol")?, &c, "symbol")?,
        },
        _ => return Err(unsupported(line, name)),
    };
    Ok(op)
}

/// The inverse of [`custom_to_generic`]: rewrites the generic-form aie/aiex ops into mlir-aie's custom syntax.
/// Also reads MLIR's own printing of such a module (entry block labels on their own line, `aie.end` of the
/// device on its own line).
pub fn generic_to_custom(text: &str) -> Result<String, SyntaxError> {
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<RegionKind> = Vec::new();
    let all: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < all.len() {
        let number = i + 1;
        let raw = all[i];
        i += 1;
        let (code, comment) = split_comment(raw);
        let indent = indent_of(code);
        let (result, rest) = split_result(code);
        let trimmed = rest.trim_end();
        let emit = |out: &mut String, s: &str| {
            out.push_str(indent);
            out.push_str(s);
            if !comment.is_empty() {
                out.push(' ');
                out.push_str(comment);
            }
            out.push('\n');
        };
        if let Some(quoted) = trimmed.strip_prefix('"') {
            let name_end = quoted.find('"').unwrap_or(0);
            let name = &quoted[..name_end];
            if name.starts_with("aie.") || name.starts_with("aiex.") {
                let sname = static_name(name).ok_or_else(|| unsupported(number, name))?;
                // The device's implicit terminator written on the line of its closing brace.
                if sname == "aie.end" && trimmed.ends_with("}) : () -> ()") && trimmed.contains("})") {
                    match stack.pop() {
                        Some(RegionKind::Device) => {
                            emit(&mut out, "}");
                            continue;
                        }
                        _ => {
                            return Err(SyntaxError::Structure {
                                line: number,
                                message: "`aie.end` with a closing brace outside an aie.device".into(),
                            })
                        }
                    }
                }
                let mut text = trimmed.to_string();
                // MLIR prints a region's entry block label on the next line.
                if sname == "aie.runtime_sequence" && text.ends_with("({") {
                    if let Some(next) = all.get(i) {
                        let n = next.trim();
                        if n.starts_with("^bb") {
                            text.push(' ');
                            text.push_str(n);
                            i += 1;
                        }
                    }
                }
                let op = parse_generic_op(sname, &text, number)?;
                if let Some(kind) = op.opens_region() {
                    stack.push(kind);
                }
                let custom = print_custom(&op);
                match result.filter(|r| !r.starts_with(UNNAMED_PREFIX)) {
                    Some(r) => emit(&mut out, &format!("{r} = {custom}")),
                    None => emit(&mut out, &custom),
                }
                continue;
            }
        }
        if let Some(after_close) = trimmed.strip_prefix("})") {
            match stack.pop() {
                Some(RegionKind::Other) | None => {}
                Some(RegionKind::Core) => {
                    let attrs = after_close.trim().strip_suffix(": (index) -> index").map(str::trim).unwrap_or("");
                    if attrs.starts_with('{') {
                        emit(&mut out, &format!("}} {attrs}"));
                    } else {
                        emit(&mut out, "}");
                    }
                    continue;
                }
                Some(_) => {
                    emit(&mut out, "}");
                    continue;
                }
            }
            out.push_str(raw);
            out.push('\n');
            continue;
        }
        for b in braces(code) {
            if b == '{' {
                stack.push(RegionKind::Other);
            } else {
                stack.pop();
            }
        }
        out.push_str(raw);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_round_trip() {
        let c = "  %t = aie.tile(0, 2)\n";
        let g = custom_to_generic(c).unwrap();
        assert_eq!(g, "  %t = \"aie.tile\"() <{col = 0 : i32, row = 2 : i32}> : () -> index\n");
        assert_eq!(generic_to_custom(&g).unwrap(), c);
    }

    #[test]
    fn device_symbol_and_implicit_terminator() {
        let c = "aie.device(npu2_4col) @dev {\n  %t = aie.tile(1, 2)\n}\n";
        let g = custom_to_generic(c).unwrap();
        assert_eq!(
            g,
            "\"aie.device\"() <{device = 12 : i32, sym_name = \"dev\"}> ({\n  %t = \"aie.tile\"() <{col = 1 : i32, row = 2 : \
             i32}> : () -> index\n\"aie.end\"() : () -> () }) : () -> ()\n"
        );
        assert_eq!(generic_to_custom(&g).unwrap(), c);
    }

    #[test]
    fn unknown_generic_aie_op_is_named() {
        let e = generic_to_custom("  \"aie.lock\"(%t) <{id = 0 : i32}> : (index) -> index\n").unwrap_err();
        assert_eq!(e.line(), 1);
        assert!(e.to_string().contains("aie.lock"), "{e}");
    }

    #[test]
    fn buffer_round_trip() {
        let cases = [
            (
                "  %acc = aie.buffer(%t) {sym_name = \"acc\"} : memref<64x64xi32>\n",
                "  %acc = \"aie.buffer\"(%t) <{sym_name = \"acc\"}> : (index) -> memref<64x64xi32>\n",
            ),
            (
                "  %b = aie.buffer(%t) : memref<8xbf16>\n",
                "  %b = \"aie.buffer\"(%t) : (index) -> memref<8xbf16>\n",
            ),
            (
                "  %b = aie.buffer(%t) {address = 4096 : i32, mem_bank = 1 : i32, sym_name = \"b\"} : memref<2x2xi32> = \
                 dense<[[1, 2], [-3, 4]]> // init\n",
                "  %b = \"aie.buffer\"(%t) <{address = 4096 : i32, initial_value = dense<[[1, 2], [-3, 4]]> : \
                 tensor<2x2xi32>, mem_bank = 1 : i32, sym_name = \"b\"}> : (index) -> memref<2x2xi32> // init\n",
            ),
            (
                "  %f = aie.buffer(%t) : memref<4xf32> = dense<1.500000e+00>\n",
                "  %f = \"aie.buffer\"(%t) <{initial_value = dense<1.500000e+00> : tensor<4xf32>}> : (index) -> memref<4xf32>\n",
            ),
        ];
        for (c, g) in cases {
            assert_eq!(custom_to_generic(c).unwrap(), g);
            assert_eq!(generic_to_custom(g).unwrap(), c);
        }
        // Attributes in any order, with or without their type, in the custom form; MLIR's printing of the
        // generic form in any order too.
        let c = "%b = aie.buffer(%t) {sym_name = \"b\", mem_bank = 0, address = 64 : i32} : memref<4xi8>\n";
        let g = custom_to_generic(c).unwrap();
        assert_eq!(
            g,
            "%b = \"aie.buffer\"(%t) <{address = 64 : i32, mem_bank = 0 : i32, sym_name = \"b\"}> : (index) -> memref<4xi8>\n"
        );
        assert_eq!(
            generic_to_custom(&g).unwrap(),
            "%b = aie.buffer(%t) {address = 64 : i32, mem_bank = 0 : i32, sym_name = \"b\"} : memref<4xi8>\n"
        );
        let g = "%0 = \"aie.buffer\"(%1) <{sym_name = \"x\", initial_value = dense<\"0x01000000\"> : tensor<1xi32>}> : (index) -> memref<1xi32>\n";
        assert_eq!(
            generic_to_custom(g).unwrap(),
            "%0 = aie.buffer(%1) {sym_name = \"x\"} : memref<1xi32> = dense<\"0x01000000\">\n"
        );
    }

    #[test]
    fn malformed_buffers_are_errors() {
        let bad_custom = [
            ("%b = aie.buffer(%t) {sym_name = \"b\", bank = 1 : i32} : memref<4xi32>", "attribute `bank`"),
            ("%b = aie.buffer(%t) {sym_name = b} : memref<4xi32>", "must be a string"),
            ("%b = aie.buffer(%t) : memref<4xi32> =", "initial value"),
            ("%b = aie.buffer(%t) {address = 1 : i64} : memref<4xi32>", "address"),
        ];
        for (line, what) in bad_custom {
            let e = custom_to_generic(&format!("{line}\n")).unwrap_err();
            assert_eq!(e.line(), 1);
            assert!(e.to_string().contains("aie.buffer") && e.to_string().contains(what), "{line}: {e}");
        }
        let bad_generic = [
            (
                "%b = \"aie.buffer\"(%t) <{initial_value = dense<1> : tensor<8xi32>}> : (index) -> memref<4xi32>",
                "expected `tensor<4xi32>`",
            ),
            ("%b = \"aie.buffer\"() : () -> memref<4xi32>", "one tile operand"),
        ];
        for (line, what) in bad_generic {
            let e = generic_to_custom(&format!("{line}\n")).unwrap_err();
            assert!(e.to_string().contains(what), "{line}: {e}");
        }
    }

    #[test]
    fn lower_level_ops_are_named() {
        let e = custom_to_generic("aie.device(npu1) {\n  aie.switchbox(%t) {\n}\n").unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("aie.switchbox"), "{e}");
        assert!(e.to_string().contains("not modelled"), "{e}");
        // Locks become generic ops that core code can refer to; other hardware-level lines are left empty.
        let g = custom_to_generic("aie.device(npu1) {\n  %l = aie.lock(%t, 0) {init = 1 : i32}\n  aie.flow(%t, DMA : 0, %u, DMA : 0)\n}\n").unwrap();
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(lines[1].trim(), "%l = \"aie.lock\"(%t) : (index) -> index");
        assert_eq!(lines[2].trim(), "");
    }
}
