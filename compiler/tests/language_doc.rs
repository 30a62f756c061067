//! docs/language.md is tested: every code block marked `tile` in it is a complete kernel that
//! compiles for npu1 and npu2 and, run on the emulator with seeded random inputs, matches the
//! reference interpreter (every element within the reference's per-element error bound).
//! Every block marked `tile-error` must fail to compile with the message its `# error: TEXT`
//! comment line gives (a substring of the error's message or notes). `# error(npu1): TEXT` or
//! `# error(npu2): TEXT` expects the failure on that device only; the other device must compile
//! the block (and run it, as above). The test fails when the document has no such blocks.

use aiec::{compile_source, hostdata, CompileError, DeviceModel};
use aiec_runtime::artifact::ArgDirection;
use aiec_runtime::emulator::Emulator;
use std::path::PathBuf;

/// Kernels with more argument elements than this are compiled but not emulated.
const MAX_EMULATED_ELEMENTS: usize = 1 << 20;

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence in the document.
    line: usize,
    /// Marked `tile-error`: the block must fail to compile.
    expect_error: bool,
    /// The block's lines, after as many empty lines as precede them in the document, so that
    /// diagnostics name the document's own line numbers.
    text: String,
}

fn doc() -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/language.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ("docs/language.md".to_string(), text)
}

/// The code blocks marked `tile` or `tile-error` in a Markdown text, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_end();
        match &mut open {
            None => {
                let info = trimmed.strip_prefix("```").map(str::trim);
                if let Some(kind @ ("tile" | "tile-error")) = info {
                    open = Some(Block {
                        line: i + 1,
                        expect_error: kind == "tile-error",
                        text: "\n".repeat(i + 1),
                    });
                }
            }
            Some(b) => {
                if trimmed == "```" {
                    out.push(open.take().expect("a block is open"));
                } else {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
            }
        }
    }
    if let Some(b) = open {
        panic!("docs/language.md:{}: the ```tile block is never closed", b.line);
    }
    out
}

/// The error a block expects on `device` (None: it must compile there).
fn expected_error(block: &Block, device: &str) -> Option<String> {
    let mut any = None;
    for line in block.text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix(&format!("# error({device}):")) {
            return Some(rest.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("# error:") {
            any = Some(rest.trim().to_string());
        }
    }
    any
}

/// The error's message and notes (not the rendered source lines, which would also show the
/// `# error:` comment).
fn error_words(e: &CompileError) -> String {
    let d = e.diagnostic();
    let mut s = d.message.clone();
    for n in &d.notes {
        s.push('\n');
        s.push_str(n);
    }
    s
}

/// Compiles, emulates and compares with the reference. Err: why not (for the failure list);
/// Ok(false): compiled but too large to emulate here.
fn run_block(name: &str, text: &str, device: &DeviceModel) -> Result<bool, String> {
    let compiled = compile_source(name, text, device).map_err(|e| format!("does not compile for {}:\n{e}", device.name))?;
    let elements: usize = compiled.json.arguments.iter().map(|a| a.shape.iter().product::<usize>()).sum();
    if elements > MAX_EMULATED_ELEMENTS {
        return Ok(false);
    }
    let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, 11, |_, _| {});
    let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).map_err(|e| format!("reference: {e}"))?;
    Emulator::new()
        .run_mlir(&compiled.mlir, name, &mut bufs)
        .map_err(|e| format!("emulation on {}: {e}", device.name))?;
    let mut k = 0;
    for (i, arg) in compiled.json.arguments.iter().enumerate() {
        if arg.direction != ArgDirection::Out {
            continue;
        }
        let got = hostdata::from_buffer(&bufs[i]);
        let (want, bound) = &expected[k];
        let c = hostdata::compare_bounded(&got, want, bound, arg.dtype);
        k += 1;
        if !c.passed() || c.unbounded > 0 {
            return Err(format!("output {} on {} differs from the reference: {c:?}", arg.name, device.name));
        }
    }
    Ok(true)
}

#[test]
fn every_tile_block_in_the_language_doc_compiles_and_runs() {
    let (path, text) = doc();
    let blocks = blocks(&text);
    assert!(!blocks.is_empty(), "{path} has no ```tile blocks");
    let devices = [DeviceModel::npu1(), DeviceModel::npu2()];
    let mut failures = Vec::new();
    let (mut compiled, mut emulated, mut errors) = (0, 0, 0);
    for b in &blocks {
        let name = format!("{path}:{}", b.line);
        let mut any_error = false;
        for device in &devices {
            match expected_error(b, device.name) {
                Some(want) => {
                    any_error = true;
                    if want.is_empty() {
                        failures.push(format!("{name}: the `# error:` line gives no message"));
                        continue;
                    }
                    match compile_source(&path, &b.text, device) {
                        Ok(_) => failures.push(format!("{name}: compiles for {}, but should fail with \"{want}\"", device.name)),
                        Err(e) if error_words(&e).contains(&want) => errors += 1,
                        Err(e) => failures.push(format!("{name}: fails for {} with another message than \"{want}\":\n{e}", device.name)),
                    }
                }
                None => match run_block(&path, &b.text, device) {
                    Ok(ran) => {
                        compiled += 1;
                        emulated += usize::from(ran);
                    }
                    Err(why) => failures.push(format!("{name}: {why}")),
                },
            }
        }
        if b.expect_error && !any_error {
            failures.push(format!("{name}: a ```tile-error block needs a `# error: MESSAGE` line"));
        }
        if !b.expect_error && any_error {
            failures.push(format!("{name}: an `# error:` line in a ```tile block (mark the block ```tile-error)"));
        }
    }
    eprintln!(
        "{path}: {} blocks; {compiled} compilations succeeded ({emulated} emulated against the reference), {errors} failed with the expected error",
        blocks.len()
    );
    assert!(failures.is_empty(), "{} problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(emulated > 0, "no block of {path} was run on the emulator");
}

#[test]
fn blocks_are_found() {
    let md = "text\n```tile\nkernel a {}\n```\n```text\nnot a kernel\n```\n```tile-error\n# error: x\nkernel b {}\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].line, b[0].expect_error, b[0].text.as_str()), (2, false, "\n\nkernel a {}\n"));
    assert_eq!((b[1].line, b[1].expect_error), (8, true));
    assert_eq!(expected_error(&b[1], "npu1").as_deref(), Some("x"));
    assert_eq!(expected_error(&b[0], "npu2"), None);
    let dev = Block {
        line: 1,
        expect_error: true,
        text: "# error(npu2): mac\nkernel c {}\n".into(),
    };
    assert_eq!(expected_error(&dev, "npu2").as_deref(), Some("mac"));
    assert_eq!(expected_error(&dev, "npu1"), None);
}
