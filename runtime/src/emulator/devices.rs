//! Modules with several `aie.device`s, and runtime-sequence ops that are rewritten before a design is read.
//!
//! * A main device whose runtime sequence holds `aiex.configure @dev { aiex.run @seq(%views) }` (mlir-aie's
//!   run lists) runs each `aiex.run` in order as a run of device `@dev` with its runtime sequence `@seq`. The
//!   arguments of a run are the main sequence's arguments or 1-D contiguous views of them
//!   (`memref.subview %arg[offset] [size] [1]`, optionally through `memref.reinterpret_cast`); they are copied
//!   in before the run and back after it. Data memory persists as on the hardware: every buffer with an address
//!   (`address`, or the one the emulator assigns at the hardware level) starts from the bytes the previous run
//!   left at that tile and address, except that entering a configuration writes the buffers' `initial_value`s.
//!   Cores, locks and DMA channels start afresh with each run.
//! * Without a configuring main device, [`super::Emulator::device`] names the device a call runs (mlir-aie's
//!   host code picks one kernel per xclbin entry the same way).
//! * In object-FIFO designs, `aiex.dma_configure_task_for @fifo { aie.dma_bd(...) }` with `dma_start_task` /
//!   `dma_await_task` is the same transfer as `aiex.npu.dma_memcpy_nd` / `dma_wait` on the FIFO and is read
//!   as such; `aiex.npu.load_pdi` of the design's own device before any transfer reloads what is already
//!   loaded and is skipped; `aiex.npu.rtp_write(@buffer, index, value)` (a word written into a core's buffer)
//!   is read as the emulator's own `"aiec.buffer_write"` op.
//!
//! Every rewrite keeps each op on its line, so errors name lines of the file as written.

use super::design::{DesignError, MemrefType, TileId};
use super::hw::text::{self, int, operands, ssa, symbol};
use crate::aie_syntax::strip_comment;
use std::collections::HashMap;

/// An `aie.device` region: its symbol and its first and last lines (0-based).
#[derive(Debug, Clone)]
pub(crate) struct DeviceSpan {
    pub name: Option<String>,
    pub first: usize,
    pub last: usize,
}

fn braces(code: &str) -> i64 {
    let mut in_str = false;
    let mut d = 0;
    let mut prev = ' ';
    for c in code.chars() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '{' if !in_str => d += 1,
            '}' if !in_str => d -= 1,
            _ => {}
        }
        prev = c;
    }
    d
}

/// The region of the op on line `first`: the line where its braces balance again.
fn region_end(lines: &[&str], first: usize) -> usize {
    let mut depth = 0i64;
    let mut opened = false;
    for (k, l) in lines.iter().enumerate().skip(first) {
        let c = strip_comment(l);
        opened |= c.contains('{');
        depth += braces(c);
        if opened && depth <= 0 {
            return k;
        }
    }
    lines.len().saturating_sub(1)
}

pub(crate) fn device_spans(text: &str) -> Vec<DeviceSpan> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let code = strip_comment(lines[k]).trim();
        if code.starts_with("aie.device(") || code.contains("= aie.device(") {
            let after = code.split_once(')').map(|(_, r)| r).unwrap_or("");
            let name = after.trim_start().strip_prefix('@').and_then(|_| symbol(after.trim()));
            let last = region_end(&lines, k);
            out.push(DeviceSpan { name, first: k, last });
            k = last + 1;
        } else {
            k += 1;
        }
    }
    out
}

/// The module with only device `keep` (the other devices' lines blank); inside it, when `seq` is given, only
/// the runtime sequence of that name.
fn only_device(text: &str, spans: &[DeviceSpan], keep: usize, seq: Option<&str>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut blank = vec![false; lines.len()];
    for (i, s) in spans.iter().enumerate() {
        if i != keep {
            for b in &mut blank[s.first..=s.last.min(lines.len() - 1)] {
                *b = true;
            }
        }
    }
    if let Some(seq) = seq {
        let s = &spans[keep];
        let mut k = s.first + 1;
        while k < s.last {
            let code = strip_comment(lines[k]).trim();
            if let Some(rest) = code.strip_prefix("aie.runtime_sequence") {
                let end = region_end(&lines, k);
                let name = rest.trim_start().strip_prefix('@').and_then(|_| symbol(rest.trim()));
                if name.as_deref().is_some_and(|n| n != seq) {
                    for b in &mut blank[k..=end] {
                        *b = true;
                    }
                }
                k = end + 1;
            } else {
                k += 1;
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for (l, b) in lines.iter().zip(blank) {
        if !b {
            out.push_str(l);
        }
        out.push('\n');
    }
    out
}

/// One slice of a main-sequence argument passed to a run: argument, first element, type of the view.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub parent: usize,
    pub offset: usize,
    pub ty: MemrefType,
}

/// One `aiex.run`.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub line: usize,
    /// Index of its `aiex.configure` (a new value: the configuration is loaded again).
    pub configuration: usize,
    pub device: String,
    pub text: String,
    pub args: Vec<View>,
}

pub(crate) enum Plan {
    /// One device: the text as it is.
    Single,
    /// Several devices, one chosen: the module with only that device.
    Select(String),
    Configure {
        args: Vec<(String, MemrefType)>,
        steps: Vec<Step>,
    },
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, DesignError> {
    Err(DesignError { line, message: message.into() })
}

/// How a module runs: as it is, one chosen device, or a main device's configurations and runs.
pub(crate) fn plan(text: &str, chosen: Option<&str>) -> Result<Plan, DesignError> {
    if chosen.is_none() && text.matches("aie.device(").count() <= 1 && !text.contains("aiex.configure") {
        return Ok(Plan::Single);
    }
    let spans = device_spans(text);
    let lines: Vec<&str> = text.lines().collect();
    let names = || {
        spans
            .iter()
            .map(|s| format!("@{}", s.name.as_deref().unwrap_or("(unnamed)")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(c) = chosen {
        let c = c.trim_start_matches('@');
        let k = spans.iter().position(|s| s.name.as_deref() == Some(c)).ok_or_else(|| DesignError {
            line: spans.first().map(|s| s.first + 1).unwrap_or(1),
            message: format!("no aie.device @{c} in the module (it has {})", names()),
        })?;
        return Ok(if spans.len() == 1 {
            Plan::Single
        } else {
            Plan::Select(only_device(text, &spans, k, None))
        });
    }
    let configuring: Vec<usize> = (0..spans.len())
        .filter(|&i| {
            lines[spans[i].first..=spans[i].last]
                .iter()
                .any(|l| strip_comment(l).trim_start().starts_with("aiex.configure"))
        })
        .collect();
    if spans.len() <= 1 && configuring.is_empty() {
        return Ok(Plan::Single);
    }
    let main = match configuring.as_slice() {
        [m] => *m,
        [] => {
            return err(
                spans[1].first + 1,
                format!(
                    "the module has {} aie.devices ({}) and none runs the others with aiex.configure: choose the one \
                     to run (Emulator::device)",
                    spans.len(),
                    names()
                ),
            )
        }
        [_, second, ..] => return err(spans[*second].first + 1, "aiex.configure in more than one aie.device"),
    };
    configure_plan(text, &lines, &spans, main)
}

fn configure_plan(text: &str, lines: &[&str], spans: &[DeviceSpan], main: usize) -> Result<Plan, DesignError> {
    let s = &spans[main];
    let mut args: Option<Vec<(String, MemrefType)>> = None;
    let mut views: HashMap<String, View> = HashMap::new();
    let mut steps = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut configurations = 0;
    let mut k = s.first + 1;
    while k < s.last {
        let n = k + 1;
        let code = strip_comment(lines[k]).trim().to_string();
        k += 1;
        if code.is_empty() {
            continue;
        }
        if let Some(rest) = code.strip_prefix("aie.runtime_sequence") {
            if args.is_some() {
                return err(n, "more than one aie.runtime_sequence in the configuring device");
            }
            let open = rest.find('(').ok_or_else(|| DesignError {
                line: n,
                message: "expected `aie.runtime_sequence(%arg : type, ...)`".into(),
            })?;
            let (inner, _) = text::bracketed(rest, open).ok_or_else(|| DesignError {
                line: n,
                message: "unbalanced parentheses".into(),
            })?;
            let mut list = Vec::new();
            for a in text::split_top(inner) {
                let Some((nm, ty)) = a.split_once(':') else { continue };
                let name = ssa(nm.trim()).unwrap_or_default();
                list.push((name, MemrefType::parse(ty.trim(), n)?));
                views.insert(
                    list.last().unwrap().0.clone(),
                    View {
                        parent: list.len() - 1,
                        offset: 0,
                        ty: list.last().unwrap().1.clone(),
                    },
                );
            }
            args = Some(list);
            continue;
        }
        if args.is_none() {
            // Device-level ops of the configuring device (tiles etc.) configure nothing themselves.
            continue;
        }
        if code == "}" {
            current = None;
            continue;
        }
        if let Some(rest) = code.strip_prefix("aiex.configure") {
            let dev = symbol(rest.trim()).ok_or_else(|| DesignError {
                line: n,
                message: "expected `aiex.configure @device {`".into(),
            })?;
            if !spans.iter().any(|x| x.name.as_deref() == Some(dev.as_str())) {
                return err(n, format!("aiex.configure @{dev}: no aie.device of that name"));
            }
            configurations += 1;
            current = Some((configurations, dev));
            continue;
        }
        if let Some(rest) = code.strip_prefix("aiex.run") {
            let Some((conf, dev)) = current.clone() else {
                return err(n, "aiex.run outside aiex.configure");
            };
            let seq = symbol(rest.trim()).ok_or_else(|| DesignError {
                line: n,
                message: "expected `aiex.run @sequence (%args) : (types)`".into(),
            })?;
            let open = rest.find('(').ok_or_else(|| DesignError {
                line: n,
                message: "expected `aiex.run @sequence (%args)`".into(),
            })?;
            let (inner, _) = text::bracketed(rest, open).ok_or_else(|| DesignError {
                line: n,
                message: "unbalanced parentheses".into(),
            })?;
            let mut run_args = Vec::new();
            for a in text::split_top(inner) {
                let v = ssa(a.trim()).unwrap_or_default();
                run_args.push(views.get(&v).cloned().ok_or_else(|| DesignError {
                    line: n,
                    message: format!("aiex.run argument `{}` is neither a sequence argument nor a contiguous view of one", a.trim()),
                })?);
            }
            let keep = spans.iter().position(|x| x.name.as_deref() == Some(dev.as_str())).unwrap();
            let dev_lines = &lines[spans[keep].first..=spans[keep].last];
            let has_seq = dev_lines.iter().any(|l| {
                let c = strip_comment(l).trim();
                c.strip_prefix("aie.runtime_sequence")
                    .is_some_and(|r| symbol(r.trim()).as_deref() == Some(seq.as_str()))
            });
            // A device whose only runtime sequence has no name runs it for any aiex.run.
            let seqs: Vec<&str> = dev_lines
                .iter()
                .map(|l| strip_comment(l).trim())
                .filter(|c| c.starts_with("aie.runtime_sequence"))
                .collect();
            let unnamed = seqs.len() == 1 && !seqs[0].trim_start_matches("aie.runtime_sequence").trim_start().starts_with('@');
            if !has_seq && !unnamed {
                return err(n, format!("aiex.run @{seq}: @{dev} has no aie.runtime_sequence of that name"));
            }
            steps.push(Step {
                line: n,
                configuration: conf,
                device: dev.clone(),
                text: only_device(text, spans, keep, has_seq.then_some(seq.as_str())),
                args: run_args,
            });
            continue;
        }
        if let Some((lhs, rhs)) = code.split_once('=') {
            let lhs = lhs.trim().to_string();
            let rhs = rhs.trim();
            if rhs.starts_with("arith.constant") {
                continue;
            }
            if let Some(r) = rhs.strip_prefix("memref.subview") {
                // %v = memref.subview %arg[O] [S] [1] : T to U
                let src = ssa(r.trim()).unwrap_or_default();
                let base = views.get(&src).cloned().ok_or_else(|| DesignError {
                    line: n,
                    message: format!("memref.subview of `{src}`, which is no sequence argument or view of one"),
                })?;
                let nums: Vec<i64> = r
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .split(['[', ']'])
                    .skip(1)
                    .step_by(2)
                    .map(|x| int(x.trim()).unwrap_or(-1))
                    .collect();
                let (o, sz, st) = match nums.as_slice() {
                    [o, s, t] => (*o, *s, *t),
                    _ => return err(n, "only 1-D memref.subview views (`[offset] [size] [1]`) are read"),
                };
                if st != 1 || o < 0 || sz < 1 || (o + sz) as usize > base.ty.elements() {
                    return err(n, format!("memref.subview [{o}] [{sz}] [{st}] is not a contiguous part of `{src}`"));
                }
                let ty = MemrefType::parse(&format!("memref<{sz}x{}>", base.ty.dtype.mlir()), n)?;
                views.insert(
                    lhs,
                    View {
                        parent: base.parent,
                        offset: base.offset + o as usize,
                        ty,
                    },
                );
                continue;
            }
            if let Some(r) = rhs.strip_prefix("memref.reinterpret_cast") {
                let src = ssa(r.trim()).unwrap_or_default();
                let base = views.get(&src).cloned().ok_or_else(|| DesignError {
                    line: n,
                    message: format!("memref.reinterpret_cast of `{src}`, which is no view of a sequence argument"),
                })?;
                let to = r.rsplit(" to ").next().unwrap_or("").trim();
                let ty = MemrefType::parse(to, n)?;
                if ty.bytes() != base.ty.bytes() {
                    return err(n, format!("memref.reinterpret_cast to {to} changes the size of `{src}` ({})", base.ty.text));
                }
                views.insert(lhs, View { ty, ..base });
                continue;
            }
        }
        return err(
            n,
            format!(
                "`{}` in a configuring runtime sequence: the emulator reads aiex.configure, aiex.run, memref.subview, \
                 memref.reinterpret_cast and constants there",
                code.split_whitespace().next().unwrap_or("")
            ),
        );
    }
    let args = args.ok_or_else(|| DesignError {
        line: s.first + 1,
        message: "the configuring device has no aie.runtime_sequence".into(),
    })?;
    Ok(Plan::Configure { args, steps })
}

/// The bytes runs leave in tiles' data memories, by tile and address.
#[derive(Default)]
pub(crate) struct Memory {
    tiles: HashMap<TileId, Vec<u8>>,
}

impl Memory {
    fn tile(&mut self, t: TileId) -> &mut Vec<u8> {
        self.tiles.entry(t).or_insert_with(|| vec![0; super::hw::regs::data_memory(t) as usize])
    }
    /// A buffer's starting contents: its initial value when the configuration is loaded (`fresh`), else what
    /// its bytes held.
    pub fn initial(&mut self, design: &super::design::Design, prepared: &[Option<Vec<u8>>], fresh: bool) -> Vec<Option<Vec<u8>>> {
        design
            .buffers
            .iter()
            .zip(prepared)
            .map(|(b, init)| {
                if fresh && init.is_some() {
                    return init.clone();
                }
                let Some(a) = b.address.filter(|&a| a >= 0) else { return init.clone() };
                let (a, n) = (a as usize, b.ty.bytes());
                if !self.tiles.contains_key(&b.tile) {
                    return init.clone();
                }
                let m = self.tile(b.tile);
                if a + n > m.len() {
                    return init.clone();
                }
                Some(m[a..a + n].to_vec())
            })
            .collect()
    }
    /// Records the buffers' final contents.
    pub fn store(&mut self, design: &super::design::Design, finals: &[Vec<u8>]) {
        for (b, bytes) in design.buffers.iter().zip(finals) {
            let Some(a) = b.address.filter(|&a| a >= 0) else { continue };
            let a = a as usize;
            let m = self.tile(b.tile);
            if a + bytes.len() <= m.len() {
                m[a..a + bytes.len()].copy_from_slice(bytes);
            }
        }
    }
}

/// Object-FIFO designs: DMA tasks on FIFOs become `dma_memcpy_nd` / `dma_wait` on the same line; a leading
/// `load_pdi` of the design's own device is dropped. Other text is unchanged.
pub(crate) fn rewrite_fifo_tasks(text: &str) -> Result<Option<String>, DesignError> {
    if !text.contains("aiex.dma_configure_task_for") && !text.contains("aiex.npu.load_pdi") && !text.contains("aiex.npu.rtp_write") {
        return Ok(None);
    }
    let lines: Vec<&str> = text.lines().collect();
    let fifos: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let c = strip_comment(l).trim();
            let r = c.strip_prefix("aie.objectfifo @")?;
            symbol(&format!("@{r}"))
        })
        .collect();
    let own: Vec<String> = device_spans(text).into_iter().filter_map(|s| s.name).collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // task SSA name -> (fifo, memcpy text)
    let mut tasks: HashMap<String, (String, String)> = HashMap::new();
    let mut changed = false;
    let mut moved = false;
    let mut k = 0;
    while k < lines.len() {
        let n = k + 1;
        let code = strip_comment(lines[k]).trim().to_string();
        if code.starts_with("aiex.npu.load_pdi") {
            let d = text::dict(&code);
            let target = d.get("device_ref").and_then(|v| symbol(v));
            if !moved && target.as_ref().is_some_and(|t| own.len() == 1 && own.contains(t)) {
                out[k] = String::new();
                changed = true;
                k += 1;
                continue;
            }
            return err(
                n,
                "aiex.npu.load_pdi is emulated only as the first op of a runtime sequence, reloading its own device",
            );
        }
        if code.contains("aiex.npu.dma_memcpy_nd") || code.contains("aiex.dma_start_task") {
            moved = true;
        }
        if code.starts_with("aiex.npu.rtp_write") && !fifos.is_empty() {
            // (@buffer, index, value): a word the sequence writes into a core's buffer.
            let (ops, _) = operands(&code, "aiex.npu.rtp_write").ok_or_else(|| DesignError {
                line: n,
                message: "expected `aiex.npu.rtp_write(@buffer, index, value)`".into(),
            })?;
            let (Some(buf), Some(index), Some(value)) = (
                ops.first().and_then(|b| symbol(b.trim())),
                ops.get(1).and_then(|v| int(v)),
                ops.get(2).and_then(|v| int(v)),
            ) else {
                return err(n, "expected `aiex.npu.rtp_write(@buffer, index, value)` with integer index and value");
            };
            out[k] = format!("\"aiec.buffer_write\"() {{buffer = @{buf}, index = {index} : i64, value = {value} : i64}} : () -> ()");
            changed = true;
            k += 1;
            continue;
        }
        if let Some((lhs, rhs)) = code.split_once('=') {
            if let Some(r) = rhs.trim().strip_prefix("aiex.dma_configure_task_for") {
                let Some(fifo) = symbol(r.trim()).filter(|f| fifos.contains(f)) else {
                    k += 1;
                    continue;
                };
                let end = region_end(&lines, k);
                let mut bd = None;
                for (j, l) in lines.iter().enumerate().take(end + 1).skip(k + 1) {
                    let c = strip_comment(l).trim();
                    if c.starts_with("aie.dma_bd") {
                        if bd.is_some() {
                            return err(j + 1, "a DMA task on an object FIFO with more than one aie.dma_bd is not emulated");
                        }
                        bd = Some((j + 1, c.to_string()));
                    } else if !(c.is_empty() || c == "aie.end" || c.starts_with('}')) {
                        return err(j + 1, format!("`{c}` in a DMA task on an object FIFO is not emulated"));
                    }
                }
                let (bl, bd) = bd.ok_or_else(|| DesignError {
                    line: n,
                    message: "a DMA task without an aie.dma_bd".into(),
                })?;
                let memcpy = task_memcpy(&bd, &fifo, bl)?;
                tasks.insert(lhs.trim().to_string(), (fifo, memcpy));
                for o in &mut out[k..=end] {
                    o.clear();
                }
                changed = true;
                k = end + 1;
                continue;
            }
        }
        for (op, wait) in [("aiex.dma_start_task", false), ("aiex.dma_await_task", true), ("aiex.dma_free_task", false)] {
            if let Some(r) = code.strip_prefix(op) {
                let t = operands(&format!("{op}{r}"), op).and_then(|(o, _)| o.first().and_then(|x| ssa(x)));
                if let Some((fifo, memcpy)) = t.and_then(|t| tasks.get(&t)) {
                    out[k] = match (op, wait) {
                        ("aiex.dma_start_task", _) => memcpy.clone(),
                        (_, true) => format!("aiex.npu.dma_wait {{symbol = @{fifo}}}"),
                        _ => String::new(),
                    };
                    changed = true;
                }
            }
        }
        k += 1;
    }
    if !changed {
        return Ok(None);
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(Some(s))
}

/// `aie.dma_bd(%a : T, offset, len[, [<size, stride>...]])` as the equivalent `dma_memcpy_nd` on `fifo`.
fn task_memcpy(bd: &str, fifo: &str, line: usize) -> Result<String, DesignError> {
    let bad = |m: &str| DesignError {
        line,
        message: format!("aie.dma_bd of a DMA task on @{fifo}: {m}"),
    };
    let (ops, _) = operands(bd, "aie.dma_bd").ok_or_else(|| bad("expected `aie.dma_bd(%buffer : type, ...)`"))?;
    let (name, ty) = ops.first().and_then(|f| f.split_once(':')).ok_or_else(|| bad("expected `%buffer : type`"))?;
    let name = ssa(name.trim()).ok_or_else(|| bad("the buffer is not an SSA value"))?;
    let ty = ty.trim().to_string();
    let mut ints = Vec::new();
    let mut dims: Vec<(i64, i64)> = Vec::new();
    for o in &ops[1..] {
        let o = o.trim();
        if o.starts_with('[') {
            if o.contains("const_pad") {
                return Err(bad("padding is not emulated on object FIFOs"));
            }
            if o.contains("size") {
                dims = text::pairs(o, ("size", "stride")).ok_or_else(|| bad("bad dimensions"))?;
            }
        } else {
            ints.push(int(o).ok_or_else(|| bad("offset and length must be integers"))?);
        }
    }
    let offset = ints.first().copied().unwrap_or(0);
    let elems = MemrefType::parse(&ty, line).map(|t| t.elements() as i64).unwrap_or(0);
    let len = ints.get(1).copied().unwrap_or(elems - offset);
    if dims.len() > 4 {
        return Err(bad("more than 4 dimensions"));
    }
    if dims.is_empty() {
        dims.push((len, 1));
    }
    let mut offs = vec![0i64; dims.len()];
    if offset != 0 {
        match dims.iter().rposition(|d| d.1 != 0 && offset % d.1 == 0) {
            Some(d) => offs[d] = offset / dims[d].1,
            None if dims.len() < 4 => {
                dims.insert(0, (1, offset));
                offs.insert(0, 1);
            }
            None => return Err(bad("the offset is not a multiple of any dimension's stride")),
        }
    }
    while dims.len() < 4 {
        dims.insert(0, (1, 0));
        offs.insert(0, 0);
    }
    let list = |v: Vec<i64>| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    Ok(format!(
        "aiex.npu.dma_memcpy_nd({name}[{}][{}][{}]) {{id = 0 : i64, metadata = @{fifo}}} : {ty}",
        list(offs),
        list(dims.iter().map(|d| d.0).collect()),
        list(dims.iter().map(|d| d.1).collect())
    ))
}
