// A core that acquires its output and then spins writing into it, in a loop with no end.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @out(%t02, {%shim}, 1 : i32) : !aie.objectfifo<memref<16xi32>>
    %core02 = aie.core(%t02) {
      %true = arith.constant true
      %c0 = arith.constant 0 : i32
      %c1 = arith.constant 1 : i32
      %i0 = arith.constant 0 : index
      %s = aie.objectfifo.acquire @out(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
      %e = aie.objectfifo.subview.access %s[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
      %r = scf.while (%i = %c0) : (i32) -> i32 {
        scf.condition(%true) %i : i32
      } do {
      ^bb0(%j: i32):
        %k = arith.addi %j, %c1 : i32
        memref.store %k, %e[%i0] : memref<16xi32>
        scf.yield %k : i32
      }
      aie.end
    }
    aie.runtime_sequence(%out: memref<16xi32>) {
      aiex.npu.dma_memcpy_nd(%out[0, 0, 0, 0][1, 1, 1, 16][0, 0, 0, 1]) {id = 0 : i64, metadata = @out, issue_token = true} : memref<16xi32>
      aiex.npu.dma_wait {symbol = @out}
    }
  }
}
