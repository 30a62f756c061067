// Adds one to 256 i32 values: host -> memory tile -> core (0, 2) -> memory tile -> host.
// The memory tile forwards 32-element elements as pairs of 16-element elements and back.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %mem = aie.tile(0, 1)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @in0(%shim, {%mem}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo @in1(%mem, {%t02}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo.link [@in0] -> [@in1] ([] [])
    aie.objectfifo @out1(%t02, {%mem}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @out0(%mem, {%shim}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo.link [@out1] -> [@out0] ([] [])
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c16 = arith.constant 16 : index
      %one = arith.constant 1 : i32
      scf.for %step = %c0 to %c16 step %c1 {
        %sin = aie.objectfifo.acquire @in1(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        %sout = aie.objectfifo.acquire @out1(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        scf.for %i = %c0 to %c16 step %c1 {
          %v = memref.load %ein[%i] : memref<16xi32>
          %w = arith.addi %v, %one : i32
          memref.store %w, %eout[%i] : memref<16xi32>
        }
        aie.objectfifo.release @in1(Consume, 1)
        aie.objectfifo.release @out1(Produce, 1)
      }
      aie.end
    }
    aie.runtime_sequence(%in: memref<256xi32>, %out: memref<256xi32>) {
      aiex.npu.dma_memcpy_nd(%out[0, 0, 0, 0][1, 1, 1, 256][0, 0, 0, 1]) {id = 1 : i64, metadata = @out0, issue_token = true} : memref<256xi32>
      aiex.npu.dma_memcpy_nd(%in[0, 0, 0, 0][1, 1, 1, 256][0, 0, 0, 1]) {id = 0 : i64, metadata = @in0} : memref<256xi32>
      aiex.npu.dma_wait {symbol = @out0}
    }
  }
}
