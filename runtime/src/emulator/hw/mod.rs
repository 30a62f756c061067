//! The hardware level below object FIFOs, as mlir-aie lowers every design to it and as its own hardware tests
//! are written: locks (AIE-ML counting semaphores), tile / memory-tile / shim DMAs with their buffer
//! descriptors and channels, circuit- and packet-switched stream flows, and the runtime sequence's register
//! writes and DMA tasks. [`build`] reads a design into [`HwModel`]; [`run`] executes it.
//!
//! Addresses follow mlir-aie: buffers keep a given `address`, the others get the one its default bank-aware
//! allocation assigns (so `write32` at a tile address, register-built descriptors and `buffer = @sym` writes
//! meet the same bytes the cores use), and a tile whose registers the runtime sequence writes also has its
//! whole data memory (`data_memory_C_R`, looked up after the buffers) for descriptors at addresses no buffer
//! holds.

pub mod regs;
pub mod run;
pub mod text;

use super::design::{err, Buffer, Core, Design, DesignError, MemrefType, Sequence, TileId, HOST_MEMORY_LIMIT};
use crate::aie_syntax::{AieOp, DmaIndex, Line, LineItem};
use std::collections::HashMap;
use text::{dict, int, operands, ssa, symbol};

/// `aie.use_lock` actions, as the ODS defines them for AIE-ML: `Acquire` waits until the lock equals the
/// value, `AcquireGreaterEqual` waits until it is at least the value and subtracts it, `Release` adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAction {
    Acquire,
    AcquireGreaterEqual,
    Release,
}

impl LockAction {
    pub fn name(self) -> &'static str {
        match self {
            LockAction::Acquire => "Acquire",
            LockAction::AcquireGreaterEqual => "AcquireGreaterEqual",
            LockAction::Release => "Release",
        }
    }
    pub fn code(self) -> i64 {
        match self {
            LockAction::Acquire => 0,
            LockAction::AcquireGreaterEqual => 1,
            LockAction::Release => 2,
        }
    }
    pub fn from_code(c: i64) -> LockAction {
        match c {
            0 => LockAction::Acquire,
            1 => LockAction::AcquireGreaterEqual,
            _ => LockAction::Release,
        }
    }
}

/// The largest value an AIE-ML lock holds (6 bits).
pub const LOCK_MAX: i64 = 63;

/// `aie.lock`.
#[derive(Debug, Clone)]
pub struct Lock {
    /// SSA name (with `%`) when defined at device level (cores may use it), else empty.
    pub name: String,
    pub sym_name: Option<String>,
    pub line: usize,
    pub tile: TileId,
    pub id: i64,
    pub init: i64,
}

impl Lock {
    pub fn describe(&self) -> String {
        match &self.sym_name {
            Some(s) => format!("lock @{s} (tile {}, id {})", self.tile, self.id),
            None if !self.name.is_empty() => format!("lock {} (tile {}, id {})", self.name, self.tile, self.id),
            None => format!("lock {} of tile {} (line {})", self.id, self.tile, self.line),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    S2MM,
    MM2S,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::S2MM => "S2MM",
            Dir::MM2S => "MM2S",
        }
    }
}

/// One DMA channel of one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChanId {
    pub tile: TileId,
    pub dir: Dir,
    pub ch: u32,
}

impl std::fmt::Display for ChanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.tile.is_shim() {
            "shim DMA"
        } else if self.tile.is_mem() {
            "memory-tile DMA"
        } else {
            "tile DMA"
        };
        write!(f, "{kind} {} {}:{}", self.tile, self.dir.name(), self.ch)
    }
}

/// What a buffer descriptor addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdMem {
    /// An `aie.buffer` (index into [`Design::buffers`]).
    Buffer(usize),
    /// A runtime-sequence argument (shim DMAs).
    Arg(usize),
}

/// A buffer descriptor: which memory, the access pattern (in elements of `elem` bytes), locks, packet header
/// and the next descriptor of its chain.
#[derive(Debug, Clone)]
pub struct Bd {
    pub line: usize,
    pub mem: BdMem,
    pub elem: usize,
    /// Element offset of the pattern's start.
    pub offset: u64,
    /// Elements moved (before padding).
    pub len: u64,
    /// `(size, stride)` per dimension, outermost first, in elements; empty: contiguous. The outermost size
    /// does not wrap.
    pub dims: Vec<(u64, u64)>,
    /// Per dimension of `dims`: elements of padding before and after (memory-tile MM2S).
    pub pads: Vec<(u64, u64)>,
    pub pad_value: u32,
    pub acquire: Option<(usize, LockAction, i64)>,
    pub release: Option<(usize, i64)>,
    /// (type, id) of the packet header this descriptor sends.
    pub packet: Option<(u8, u8)>,
    pub next: Option<usize>,
    /// Per use of the descriptor by a repeated task, the pattern moves by `stride` elements, wrapping after
    /// `wrap` uses (the iteration dimension of the registers).
    pub iteration: Option<(u64, u64)>,
}

/// A channel's program: its first descriptor and how often the chain runs (1 + repeat count).
#[derive(Debug, Clone)]
pub struct ChannelStart {
    pub line: usize,
    pub chan: ChanId,
    pub bd: usize,
    pub repeat: u32,
}

/// A stream port: tile, bundle (`DMA`, `Core`, `Ctrl`, ...) and channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRef {
    pub tile: TileId,
    pub bundle: String,
    pub ch: u32,
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}:{}", self.tile, self.bundle, self.ch)
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub line: usize,
    pub src: PortRef,
    pub dst: PortRef,
}

#[derive(Debug, Clone)]
pub struct PacketFlow {
    pub line: usize,
    pub id: u8,
    pub keep_header: bool,
    pub srcs: Vec<PortRef>,
    pub dsts: Vec<PortRef>,
}

/// A DMA task of the runtime sequence (`aiex.dma_configure_task[_for]`).
#[derive(Debug, Clone)]
pub struct Task {
    pub line: usize,
    pub chan: ChanId,
    pub bd: usize,
    pub repeat: u32,
    pub issue_token: bool,
}

#[derive(Debug, Clone)]
pub enum HwSeqOp {
    /// Start a chain on a channel (dma_memcpy_nd, dma_start_task): `task` is set for tasks the sequence
    /// can await.
    Push {
        line: usize,
        chan: ChanId,
        bd: usize,
        repeat: u32,
        task: Option<usize>,
    },
    /// Wait until the channels have finished everything pushed to them (dma_wait, npu.sync).
    Wait {
        line: usize,
        what: String,
        chans: Vec<ChanId>,
    },
    AwaitTask {
        line: usize,
        task: usize,
    },
    /// A register write: absolute address (column and row in its high bits), value and mask.
    Write {
        line: usize,
        address: u64,
        value: u32,
        mask: u32,
    },
    /// A BD register write from `aiex.npu.writebd`: the register words.
    WriteBd {
        line: usize,
        tile: TileId,
        bd_id: u32,
        words: Vec<u32>,
    },
    AddressPatch {
        line: usize,
        address: u64,
        arg: usize,
        plus: i64,
    },
}

/// The hardware-level part of a design.
#[derive(Debug, Clone, Default)]
pub struct HwModel {
    pub npu2: bool,
    pub tiles: Vec<TileId>,
    pub bds: Vec<Bd>,
    pub starts: Vec<ChannelStart>,
    pub flows: Vec<Flow>,
    pub packet_flows: Vec<PacketFlow>,
    pub tasks: Vec<Task>,
    pub seq: Vec<HwSeqOp>,
    /// `aie.shim_dma_allocation` symbols.
    pub allocs: HashMap<String, ChanId>,
    /// Arguments some S2MM transfer writes.
    pub outputs: Vec<bool>,
}

/// Whether a design is written at the hardware level (has any lock, DMA, flow or register op).
pub fn is_hw(lines: &[Line]) -> bool {
    lines
        .iter()
        .any(|l| matches!(&l.item, LineItem::Op { op, .. } if matches!(**op, AieOp::Hw { .. })))
}

/// `aie.use_lock(%l, Action, v)`: lock name, action, value (default 1).
pub fn parse_use_lock(text: &str) -> Result<(String, LockAction, i64), String> {
    let (ops, _) = operands(text, "aie.use_lock").ok_or("expected `aie.use_lock(%lock, Action, value)`")?;
    let lock = ops.first().and_then(|o| ssa(o)).ok_or("expected a lock operand")?;
    let action = match ops.get(1).map(|a| a.trim().trim_matches('"')) {
        Some("Acquire") => LockAction::Acquire,
        Some("AcquireGreaterEqual") => LockAction::AcquireGreaterEqual,
        Some("Release") => LockAction::Release,
        other => return Err(format!("unknown lock action `{}`", other.unwrap_or(""))),
    };
    let value = match ops.get(2) {
        Some(v) => int(v).ok_or_else(|| format!("lock value `{v}` is not an integer"))?,
        None => 1,
    };
    if let Some(extra) = ops.get(3) {
        if extra.trim() != "Blocking" {
            return Err(format!("`{extra}`: only blocking lock uses are modelled"));
        }
    }
    if !(0..=LOCK_MAX).contains(&value) {
        return Err(format!("lock value {value} is outside 0..={LOCK_MAX}"));
    }
    Ok((lock, action, value))
}

fn dir_of(s: &str) -> Option<Dir> {
    match s.trim().trim_matches('"') {
        "S2MM" => Some(Dir::S2MM),
        "MM2S" => Some(Dir::MM2S),
        _ => None,
    }
}

/// A memref type as a DMA sees it: the memory space (`, 1 : i32`) is dropped.
fn dma_memref(text: &str, line: usize) -> Result<MemrefType, DesignError> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix("memref<").and_then(|r| r.strip_suffix('>')) {
        if let Some((shape, _space)) = inner.split_once(',') {
            return MemrefType::parse(&format!("memref<{}>", shape.trim()), line);
        }
    }
    MemrefType::parse(t, line)
}

/// A descriptor as written in a block of a DMA region: its locks, its `aie.dma_bd`, its packet header and
/// where the block goes next.
#[derive(Debug, Default, Clone)]
struct BlockBd {
    line: usize,
    label: String,
    acquire: Option<(usize, LockAction, i64)>,
    release: Option<(usize, i64)>,
    bd: Option<usize>,
    packet: Option<(u8, u8)>,
    next: Option<String>,
    end: bool,
    /// `aie.dma_start(dir, ch, ^dest, ^chain)` in this block.
    start: Option<(usize, ChanId, String, String, u32)>,
}

enum Ctx {
    Device,
    Core,
    Sequence,
    /// `aie.mem` & co: the tile and the blocks so far.
    Dma {
        tile: TileId,
        blocks: Vec<BlockBd>,
    },
    /// `aie.dma(dir, ch) [{...}, {...}]`.
    DmaOp {
        line: usize,
        chan: ChanId,
        looped: bool,
        repeat: u32,
        blocks: Vec<BlockBd>,
        /// After `}, {` (a `}]` ends the op).
        continued: bool,
    },
    PacketFlow {
        flow: PacketFlow,
    },
    Task {
        result: String,
        line: usize,
        chan: ChanId,
        blocks: Vec<BlockBd>,
    },
    Other,
}

struct Builder<'a> {
    lines: &'a [Line],
    tiles: HashMap<String, TileId>,
    /// Names visible per scope (innermost last): locks and buffers.
    scopes: Vec<HashMap<String, Named>>,
    design_buffers: Vec<Buffer>,
    locks: Vec<Lock>,
    m: HwModel,
    cores: Vec<Core>,
    seq_args: Vec<(String, MemrefType)>,
    seq_line: usize,
    seq_seen: bool,
    constants: HashMap<String, i64>,
    globals: HashMap<String, Vec<i64>>,
    global_values: HashMap<String, String>,
    tasks_by_name: HashMap<String, usize>,
    /// Stack bytes per core tile (the bottom of bank 0).
    stacks: HashMap<TileId, i64>,
}

#[derive(Debug, Clone, Copy)]
enum Named {
    Lock(usize),
    Buffer(usize),
}

impl Builder<'_> {
    fn tile(&self, name: &str, line: usize) -> Result<TileId, DesignError> {
        self.tiles.get(name.trim()).copied().ok_or_else(|| DesignError {
            line,
            message: format!("`{}` is not an aie.tile", name.trim()),
        })
    }
    fn lookup(&self, name: &str) -> Option<Named> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }
    fn lock(&self, name: &str, line: usize) -> Result<usize, DesignError> {
        match self.lookup(name) {
            Some(Named::Lock(i)) => Ok(i),
            _ => err(line, format!("`{name}` is not an aie.lock")),
        }
    }
    fn port(&self, tile: &str, bundle_ch: &str, line: usize) -> Result<PortRef, DesignError> {
        let tile = self.tile(tile, line)?;
        let (b, c) = bundle_ch.split_once(':').ok_or_else(|| DesignError {
            line,
            message: format!("expected `Bundle : channel`, found `{bundle_ch}`"),
        })?;
        let ch = int(c).filter(|&c| (0..64).contains(&c)).ok_or_else(|| DesignError {
            line,
            message: format!("bad channel `{}`", c.trim()),
        })?;
        Ok(PortRef {
            tile,
            bundle: b.trim().trim_matches('"').to_string(),
            ch: ch as u32,
        })
    }

    /// `aie.dma_bd(%buf : T, offset, len, [dims], [pads]) {attrs}`.
    fn dma_bd(&mut self, text: &str, line: usize, tile: Option<TileId>) -> Result<usize, DesignError> {
        let bad = |m: String| DesignError {
            line,
            message: format!("aie.dma_bd: {m}"),
        };
        let (ops, rest) = operands(text, "aie.dma_bd").ok_or_else(|| bad("expected `aie.dma_bd(%buffer : type, ...)`".into()))?;
        let first = ops.first().ok_or_else(|| bad("no buffer".into()))?;
        let (name, ty) = first
            .split_once(':')
            .ok_or_else(|| bad(format!("expected `%buffer : type`, found `{first}`")))?;
        let name = ssa(name).ok_or_else(|| bad(format!("`{name}` is not an SSA value")))?;
        let ty = dma_memref(ty, line)?;
        let mem = if let Some(a) = self
            .seq_args
            .iter()
            .position(|(n, _)| *n == name)
            .filter(|_| tile.is_none() || tile.is_some_and(|t| t.is_shim()))
        {
            BdMem::Arg(a)
        } else {
            match self.lookup(&name) {
                Some(Named::Buffer(b)) => {
                    let bt = self.design_buffers[b].tile;
                    if let Some(t) = tile {
                        let neighbour = t.is_mem() && bt.row == t.row && (bt.col - t.col).abs() <= 1;
                        if bt != t && !neighbour {
                            return Err(bad(format!("buffer {name} is on tile {bt}, not reachable from the DMA of tile {t}")));
                        }
                    }
                    if self.design_buffers[b].ty.bytes() != ty.bytes() {
                        return Err(bad(format!("{name} is a {}, not a {}", self.design_buffers[b].ty.text, ty.text)));
                    }
                    BdMem::Buffer(b)
                }
                _ => return Err(bad(format!("`{name}` is neither an aie.buffer nor a runtime-sequence argument"))),
            }
        };
        let mut offset = 0i64;
        let mut len = None;
        let mut dims = Vec::new();
        let mut pads = Vec::new();
        let mut ints = 0;
        for o in &ops[1..] {
            let o = o.trim();
            if o.starts_with('[') {
                if o.contains("size") {
                    dims = text::pairs(o, ("size", "stride")).ok_or_else(|| bad(format!("bad dimensions `{o}`")))?;
                } else if o.contains("const_pad") {
                    pads = text::pairs(o, ("const_pad_before", "const_pad_after")).ok_or_else(|| bad(format!("bad padding `{o}`")))?;
                } else if o != "[]" {
                    return Err(bad(format!("unexpected `{o}`")));
                }
            } else {
                let v = int(o).ok_or_else(|| bad(format!("`{o}` is not an integer")))?;
                if ints == 0 {
                    offset = v;
                } else if ints == 1 {
                    len = Some(v);
                } else {
                    return Err(bad(format!("unexpected `{o}`")));
                }
                ints += 1;
            }
        }
        let d = dict(rest);
        let mut packet = None;
        for (k, v) in &d {
            match k.as_str() {
                "bd_id" | "burst_length" | "next_bd_id" => {}
                "packet" => {
                    let (t, i) = text::packet_info(v).ok_or_else(|| bad(format!("bad packet `{v}`")))?;
                    packet = Some((t as u8, i as u8));
                }
                "pad_value" => {}
                // Older syntax: the length (and offset) as attributes.
                "len" | "offset" => {
                    let v = int(v).ok_or_else(|| bad(format!("`{k}` must be an integer, found `{v}`")))?;
                    if k == "len" {
                        len = len.or(Some(v));
                    } else if ints == 0 {
                        offset = v;
                    }
                }
                other => return Err(bad(format!("attribute `{other}` is not modelled"))),
            }
        }
        let pad_value = d.get("pad_value").and_then(|v| int(v)).unwrap_or(0) as u32;
        let elems = ty.elements() as i64;
        let len = len.unwrap_or(elems - offset);
        if offset < 0 || len < 0 {
            return Err(bad(format!("offset {offset} and length {len} must not be negative")));
        }
        if dims.iter().any(|&(s, t)| s < 1 || t < 0 || s > 1 << 20 || t > 1 << 30) {
            return Err(bad("dimension sizes must be in 1..2^20 and strides in 0..2^30".into()));
        }
        if !pads.is_empty() && pads.len() != dims.len() {
            return Err(bad(format!("{} padding pairs for {} dimensions", pads.len(), dims.len())));
        }
        if pads.iter().any(|&(b, a)| !(0..1 << 16).contains(&b) || !(0..1 << 16).contains(&a)) {
            return Err(bad("padding counts must be in 0..2^16".into()));
        }
        let bd = Bd {
            line,
            mem,
            elem: ty.dtype.size_bytes(),
            offset: offset as u64,
            len: len as u64,
            dims: dims.iter().map(|&(s, t)| (s as u64, t as u64)).collect(),
            pads: pads.iter().map(|&(b, a)| (b as u64, a as u64)).collect(),
            pad_value,
            acquire: None,
            release: None,
            packet,
            next: None,
            iteration: None,
        };
        // Every element the pattern reaches must be inside the memory.
        let size = match mem {
            BdMem::Buffer(b) => self.design_buffers[b].ty.elements() as u64,
            BdMem::Arg(a) => self.seq_args[a].1.elements() as u64,
        };
        if let Some(last) = run::last_element(&bd) {
            if last >= size {
                return Err(bad(format!("the access pattern reaches element {last} of {name}, which has {size}")));
            }
        }
        self.m.bds.push(bd);
        Ok(self.m.bds.len() - 1)
    }

    /// Turns the blocks of a DMA region into chained descriptors; returns per block label its descriptor.
    fn chain(&mut self, blocks: &[BlockBd], looped: Option<bool>) -> Result<HashMap<String, Option<usize>>, DesignError> {
        let mut at: HashMap<String, Option<usize>> = HashMap::new();
        for b in blocks {
            if let Some(bd) = b.bd {
                let d = &mut self.m.bds[bd];
                d.acquire = b.acquire;
                d.release = b.release;
                if b.packet.is_some() {
                    d.packet = b.packet;
                }
            }
            at.insert(b.label.clone(), b.bd);
        }
        for (k, b) in blocks.iter().enumerate() {
            let Some(bd) = b.bd else { continue };
            let next = match (&b.next, looped) {
                (Some(l), _) => match at.get(l) {
                    Some(n) => *n,
                    None => return err(b.line, format!("aie.next_bd to {l}, which is no block of this region")),
                },
                (None, Some(true)) => blocks.get(k + 1).or(blocks.first()).and_then(|n| n.bd),
                (None, Some(false)) => blocks.get(k + 1).and_then(|n| n.bd),
                (None, None) => None,
            };
            self.m.bds[bd].next = next;
        }
        Ok(at)
    }

    /// A line inside a block of a DMA region or task: lock uses, descriptors, packet headers, terminators.
    fn block_op(&mut self, blocks: &mut Vec<BlockBd>, name: &str, text: &str, line: usize, tile: Option<TileId>) -> Result<(), DesignError> {
        if blocks.is_empty() {
            blocks.push(BlockBd {
                line,
                label: "^entry".into(),
                ..Default::default()
            });
        }
        match name {
            "aie.use_lock" => {
                let (l, action, v) = parse_use_lock(text).map_err(|m| DesignError {
                    line,
                    message: format!("aie.use_lock: {m}"),
                })?;
                let lock = self.lock(&l, line)?;
                let b = blocks.last_mut().unwrap();
                if action == LockAction::Release {
                    if b.release.is_some() {
                        return err(line, "a buffer descriptor releases at most one lock");
                    }
                    b.release = Some((lock, v));
                } else {
                    if b.acquire.is_some() {
                        return err(line, "a buffer descriptor acquires at most one lock");
                    }
                    b.acquire = Some((lock, action, v));
                }
            }
            "aie.dma_bd" => {
                let bd = self.dma_bd(text, line, tile)?;
                let b = blocks.last_mut().unwrap();
                if b.bd.is_some() {
                    return err(line, "a block holds at most one aie.dma_bd");
                }
                b.bd = Some(bd);
                b.line = line;
            }
            "aie.dma_bd_packet" => {
                let (ops, _) = operands(text, name).ok_or_else(|| DesignError {
                    line,
                    message: "expected `aie.dma_bd_packet(type, id)`".into(),
                })?;
                let t = ops.first().and_then(|v| int(v)).unwrap_or(0);
                let i = ops.get(1).and_then(|v| int(v)).ok_or_else(|| DesignError {
                    line,
                    message: "aie.dma_bd_packet needs (type, id)".into(),
                })?;
                blocks.last_mut().unwrap().packet = Some((t as u8, i as u8));
            }
            "aie.next_bd" => {
                let label = text.trim_start_matches("aie.next_bd").trim().to_string();
                blocks.last_mut().unwrap().next = Some(label);
            }
            "aie.dma_start" => {
                let (ops, _) = operands(text, name).ok_or_else(|| DesignError {
                    line,
                    message: "expected `aie.dma_start(dir, ch, ^bd, ^next)`".into(),
                })?;
                let tile = tile.ok_or_else(|| DesignError {
                    line,
                    message: "aie.dma_start outside a DMA region".into(),
                })?;
                let dir = ops.first().and_then(|d| dir_of(d)).ok_or_else(|| DesignError {
                    line,
                    message: "aie.dma_start: expected S2MM or MM2S".into(),
                })?;
                let ch = ops.get(1).and_then(|c| int(c)).filter(|c| (0..16).contains(c)).ok_or_else(|| DesignError {
                    line,
                    message: "aie.dma_start: bad channel".into(),
                })?;
                let dest = ops.get(2).cloned().unwrap_or_default();
                let chain = ops.get(3).cloned().unwrap_or_default();
                let repeat = ops.get(4).and_then(|r| r.split_once('=')).and_then(|(_, v)| int(v)).unwrap_or(0);
                blocks.last_mut().unwrap().start = Some((line, ChanId { tile, dir, ch: ch as u32 }, dest, chain, repeat.clamp(0, 255) as u32));
            }
            other => return err(line, format!("`{other}` inside a DMA region")),
        }
        Ok(())
    }

    fn end_block(blocks: &mut [BlockBd]) {
        if let Some(b) = blocks.last_mut() {
            b.end = true;
        }
    }
}

/// Builds the model of a hardware-level design.
pub fn build(lines: &[Line]) -> Result<Design, DesignError> {
    let mut b = Builder {
        lines,
        tiles: HashMap::new(),
        scopes: vec![HashMap::new()],
        design_buffers: Vec::new(),
        locks: Vec::new(),
        m: HwModel::default(),
        cores: Vec::new(),
        seq_args: Vec::new(),
        seq_line: 0,
        seq_seen: false,
        constants: HashMap::new(),
        globals: HashMap::new(),
        global_values: HashMap::new(),
        tasks_by_name: HashMap::new(),
        stacks: HashMap::new(),
    };
    let mut device: Option<String> = None;
    let mut stack: Vec<Ctx> = Vec::new();
    // Runtime-sequence ops wait until the whole device is read (allocations may come after the sequence).
    let mut seq_lines: Vec<&Line> = Vec::new();
    for l in b.lines {
        let n = l.number;
        let code = crate::aie_syntax::strip_comment(&l.text).trim().to_string();
        match &l.item {
            LineItem::Plain => {
                let top = stack.last_mut();
                match top {
                    Some(Ctx::Dma { blocks, .. }) | Some(Ctx::Task { blocks, .. }) => {
                        if code.starts_with('^') {
                            let label = code.split(|c: char| c == ':' || c.is_whitespace()).next().unwrap_or("").to_string();
                            blocks.push(BlockBd {
                                line: n,
                                label,
                                ..Default::default()
                            });
                        } else if !code.is_empty() {
                            return err(n, format!("`{code}` inside a DMA region is not modelled"));
                        }
                    }
                    Some(Ctx::DmaOp { continued, blocks, .. }) if code.starts_with('}') => {
                        if code.ends_with('{') {
                            *continued = true;
                            blocks.push(BlockBd {
                                line: n,
                                label: format!("^{}", blocks.len()),
                                ..Default::default()
                            });
                        } else if *continued {
                            let Some(Ctx::DmaOp {
                                line,
                                chan,
                                looped,
                                repeat,
                                blocks,
                                ..
                            }) = stack.pop()
                            else {
                                unreachable!()
                            };
                            finish_dma_op(&mut b, line, chan, looped, repeat, blocks)?;
                        }
                    }
                    Some(Ctx::DmaOp { .. }) if code.is_empty() => {}
                    Some(Ctx::DmaOp { .. }) => return err(n, format!("`{code}` inside an aie.dma region is not modelled")),
                    Some(Ctx::PacketFlow { .. }) if code.is_empty() => {}
                    Some(Ctx::PacketFlow { .. }) => return err(n, format!("`{code}` inside aie.packet_flow")),
                    Some(Ctx::Sequence) => seq_lines.push(l),
                    Some(Ctx::Core) | Some(Ctx::Other) => {}
                    Some(Ctx::Device) => {
                        if code.starts_with("memref.global") {
                            // memref.global "private" constant @name : memref<8xi32> = dense<[...]>
                            let name = code.split('@').nth(1).and_then(|r| symbol(&format!("@{r}")));
                            let value = code.split_once('=').map(|(_, v)| v.trim().to_string());
                            match (name, value) {
                                (Some(nm), Some(v)) => {
                                    b.global_values.insert(nm, v);
                                }
                                _ => return err(n, "a memref.global the emulator cannot read"),
                            }
                        } else if !code.is_empty() && !super::design::is_alias_definition(&code) {
                            return err(n, format!("`{code}` inside aie.device is not modelled by the emulator"));
                        }
                    }
                    None => {
                        if !code.is_empty() && !super::design::is_alias_definition(&code) && code != "module {" && code != "}" && !code.starts_with("module ") {
                            return err(n, format!("`{code}` outside aie.device is not supported by the emulator"));
                        }
                    }
                }
                // Braces of plain lines in cores and other nested regions.
                if matches!(stack.last(), Some(Ctx::Core) | Some(Ctx::Other) | Some(Ctx::Sequence)) {
                    for ch in code.chars() {
                        if ch == '{' {
                            stack.push(Ctx::Other);
                        } else if ch == '}' && matches!(stack.last(), Some(Ctx::Other)) {
                            stack.pop();
                        }
                    }
                }
            }
            LineItem::Close(_) => {
                let attrs = l.region_attrs.clone();
                match stack.pop() {
                    Some(Ctx::Dma { tile, blocks }) => finish_dma_region(&mut b, tile, blocks)?,
                    Some(Ctx::DmaOp {
                        line,
                        chan,
                        looped,
                        repeat,
                        mut blocks,
                        ..
                    }) => {
                        if code.ends_with('{') {
                            // `}, {`: the next descriptor of the same aie.dma.
                            blocks.push(BlockBd {
                                line: n,
                                label: format!("^{}", blocks.len()),
                                ..Default::default()
                            });
                            stack.push(Ctx::DmaOp {
                                line,
                                chan,
                                looped,
                                repeat,
                                blocks,
                                continued: true,
                            });
                        } else {
                            finish_dma_op(&mut b, line, chan, looped, repeat, blocks)?;
                        }
                    }
                    Some(Ctx::PacketFlow { mut flow }) => {
                        let d = dict(&attrs);
                        flow.keep_header = d.get("keep_pkt_header").map(|v| v.trim() == "true").unwrap_or(flow.keep_header);
                        if flow.srcs.is_empty() || flow.dsts.is_empty() {
                            return err(flow.line, "aie.packet_flow needs a packet_source and a packet_dest");
                        }
                        b.m.packet_flows.push(flow);
                    }
                    Some(Ctx::Task { result, line, chan, blocks }) => {
                        let d = dict(&attrs);
                        let at = b.chain(&blocks, None)?;
                        let first = blocks.iter().find_map(|bl| bl.bd).ok_or_else(|| DesignError {
                            line,
                            message: "a DMA task without an aie.dma_bd".into(),
                        })?;
                        let _ = at;
                        let repeat = d.get("repeat_count").and_then(|v| int(v)).unwrap_or(0);
                        if !(0..=255).contains(&repeat) {
                            return err(line, format!("repeat_count {repeat} is outside 0..=255"));
                        }
                        let issue_token = d.get("issue_token").map(|v| v.trim() == "true").unwrap_or(false);
                        b.m.tasks.push(Task {
                            line,
                            chan,
                            bd: first,
                            repeat: repeat as u32,
                            issue_token,
                        });
                        b.tasks_by_name.insert(result, b.m.tasks.len() - 1);
                        b.scopes.pop();
                    }
                    Some(Ctx::Core) => {
                        if let Some(c) = b.cores.last_mut() {
                            c.close_line = n;
                            let stack = dict(&attrs).get("stack_size").and_then(|v| int(v)).unwrap_or(DEFAULT_STACK);
                            b.stacks.insert(c.tile, stack);
                        }
                    }
                    _ => {}
                }
                if stack.last().is_none() {
                    // closed the device
                }
            }
            LineItem::Op { result, op } => {
                let op: &AieOp = op;
                let top_is_seq = matches!(stack.last(), Some(Ctx::Sequence));
                match op {
                    AieOp::Device { device: d, .. } => {
                        if device.is_some() {
                            return err(n, "more than one aie.device is not supported by the emulator");
                        }
                        device = Some(d.clone());
                        b.m.npu2 = d.starts_with("npu2");
                        stack.push(Ctx::Device);
                    }
                    AieOp::Tile { col, row, .. } => {
                        let t = TileId { col: *col, row: *row };
                        b.tiles.insert(result.clone().unwrap_or_default(), t);
                        if !b.m.tiles.contains(&t) {
                            b.m.tiles.push(t);
                        }
                    }
                    AieOp::Buffer {
                        tile,
                        ty,
                        sym_name,
                        initial_value,
                        address,
                        ..
                    } => {
                        let t = b.tile(tile, n)?;
                        if t.is_shim() {
                            return err(n, format!("aie.buffer on shim tile {t}, which has no data memory"));
                        }
                        let nested = !matches!(stack.last(), Some(Ctx::Device));
                        let name = result.clone().unwrap_or_default();
                        b.design_buffers.push(Buffer {
                            name: if nested { String::new() } else { name.clone() },
                            sym_name: sym_name.clone(),
                            line: n,
                            tile: t,
                            ty: dma_memref(ty, n)?,
                            initial_value: initial_value.clone(),
                            address: *address,
                        });
                        let i = b.design_buffers.len() - 1;
                        b.scopes.last_mut().unwrap().insert(name, Named::Buffer(i));
                    }
                    AieOp::Core { tile } => {
                        let tile = b.tile(tile, n)?;
                        if tile.is_shim() || tile.is_mem() {
                            return err(n, format!("aie.core on tile {tile}, which is not a compute tile"));
                        }
                        if b.cores.iter().any(|c| c.tile == tile) {
                            return err(n, format!("two aie.core ops on tile {tile}"));
                        }
                        b.cores.push(Core {
                            tile,
                            open_line: n,
                            close_line: 0,
                            buffers: Vec::new(),
                        });
                        stack.push(Ctx::Core);
                    }
                    AieOp::RuntimeSequence { args, .. } => {
                        if b.seq_seen {
                            return err(n, "more than one aie.runtime_sequence");
                        }
                        b.seq_seen = true;
                        b.seq_line = n;
                        b.seq_args = args
                            .iter()
                            .map(|(nm, t)| Ok((nm.clone(), MemrefType::parse(t, n)?)))
                            .collect::<Result<_, DesignError>>()?;
                        stack.push(Ctx::Sequence);
                    }
                    AieOp::End => {
                        if let Some(Ctx::Dma { blocks, .. }) | Some(Ctx::Task { blocks, .. }) = stack.last_mut() {
                            Builder::end_block(blocks);
                        }
                    }
                    AieOp::ObjectFifo { .. } | AieOp::Link { .. } | AieOp::Acquire { .. } | AieOp::Access { .. } | AieOp::Release { .. } => {
                        return err(
                            n,
                            format!(
                                "`{}` in a hardware-level design: object FIFOs and locks/DMAs are not emulated together",
                                op.op_name()
                            ),
                        );
                    }
                    AieOp::DmaMemcpyNd { .. } | AieOp::DmaWait { .. } if top_is_seq => seq_lines.push(l),
                    AieOp::DmaMemcpyNd { .. } | AieOp::DmaWait { .. } => return err(n, format!("`{}` outside aie.runtime_sequence", op.op_name())),
                    AieOp::Hw { name, text } => {
                        let in_core = stack.iter().any(|c| matches!(c, Ctx::Core));
                        if in_core {
                            if *name != "aie.use_lock" {
                                return err(n, format!("`{name}` inside an aie.core"));
                            }
                        } else if matches!(stack.last(), Some(Ctx::Sequence)) {
                            if op.opens_region().is_some() {
                                // dma_configure_task[_for]: a region of descriptors.
                                let (chan, line) = task_channel(&b, name, text, n)?;
                                b.scopes.push(HashMap::new());
                                stack.push(Ctx::Task {
                                    result: result.clone().unwrap_or_default(),
                                    line,
                                    chan,
                                    blocks: Vec::new(),
                                });
                                continue;
                            }
                            seq_lines.push(l);
                        } else {
                            hw_device_op(&mut b, &mut stack, result.as_deref(), name, text, n)?;
                        }
                    }
                }
            }
        }
    }
    let device = device.ok_or_else(|| DesignError {
        line: 1,
        message: "no aie.device in the design".into(),
    })?;
    if !b.seq_seen {
        return err(1, "no aie.runtime_sequence in the design");
    }
    b.m.outputs = vec![false; b.seq_args.len()];
    assign_addresses(&mut b);
    sequence(&mut b, &seq_lines)?;
    add_data_memories(&mut b);
    // Buffers each core uses: those of its own tile it names.
    let buffer_index: HashMap<&str, usize> = b
        .design_buffers
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.name.is_empty())
        .map(|(i, x)| (x.name.as_str(), i))
        .collect();
    let mut cores = std::mem::take(&mut b.cores);
    for core in cores.iter_mut() {
        for l in &lines[core.open_line..core.close_line.max(core.open_line + 1) - 1] {
            if !matches!(l.item, LineItem::Plain) {
                continue;
            }
            for name in super::design::ssa_names(crate::aie_syntax::strip_comment(&l.text)) {
                let Some(&bi) = buffer_index.get(name) else { continue };
                let buf = &b.design_buffers[bi];
                if buf.tile != core.tile {
                    return err(
                        l.number,
                        format!(
                            "the core on tile {} uses buffer {name} of tile {} (aie.buffer at line {}): a core can only \
                             use the buffers of its own tile (sharing a neighbour's memory is not emulated)",
                            core.tile, buf.tile, buf.line
                        ),
                    );
                }
                if !core.buffers.contains(&bi) {
                    core.buffers.push(bi);
                }
            }
        }
    }
    let arg_bytes: u128 = b.seq_args.iter().map(|(_, t)| t.bytes() as u128).sum();
    let buffer_bytes: u128 = b.design_buffers.iter().map(|x| x.ty.bytes() as u128).sum();
    if arg_bytes + buffer_bytes > HOST_MEMORY_LIMIT as u128 {
        return err(
            b.seq_line,
            format!(
                "the design (runtime-sequence arguments {}, buffers {}) needs more than the emulator's host memory limit of {}",
                super::design::show_bytes(arg_bytes),
                super::design::show_bytes(buffer_bytes),
                super::design::show_bytes(HOST_MEMORY_LIMIT as u128)
            ),
        );
    }
    Ok(Design {
        device,
        fifos: Vec::new(),
        fifo_index: HashMap::new(),
        links: Vec::new(),
        buffers: b.design_buffers,
        cores,
        sequence: Sequence {
            line: b.seq_line,
            args: b.seq_args,
            ops: Vec::new(),
        },
        locks: b.locks,
        hw: Some(Box::new(b.m)),
    })
}

/// mlir-aie's default core stack size in bytes (`aie.core` `stack_size`).
const DEFAULT_STACK: i64 = 0x400;

/// Gives every buffer without an `address` the one `aie-assign-buffer-addresses` (its default bank-aware
/// allocation) would: per tile, largest buffers first, each in the next bank with room, round robin; bank 0
/// starts after the core's stack. Register writes and register-built descriptors address these bytes. A tile
/// whose buffers do not fit keeps them unaddressed.
fn assign_addresses(b: &mut Builder) {
    let mut tiles: Vec<TileId> = b.design_buffers.iter().filter(|x| x.address.is_none()).map(|x| x.tile).collect();
    tiles.sort_by_key(|t| (t.col, t.row));
    tiles.dedup();
    for t in tiles {
        let size = regs::data_memory(t) as i64;
        let banks: i64 = if t.is_mem() { 8 } else { 4 };
        let bank = size / banks;
        let mut next: Vec<i64> = (0..banks).map(|i| i * bank).collect();
        next[0] += b.stacks.get(&t).copied().unwrap_or(0).clamp(0, bank);
        let mine: Vec<usize> = (0..b.design_buffers.len()).filter(|&i| b.design_buffers[i].tile == t).collect();
        for &i in &mine {
            if let Some(a) = b.design_buffers[i].address {
                let k = (a / bank).clamp(0, banks - 1) as usize;
                next[k] = next[k].max(a + b.design_buffers[i].ty.bytes() as i64);
            }
        }
        let mut todo: Vec<usize> = mine.into_iter().filter(|&i| b.design_buffers[i].address.is_none()).collect();
        todo.sort_by_key(|&i| std::cmp::Reverse(b.design_buffers[i].ty.bytes()));
        let mut placed = Vec::new();
        let mut start = 0usize;
        for i in todo {
            let len = b.design_buffers[i].ty.bytes() as i64;
            let fit = (0..banks as usize)
                .map(|k| (start + k) % banks as usize)
                .find(|&k| next[k] + len <= (k as i64 + 1) * bank);
            let Some(k) = fit else {
                placed.clear();
                break;
            };
            placed.push((i, next[k]));
            next[k] += len;
            start = (k + 1) % banks as usize;
        }
        for (i, a) in placed {
            b.design_buffers[i].address = Some(a);
        }
    }
}

/// Tiles whose registers the runtime sequence writes get their whole data memory as a last buffer, so
/// descriptors and writes reach bytes no `aie.buffer` covers (buffers come first when looking an address up).
fn add_data_memories(b: &mut Builder) {
    let mut tiles = Vec::new();
    for op in &b.m.seq {
        let t = match op {
            HwSeqOp::Write { address, .. } => regs::split_address(*address).0,
            HwSeqOp::WriteBd { tile, .. } => *tile,
            _ => continue,
        };
        if !t.is_shim() && b.m.tiles.contains(&t) && !tiles.contains(&t) {
            tiles.push(t);
        }
    }
    for t in tiles {
        let words = regs::data_memory(t) / 4;
        b.design_buffers.push(Buffer {
            name: String::new(),
            sym_name: Some(format!("data_memory_{}_{}", t.col, t.row)),
            line: b.seq_line,
            tile: t,
            ty: MemrefType::parse(&format!("memref<{words}xi32>"), b.seq_line).expect("a valid memref type"),
            initial_value: None,
            address: Some(0),
        });
    }
}

fn task_channel(b: &Builder, name: &str, text: &str, n: usize) -> Result<(ChanId, usize), DesignError> {
    if name == "aiex.dma_configure_task_for" {
        let s = text.trim_start_matches(name).trim();
        let sym = symbol(s).ok_or_else(|| DesignError {
            line: n,
            message: "expected `aiex.dma_configure_task_for @alloc {`".into(),
        })?;
        let chan = *b.m.allocs.get(&sym).ok_or_else(|| DesignError {
            line: n,
            message: format!("@{sym} is not an aie.shim_dma_allocation (declare it before the runtime sequence)"),
        })?;
        return Ok((chan, n));
    }
    let (ops, _) = operands(text, name).ok_or_else(|| DesignError {
        line: n,
        message: format!("expected `{name}(%tile, dir, channel)`"),
    })?;
    let tile = b.tile(ops.first().map(String::as_str).unwrap_or(""), n)?;
    let dir = ops.get(1).and_then(|d| dir_of(d)).ok_or_else(|| DesignError {
        line: n,
        message: "expected S2MM or MM2S".into(),
    })?;
    let ch = ops.get(2).and_then(|c| int(c)).filter(|c| (0..16).contains(c)).ok_or_else(|| DesignError {
        line: n,
        message: "bad channel".into(),
    })?;
    Ok((ChanId { tile, dir, ch: ch as u32 }, n))
}

fn finish_dma_region(b: &mut Builder, tile: TileId, blocks: Vec<BlockBd>) -> Result<(), DesignError> {
    let at = b.chain(&blocks, None)?;
    for bl in &blocks {
        if let Some((line, chan, dest, _chain, repeat)) = &bl.start {
            let bd = match at.get(dest) {
                Some(Some(bd)) => *bd,
                Some(None) => continue,
                None => return err(*line, format!("aie.dma_start to {dest}, which is no block of this region")),
            };
            add_start(
                b,
                ChannelStart {
                    line: *line,
                    chan: *chan,
                    bd,
                    repeat: *repeat,
                },
            )?;
        }
    }
    let _ = tile;
    b.scopes.pop();
    Ok(())
}

fn finish_dma_op(b: &mut Builder, line: usize, chan: ChanId, looped: bool, repeat: u32, blocks: Vec<BlockBd>) -> Result<(), DesignError> {
    let blocks: Vec<BlockBd> = blocks
        .into_iter()
        .filter(|bl| bl.bd.is_some() || bl.acquire.is_some() || bl.release.is_some())
        .collect();
    if let Some(bl) = blocks.iter().find(|bl| bl.bd.is_none()) {
        return err(bl.line, "a descriptor region of aie.dma without an aie.dma_bd");
    }
    b.chain(&blocks, Some(looped))?;
    let Some(first) = blocks.first().and_then(|bl| bl.bd) else {
        return err(line, "aie.dma without descriptors");
    };
    add_start(b, ChannelStart { line, chan, bd: first, repeat })
}

/// Several starts of one channel queue their chains in order, as the channel's task queue does.
fn add_start(b: &mut Builder, s: ChannelStart) -> Result<(), DesignError> {
    let max = if s.chan.tile.is_mem() { 6 } else { 2 };
    if s.chan.ch >= max {
        return err(
            s.line,
            format!("{} does not exist (a tile of this kind has {max} {} channels)", s.chan, s.chan.dir.name()),
        );
    }
    b.m.starts.push(s);
    Ok(())
}

/// Device-level hardware ops (and those inside DMA and packet-flow regions).
fn hw_device_op(b: &mut Builder, stack: &mut Vec<Ctx>, result: Option<&str>, name: &str, text: &str, n: usize) -> Result<(), DesignError> {
    let bad = |m: String| DesignError {
        line: n,
        message: format!("{name}: {m}"),
    };
    match stack.last_mut() {
        Some(Ctx::Dma { tile, blocks }) if !matches!(name, "aie.lock" | "aie.dma") => {
            let t = *tile;
            let mut bl = std::mem::take(blocks);
            let r = b.block_op(&mut bl, name, text, n, Some(t));
            if let Some(Ctx::Dma { blocks, .. }) = stack.last_mut() {
                *blocks = bl;
            }
            return r;
        }
        Some(Ctx::DmaOp { chan, blocks, .. }) => {
            let t = chan.tile;
            let mut bl = std::mem::take(blocks);
            if bl.is_empty() {
                bl.push(BlockBd {
                    line: n,
                    label: "^0".into(),
                    ..Default::default()
                });
            }
            let r = b.block_op(&mut bl, name, text, n, Some(t));
            if let Some(Ctx::DmaOp { blocks, .. }) = stack.last_mut() {
                *blocks = bl;
            }
            return r;
        }
        Some(Ctx::Task { chan, blocks, .. }) => {
            let t = chan.tile;
            let mut bl = std::mem::take(blocks);
            let r = b.block_op(&mut bl, name, text, n, Some(t));
            if let Some(Ctx::Task { blocks, .. }) = stack.last_mut() {
                *blocks = bl;
            }
            return r;
        }
        Some(Ctx::PacketFlow { flow }) => {
            let (ops, _) = operands(text, name).ok_or_else(|| bad("expected `<%tile, Bundle : channel>`".into()))?;
            if ops.len() != 2 {
                return Err(bad("expected `<%tile, Bundle : channel>`".into()));
            }
            let p = b.port(&ops[0], &ops[1], n)?;
            match name {
                "aie.packet_source" => flow.srcs.push(p),
                "aie.packet_dest" => flow.dsts.push(p),
                _ => return Err(bad("only packet_source and packet_dest belong in aie.packet_flow".into())),
            }
            return Ok(());
        }
        _ => {}
    }
    match name {
        "aie.lock" => {
            let (ops, rest) = operands(text, name).ok_or_else(|| bad("expected `aie.lock(%tile, id)`".into()))?;
            let tile = b.tile(ops.first().map(String::as_str).unwrap_or(""), n)?;
            let d = dict(rest);
            let id = match ops.get(1) {
                Some(v) => int(v).ok_or_else(|| bad(format!("bad lock id `{v}`")))?,
                None => {
                    // No id: the next free one of the tile.
                    let used: Vec<i64> = b.locks.iter().filter(|l| l.tile == tile).map(|l| l.id).collect();
                    (0..).find(|i| !used.contains(i)).unwrap_or(0)
                }
            };
            let max = if tile.is_mem() { 64 } else { 16 };
            if !(0..max).contains(&id) {
                return Err(bad(format!("lock id {id} on tile {tile}, which has locks 0..{max}")));
            }
            if let Some(o) = b.locks.iter().find(|l| l.tile == tile && l.id == id) {
                return Err(bad(format!("lock {id} of tile {tile} is defined twice (first at line {})", o.line)));
            }
            let init = d
                .get("init")
                .map(|v| int(v).ok_or_else(|| bad(format!("bad init `{v}`"))))
                .transpose()?
                .unwrap_or(0);
            if !(0..=LOCK_MAX).contains(&init) {
                return Err(bad(format!("init {init} is outside 0..={LOCK_MAX}")));
            }
            let nested = !matches!(stack.last(), Some(Ctx::Device));
            let rname = result.unwrap_or("").to_string();
            b.locks.push(Lock {
                name: if nested { String::new() } else { rname.clone() },
                sym_name: d.get("sym_name").and_then(|v| text::string(v)),
                line: n,
                tile,
                id,
                init,
            });
            let i = b.locks.len() - 1;
            b.scopes.last_mut().unwrap().insert(rname, Named::Lock(i));
        }
        "aie.mem" | "aie.memtile_dma" | "aie.shim_dma" => {
            let (ops, _) = operands(text, name).ok_or_else(|| bad("expected `(%tile) {`".into()))?;
            let tile = b.tile(ops.first().map(String::as_str).unwrap_or(""), n)?;
            let ok = match name {
                "aie.mem" => !tile.is_mem() && !tile.is_shim(),
                "aie.memtile_dma" => tile.is_mem(),
                _ => tile.is_shim(),
            };
            if !ok {
                return Err(bad(format!("tile {tile} is not the kind of tile this op belongs to")));
            }
            b.scopes.push(HashMap::new());
            stack.push(Ctx::Dma { tile, blocks: Vec::new() });
        }
        "aie.dma" => {
            let tile = match stack.last() {
                Some(Ctx::Dma { tile, .. }) => *tile,
                _ => return Err(bad("outside aie.mem / aie.memtile_dma / aie.shim_dma".into())),
            };
            let (ops, rest) = operands(text, name).ok_or_else(|| bad("expected `aie.dma(dir, channel) [{`".into()))?;
            let dir = ops.first().and_then(|d| dir_of(d)).ok_or_else(|| bad("expected S2MM or MM2S".into()))?;
            let ch = ops
                .get(1)
                .and_then(|c| int(c))
                .filter(|c| (0..16).contains(c))
                .ok_or_else(|| bad("bad channel".into()))?;
            let attrs = rest.split('[').next().unwrap_or("");
            let d = dict(attrs);
            let looped = d.get("loop").map(|v| v.trim() != "false").unwrap_or(true);
            let repeat = d.get("repeat_count").and_then(|v| int(v)).unwrap_or(0).clamp(0, 255) as u32;
            stack.push(Ctx::DmaOp {
                line: n,
                chan: ChanId { tile, dir, ch: ch as u32 },
                looped,
                repeat,
                blocks: Vec::new(),
                continued: false,
            });
        }
        "aie.flow" => {
            let (ops, _) = operands(text, name).ok_or_else(|| bad("expected `aie.flow(%src, Bundle : ch, %dst, Bundle : ch)`".into()))?;
            if ops.len() != 4 {
                return Err(bad("expected `aie.flow(%src, Bundle : ch, %dst, Bundle : ch)`".into()));
            }
            let src = b.port(&ops[0], &ops[1], n)?;
            let dst = b.port(&ops[2], &ops[3], n)?;
            b.m.flows.push(Flow { line: n, src, dst });
        }
        "aie.packet_flow" => {
            let (ops, rest) = operands(text, name).ok_or_else(|| bad("expected `aie.packet_flow(id) {`".into()))?;
            let id = ops
                .first()
                .and_then(|v| int(v))
                .filter(|v| (0..32).contains(v))
                .ok_or_else(|| bad("packet id must be in 0..32".into()))?;
            let d = dict(rest.trim_end().trim_end_matches('{'));
            stack.push(Ctx::PacketFlow {
                flow: PacketFlow {
                    line: n,
                    id: id as u8,
                    keep_header: d.get("keep_pkt_header").map(|v| v.trim() == "true").unwrap_or(false),
                    srcs: Vec::new(),
                    dsts: Vec::new(),
                },
            });
        }
        "aie.shim_dma_allocation" => {
            let s = text.trim_start_matches(name).trim();
            let sym = symbol(s).ok_or_else(|| bad("expected `@name(%tile, dir, channel)`".into()))?;
            let i = s.find('(').ok_or_else(|| bad("expected `(%tile, dir, channel)`".into()))?;
            let (inner, _) = text::bracketed(s, i).ok_or_else(|| bad("unbalanced parentheses".into()))?;
            let ops = text::split_top(inner);
            let tile = b.tile(ops.first().map(String::as_str).unwrap_or(""), n)?;
            let dir = ops.get(1).and_then(|d| dir_of(d)).ok_or_else(|| bad("expected S2MM or MM2S".into()))?;
            let ch = ops
                .get(2)
                .and_then(|c| int(c))
                .filter(|c| (0..2).contains(c))
                .ok_or_else(|| bad("a shim DMA has channels 0 and 1".into()))?;
            if !tile.is_shim() {
                return Err(bad(format!("tile {tile} is not a shim tile")));
            }
            if b.m.allocs.insert(sym.clone(), ChanId { tile, dir, ch: ch as u32 }).is_some() {
                return Err(bad(format!("@{sym} is defined twice")));
            }
        }
        other => return err(n, format!("`{other}` outside the region it belongs to")),
    }
    Ok(())
}

/// The runtime sequence's ops, in order.
fn sequence(b: &mut Builder, lines: &[&Line]) -> Result<(), DesignError> {
    let mut task_depth = 0usize;
    for l in lines {
        let n = l.number;
        let code = crate::aie_syntax::strip_comment(&l.text).trim().to_string();
        match &l.item {
            LineItem::Plain => {
                if code.is_empty() || code == "}" {
                    continue;
                }
                if let Some((name, v)) = code.split_once('=').and_then(|(lhs, rhs)| {
                    let r = rhs.trim().strip_prefix("arith.constant")?;
                    Some((lhs.trim().to_string(), int(r.split(':').next()?)?))
                }) {
                    b.constants.insert(name, v);
                    continue;
                }
                if code.contains("memref.get_global") {
                    let (lhs, rhs) = code.split_once('=').ok_or_else(|| DesignError {
                        line: n,
                        message: "bad memref.get_global".into(),
                    })?;
                    let sym = rhs.split('@').nth(1).and_then(|r| symbol(&format!("@{r}"))).unwrap_or_default();
                    let v = b.global_values.get(&sym).ok_or_else(|| DesignError {
                        line: n,
                        message: format!("@{sym} is not a memref.global of the device"),
                    })?;
                    let data = text::dense_ints(v).ok_or_else(|| DesignError {
                        line: n,
                        message: format!("@{sym}: only dense integer globals are read"),
                    })?;
                    b.globals.insert(lhs.trim().to_string(), data);
                    continue;
                }
                return err(
                    n,
                    format!(
                        "`{}` in the runtime sequence is not modelled by the emulator",
                        code.split_whitespace().next().unwrap_or("")
                    ),
                );
            }
            LineItem::Close(_) => {
                task_depth = task_depth.saturating_sub(1);
            }
            LineItem::Op { result, op } => match &**op {
                AieOp::DmaMemcpyNd { .. } => {
                    let op = super::design::resolve_constants(op, &b.constants, n)?;
                    memcpy(b, &op, n)?;
                }
                AieOp::DmaWait { symbol } => {
                    let chan = *b.m.allocs.get(symbol).ok_or_else(|| DesignError {
                        line: n,
                        message: format!("aiex.npu.dma_wait on @{symbol}, which is not an aie.shim_dma_allocation"),
                    })?;
                    b.m.seq.push(HwSeqOp::Wait {
                        line: n,
                        what: format!("aiex.npu.dma_wait {{symbol = @{symbol}}}"),
                        chans: vec![chan],
                    });
                }
                AieOp::Hw { name, text } => {
                    if op.opens_region().is_some() {
                        task_depth += 1;
                        continue;
                    }
                    if task_depth > 0 {
                        continue;
                    }
                    seq_hw_op(b, result.as_deref(), name, text, n)?;
                }
                other => return err(n, format!("`{}` inside the runtime sequence", other.op_name())),
            },
        }
    }
    Ok(())
}

fn memcpy(b: &mut Builder, op: &AieOp, n: usize) -> Result<(), DesignError> {
    let AieOp::DmaMemcpyNd {
        memref,
        offsets,
        sizes,
        strides,
        metadata,
        memref_type,
        packet,
        issue_token,
        ..
    } = op
    else {
        unreachable!()
    };
    let chan = *b.m.allocs.get(metadata).ok_or_else(|| DesignError {
        line: n,
        message: format!("aiex.npu.dma_memcpy_nd: @{metadata} is not an aie.shim_dma_allocation"),
    })?;
    let arg = b.seq_args.iter().position(|(a, _)| a == memref).ok_or_else(|| DesignError {
        line: n,
        message: format!("`{memref}` is not a runtime-sequence argument"),
    })?;
    let ty = b.seq_args[arg].1.clone();
    if ty.text != *memref_type {
        return err(n, format!("`{memref}` has type {} but the op says {memref_type}", ty.text));
    }
    let st = |v: &[DmaIndex]| -> [i64; 4] {
        let mut a = [0i64; 4];
        for (i, x) in v.iter().enumerate() {
            if let DmaIndex::Static(k) = x {
                a[i] = *k;
            }
        }
        a
    };
    let (o, s, t) = (st(offsets), st(sizes), st(strides));
    if s.iter().any(|&x| !(1..=1 << 20).contains(&x)) || t.iter().any(|&x| !(0..1 << 30).contains(&x)) || o.iter().any(|&x| !(0..1 << 30).contains(&x)) {
        return err(n, "aiex.npu.dma_memcpy_nd: sizes must be in 1..2^20, offsets and strides in 0..2^30");
    }
    let base: u64 = (0..4).map(|d| o[d] as u64 * t[d] as u64).sum();
    let len: u128 = s.iter().map(|&x| x as u128).product();
    if len * ty.dtype.size_bytes() as u128 > HOST_MEMORY_LIMIT as u128 {
        return err(
            n,
            format!(
                "aiex.npu.dma_memcpy_nd moves {len} elements; the emulator moves at most {} per DMA",
                super::design::show_bytes(HOST_MEMORY_LIMIT as u128)
            ),
        );
    }
    let bd = Bd {
        line: n,
        mem: BdMem::Arg(arg),
        elem: ty.dtype.size_bytes(),
        offset: base,
        len: len as u64,
        dims: (0..4).map(|d| (s[d] as u64, t[d] as u64)).collect(),
        pads: Vec::new(),
        pad_value: 0,
        acquire: None,
        release: None,
        packet: packet.map(|(ty, id)| (ty as u8, id as u8)),
        next: None,
        iteration: None,
    };
    if let Some(last) = run::last_element(&bd) {
        if last >= ty.elements() as u64 {
            return err(
                n,
                format!(
                    "aiex.npu.dma_memcpy_nd: the access pattern reaches element {last} of `{memref}`, which has {} elements",
                    ty.elements()
                ),
            );
        }
    }
    if chan.dir == Dir::S2MM {
        b.m.outputs[arg] = true;
    }
    b.m.bds.push(bd);
    let _ = issue_token;
    b.m.seq.push(HwSeqOp::Push {
        line: n,
        chan,
        bd: b.m.bds.len() - 1,
        repeat: 0,
        task: None,
    });
    Ok(())
}

fn seq_hw_op(b: &mut Builder, _result: Option<&str>, name: &str, text: &str, n: usize) -> Result<(), DesignError> {
    let bad = |m: String| DesignError {
        line: n,
        message: format!("{name}: {m}"),
    };
    let d = dict(text);
    let get = |k: &str| -> Result<i64, DesignError> {
        d.get(k).and_then(|v| int(v)).ok_or_else(|| DesignError {
            line: n,
            message: format!("{name}: missing or bad `{k}`"),
        })
    };
    let opt = |k: &str| d.get(k).and_then(|v| int(v));
    // Addresses given with column and row are relative to that tile; with `buffer`, a word index into it.
    let buffer = d.get("buffer").and_then(|v| symbol(v));
    let addr = |address: i64| -> Result<u64, DesignError> {
        let a = address as u64 & 0xFFFF_FFFF;
        if let Some(sym) = &buffer {
            let buf = b
                .design_buffers
                .iter()
                .find(|x| x.sym_name.as_deref() == Some(sym.as_str()))
                .ok_or_else(|| bad(format!("@{sym} is not an aie.buffer")))?;
            let base = buf
                .address
                .ok_or_else(|| bad(format!("@{sym} has no address (its tile's buffers do not fit)")))?;
            let at = base as u64 + a * 4;
            if a * 4 >= buf.ty.bytes() as u64 {
                return Err(bad(format!("word {a} is outside @{sym} ({} bytes)", buf.ty.bytes())));
            }
            return Ok(regs::tile_address(buf.tile.col as u64, buf.tile.row as u64, at));
        }
        match (opt("column"), opt("row")) {
            (Some(c), Some(r)) => Ok(regs::tile_address(c as u64, r as u64, a & regs::TILE_OFFSET_MASK)),
            _ => Ok(a),
        }
    };
    match name {
        "aiex.npu.write32" | "aiex.npu.maskwrite32" => {
            let address = addr(get("address")?)?;
            let value = get("value")? as u32;
            let mask = if name == "aiex.npu.maskwrite32" { get("mask")? as u32 } else { u32::MAX };
            b.m.seq.push(HwSeqOp::Write { line: n, address, value, mask });
        }
        "aiex.npu.blockwrite" => {
            let (ops, _) = operands(text, name).ok_or_else(|| bad("expected `aiex.npu.blockwrite(%data) {address = ...}`".into()))?;
            let data = ops
                .first()
                .and_then(|o| ssa(o))
                .and_then(|v| b.globals.get(&v).cloned())
                .ok_or_else(|| bad("the data is not a memref.get_global of a dense global".into()))?;
            let address = addr(get("address")?)?;
            for (k, w) in data.iter().enumerate() {
                b.m.seq.push(HwSeqOp::Write {
                    line: n,
                    address: address + 4 * k as u64,
                    value: *w as u32,
                    mask: u32::MAX,
                });
            }
        }
        "aiex.npu.writebd" => {
            let tile = TileId {
                col: get("column")?,
                row: get("row")?,
            };
            let bd_id = get("bd_id")? as u32;
            let f = |k: &str| opt(k).unwrap_or(0);
            let words = regs::encode_writebd(tile, &f);
            b.m.seq.push(HwSeqOp::WriteBd { line: n, tile, bd_id, words });
        }
        "aiex.npu.address_patch" => {
            let address = get("addr")? as u64;
            let arg = get("arg_idx")?;
            if arg < 0 || arg as usize >= b.seq_args.len() {
                return Err(bad(format!("arg_idx {arg}: the runtime sequence has {} arguments", b.seq_args.len())));
            }
            b.m.seq.push(HwSeqOp::AddressPatch {
                line: n,
                address,
                arg: arg as usize,
                plus: opt("arg_plus").unwrap_or(0),
            });
        }
        "aiex.npu.sync" => {
            let (c, r) = (get("column")?, get("row")?);
            let (cn, rn) = (opt("column_num").unwrap_or(1), opt("row_num").unwrap_or(1));
            let dir = if get("direction")? == 0 { Dir::S2MM } else { Dir::MM2S };
            let ch = get("channel")? as u32;
            if !(1..=64).contains(&cn) || !(1..=8).contains(&rn) {
                return Err(bad("column_num must be in 1..=64 and row_num in 1..=8".into()));
            }
            let mut chans = Vec::new();
            for col in c..c + cn {
                for row in r..r + rn {
                    chans.push(ChanId {
                        tile: TileId { col, row },
                        dir,
                        ch,
                    });
                }
            }
            b.m.seq.push(HwSeqOp::Wait {
                line: n,
                what: "aiex.npu.sync".into(),
                chans,
            });
        }
        "aiex.npu.push_queue" => {
            // `(column, row, DIR : channel) {attrs}` as mlir-aie prints it, or everything in the dictionary.
            let (tile, dir, ch) = match operands(text, name).filter(|(o, _)| o.len() == 3) {
                Some((o, _)) => {
                    let (dir, ch) = o[2].split_once(':').ok_or_else(|| bad(format!("expected `DIR : channel`, found `{}`", o[2])))?;
                    let tile = TileId {
                        col: int(&o[0]).ok_or_else(|| bad(format!("bad column `{}`", o[0])))?,
                        row: int(&o[1]).ok_or_else(|| bad(format!("bad row `{}`", o[1])))?,
                    };
                    let dir = dir_of(dir.trim()).ok_or_else(|| bad(format!("expected S2MM or MM2S, found `{}`", dir.trim())))?;
                    let ch = int(ch)
                        .filter(|c| (0..16).contains(c))
                        .ok_or_else(|| bad(format!("bad channel `{}`", ch.trim())))?;
                    (tile, dir, ch as u32)
                }
                None => (
                    TileId {
                        col: get("column")?,
                        row: get("row")?,
                    },
                    if get("direction")? == 0 { Dir::S2MM } else { Dir::MM2S },
                    get("channel")? as u32,
                ),
            };
            let q = regs::queue_address(tile, dir, ch).ok_or_else(|| bad("no such channel".into()))?;
            let value = (get("bd_id")? as u32 & 0x3F)
                | ((opt("repeat_count").unwrap_or(0) as u32 & 0xFF) << 16)
                | if d.get("issue_token").map(|v| v.trim() == "true").unwrap_or(false) {
                    1 << 31
                } else {
                    0
                };
            b.m.seq.push(HwSeqOp::Write {
                line: n,
                address: q,
                value,
                mask: u32::MAX,
            });
        }
        "aiex.dma_start_task" | "aiex.dma_await_task" | "aiex.dma_free_task" => {
            let (ops, _) = operands(text, name).ok_or_else(|| bad("expected `(%task)`".into()))?;
            let t = ops
                .first()
                .and_then(|o| ssa(o))
                .and_then(|v| b.tasks_by_name.get(&v).copied())
                .ok_or_else(|| bad("the operand is not a configured DMA task".into()))?;
            match name {
                "aiex.dma_start_task" => {
                    let task = &b.m.tasks[t];
                    if task.chan.tile.is_shim() && task.chan.dir == Dir::S2MM {
                        let mut bd = Some(task.bd);
                        let mut seen = 0;
                        while let Some(i) = bd {
                            if let BdMem::Arg(a) = b.m.bds[i].mem {
                                b.m.outputs[a] = true;
                            }
                            bd = b.m.bds[i].next;
                            seen += 1;
                            if seen > b.m.bds.len() {
                                break;
                            }
                        }
                    }
                    b.m.seq.push(HwSeqOp::Push {
                        line: n,
                        chan: task.chan,
                        bd: task.bd,
                        repeat: task.repeat,
                        task: Some(t),
                    });
                }
                "aiex.dma_await_task" => b.m.seq.push(HwSeqOp::AwaitTask { line: n, task: t }),
                _ => {}
            }
        }
        other => return err(n, format!("`{other}` is not modelled in the runtime sequence")),
    }
    Ok(())
}
