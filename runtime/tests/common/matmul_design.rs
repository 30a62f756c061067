//! Generates a whole-array int8 matrix-multiply design for npu1 (4 columns x 4 compute rows = 16 cores):
//! C (n x n, i32) = A (n x n, i8) * B (n x n, i8), with t x t tiles, n = 8 t. Core (col j, row 2 + i) computes
//! the C tiles (i + 4a, j + 4b) for a, b in {0, 1}; A tiles reach row i through memory tile i (broadcast to
//! the row), B tiles reach column j through memory tile j (broadcast to the column), the four C tiles of a
//! column are joined in memory tile j. Core code: vector.contract on 4x8x8 i8 -> i32 blocks.

use std::fmt::Write;

pub fn matmul_design(n: usize, t: usize) -> String {
    assert_eq!(n, 8 * t, "n must be 8 tiles");
    assert!(t.is_multiple_of(8));
    let mut s = String::new();
    let w = &mut s;
    writeln!(w, "module {{").unwrap();
    writeln!(w, "  aie.device(npu1) {{").unwrap();
    for c in 0..4 {
        writeln!(w, "    %shim{c} = aie.tile({c}, 0)").unwrap();
        writeln!(w, "    %mem{c} = aie.tile({c}, 1)").unwrap();
        for r in 2..6 {
            writeln!(w, "    %core{c}_{r} = aie.tile({c}, {r})").unwrap();
        }
    }
    let a_ty = format!("memref<{t}x{t}xi8>");
    let c_ty = format!("memref<{t}x{t}xi32>");
    let out_ty = format!("memref<{}x{t}xi32>", 4 * t);
    for i in 0..4 {
        let row: Vec<String> = (0..4).map(|c| format!("%core{c}_{}", 2 + i)).collect();
        writeln!(w, "    aie.objectfifo @inA{i}(%shim{i}, {{%mem{i}}}, 2 : i32) : !aie.objectfifo<{a_ty}>").unwrap();
        writeln!(
            w,
            "    aie.objectfifo @A{i}(%mem{i}, {{{}}}, 2 : i32) : !aie.objectfifo<{a_ty}>",
            row.join(", ")
        )
        .unwrap();
        writeln!(w, "    aie.objectfifo.link [@inA{i}] -> [@A{i}] ([] [])").unwrap();
    }
    for j in 0..4 {
        let col: Vec<String> = (2..6).map(|r| format!("%core{j}_{r}")).collect();
        writeln!(w, "    aie.objectfifo @inB{j}(%shim{j}, {{%mem{j}}}, 2 : i32) : !aie.objectfifo<{a_ty}>").unwrap();
        writeln!(
            w,
            "    aie.objectfifo @B{j}(%mem{j}, {{{}}}, 2 : i32) : !aie.objectfifo<{a_ty}>",
            col.join(", ")
        )
        .unwrap();
        writeln!(w, "    aie.objectfifo.link [@inB{j}] -> [@B{j}] ([] [])").unwrap();
        for i in 0..4 {
            writeln!(
                w,
                "    aie.objectfifo @C{j}_{i}(%core{j}_{}, {{%mem{j}}}, 2 : i32) : !aie.objectfifo<{c_ty}>",
                2 + i
            )
            .unwrap();
        }
        writeln!(w, "    aie.objectfifo @outC{j}(%mem{j}, {{%shim{j}}}, 2 : i32) : !aie.objectfifo<{out_ty}>").unwrap();
        let ins: Vec<String> = (0..4).map(|i| format!("@C{j}_{i}")).collect();
        let offs: Vec<String> = (0..4).map(|i| (i * t * t).to_string()).collect();
        writeln!(w, "    aie.objectfifo.link [{}] -> [@outC{j}] ([{}] [])", ins.join(", "), offs.join(", ")).unwrap();
    }
    for j in 0..4 {
        for i in 0..4 {
            let r = 2 + i;
            let sub = |ty: &str| format!("!aie.objectfifosubview<{ty}>");
            writeln!(w, "    %c{j}_{r} = aie.core(%core{j}_{r}) {{").unwrap();
            for (name, v) in [("c0", 0), ("c1", 1), ("c4", 4), ("c8", 8), ("ct", t)] {
                writeln!(w, "      %{name} = arith.constant {v} : index").unwrap();
            }
            writeln!(w, "      %z8 = arith.constant 0 : i8").unwrap();
            writeln!(w, "      %z32 = arith.constant 0 : i32").unwrap();
            writeln!(w, "      %zeros = arith.constant dense<0> : vector<8xi32>").unwrap();
            writeln!(w, "      scf.for %round = %c0 to %c4 step %c1 {{").unwrap();
            writeln!(w, "        %sc = aie.objectfifo.acquire @C{j}_{i}(Produce, 1) : {}", sub(&c_ty)).unwrap();
            writeln!(w, "        %ec = aie.objectfifo.subview.access %sc[0] : {} -> {c_ty}", sub(&c_ty)).unwrap();
            writeln!(w, "        scf.for %m = %c0 to %ct step %c1 {{").unwrap();
            writeln!(w, "          scf.for %n = %c0 to %ct step %c8 {{").unwrap();
            writeln!(
                w,
                "            vector.transfer_write %zeros, %ec[%m, %n] {{in_bounds = [true]}} : vector<8xi32>, {c_ty}"
            )
            .unwrap();
            writeln!(w, "          }}").unwrap();
            writeln!(w, "        }}").unwrap();
            writeln!(w, "        scf.for %k = %c0 to %c8 step %c1 {{").unwrap();
            writeln!(w, "          %sa = aie.objectfifo.acquire @A{i}(Consume, 1) : {}", sub(&a_ty)).unwrap();
            writeln!(w, "          %ea = aie.objectfifo.subview.access %sa[0] : {} -> {a_ty}", sub(&a_ty)).unwrap();
            writeln!(w, "          %sb = aie.objectfifo.acquire @B{j}(Consume, 1) : {}", sub(&a_ty)).unwrap();
            writeln!(w, "          %eb = aie.objectfifo.subview.access %sb[0] : {} -> {a_ty}", sub(&a_ty)).unwrap();
            writeln!(w, "          scf.for %m = %c0 to %ct step %c4 {{").unwrap();
            writeln!(w, "            scf.for %n = %c0 to %ct step %c8 {{").unwrap();
            writeln!(
                w,
                "              %acc0 = vector.transfer_read %ec[%m, %n], %z32 {{in_bounds = [true, true]}} : {c_ty}, vector<4x8xi32>"
            )
            .unwrap();
            writeln!(
                w,
                "              %acc = scf.for %kk = %c0 to %ct step %c8 iter_args(%sum = %acc0) -> (vector<4x8xi32>) {{"
            )
            .unwrap();
            writeln!(
                w,
                "                %va = vector.transfer_read %ea[%m, %kk], %z8 {{in_bounds = [true, true]}} : {a_ty}, vector<4x8xi8>"
            )
            .unwrap();
            writeln!(
                w,
                "                %vb = vector.transfer_read %eb[%kk, %n], %z8 {{in_bounds = [true, true]}} : {a_ty}, vector<8x8xi8>"
            )
            .unwrap();
            writeln!(w, "                %wa = arith.extsi %va : vector<4x8xi8> to vector<4x8xi32>").unwrap();
            writeln!(w, "                %wb = arith.extsi %vb : vector<8x8xi8> to vector<8x8xi32>").unwrap();
            writeln!(w, "                %next = vector.contract {{indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (k, n)>, affine_map<(m, n, k) -> (m, n)>], iterator_types = [\"parallel\", \"parallel\", \"reduction\"], kind = #vector.kind<add>}} %wa, %wb, %sum : vector<4x8xi32>, vector<8x8xi32> into vector<4x8xi32>").unwrap();
            writeln!(w, "                scf.yield %next : vector<4x8xi32>").unwrap();
            writeln!(w, "              }}").unwrap();
            writeln!(
                w,
                "              vector.transfer_write %acc, %ec[%m, %n] {{in_bounds = [true, true]}} : vector<4x8xi32>, {c_ty}"
            )
            .unwrap();
            writeln!(w, "            }}").unwrap();
            writeln!(w, "          }}").unwrap();
            writeln!(w, "          aie.objectfifo.release @A{i}(Consume, 1)").unwrap();
            writeln!(w, "          aie.objectfifo.release @B{j}(Consume, 1)").unwrap();
            writeln!(w, "        }}").unwrap();
            writeln!(w, "        aie.objectfifo.release @C{j}_{i}(Produce, 1)").unwrap();
            writeln!(w, "      }}").unwrap();
            writeln!(w, "      aie.end").unwrap();
            writeln!(w, "    }}").unwrap();
        }
    }
    writeln!(
        w,
        "    aie.runtime_sequence(%A: memref<{n}x{n}xi8>, %B: memref<{n}x{n}xi8>, %C: memref<{n}x{n}xi32>) {{"
    )
    .unwrap();
    let mut id = 0;
    let mut dma = |w: &mut String, arg: &str, ty: &str, o: [usize; 4], sz: [usize; 4], st: [usize; 4], fifo: &str, tok: bool| {
        let j = |a: [usize; 4]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
        let tok = if tok { ", issue_token = true" } else { "" };
        writeln!(
            w,
            "      aiex.npu.dma_memcpy_nd({arg}[{}][{}][{}]) {{id = {id} : i64, metadata = @{fifo}{tok}}} : {ty}",
            j(o),
            j(sz),
            j(st)
        )
        .unwrap();
        id += 1;
    };
    let in_ty = format!("memref<{n}x{n}xi8>");
    let out_ty = format!("memref<{n}x{n}xi32>");
    for j in 0..4 {
        for a in 0..2 {
            dma(
                w,
                "%C",
                &out_ty,
                [0, 0, 4 * a * t, j * t],
                [2, 4, t, t],
                [4 * t, t * n, n, 1],
                &format!("outC{j}"),
                true,
            );
        }
    }
    for i in 0..4 {
        for a in 0..2 {
            dma(
                w,
                "%A",
                &in_ty,
                [0, 0, (i + 4 * a) * t, 0],
                [2, 8, t, t],
                [0, t, n, 1],
                &format!("inA{i}"),
                false,
            );
            dma(w, "%B", &in_ty, [0, 0, 0, i * t], [2, 8, t, t], [4 * t, t * n, n, 1], &format!("inB{i}"), false);
        }
    }
    for j in 0..4 {
        writeln!(w, "      aiex.npu.dma_wait {{symbol = @outC{j}}}").unwrap();
    }
    writeln!(w, "    }}").unwrap();
    writeln!(w, "  }}").unwrap();
    writeln!(w, "}}").unwrap();
    s
}

/// The reference product, computed plainly.
pub fn matmul_reference(a: &[i8], b: &[i8], n: usize) -> Vec<i32> {
    let mut c = vec![0i32; n * n];
    for i in 0..n {
        for k in 0..n {
            let av = a[i * n + k] as i32;
            for j in 0..n {
                c[i * n + j] += av * b[k * n + j] as i32;
            }
        }
    }
    c
}

/// Deterministic int8 operands A and B (n x n) covering the whole int8 range.
pub fn matmul_operands(n: usize) -> (Vec<i8>, Vec<i8>) {
    let a = (0..n * n).map(|i| ((i * 7919) % 251) as i8).collect();
    let b = (0..n * n).map(|i| ((i * 104729 + 13) % 241) as i8).collect();
    (a, b)
}

/// The runtime-sequence buffers (A, B, zeroed C) for the design.
pub fn matmul_buffers(a: &[i8], b: &[i8], n: usize) -> [aiec_runtime::HostBuffer; 3] {
    use aiec_runtime::{DType, HostBuffer};
    let bytes = |v: &[i8]| v.iter().map(|&x| x as u8).collect();
    [
        HostBuffer {
            dtype: DType::I8,
            shape: vec![n, n],
            bytes: bytes(a),
        },
        HostBuffer {
            dtype: DType::I8,
            shape: vec![n, n],
            bytes: bytes(b),
        },
        HostBuffer::zeros(DType::I32, &[n, n]),
    ]
}
