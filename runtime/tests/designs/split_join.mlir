// A memory tile splits each 64-element input element between two cores and joins their results:
// core (0, 2) doubles the first 32 values, core (0, 3) triples the last 32.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %mem = aie.tile(0, 1)
    %t02 = aie.tile(0, 2)
    %t03 = aie.tile(0, 3)
    aie.objectfifo @in(%shim, {%mem}, 2 : i32) : !aie.objectfifo<memref<64xi32>>
    aie.objectfifo @in_a(%mem, {%t02}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo @in_b(%mem, {%t03}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo.link [@in] -> [@in_a, @in_b] ([] [0, 32])
    aie.objectfifo @out_a(%t02, {%mem}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo @out_b(%t03, {%mem}, 2 : i32) : !aie.objectfifo<memref<32xi32>>
    aie.objectfifo @out(%mem, {%shim}, 2 : i32) : !aie.objectfifo<memref<64xi32>>
    aie.objectfifo.link [@out_a, @out_b] -> [@out] ([0, 32] [])
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c32 = arith.constant 32 : index
      %two = arith.constant 2 : i32
      scf.for %step = %c0 to %c4 step %c1 {
        %sin = aie.objectfifo.acquire @in_a(Consume, 1) : !aie.objectfifosubview<memref<32xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<32xi32>> -> memref<32xi32>
        %sout = aie.objectfifo.acquire @out_a(Produce, 1) : !aie.objectfifosubview<memref<32xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<32xi32>> -> memref<32xi32>
        scf.for %i = %c0 to %c32 step %c1 {
          %v = memref.load %ein[%i] : memref<32xi32>
          %w = arith.muli %v, %two : i32
          memref.store %w, %eout[%i] : memref<32xi32>
        }
        aie.objectfifo.release @in_a(Consume, 1)
        aie.objectfifo.release @out_a(Produce, 1)
      }
      aie.end
    }
    %core03 = aie.core(%t03) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c32 = arith.constant 32 : index
      %three = arith.constant 3 : i32
      scf.for %step = %c0 to %c4 step %c1 {
        %sin = aie.objectfifo.acquire @in_b(Consume, 1) : !aie.objectfifosubview<memref<32xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<32xi32>> -> memref<32xi32>
        %sout = aie.objectfifo.acquire @out_b(Produce, 1) : !aie.objectfifosubview<memref<32xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<32xi32>> -> memref<32xi32>
        scf.for %i = %c0 to %c32 step %c1 {
          %v = memref.load %ein[%i] : memref<32xi32>
          %w = arith.muli %v, %three : i32
          memref.store %w, %eout[%i] : memref<32xi32>
        }
        aie.objectfifo.release @in_b(Consume, 1)
        aie.objectfifo.release @out_b(Produce, 1)
      }
      aie.end
    }
    aie.runtime_sequence @split_join(%input: memref<256xi32>, %output: memref<256xi32>) {
      %c0 = arith.constant 0 : i64
      %c1 = arith.constant 1 : i64
      %c256 = arith.constant 256 : i64
      aiex.npu.dma_memcpy_nd(%input[%c0, %c0, %c0, %c0][%c1, %c1, %c1, %c256][%c0, %c0, %c0, %c1]) {id = 0 : i64, metadata = @in} : memref<256xi32>
      aiex.npu.dma_memcpy_nd(%output[0, 0, 0, 0][1, 1, 1, 256][0, 0, 0, 1]) {id = 1 : i64, metadata = @out, issue_token = true} : memref<256xi32>
      aiex.npu.dma_wait {symbol = @out}
    }
  }
}
