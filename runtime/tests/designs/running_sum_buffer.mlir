// Running sums kept in core-local buffers: each core adds every 16-element input element into its own
// aie.buffer and sends the sum so far. Both cores run the same code on their own tile's buffer.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    %t03 = aie.tile(0, 3)
    %acc_0_2 = aie.buffer(%t02) {sym_name = "acc_0_2"} : memref<16xi32>
    %acc_0_3 = aie.buffer(%t03) {sym_name = "acc_0_3"} : memref<16xi32>
    aie.objectfifo @in2(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @out2(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @in3(%shim, {%t03}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @out3(%t03, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    %core_0_2 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      scf.for %step = %c0 to %c8 step %c1 {
        %sin = aie.objectfifo.acquire @in2(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        %sout = aie.objectfifo.acquire @out2(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        scf.for %i = %c0 to %c16 step %c1 {
          %v = memref.load %ein[%i] : memref<16xi32>
          %a = memref.load %acc_0_2[%i] : memref<16xi32>
          %s = arith.addi %a, %v : i32
          memref.store %s, %acc_0_2[%i] : memref<16xi32>
          memref.store %s, %eout[%i] : memref<16xi32>
        }
        aie.objectfifo.release @in2(Consume, 1)
        aie.objectfifo.release @out2(Produce, 1)
      }
      aie.end
    } {stack_size = 1024 : i32}
    %core_0_3 = aie.core(%t03) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      scf.for %step = %c0 to %c8 step %c1 {
        %sin = aie.objectfifo.acquire @in3(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
        %ein = aie.objectfifo.subview.access %sin[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        %sout = aie.objectfifo.acquire @out3(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
        %eout = aie.objectfifo.subview.access %sout[0] : !aie.objectfifosubview<memref<16xi32>> -> memref<16xi32>
        scf.for %i = %c0 to %c16 step %c1 {
          %v = memref.load %ein[%i] : memref<16xi32>
          %a = memref.load %acc_0_3[%i] : memref<16xi32>
          %s = arith.addi %a, %v : i32
          memref.store %s, %acc_0_3[%i] : memref<16xi32>
          memref.store %s, %eout[%i] : memref<16xi32>
        }
        aie.objectfifo.release @in3(Consume, 1)
        aie.objectfifo.release @out3(Produce, 1)
      }
      aie.end
    } {stack_size = 1024 : i32}
    aie.runtime_sequence(%a: memref<128xi32>, %b: memref<128xi32>, %ra: memref<128xi32>, %rb: memref<128xi32>) {
      aiex.npu.dma_memcpy_nd(%ra[0, 0, 0, 0][1, 1, 1, 128][0, 0, 0, 1]) {id = 2 : i64, metadata = @out2, issue_token = true} : memref<128xi32>
      aiex.npu.dma_memcpy_nd(%rb[0, 0, 0, 0][1, 1, 1, 128][0, 0, 0, 1]) {id = 3 : i64, metadata = @out3, issue_token = true} : memref<128xi32>
      aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 128][0, 0, 0, 1]) {id = 0 : i64, metadata = @in2} : memref<128xi32>
      aiex.npu.dma_memcpy_nd(%b[0, 0, 0, 0][1, 1, 1, 128][0, 0, 0, 1]) {id = 1 : i64, metadata = @in3} : memref<128xi32>
      aiex.npu.dma_wait {symbol = @out2}
      aiex.npu.dma_wait {symbol = @out3}
    }
  }
}
