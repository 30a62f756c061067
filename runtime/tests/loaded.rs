//! `LoadedKernel`: a design loaded once into the emulator runs many times, with a constant operand
//! kept resident, each run matching the reference; malformed calls are errors naming the argument.

#[path = "common/matmul_design.rs"]
#[allow(dead_code)]
mod matmul_design;

use aiec_runtime::emulator::Emulator;
use aiec_runtime::{ArgData, LoadedKernel, RuntimeError};

fn i32s(bytes: &[u8]) -> Vec<i32> {
    bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn as_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

#[test]
fn a_loaded_design_runs_many_times_with_a_resident_operand() {
    let n = 64;
    let text = matmul_design::matmul_design(n, n / 8);
    let mut emu = Emulator::new();
    let kernel = emu.load_mlir(&text, "matmul.mlir").expect("loads");
    assert_eq!(emu.compiled, 1);
    assert_eq!(kernel.arguments().len(), 3);
    let (_, b) = matmul_design::matmul_operands(n);
    let b_id = kernel.keep(1, as_bytes(&b)).expect("keeps B");
    for round in 0..20i32 {
        let a: Vec<i8> = (0..n * n).map(|i| ((i as i32 * 7 + round * 13) % 23 - 11) as i8).collect();
        let mut c = vec![0u8; n * n * 4];
        kernel
            .run(&mut [ArgData::Input(&as_bytes(&a)), ArgData::Resident(b_id), ArgData::Output(&mut c)])
            .expect("runs");
        assert_eq!(i32s(&c), matmul_design::matmul_reference(&a, &b, n), "round {round}");
    }
    // Loading the same text again reuses the compiled cores.
    emu.load_mlir(&text, "matmul.mlir").expect("loads again");
    assert_eq!(emu.compiled, 1, "the second load compiled again");
}

#[test]
fn malformed_calls_name_the_argument() {
    let n = 64;
    let text = matmul_design::matmul_design(n, n / 8);
    let kernel = Emulator::new().load_mlir(&text, "matmul.mlir").expect("loads");
    let (a, b) = matmul_design::matmul_operands(n);
    let (a, b) = (as_bytes(&a), as_bytes(&b));
    let b_id = kernel.keep(1, b.clone()).unwrap();
    let mut c = vec![0u8; n * n * 4];
    let message = |r: Result<aiec_runtime::RunReport, RuntimeError>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a malformed call ran"),
    };
    let m = message(kernel.run(&mut [ArgData::Input(&a), ArgData::Input(&b)]));
    assert!(m.contains("takes 3 arguments, 2 given"), "{m}");
    let m = message(kernel.run(&mut [ArgData::Input(&a[1..]), ArgData::Input(&b), ArgData::Output(&mut c)]));
    assert!(m.contains("argument 0") && m.contains("expected 4096 bytes"), "{m}");
    let mut c2 = vec![0u8; n * n * 4];
    let m = message(kernel.run(&mut [ArgData::Input(&a), ArgData::Input(&b), ArgData::Input(&c2)]));
    assert!(m.contains("argument 2") && m.contains("an output passed as an input"), "{m}");
    let m = message(kernel.run(&mut [ArgData::Resident(b_id), ArgData::Input(&b), ArgData::Output(&mut c2)]));
    assert!(m.contains("stored for argument 1 passed as argument 0"), "{m}");
    let m = message(kernel.keep(2, vec![0; 16]).map(|_| aiec_runtime::RunReport::default()));
    assert!(m.contains("argument 2") && m.contains("expected 16384 bytes"), "{m}");
    // A well-formed call after the bad ones still runs.
    kernel
        .run(&mut [ArgData::Input(&a), ArgData::Resident(b_id), ArgData::Output(&mut c)])
        .expect("runs");
    let (ai, bi) = matmul_design::matmul_operands(n);
    assert_eq!(i32s(&c), matmul_design::matmul_reference(&ai, &bi, n));
}
