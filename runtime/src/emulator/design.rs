//! The emulator's model of a design: tiles, object FIFOs, links, buffers, cores and the runtime sequence,
//! read from the aie/aiex lines of an mlir-aie design and checked before anything runs.

use crate::aie_syntax::{AieOp, DmaIndex, Line, LineItem, Port, RegionKind};
use crate::artifact::{ArgDirection, ArgSpec, DType};
use std::collections::HashMap;

/// A design error: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DesignError {
    /// The line of the op at fault (1-based).
    pub line: usize,
    /// What is wrong, naming the op.
    pub message: String,
}

pub(crate) fn err<T>(line: usize, message: impl Into<String>) -> Result<T, DesignError> {
    Err(DesignError { line, message: message.into() })
}

/// The host memory one run may use for the design's own storage: the runtime-sequence arguments, every slot
/// of every object FIFO and every `aie.buffer`, added up. A design needing more is an error naming the op,
/// its line and the amount, raised before anything is allocated.
pub const HOST_MEMORY_LIMIT: u64 = 4 << 30;

/// The deepest object FIFO the emulator models (each slot is a separate argument of the core functions).
pub const MAX_FIFO_DEPTH: i64 = 256;

/// `1234 bytes` / `17179869184 bytes (16.0 GiB)`.
pub fn show_bytes(bytes: u128) -> String {
    if bytes < 1 << 20 {
        format!("{bytes} bytes")
    } else {
        format!("{bytes} bytes ({:.1} GiB)", bytes as f64 / (1u64 << 30) as f64)
    }
}

fn over_limit(what: &str, bytes: u128) -> String {
    format!(
        "{what} needs {}, more than the emulator's host memory limit of {}",
        show_bytes(bytes),
        show_bytes(HOST_MEMORY_LIMIT as u128)
    )
}

/// A `memref<AxBxT>` with an identity layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemrefType {
    pub text: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl MemrefType {
    pub fn parse(text: &str, line: usize) -> Result<MemrefType, DesignError> {
        let bad = || err(line, format!("`{text}`: expected a memref of i8/i16/i32/bf16/f32 with a static shape"));
        let Some(inner) = text.strip_prefix("memref<").and_then(|t| t.strip_suffix('>')) else {
            return bad();
        };
        if inner.contains(',') {
            return err(line, format!("`{text}`: memrefs with a layout or memory space are not supported"));
        }
        let parts: Vec<&str> = inner.split('x').collect();
        let Some((ty, dims)) = parts.split_last() else { return bad() };
        let Some(dtype) = DType::from_mlir(ty.trim()) else { return bad() };
        let mut shape = Vec::new();
        for d in dims {
            match d.trim().parse::<usize>() {
                Ok(v) => shape.push(v),
                Err(_) => return bad(),
            }
        }
        // Element and byte counts are computed with checked arithmetic; a type too big for the host is an error
        // here, so that `elements()` and `bytes()` never overflow.
        let bytes = shape
            .iter()
            .try_fold(dtype.size_bytes() as u128, |acc, &d| acc.checked_mul(d as u128))
            .unwrap_or(u128::MAX);
        if bytes > HOST_MEMORY_LIMIT as u128 {
            return err(line, over_limit(&format!("`{text}`"), bytes));
        }
        Ok(MemrefType {
            text: text.to_string(),
            shape,
            dtype,
        })
    }
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size_bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub col: i64,
    pub row: i64,
}

impl TileId {
    pub fn is_shim(self) -> bool {
        self.row == 0
    }
    pub fn is_mem(self) -> bool {
        self.row == 1
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.col, self.row)
    }
}

#[derive(Debug, Clone)]
pub struct Fifo {
    pub name: String,
    pub line: usize,
    pub producer: TileId,
    pub consumers: Vec<TileId>,
    pub depth: usize,
    pub elem: MemrefType,
}

/// `objectfifo.link`: a forward (1 -> 1), split (1 -> N) or join (N -> 1) through a tile's DMAs.
#[derive(Debug, Clone)]
pub struct Link {
    pub line: usize,
    pub ins: Vec<usize>,
    pub outs: Vec<usize>,
    /// Per input (join) or per output (split, forward): the piece's byte offset and byte length inside the
    /// element of the single FIFO on the other side.
    pub pieces: Vec<(usize, usize)>,
}

/// `aie.buffer`: memory of one tile, which the core of that tile may use as state (it lives for the whole run).
#[derive(Debug, Clone)]
pub struct Buffer {
    /// The SSA name (with its `%`) the core bodies use; empty when the op has no result name.
    pub name: String,
    pub sym_name: Option<String>,
    pub line: usize,
    pub tile: TileId,
    pub ty: MemrefType,
    /// The initial value's attribute text (`dense<...>`, without its type); `None`: zero-initialised.
    pub initial_value: Option<String>,
    /// Byte address in its tile's memory (`address` attribute), which register writes and descriptors
    /// written as registers refer to.
    pub address: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Core {
    pub tile: TileId,
    /// Lines of `aie.core(...) {` and of its closing `}`.
    pub open_line: usize,
    pub close_line: usize,
    /// The buffers the body uses (indices into [`Design::buffers`]), in order of first use.
    pub buffers: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum SeqOp {
    Dma {
        line: usize,
        arg: usize,
        fifo: usize,
        /// Host-side element offset of the pattern's start.
        base: i64,
        sizes: [i64; 4],
        strides: [i64; 4],
        /// true: host -> array (the shim produces the FIFO); false: array -> host.
        to_array: bool,
        /// Index of the shim among the FIFO's consumers (when draining).
        consumer: usize,
    },
    Wait {
        line: usize,
        fifo: usize,
    },
    /// A 32-bit word written into a buffer (`aiex.npu.rtp_write`): buffer, word index, value.
    BufferWrite {
        line: usize,
        buffer: usize,
        word: usize,
        value: u32,
    },
}

#[derive(Debug, Clone)]
pub struct Sequence {
    pub line: usize,
    pub args: Vec<(String, MemrefType)>,
    pub ops: Vec<SeqOp>,
}

#[derive(Debug, Clone)]
pub struct Design {
    pub device: String,
    pub fifos: Vec<Fifo>,
    pub fifo_index: HashMap<String, usize>,
    pub links: Vec<Link>,
    pub buffers: Vec<Buffer>,
    pub cores: Vec<Core>,
    pub sequence: Sequence,
    /// `aie.lock`s (hardware-level designs).
    pub locks: Vec<super::hw::Lock>,
    /// The hardware-level model, for designs written with locks, DMAs and flows instead of object FIFOs.
    pub hw: Option<Box<super::hw::HwModel>>,
}

/// The SSA values (`%name`, with the `%`) a line of MLIR uses or defines, outside string literals.
pub(crate) fn ssa_names(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'%' if !in_str => {
                let n = code[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "_$.-".contains(c)))
                    .unwrap_or(code.len() - i - 1);
                if n > 0 {
                    out.push(&code[i..i + 1 + n]);
                }
                i += n;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn parse_constant(code: &str) -> Option<(String, i64)> {
    // `%c0 = arith.constant 0 : i64` (or `: index`, `: i32`)
    let (lhs, rhs) = code.split_once('=')?;
    let name = lhs.trim();
    let rhs = rhs.trim().strip_prefix("arith.constant")?.trim();
    let (v, _ty) = rhs.split_once(':')?;
    Some((name.to_string(), v.trim().parse().ok()?))
}

/// `#map = affine_map<...>` / `!t = ...`: attribute and type aliases MLIR prints at the top of a module.
pub fn is_alias_definition(code: &str) -> bool {
    let t = code.trim_start();
    (t.starts_with('#') || t.starts_with('!')) && t.contains('=')
}

fn is_blank(code: &str) -> bool {
    let t = code.trim();
    t.is_empty() || t.starts_with("//")
}

fn first_word(code: &str) -> String {
    let t = code.trim();
    let t = match t.split_once('=') {
        Some((l, r)) if l.trim_start().starts_with('%') => r.trim(),
        _ => t,
    };
    t.split(|c: char| c.is_whitespace() || c == '(' || c == '{').next().unwrap_or("").to_string()
}

impl Design {
    /// Builds the model from the analysed lines of a custom-syntax design.
    pub fn from_lines(lines: &[Line]) -> Result<Design, DesignError> {
        if super::hw::is_hw(lines) {
            return super::hw::build(lines);
        }
        let mut tiles: HashMap<String, TileId> = HashMap::new();
        let mut device: Option<String> = None;
        let mut fifos: Vec<Fifo> = Vec::new();
        let mut fifo_index: HashMap<String, usize> = HashMap::new();
        let mut raw_links = Vec::new();
        let mut cores: Vec<Core> = Vec::new();
        let mut buffers: Vec<Buffer> = Vec::new();
        let mut sequence: Option<Sequence> = None;
        let mut raw_seq: Vec<(usize, AieOp)> = Vec::new();
        // `"aiec.buffer_write"` lines, placed among raw_seq by line number below.
        let mut raw_writes: Vec<(usize, String)> = Vec::new();
        let mut constants: HashMap<String, i64> = HashMap::new();
        // Which aie region we are in (innermost aie region kind), with nesting of other braces.
        let mut stack: Vec<RegionKind> = Vec::new();
        let in_kind = |stack: &Vec<RegionKind>, k: RegionKind| stack.contains(&k);
        let tile_of = |tiles: &HashMap<String, TileId>, name: &str, line: usize| -> Result<TileId, DesignError> {
            tiles.get(name).copied().ok_or_else(|| DesignError {
                line,
                message: format!("`{name}` is not an aie.tile"),
            })
        };
        for l in lines {
            let code = crate::aie_syntax::strip_comment(&l.text);
            match &l.item {
                LineItem::Plain => {
                    let braces: Vec<char> = code.chars().filter(|c| *c == '{' || *c == '}').collect();
                    if in_kind(&stack, RegionKind::Core) {
                        // Core bodies are plain MLIR; the JIT compiler checks them.
                    } else if in_kind(&stack, RegionKind::Sequence) {
                        if !is_blank(code) {
                            match parse_constant(code) {
                                Some((n, v)) => {
                                    constants.insert(n, v);
                                }
                                None if code.trim_start().starts_with("\"aiec.buffer_write\"") => {
                                    raw_writes.push((l.number, code.to_string()));
                                }
                                None => {
                                    return err(
                                        l.number,
                                        format!(
                                            "`{}` in the runtime sequence is not supported by the emulator yet \
                                             (only arith.constant, aiex.npu.dma_memcpy_nd and aiex.npu.dma_wait)",
                                            first_word(code)
                                        ),
                                    )
                                }
                            }
                        }
                    } else if in_kind(&stack, RegionKind::Device) {
                        if !is_blank(code) {
                            return err(
                                l.number,
                                format!(
                                    "`{}` inside aie.device is not supported by the emulator yet (external \
                                     kernels and lower-level ops have no host equivalent)",
                                    first_word(code)
                                ),
                            );
                        }
                    } else if !is_blank(code) && !is_alias_definition(code) {
                        let w = first_word(code);
                        if w != "module" && w != "}" {
                            return err(l.number, format!("`{w}` outside aie.device is not supported by the emulator"));
                        }
                    }
                    for b in braces {
                        if b == '{' {
                            stack.push(RegionKind::Other);
                        } else {
                            stack.pop();
                        }
                    }
                }
                LineItem::Close(kind) => {
                    stack.pop();
                    match kind {
                        RegionKind::Core => {
                            if let Some(c) = cores.last_mut() {
                                c.close_line = l.number;
                            }
                        }
                        RegionKind::Sequence => {}
                        _ => {}
                    }
                }
                LineItem::Op { result, op } => {
                    let op: &AieOp = op;
                    let in_core = in_kind(&stack, RegionKind::Core);
                    let in_seq = in_kind(&stack, RegionKind::Sequence);
                    let in_device = in_kind(&stack, RegionKind::Device);
                    let core_op = matches!(op, AieOp::Acquire { .. } | AieOp::Access { .. } | AieOp::Release { .. });
                    let seq_op = matches!(op, AieOp::DmaMemcpyNd { .. } | AieOp::DmaWait { .. });
                    if core_op && !in_core {
                        return err(l.number, format!("`{}` outside an aie.core", op.op_name()));
                    }
                    if seq_op && !in_seq {
                        return err(l.number, format!("`{}` outside aie.runtime_sequence", op.op_name()));
                    }
                    if !core_op && !seq_op && !matches!(op, AieOp::End | AieOp::Device { .. }) && (in_core || in_seq) {
                        return err(l.number, format!("`{}` inside a core or runtime sequence", op.op_name()));
                    }
                    if !matches!(op, AieOp::Device { .. }) && !in_device {
                        return err(l.number, format!("`{}` outside aie.device", op.op_name()));
                    }
                    match op {
                        AieOp::Device { device: d, .. } => {
                            if device.is_some() {
                                return err(l.number, "more than one aie.device is not supported by the emulator");
                            }
                            device = Some(d.clone());
                        }
                        AieOp::Tile { col, row, .. } => {
                            let name = result.clone().unwrap_or_default();
                            tiles.insert(name, TileId { col: *col, row: *row });
                        }
                        AieOp::ObjectFifo {
                            name,
                            producer,
                            consumers,
                            depth,
                            elem_type,
                        } => {
                            if fifo_index.contains_key(name) {
                                return err(l.number, format!("object FIFO @{name} is defined twice"));
                            }
                            let producer = tile_of(&tiles, producer, l.number)?;
                            let consumers = consumers.iter().map(|c| tile_of(&tiles, c, l.number)).collect::<Result<Vec<_>, _>>()?;
                            if consumers.is_empty() {
                                return err(l.number, format!("object FIFO @{name} has no consumer"));
                            }
                            for (i, c) in consumers.iter().enumerate() {
                                if consumers[..i].contains(c) || *c == producer {
                                    return err(l.number, format!("object FIFO @{name} names tile {c} twice"));
                                }
                            }
                            if *depth < 1 {
                                return err(l.number, format!("object FIFO @{name} has depth {depth}"));
                            }
                            if *depth > MAX_FIFO_DEPTH {
                                return err(
                                    l.number,
                                    format!("object FIFO @{name} has depth {depth}; the emulator models depths up to {MAX_FIFO_DEPTH}"),
                                );
                            }
                            let elem = MemrefType::parse(elem_type, l.number)?;
                            if elem.elements() == 0 {
                                return err(l.number, format!("object FIFO @{name} has elements of {}, which holds nothing", elem.text));
                            }
                            let bytes = elem.bytes() as u128 * *depth as u128;
                            if bytes > HOST_MEMORY_LIMIT as u128 {
                                return err(l.number, over_limit(&format!("aie.objectfifo @{name} ({depth} x {})", elem.text), bytes));
                            }
                            fifo_index.insert(name.clone(), fifos.len());
                            fifos.push(Fifo {
                                name: name.clone(),
                                line: l.number,
                                producer,
                                consumers,
                                depth: *depth as usize,
                                elem,
                            });
                        }
                        AieOp::Link { .. } => raw_links.push((l.number, op.clone())),
                        AieOp::Core { tile } => {
                            let tile = tile_of(&tiles, tile, l.number)?;
                            if tile.is_shim() || tile.is_mem() {
                                return err(l.number, format!("aie.core on tile {tile}, which is not a compute tile"));
                            }
                            if cores.iter().any(|c| c.tile == tile) {
                                return err(l.number, format!("two aie.core ops on tile {tile}"));
                            }
                            cores.push(Core {
                                tile,
                                open_line: l.number,
                                close_line: 0,
                                buffers: Vec::new(),
                            });
                        }
                        AieOp::Buffer {
                            tile,
                            ty,
                            sym_name,
                            initial_value,
                            address,
                            ..
                        } => {
                            let tile = tile_of(&tiles, tile, l.number)?;
                            if tile.is_shim() {
                                return err(l.number, format!("aie.buffer on shim tile {tile}, which has no data memory"));
                            }
                            if let Some(s) = sym_name {
                                if let Some(b) = buffers.iter().find(|b| b.sym_name.as_ref() == Some(s)) {
                                    return err(l.number, format!("aie.buffer @{s} is defined twice (first at line {})", b.line));
                                }
                            }
                            buffers.push(Buffer {
                                name: result.clone().unwrap_or_default(),
                                sym_name: sym_name.clone(),
                                line: l.number,
                                tile,
                                ty: MemrefType::parse(ty, l.number)?,
                                initial_value: initial_value.clone(),
                                address: *address,
                            });
                        }
                        AieOp::End => {}
                        AieOp::Hw { .. } => unreachable!("hardware-level designs are built by hw::build"),
                        AieOp::Acquire { .. } | AieOp::Access { .. } | AieOp::Release { .. } => {}
                        AieOp::RuntimeSequence { args, .. } => {
                            if sequence.is_some() {
                                return err(l.number, "more than one aie.runtime_sequence");
                            }
                            let args = args
                                .iter()
                                .map(|(n, t)| Ok((n.clone(), MemrefType::parse(t, l.number)?)))
                                .collect::<Result<Vec<_>, DesignError>>()?;
                            sequence = Some(Sequence {
                                line: l.number,
                                args,
                                ops: Vec::new(),
                            });
                        }
                        AieOp::DmaMemcpyNd { .. } | AieOp::DmaWait { .. } => {
                            raw_seq.push((l.number, op.clone()));
                            // Constants used by this op must be known now: resolve below with the map so far.
                            if let AieOp::DmaMemcpyNd { .. } = op {
                                raw_seq.last_mut().unwrap().1 = resolve_constants(op, &constants, l.number)?;
                            }
                        }
                    }
                    if let Some(kind) = op.opens_region() {
                        stack.push(kind);
                    }
                }
            }
        }
        let device = match device {
            Some(d) => d,
            None => return err(1, "no aie.device in the design"),
        };
        for b in &buffers {
            if let Some(f) = b.sym_name.as_ref().and_then(|s| fifo_index.get(s)) {
                let f = &fifos[*f];
                return err(
                    b.line,
                    format!("aie.buffer @{} has the name of object FIFO @{} (line {})", f.name, f.name, f.line),
                );
            }
        }
        // The buffers each core uses: only those of its own tile.
        let buffer_index: HashMap<&str, usize> = buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.name.is_empty())
            .map(|(i, b)| (b.name.as_str(), i))
            .collect();
        for core in cores.iter_mut() {
            for l in &lines[core.open_line..core.close_line.max(core.open_line + 1) - 1] {
                if !matches!(l.item, LineItem::Plain) {
                    continue;
                }
                for name in ssa_names(crate::aie_syntax::strip_comment(&l.text)) {
                    let Some(&bi) = buffer_index.get(name) else { continue };
                    let b = &buffers[bi];
                    if b.tile != core.tile {
                        return err(
                            l.number,
                            format!(
                                "the core on tile {} uses buffer {name} of tile {} (aie.buffer at line {}): a core can only \
                                 use the buffers of its own tile (sharing a neighbour's memory is not emulated)",
                                core.tile, b.tile, b.line
                            ),
                        );
                    }
                    if !core.buffers.contains(&bi) {
                        core.buffers.push(bi);
                    }
                }
            }
        }
        let mut sequence = match sequence {
            Some(s) => s,
            None => return err(1, "no aie.runtime_sequence in the design"),
        };
        let fifo_ref = |name: &str, line: usize| -> Result<usize, DesignError> {
            fifo_index.get(name).copied().ok_or_else(|| DesignError {
                line,
                message: format!("unknown object FIFO @{name}"),
            })
        };

        // Links.
        let mut links = Vec::new();
        for (line, op) in raw_links {
            let AieOp::Link {
                fifo_ins,
                fifo_outs,
                src_offsets,
                dst_offsets,
            } = op
            else {
                unreachable!()
            };
            let ins = fifo_ins.iter().map(|f| fifo_ref(f, line)).collect::<Result<Vec<_>, _>>()?;
            let outs = fifo_outs.iter().map(|f| fifo_ref(f, line)).collect::<Result<Vec<_>, _>>()?;
            if ins.is_empty() || outs.is_empty() || (ins.len() > 1 && outs.len() > 1) {
                return err(line, "a link needs one input and N outputs, or N inputs and one output");
            }
            let shared = fifos[ins[0]].consumers.clone();
            for &i in &ins {
                if fifos[i].consumers.len() != 1 {
                    return err(line, format!("linked FIFO @{} must have the link tile as its only consumer", fifos[i].name));
                }
            }
            let hub = shared[0];
            for &o in &outs {
                if fifos[o].producer != hub {
                    return err(line, format!("linked FIFO @{} is not produced by the link tile {hub}", fifos[o].name));
                }
            }
            for &i in &ins {
                if fifos[i].consumers[0] != hub {
                    return err(line, format!("linked FIFO @{} is not consumed by the link tile {hub}", fifos[i].name));
                }
            }
            // Cut the single big element into pieces, one per FIFO on the many side.
            let (big, many, offsets, what) = if ins.len() == 1 {
                (ins[0], &outs, &dst_offsets, "dst_offsets")
            } else {
                (outs[0], &ins, &src_offsets, "src_offsets")
            };
            let big_elem = &fifos[big].elem;
            let esize = big_elem.dtype.size_bytes();
            let offsets: Vec<usize> = if many.len() == 1 && offsets.is_empty() {
                vec![0]
            } else if offsets.len() == many.len() {
                let limit = big_elem.elements();
                if let Some((k, o)) = offsets.iter().enumerate().find(|(_, &o)| o < 0 || o as u64 > limit as u64) {
                    return err(line, format!("{what} entry {k} ({o}) is out of the element of @{}", fifos[big].name));
                }
                offsets.iter().map(|&o| o as usize).collect()
            } else if offsets.is_empty() {
                // Consecutive pieces of the many-side element sizes.
                let mut acc = 0;
                many.iter()
                    .map(|&f| {
                        let o = acc;
                        acc += fifos[f].elem.bytes() / esize;
                        o
                    })
                    .collect()
            } else {
                return err(line, format!("{what} has {} entries for {} FIFOs", offsets.len(), many.len()));
            };
            let mut pieces = Vec::new();
            for (k, &f) in many.iter().enumerate() {
                let start = offsets[k] * esize;
                let end = if k + 1 < many.len() { offsets[k + 1] * esize } else { big_elem.bytes() };
                let small = fifos[f].elem.bytes();
                if many.len() == 1 {
                    // Forward: the bigger element is cut into whole smaller elements.
                    let (a, b) = (big_elem.bytes(), small);
                    if a % b != 0 && b % a != 0 {
                        return err(
                            line,
                            format!("link forwards elements of {a} bytes into elements of {b} bytes; one must divide the other"),
                        );
                    }
                }
                if end <= start || end > big_elem.bytes() {
                    return err(line, format!("{what} entry {k} is out of the element of @{}", fifos[big].name));
                }
                pieces.push((start, end - start));
            }
            links.push(Link { line, ins, outs, pieces });
        }
        let linked = |f: usize, as_input: bool| links.iter().any(|l| if as_input { l.ins.contains(&f) } else { l.outs.contains(&f) });
        for (fi, f) in fifos.iter().enumerate() {
            if f.producer.is_mem() && !linked(fi, false) {
                return err(
                    f.line,
                    format!("@{} is produced by memory tile {} but no aie.objectfifo.link feeds it", f.name, f.producer),
                );
            }
            if f.consumers.iter().any(|c| c.is_mem()) && !linked(fi, true) {
                return err(f.line, format!("@{} is consumed by a memory tile but no aie.objectfifo.link drains it", f.name));
            }
        }

        // Runtime sequence.
        let mut writes = raw_writes.into_iter().peekable();
        let mut seq_items: Vec<(usize, Option<AieOp>)> = raw_seq.into_iter().map(|(l, o)| (l, Some(o))).collect();
        for (l, _) in writes.by_ref() {
            seq_items.push((l, None));
        }
        seq_items.sort_by_key(|(l, _)| *l);
        for (line, op) in seq_items {
            let Some(op) = op else {
                let code = crate::aie_syntax::strip_comment(&lines[line - 1].text);
                let d = super::hw::text::dict(code);
                let sym = d.get("buffer").and_then(|v| super::hw::text::symbol(v)).unwrap_or_default();
                let buffer = buffers
                    .iter()
                    .position(|b| b.sym_name.as_deref() == Some(sym.as_str()))
                    .ok_or_else(|| DesignError {
                        line,
                        message: format!("aiex.npu.rtp_write to @{sym}, which is not an aie.buffer of the device"),
                    })?;
                let index = d.get("index").and_then(|v| super::hw::text::int(v)).unwrap_or(-1);
                let value = d.get("value").and_then(|v| super::hw::text::int(v)).unwrap_or(0);
                if index < 0 || (index as u128 + 1) * 4 > buffers[buffer].ty.bytes() as u128 {
                    return err(
                        line,
                        format!("aiex.npu.rtp_write: word {index} is outside @{sym} ({} bytes)", buffers[buffer].ty.bytes()),
                    );
                }
                sequence.ops.push(SeqOp::BufferWrite {
                    line,
                    buffer,
                    word: index as usize,
                    value: value as u32,
                });
                continue;
            };
            match op {
                AieOp::DmaMemcpyNd {
                    memref,
                    offsets,
                    sizes,
                    strides,
                    metadata,
                    memref_type,
                    packet,
                    ..
                } => {
                    if packet.is_some() {
                        return err(
                            line,
                            "aiex.npu.dma_memcpy_nd with a packet header needs an aie.packet_flow (hardware-level designs)",
                        );
                    }
                    let fifo = fifo_ref(&metadata, line)?;
                    let arg = sequence.args.iter().position(|(n, _)| *n == memref).ok_or_else(|| DesignError {
                        line,
                        message: format!("`{memref}` is not a runtime-sequence argument"),
                    })?;
                    let ty = &sequence.args[arg].1;
                    if ty.text != memref_type {
                        return err(line, format!("`{memref}` has type {} but the op says {memref_type}", ty.text));
                    }
                    let st = |v: &[DmaIndex]| -> [i64; 4] {
                        let mut a = [0i64; 4];
                        for (i, x) in v.iter().enumerate() {
                            if let DmaIndex::Static(n) = x {
                                a[i] = *n;
                            }
                        }
                        a
                    };
                    let (o, s, t) = (st(&offsets), st(&sizes), st(&strides));
                    if s.iter().any(|&x| x < 1) || t.iter().any(|&x| x < 0) || o.iter().any(|&x| x < 0) {
                        return err(line, "sizes must be >= 1, offsets and strides >= 0");
                    }
                    // Checked arithmetic: any overflow is an element far out of the argument.
                    let term = |a: i64, b: i64| (a as i128).checked_mul(b as i128);
                    let span = (0..4).try_fold(0i128, |acc, d| acc.checked_add(term(o[d], t[d])?)?.checked_add(term(s[d] - 1, t[d])?));
                    let base: i128 = (0..4).map(|d| o[d] as i128 * t[d] as i128).fold(0i128, |a, b| a.saturating_add(b));
                    match span {
                        Some(last) if last < ty.elements() as i128 => {}
                        _ => {
                            let reach = span.map(|l| l.to_string()).unwrap_or_else(|| "beyond 2^127".into());
                            return err(
                                line,
                                format!(
                                    "aiex.npu.dma_memcpy_nd: the access pattern reaches element {reach} of `{memref}`, which \
                                     has {} elements",
                                    ty.elements()
                                ),
                            );
                        }
                    }
                    let base = base as i64;
                    let f = &fifos[fifo];
                    let count_wide = s.iter().try_fold(1u128, |acc, &x| acc.checked_mul(x as u128)).unwrap_or(u128::MAX);
                    let bytes_wide = count_wide.saturating_mul(ty.dtype.size_bytes() as u128);
                    if bytes_wide > HOST_MEMORY_LIMIT as u128 {
                        return err(
                            line,
                            format!(
                                "aiex.npu.dma_memcpy_nd on `{memref}` moves {count_wide} elements ({}); the emulator moves at most {} \
                                 per DMA",
                                show_bytes(bytes_wide),
                                show_bytes(HOST_MEMORY_LIMIT as u128)
                            ),
                        );
                    }
                    let count = count_wide as i64;
                    let bytes = count as usize * ty.dtype.size_bytes();
                    if !bytes.is_multiple_of(f.elem.bytes()) {
                        return err(
                            line,
                            format!(
                                "aiex.npu.dma_memcpy_nd moves {count} elements of {} ({bytes} bytes), not a whole number \
                                 of @{} elements ({} bytes each)",
                                ty.dtype,
                                f.name,
                                f.elem.bytes()
                            ),
                        );
                    }
                    if !f.elem.bytes().is_multiple_of(ty.dtype.size_bytes()) {
                        return err(
                            line,
                            format!("@{} elements ({} bytes) are not a whole number of {} values", f.name, f.elem.bytes(), ty.dtype),
                        );
                    }
                    let (to_array, consumer) = if f.producer.is_shim() {
                        (true, 0)
                    } else if let Some(c) = f.consumers.iter().position(|c| c.is_shim()) {
                        (false, c)
                    } else {
                        return err(line, format!("@{} is neither produced nor consumed by a shim tile", f.name));
                    };
                    sequence.ops.push(SeqOp::Dma {
                        line,
                        arg,
                        fifo,
                        base,
                        sizes: s,
                        strides: t,
                        to_array,
                        consumer,
                    });
                }
                AieOp::DmaWait { symbol } => {
                    let fifo = fifo_ref(&symbol, line)?;
                    let filled = sequence.ops.iter().any(|o| matches!(o, SeqOp::Dma { fifo: f, .. } if *f == fifo));
                    if !filled {
                        return err(
                            line,
                            format!("aiex.npu.dma_wait on @{symbol}, but no aiex.npu.dma_memcpy_nd before it moves data on it"),
                        );
                    }
                    sequence.ops.push(SeqOp::Wait { line, fifo });
                }
                _ => unreachable!(),
            }
        }
        // Everything a run allocates, added up: the arguments (the caller allocates them from these types),
        // the FIFO slots and the buffers.
        let arg_bytes: u128 = sequence.args.iter().map(|(_, t)| t.bytes() as u128).sum();
        let fifo_bytes: u128 = fifos.iter().map(|f| f.depth as u128 * f.elem.bytes() as u128).sum();
        let buffer_bytes: u128 = buffers.iter().map(|b| b.ty.bytes() as u128).sum();
        let total = arg_bytes + fifo_bytes + buffer_bytes;
        if total > HOST_MEMORY_LIMIT as u128 {
            // Point at the biggest single user.
            let mut biggest = (sequence.args.iter().map(|(_, t)| t.bytes()).max().unwrap_or(0) as u128, sequence.line);
            for f in &fifos {
                let b = f.depth as u128 * f.elem.bytes() as u128;
                if b > biggest.0 {
                    biggest = (b, f.line);
                }
            }
            for b in &buffers {
                if b.ty.bytes() as u128 > biggest.0 {
                    biggest = (b.ty.bytes() as u128, b.line);
                }
            }
            return err(
                biggest.1,
                over_limit(
                    &format!(
                        "the design (runtime-sequence arguments {}, object FIFO slots {}, buffers {})",
                        show_bytes(arg_bytes),
                        show_bytes(fifo_bytes),
                        show_bytes(buffer_bytes)
                    ),
                    total,
                ),
            );
        }
        Ok(Design {
            device,
            fifos,
            fifo_index,
            links,
            buffers,
            cores,
            sequence,
            locks: Vec::new(),
            hw: None,
        })
    }

    /// The runtime-sequence arguments as [`ArgSpec`]s; an argument some DMA drains into is an output.
    pub fn arg_specs(&self) -> Vec<ArgSpec> {
        self.sequence
            .args
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| {
                let out = self.hw.as_ref().is_some_and(|h| h.outputs.get(i).copied().unwrap_or(false))
                    || self
                        .sequence
                        .ops
                        .iter()
                        .any(|o| matches!(o, SeqOp::Dma { arg, to_array: false, .. } if *arg == i));
                ArgSpec {
                    name: name.trim_start_matches('%').to_string(),
                    dtype: ty.dtype,
                    shape: ty.shape.clone(),
                    direction: if out { ArgDirection::Out } else { ArgDirection::In },
                }
            })
            .collect()
    }
}

pub(crate) fn resolve_constants(op: &AieOp, constants: &HashMap<String, i64>, line: usize) -> Result<AieOp, DesignError> {
    let AieOp::DmaMemcpyNd {
        memref,
        offsets,
        sizes,
        strides,
        metadata,
        id,
        issue_token,
        memref_type,
        packet,
    } = op
    else {
        return Ok(op.clone());
    };
    let r = |v: &Vec<DmaIndex>| -> Result<Vec<DmaIndex>, DesignError> {
        v.iter()
            .map(|x| match x {
                DmaIndex::Static(n) => Ok(DmaIndex::Static(*n)),
                DmaIndex::Dynamic(name) => constants.get(name).map(|n| DmaIndex::Static(*n)).ok_or_else(|| DesignError {
                    line,
                    message: format!("`{name}` is not an arith.constant defined earlier in the runtime sequence"),
                }),
            })
            .collect()
    };
    Ok(AieOp::DmaMemcpyNd {
        memref: memref.clone(),
        offsets: r(offsets)?,
        sizes: r(sizes)?,
        strides: r(strides)?,
        metadata: metadata.clone(),
        id: *id,
        issue_token: *issue_token,
        memref_type: memref_type.clone(),
        packet: *packet,
    })
}

/// Which endpoint of a FIFO a core uses for a port: `None` when the core's tile is not on that side.
pub fn endpoint_of(f: &Fifo, tile: TileId, port: Port) -> Option<usize> {
    match port {
        Port::Produce => (f.producer == tile).then_some(0),
        Port::Consume => f.consumers.iter().position(|c| *c == tile),
    }
}
