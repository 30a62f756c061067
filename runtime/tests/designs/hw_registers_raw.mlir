// Two independent paths.
// A (arg 0 -> arg 1): a core adds a table the runtime sequence writes into its buffer (blockwrite and
// maskwrite32 addressed by buffer symbol) to 8 words it copies out of its input buffer (memref.copy, tile
// memory space 2); the input descriptor uses the `len` attribute; the core's tile receives through two
// chains started on one channel, which run in order. The core writes the table before the sequence starts.
// B (arg 2 -> arg 3): a memory tile with no aie.buffer at all, programmed by writebd / push_queue at
// byte addresses of its data memory.
module {
  aie.device(npu1_1col) {
    %t00 = aie.tile(0, 0)
    %t01 = aie.tile(0, 1)
    %t02 = aie.tile(0, 2)
    %lo = aie.buffer(%t02) {sym_name = "lo"} : memref<4xi32, 2 : i32>
    %hi = aie.buffer(%t02) {sym_name = "hi"} : memref<4xi32, 2 : i32>
    %table = aie.buffer(%t02) {sym_name = "table"} : memref<8xi32, 2 : i32>
    %res = aie.buffer(%t02) {sym_name = "res"} : memref<8xi32, 2 : i32>
    %lo_full = aie.lock(%t02, 0) {init = 0 : i32, sym_name = "lo_full"}
    %hi_full = aie.lock(%t02, 1) {init = 0 : i32, sym_name = "hi_full"}
    %res_full = aie.lock(%t02, 2) {init = 0 : i32, sym_name = "res_full"}
    aie.flow(%t00, DMA : 0, %t02, DMA : 0)
    aie.flow(%t02, DMA : 0, %t00, DMA : 0)
    aie.flow(%t00, DMA : 1, %t01, DMA : 0)
    aie.flow(%t01, DMA : 0, %t00, DMA : 1)
    %tmp = aie.buffer(%t02) {sym_name = "tmp"} : memref<4xi32, 2 : i32>
    %core = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c7 = arith.constant 7 : index
      %junk = arith.constant 999 : i32
      // Before the host's sequence runs: its blockwrite of the table comes later and wins.
      memref.store %junk, %table[%c7] : memref<8xi32, 2 : i32>
      aie.use_lock(%lo_full, AcquireGreaterEqual, 1)
      aie.use_lock(%hi_full, AcquireGreaterEqual, 1)
      memref.copy %lo, %tmp : memref<4xi32, 2 : i32> to memref<4xi32, 2 : i32>
      scf.for %i = %c0 to %c4 step %c1 {
        %x = memref.load %tmp[%i] : memref<4xi32, 2 : i32>
        %t = memref.load %table[%i] : memref<8xi32, 2 : i32>
        %s = arith.addi %x, %t : i32
        memref.store %s, %res[%i] : memref<8xi32, 2 : i32>
        %j = arith.addi %i, %c4 : index
        %y = memref.load %hi[%i] : memref<4xi32, 2 : i32>
        %u = memref.load %table[%j] : memref<8xi32, 2 : i32>
        %v = arith.addi %y, %u : i32
        memref.store %v, %res[%j] : memref<8xi32, 2 : i32>
      }
      aie.use_lock(%res_full, Release, 1)
      aie.end
    }
    %mem = aie.mem(%t02) {
      %a = aie.dma_start(S2MM, 0, ^lo, ^second)
    ^lo:
      aie.dma_bd(%lo : memref<4xi32, 2 : i32>) {len = 4 : i32}
      aie.use_lock(%lo_full, Release, 1)
      aie.next_bd ^stop
    ^second:
      %b = aie.dma_start(S2MM, 0, ^hi, ^out)
    ^hi:
      aie.dma_bd(%hi : memref<4xi32, 2 : i32>, 0, 4)
      aie.use_lock(%hi_full, Release, 1)
      aie.next_bd ^stop
    ^out:
      %c = aie.dma_start(MM2S, 0, ^send, ^stop)
    ^send:
      aie.use_lock(%res_full, AcquireGreaterEqual, 1)
      aie.dma_bd(%res : memref<8xi32, 2 : i32>, 0, 8)
      aie.next_bd ^stop
    ^stop:
      aie.end
    }
    aie.shim_dma_allocation @a_in (%t00, MM2S, 0)
    aie.shim_dma_allocation @a_out (%t00, S2MM, 0)
    aie.shim_dma_allocation @b_in (%t00, MM2S, 1)
    aie.shim_dma_allocation @b_out (%t00, S2MM, 1)
    memref.global "private" constant @tab : memref<8xi32> = dense<[10, 20, 30, 40, 50, 60, 70, 80]>
    aie.runtime_sequence(%a0 : memref<8xi32>, %a1 : memref<8xi32>, %b0 : memref<16xi32>, %b1 : memref<16xi32>) {
      %g = memref.get_global @tab : memref<8xi32>
      aiex.npu.blockwrite(%g) {buffer = @table, address = 0 : ui32} : memref<8xi32>
      aiex.npu.maskwrite32 {buffer = @table, address = 2 : ui32, value = 256 : ui32, mask = 3840 : ui32}
      aiex.npu.dma_memcpy_nd(%a0[0, 0, 0, 0][1, 1, 1, 8][0, 0, 0, 1]) {id = 0 : i64, metadata = @a_in} : memref<8xi32>
      aiex.npu.dma_memcpy_nd(%a1[0, 0, 0, 0][1, 1, 1, 8][0, 0, 0, 1]) {id = 1 : i64, metadata = @a_out, issue_token = true} : memref<8xi32>
      aiex.npu.writebd {bd_id = 0 : i32, buffer_length = 16 : i32, buffer_offset = 0 : i32, column = 0 : i32, row = 1 : i32, d0_size = 0 : i32, d0_stride = 0 : i32, d1_size = 0 : i32, d1_stride = 0 : i32, d2_stride = 0 : i32, iteration_current = 0 : i32, iteration_size = 0 : i32, iteration_stride = 0 : i32, next_bd = 0 : i32, use_next_bd = 0 : i32, valid_bd = 1 : i32, lock_acq_enable = 0 : i32, lock_acq_id = 0 : i32, lock_acq_val = 0 : i32, lock_rel_id = 0 : i32, lock_rel_val = 0 : i32, enable_packet = 0 : i32, out_of_order_id = 0 : i32, packet_id = 0 : i32, packet_type = 0 : i32}
      aiex.npu.push_queue (0, 1, S2MM : 0) {bd_id = 0 : i32, issue_token = true, repeat_count = 0 : i32}
      aiex.npu.dma_memcpy_nd(%b0[0, 0, 0, 0][1, 1, 1, 16][0, 0, 0, 1]) {id = 2 : i64, metadata = @b_in} : memref<16xi32>
      aiex.npu.sync {channel = 0 : i32, column = 0 : i32, column_num = 1 : i32, direction = 0 : i32, row = 1 : i32, row_num = 1 : i32}
      aiex.npu.writebd {bd_id = 1 : i32, buffer_length = 16 : i32, buffer_offset = 0 : i32, column = 0 : i32, row = 1 : i32, d0_size = 4 : i32, d0_stride = 3 : i32, d1_size = 4 : i32, d1_stride = 0 : i32, d2_stride = 0 : i32, iteration_current = 0 : i32, iteration_size = 0 : i32, iteration_stride = 0 : i32, next_bd = 0 : i32, use_next_bd = 0 : i32, valid_bd = 1 : i32, lock_acq_enable = 0 : i32, lock_acq_id = 0 : i32, lock_acq_val = 0 : i32, lock_rel_id = 0 : i32, lock_rel_val = 0 : i32, enable_packet = 0 : i32, out_of_order_id = 0 : i32, packet_id = 0 : i32, packet_type = 0 : i32}
      aiex.npu.push_queue (0, 1, MM2S : 0) {bd_id = 1 : i32, issue_token = true, repeat_count = 0 : i32}
      aiex.npu.dma_memcpy_nd(%b1[0, 0, 0, 0][1, 1, 1, 16][0, 0, 0, 1]) {id = 3 : i64, metadata = @b_out, issue_token = true} : memref<16xi32>
      aiex.npu.dma_wait {symbol = @b_out}
      aiex.npu.dma_wait {symbol = @a_out}
    }
  }
}
