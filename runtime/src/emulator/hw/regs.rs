//! The AIE-ML register map the runtime sequence writes through (`aiex.npu.write32`, `maskwrite32`,
//! `blockwrite`, `writebd`): buffer descriptors, channel control and start queues, lock values and data
//! memory. Addresses carry the column in bits 25 and up and the row in bits 20..25.

use super::{Dir, TileId};

pub const TILE_OFFSET_MASK: u64 = (1 << 20) - 1;

pub fn tile_address(col: u64, row: u64, offset: u64) -> u64 {
    (col << 25) | (row << 20) | offset
}

pub fn split_address(a: u64) -> (TileId, u64) {
    (
        TileId {
            col: (a >> 25) as i64,
            row: ((a >> 20) & 0x1F) as i64,
        },
        a & TILE_OFFSET_MASK,
    )
}

/// Words per buffer descriptor.
pub fn bd_words(t: TileId) -> usize {
    if t.is_shim() || t.is_mem() {
        8
    } else {
        6
    }
}

pub fn bd_count(t: TileId) -> u64 {
    if t.is_mem() {
        48
    } else {
        16
    }
}

fn bd_base(t: TileId) -> u64 {
    if t.is_mem() {
        0xA0000
    } else {
        0x1D000
    }
}

fn chan_base(t: TileId) -> u64 {
    if t.is_mem() {
        0xA0600
    } else if t.is_shim() {
        0x1D200
    } else {
        0x1DE00
    }
}

fn chans(t: TileId) -> u32 {
    if t.is_mem() {
        6
    } else {
        2
    }
}

fn lock_base(t: TileId) -> u64 {
    if t.is_mem() {
        0xC0000
    } else if t.is_shim() {
        0x14000
    } else {
        0x1F000
    }
}

pub fn lock_count(t: TileId) -> u64 {
    if t.is_mem() {
        64
    } else {
        16
    }
}

/// Data memory size of a tile's own memory, in bytes.
pub fn data_memory(t: TileId) -> u64 {
    if t.is_mem() {
        512 << 10
    } else if t.is_shim() {
        0
    } else {
        64 << 10
    }
}

/// Address of a channel's task queue register.
pub fn queue_address(t: TileId, dir: Dir, ch: u32) -> Option<u64> {
    if ch >= chans(t) {
        return None;
    }
    let k = match dir {
        Dir::S2MM => ch,
        Dir::MM2S => chans(t) + ch,
    } as u64;
    Some(tile_address(t.col as u64, t.row as u64, chan_base(t) + 8 * k + 4))
}

/// What a register offset of a tile is, as far as the model goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// Word `word` of buffer descriptor `bd`.
    Bd {
        bd: u32,
        word: usize,
    },
    Queue {
        dir: Dir,
        ch: u32,
    },
    Ctrl {
        dir: Dir,
        ch: u32,
    },
    Lock {
        id: u32,
    },
    /// A byte address in the tile's data memory.
    Memory {
        byte: u64,
    },
}

pub fn decode(t: TileId, offset: u64) -> Option<Reg> {
    if offset < data_memory(t) {
        return Some(Reg::Memory { byte: offset });
    }
    let bb = bd_base(t);
    if offset >= bb && offset < bb + 0x20 * bd_count(t) {
        let bd = (offset - bb) / 0x20;
        let word = ((offset - bb) % 0x20) / 4;
        return (word < bd_words(t) as u64).then_some(Reg::Bd {
            bd: bd as u32,
            word: word as usize,
        });
    }
    let cb = chan_base(t);
    let n = chans(t) as u64 * 2;
    if offset >= cb && offset < cb + 8 * n {
        let k = ((offset - cb) / 8) as u32;
        let (dir, ch) = if k < chans(t) { (Dir::S2MM, k) } else { (Dir::MM2S, k - chans(t)) };
        return Some(if (offset - cb) % 8 == 4 {
            Reg::Queue { dir, ch }
        } else {
            Reg::Ctrl { dir, ch }
        });
    }
    let lb = lock_base(t);
    if offset >= lb && offset < lb + 0x10 * lock_count(t) && (offset - lb).is_multiple_of(0x10) {
        return Some(Reg::Lock {
            id: ((offset - lb) / 0x10) as u32,
        });
    }
    None
}

/// The BD register words `aiex.npu.writebd` stands for (field layout of the AIE-ML register reference).
pub fn encode_writebd(t: TileId, f: &dyn Fn(&str) -> i64) -> Vec<u32> {
    let v = |k: &str, bits: u32| (f(k) as u32) & ((1u64 << bits) - 1) as u32;
    let mut w = vec![0u32; bd_words(t)];
    if t.is_shim() {
        w[0] = f("buffer_length") as u32;
        w[1] = f("buffer_offset") as u32;
        w[2] = v("enable_packet", 1) << 30 | v("out_of_order_id", 6) << 24 | v("packet_id", 5) << 19 | v("packet_type", 3) << 16;
        w[3] = v("d0_size", 10) << 20 | v("d0_stride", 20);
        w[4] = v("d1_size", 10) << 20 | v("d1_stride", 20);
        w[5] = v("d2_stride", 20);
        w[6] = v("iteration_current", 6) << 26 | v("iteration_size", 6) << 20 | v("iteration_stride", 20);
        w[7] = v("next_bd", 4) << 27
            | v("use_next_bd", 1) << 26
            | v("valid_bd", 1) << 25
            | v("lock_rel_val", 7) << 18
            | v("lock_rel_id", 4) << 13
            | v("lock_acq_enable", 1) << 12
            | v("lock_acq_val", 7) << 5
            | v("lock_acq_id", 4);
    } else if t.is_mem() {
        w[0] = v("enable_packet", 1) << 31 | v("packet_type", 3) << 28 | v("packet_id", 5) << 23 | v("out_of_order_id", 6) << 17 | v("buffer_length", 17);
        w[1] = v("d0_zero_before", 6) << 26 | v("next_bd", 6) << 20 | v("use_next_bd", 1) << 19 | v("buffer_offset", 19);
        w[2] = v("d0_size", 10) << 17 | v("d0_stride", 17);
        w[3] = v("d1_zero_before", 5) << 27 | v("d1_size", 10) << 17 | v("d1_stride", 17);
        w[4] = v("d2_zero_before", 4) << 27 | v("d2_size", 10) << 17 | v("d2_stride", 17);
        w[5] = v("d2_zero_after", 4) << 28 | v("d1_zero_after", 5) << 23 | v("d0_zero_after", 6) << 17;
        w[6] = v("iteration_current", 6) << 23 | v("iteration_size", 6) << 17 | v("iteration_stride", 17);
        w[7] = v("valid_bd", 1) << 31
            | v("lock_rel_val", 7) << 24
            | v("lock_rel_id", 8) << 16
            | v("lock_acq_enable", 1) << 15
            | v("lock_acq_val", 7) << 8
            | v("lock_acq_id", 8);
    } else {
        w[0] = ((f("buffer_offset") as u32 / 4) & 0x3FFF) << 14 | v("buffer_length", 14);
        w[1] = v("enable_packet", 1) << 30 | v("out_of_order_id", 6) << 24 | v("packet_id", 5) << 19 | v("packet_type", 3) << 16;
        w[2] = v("d1_stride", 13) << 13 | v("d0_stride", 13);
        w[3] = v("d1_size", 8) << 21 | v("d0_size", 8) << 13 | v("d2_stride", 13);
        w[4] = v("iteration_current", 6) << 19 | v("iteration_size", 6) << 13 | v("iteration_stride", 13);
        w[5] = v("next_bd", 4) << 27
            | v("use_next_bd", 1) << 26
            | v("valid_bd", 1) << 25
            | v("lock_rel_val", 7) << 18
            | v("lock_rel_id", 4) << 13
            | v("lock_acq_enable", 1) << 12
            | v("lock_acq_val", 7) << 5
            | v("lock_acq_id", 4);
    }
    w
}

/// A buffer descriptor read back from its register words; addresses and lock ids are left for the caller to
/// resolve against the tile's buffers and locks.
#[derive(Debug, Clone, Default)]
pub struct RawBd {
    /// Byte address (tile memory; for the shim, the low and high address words).
    pub address: u64,
    /// 32-bit words.
    pub len: u64,
    /// (wrap, step) in words, d0 first; wrap 0: the dimension is not used.
    pub dims: [(u64, u64); 3],
    /// Zero padding per dimension (d0 first): before, after.
    pub pads: [(u64, u64); 3],
    pub iteration: (u64, u64, u64),
    pub packet: Option<(u8, u8)>,
    pub next: Option<u32>,
    pub valid: bool,
    /// (lock id, signed value).
    pub acquire: Option<(u32, i64)>,
    pub release: Option<(u32, i64)>,
}

fn signed7(v: u32) -> i64 {
    let v = (v & 0x7F) as i64;
    if v >= 64 {
        v - 128
    } else {
        v
    }
}

pub fn decode_bd(t: TileId, w: &[u32]) -> RawBd {
    let b = |x: u32, lo: u32, n: u32| ((x >> lo) & ((1u64 << n) - 1) as u32) as u64;
    let mut r = RawBd::default();
    let (lock_word, acq_id_bits, rel_id_lo, rel_id_bits, rel_val_lo, acq_en_bit, acq_val_lo);
    if t.is_shim() {
        r.len = w[0] as u64;
        r.address = w[1] as u64 | (b(w[2], 0, 16) << 32);
        if b(w[2], 30, 1) == 1 {
            r.packet = Some((b(w[2], 16, 3) as u8, b(w[2], 19, 5) as u8));
        }
        r.dims = [(b(w[3], 20, 10), b(w[3], 0, 20)), (b(w[4], 20, 10), b(w[4], 0, 20)), (0, b(w[5], 0, 20))];
        r.iteration = (b(w[6], 26, 6), b(w[6], 20, 6), b(w[6], 0, 20));
        if b(w[7], 26, 1) == 1 {
            r.next = Some(b(w[7], 27, 4) as u32);
        }
        r.valid = b(w[7], 25, 1) == 1;
        lock_word = w[7];
        (acq_id_bits, rel_id_lo, rel_id_bits, rel_val_lo, acq_en_bit, acq_val_lo) = (4, 13, 4, 18, 12, 5);
    } else if t.is_mem() {
        r.len = b(w[0], 0, 17);
        if b(w[0], 31, 1) == 1 {
            r.packet = Some((b(w[0], 28, 3) as u8, b(w[0], 23, 5) as u8));
        }
        r.address = b(w[1], 0, 19) * 4;
        if b(w[1], 19, 1) == 1 {
            r.next = Some(b(w[1], 20, 6) as u32);
        }
        r.dims = [
            (b(w[2], 17, 10), b(w[2], 0, 17)),
            (b(w[3], 17, 10), b(w[3], 0, 17)),
            (b(w[4], 17, 10), b(w[4], 0, 17)),
        ];
        r.pads = [
            (b(w[1], 26, 6), b(w[5], 17, 6)),
            (b(w[3], 27, 5), b(w[5], 23, 5)),
            (b(w[4], 27, 4), b(w[5], 28, 4)),
        ];
        r.iteration = (b(w[6], 23, 6), b(w[6], 17, 6), b(w[6], 0, 17));
        r.valid = b(w[7], 31, 1) == 1;
        let x = w[7];
        if b(x, 15, 1) == 1 {
            r.acquire = Some((b(x, 0, 8) as u32, signed7(b(x, 8, 7) as u32)));
        }
        let rv = signed7(b(x, 24, 7) as u32);
        if rv != 0 {
            r.release = Some((b(x, 16, 8) as u32, rv));
        }
        return r;
    } else {
        r.len = b(w[0], 0, 14);
        r.address = b(w[0], 14, 14) * 4;
        if b(w[1], 30, 1) == 1 {
            r.packet = Some((b(w[1], 16, 3) as u8, b(w[1], 19, 5) as u8));
        }
        r.dims = [(b(w[3], 13, 8), b(w[2], 0, 13)), (b(w[3], 21, 8), b(w[2], 13, 13)), (0, b(w[3], 0, 13))];
        r.iteration = (b(w[4], 19, 6), b(w[4], 13, 6), b(w[4], 0, 13));
        if b(w[5], 26, 1) == 1 {
            r.next = Some(b(w[5], 27, 4) as u32);
        }
        r.valid = b(w[5], 25, 1) == 1;
        lock_word = w[5];
        (acq_id_bits, rel_id_lo, rel_id_bits, rel_val_lo, acq_en_bit, acq_val_lo) = (4, 13, 4, 18, 12, 5);
    }
    let x = lock_word;
    if b(x, acq_en_bit, 1) == 1 {
        r.acquire = Some((b(x, 0, acq_id_bits) as u32, signed7(b(x, acq_val_lo, 7) as u32)));
    }
    let rv = signed7(b(x, rel_val_lo, 7) as u32);
    if rv != 0 {
        r.release = Some((b(x, rel_id_lo, rel_id_bits) as u32, rv));
    }
    r
}

/// Which tile's lock a descriptor's lock id names: memory tiles reach their west neighbour (ids 0..64), their
/// own locks (64..128) and their east neighbour (128..192); other tiles their own.
pub fn lock_target(t: TileId, id: u32) -> (TileId, u32) {
    if t.is_mem() {
        match id {
            0..=63 => (TileId { col: t.col - 1, row: t.row }, id),
            64..=127 => (t, id - 64),
            _ => (TileId { col: t.col + 1, row: t.row }, id - 128),
        }
    } else {
        (t, id)
    }
}

pub fn describe(t: TileId, offset: u64) -> String {
    match decode(t, offset) {
        Some(Reg::Bd { bd, word }) => format!("word {word} of buffer descriptor {bd} of tile {t}"),
        Some(Reg::Queue { dir, ch }) => format!("the {} {ch} task queue of tile {t}", dir.name()),
        Some(Reg::Ctrl { dir, ch }) => format!("the {} {ch} control register of tile {t}", dir.name()),
        Some(Reg::Lock { id }) => format!("the value of lock {id} of tile {t}"),
        Some(Reg::Memory { byte }) => format!("data memory byte {byte} of tile {t}"),
        None => format!("register {offset:#x} of tile {t}, which the emulator does not model"),
    }
}
