//! Fuzzing the emulator with mutated designs: whatever the text, a run ends with a result or an error, never a
//! panic, a crash, a hang or an unbounded allocation.
//!
//! The seeds are aiec's designs for small variants of dsl-examples/{matmul,softmax,layernorm}.tile
//! (tests/designs/fuzz/) and two hardware-level designs (tests/designs/hw_registers_raw.mlir: register writes,
//! raw data memory, queued chains; hw_reconfigure.mlir: several devices run by `aiex.configure`). Each case applies one to three mutations: a number replaced (by 0, -1, a huge value,
//! or slightly larger), a line deleted or duplicated, two tokens swapped, two lines swapped; then runs the
//! result with zero inputs under a time bound. 100 cases by default;
//! `AIEC_FUZZ_CASES=2000 cargo test --release -p aiec-runtime --test fuzz_design -- --nocapture` for a long run
//! (it prints how the cases ended).

use aiec_runtime::emulator::{sequence_args, Emulator};
use aiec_runtime::{HostBuffer, RuntimeError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SEEDS: [&str; 5] = [
    "matmul.mlir",
    "softmax.mlir",
    "layernorm.mlir",
    "../hw_registers_raw.mlir",
    "../hw_reconfigure.mlir",
];

/// How long one case may take: JIT-compiling a mutated design, the stall timeout and some slack.
const CASE_LIMIT: Duration = Duration::from_secs(90);

fn seed(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/designs/fuzz").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(Debug, Clone)]
enum Mutation {
    /// The n-th number of the text (mod their count) becomes another.
    Number(usize, NumberKind),
    /// The same among the numbers that steer a run: constants in cores, FIFO depths and acquire/release
    /// counts, DMA offsets, sizes and strides, link offsets.
    KeyNumber(usize, NumberKind),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Two whitespace-separated tokens, anywhere in the text.
    SwapTokens(usize, usize),
    SwapLines(usize, usize),
}

#[derive(Debug, Clone, Copy)]
enum NumberKind {
    Zero,
    MinusOne,
    Huge(u8),
    PlusOne,
    Double,
    PlusSixteen,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let kind = prop_oneof![
        Just(NumberKind::Zero),
        Just(NumberKind::MinusOne),
        (0u8..4).prop_map(NumberKind::Huge),
        Just(NumberKind::PlusOne),
        Just(NumberKind::Double),
        Just(NumberKind::PlusSixteen),
    ];
    prop_oneof![
        2 => (any::<usize>(), kind.clone()).prop_map(|(n, k)| Mutation::Number(n, k)),
        6 => (any::<usize>(), kind).prop_map(|(n, k)| Mutation::KeyNumber(n, k)),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapTokens(a, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

/// Byte ranges of the numbers in `text` (digit runs, with a leading `-`).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'%')) {
            let start = if i > 0 && b[i - 1] == b'-' { i - 1 } else { i };
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            out.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The numbers on lines that steer a run (see [`Mutation::KeyNumber`]).
fn key_numbers(text: &str) -> Vec<(usize, usize)> {
    const KEYS: [&str; 7] = [
        "arith.constant",
        "dma_memcpy_nd",
        "aie.objectfifo @",
        "acquire",
        "release",
        "subview.access",
        "link",
    ];
    let mut starts = Vec::new();
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        if KEYS.iter().any(|k| l.contains(k)) {
            starts.push((at, at + l.len()));
        }
        at += l.len();
    }
    numbers(text).into_iter().filter(|(s, _)| starts.iter().any(|(a, b)| a <= s && s < b)).collect()
}

fn apply(text: &str, m: &Mutation) -> String {
    match m {
        Mutation::Number(n, kind) | Mutation::KeyNumber(n, kind) => {
            let nums = if matches!(m, Mutation::Number(..)) {
                numbers(text)
            } else {
                key_numbers(text)
            };
            if nums.is_empty() {
                return text.to_string();
            }
            let (s, e) = nums[n % nums.len()];
            let old: i128 = text[s..e].parse().unwrap_or(0);
            let new: i128 = match kind {
                NumberKind::Zero => 0,
                NumberKind::MinusOne => -1,
                NumberKind::Huge(0) => 2147483647,
                NumberKind::Huge(1) => 99999999999,
                NumberKind::Huge(2) => 9223372036854775807,
                NumberKind::Huge(_) => 65536,
                NumberKind::PlusOne => old + 1,
                NumberKind::Double => old * 2,
                NumberKind::PlusSixteen => old + 16,
            };
            format!("{}{new}{}", &text[..s], &text[e..])
        }
        Mutation::DeleteLine(n) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let k = n % lines.len();
            lines.remove(k);
            lines.join("\n")
        }
        Mutation::DuplicateLine(n) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let k = n % lines.len();
            lines.insert(k, lines[k]);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Mutation::SwapTokens(a, b) => {
            let mut spans = Vec::new();
            let mut start = None;
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (false, None) => start = Some(i),
                    (true, Some(s)) => {
                        spans.push((s, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                spans.push((s, text.len()));
            }
            let (mut x, mut y) = (spans[a % spans.len()], spans[b % spans.len()]);
            if x.0 == y.0 {
                return text.to_string();
            }
            if x.0 > y.0 {
                std::mem::swap(&mut x, &mut y);
            }
            format!("{}{}{}{}{}", &text[..x.0], &text[y.0..y.1], &text[x.1..y.0], &text[x.0..x.1], &text[y.1..])
        }
    }
}

/// How a case ended. `AIEC_FUZZ_VERBOSE=1` prints every error.
fn outcome(r: &Result<aiec_runtime::RunReport, RuntimeError>) -> String {
    if let (Err(e), Ok(_)) = (r, std::env::var("AIEC_FUZZ_VERBOSE")) {
        println!("    {}", e.to_string().chars().take(200).collect::<String>());
    }
    let design_error = |e: &RuntimeError| {
        let m = e.to_string();
        if m.contains("out-of-bounds") {
            "out-of-bounds access stopped".into()
        } else if m.contains("host memory limit") || m.contains("at most") || m.contains("models depths") {
            "size over a limit".into()
        } else {
            "design error".into()
        }
    };
    match r {
        Ok(_) => "ran".into(),
        Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => design_error(e),
        Err(RuntimeError::Deadlock(_)) => "deadlock".into(),
        Err(RuntimeError::BadArgument { .. }) => "bad argument".into(),
        Err(RuntimeError::Stalled { .. }) => "stalled core stopped".into(),
        Err(e) => format!("other error: {}", e.to_string().chars().take(80).collect::<String>()),
    }
}

/// Runs one mutated design on a helper thread; `Err` when it panicked or took longer than [`CASE_LIMIT`].
fn run_case(text: String) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(move || {
                let specs = match sequence_args(&text) {
                    Ok(s) => s,
                    Err(e) => return outcome(&Err(e)),
                };
                let mut args: Vec<HostBuffer> = specs.iter().map(HostBuffer::for_arg).collect();
                let mut emu = Emulator::new();
                emu.stall_timeout = Duration::from_secs(2);
                outcome(&emu.run_mlir(&text, "fuzz.mlir", &mut args))
            });
            let _ = tx.send(r.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into())
            }));
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(p)) => Err(format!("panicked: {p}")),
        Err(_) => Err(format!("no result after {CASE_LIMIT:?} (a hang)")),
    }
}

#[test]
fn mutated_designs_never_crash_or_hang() {
    let cases: u32 = std::env::var("AIEC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seeds: Vec<String> = SEEDS.iter().map(|s| seed(s)).collect();
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let start = Instant::now();
    let result = runner.run(&(0..SEEDS.len(), prop::collection::vec(mutation(), 1..=3)), |(s, muts)| {
        let mut text = seeds[s].clone();
        for m in &muts {
            text = apply(&text, m);
        }
        let t = Instant::now();
        match run_case(text) {
            Ok(o) => {
                *counts.lock().unwrap().entry(o).or_default() += 1;
                let _ = t;
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(format!("{} with {muts:?}: {e}", SEEDS[s]))),
        }
    });
    let counts = counts.into_inner().unwrap();
    let total: usize = counts.values().sum();
    // Runs stopped with cores inside their code leave those threads parked (they hold no run memory).
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_default();
    println!(
        "{total} mutated designs in {:.0} s ({threads} threads in the process, resident memory {rss} kB):",
        start.elapsed().as_secs_f64()
    );
    for (k, n) in &counts {
        println!("  {n:5}  {k}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn mutations_apply() {
    let t = "a 12 b -3\nc d";
    assert_eq!(numbers(t), vec![(2, 4), (7, 9)]);
    assert_eq!(apply(t, &Mutation::Number(1, NumberKind::PlusOne)), "a 12 b -2\nc d");
    assert_eq!(apply(t, &Mutation::SwapTokens(0, 4)), "c 12 b -3\na d");
    assert_eq!(apply(t, &Mutation::DeleteLine(0)), "c d");
    assert_eq!(apply("%c16 = x 7", &Mutation::Number(0, NumberKind::Zero)), "%c16 = x 0");
    assert_eq!(
        apply("x 1\n%c = arith.constant 4 : index", &Mutation::KeyNumber(0, NumberKind::Double)),
        "x 1\n%c = arith.constant 8 : index"
    );
}
