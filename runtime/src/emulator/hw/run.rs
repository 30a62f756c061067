//! Executing a hardware-level design: DMA channels walking their descriptor chains (lock acquire, transfer,
//! lock release, next descriptor, repeats), streams between DMA ports (circuit flows, packet flows with their
//! headers), and the runtime sequence's pushes, waits and register writes. Runs on the calling thread under
//! the state lock shared with the core threads (which only touch locks and their own buffers).

use super::regs::{self, Reg};
use super::{Bd, BdMem, ChanId, Dir, HwModel, HwSeqOp, LockAction, PortRef, LOCK_MAX};
use crate::backend::{ArgData, RuntimeError};
use crate::emulator::design::{Design, DesignError, TileId};
use crate::emulator::exec::{CoreStatus, Shared, State};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long cores may compute without lock activity before the runtime sequence starts anyway.
const SEQUENCE_GATE: Duration = Duration::from_secs(2);

/// Bytes a stream connection buffers between its source and destination.
const STREAM_CAPACITY: usize = 64 << 10;

/// The last element a descriptor reads or writes (None when it moves nothing).
pub fn last_element(bd: &Bd) -> Option<u64> {
    if bd.len == 0 {
        return None;
    }
    if bd.dims.is_empty() {
        return Some(bd.offset + bd.len - 1);
    }
    let w = Walk::new(bd, 0);
    let mut last = bd.offset;
    for (k, d) in w.dims.iter().enumerate() {
        let size = if k == 0 { w.outer } else { d.0 };
        last = last.checked_add(size.saturating_sub(1).checked_mul(d.1)?)?;
    }
    Some(last)
}

/// The positions of a descriptor's access pattern, in elements: `dims` outermost first as (size, stride,
/// pad before, pad after); the outermost does not wrap.
struct Walk {
    base: u64,
    dims: Vec<(u64, u64, u64, u64)>,
    /// Stream elements (padding included).
    count: u64,
    /// Count along the outermost dimension.
    outer: u64,
    padded: bool,
}

impl Walk {
    fn new(bd: &Bd, extra: u64) -> Walk {
        let dims: Vec<(u64, u64, u64, u64)> = bd
            .dims
            .iter()
            .enumerate()
            .map(|(k, &(s, t))| {
                let (b, a) = bd.pads.get(k).copied().unwrap_or((0, 0));
                (s, t, b, a)
            })
            .collect();
        let padded = dims.iter().any(|d| d.2 > 0 || d.3 > 0);
        let (count, outer) = if dims.is_empty() {
            (bd.len, bd.len)
        } else if padded {
            let c = dims.iter().map(|d| d.0 + d.2 + d.3).product();
            (c, dims[0].0 + dims[0].2 + dims[0].3)
        } else {
            let inner: u64 = dims[1..].iter().map(|d| d.0).product::<u64>().max(1);
            (bd.len, bd.len.div_ceil(inner))
        };
        Walk {
            base: bd.offset + extra,
            dims,
            count,
            outer,
            padded,
        }
    }
    /// Element index of stream position `p` (None: padding), and how many positions from `p` are contiguous.
    fn at(&self, p: u64) -> (Option<u64>, u64) {
        if self.dims.is_empty() {
            return (Some(self.base + p), self.count - p);
        }
        let mut r = p;
        let mut at = self.base;
        let n = self.dims.len();
        let mut run = 1;
        for k in (0..n).rev() {
            let (s, t, b, a) = self.dims[k];
            let full = s + b + a;
            let c = if k == 0 { r } else { r % full };
            if k > 0 {
                r /= full;
            }
            if c < b || (k > 0 || self.padded) && c >= b + s {
                return (None, 1);
            }
            if k == n - 1 && t == 1 && !self.padded {
                run = (s - c).min(self.count - p);
            }
            at += (c - b) * t;
        }
        (Some(at), run.max(1))
    }
}

struct Pending {
    bd: usize,
    repeat: u32,
    task: Option<usize>,
}

struct Active {
    first: usize,
    bd: usize,
    repeat_left: u32,
    task: Option<usize>,
    acquired: bool,
    walk: Walk,
    pos: u64,
    started: bool,
    /// Destination streams of the current descriptor (MM2S) and whether each keeps the packet header.
    dests: Vec<(usize, bool)>,
    /// How many times the chain has run (the iteration dimension of register descriptors).
    uses: u64,
}

struct ChanRt {
    id: ChanId,
    queue: VecDeque<Pending>,
    cur: Option<Active>,
}

impl ChanRt {
    fn busy(&self) -> bool {
        self.cur.is_some() || !self.queue.is_empty()
    }
}

struct Stream {
    port: PortRef,
    data: VecDeque<u8>,
    /// The MM2S channel sending a packet into this stream (packets are not interleaved).
    owner: Option<usize>,
}

pub(crate) struct HwState {
    pub locks: Vec<i64>,
}

impl HwState {
    pub fn new(design: &Design) -> HwState {
        HwState {
            locks: design.locks.iter().map(|l| l.init).collect(),
        }
    }
}

/// Applies a lock action for a DMA or a core; false when it has to wait.
pub(crate) fn try_lock(value: &mut i64, action: LockAction, v: i64) -> Result<bool, String> {
    match action {
        LockAction::Acquire => Ok(*value == v),
        LockAction::AcquireGreaterEqual => {
            if *value >= v {
                *value -= v;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        LockAction::Release => {
            if *value + v > LOCK_MAX {
                return Err(format!(
                    "releasing {v} would take it to {}, above the largest lock value {LOCK_MAX}",
                    *value + v
                ));
            }
            *value += v;
            Ok(true)
        }
    }
}

struct Engine<'a> {
    design: &'a Design,
    m: &'a HwModel,
    file: &'a str,
    bds: Vec<Bd>,
    chans: Vec<ChanRt>,
    chan_index: HashMap<ChanId, usize>,
    streams: Vec<Stream>,
    stream_index: HashMap<PortRef, usize>,
    task_done: Vec<bool>,
    /// BD register words per (tile, bd id); shim BD address patches.
    regfile: HashMap<(TileId, u32), Vec<u32>>,
    patches: HashMap<(TileId, u32), (usize, i64)>,
    lock_index: HashMap<(TileId, u32), usize>,
    scratch: Vec<u8>,
}

fn located(file: &str, line: usize, m: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Design {
        file: file.to_string(),
        source: DesignError { line, message: m.to_string() },
    }
}

impl<'a> Engine<'a> {
    fn chan(&mut self, id: ChanId, line: usize) -> Result<usize, RuntimeError> {
        if let Some(&i) = self.chan_index.get(&id) {
            return Ok(i);
        }
        let max = if id.tile.is_mem() { 6 } else { 2 };
        if id.ch >= max || !self.m.tiles.contains(&id.tile) {
            return Err(located(self.file, line, format!("{id} does not exist in this design")));
        }
        self.chans.push(ChanRt {
            id,
            queue: VecDeque::new(),
            cur: None,
        });
        self.chan_index.insert(id, self.chans.len() - 1);
        Ok(self.chans.len() - 1)
    }

    fn stream(&mut self, port: &PortRef) -> usize {
        if let Some(&i) = self.stream_index.get(port) {
            return i;
        }
        self.streams.push(Stream {
            port: port.clone(),
            data: VecDeque::new(),
            owner: None,
        });
        self.stream_index.insert(port.clone(), self.streams.len() - 1);
        self.streams.len() - 1
    }

    /// Where an MM2S channel's descriptor sends its data.
    fn route(&mut self, c: usize, bd: usize) -> Result<Vec<(usize, bool)>, RuntimeError> {
        let id = self.chans[c].id;
        let src = PortRef {
            tile: id.tile,
            bundle: "DMA".into(),
            ch: id.ch,
        };
        let line = self.bds[bd].line;
        let mut out = Vec::new();
        if let Some((_, pid)) = self.bds[bd].packet {
            let flows: Vec<(Vec<PortRef>, bool)> = self
                .m
                .packet_flows
                .iter()
                .filter(|f| f.id == pid && f.srcs.contains(&src))
                .map(|f| (f.dsts.clone(), f.keep_header))
                .collect();
            if flows.is_empty() {
                return Err(located(
                    self.file,
                    line,
                    format!("{id} sends packet id {pid}, but no aie.packet_flow with that id starts at {src}"),
                ));
            }
            for (dsts, keep) in flows {
                for d in dsts {
                    let s = self.stream(&d);
                    out.push((s, keep));
                }
            }
        } else {
            let dsts: Vec<PortRef> = self.m.flows.iter().filter(|f| f.src == src).map(|f| f.dst.clone()).collect();
            if dsts.is_empty() {
                return Err(located(self.file, line, format!("{id} sends data, but no aie.flow starts at {src}")));
            }
            for d in dsts {
                let s = self.stream(&d);
                out.push((s, false));
            }
        }
        for &(s, _) in &out {
            let p = &self.streams[s].port;
            if p.bundle != "DMA" {
                return Err(located(
                    self.file,
                    line,
                    format!("{id} sends data to {p}: only DMA stream ports are modelled (core streams, control and trace ports are not)"),
                ));
            }
        }
        Ok(out)
    }

    fn memory(&self, st: &mut State, args: &mut [ArgData<'_>], mem: BdMem, write: bool, line: usize) -> Result<(*mut u8, usize), RuntimeError> {
        match mem {
            BdMem::Buffer(b) => Ok((st.buffers[b].ptr(), self.design.buffers[b].ty.bytes())),
            BdMem::Arg(a) => {
                if write {
                    match args[a].bytes_mut() {
                        Some(out) => Ok((out.as_mut_ptr(), out.len())),
                        None => {
                            let name = &self.design.sequence.args[a].0;
                            Err(located(
                                self.file,
                                line,
                                format!("the runtime sequence writes argument {a} ({name}), which the caller passed as an input"),
                            ))
                        }
                    }
                } else {
                    let b = args[a].bytes();
                    Ok((b.as_ptr() as *mut u8, b.len()))
                }
            }
        }
    }

    /// Starts the next descriptor of a channel's queue; moves data; returns whether anything happened.
    fn step_chan(&mut self, c: usize, st: &mut State, args: &mut [ArgData<'_>]) -> Result<bool, RuntimeError> {
        let mut progressed = false;
        loop {
            if self.chans[c].cur.is_none() {
                let Some(p) = self.chans[c].queue.pop_front() else {
                    return Ok(progressed);
                };
                let walk = Walk::new(&self.bds[p.bd], 0);
                self.chans[c].cur = Some(Active {
                    first: p.bd,
                    bd: p.bd,
                    repeat_left: p.repeat,
                    task: p.task,
                    acquired: false,
                    walk,
                    pos: 0,
                    started: false,
                    dests: Vec::new(),
                    uses: 0,
                });
                progressed = true;
            }
            let id = self.chans[c].id;
            let cur = self.chans[c].cur.as_mut().unwrap();
            let bd = &self.bds[cur.bd];
            if !cur.acquired {
                if let Some((lock, action, v)) = bd.acquire {
                    match try_lock(&mut st.hw.as_mut().unwrap().locks[lock], action, v) {
                        Ok(true) => {}
                        Ok(false) => return Ok(progressed),
                        Err(m) => return Err(located(self.file, bd.line, format!("{id}: {}: {m}", self.design.locks[lock].describe()))),
                    }
                }
                cur.acquired = true;
                let extra = match bd.iteration {
                    Some((wrap, stride)) if wrap > 0 => (cur.uses % wrap) * stride,
                    _ => 0,
                };
                cur.walk = Walk::new(bd, extra);
                cur.pos = 0;
                cur.started = false;
                progressed = true;
            }
            let bdi = cur.bd;
            let moved = match id.dir {
                Dir::MM2S => self.send(c, bdi, st, args)?,
                Dir::S2MM => self.receive(c, bdi, st, args)?,
            };
            progressed |= moved;
            let cur = self.chans[c].cur.as_mut().unwrap();
            if cur.pos < cur.walk.count {
                return Ok(progressed);
            }
            // Descriptor done: release, then the next one of the chain.
            let bd = &self.bds[cur.bd];
            if let Some((lock, v)) = bd.release {
                if let Err(m) = try_lock(&mut st.hw.as_mut().unwrap().locks[lock], LockAction::Release, v) {
                    return Err(located(self.file, bd.line, format!("{id}: {}: {m}", self.design.locks[lock].describe())));
                }
            }
            if bd.packet.is_some() {
                for &(s, _) in &cur.dests {
                    if self.streams[s].owner == Some(c) {
                        self.streams[s].owner = None;
                    }
                }
            }
            cur.acquired = false;
            progressed = true;
            match bd.next {
                Some(n) => cur.bd = n,
                None => {
                    if cur.repeat_left > 0 {
                        cur.repeat_left -= 1;
                        cur.uses += 1;
                        cur.bd = cur.first;
                    } else {
                        if let Some(t) = cur.task {
                            self.task_done[t] = true;
                        }
                        self.chans[c].cur = None;
                    }
                }
            }
        }
    }

    fn send(&mut self, c: usize, bdi: usize, st: &mut State, args: &mut [ArgData<'_>]) -> Result<bool, RuntimeError> {
        let line = self.bds[bdi].line;
        if !self.chans[c].cur.as_ref().unwrap().started {
            let dests = self.route(c, bdi)?;
            if let Some((ty, id)) = self.bds[bdi].packet {
                // A packet claims its destinations until its last word.
                if dests.iter().any(|&(s, _)| self.streams[s].owner.is_some_and(|o| o != c)) {
                    return Ok(false);
                }
                if dests.iter().any(|&(s, keep)| keep && STREAM_CAPACITY - self.streams[s].data.len() < 4) {
                    return Ok(false);
                }
                let t = self.chans[c].id.tile;
                let header = packet_header(id, ty, t);
                for &(s, keep) in &dests {
                    self.streams[s].owner = Some(c);
                    if keep {
                        self.streams[s].data.extend(header.to_le_bytes());
                    }
                }
            }
            let cur = self.chans[c].cur.as_mut().unwrap();
            cur.dests = dests;
            cur.started = true;
        }
        let elem = self.bds[bdi].elem;
        let mem = self.bds[bdi].mem;
        let pad = self.bds[bdi].pad_value;
        let (ptr, size) = self.memory(st, args, mem, false, line)?;
        let cur = self.chans[c].cur.as_mut().unwrap();
        let room = cur
            .dests
            .iter()
            .map(|&(s, _)| STREAM_CAPACITY - self.streams[s].data.len().min(STREAM_CAPACITY))
            .min()
            .unwrap_or(0);
        let mut budget = (room / elem) as u64;
        if budget == 0 {
            return Ok(false);
        }
        let mut moved = false;
        self.scratch.clear();
        while cur.pos < cur.walk.count && budget > 0 {
            let (at, run) = cur.walk.at(cur.pos);
            let n = run.min(budget);
            match at {
                Some(e) => {
                    let start = e as usize * elem;
                    let bytes = n as usize * elem;
                    if start + bytes > size {
                        return Err(located(
                            self.file,
                            line,
                            format!("{}: the access pattern leaves its memory ({size} bytes)", self.chans[c].id),
                        ));
                    }
                    self.scratch.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr.add(start), bytes) });
                }
                None => {
                    let v = pad.to_le_bytes();
                    for _ in 0..n {
                        self.scratch.extend_from_slice(&v[..elem.min(4)]);
                    }
                }
            }
            cur.pos += n;
            budget -= n;
            moved = true;
        }
        for &(s, _) in &cur.dests {
            self.streams[s].data.extend(self.scratch.iter().copied());
        }
        Ok(moved)
    }

    fn receive(&mut self, c: usize, bdi: usize, st: &mut State, args: &mut [ArgData<'_>]) -> Result<bool, RuntimeError> {
        let id = self.chans[c].id;
        let port = PortRef {
            tile: id.tile,
            bundle: "DMA".into(),
            ch: id.ch,
        };
        let Some(&s) = self.stream_index.get(&port) else {
            return Ok(false);
        };
        let line = self.bds[bdi].line;
        let elem = self.bds[bdi].elem;
        let mem = self.bds[bdi].mem;
        let (ptr, size) = self.memory(st, args, mem, true, line)?;
        let cur = self.chans[c].cur.as_mut().unwrap();
        let data = &mut self.streams[s].data;
        let mut moved = false;
        while cur.pos < cur.walk.count && data.len() >= elem {
            let (at, run) = cur.walk.at(cur.pos);
            let n = run.min((data.len() / elem) as u64);
            let bytes = n as usize * elem;
            // Padding positions (None) take stream data but write nothing.
            if let Some(e) = at {
                let start = e as usize * elem;
                if start + bytes > size {
                    return Err(located(self.file, line, format!("{id}: the access pattern leaves its memory ({size} bytes)")));
                }
                let dst = unsafe { std::slice::from_raw_parts_mut(ptr.add(start), bytes) };
                let (a, b) = data.as_slices();
                if a.len() >= bytes {
                    dst.copy_from_slice(&a[..bytes]);
                } else {
                    dst[..a.len()].copy_from_slice(a);
                    dst[a.len()..].copy_from_slice(&b[..bytes - a.len()]);
                }
            }
            data.drain(..bytes);
            cur.pos += n;
            moved = true;
        }
        Ok(moved)
    }

    /// A descriptor chain from BD registers, starting at `bd_id` of `tile`.
    fn decode_chain(
        &mut self,
        tile: TileId,
        bd_id: u32,
        line: usize,
        design_args: &[(String, crate::emulator::design::MemrefType)],
    ) -> Result<usize, RuntimeError> {
        let mut made: HashMap<u32, usize> = HashMap::new();
        let mut order = Vec::new();
        let mut next = Some(bd_id);
        while let Some(id) = next {
            if made.contains_key(&id) {
                break;
            }
            let words = self.regfile.get(&(tile, id)).cloned().ok_or_else(|| {
                located(
                    self.file,
                    line,
                    format!("buffer descriptor {id} of tile {tile} is started but was never written"),
                )
            })?;
            let r = regs::decode_bd(tile, &words);
            if !r.valid {
                return Err(located(
                    self.file,
                    line,
                    format!("buffer descriptor {id} of tile {tile} is started but not marked valid"),
                ));
            }
            let (mem, offset, size_words) = if tile.is_shim() {
                let (arg, plus) = *self.patches.get(&(tile, id)).ok_or_else(|| {
                    located(
                        self.file,
                        line,
                        format!("shim buffer descriptor {id} of tile {tile} has no aiex.npu.address_patch: its address is no host buffer"),
                    )
                })?;
                if plus % 4 != 0 {
                    return Err(located(self.file, line, format!("address_patch offset {plus} is not a multiple of 4 bytes")));
                }
                (BdMem::Arg(arg), plus as u64 / 4, design_args[arg].1.bytes() as u64 / 4)
            } else {
                let a = r.address as i64;
                let b = self
                    .design
                    .buffers
                    .iter()
                    .position(|b| b.tile == tile && b.address.is_some_and(|ba| ba <= a && a < ba + b.ty.bytes() as i64))
                    .ok_or_else(|| {
                        located(
                            self.file,
                            line,
                            format!("buffer descriptor {id} of tile {tile} addresses byte {a}, which no aie.buffer with an address holds"),
                        )
                    })?;
                let ba = self.design.buffers[b].address.unwrap_or(0);
                (BdMem::Buffer(b), ((a - ba) / 4) as u64, self.design.buffers[b].ty.bytes() as u64 / 4)
            };
            let mut dims = Vec::new();
            let mut pads = Vec::new();
            if r.dims[0].0 > 0 {
                let mut used = 1;
                while used < 3 && r.dims[used].0 > 0 {
                    used += 1;
                }
                let outer_step = if used < 3 { r.dims[used].1 + 1 } else { 1 };
                dims.push((u64::MAX, outer_step));
                pads.push((0, 0));
                for k in (0..used).rev() {
                    dims.push((r.dims[k].0, r.dims[k].1 + 1));
                    pads.push(r.pads[k]);
                }
                let inner: u64 = dims[1..].iter().map(|d| d.0).product();
                dims[0].0 = r.len.div_ceil(inner.max(1)).max(1);
            }
            if pads.iter().all(|p| *p == (0, 0)) {
                pads.clear();
            }
            let lock = |(lid, v): (u32, i64)| -> Result<usize, RuntimeError> {
                let (t, i) = regs::lock_target(tile, lid);
                self.lock_index.get(&(t, i)).copied().ok_or_else(|| {
                    located(
                        self.file,
                        line,
                        format!("buffer descriptor {id} of tile {tile} uses lock {i} of tile {t} (value {v}), which the design does not declare"),
                    )
                })
            };
            let acquire = match r.acquire {
                Some((l, v)) => Some((
                    lock((l, v))?,
                    if v < 0 { LockAction::AcquireGreaterEqual } else { LockAction::Acquire },
                    v.abs(),
                )),
                None => None,
            };
            let release = match r.release {
                Some((l, v)) if v > 0 => Some((lock((l, v))?, v)),
                Some((_, v)) => {
                    return Err(located(
                        self.file,
                        line,
                        format!("buffer descriptor {id} of tile {tile} releases a lock by {v}"),
                    ))
                }
                None => None,
            };
            let bd = Bd {
                line,
                mem,
                elem: 4,
                offset,
                len: r.len,
                dims,
                pads,
                pad_value: 0,
                acquire,
                release,
                packet: r.packet,
                next: None,
                iteration: (r.iteration.1 > 0).then_some((r.iteration.1 + 1, r.iteration.2 + 1)),
            };
            if let Some(last) = last_element(&bd) {
                if last >= size_words {
                    return Err(located(
                        self.file,
                        line,
                        format!("buffer descriptor {id} of tile {tile} reaches word {last} of memory of {size_words} words"),
                    ));
                }
            }
            self.bds.push(bd);
            made.insert(id, self.bds.len() - 1);
            order.push(id);
            next = r.next;
        }
        for (k, id) in order.iter().enumerate() {
            let i = made[id];
            let nx = if k + 1 < order.len() {
                Some(made[&order[k + 1]])
            } else {
                r_next_loop(&made, &self.regfile, tile, *id)
            };
            self.bds[i].next = nx;
        }
        Ok(made[&bd_id])
    }

    fn write(
        &mut self,
        st: &mut State,
        line: usize,
        address: u64,
        value: u32,
        mask: u32,
        args_n: &[(String, crate::emulator::design::MemrefType)],
    ) -> Result<(), RuntimeError> {
        let (tile, offset) = regs::split_address(address);
        if !self.m.tiles.contains(&tile) {
            return Err(located(
                self.file,
                line,
                format!("register write to {address:#x}: tile {tile} is not in the design"),
            ));
        }
        match regs::decode(tile, offset) {
            Some(Reg::Bd { bd, word }) => {
                let w = self.regfile.entry((tile, bd)).or_insert_with(|| vec![0; regs::bd_words(tile)]);
                w[word] = (w[word] & !mask) | (value & mask);
            }
            Some(Reg::Queue { dir, ch }) => {
                let bd_id = value & if tile.is_mem() { 0x3F } else { 0xF };
                let repeat = (value >> 16) & 0xFF;
                let first = self.decode_chain(tile, bd_id, line, args_n)?;
                let c = self.chan(ChanId { tile, dir, ch }, line)?;
                self.chans[c].queue.push_back(Pending { bd: first, repeat, task: None });
            }
            Some(Reg::Ctrl { .. }) => {
                if value & mask & 0x2 != 0 {
                    return Err(located(
                        self.file,
                        line,
                        format!("{}: resetting a channel is not modelled", regs::describe(tile, offset)),
                    ));
                }
            }
            Some(Reg::Lock { id }) => {
                let l = *self.lock_index.get(&(tile, id)).ok_or_else(|| {
                    located(
                        self.file,
                        line,
                        format!("write to {}, which the design does not declare", regs::describe(tile, offset)),
                    )
                })?;
                let locks = &mut st.hw.as_mut().unwrap().locks;
                let v = ((locks[l] as u32 & !mask) | (value & mask)) as i64;
                if !(0..=LOCK_MAX).contains(&v) {
                    return Err(located(
                        self.file,
                        line,
                        format!("writes {v} to {}, outside 0..={LOCK_MAX}", self.design.locks[l].describe()),
                    ));
                }
                locks[l] = v;
            }
            Some(Reg::Memory { byte }) => {
                let b = self
                    .design
                    .buffers
                    .iter()
                    .position(|b| b.tile == tile && b.address.is_some_and(|a| a as u64 <= byte && byte + 4 <= a as u64 + b.ty.bytes() as u64))
                    .ok_or_else(|| {
                        located(
                            self.file,
                            line,
                            format!("write to {}, which no aie.buffer with an address holds", regs::describe(tile, offset)),
                        )
                    })?;
                let at = (byte - self.design.buffers[b].address.unwrap_or(0) as u64) as usize;
                let p = unsafe { st.buffers[b].ptr().add(at) as *mut [u8; 4] };
                let old = u32::from_le_bytes(unsafe { *p });
                unsafe { *p = ((old & !mask) | (value & mask)).to_le_bytes() };
            }
            None => return Err(located(self.file, line, format!("write to {}", regs::describe(tile, offset)))),
        }
        Ok(())
    }
}

/// A register chain that loops back to an earlier descriptor.
fn r_next_loop(made: &HashMap<u32, usize>, regfile: &HashMap<(TileId, u32), Vec<u32>>, tile: TileId, id: u32) -> Option<usize> {
    let w = regfile.get(&(tile, id))?;
    let r = regs::decode_bd(tile, w);
    r.next.and_then(|n| made.get(&n).copied())
}

/// An AIE-ML stream packet header: id, type, source row and column, odd parity in bit 31.
pub fn packet_header(id: u8, ty: u8, src: TileId) -> u32 {
    let h = (id as u32 & 0x1F) | ((ty as u32 & 0x7) << 12) | ((src.row as u32 & 0x1F) << 16) | ((src.col as u32 & 0x7F) << 21);
    if h.count_ones().is_multiple_of(2) {
        h | 1 << 31
    } else {
        h
    }
}

/// Runs the DMAs and the runtime sequence until the sequence is done and every shim transfer it started has
/// finished; cores run on their own threads meanwhile.
pub(crate) fn drive(design: &Design, shared: &Shared, args: &mut [ArgData<'_>], file: &str, stall_timeout: Duration) -> Result<usize, RuntimeError> {
    let m = design.hw.as_deref().expect("hardware-level design");
    let mut e = Engine {
        design,
        m,
        file,
        bds: m.bds.clone(),
        chans: Vec::new(),
        chan_index: HashMap::new(),
        streams: Vec::new(),
        stream_index: HashMap::new(),
        task_done: vec![false; m.tasks.len()],
        regfile: HashMap::new(),
        patches: HashMap::new(),
        lock_index: design.locks.iter().enumerate().map(|(i, l)| ((l.tile, l.id as u32), i)).collect(),
        scratch: Vec::new(),
    };
    for f in &m.flows {
        if let Some(o) = m.flows.iter().find(|o| o.dst == f.dst && o.line != f.line) {
            return Err(located(
                file,
                f.line,
                format!("two aie.flow ops end at {} (the other at line {})", f.dst, o.line),
            ));
        }
        e.stream(&f.dst);
    }
    for s in &m.starts {
        let c = e.chan(s.chan, s.line)?;
        e.chans[c].queue.push_back(Pending {
            bd: s.bd,
            repeat: s.repeat,
            task: None,
        });
    }
    let seq = &m.seq;
    let mut pc = 0usize;
    let mut transfers = 0usize;
    let mut last_events = u64::MAX;
    let mut last_change = Instant::now();
    let shim_busy = |e: &Engine| e.chans.iter().any(|c| c.id.tile.is_shim() && c.busy());
    // Cores start when the configuration is loaded, before the host issues the runtime sequence: the sequence
    // begins once every core waits on a lock or has ended (or has run for SEQUENCE_GATE without lock activity).
    let mut started = false;
    let mut gate_events = u64::MAX;
    let mut gate_change = Instant::now();
    loop {
        let mut st = shared.lock();
        if let Some(msg) = st.error.take() {
            shared.abort(&mut st);
            return Err(RuntimeError::Fault(msg));
        }
        if !started {
            if st.events != gate_events {
                gate_events = st.events;
                gate_change = Instant::now();
            }
            started = st.cores.iter().all(|c| *c != CoreStatus::Running) || gate_change.elapsed() > SEQUENCE_GATE;
        }
        let mut progressed = false;
        while started && pc < seq.len() {
            match &seq[pc] {
                HwSeqOp::Push { line, chan, bd, repeat, task } => {
                    let c = e.chan(*chan, *line)?;
                    if let Some(t) = task {
                        e.task_done[*t] = false;
                    }
                    e.chans[c].queue.push_back(Pending {
                        bd: *bd,
                        repeat: *repeat,
                        task: *task,
                    });
                    transfers += 1;
                }
                HwSeqOp::Wait { chans, .. } => {
                    if chans.iter().any(|id| e.chan_index.get(id).is_some_and(|&c| e.chans[c].busy())) {
                        break;
                    }
                }
                HwSeqOp::AwaitTask { task, .. } => {
                    if !e.task_done[*task] {
                        break;
                    }
                }
                HwSeqOp::Write { line, address, value, mask } => {
                    let before = e.chans.iter().map(|c| c.queue.len()).sum::<usize>();
                    e.write(&mut st, *line, *address, *value, *mask, &design.sequence.args)?;
                    transfers += e.chans.iter().map(|c| c.queue.len()).sum::<usize>().saturating_sub(before);
                }
                HwSeqOp::WriteBd { tile, bd_id, words, line } => {
                    if !m.tiles.contains(tile) {
                        return Err(located(file, *line, format!("aiex.npu.writebd on tile {tile}, which is not in the design")));
                    }
                    if *bd_id as u64 >= regs::bd_count(*tile) {
                        return Err(located(file, *line, format!("buffer descriptor {bd_id} does not exist on tile {tile}")));
                    }
                    e.regfile.insert((*tile, *bd_id), words.clone());
                }
                HwSeqOp::AddressPatch { line, address, arg, plus } => {
                    let (tile, offset) = regs::split_address(*address);
                    match regs::decode(tile, offset) {
                        Some(Reg::Bd { bd, word: 1 }) if tile.is_shim() => {
                            e.patches.insert((tile, bd), (*arg, *plus));
                        }
                        _ => {
                            return Err(located(
                                file,
                                *line,
                                format!(
                                    "aiex.npu.address_patch of {}: only shim descriptor addresses are patched",
                                    regs::describe(tile, offset)
                                ),
                            ))
                        }
                    }
                }
            }
            pc += 1;
            progressed = true;
        }
        for c in 0..e.chans.len() {
            progressed |= e.step_chan(c, &mut st, args)?;
        }
        if progressed {
            shared.wake(&st);
        }
        if pc == seq.len() && !shim_busy(&e) {
            return Ok(transfers);
        }
        if progressed || st.events != last_events {
            last_events = st.events;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall_timeout {
            let running: Vec<String> = st
                .cores
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == CoreStatus::Running)
                .map(|(i, _)| format!("core {}", design.cores[i].tile))
                .collect();
            return Err(RuntimeError::Stalled {
                file: file.to_string(),
                activity: "lock or DMA",
                waited: stall_timeout,
                cores: running,
            });
        }
        if !progressed && started {
            let stuck = st.cores.iter().all(|c| match c {
                CoreStatus::Running => false,
                CoreStatus::BlockedLock { lock, action, value, .. } => {
                    let mut v = st.hw.as_ref().unwrap().locks[*lock];
                    !try_lock(&mut v, *action, *value).unwrap_or(false)
                }
                _ => true,
            });
            if stuck {
                return Err(RuntimeError::Deadlock(format!("{file}: {}", deadlock_message(&e, &st, seq.get(pc)))));
            }
            let _ = shared.cv.wait_timeout(st, Duration::from_millis(20));
        } else if !progressed {
            let _ = shared.cv.wait_timeout(st, Duration::from_millis(20));
        }
    }
}

fn deadlock_message(e: &Engine, st: &State, op: Option<&HwSeqOp>) -> String {
    let design = e.design;
    let locks = &st.hw.as_ref().unwrap().locks;
    let mut parts = Vec::new();
    let mut named = Vec::new();
    for (ci, c) in st.cores.iter().enumerate() {
        if let CoreStatus::BlockedLock { lock, action, value, line } = c {
            named.push(*lock);
            parts.push(format!(
                "core {} waits at line {line} on aie.use_lock({}, {}, {value}) while the lock is {}",
                design.cores[ci].tile,
                design.locks[*lock].describe(),
                action.name(),
                locks[*lock]
            ));
        }
    }
    for c in &e.chans {
        let Some(cur) = &c.cur else {
            if !c.queue.is_empty() {
                parts.push(format!("{} has {} queued transfer(s)", c.id, c.queue.len()));
            }
            continue;
        };
        let bd = &e.bds[cur.bd];
        let what = if !cur.acquired {
            let (l, a, v) = bd.acquire.unwrap();
            named.push(l);
            format!(
                "waits to {} {} by {v} (value {})",
                if a == LockAction::Acquire { "acquire (equal)" } else { "acquire" },
                design.locks[l].describe(),
                locks[l]
            )
        } else if c.id.dir == Dir::S2MM {
            format!("waits for stream data ({} of {} elements received)", cur.pos, cur.walk.count)
        } else {
            format!("waits for room in its stream ({} of {} elements sent)", cur.pos, cur.walk.count)
        };
        parts.push(format!("{} with the buffer descriptor of line {} {what}", c.id, bd.line));
    }
    match op {
        Some(HwSeqOp::Wait { line, what, .. }) => parts.push(format!("runtime sequence waits at line {line} on {what}")),
        Some(HwSeqOp::AwaitTask { line, .. }) => parts.push(format!("runtime sequence waits at line {line} on aiex.dma_await_task")),
        _ => {}
    }
    let other: Vec<String> = design
        .locks
        .iter()
        .enumerate()
        .filter(|(i, _)| !named.contains(i))
        .map(|(i, l)| format!("{} = {}", l.describe(), locks[i]))
        .collect();
    if !other.is_empty() && other.len() <= 16 {
        parts.push(format!("other locks: {}", other.join(", ")));
    }
    if parts.is_empty() {
        parts.push("no core or DMA can make progress".into());
    }
    parts.join("; ")
}
