//! Mutated checkpoints: a CTranslate2 file with corrupted tensor headers (names, ranks, shapes,
//! dtypes, byte counts) loads or fails with an error, for both loaders (f32 streams the file,
//! int8 maps it); never a panic, an abort or an allocation the file cannot back.
//!
//! `AIEC_FUZZ_CASES=N` sets the number of mutated files (default 120).

use std::path::Path;

use whisper::model::{ComputeType, Model};

/// The byte ranges of every tensor header (name through byte count) of a CTranslate2 file.
fn header_ranges(file: &[u8]) -> Vec<std::ops::Range<usize>> {
    let u16_at = |at: usize| u16::from_le_bytes([file[at], file[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 4;
    at += 2 + u16_at(at); // spec name
    at += 4; // revision
    let count = u32_at(at);
    at += 4;
    let mut ranges = Vec::new();
    for _ in 0..count {
        let start = at;
        at += 2 + u16_at(at);
        let rank = file[at] as usize;
        at += 1 + 4 * rank + 1;
        let nbytes = u32_at(at);
        at += 4;
        ranges.push(start..at);
        at += nbytes;
    }
    ranges
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_checkpoint_headers_load_or_fail_cleanly() {
    let model = whisper::assets::assets_dir().join("whisper-tiny.en");
    let full = std::fs::read(model.join("model.bin")).expect("assets: run scripts/fetch-assets.sh");
    let headers = header_ranges(&full);
    assert!(headers.len() > 100, "{} tensor headers", headers.len());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model.join("config.json"), dir.path().join("config.json")).unwrap();
    let cases: u64 = std::env::var("AIEC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let (mut loaded, mut failed) = (0, 0);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..cases {
        let mut bytes = full.clone();
        for _ in 0..1 + rng.below(3) {
            let h = &headers[rng.below(headers.len())];
            let at = h.start + rng.below(h.len());
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => bytes[at] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
        }
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &bytes).unwrap();
        let compute = if case % 3 == 0 { ComputeType::F32 } else { ComputeType::Int8 };
        match load(dir.path(), compute) {
            Ok(()) => loaded += 1,
            Err(message) => {
                assert!(!message.is_empty(), "case {case}: empty error");
                failed += 1;
            }
        }
    }
    eprintln!("{cases} mutated checkpoints: {loaded} loaded, {failed} failed with an error");
    assert!(failed > 0, "no mutation was caught");
}

fn load(dir: &Path, compute: ComputeType) -> Result<(), String> {
    Model::load_with(dir, compute).map(|_| ()).map_err(|e| e.to_string())
}
