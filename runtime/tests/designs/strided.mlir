// Runtime-sequence access patterns: the 8x8 block at row 2, column 4 of a 16x16 input is sent twice
// (outermost stride 0 repeats it); the core negates the first copy and adds 1000 to the second; the results
// land in columns 8..15 of rows 0..7 and 8..15 of the 16x16 output.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @block(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<8x8xi32>>
    aie.objectfifo @result(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<8x8xi32>>
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c8 = arith.constant 8 : index
      %zero = arith.constant 0 : i32
      %thousand = arith.constant 1000 : i32
      %sin = aie.objectfifo.acquire @block(Consume, 1) : !aie.objectfifosubview<memref<8x8xi32>>
      %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<8x8xi32>> -> memref<8x8xi32>
      %sout = aie.objectfifo.acquire @result(Produce, 1) : !aie.objectfifosubview<memref<8x8xi32>>
      %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<8x8xi32>> -> memref<8x8xi32>
      scf.for %r = %c0 to %c8 step %c1 {
        scf.for %c = %c0 to %c8 step %c1 {
          %v = memref.load %ein[%r, %c] : memref<8x8xi32>
          %w = arith.subi %zero, %v : i32
          memref.store %w, %eout[%r, %c] : memref<8x8xi32>
        }
      }
      aie.objectfifo.release @block(Consume, 1)
      aie.objectfifo.release @result(Produce, 1)
      %sin2 = aie.objectfifo.acquire @block(Consume, 1) : !aie.objectfifosubview<memref<8x8xi32>>
      %ein2 = aie.objectfifo.subview.access %sin2[0] : !aie.objectfifosubview<memref<8x8xi32>> -> memref<8x8xi32>
      %sout2 = aie.objectfifo.acquire @result(Produce, 1) : !aie.objectfifosubview<memref<8x8xi32>>
      %eout2 = aie.objectfifo.subview.access %sout2[0] : !aie.objectfifosubview<memref<8x8xi32>> -> memref<8x8xi32>
      scf.for %r = %c0 to %c8 step %c1 {
        scf.for %c = %c0 to %c8 step %c1 {
          %v = memref.load %ein2[%r, %c] : memref<8x8xi32>
          %w = arith.addi %v, %thousand : i32
          memref.store %w, %eout2[%r, %c] : memref<8x8xi32>
        }
      }
      aie.objectfifo.release @block(Consume, 1)
      aie.objectfifo.release @result(Produce, 1)
      aie.end
    }
    aie.runtime_sequence(%a: memref<16x16xi32>, %b: memref<16x16xi32>) {
      aiex.npu.dma_memcpy_nd(%a[0, 0, 2, 4][2, 1, 8, 8][0, 0, 16, 1]) {id = 0 : i64, metadata = @block} : memref<16x16xi32>
      aiex.npu.dma_memcpy_nd(%b[0, 0, 0, 8][2, 1, 8, 8][128, 0, 16, 1]) {id = 1 : i64, metadata = @result, issue_token = true} : memref<16x16xi32>
      aiex.npu.dma_wait {symbol = @result}
    }
  }
}
