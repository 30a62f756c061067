// An 8x16 by 16x8 i8 matrix product per element pair, accumulated in i32 with vector.contract on the
// 4x8x8 blocks of the AIE-ML int8 MAC; two products are streamed through the core.
module {
  aie.device(npu1_1col) {
    %shim = aie.tile(0, 0)
    %t02 = aie.tile(0, 2)
    aie.objectfifo @a(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<8x16xi8>>
    aie.objectfifo @b(%shim, {%t02}, 2 : i32) : !aie.objectfifo<memref<16x8xi8>>
    aie.objectfifo @c(%t02, {%shim}, 2 : i32) : !aie.objectfifo<memref<8x8xi32>>
    %core02 = aie.core(%t02) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      %z8 = arith.constant 0 : i8
      %z32 = arith.constant 0 : i32
      %zeros = arith.constant dense<0> : vector<4x8xi32>
      scf.for %step = %c0 to %c2 step %c1 {
        %sa = aie.objectfifo.acquire @a(Consume, 1) : !aie.objectfifosubview<memref<8x16xi8>>
        %ea = aie.objectfifo.subview.access %sa[0] : !aie.objectfifosubview<memref<8x16xi8>> -> memref<8x16xi8>
        %sb = aie.objectfifo.acquire @b(Consume, 1) : !aie.objectfifosubview<memref<16x8xi8>>
        %eb = aie.objectfifo.subview.access %sb[0] : !aie.objectfifosubview<memref<16x8xi8>> -> memref<16x8xi8>
        %sc = aie.objectfifo.acquire @c(Produce, 1) : !aie.objectfifosubview<memref<8x8xi32>>
        %ec = aie.objectfifo.subview.access %sc[0] : !aie.objectfifosubview<memref<8x8xi32>> -> memref<8x8xi32>
        scf.for %m = %c0 to %c8 step %c4 {
          %acc = scf.for %k = %c0 to %c16 step %c8 iter_args(%sum = %zeros) -> (vector<4x8xi32>) {
            %va = vector.transfer_read %ea[%m, %k], %z8 {in_bounds = [true, true]} : memref<8x16xi8>, vector<4x8xi8>
            %vb = vector.transfer_read %eb[%k, %c0], %z8 {in_bounds = [true, true]} : memref<16x8xi8>, vector<8x8xi8>
            %wa = arith.extsi %va : vector<4x8xi8> to vector<4x8xi32>
            %wb = arith.extsi %vb : vector<8x8xi8> to vector<8x8xi32>
            %next = vector.contract {indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (k, n)>, affine_map<(m, n, k) -> (m, n)>], iterator_types = ["parallel", "parallel", "reduction"], kind = #vector.kind<add>} %wa, %wb, %sum : vector<4x8xi32>, vector<8x8xi32> into vector<4x8xi32>
            scf.yield %next : vector<4x8xi32>
          }
          vector.transfer_write %acc, %ec[%m, %c0] {in_bounds = [true, true]} : vector<4x8xi32>, memref<8x8xi32>
        }
        aie.objectfifo.release @a(Consume, 1)
        aie.objectfifo.release @b(Consume, 1)
        aie.objectfifo.release @c(Produce, 1)
      }
      aie.end
    }
    aie.runtime_sequence(%a: memref<2x8x16xi8>, %b: memref<2x16x8xi8>, %c: memref<2x8x8xi32>) {
      aiex.npu.dma_memcpy_nd(%a[0, 0, 0, 0][1, 1, 1, 256][0, 0, 0, 1]) {id = 0 : i64, metadata = @a} : memref<2x8x16xi8>
      aiex.npu.dma_memcpy_nd(%b[0, 0, 0, 0][1, 1, 1, 256][0, 0, 0, 1]) {id = 1 : i64, metadata = @b} : memref<2x16x8xi8>
      aiex.npu.dma_memcpy_nd(%c[0, 0, 0, 0][1, 1, 1, 128][0, 0, 0, 1]) {id = 2 : i64, metadata = @c, issue_token = true} : memref<2x8x8xi32>
      aiex.npu.dma_wait {symbol = @c}
    }
  }
}
