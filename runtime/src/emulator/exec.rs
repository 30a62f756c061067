//! Running a design: object FIFO state shared by the core threads, and the event loop on the calling thread
//! that executes the runtime sequence, the shim DMAs and the links.

use super::design::{Design, SeqOp};
use super::jit::{Compiled, Endpoint};
use crate::aie_syntax::Port;
use crate::backend::{HostBuffer, RuntimeError};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// 64-byte aligned storage for one FIFO slot (vector loads in core code may want wide alignment).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

struct SlotBuf {
    chunks: Vec<Chunk>,
}

impl SlotBuf {
    fn new(bytes: usize) -> Self {
        SlotBuf {
            chunks: vec![Chunk([0; 64]); bytes.div_ceil(64).max(1)],
        }
    }
    fn ptr(&self) -> *mut u8 {
        self.chunks.as_ptr() as *mut u8
    }
}

/// The packed form of a memref argument with an identity layout: allocated and aligned pointer, offset,
/// sizes, strides.
fn memref_values(ptr: *mut u8, shape: &[usize]) -> Vec<i64> {
    let p = ptr as i64;
    let mut values = vec![p, p, 0];
    values.extend(shape.iter().map(|&d| d as i64));
    let mut strides = vec![0i64; shape.len()];
    let mut stride = 1i64;
    for (k, &d) in shape.iter().enumerate().rev() {
        strides[k] = stride;
        stride *= d as i64;
    }
    values.extend(strides);
    values
}

struct FifoRt {
    name: String,
    depth: u64,
    elem_bytes: usize,
    slots: Vec<SlotBuf>,
    /// Elements released by the producer (= written and visible to the consumers).
    produced: u64,
    prod_acquired: u64,
    cons_released: Vec<u64>,
    cons_acquired: Vec<u64>,
}

impl FifoRt {
    fn min_released(&self) -> u64 {
        self.cons_released.iter().copied().min().unwrap_or(0)
    }
    /// Whether the endpoint can hold elements up to (excluding) `target`.
    fn available(&self, port: Port, target: u64) -> bool {
        match port {
            Port::Produce => target <= self.min_released() + self.depth,
            Port::Consume => target <= self.produced,
        }
    }
    fn slot(&self, k: u64) -> *mut u8 {
        self.slots[(k % self.depth) as usize].ptr()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum CoreStatus {
    Running,
    Blocked { ep: Endpoint, n: u64, line: i64 },
    Done,
}

struct State {
    fifos: Vec<FifoRt>,
    cores: Vec<CoreStatus>,
    abort: bool,
    error: Option<String>,
    /// Counts acquires, releases and finished cores, so the event loop sees that something happened.
    events: u64,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    file: String,
    /// The storage of the design's `aie.buffer`s for this run. Only the cores touch it, through the
    /// pointers passed to their functions; it lives here so that a core left running keeps it alive.
    buffers: Vec<SlotBuf>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a core's callbacks get as their context argument.
pub(crate) struct CoreCtx {
    shared: Arc<Shared>,
    core: usize,
    endpoints: Vec<Endpoint>,
    /// Design line of each call site.
    sites: Vec<usize>,
}

/// Parks the calling thread for good: used when a run was stopped while a core was inside JIT code.
fn park_forever(guard: MutexGuard<'_, State>) -> ! {
    drop(guard);
    loop {
        std::thread::park();
    }
}

fn acquire(ctx: &CoreCtx, e: usize, n: u64, site: i64) -> u64 {
    let line = ctx.sites.get(site as usize).copied().unwrap_or(0) as i64;
    let sh = &ctx.shared;
    let ep = ctx.endpoints[e];
    let mut st = sh.lock();
    loop {
        if st.abort {
            park_forever(st);
        }
        let f = &mut st.fifos[ep.fifo];
        let (released, acquired) = match ep.port {
            Port::Produce => (f.produced, f.prod_acquired),
            Port::Consume => (f.cons_released[ep.index], f.cons_acquired[ep.index]),
        };
        let target = released + n;
        if target <= acquired || f.available(ep.port, target) {
            match ep.port {
                Port::Produce => f.prod_acquired = f.prod_acquired.max(target),
                Port::Consume => f.cons_acquired[ep.index] = f.cons_acquired[ep.index].max(target),
            }
            st.cores[ctx.core] = CoreStatus::Running;
            st.events += 1;
            return released;
        }
        st.cores[ctx.core] = CoreStatus::Blocked { ep, n, line };
        sh.cv.notify_all();
        st = sh.cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

fn release(ctx: &CoreCtx, e: usize, n: u64, site: i64) {
    let line = ctx.sites.get(site as usize).copied().unwrap_or(0);
    let sh = &ctx.shared;
    let ep = ctx.endpoints[e];
    let mut st = sh.lock();
    if st.abort {
        park_forever(st);
    }
    let f = &mut st.fifos[ep.fifo];
    let (released, acquired) = match ep.port {
        Port::Produce => (&mut f.produced, f.prod_acquired),
        Port::Consume => (&mut f.cons_released[ep.index], f.cons_acquired[ep.index]),
    };
    if *released + n > acquired {
        let held = acquired - *released;
        let msg = format!(
            "{}:{line}: aie.objectfifo.release @{}({}, {n}) but the core holds only {held} element(s)",
            sh.file,
            f.name,
            ep.port.name()
        );
        st.error.get_or_insert(msg);
        st.abort = true;
        sh.cv.notify_all();
        park_forever(st);
    }
    *released += n;
    st.events += 1;
    sh.cv.notify_all();
}

/// `index aiec_acquire(i64 ctx, i64 endpoint, i64 n, i64 site)`: blocks until the endpoint holds `n`
/// elements and returns the running number of the first one.
pub(crate) extern "C" fn aiec_acquire(ctx: i64, endpoint: i64, n: i64, site: i64) -> i64 {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    acquire(ctx, endpoint as usize, n as u64, site) as i64
}

/// `aiec_release(i64 ctx, i64 endpoint, i64 n, i64 site)`.
pub(crate) extern "C" fn aiec_release(ctx: i64, endpoint: i64, n: i64, site: i64) {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    release(ctx, endpoint as usize, n as u64, site)
}

struct Transfer {
    line: usize,
    arg: usize,
    to_array: bool,
    consumer: usize,
    /// Host element indices in transfer order.
    indices: Vec<usize>,
    pos: usize,
}

/// Cursor of one FIFO on the "many" side of a link (or of the single FIFO of a forward).
struct LinkCursor {
    /// Element number on the single side.
    k: u64,
    /// Sub-element within the piece.
    s: usize,
}

struct LinkRt {
    line: usize,
    /// true: one input cut into outputs; false: inputs assembled into one output.
    split: bool,
    single: usize,
    many: Vec<usize>,
    pieces: Vec<(usize, usize)>,
    cursors: Vec<LinkCursor>,
}

fn pattern(base: i64, sizes: [i64; 4], strides: [i64; 4]) -> Vec<usize> {
    let mut out = Vec::with_capacity(sizes.iter().product::<i64>() as usize);
    for a in 0..sizes[0] {
        for b in 0..sizes[1] {
            for c in 0..sizes[2] {
                let row = base + a * strides[0] + b * strides[1] + c * strides[2];
                for d in 0..sizes[3] {
                    out.push((row + d * strides[3]) as usize);
                }
            }
        }
    }
    out
}

/// Runs one design with compiled cores. `buffers` holds each aie.buffer's initial contents (`None`: zeros),
/// `args` are in runtime-sequence order.
pub(crate) fn run(
    design: &Design,
    compiled: &Arc<Compiled>,
    buffers: &[Option<Vec<u8>>],
    file: &str,
    args: &mut [HostBuffer],
    stall_timeout: Duration,
) -> Result<usize, RuntimeError> {
    let fifos = design
        .fifos
        .iter()
        .map(|f| FifoRt {
            name: f.name.clone(),
            depth: f.depth as u64,
            elem_bytes: f.elem.bytes(),
            slots: (0..f.depth).map(|_| SlotBuf::new(f.elem.bytes())).collect(),
            produced: 0,
            prod_acquired: 0,
            cons_released: vec![0; f.consumers.len()],
            cons_acquired: vec![0; f.consumers.len()],
        })
        .collect();
    // Buffers: allocated once per run, persistent across every iteration of their core.
    let buffers: Vec<SlotBuf> = design
        .buffers
        .iter()
        .zip(buffers)
        .map(|(b, init)| {
            let mut storage = SlotBuf::new(b.ty.bytes());
            if let Some(init) = init {
                let n = init.len().min(b.ty.bytes());
                unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), storage.chunks.as_mut_ptr() as *mut u8, n) };
            }
            storage
        })
        .collect();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            fifos,
            cores: vec![CoreStatus::Running; design.cores.len()],
            abort: false,
            error: None,
            events: 0,
        }),
        cv: Condvar::new(),
        file: file.to_string(),
        buffers,
    });

    // Core threads.
    let mut handles = Vec::new();
    for (ci, entry) in compiled.cores.iter().enumerate() {
        let ctx = Box::new(CoreCtx {
            shared: shared.clone(),
            core: ci,
            endpoints: entry.endpoints.clone(),
            sites: entry.sites.clone(),
        });
        // Packed arguments: the context, then per slot memref (allocated, aligned, offset, sizes, strides),
        // then the buffers the core uses, in the order of the function's parameters.
        let mut values: Vec<i64> = Vec::new();
        {
            let st = shared.lock();
            for &fi in &entry.slot_fifos {
                let f = &design.fifos[fi];
                for j in 0..f.depth {
                    values.extend(memref_values(st.fifos[fi].slots[j].ptr(), &f.elem.shape));
                }
            }
        }
        for &bi in &design.cores[ci].buffers {
            values.extend(memref_values(shared.buffers[bi].ptr(), &design.buffers[bi].ty.shape));
        }
        let compiled = compiled.clone();
        let sh = shared.clone();
        let entry_addr = entry.entry;
        let h = std::thread::Builder::new()
            .name(format!("aiec-core-{}-{}", design.cores[ci].tile.col, design.cores[ci].tile.row))
            .stack_size(16 << 20)
            .spawn(move || {
                let ctx = ctx;
                let mut values = values;
                let mut ctx_value: i64 = &*ctx as *const CoreCtx as i64;
                let mut ptrs: Vec<*mut ()> = vec![&mut ctx_value as *mut i64 as *mut ()];
                ptrs.extend(values.iter_mut().map(|v| v as *mut i64 as *mut ()));
                let f: extern "C" fn(*mut *mut ()) = unsafe { std::mem::transmute(entry_addr) };
                f(ptrs.as_mut_ptr());
                let mut st = sh.lock();
                st.cores[ci] = CoreStatus::Done;
                st.events += 1;
                sh.cv.notify_all();
                drop(st);
                drop(compiled);
            })
            .map_err(|e| RuntimeError::Other(format!("cannot start a core thread: {e}")))?;
        handles.push(h);
    }

    let mut links: Vec<LinkRt> = design
        .links
        .iter()
        .map(|l| {
            let (split, single, many, pieces) = if l.ins.len() == 1 && l.outs.len() == 1 {
                let (a, b) = (design.fifos[l.ins[0]].elem.bytes(), design.fifos[l.outs[0]].elem.bytes());
                if a >= b {
                    (true, l.ins[0], vec![l.outs[0]], vec![(0, a)])
                } else {
                    (false, l.outs[0], vec![l.ins[0]], vec![(0, b)])
                }
            } else if l.ins.len() == 1 {
                (true, l.ins[0], l.outs.clone(), l.pieces.clone())
            } else {
                (false, l.outs[0], l.ins.clone(), l.pieces.clone())
            };
            let cursors = many.iter().map(|_| LinkCursor { k: 0, s: 0 }).collect();
            LinkRt {
                line: l.line,
                split,
                single,
                many,
                pieces,
                cursors,
            }
        })
        .collect();

    let ops = &design.sequence.ops;
    let mut pc = 0usize;
    let mut queues: Vec<VecDeque<Transfer>> = (0..design.fifos.len()).map(|_| VecDeque::new()).collect();
    let mut transfers = 0usize;
    let mut last_events = u64::MAX;
    let mut last_change = Instant::now();
    let result = loop {
        let mut st = shared.lock();
        if let Some(e) = st.error.take() {
            st.abort = true;
            shared.cv.notify_all();
            break Err(RuntimeError::Design(e));
        }
        let mut progressed = false;
        // The runtime sequence, in order; only dma_wait blocks it.
        while pc < ops.len() {
            match &ops[pc] {
                SeqOp::Dma {
                    line,
                    arg,
                    fifo,
                    base,
                    sizes,
                    strides,
                    to_array,
                    consumer,
                } => {
                    queues[*fifo].push_back(Transfer {
                        line: *line,
                        arg: *arg,
                        to_array: *to_array,
                        consumer: *consumer,
                        indices: pattern(*base, *sizes, *strides),
                        pos: 0,
                    });
                    transfers += 1;
                }
                SeqOp::Wait { fifo, .. } => {
                    if !queues[*fifo].is_empty() {
                        break;
                    }
                }
            }
            pc += 1;
            progressed = true;
        }
        // Shim DMAs.
        for (fi, q) in queues.iter_mut().enumerate() {
            while let Some(t) = q.front_mut() {
                let f = &mut st.fifos[fi];
                let host = &mut args[t.arg];
                let esize = host.dtype.size_bytes();
                let per_elem = f.elem_bytes / esize;
                let mut moved = false;
                while t.pos < t.indices.len() {
                    if t.to_array {
                        if !f.available(Port::Produce, f.produced + 1) {
                            break;
                        }
                        let dst = f.slot(f.produced);
                        for (i, &h) in t.indices[t.pos..t.pos + per_elem].iter().enumerate() {
                            unsafe { std::ptr::copy_nonoverlapping(host.bytes.as_ptr().add(h * esize), dst.add(i * esize), esize) };
                        }
                        f.produced += 1;
                        f.prod_acquired = f.produced;
                    } else {
                        let c = t.consumer;
                        if f.cons_released[c] >= f.produced {
                            break;
                        }
                        let src = f.slot(f.cons_released[c]);
                        for (i, &h) in t.indices[t.pos..t.pos + per_elem].iter().enumerate() {
                            unsafe { std::ptr::copy_nonoverlapping(src.add(i * esize), host.bytes.as_mut_ptr().add(h * esize), esize) };
                        }
                        f.cons_released[c] += 1;
                        f.cons_acquired[c] = f.cons_released[c];
                    }
                    t.pos += per_elem;
                    moved = true;
                }
                progressed |= moved;
                if t.pos == t.indices.len() {
                    q.pop_front();
                } else {
                    break;
                }
            }
        }
        // Links.
        for l in links.iter_mut() {
            progressed |= step_link(&mut st, l);
        }
        if progressed {
            shared.cv.notify_all();
        }
        let seq_done = pc == ops.len();
        let transfers_done = queues.iter().all(|q| q.is_empty());
        if seq_done && transfers_done {
            break Ok(transfers);
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
            break Err(RuntimeError::Other(format!(
                "{file}: no object FIFO or DMA activity for {:.0} s while {} kept running (an endless loop?); \
                 stopped waiting",
                stall_timeout.as_secs_f64(),
                running.join(", ")
            )));
        }
        if !progressed {
            let stuck = st.cores.iter().all(|c| match c {
                CoreStatus::Done => true,
                CoreStatus::Running => false,
                CoreStatus::Blocked { ep, n, .. } => {
                    let f = &st.fifos[ep.fifo];
                    let released = match ep.port {
                        Port::Produce => f.produced,
                        Port::Consume => f.cons_released[ep.index],
                    };
                    !f.available(ep.port, released + n)
                }
            });
            if stuck {
                if seq_done {
                    break Ok(transfers);
                }
                let msg = deadlock_message(design, &st, &queues, &links, pc);
                break Err(RuntimeError::Deadlock(format!("{file}: {msg}")));
            }
            let _ = shared.cv.wait_timeout(st, Duration::from_millis(20));
        }
    };
    // Stop: blocked cores park for good; finished ones are joined.
    {
        let mut st = shared.lock();
        st.abort = true;
        shared.cv.notify_all();
        let done: Vec<bool> = st.cores.iter().map(|c| *c == CoreStatus::Done).collect();
        drop(st);
        for (h, d) in handles.into_iter().zip(done) {
            if d {
                let _ = h.join();
            }
        }
    }
    result
}

fn step_link(st: &mut State, l: &mut LinkRt) -> bool {
    let mut progressed = false;
    loop {
        let mut moved = false;
        for (j, &m) in l.many.iter().enumerate() {
            let (off, len) = l.pieces[j];
            let cur = &mut l.cursors[j];
            if l.split {
                // Input element cur.k (of `single`) -> next element of output `m`.
                let small = st.fifos[m].elem_bytes;
                let (src_ok, dst_ok) = {
                    let inp = &st.fifos[l.single];
                    let out = &st.fifos[m];
                    (cur.k < inp.produced, out.available(Port::Produce, out.produced + 1))
                };
                if src_ok && dst_ok {
                    let src = st.fifos[l.single].slot(cur.k);
                    let out = &mut st.fifos[m];
                    let dst = out.slot(out.produced);
                    unsafe { std::ptr::copy_nonoverlapping(src.add(off + cur.s * small), dst, small) };
                    out.produced += 1;
                    out.prod_acquired = out.produced;
                    cur.s += 1;
                    if cur.s * small >= len {
                        cur.s = 0;
                        cur.k += 1;
                    }
                    moved = true;
                }
            } else {
                // Next element of input `m` -> piece of output element cur.k (of `single`).
                let small = st.fifos[m].elem_bytes;
                let (src_ok, dst_ok) = {
                    let inp = &st.fifos[m];
                    let out = &st.fifos[l.single];
                    (inp.cons_released[0] < inp.produced, cur.k < out.min_released() + out.depth)
                };
                if src_ok && dst_ok {
                    let inp = &st.fifos[m];
                    let src = inp.slot(inp.cons_released[0]);
                    let dst = st.fifos[l.single].slot(cur.k);
                    unsafe { std::ptr::copy_nonoverlapping(src, dst.add(off + cur.s * small), small) };
                    let inp = &mut st.fifos[m];
                    inp.cons_released[0] += 1;
                    inp.cons_acquired[0] = inp.cons_released[0];
                    cur.s += 1;
                    if cur.s * small >= len {
                        cur.s = 0;
                        cur.k += 1;
                    }
                    moved = true;
                }
            }
        }
        let min_k = l.cursors.iter().map(|c| c.k).min().unwrap_or(0);
        if l.split {
            let inp = &mut st.fifos[l.single];
            if inp.cons_released[0] < min_k {
                inp.cons_released[0] = min_k;
                inp.cons_acquired[0] = min_k;
            }
        } else {
            let out = &mut st.fifos[l.single];
            if out.produced < min_k {
                out.produced = min_k;
                out.prod_acquired = min_k;
            }
        }
        if !moved {
            return progressed;
        }
        progressed = true;
    }
}

fn deadlock_message(design: &Design, st: &State, queues: &[VecDeque<Transfer>], links: &[LinkRt], pc: usize) -> String {
    let mut parts = Vec::new();
    for (ci, c) in st.cores.iter().enumerate() {
        if let CoreStatus::Blocked { ep, n, line } = c {
            let t = design.cores[ci].tile;
            parts.push(format!(
                "core {t} waits at line {line} on aie.objectfifo.acquire @{}({}, {n})",
                design.fifos[ep.fifo].name,
                ep.port.name()
            ));
        }
    }
    for (fi, q) in queues.iter().enumerate() {
        if let Some(t) = q.front() {
            let name = &design.fifos[fi].name;
            parts.push(if t.to_array {
                format!("shim DMA of aiex.npu.dma_memcpy_nd at line {} waits for a free element of @{name}", t.line)
            } else {
                format!("shim DMA of aiex.npu.dma_memcpy_nd at line {} waits for data on @{name}", t.line)
            });
        }
    }
    for l in links {
        let pending = l.many.iter().any(|&m| {
            let f = &st.fifos[m];
            if l.split {
                false
            } else {
                f.cons_released[0] < f.produced
            }
        }) || (l.split && st.fifos[l.single].cons_released[0] < st.fifos[l.single].produced);
        if pending {
            let (ins, outs): (Vec<usize>, Vec<usize>) = if l.split {
                (vec![l.single], l.many.clone())
            } else {
                (l.many.clone(), vec![l.single])
            };
            let names = |v: &[usize]| v.iter().map(|&f| format!("@{}", design.fifos[f].name)).collect::<Vec<_>>().join(", ");
            parts.push(format!(
                "link at line {} ({} -> {}) waits for room in its outputs",
                l.line,
                names(&ins),
                names(&outs)
            ));
        }
    }
    if let Some(SeqOp::Wait { line, fifo }) = design.sequence.ops.get(pc) {
        parts.push(format!(
            "runtime sequence waits at line {line} on aiex.npu.dma_wait {{symbol = @{}}}",
            design.fifos[*fifo].name
        ));
    }
    if parts.is_empty() {
        parts.push("no core, DMA or link can make progress".into());
    }
    parts.join("; ")
}
