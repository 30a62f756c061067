// bf16 through a core: y = bf16(x * 1.5) on one output, z = exp(x) in f32 on the other.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @x(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<16xbf16>>
    aie.objectfifo @y(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xbf16>>
    aie.objectfifo @z(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<16xf32>>
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c16 = arith.constant 16 : index
      %scale = arith.constant 1.5 : f32
      scf.for %step = %c0 to %c4 step %c1 {
        %sx = aie.objectfifo.acquire @x(Consume, 1) : !aie.objectfifosubview<memref<16xbf16>>
        %ex = aie.objectfifo.subview.access %sx[0] : !aie.objectfifosubview<memref<16xbf16>> -> memref<16xbf16>
        %sy = aie.objectfifo.acquire @y(Produce, 1) : !aie.objectfifosubview<memref<16xbf16>>
        %ey = aie.objectfifo.subview.access %sy[0] : !aie.objectfifosubview<memref<16xbf16>> -> memref<16xbf16>
        %sz = aie.objectfifo.acquire @z(Produce, 1) : !aie.objectfifosubview<memref<16xf32>>
        %ez = aie.objectfifo.subview.access %sz[0] : !aie.objectfifosubview<memref<16xf32>> -> memref<16xf32>
        scf.for %i = %c0 to %c16 step %c1 {
          %v = memref.load %ex[%i] : memref<16xbf16>
          %f = arith.extf %v : bf16 to f32
          %s = arith.mulf %f, %scale : f32
          %b = arith.truncf %s : f32 to bf16
          memref.store %b, %ey[%i] : memref<16xbf16>
          %e = math.exp %f : f32
          memref.store %e, %ez[%i] : memref<16xf32>
        }
        aie.objectfifo.release @x(Consume, 1)
        aie.objectfifo.release @y(Produce, 1)
        aie.objectfifo.release @z(Produce, 1)
      }
      aie.end
    }
    aie.runtime_sequence(%x: memref<64xbf16>, %y: memref<64xbf16>, %z: memref<64xf32>) {
      aiex.npu.dma_memcpy_nd(%x[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 0 : i64, metadata = @x} : memref<64xbf16>
      aiex.npu.dma_memcpy_nd(%y[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 1 : i64, metadata = @y, issue_token = true} : memref<64xbf16>
      aiex.npu.dma_memcpy_nd(%z[0, 0, 0, 0][1, 1, 1, 64][0, 0, 0, 1]) {id = 2 : i64, metadata = @z, issue_token = true} : memref<64xf32>
      aiex.npu.dma_wait {symbol = @y}
      aiex.npu.dma_wait {symbol = @z}
    }
  }
}
