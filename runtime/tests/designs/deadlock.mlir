// Two cores that acquire two FIFOs in inverted order: each waits for the other forever.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    %t03 = aie.tile(0, 3)
    aie.objectfifo @in(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @x(%t02, {%t03}, 1 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @y(%t03, {%t02}, 1 : i32) : !aie.objectfifo<memref<16xi32>>
    aie.objectfifo @out(%t03, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xi32>>
    %core02 = aie.core(%t02) {
      %s0 = aie.objectfifo.acquire @in(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
      %s1 = aie.objectfifo.acquire @y(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
      %s2 = aie.objectfifo.acquire @x(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
      aie.objectfifo.release @x(Produce, 1)
      aie.objectfifo.release @y(Consume, 1)
      aie.objectfifo.release @in(Consume, 1)
      aie.end
    }
    %core03 = aie.core(%t03) {
      %s0 = aie.objectfifo.acquire @x(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>
      %s1 = aie.objectfifo.acquire @y(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
      %s2 = aie.objectfifo.acquire @out(Produce, 1) : !aie.objectfifosubview<memref<16xi32>>
      aie.objectfifo.release @out(Produce, 1)
      aie.objectfifo.release @y(Produce, 1)
      aie.objectfifo.release @x(Consume, 1)
      aie.end
    }
    aie.runtime_sequence(%in: memref<16xi32>, %out: memref<16xi32>) {
      aiex.npu.dma_memcpy_nd(%in[0, 0, 0, 0][1, 1, 1, 16][0, 0, 0, 1]) {id = 0 : i64, metadata = @in} : memref<16xi32>
      aiex.npu.dma_memcpy_nd(%out[0, 0, 0, 0][1, 1, 1, 16][0, 0, 0, 1]) {id = 1 : i64, metadata = @out, issue_token = true} : memref<16xi32>
      aiex.npu.dma_wait {symbol = @out}
    }
  }
}
