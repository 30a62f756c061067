// Buffers with initial values: a running sum that starts from a 2-D initial value, plus a splat constant
// added on every step (written in mlir-aie's `: memref<...> = dense<...>` form).
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    %acc = aie.buffer(%t02) {address = 1024 : i32, mem_bank = 0 : i32, sym_name = "acc"} : memref<2x8xi32> = dense<[[100, -200, 300, -400, 500, -600, 700, -800], [1, 2, 3, 4, 5, 6, 7, 8]]>
    %step = aie.buffer(%t02) {sym_name = "step"} : memref<16xi32> = dense<3>
    aie.objectfifo @in(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @out(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    %core_0_2 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      scf.for %k = %c0 to %c4 step %c1 {
        %sin = aie.objectfifo.acquire @in(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        %sout = aie.objectfifo.acquire @out(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        scf.for %r = %c0 to %c2 step %c1 {
          scf.for %c = %c0 to %c8 step %c1 {
            %row = arith.muli %r, %c8 : index
            %i = arith.addi %row, %c : index
            %v = memref.load %ein[%i] : memref<16xi32>
            %d = memref.load %step[%i] : memref<16xi32>
            %a = memref.load %acc[%r, %c] : memref<2x8xi32>
            %s0 = arith.addi %a, %v : i32
            %s = arith.addi %s0, %d : i32
            memref.store %s, %acc[%r, %c] : memref<2x8xi32>
            memref.store %s, %eout[%i] : memref<16xi32>
          }
        }
        aie.objectfifo.release @in(Consume, 1)
        aie.objectfifo.release @out(Produce, 1)
      }
      aie.end
    } {stack_size = 1024 : i32}
    aie.runtime_sequence(%x: memref<64xi32>, %y: memref<64xi32>) {
      aiex.npu.dma_memcpy_nd(%y[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 1 : i64, metadata = @out, issue_token = true} : memref<64xi32>
      aiex.npu.dma_memcpy_nd(%x[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 0 : i64, metadata = @in} : memref<64xi32>
      aiex.npu.dma_wait {symbol = @out}
    }
  }
}
