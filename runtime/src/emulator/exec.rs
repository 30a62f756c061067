//! Running a design: object FIFO state shared by the core threads, and the event loop on the calling thread
//! that executes the runtime sequence, the shim DMAs and the links.

use super::checks::{CheckSite, SiteKind};
use super::design::{Design, DesignError, SeqOp, TileId};
use super::hw::run::{try_lock, HwState};
use super::hw::LockAction;
use super::jit::{Compiled, Endpoint};
use crate::aie_syntax::Port;
use crate::backend::{ArgData, RuntimeError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// 64-byte aligned storage for one FIFO slot (vector loads in core code may want wide alignment).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

pub(crate) struct SlotBuf {
    chunks: Vec<Chunk>,
}

impl SlotBuf {
    /// Zeroed storage; a failed allocation is an error, not an abort (the design's sizes were checked against
    /// [`super::design::HOST_MEMORY_LIMIT`] already).
    fn new(bytes: usize) -> Result<Self, RuntimeError> {
        let n = bytes.div_ceil(64).max(1);
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(n).map_err(|_| RuntimeError::OutOfMemory { bytes })?;
        chunks.resize(n, Chunk([0; 64]));
        Ok(SlotBuf { chunks })
    }
    pub(crate) fn ptr(&self) -> *mut u8 {
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
pub(crate) enum CoreStatus {
    Running,
    Blocked {
        ep: Endpoint,
        n: u64,
        line: i64,
    },
    /// Waiting in `aie.use_lock` on lock `lock` (index into `Design::locks`).
    BlockedLock {
        lock: usize,
        action: LockAction,
        value: i64,
        line: i64,
    },
    Done,
    /// Stopped for good inside a callback (the run ended, or this core failed): it never runs core code again.
    Parked,
}

pub(crate) struct State {
    fifos: Vec<FifoRt>,
    /// The storage of the design's `aie.buffer`s for this run. The cores touch it through the pointers passed
    /// to their functions; at the hardware level, DMAs too (while they hold the buffer's lock).
    pub(crate) buffers: Vec<SlotBuf>,
    pub(crate) cores: Vec<CoreStatus>,
    /// Lock values of a hardware-level design.
    pub(crate) hw: Option<HwState>,
    abort: bool,
    pub(crate) error: Option<String>,
    /// Counts acquires, releases and finished cores, so the event loop sees that something happened.
    pub(crate) events: u64,
    /// The run has returned to its caller.
    finished: bool,
    /// Per core, the compiled code it may still execute: dropped when the core is done or parked.
    code: Vec<Option<Arc<Compiled>>>,
}

impl State {
    /// Once the run has returned and no core can touch FIFO slots or buffers any more (every core done or
    /// parked), frees them: a run stopped by an error leaves parked threads behind, not its memory.
    fn free_storage_if_idle(&mut self) {
        if self.finished && self.cores.iter().all(|c| matches!(c, CoreStatus::Done | CoreStatus::Parked)) {
            for f in &mut self.fifos {
                f.slots = Vec::new();
            }
            self.buffers = Vec::new();
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The event loop waits here for core activity.
    pub(crate) cv: Condvar,
    /// Each core waits on its own: waking only the cores whose acquire can now succeed keeps a run of
    /// many cores on few host threads from spending its time in wake-ups that find nothing to do.
    core_cv: Vec<Condvar>,
    file: String,
    /// Mirrors `State::abort` for `aiec_poll`, which must be cheap.
    stop: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Ends the run: every core parks at its next callback.
    pub(crate) fn abort(&self, st: &mut State) {
        st.abort = true;
        self.stop.store(true, Ordering::Relaxed);
        self.cv.notify_all();
        for cv in &self.core_cv {
            cv.notify_all();
        }
    }
    /// After a change of FIFO state: tells the event loop, and wakes each blocked core whose acquire
    /// can now succeed.
    pub(crate) fn wake(&self, st: &State) {
        self.cv.notify_all();
        for (i, c) in st.cores.iter().enumerate() {
            if let CoreStatus::BlockedLock { lock, action, value, .. } = c {
                if let Some(hw) = &st.hw {
                    let mut v = hw.locks[*lock];
                    if try_lock(&mut v, *action, *value).unwrap_or(true) {
                        self.core_cv[i].notify_one();
                    }
                }
                continue;
            }
            if let CoreStatus::Blocked { ep, n, .. } = c {
                let f = &st.fifos[ep.fifo];
                let released = match ep.port {
                    Port::Produce => f.produced,
                    Port::Consume => f.cons_released[ep.index],
                };
                if f.available(ep.port, released + n) {
                    self.core_cv[i].notify_one();
                }
            }
        }
    }
}

/// What a core's callbacks get as their context argument.
pub(crate) struct CoreCtx {
    shared: Arc<Shared>,
    core: usize,
    tile: TileId,
    endpoints: Vec<Endpoint>,
    /// The locks the core uses, by the number its code passes to `aiec_lock`.
    locks: Vec<usize>,
    /// Design line of each call site.
    sites: Vec<usize>,
    /// The bounds-checked accesses, by site number, and what each function argument is.
    checks: Arc<Vec<CheckSite>>,
    arg_names: Vec<String>,
    /// See [`super::jit::CoreEntry::line_shift`]; `code_tile` is the tile of the core whose text the lines are.
    line_shift: Option<i64>,
    code_tile: TileId,
    /// How each lock of `locks` is named in messages.
    lock_names: Vec<String>,
}

/// Parks the calling core thread for good: used when a run was stopped while a core was inside JIT code.
/// The core never returns into its code, so it gives up its hold on the compiled code and the run's storage.
fn park_forever(ctx: &CoreCtx, mut st: MutexGuard<'_, State>) -> ! {
    st.cores[ctx.core] = CoreStatus::Parked;
    let code = st.code[ctx.core].take();
    st.events += 1;
    st.free_storage_if_idle();
    ctx.shared.wake(&st);
    drop(st);
    drop(code);
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
            park_forever(ctx, st);
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
        st = sh.core_cv[ctx.core].wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

fn release(ctx: &CoreCtx, e: usize, n: u64, site: i64) {
    let line = ctx.sites.get(site as usize).copied().unwrap_or(0);
    let sh = &ctx.shared;
    let ep = ctx.endpoints[e];
    let mut st = sh.lock();
    if st.abort {
        park_forever(ctx, st);
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
        sh.abort(&mut st);
        park_forever(ctx, st);
    }
    *released += n;
    st.events += 1;
    sh.wake(&st);
}

fn use_lock(ctx: &CoreCtx, e: usize, action: LockAction, value: i64, site: i64) {
    let line = ctx.sites.get(site as usize).copied().unwrap_or(0) as i64;
    let sh = &ctx.shared;
    let lock = ctx.locks[e];
    let mut st = sh.lock();
    loop {
        if st.abort {
            park_forever(ctx, st);
        }
        let hw = st.hw.as_mut().expect("locks belong to hardware-level designs");
        match try_lock(&mut hw.locks[lock], action, value) {
            Ok(true) => {
                st.cores[ctx.core] = CoreStatus::Running;
                st.events += 1;
                sh.wake(&st);
                return;
            }
            Ok(false) => {}
            Err(m) => {
                let msg = format!("{}:{line}: core {}: aie.use_lock on {}: {m}", sh.file, ctx.tile, ctx.lock_names[e]);
                st.error.get_or_insert(msg);
                sh.abort(&mut st);
                park_forever(ctx, st);
            }
        }
        st.cores[ctx.core] = CoreStatus::BlockedLock { lock, action, value, line };
        sh.cv.notify_all();
        st = sh.core_cv[ctx.core].wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

/// `aiec_lock(i64 ctx, i64 lock, i64 action, i64 value, i64 site)`: `aie.use_lock` in core code (action 0
/// Acquire, 1 AcquireGreaterEqual, 2 Release); blocks until the acquire succeeds.
pub(crate) extern "C" fn aiec_lock(ctx: i64, lock: i64, action: i64, value: i64, site: i64) {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    use_lock(ctx, lock as usize, LockAction::from_code(action), value, site)
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

/// `aiec_poll(i64 ctx)`: called in long-running loops; parks the core when its run has ended.
pub(crate) extern "C" fn aiec_poll(ctx: i64) {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    if ctx.shared.stop.load(Ordering::Relaxed) {
        let st = ctx.shared.lock();
        park_forever(ctx, st);
    }
}

/// `aiec_oob(i64 ctx, i64 site, i64 dim, index i, i64 size, i64 len)`: called before an access whose bounds
/// check failed, once per dimension (then once with `dim` -1). The first dimension out of bounds (`i` not in
/// `0..=size-len`, or `0..=size` for a masked transfer dimension, `len` 0) is reported as the run's error and
/// the core parks for good, so the access never happens.
pub(crate) extern "C" fn aiec_oob(ctx: i64, site: i64, dim: i64, index: i64, size: i64, len: i64) {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    if dim >= 0 {
        let in_bounds = index >= 0 && index <= size.saturating_sub(len.max(0));
        if in_bounds && size >= len {
            return;
        }
    }
    let msg = oob_message(ctx, site, dim, index, size, len);
    let mut st = ctx.shared.lock();
    st.error.get_or_insert(msg);
    ctx.shared.abort(&mut st);
    park_forever(ctx, st);
}

/// `aiec_fault(i64 ctx, i64 site)`: called before an integer division that would trap (see
/// [`super::checks`]); reports it as the run's error and parks the core for good.
pub(crate) extern "C" fn aiec_fault(ctx: i64, site: i64) {
    let ctx = unsafe { &*(ctx as *const CoreCtx) };
    let file = &ctx.shared.file;
    let msg = match usize::try_from(site).ok().and_then(|i| ctx.checks.get(i)) {
        Some(CheckSite {
            line,
            kind: SiteKind::Division { op },
        }) => {
            let (line, note) = site_line(ctx, *line);
            format!(
                "core {}: `{op}` at {file}:{line} divides by zero (or overflows: the most negative value by -1){note}",
                ctx.tile
            )
        }
        _ => format!("core {}: an integer division that would trap", ctx.tile),
    };
    let mut st = ctx.shared.lock();
    st.error.get_or_insert(msg);
    ctx.shared.abort(&mut st);
    park_forever(ctx, st);
}

/// The design line of a check site for this core, and a note when it is another core's line.
fn site_line(ctx: &CoreCtx, line: usize) -> (i64, String) {
    match ctx.line_shift {
        Some(shift) => (line as i64 + shift, String::new()),
        None => (line as i64, format!(" (a line of core {}, whose compiled code this core runs)", ctx.code_tile)),
    }
}

fn oob_message(ctx: &CoreCtx, site: i64, dim: i64, index: i64, size: i64, len: i64) -> String {
    let file = &ctx.shared.file;
    let Some((line, SiteKind::Access { store, root, memref, rank })) = usize::try_from(site).ok().and_then(|i| ctx.checks.get(i)).map(|s| (s.line, &s.kind))
    else {
        return format!("core {}: out-of-bounds memory access", ctx.tile);
    };
    let kind = if *store { "store" } else { "load" };
    let name = root
        .and_then(|r| ctx.arg_names.get(r))
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("a {memref}"));
    let (line, note) = site_line(ctx, line);
    if dim < 0 {
        return format!("core {}: out-of-bounds {kind} on {name} at {file}:{line}{note}", ctx.tile);
    }
    let range = if len > 1 {
        format!("index {index} to {}", index.saturating_add(len - 1))
    } else {
        format!("index {index}")
    };
    let dims = if *rank > 1 {
        format!(" in dimension {dim} of {memref}")
    } else {
        String::new()
    };
    format!(
        "core {}: out-of-bounds {kind} on {name} at {file}:{line} ({range}, size {size}){dims}{note}",
        ctx.tile
    )
}

struct Transfer {
    line: usize,
    arg: usize,
    to_array: bool,
    consumer: usize,
    /// Host element indices in transfer order.
    pattern: Pattern,
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

/// A 4-D access pattern, outermost first: the host element index of each position, computed when needed
/// (a pattern repeating with stride 0 may be far longer than its argument). The design checked that every
/// index is inside the argument and that the count fits the host limit.
struct Pattern {
    base: u64,
    sizes: [u64; 4],
    strides: [u64; 4],
    count: usize,
}

impl Pattern {
    fn new(base: i64, sizes: [i64; 4], strides: [i64; 4]) -> Pattern {
        let sizes = sizes.map(|s| s.max(1) as u64);
        Pattern {
            base: base as u64,
            sizes,
            strides: strides.map(|s| s as u64),
            count: sizes.iter().product::<u64>() as usize,
        }
    }
    fn index(&self, p: usize) -> usize {
        let mut r = p as u64;
        let mut at = self.base;
        for k in (0..4).rev() {
            at += (r % self.sizes[k]) * self.strides[k];
            r /= self.sizes[k];
        }
        at as usize
    }
    /// [`Pattern::index`] of position `p`, and how many positions from `p` on are contiguous in host memory
    /// (the rest of the innermost dimension when its stride is 1), so a DMA can copy them at once.
    fn run_at(&self, p: usize) -> (usize, usize) {
        let within = (p as u64 % self.sizes[3]) as usize;
        let run = if self.strides[3] == 1 { self.sizes[3] as usize - within } else { 1 };
        (self.index(p), run)
    }
}

/// Runs one design with compiled cores. `buffers` holds each aie.buffer's initial contents (`None`: zeros),
/// `args` are in runtime-sequence order.
pub(crate) fn run(
    design: &Design,
    compiled: &Arc<Compiled>,
    buffers: &[Option<Vec<u8>>],
    file: &str,
    args: &mut [ArgData<'_>],
    stall_timeout: Duration,
    finals: Option<&mut Vec<Vec<u8>>>,
) -> Result<usize, RuntimeError> {
    let fifos = design
        .fifos
        .iter()
        .map(|f| {
            Ok(FifoRt {
                name: f.name.clone(),
                depth: f.depth as u64,
                elem_bytes: f.elem.bytes(),
                slots: (0..f.depth).map(|_| SlotBuf::new(f.elem.bytes())).collect::<Result<_, _>>()?,
                produced: 0,
                prod_acquired: 0,
                cons_released: vec![0; f.consumers.len()],
                cons_acquired: vec![0; f.consumers.len()],
            })
        })
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    // Buffers: allocated once per run, persistent across every iteration of their core.
    let buffers: Vec<SlotBuf> = design
        .buffers
        .iter()
        .zip(buffers)
        .map(|(b, init)| {
            let mut storage = SlotBuf::new(b.ty.bytes())?;
            if let Some(init) = init {
                let n = init.len().min(b.ty.bytes());
                unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), storage.chunks.as_mut_ptr() as *mut u8, n) };
            }
            Ok(storage)
        })
        .collect::<Result<_, RuntimeError>>()?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            fifos,
            buffers,
            cores: vec![CoreStatus::Running; design.cores.len()],
            hw: design.hw.as_ref().map(|_| HwState::new(design)),
            abort: false,
            error: None,
            events: 0,
            finished: false,
            code: vec![Some(compiled.clone()); design.cores.len()],
        }),
        cv: Condvar::new(),
        core_cv: (0..design.cores.len()).map(|_| Condvar::new()).collect(),
        file: file.to_string(),
        stop: AtomicBool::new(false),
    });

    // Core threads.
    let mut handles = Vec::new();
    for (ci, entry) in compiled.cores.iter().enumerate() {
        let ctx = Box::new(CoreCtx {
            shared: shared.clone(),
            core: ci,
            tile: design.cores[ci].tile,
            endpoints: entry.endpoints.clone(),
            locks: entry.locks.clone(),
            lock_names: entry.locks.iter().map(|&l| design.locks[l].describe()).collect(),
            sites: entry.sites.clone(),
            checks: entry.checks.clone(),
            arg_names: entry.arg_names.clone(),
            line_shift: entry.line_shift,
            code_tile: design.cores.get(entry.code_of).map(|c| c.tile).unwrap_or(design.cores[ci].tile),
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
            for &bi in &design.cores[ci].buffers {
                values.extend(memref_values(st.buffers[bi].ptr(), &design.buffers[bi].ty.shape));
            }
        }
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
                let code = st.code[ci].take();
                st.events += 1;
                st.free_storage_if_idle();
                sh.wake(&st);
                drop(st);
                drop(code);
            });
        let h = match h {
            Ok(h) => h,
            Err(e) => {
                // Cores already started park at their next callback; this one never ran.
                let mut st = shared.lock();
                for c in st.cores.iter_mut().skip(ci) {
                    *c = CoreStatus::Parked;
                }
                for k in ci..st.code.len() {
                    st.code[k] = None;
                }
                st.finished = true;
                shared.abort(&mut st);
                st.free_storage_if_idle();
                return Err(RuntimeError::CoreThread(e));
            }
        };
        handles.push(h);
    }

    let result = if design.hw.is_some() {
        super::hw::run::drive(design, &shared, args, file, stall_timeout)
    } else {
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
        let result = 'run: loop {
            let mut st = shared.lock();
            if let Some(e) = st.error.take() {
                shared.abort(&mut st);
                break Err(RuntimeError::Fault(e));
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
                            pattern: Pattern::new(*base, *sizes, *strides),
                            pos: 0,
                        });
                        transfers += 1;
                    }
                    SeqOp::Wait { fifo, .. } => {
                        if !queues[*fifo].is_empty() {
                            break;
                        }
                    }
                    SeqOp::BufferWrite { buffer, word, value, .. } => {
                        // Checked against the buffer's size when the design was read.
                        let p = unsafe { st.buffers[*buffer].ptr().add(word * 4) };
                        unsafe { std::ptr::copy_nonoverlapping(value.to_le_bytes().as_ptr(), p, 4) };
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
                    let esize = design.sequence.args[t.arg].1.dtype.size_bytes();
                    let per_elem = f.elem_bytes / esize;
                    let mut moved = false;
                    while t.pos < t.pattern.count {
                        if t.to_array {
                            if !f.available(Port::Produce, f.produced + 1) {
                                break;
                            }
                            let dst = f.slot(f.produced);
                            let src = host.bytes().as_ptr();
                            let mut i = 0;
                            while i < per_elem {
                                let (h, run) = t.pattern.run_at(t.pos + i);
                                let n = run.min(per_elem - i);
                                unsafe { std::ptr::copy_nonoverlapping(src.add(h * esize), dst.add(i * esize), n * esize) };
                                i += n;
                            }
                            f.produced += 1;
                            f.prod_acquired = f.produced;
                        } else {
                            let c = t.consumer;
                            if f.cons_released[c] >= f.produced {
                                break;
                            }
                            let Some(out) = host.bytes_mut() else {
                                let name = &design.sequence.args[t.arg].0;
                                shared.abort(&mut st);
                                break 'run Err(RuntimeError::Design {
                                    file: file.to_string(),
                                    source: DesignError {
                                        line: t.line,
                                        message: format!("the runtime sequence writes argument {} ({name}), which the caller passed as an input", t.arg),
                                    },
                                });
                            };
                            let src = f.slot(f.cons_released[c]);
                            let mut i = 0;
                            while i < per_elem {
                                let (h, run) = t.pattern.run_at(t.pos + i);
                                let n = run.min(per_elem - i);
                                unsafe { std::ptr::copy_nonoverlapping(src.add(i * esize), out.as_mut_ptr().add(h * esize), n * esize) };
                                i += n;
                            }
                            f.cons_released[c] += 1;
                            f.cons_acquired[c] = f.cons_released[c];
                        }
                        t.pos += per_elem;
                        moved = true;
                    }
                    progressed |= moved;
                    if t.pos >= t.pattern.count {
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
                shared.wake(&st);
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
                break Err(RuntimeError::Stalled {
                    file: file.to_string(),
                    activity: "object FIFO or DMA",
                    waited: stall_timeout,
                    cores: running,
                });
            }
            if !progressed {
                let stuck = st.cores.iter().all(|c| match c {
                    CoreStatus::Done | CoreStatus::Parked => true,
                    CoreStatus::Running => false,
                    CoreStatus::BlockedLock { .. } => true,
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
        result
    };
    // Stop: blocked and still running cores park for good at their next callback (freeing the run's storage
    // with the last of them); finished ones are joined.
    {
        let mut st = shared.lock();
        st.finished = true;
        shared.abort(&mut st);
        if let Some(out) = finals {
            // What the run leaves in its buffers (data memory outlives a run on the hardware).
            *out = st
                .buffers
                .iter()
                .zip(&design.buffers)
                .map(|(b, d)| unsafe { std::slice::from_raw_parts(b.ptr(), d.ty.bytes()) }.to_vec())
                .collect();
        }
        st.free_storage_if_idle();
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
