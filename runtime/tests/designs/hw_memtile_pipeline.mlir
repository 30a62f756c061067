// Hardware level: shim -> memory tile -> compute tile -> memory tile -> shim, with semaphore locks, a
// ping-pong pair of buffers in the compute tile, a strided memory-tile BD and a core that adds 7.
module {
  aie.device(npu1_1col) {
    %t00 = aie.tile(0, 0)
    %t01 = aie.tile(0, 1)
    %t02 = aie.tile(0, 2)
    %in0 = aie.buffer(%t02) {sym_name = "in0"} : memref<8xi32>
    %in1 = aie.buffer(%t02) {sym_name = "in1"} : memref<8xi32>
    %out = aie.buffer(%t02) {sym_name = "out"} : memref<8xi32>
    %bias = aie.buffer(%t02) {sym_name = "bias"} : memref<1xi32> = dense<7>
    %in_free = aie.lock(%t02, 0) {init = 2 : i32, sym_name = "in_free"}
    %in_full = aie.lock(%t02, 1) {init = 0 : i32, sym_name = "in_full"}
    %out_free = aie.lock(%t02, 2) {init = 1 : i32, sym_name = "out_free"}
    %out_full = aie.lock(%t02, 3) {init = 0 : i32, sym_name = "out_full"}
    %m_in = aie.buffer(%t01) {sym_name = "m_in"} : memref<32xi32>
    %m_out = aie.buffer(%t01) {sym_name = "m_out"} : memref<32xi32>
    %m_in_free = aie.lock(%t01, 0) {init = 1 : i32}
    %m_in_full = aie.lock(%t01, 1) {init = 0 : i32}
    %m_out_free = aie.lock(%t01, 2) {init = 1 : i32}
    %m_out_full = aie.lock(%t01, 3) {init = 0 : i32}
    aie.flow(%t00, DMA : 0, %t01, DMA : 0)
    aie.flow(%t01, DMA : 0, %t02, DMA : 0)
    aie.flow(%t02, DMA : 0, %t01, DMA : 1)
    aie.flow(%t01, DMA : 1, %t00, DMA : 0)
    %core = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %b = memref.load %bias[%c0] : memref<1xi32>
      scf.for %i = %c0 to %c4 step %c2 {
        aie.use_lock(%in_full, AcquireGreaterEqual, 1)
        aie.use_lock(%out_free, AcquireGreaterEqual, 1)
        scf.for %j = %c0 to %c8 step %c1 {
          %v = memref.load %in0[%j] : memref<8xi32>
          %w = arith.addi %v, %b : i32
          memref.store %w, %out[%j] : memref<8xi32>
        }
        aie.use_lock(%in_free, Release, 1)
        aie.use_lock(%out_full, Release, 1)
        aie.use_lock(%in_full, AcquireGreaterEqual, 1)
        aie.use_lock(%out_free, AcquireGreaterEqual, 1)
        scf.for %j = %c0 to %c8 step %c1 {
          %v = memref.load %in1[%j] : memref<8xi32>
          %w = arith.addi %v, %b : i32
          memref.store %w, %out[%j] : memref<8xi32>
        }
        aie.use_lock(%in_free, Release, 1)
        aie.use_lock(%out_full, Release, 1)
      }
      aie.end
    }
    %mem = aie.mem(%t02) {
      %0 = aie.dma_start(S2MM, 0, ^bb1, ^bb3)
    ^bb1:
      aie.use_lock(%in_free, AcquireGreaterEqual, 1)
      aie.dma_bd(%in0 : memref<8xi32>, 0, 8)
      aie.use_lock(%in_full, Release, 1)
      aie.next_bd ^bb2
    ^bb2:
      aie.use_lock(%in_free, AcquireGreaterEqual, 1)
      aie.dma_bd(%in1 : memref<8xi32>, 0, 8)
      aie.use_lock(%in_full, Release, 1)
      aie.next_bd ^bb1
    ^bb3:
      %1 = aie.dma_start(MM2S, 0, ^bb4, ^bb5)
    ^bb4:
      aie.use_lock(%out_full, AcquireGreaterEqual, 1)
      aie.dma_bd(%out : memref<8xi32>, 0, 8)
      aie.use_lock(%out_free, Release, 1)
      aie.next_bd ^bb4
    ^bb5:
      aie.end
    }
    %mt = aie.memtile_dma(%t01) {
      // Receives 32 values, sends them as the transpose of a 4x8 matrix (8x4).
      %0 = aie.dma(S2MM, 0) [{
        aie.use_lock(%m_in_free, AcquireGreaterEqual, 1)
        aie.dma_bd(%m_in : memref<32xi32>, 0, 32)
        aie.use_lock(%m_in_full, Release, 1)
      }]
      %1 = aie.dma(MM2S, 0) [{
        aie.use_lock(%m_in_full, AcquireGreaterEqual, 1)
        aie.dma_bd(%m_in : memref<32xi32>, 0, 32, [<size = 8, stride = 1>, <size = 4, stride = 8>])
        aie.use_lock(%m_in_free, Release, 1)
      }]
      %2 = aie.dma(S2MM, 1) [{
        aie.use_lock(%m_out_free, AcquireGreaterEqual, 1)
        aie.dma_bd(%m_out : memref<32xi32>, 0, 32)
        aie.use_lock(%m_out_full, Release, 1)
      }]
      %3 = aie.dma(MM2S, 1) [{
        aie.use_lock(%m_out_full, AcquireGreaterEqual, 1)
        aie.dma_bd(%m_out : memref<32xi32>, 0, 32)
        aie.use_lock(%m_out_free, Release, 1)
      }]
      aie.end
    }
    aie.shim_dma_allocation @to_array(%t00, MM2S, 0)
    aie.shim_dma_allocation @from_array(%t00, S2MM, 0)
    aie.runtime_sequence(%a: memref<32xi32>, %c: memref<32xi32>) {
      aiex.npu.dma_memcpy_nd(%c[0, 0, 0, 0][1, 1, 1, 32][0, 0, 0, 1]) {id = 1 : i64, metadata = @from_array, issue_token = true} : memref<32xi32>
      aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 32][0, 0, 0, 1]) {id = 0 : i64, metadata = @to_array} : memref<32xi32>
      aiex.npu.dma_wait {symbol = @from_array}
    }
  }
}
