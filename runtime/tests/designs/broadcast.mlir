// One FIFO from the shim broadcast to two cores; each core sees every element.
// Core (0, 2) adds 10 to each value, core (0, 3) squares it; depth 3 with acquires of 2 elements.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    %t03 = aie.tile(0, 3)
    aie.objectfifo @in(%shim, {%t02, %t03}, 3 : i32) : !aie.objectfifo<memref<8xi32>>
    aie.objectfifo @plus(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @square(%t03, {%shim}, 2 : i32) : !aie.objectfifo<memref<8xi32>>
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c8 = arith.constant 8 : index
      %c10 = arith.constant 10 : i32
      scf.for %step = %c0 to %c8 step %c2 {
        %sin = aie.objectfifo.acquire @in(Consume, 2) : !aie.objectfifosubview<memref<8xi32>>
        %e0 = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<8xi32>> -> memref<8xi32>
        %e1 = aie.objectfifo.subview.access %sin[1] : !aie.objectfifosubview<memref<8xi32>> -> memref<8xi32>
        %sout = aie.objectfifo.acquire @plus(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        scf.for %i = %c0 to %c8 step %c1 {
          %a = memref.load %e0[%i] : memref<8xi32>
          %b = memref.load %e1[%i] : memref<8xi32>
          %a10 = arith.addi %a, %c10 : i32
          %b10 = arith.addi %b, %c10 : i32
          %j = arith.addi %i, %c8 : index
          memref.store %a10, %eout[%i] : memref<16xi32>
          memref.store %b10, %eout[%j] : memref<16xi32>
        }
        aie.objectfifo.release @in(Consume, 2)
        aie.objectfifo.release @plus(Produce, 1)
      }
      aie.end
    }
    %core03 = aie.core(%t03) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c8 = arith.constant 8 : index
      scf.for %step = %c0 to %c8 step %c1 {
        %sin = aie.objectfifo.acquire @in(Consume, 1) : !aie.objectfifosubview<memref<8xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<8xi32>> -> memref<8xi32>
        %sout = aie.objectfifo.acquire @square(Produce, 1) : !aie.objectfifosubview<memref<8xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<8xi32>> -> memref<8xi32>
        scf.for %i = %c0 to %c8 step %c1 {
          %v = memref.load %ein[%i] : memref<8xi32>
          %w = arith.muli %v, %v : i32
          memref.store %w, %eout[%i] : memref<8xi32>
        }
        aie.objectfifo.release @in(Consume, 1)
        aie.objectfifo.release @square(Produce, 1)
      }
      aie.end
    }
    aie.runtime_sequence(%in: memref<64xi32>, %plus: memref<64xi32>, %square: memref<64xi32>) {
      aiex.npu.dma_memcpy_nd(%in[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 0 : i64, metadata = @in} : memref<64xi32>
      aiex.npu.dma_memcpy_nd(%plus[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 1 : i64, metadata = @plus, issue_token = true} : memref<64xi32>
      aiex.npu.dma_memcpy_nd(%square[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 2 : i64, metadata = @square, issue_token = true} : memref<64xi32>
      aiex.npu.dma_wait {symbol = @plus}
      aiex.npu.dma_wait {symbol = @square}
    }
  }
}
