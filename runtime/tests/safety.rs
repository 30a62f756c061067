//! The emulator's safety on wrong designs: bounds-checked core code, allocation limits, cores that stop.
//! Every case here used to crash the process, corrupt its memory, or allocate without bound.

use aiec_runtime::emulator::{sequence_args, Emulator};
use aiec_runtime::{DType, HostBuffer, RuntimeError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn design(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/designs").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Line number (1-based) of the `n`-th (0-based) line containing `needle`.
fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n)
        .unwrap_or_else(|| panic!("`{needle}` #{n} in the design"))
        .0
        + 1
}

fn line_of(text: &str, needle: &str) -> usize {
    nth_line_of(text, needle, 0)
}

/// Replaces line `line` (1-based).
fn replace_line(text: &str, line: usize, f: impl Fn(&str) -> String) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { f(l) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn zeros_for(text: &str) -> Vec<HostBuffer> {
    sequence_args(text).unwrap().iter().map(HostBuffer::for_arg).collect()
}

fn run_err(text: &str, file: &str) -> String {
    let mut args = zeros_for(text);
    match Emulator::new().run_mlir(text, file, &mut args) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error"),
    }
}

fn design_err(text: &str) -> String {
    let mut args: Vec<HostBuffer> = Vec::new();
    match Emulator::new().run_mlir(text, "broken.mlir", &mut args) {
        Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => e.to_string(),
        other => panic!("expected a design error, got {other:?}"),
    }
}

#[test]
fn softmax_with_a_loop_past_its_rows_stops_at_the_first_bad_load() {
    // aiec's softmax on 16 cores; core (0, 2)'s inner loops now run to 2048 over rows of 1024.
    let text = design("softmax.mlir");
    let constant = line_of(&text, "arith.constant 1024 : index");
    let text = replace_line(&text, constant, |l| l.replace("1024 : index", "2048 : index"));
    let load = line_of(&text, "memref.load %77[%arg1, %arg2] : memref<4x1024xbf16>");
    let t = Instant::now();
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!(
            "core (0, 2): out-of-bounds load on an element of object FIFO @x_c0r0 at design.mlir:{load} (index 1024, size \
             1024) in dimension 1 of memref<4x1024xbf16>"
        )
    );
    assert!(t.elapsed() < Duration::from_secs(60));
    // The unchanged design still runs.
    let text = design("softmax.mlir");
    let mut args = zeros_for(&text);
    Emulator::new().run_mlir(&text, "design.mlir", &mut args).unwrap();
}

#[test]
fn store_past_a_fifo_element() {
    let text = design("add_one_link.mlir");
    let store = line_of(&text, "memref.store %w, %eout[%i]");
    let text = replace_line(&text, store, |l| l.replace("%eout[%i]", "%eout[%c16]"));
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!("core (0, 2): out-of-bounds store on an element of object FIFO @out1 at design.mlir:{store} (index 16, size 16)")
    );
}

#[test]
fn store_past_a_buffer_and_negative_index() {
    // Core (0, 2) stores its running sum 8 elements too far; core (0, 3) is unchanged.
    let text = design("running_sum_buffer.mlir");
    let store = line_of(&text, "memref.store %s, %acc_0_2[%i]");
    let text = replace_line(&text, store, |l| {
        format!(
            "{}\n{}",
            l.replace("memref.store %s, %acc_0_2[%i] : memref<16xi32>", "%j = arith.addi %i, %c8 : index"),
            l.replace("[%i]", "[%j]")
        )
    });
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!(
            "core (0, 2): out-of-bounds store on buffer @acc_0_2 at design.mlir:{} (index 16, size 16)",
            store + 1
        )
    );

    let text = design("running_sum_buffer.mlir");
    let load = nth_line_of(&text, "memref.load %ein[%i]", 1);
    let text = replace_line(&text, load, |l| {
        format!(
            "{}\n{}",
            l.replace("%v = memref.load %ein[%i] : memref<16xi32>", "%minus = arith.constant -1 : index"),
            l.replace("[%i]", "[%minus]")
        )
    });
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!(
            "core (0, 3): out-of-bounds load on an element of object FIFO @in3 at design.mlir:{} (index -1, size 16)",
            load + 1
        )
    );
}

#[test]
fn cores_sharing_code_report_their_own_line() {
    // Both cores run one compiled function; whichever fails first names its own line.
    let text = design("running_sum_buffer.mlir").replace("%c16 = arith.constant 16 : index", "%c16 = arith.constant 17 : index");
    let m = run_err(&text, "design.mlir");
    let (tile, fifo, n) = if m.starts_with("core (0, 2)") {
        ("(0, 2)", "in2", 0)
    } else {
        ("(0, 3)", "in3", 1)
    };
    let load = nth_line_of(&text, "memref.load %ein[%i]", n);
    assert_eq!(
        m,
        format!("core {tile}: out-of-bounds load on an element of object FIFO @{fifo} at design.mlir:{load} (index 16, size 16)")
    );
}

#[test]
fn vector_transfer_past_the_rows() {
    let text = design("matmul_vector.mlir");
    let for_m = line_of(&text, "scf.for %m = %c0 to %c8 step %c4");
    let text = replace_line(&text, for_m, |l| l.replace("to %c8", "to %c16"));
    let read = line_of(&text, "%va = vector.transfer_read %ea[%m, %k]");
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!(
            "core (0, 2): out-of-bounds load on an element of object FIFO @a at design.mlir:{read} (index 8 to 11, size 8) in \
             dimension 0 of memref<8x16xi8>"
        )
    );
}

#[test]
fn checked_mode_rejects_ops_it_cannot_check_and_unchecked_mode_takes_them() {
    let base = design("add_one_link.mlir");
    let store = line_of(&base, "memref.store %w, %eout[%i]");
    for (op, extra) in [
        ("memref.alloca", "%tmp = memref.alloca() : memref<4xi32>"),
        (
            "memref.subview",
            "%sv = memref.subview %eout[4] [4] [1] : memref<16xi32> to memref<4xi32, strided<[1], offset: 4>>",
        ),
        (
            "memref.reinterpret_cast",
            "%rc = memref.reinterpret_cast %eout to offset: [0], sizes: [64], strides: [1] : memref<16xi32> to memref<64xi32>",
        ),
        ("cf.assert", "cf.assert %true_, \"never\""),
    ] {
        let text = replace_line(&base, store, |l| {
            let pre = if op == "cf.assert" { "%true_ = arith.constant true\n" } else { "" };
            format!("{pre}{extra}\n{l}")
        });
        let at = line_of(&text, extra);
        let m = design_err(&text);
        assert!(m.starts_with(&format!("broken.mlir:{at}:")), "{op}: {m}");
        assert!(m.contains(&format!("`{op}`")) && m.contains("--unchecked"), "{op}: {m}");
    }
    // A core cannot call the emulator's callbacks itself.
    let text = replace_line(&base, store, |l| format!("{l}\nfunc.call @aiec_poll(%one) : (i32) -> ()"));
    let m = design_err(&text);
    assert!(m.contains("@aiec_"), "{m}");

    // Unchecked, an alloca in a core is run as written.
    let text = replace_line(&base, store, |l| format!("%tmp = memref.alloca() : memref<4xi32>\n{l}"));
    let input: Vec<i32> = (0..256).collect();
    let mut args = [
        HostBuffer {
            dtype: DType::I32,
            shape: vec![256],
            bytes: input.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        HostBuffer::zeros(DType::I32, &[256]),
    ];
    let mut emu = Emulator::new();
    emu.unchecked = true;
    emu.run_mlir(&text, "design.mlir", &mut args).unwrap();
    let out: Vec<i32> = args[1].bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(out, input.iter().map(|v| v + 1).collect::<Vec<_>>());
}

#[test]
fn integer_division_by_zero_stops_the_core_instead_of_trapping() {
    let base = design("add_one_link.mlir");
    let add = line_of(&base, "%w = arith.addi %v, %one : i32");
    // Inserts `ops` after the addition and stores `result` instead of %w.
    let with = |ops: &str, result: &str| {
        let text = replace_line(&base, add, |l| format!("{l}\n{ops}"));
        text.replace("memref.store %w, %eout[%i]", &format!("memref.store {result}, %eout[%i]"))
    };
    // Scalar: v / (v - v) is a division by zero on the first element.
    let text = with("          %zero = arith.subi %v, %v : i32\n          %q = arith.divsi %v, %zero : i32", "%q");
    let m = run_err(&text, "design.mlir");
    assert_eq!(
        m,
        format!(
            "core (0, 2): `arith.divsi` at design.mlir:{} divides by zero (or overflows: the most negative value by -1)",
            add + 2
        )
    );
    // Vector: one zero lane is enough.
    let text = with(
        "          %vv = vector.broadcast %v : i32 to vector<4xi32>\n          %d = arith.constant dense<[1, 2, 0, 4]> : vector<4xi32>\n          %r = arith.remui %vv, %d : vector<4xi32>\n          %e = vector.extract %r[0] : i32 from vector<4xi32>",
        "%e",
    );
    let m = run_err(&text, "design.mlir");
    assert!(m.starts_with(&format!("core (0, 2): `arith.remui` at design.mlir:{}", add + 3)), "{m}");
    // Signed overflow: INT_MIN / -1.
    let text = with(
        "          %min = arith.constant -2147483648 : i32\n          %m1 = arith.subi %v, %v : i32\n          %m2 = arith.subi %m1, %one : i32\n          %q = arith.divsi %min, %m2 : i32",
        "%q",
    );
    let m = run_err(&text, "design.mlir");
    assert!(m.starts_with(&format!("core (0, 2): `arith.divsi` at design.mlir:{}", add + 4)), "{m}");
    // Nonzero divisors run.
    let text = with("          %q = arith.divsi %w, %one : i32", "%q");
    let mut args = zeros_for(&text);
    Emulator::new().run_mlir(&text, "design.mlir", &mut args).unwrap();
    let out: Vec<i32> = args[1].bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(out, vec![1; 256]);
}

#[test]
fn vectors_longer_than_any_register_are_refused() {
    let base = design("add_one_link.mlir");
    let add = line_of(&base, "%w = arith.addi %v, %one : i32");
    let text = replace_line(&base, add, |l| {
        format!("{l}\n          %big = vector.broadcast %v : i32 to vector<65536x8xi32>")
    });
    let m = design_err(&text);
    assert!(m.starts_with(&format!("broken.mlir:{}:", add + 1)) && m.contains("vector<65536x8xi32>"), "{m}");
}

/// Runs `text` expecting a design error quickly (no allocation, no thrashing).
fn quick_design_err(text: &str) -> String {
    let t = Instant::now();
    let m = match sequence_args(text) {
        Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => e.to_string(),
        Err(e) => panic!("{e}"),
        Ok(specs) => {
            let mut args: Vec<HostBuffer> = specs.iter().map(HostBuffer::for_arg).collect();
            match Emulator::new().run_mlir(text, "design.mlir", &mut args) {
                Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => e.to_string(),
                other => panic!("expected a design error, got {other:?}"),
            }
        }
    };
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}: {m}", t.elapsed());
    m
}

#[test]
fn sizes_past_the_host_limit_are_errors_before_allocating() {
    let base = design("add_one_link.mlir");
    // A DMA of 99999999999 elements.
    let dma = line_of(&base, "aiex.npu.dma_memcpy_nd(%in[");
    let text = replace_line(&base, dma, |l| l.replace("[1, 1, 1, 256][0, 0, 0, 1]", "[1, 1, 1, 99999999999][0, 0, 0, 1]"));
    let m = quick_design_err(&text);
    assert!(m.starts_with(&format!("design.mlir:{dma}: aiex.npu.dma_memcpy_nd")), "{m}");
    assert!(m.contains("99999999998"), "the element reached: {m}");
    // A DMA repeating one element 65536 x 65536 times (stride 0): 16 GiB moved.
    let text = replace_line(&base, dma, |l| l.replace("[1, 1, 1, 256][0, 0, 0, 1]", "[1, 65536, 65536, 1][0, 0, 0, 1]"));
    let m = quick_design_err(&text);
    assert!(m.starts_with(&format!("design.mlir:{dma}: aiex.npu.dma_memcpy_nd")), "{m}");
    assert!(m.contains("4294967296 elements (17179869184 bytes (16.0 GiB))") && m.contains("at most"), "{m}");
    // An object FIFO 2147483647 deep.
    let fifo = line_of(&base, "aie.objectfifo @in1(");
    let text = replace_line(&base, fifo, |l| l.replace("2 : i32", "2147483647 : i32"));
    let m = quick_design_err(&text);
    assert!(m.starts_with(&format!("design.mlir:{fifo}: object FIFO @in1 has depth 2147483647")), "{m}");
    // Within the depth limit, but 200 slots of 64 MiB.
    let text = replace_line(&base, fifo, |l| {
        l.replace("2 : i32", "200 : i32").replace("memref<16xi32>", "memref<16777216xi32>")
    });
    let m = quick_design_err(&text);
    assert!(
        m.starts_with(&format!(
            "design.mlir:{fifo}: aie.objectfifo @in1 (200 x memref<16777216xi32>) needs 13421772800 bytes"
        )),
        "{m}"
    );
    assert!(m.contains("host memory limit of 4294967296 bytes (4.0 GiB)"), "{m}");
    // A runtime-sequence argument of 400 GB.
    let seq = line_of(&base, "aie.runtime_sequence(");
    let text = replace_line(&base, seq, |l| l.replace("%in: memref<256xi32>", "%in: memref<99999999999xi32>"));
    let m = quick_design_err(&text);
    assert!(
        m.starts_with(&format!("design.mlir:{seq}: `memref<99999999999xi32>` needs 399999999996 bytes")),
        "{m}"
    );
    // Element counts that overflow 64 bits.
    let text = replace_line(&base, seq, |l| l.replace("%in: memref<256xi32>", "%in: memref<4294967296x4294967296x16xi32>"));
    let m = quick_design_err(&text);
    assert!(m.contains("more than the emulator's host memory limit"), "{m}");
    // Everything together over the limit, each part under it: named with the amounts.
    let text = replace_line(&base, seq, |l| {
        l.replace(
            "%in: memref<256xi32>, %out: memref<256xi32>",
            "%in: memref<256xi32>, %out: memref<256xi32>, %x: memref<805306368xi32>, %y: memref<805306368xi32>",
        )
    });
    let m = quick_design_err(&text);
    assert!(m.contains("the design (runtime-sequence arguments 6442452992 bytes"), "{m}");
}

#[test]
fn a_long_repeating_dma_allocates_nothing_per_element() {
    // The first 32 input elements repeated 2^20 times (stride 0): the pattern is walked, never materialised
    // (it used to be a vector of 2^25 indices). The core takes what it needs; the run ends at the output's
    // dma_wait.
    let base = design("add_one_link.mlir");
    let dma = line_of(&base, "aiex.npu.dma_memcpy_nd(%in[");
    let text = replace_line(&base, dma, |l| l.replace("[1, 1, 1, 256][0, 0, 0, 1]", "[1, 1024, 1024, 32][0, 0, 0, 1]"));
    let input: Vec<i32> = (0..256).map(|i| i * 3).collect();
    let mut args = [
        HostBuffer {
            dtype: DType::I32,
            shape: vec![256],
            bytes: input.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        HostBuffer::zeros(DType::I32, &[256]),
    ];
    let t = Instant::now();
    Emulator::new().run_mlir(&text, "design.mlir", &mut args).unwrap();
    assert!(t.elapsed() < Duration::from_secs(30));
    let out: Vec<i32> = args[1].bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let expected: Vec<i32> = (0..256).map(|i| input[i % 32] + 1).collect();
    assert_eq!(out, expected);
}

/// The scheduler state of this process's threads named `name` (R running, S sleeping, ...).
fn thread_states(name: &str) -> Vec<char> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if let Some(state) = stat.rsplit_once(')').and_then(|(_, r)| r.trim().chars().next()) {
            out.push(state);
        }
    }
    out
}

#[test]
fn a_core_in_an_endless_loop_stops_after_its_run() {
    // A tile no other test here uses, so that its thread is this test's.
    let text = design("endless.mlir").replace("aie.tile(0, 2)", "aie.tile(6, 4)");
    let mut emu = Emulator::new();
    emu.stall_timeout = Duration::from_millis(300);
    let mut args = [HostBuffer::zeros(DType::I32, &[16])];
    let e = emu.run_mlir(&text, "endless.mlir", &mut args).unwrap_err();
    assert!(e.to_string().contains("no object FIFO or DMA activity"), "{e}");
    // The core reaches its loop's stop point and parks: its thread is asleep, not spinning.
    let t = Instant::now();
    loop {
        let states = thread_states("aiec-core-6-4");
        if !states.is_empty() && states.iter().all(|&s| s == 'S') {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "core thread states {states:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
