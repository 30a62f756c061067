//! Robustness: no `.tile` input makes the compiler panic, abort or overflow its stack. Every bad
//! input is a rendered `error: ... --> file:line:col` diagnostic.
//!
//! * The inputs a fuzzing run found (huge dims, deep nesting, long chains, non-UTF-8 files, host
//!   tensors that cannot exist) are fixed cases below.
//! * The deepest expressions the parser accepts go through the whole compile and the reference
//!   interpreter on a 2 MiB thread stack (the default of a spawned Rust thread).
//! * Two property tests compile generated programs and require `Ok` or a clean `Err`, never a
//!   panic: mutations of the example kernels (byte and token insertions, deletions, numbers
//!   replaced by huge, zero or negative values, deep nesting, long chains) and random programs
//!   shaped by the grammar. Each runs 300 cases from a fixed seed by default (reproducible);
//!   `AIEC_FUZZ_CASES` sets the count, `AIEC_FUZZ_SEED` the seed, and `--nocapture` shows the
//!   counts (compiled / clean errors / internal errors / unlocated errors / panics):
//!
//! ```text
//! AIEC_FUZZ_CASES=10000 cargo test --release -p aiec --test fuzz_tile -- --nocapture
//! ```
//!
//! An internal error (`CompileError::Lower`: MLIR rejected what the lowering wrote for a kernel
//! that passed every check) also fails the test: it is a compiler bug, not a bad input.

use aiec::diag::CompileError;
use aiec::dsl::ast::MAX_EXPR_DEPTH;
use aiec::{compile_source, DeviceModel};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::{Rng, SeedableRng};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

// ------------------------------------------------------------------------------ harness

/// What one compile did.
enum Outcome {
    Ok,
    /// A rendered error with a source location.
    Located,
    /// An error the lowering or MLIR raised on a kernel that passed every check: a compiler bug,
    /// reported with the message (these carry no DSL location).
    Internal(String),
    /// An error that is not `error: ... --> fuzz.tile:LINE:COL`.
    Unlocated(String),
    /// The panic message and where it was raised.
    Panic(String),
}

static PANIC_AT: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Set while [`outcome`] compiles: a panic then is recorded, not printed.
    static COMPILING: Cell<bool> = const { Cell::new(false) };
}

/// Records panics raised while compiling instead of printing them (the fuzz loop reports them).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if COMPILING.with(Cell::get) {
                *PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
            } else {
                default(info);
            }
        }));
    });
}

fn compile(text: &str) -> Result<aiec::Compiled, CompileError> {
    compile_source("fuzz.tile", text, &DeviceModel::npu1())
}

/// A clean error: `error: ` first, and a location in the source.
fn assert_clean(message: &str, text: &str) -> Result<(), String> {
    if !message.starts_with("error: ") {
        return Err(format!("error message without `error: `:\n{message}\n--- input:\n{text}"));
    }
    if !message.contains("\n --> fuzz.tile:") {
        return Err(format!("error without a source location:\n{message}\n--- input:\n{text}"));
    }
    Ok(())
}

fn outcome(text: &str) -> Outcome {
    COMPILING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| compile(text)));
    COMPILING.with(|c| c.set(false));
    match result {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(e @ CompileError::Lower(_))) => Outcome::Internal(e.to_string()),
        Ok(Err(e)) => match assert_clean(&e.to_string(), text) {
            Ok(()) => Outcome::Located,
            Err(why) => Outcome::Unlocated(why),
        },
        Err(_) => Outcome::Panic(PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| "a panic".into())),
    }
}

/// Cases per property test: 300, or `AIEC_FUZZ_CASES`.
fn cases() -> u32 {
    std::env::var("AIEC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// The generator's seed: fixed, so a run is reproducible, or `AIEC_FUZZ_SEED`.
fn seed() -> u64 {
    std::env::var("AIEC_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x7113)
}

/// Compiles `cases()` programs from `strategy` (on an 8 MiB thread) and reports how many
/// compiled, how many were located errors, how many were internal errors, unlocated errors or
/// panics; any of the last three fails the test, with the first inputs that did it.
fn fuzz<S: Strategy<Value = String>>(name: &str, strategy: S) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng};
    quiet_panics();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed().to_le_bytes());
    seed_bytes[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let mut inputs = Vec::new();
    for _ in 0..cases() {
        inputs.push(strategy.new_tree(&mut runner).expect("a generated program").current());
    }
    let name = name.to_string();
    let report = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let (mut ok, mut located) = (0, 0);
            let (mut internal, mut unlocated, mut panics) = (Vec::new(), Vec::new(), Vec::new());
            let mut slowest = (std::time::Duration::ZERO, String::new());
            for text in &inputs {
                let start = std::time::Instant::now();
                let out = outcome(text);
                if start.elapsed() > slowest.0 {
                    slowest = (start.elapsed(), text.clone());
                }
                match out {
                    Outcome::Ok => ok += 1,
                    Outcome::Located => located += 1,
                    Outcome::Internal(m) => internal.push(format!("{m}\n--- input:\n{text}")),
                    Outcome::Unlocated(m) => unlocated.push(m),
                    Outcome::Panic(m) => panics.push(format!("the compiler panicked: {m}\n--- input:\n{text}")),
                }
            }
            eprintln!(
                "{name}: {} cases: {ok} compiled, {located} clean errors, {} internal errors, {} unlocated errors, {} panics; slowest case {:.0} ms",
                inputs.len(),
                internal.len(),
                unlocated.len(),
                panics.len(),
                slowest.0.as_secs_f64() * 1e3
            );
            if std::env::var_os("AIEC_FUZZ_SHOW_SLOWEST").is_some() {
                eprintln!("--- slowest input:\n{}", slowest.1);
            }
            let failures: Vec<String> = panics.into_iter().chain(unlocated).chain(internal).collect();
            failures.into_iter().take(5).collect::<Vec<_>>()
        })
        .expect("spawn the fuzz thread")
        .join()
        .expect("the fuzz loop itself does not panic");
    assert!(report.is_empty(), "{}", report.join("\n\n=====\n"));
}

// ------------------------------------------------------------------------------ inputs

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dsl-examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tile"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).expect("example text")).collect()
}

/// Numbers that break arithmetic: zero, one, powers of two around 32 and 64 bits, past u64.
const NASTY_NUMBERS: &[&str] = &[
    "0",
    "1",
    "3",
    "-1",
    "-0",
    "07",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "2305843009213693952",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "1e39",
    "1e-50",
    "1e400",
    "0.5",
    "inf",
    "-inf",
];

const TOKENS: &[&str] = &[
    "kernel",
    "dim",
    "tile",
    "in",
    "out",
    "local",
    "spread",
    "over",
    "rows",
    "cols",
    "cores",
    "depth",
    "sum",
    "max",
    "min",
    "cast",
    "srs",
    "select",
    "exp",
    "abs",
    "recip",
    "i8",
    "i16",
    "i32",
    "bf16",
    "f32",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "<",
    ">",
    ",",
    ":",
    "=",
    "+=",
    "+",
    "-",
    "*",
    "/",
    ";",
    "\n",
    "#",
    "//",
    "<=",
    "==",
    "!=",
    "M",
    "N",
    "K",
    "T",
    "x",
    "y",
    "0",
    "1",
    "-1",
    "2147483648",
    "1e-5",
];

#[derive(Debug, Clone)]
enum Nesting {
    Parens,
    Abs,
    Negations,
    Casts,
    Selects,
}

#[derive(Debug, Clone)]
enum Mutation {
    InsertChar {
        at: usize,
        c: char,
    },
    InsertToken {
        at: usize,
        token: &'static str,
    },
    Delete {
        at: usize,
        len: usize,
    },
    ReplaceNumber {
        which: usize,
        with: String,
    },
    DuplicateLine {
        which: usize,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    /// Wraps a statement's value `depth` times.
    Nest {
        stmt: usize,
        depth: usize,
        how: Nesting,
    },
    /// Replaces a statement's value by `terms` copies joined by an operator.
    Chain {
        stmt: usize,
        terms: usize,
        op: &'static str,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let nesting = prop_oneof![
        Just(Nesting::Parens),
        Just(Nesting::Abs),
        Just(Nesting::Negations),
        Just(Nesting::Casts),
        Just(Nesting::Selects)
    ];
    // Depths and chain lengths around the limit; the parser rejects anything deeper before any
    // recursion, so larger values test nothing more (and cost time).
    let depth = prop_oneof![0usize..8, (MAX_EXPR_DEPTH - 4)..(MAX_EXPR_DEPTH + 4), Just(5000)];
    prop_oneof![
        3 => (any::<usize>(), any::<char>()).prop_map(|(at, c)| Mutation::InsertChar { at, c }),
        3 => (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(at, token)| Mutation::InsertToken { at, token }),
        3 => (any::<usize>(), 1usize..12).prop_map(|(at, len)| Mutation::Delete { at, len }),
        4 => (any::<usize>(), prop_oneof![prop::sample::select(NASTY_NUMBERS).prop_map(String::from), any::<u64>().prop_map(|n| n.to_string())])
            .prop_map(|(which, with)| Mutation::ReplaceNumber { which, with }),
        1 => any::<usize>().prop_map(|which| Mutation::DuplicateLine { which }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        2 => (any::<usize>(), depth, nesting).prop_map(|(stmt, depth, how)| Mutation::Nest { stmt, depth, how }),
        1 => (any::<usize>(), prop_oneof![1usize..6, (MAX_EXPR_DEPTH - 3)..(MAX_EXPR_DEPTH + 3), Just(3000)], prop::sample::select(&["+", "*", "-"][..]))
            .prop_map(|(stmt, terms, op)| Mutation::Chain { stmt, terms, op }),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte ranges of the numbers in `text` (digit runs, with a fraction or exponent).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i].is_ascii_digit() && starts_word {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'e' || (b[i] == b'-' && b[i - 1] == b'e')) {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Lines holding a statement: the byte range of the value (after `=`/`+=`, before a comment).
fn statement_values(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code_end = line.find('#').unwrap_or(line.len()).min(line.find("//").unwrap_or(line.len()));
        let code = &line[..code_end];
        let first = code.trim_start().split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
        let is_decl = ["kernel", "dim", "in", "out", "local", "spread", "depth", ""].contains(&first);
        if !is_decl {
            if let Some(close) = code.find(']') {
                if let Some(eq) = code[close..].find('=') {
                    let start = close + eq + 1;
                    let end = code.trim_end().len().max(start);
                    out.push((offset + start, offset + end));
                }
            }
        }
        offset += line.len();
    }
    out
}

fn nest(value: &str, depth: usize, how: &Nesting) -> String {
    let (open, close) = match how {
        Nesting::Parens => ("(", ")"),
        Nesting::Abs => ("abs(", ")"),
        Nesting::Negations => ("-(", ")"),
        Nesting::Casts => ("cast<f32>(", ")"),
        Nesting::Selects => ("select(0 <= 1, ", ", 0.0)"),
    };
    format!("{}{value}{}", open.repeat(depth), close.repeat(depth))
}

fn apply(text: &mut String, m: &Mutation) {
    match m {
        Mutation::InsertChar { at, c } => {
            let i = boundary(text, *at);
            text.insert(i, *c);
        }
        Mutation::InsertToken { at, token } => {
            let i = boundary(text, *at);
            text.insert_str(i, token);
        }
        Mutation::Delete { at, len } => {
            let i = boundary(text, *at);
            let mut j = (i + len).min(text.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            text.replace_range(i..j, "");
        }
        Mutation::ReplaceNumber { which, with } => {
            let found = numbers(text);
            if !found.is_empty() {
                let (s, e) = found[which % found.len()];
                text.replace_range(s..e, with);
            }
        }
        Mutation::DuplicateLine { which } => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let k = which % lines.len().max(1);
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if let Some(l) = out.get(k).cloned() {
                out.insert(k, l);
            }
            *text = out.concat();
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            *text = lines.concat();
        }
        Mutation::Nest { stmt, depth, how } => {
            let values = statement_values(text);
            if !values.is_empty() {
                let (s, e) = values[stmt % values.len()];
                let wrapped = nest(&text[s..e], *depth, how);
                text.replace_range(s..e, &wrapped);
            }
        }
        Mutation::Chain { stmt, terms, op } => {
            let values = statement_values(text);
            if !values.is_empty() {
                let (s, e) = values[stmt % values.len()];
                let term = format!("({})", text[s..e].trim());
                let chain = vec![term; *terms].join(&format!(" {op} "));
                text.replace_range(s..e, &format!(" {chain}"));
            }
        }
    }
}

fn mutated_example() -> impl Strategy<Value = String> {
    let sources = examples();
    let n = sources.len();
    (0..n, prop::collection::vec(mutation(), 1..5)).prop_map(move |(k, ms)| {
        let mut text = sources[k].clone();
        for m in &ms {
            apply(&mut text, m);
        }
        text
    })
}

/// A random program shaped by the grammar. Seven in ten are well-formed in the ways a generator
/// can easily ensure (consistent names, one dtype family, free dims summed, nice sizes), so that
/// many reach the scheduler, the checks and the lowering; the rest take sizes, extents, indices,
/// shifts and depths from [`NASTY_NUMBERS`] and random 64-bit values, and mix dtypes freely.
fn random_program(seed: u64) -> String {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let g = &mut Gen {
        nasty: r.gen_bool(0.3),
        float: r.gen_bool(0.6),
        r,
        dims: Vec::new(),
        tensors: Vec::new(),
    };
    let mut items = Vec::new();
    let ndims = g.r.gen_range(1..=4);
    for d in ["M", "N", "K", "T"].into_iter().take(ndims) {
        let size = g.size();
        let tile = match g.r.gen_range(0..4) {
            0 => String::new(),
            1 if g.nasty => format!(" tile {}", g.size()),
            _ => {
                let n: u64 = size.parse().unwrap_or(1).max(1);
                let t = [1u64, 2, 4, 8, 16]
                    .into_iter()
                    .filter(|t| n.is_multiple_of(*t) && g.r.gen_bool(0.6))
                    .last()
                    .unwrap_or(n.min(16));
                format!(" tile {t}")
            }
        };
        items.push(format!("dim {d} = {size}{tile}"));
        g.dims.push(d);
    }
    let float = g.float;
    let dtypes: &[&str] = if g.nasty {
        &["i8", "i16", "i32", "bf16", "f32"]
    } else if float {
        &["bf16", "f32"]
    } else {
        &["i8", "i16", "i32"]
    };
    let ntensors = g.r.gen_range(2..=5);
    for (k, t) in ["a", "b", "c", "t", "y"].into_iter().take(ntensors).enumerate() {
        let role = if k == ntensors - 1 {
            "out"
        } else if k == 0 {
            "in"
        } else {
            ["in", "in", "local"][g.r.gen_range(0..3)]
        };
        let mut extents: Vec<String> = Vec::new();
        for _ in 0..g.r.gen_range(1..=g.dims.len().min(3)) {
            let e = if g.nasty && g.r.gen_bool(0.2) {
                g.size()
            } else {
                g.dims[g.r.gen_range(0..g.dims.len())].to_string()
            };
            if g.nasty || !extents.contains(&e) {
                extents.push(e);
            }
        }
        let dtype = if role == "out" && !float && !g.nasty {
            "i32"
        } else {
            dtypes[g.r.gen_range(0..dtypes.len())]
        };
        items.push(format!("{role} {t}: {dtype}[{}]", extents.join(", ")));
        g.tensors.push((t, role, extents));
    }
    let (out, _, out_extents) = g.tensors.last().cloned().expect("an output");
    if g.r.gen_bool(0.4) {
        let axis = ["rows", "cols", "cores"][g.r.gen_range(0..3)];
        let d = if g.nasty {
            g.dims[g.r.gen_range(0..g.dims.len())].to_string()
        } else {
            out_extents[g.r.gen_range(0..out_extents.len())].clone()
        };
        items.push(format!("spread {d} over {axis}"));
    }
    if g.r.gen_bool(0.2) {
        let depth = if g.nasty { g.size() } else { g.r.gen_range(1..=4).to_string() };
        items.push(format!("depth {depth}"));
    }
    // Locals first (in declaration order), then the output.
    let locals: Vec<(&str, Vec<String>)> = g.tensors.iter().filter(|t| t.1 == "local").map(|t| (t.0, t.2.clone())).collect();
    let mut targets = locals;
    targets.push((out, out_extents));
    if g.nasty {
        let extra = targets[g.r.gen_range(0..targets.len())].clone();
        targets.insert(g.r.gen_range(0..=targets.len()), extra);
    }
    let mut assigned: Vec<&str> = Vec::new();
    for (target, extents) in targets {
        let target_dims: Vec<String> = extents
            .iter()
            .map(|e| if g.dims.contains(&e.as_str()) { e.clone() } else { g.dims[0].to_string() })
            .collect();
        let depth = g.r.gen_range(0..5);
        let mut used = Vec::new();
        let mut value = g.expr(depth, &assigned, &mut used);
        let free: Vec<&str> = used.into_iter().filter(|d| !target_dims.iter().any(|t| t == d)).collect();
        let op = if g.r.gen_bool(0.15) { "+=" } else { "=" };
        if !free.is_empty() && !g.nasty {
            value = format!("{}[{}]({value})", ["sum", "max", "min"][g.r.gen_range(0..3)], free.join(", "));
        }
        items.push(format!("{target}[{}] {op} {value}", target_dims.join(", ")));
        assigned.push(target);
    }
    if g.nasty && g.r.gen_bool(0.5) {
        let a = g.r.gen_range(0..items.len());
        let b = g.r.gen_range(0..items.len());
        items.swap(a, b);
    }
    format!("kernel k {{\n  {}\n}}\n", items.join("\n  "))
}

struct Gen {
    r: rand::rngs::StdRng,
    nasty: bool,
    /// Well-formed programs compute in floats (bf16/f32 tensors) or integers (i8/i16/i32).
    float: bool,
    dims: Vec<&'static str>,
    /// (name, role, extents)
    tensors: Vec<(&'static str, &'static str, Vec<String>)>,
}

impl Gen {
    fn size(&mut self) -> String {
        let nice = || [1u64, 2, 4, 8, 16, 32, 64, 128, 256];
        if !self.nasty {
            return nice()[self.r.gen_range(0..9)].to_string();
        }
        match self.r.gen_range(0..6) {
            0 => NASTY_NUMBERS[self.r.gen_range(0..NASTY_NUMBERS.len())].to_string(),
            1 => self.r.gen::<u64>().to_string(),
            2 => (1u64 << self.r.gen_range(0..64)).to_string(),
            _ => nice()[self.r.gen_range(0..9)].to_string(),
        }
    }

    /// An index for an axis of `extent`: the dim itself mostly, else an affine expression.
    fn index(&mut self, extent: &str, used: &mut Vec<&'static str>) -> String {
        let use_dim = |d: &'static str, used: &mut Vec<&'static str>| {
            if !used.contains(&d) {
                used.push(d);
            }
            d
        };
        if let Some(&d) = self.dims.iter().find(|&&d| d == extent) {
            if !self.nasty || self.r.gen_bool(0.7) {
                return use_dim(d, used).to_string();
            }
        }
        let d = use_dim(self.dims[self.r.gen_range(0..self.dims.len())], used);
        match self.r.gen_range(0..5) {
            0 => d.to_string(),
            1 => format!("{}*{d} + {}", self.size(), self.size()),
            2 => format!("{d} - {}", self.size()),
            3 => self.size(),
            _ => format!("-{d}"),
        }
    }

    fn leaf(&mut self, assigned: &[&str], used: &mut Vec<&'static str>) -> String {
        let readable: Vec<(&'static str, Vec<String>)> = self
            .tensors
            .iter()
            .filter(|t| t.1 == "in" || assigned.contains(&t.0) || self.nasty)
            .map(|t| (t.0, t.2.clone()))
            .collect();
        if readable.is_empty() || self.r.gen_bool(0.15) {
            let literals: &[&str] = if self.nasty {
                &["0", "1", "2.5", "-inf", "1e-5", "2147483648", "1e39"]
            } else {
                &["0", "1", "2", "3"]
            };
            return literals[self.r.gen_range(0..literals.len())].to_string();
        }
        let (t, extents) = readable[self.r.gen_range(0..readable.len())].clone();
        let idx: Vec<String> = extents.iter().map(|e| self.index(e, used)).collect();
        format!("{t}[{}]", idx.join(", "))
    }

    fn expr(&mut self, depth: usize, assigned: &[&str], used: &mut Vec<&'static str>) -> String {
        if depth == 0 || self.r.gen_bool(0.2) {
            return self.leaf(assigned, used);
        }
        let choice = self.r.gen_range(0..10);
        match choice {
            0..=2 => {
                let (a, b) = (self.expr(depth - 1, assigned, used), self.expr(depth - 1, assigned, used));
                let ops = if self.nasty { &["+", "-", "*", "/"][..] } else { &["+", "-", "*"][..] };
                format!("{a} {} {b}", ops[self.r.gen_range(0..ops.len())])
            }
            3 => format!("({})", self.expr(depth - 1, assigned, used)),
            4 => {
                let f = if self.nasty {
                    ["exp", "tanh", "rsqrt", "sqrt", "recip", "log10", "ln", "abs"][self.r.gen_range(0..8)]
                } else {
                    "abs"
                };
                format!("{f}({})", self.expr(depth - 1, assigned, used))
            }
            5 if self.nasty => {
                let d = self.dims[self.r.gen_range(0..self.dims.len())];
                format!(
                    "{}[{d}]({})",
                    ["sum", "max", "min"][self.r.gen_range(0..3)],
                    self.expr(depth - 1, assigned, used)
                )
            }
            6 => {
                // Well-formed programs stay in their dtype family.
                let t = match (self.nasty, self.float) {
                    (true, _) => ["i8", "i16", "i32", "bf16", "f32"][self.r.gen_range(0..5)],
                    (false, true) => ["bf16", "f32"][self.r.gen_range(0..2)],
                    (false, false) => ["i8", "i16", "i32"][self.r.gen_range(0..3)],
                };
                format!("cast<{t}>({})", self.expr(depth - 1, assigned, used))
            }
            7 if self.nasty || !self.float => {
                let shift = if self.nasty { self.r.gen_range(0..40) } else { self.r.gen_range(0..32) };
                let t = ["i8", "i16", "i32"][self.r.gen_range(0..3)];
                format!("srs<{t}>({}, {shift})", self.expr(depth - 1, assigned, used))
            }
            8 => {
                let d = self.dims[self.r.gen_range(0..self.dims.len())];
                if !used.contains(&d) {
                    used.push(d);
                }
                let (a, b) = (self.expr(depth - 1, assigned, used), self.expr(depth - 1, assigned, used));
                format!("select({d} <= {}, {a}, {b})", self.r.gen_range(0..100))
            }
            _ => {
                let (a, b) = (self.expr(depth - 1, assigned, used), self.expr(depth - 1, assigned, used));
                format!("{}({a}, {b})", ["max", "min"][self.r.gen_range(0..2)])
            }
        }
    }
}

// ------------------------------------------------------------------------------ property tests

#[test]
fn mutated_examples_compile_or_fail_cleanly() {
    fuzz("mutated examples", mutated_example());
}

#[test]
fn random_programs_compile_or_fail_cleanly() {
    fuzz("random programs", any::<u64>().prop_map(random_program));
}

/// Prints 40 generated programs with their outcome, to tune the generators:
/// `cargo test --release -p aiec --test fuzz_tile show_samples -- --ignored --nocapture`
/// (`SAMPLES=mut` for mutated examples).
#[test]
#[ignore]
fn show_samples() {
    let kind = std::env::var("SAMPLES").unwrap_or_default();
    let mut runner = TestRunner::deterministic();
    for i in 0..40u64 {
        use proptest::strategy::ValueTree;
        let text = if kind == "mut" {
            mutated_example().new_tree(&mut runner).unwrap().current()
        } else {
            random_program(i)
        };
        let r = compile(&text);
        println!(
            "=====\n{text}\n--> {}",
            match r {
                Ok(_) => "OK".to_string(),
                Err(e) => e.to_string().lines().next().unwrap().to_string(),
            }
        );
    }
}

// ------------------------------------------------------------------------------ fixed cases

fn kernel_with(value: &str) -> String {
    format!("kernel k {{\n  dim M = 16\n  in x: f32[M]\n  out y: f32[M]\n  y[M] = {value}\n}}\n")
}

fn compile_err(text: &str) -> String {
    match compile(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Runs `f` on a thread with a 2 MiB stack, the default of a spawned Rust thread.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow, no panic")
}

#[test]
fn huge_dims_are_located_errors_not_divisions_by_zero() {
    for size in ["4611686018427387904", "2305843009213693952", "9223372036854775808", "18446744073709551615"] {
        for tile in ["", " tile 1", " tile 64"] {
            let text = format!("kernel k {{\n  dim D = {size}{tile}\n  in x: f32[D]\n  out y: f32[D]\n  y[D] = x[D]\n}}\n");
            let msg = compile_err(&text);
            assert!(
                msg.starts_with(&format!(
                    "error: dim D = {size}: larger than the largest supported extent 2147483648\n --> fuzz.tile:2:3"
                )),
                "{msg}"
            );
        }
    }
    // Past 64 bits the parser says the same.
    let msg = compile_err("kernel k {\n  dim D = 99999999999999999999999\n  in x: f32[D]\n  out y: f32[D]\n  y[D] = x[D]\n}\n");
    assert!(
        msg.contains("dim D = 99999999999999999999999: larger than the largest supported extent 2147483648"),
        "{msg}"
    );
}

#[test]
fn products_of_large_dims_are_checked() {
    // Each dim is allowed, their products are not: tile elements, step and reduction loops.
    let big = "2147483648";
    let cases = [
        // A window view over three dims: the tile element is 2^93 elements.
        "kernel k {\n  dim A = 536870912\n  dim B = 536870912\n  dim C = 536870912\n  dim O = 1\n  in x: i8[2147483648]\n  out y: i32[O]\n  y[O] = sum[A, B, C](x[A + B + C])\n}\n".to_string(),
        // Three split reduction dims: the reduction loops multiply past 64 bits.
        format!("kernel k {{\n  dim A = {big} tile 1\n  dim B = {big} tile 1\n  dim C = {big} tile 1\n  dim O = 1\n  in x: i8[A]\n  in z: i8[B]\n  in w: i8[C]\n  out y: i32[O]\n  y[O] = sum[A, B, C](x[A] * z[B] * w[C])\n}}\n"),
        // Locals whose size overflows.
        format!("kernel k {{\n  dim A = {big}\n  dim B = {big}\n  dim C = {big}\n  in x: f32[A]\n  out y: f32[A]\n  local t: f32[A, B, C]\n  t[A, B, C] = x[A]\n  y[A] = sum[B, C](t[A, B, C])\n}}\n"),
    ];
    for text in cases {
        let msg = on_small_stack(move || compile_err(&text));
        assert!(msg.starts_with("error: ") && msg.contains("\n --> fuzz.tile:"), "{msg}");
    }
}

#[test]
fn host_tensors_past_2_gib_are_compile_errors() {
    for (dims, dtype) in [("16777216", "i8"), ("1099511627776", "i8"), ("65536", "f32")] {
        let text = format!(
            "kernel k {{\n  dim M = {dims} tile 64\n  dim N = {dims} tile 64\n  in x: {dtype}[M, N]\n  out y: {dtype}[M, N]\n  y[M, N] = x[M, N]\n}}\n"
        );
        let msg = compile_err(&text);
        if dims == "1099511627776" {
            assert!(msg.contains("larger than the largest supported extent"), "{msg}");
            continue;
        }
        assert!(
            msg.contains("input x is ") && msg.contains("larger than the 2147483648 bytes (2 GiB) a runtime-sequence argument may span"),
            "{msg}"
        );
        assert!(msg.contains(" --> fuzz.tile:4:3"), "{msg}");
    }
    // Exactly 2 GiB is allowed (the error, if any, is not about the argument's size).
    let text = "kernel k {\n  dim M = 32768 tile 64\n  dim N = 65536 tile 64\n  in x: i8[M, N]\n  out y: i8[M, N]\n  y[M, N] = x[M, N]\n}\n";
    if let Err(e) = compile(text) {
        assert!(!e.to_string().contains("runtime-sequence argument may span"), "{e}");
    }
}

#[test]
fn host_buffers_past_the_limit_are_errors_not_aborts() {
    use aiec::hostdata::{try_random_arguments, HostDataError};
    use aiec_runtime::artifact::{ArgDirection, ArgSpec};
    use aiec_runtime::DType;
    let arg = |name: &str, shape: Vec<usize>, direction| ArgSpec {
        name: name.into(),
        dtype: DType::I8,
        shape,
        direction,
    };
    for shape in [vec![1 << 24, 1 << 24], vec![1 << 40], vec![usize::MAX, 2]] {
        let args = [arg("x", vec![4], ArgDirection::In), arg("y", shape.clone(), ArgDirection::Out)];
        match try_random_arguments(&args, 1, |_, _| {}) {
            Err(e @ HostDataError::TooLarge { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with("argument y is ") && msg.contains("larger than the 2147483648 bytes"), "{msg}");
            }
            other => panic!("expected TooLarge for {shape:?}, got {:?}", other.map(|_| ())),
        }
    }
    let args = [arg("x", vec![4, 4], ArgDirection::In), arg("y", vec![4], ArgDirection::Out)];
    let (inputs, bufs) = try_random_arguments(&args, 1, |_, _| {}).expect("small arguments");
    assert_eq!((inputs.len(), bufs.len(), bufs[0].bytes.len(), bufs[1].bytes.len()), (1, 2, 16, 4));
}

#[test]
fn deep_nesting_is_an_error_before_any_recursion() {
    // pest recurses per parenthesis: 100000 would overflow inside pest, so the text is measured
    // first; the error points at the first parenthesis past the limit.
    for n in [MAX_EXPR_DEPTH + 1, 1336, 100_000] {
        let msg = on_small_stack(move || compile_err(&kernel_with(&format!("{}x[M]{}", "(".repeat(n), ")".repeat(n)))));
        let col = "  y[M] = ".len() + MAX_EXPR_DEPTH + 1;
        assert!(
            msg.starts_with("error: parentheses nested more than 200 deep; the limit is 200 levels\n"),
            "{msg}"
        );
        assert!(msg.contains(&format!(" --> fuzz.tile:5:{col}\n")), "{msg}");
    }
    // Calls nest parentheses too.
    let msg = on_small_stack(|| compile_err(&kernel_with(&format!("{}x[M]{}", "abs(".repeat(2000), ")".repeat(2000)))));
    assert!(msg.contains("the limit is 200"), "{msg}");
    // A comment's parentheses do not count.
    let text = format!("# {}\n{}", "(".repeat(1000), kernel_with("x[M]"));
    on_small_stack(move || compile(&text).map(|_| ()).expect("parentheses in a comment"));
}

#[test]
fn long_chains_and_negations_are_errors_not_stack_overflows() {
    for (value, at) in [
        (vec!["x[M]"; 6500].join(" + "), 10),
        (vec!["x[M]"; 1_000].join(" * "), 10),
        (format!("{}x[M]", "-".repeat(100_000)), 0),
        // 200 minus signs make 201 levels: the error is at the second (col 12).
        (format!("{}x[M]", "- ".repeat(MAX_EXPR_DEPTH + 1)), 12),
    ] {
        let msg = on_small_stack(move || compile_err(&kernel_with(&value)));
        assert!(
            msg.starts_with("error: expression nested more than 200 levels deep; the limit is 200\n"),
            "{msg}"
        );
        if at > 0 {
            assert!(msg.contains(&format!(" --> fuzz.tile:5:{at}\n")), "{msg}");
        }
    }
    // Minus signs on a literal fold into it: no nesting.
    let value = format!("x[M] + {}1", "-".repeat(10_000));
    on_small_stack(move || compile(&kernel_with(&value)).map(|_| ()).expect("folded literal"));
}

#[test]
fn oversized_sources_are_rejected_up_front() {
    let value = vec!["x[M]"; 300_000].join(" + ");
    let msg = compile_err(&kernel_with(&value));
    assert!(msg.contains("larger than the 1048576 bytes (1 MiB) a .tile file may have"), "{msg}");
    // The diagnostic shows a window of the long line, not all of it.
    assert!(msg.lines().all(|l| l.len() < 400), "{msg}");
}

/// The deepest expressions of every kind the parser accepts, through schedule, checks, lowering,
/// MLIR emission and the reference interpreter, on a 2 MiB stack.
#[test]
fn the_deepest_accepted_expressions_compile_and_run_on_a_small_stack() {
    let d = MAX_EXPR_DEPTH;
    let values = [
        vec!["x[M]"; d].join(" + "),
        vec!["x[M]"; d].join(" * "),
        format!("{}x[M]{}", "(".repeat(d), ")".repeat(d)),
        format!("{}x[M]{}", "abs(".repeat(d - 1), ")".repeat(d - 1)),
        format!("{}x[M]", "- ".repeat(d - 1)),
        format!("{}x[M]{}", "cast<f32>(".repeat(d - 1), ")".repeat(d - 1)),
        format!("{}x[M]{}", "select(M <= 7, ".repeat(d - 1), ", 0.0)".repeat(d - 1)),
        format!("{}x[M]{}", "max(0.0, ".repeat(d - 1), ")".repeat(d - 1)),
        // Parentheses at the limit around a chain at the limit.
        format!("{}{}{}", "(".repeat(d), vec!["x[M]"; d].join(" + "), ")".repeat(d)),
    ];
    for value in values {
        let text = kernel_with(&value);
        on_small_stack(move || {
            // The whole compile: Ok, or a clean error (a long select chain exceeds program memory).
            if let Err(e) = compile(&text) {
                assert_clean(&e.to_string(), &text).unwrap_or_else(|m| panic!("{m}"));
            }
            let source = aiec::diag::Source::new("fuzz.tile", text.clone());
            let kernel = aiec::dsl::compile_source(&source).unwrap_or_else(|e| panic!("{e}\n--- input:\n{text}"));
            let input = ndarray::ArrayD::from_shape_vec(vec![16], (0..16).map(|i| i as f64 / 16.0).collect()).unwrap();
            aiec::reference::run_reference(&kernel, &[input]).expect("the reference runs it");
        });
    }
    // One level more is the depth error.
    for value in [vec!["x[M]"; d + 1].join(" + "), format!("{}x[M]{}", "abs(".repeat(d), ")".repeat(d))] {
        let msg = compile_err(&kernel_with(&value));
        assert!(msg.contains("the limit is 200"), "{msg}");
    }
}

#[test]
fn integer_literals_and_index_values_past_the_supported_range_are_errors() {
    let cases = [
        ("y[M] = cast<f32>(cast<i32>(x[M]) + 3000000000)", "literal 3000000000 is out of the i32 range"),
        ("y[M] = x[M] * 1e39", "literal 1e39 is out of the f32 range"),
        ("y[M] = x[M] * 1e400", "number 1e400 is too large"),
        ("y[M] = x[9223372036854775807*M]", "index out of bounds"),
        (
            "y[M] = x[99999999999999999999*M]",
            "index value 99999999999999999999 is larger than the largest supported extent",
        ),
        (
            "y[M] = x[4611686018427387904*M + 4611686018427387904*M]",
            "the coefficient of dim M is larger than",
        ),
        ("y[M] = select(9223372036854775807*M <= 3, x[M], 0.0)", "beyond the largest supported extent"),
    ];
    for (stmt, needle) in cases {
        let text = format!("kernel k {{\n  dim M = 16\n  in x: f32[M]\n  out y: f32[M]\n  {stmt}\n}}\n");
        let msg = compile_err(&text);
        assert!(msg.contains(needle) && msg.contains(" --> fuzz.tile:5:"), "{stmt}:\n{msg}");
    }
    // A huge coefficient on a dim of size 1 is in bounds but would make strides overflow.
    let text = "kernel k {\n  dim M = 16\n  dim O = 1\n  in x: f32[M]\n  out y: f32[M]\n  y[M] = x[M + 9223372036854775807*O]\n}\n";
    let msg = compile_err(text);
    assert!(
        msg.contains("index coefficient 9223372036854775807 of dim O is larger than x axis 0's extent 16"),
        "{msg}"
    );
}

#[test]
fn non_utf8_files_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tile");
    std::fs::write(&path, b"kernel k {\n \xff\xfe }\n").unwrap();
    let e = aiec::parse_file(&path).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: not UTF-8 text (invalid byte at offset 12)", path.display()));
    assert!(std::error::Error::source(&e).is_some(), "keeps the UTF-8 error as its source");
    for cmd in ["check", "compile"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiec")).arg(cmd).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, format!("error: {}: not UTF-8 text (invalid byte at offset 12)\n", path.display()));
    }
    // An unreadable path (a directory) keeps its io::Error as the source.
    let e = aiec::parse_file(dir.path()).unwrap_err();
    assert!(matches!(e, aiec::FileError::Io { .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiec"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&format!("error: {}: ", dir.path().display())));
}
