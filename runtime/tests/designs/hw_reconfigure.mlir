// Three configurations run from one runtime sequence on views of its argument:
// @store puts 4 words into a memory-tile buffer and echoes them back; @recall, loaded next with a
// buffer of the same size and no initial value on that tile, sends what the memory still holds (twice,
// as two runs of one configuration); @add_hundred is an object-FIFO design driven by DMA tasks, adding a
// value the sequence writes into the core's buffer (rtp_write).
module {
  aie.device(npu1_1col) @main {
    aie.runtime_sequence @top(%io : memref<16xi32>) {
      aiex.configure @store {
        %v0 = memref.subview %io[0] [4] [1] : memref<16xi32> to memref<4xi32, strided<[1]>>
        %a0 = memref.reinterpret_cast %v0 to offset: [0], sizes: [4], strides: [1] : memref<4xi32, strided<[1]>> to memref<4xi32>
        aiex.run @store_seq (%a0) : (memref<4xi32>)
      }
      aiex.configure @recall {
        %v1 = memref.subview %io[4] [4] [1] : memref<16xi32> to memref<4xi32, strided<[1], offset: 4>>
        %a1 = memref.reinterpret_cast %v1 to offset: [0], sizes: [4], strides: [1] : memref<4xi32, strided<[1], offset: 4>> to memref<4xi32>
        aiex.run @recall_seq (%a1) : (memref<4xi32>)
        %v2 = memref.subview %io[8] [4] [1] : memref<16xi32> to memref<4xi32, strided<[1], offset: 8>>
        %a2 = memref.reinterpret_cast %v2 to offset: [0], sizes: [4], strides: [1] : memref<4xi32, strided<[1], offset: 8>> to memref<4xi32>
        aiex.run @recall_seq (%a2) : (memref<4xi32>)
      }
      aiex.configure @add_hundred {
        %v3 = memref.subview %io[12] [4] [1] : memref<16xi32> to memref<4xi32, strided<[1], offset: 12>>
        %a3 = memref.reinterpret_cast %v3 to offset: [0], sizes: [4], strides: [1] : memref<4xi32, strided<[1], offset: 12>> to memref<4xi32>
        aiex.run @add_seq (%a3) : (memref<4xi32>)
      }
    }
  }

  aie.device(npu1_1col) @store {
    %t00 = aie.tile(0, 0)
    %t01 = aie.tile(0, 1)
    %keep = aie.buffer(%t01) {sym_name = "keep"} : memref<4xi32>
    %full = aie.lock(%t01, 0) {init = 0 : i32, sym_name = "full"}
    aie.flow(%t00, DMA : 0, %t01, DMA : 0)
    aie.flow(%t01, DMA : 0, %t00, DMA : 0)
    %m = aie.memtile_dma(%t01) {
      %s = aie.dma_start(S2MM, 0, ^in, ^next)
    ^in:
      aie.dma_bd(%keep : memref<4xi32>, 0, 4)
      aie.use_lock(%full, Release, 1)
      aie.next_bd ^stop
    ^next:
      %o = aie.dma_start(MM2S, 0, ^out, ^stop)
    ^out:
      aie.use_lock(%full, AcquireGreaterEqual, 1)
      aie.dma_bd(%keep : memref<4xi32>, 0, 4)
      aie.next_bd ^stop
    ^stop:
      aie.end
    }
    aie.shim_dma_allocation @to_mem (%t00, MM2S, 0)
    aie.shim_dma_allocation @from_mem (%t00, S2MM, 0)
    aie.runtime_sequence @store_seq(%a : memref<4xi32>) {
      aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 4][0, 0, 0, 1]) {id = 0 : i64, metadata = @to_mem} : memref<4xi32>
      aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 4][0, 0, 0, 1]) {id = 1 : i64, metadata = @from_mem, issue_token = true} : memref<4xi32>
      aiex.npu.dma_wait {symbol = @from_mem}
    }
  }

  aie.device(npu1_1col) @recall {
    %t00 = aie.tile(0, 0)
    %t01 = aie.tile(0, 1)
    %old = aie.buffer(%t01) {sym_name = "old"} : memref<4xi32>
    aie.flow(%t01, DMA : 0, %t00, DMA : 0)
    %m = aie.memtile_dma(%t01) {
      %o = aie.dma_start(MM2S, 0, ^out, ^stop)
    ^out:
      aie.dma_bd(%old : memref<4xi32>, 0, 4)
      aie.next_bd ^stop
    ^stop:
      aie.end
    }
    aie.shim_dma_allocation @from_mem (%t00, S2MM, 0)
    aie.runtime_sequence @recall_seq(%a : memref<4xi32>) {
      %t = aiex.dma_configure_task_for @from_mem {
        aie.dma_bd(%a : memref<4xi32>, 0, 4)
        aie.end
      } {issue_token = true}
      aiex.dma_start_task(%t)
      aiex.dma_await_task(%t)
    }
  }

  aie.device(npu1_1col) @add_hundred {
    %t00 = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @in(%t00, {%t02}, 1 : i32) : !aie.objectfifo<memref<4xi32>>
    aie.objectfifo @out(%t02, {%t00}, 1 : i32) : !aie.objectfifo<memref<4xi32>>
    %rtp = aie.buffer(%t02) {sym_name = "rtp"} : memref<4xi32>
    aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c3 = arith.constant 3 : index
      %c4 = arith.constant 4 : index
      %si = aie.objectfifo.acquire @in(Consume, 1) : !aie.objectfifosubview<memref<4xi32>>
      %x = aie.objectfifo.subview.access %si[0] : !aie.objectfifosubview<memref<4xi32>> -> memref<4xi32>
      %so = aie.objectfifo.acquire @out(Produce, 1) : !aie.objectfifosubview<memref<4xi32>>
      %y = aie.objectfifo.subview.access %so[0] : !aie.objectfifosubview<memref<4xi32>> -> memref<4xi32>
      %c100 = memref.load %rtp[%c3] : memref<4xi32>
      scf.for %i = %c0 to %c4 step %c1 {
        %v = memref.load %x[%i] : memref<4xi32>
        %w = arith.addi %v, %c100 : i32
        memref.store %w, %y[%i] : memref<4xi32>
      }
      aie.objectfifo.release @in(Consume, 1)
      aie.objectfifo.release @out(Produce, 1)
      aie.end
    }
    aie.runtime_sequence @add_seq(%a : memref<4xi32>) {
      aiex.npu.load_pdi {device_ref = @add_hundred}
      aiex.npu.rtp_write(@rtp, 3, 100)
      %ti = aiex.dma_configure_task_for @in {
        aie.dma_bd(%a : memref<4xi32>, 0, 4)
        aie.end
      }
      %to = aiex.dma_configure_task_for @out {
        aie.dma_bd(%a : memref<4xi32>, 0, 4)
        aie.end
      } {issue_token = true}
      aiex.dma_start_task(%ti)
      aiex.dma_start_task(%to)
      aiex.dma_await_task(%to)
      aiex.dma_free_task(%ti)
    }
  }
}
