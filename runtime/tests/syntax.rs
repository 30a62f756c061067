//! The aie syntax bridge: custom -> generic -> custom is the identity on the hand-written designs, the generic
//! form parses and verifies with MLIR, and MLIR's own printing of it maps back to a design that runs.

use aiec_runtime::aie_syntax::{custom_to_generic, generic_to_custom};
use aiec_runtime::emulator::Emulator;
use aiec_runtime::{DType, HostBuffer};
use melior::dialect::DialectRegistry;
use melior::ir::attribute::Attribute;
use melior::ir::operation::{OperationBuilder, OperationLike, OperationMutLike, OperationPrintingFlags};
use melior::ir::{Location, Module, Type};
use melior::utility::register_all_dialects;
use melior::Context;
use std::path::PathBuf;

fn designs() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/designs");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlir"))
        // Hardware-level designs have no generic form beyond their locks (see aie_syntax).
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("hw_")))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 6, "designs missing in {}", dir.display());
    out
}

fn context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    context.set_allow_unregistered_dialects(true);
    context
}

#[test]
fn custom_generic_custom_is_the_identity() {
    for (name, text) in designs() {
        let generic = custom_to_generic(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(generic.lines().count(), text.lines().count(), "{name}: line structure changed");
        assert!(!generic.contains(" aie.objectfifo "), "{name}: custom op left in generic text");
        let back = generic_to_custom(&generic).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, text, "{name}: round trip differs");
    }
}

#[test]
fn generic_form_parses_and_verifies() {
    let context = context();
    for (name, text) in designs() {
        let generic = custom_to_generic(&text).unwrap();
        let module = Module::parse(&context, &generic).unwrap_or_else(|| panic!("{name}: does not parse"));
        assert!(module.as_operation().verify(), "{name}: does not verify");
    }
}

fn i32s(b: &HostBuffer) -> Vec<i32> {
    b.bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn mlir_printed_generic_maps_back_and_runs() {
    let context = context();
    for name in ["add_one_link.mlir", "split_join.mlir"] {
        let text = designs().into_iter().find(|(n, _)| n == name).unwrap().1;
        let module = Module::parse(&context, &custom_to_generic(&text).unwrap()).unwrap();
        let printed = module.as_operation().to_string();
        let custom = generic_to_custom(&printed).unwrap_or_else(|e| panic!("{name}: {e}\n{printed}"));
        assert!(custom.contains("aie.objectfifo.link ["), "{custom}");
        // And back again: the custom text of MLIR's printing is stable under another round trip.
        assert_eq!(generic_to_custom(&custom_to_generic(&custom).unwrap()).unwrap(), custom);
        let input: Vec<i32> = (0..256).map(|i| i * 11 - 999).collect();
        let mut args = [
            HostBuffer {
                dtype: DType::I32,
                shape: vec![256],
                bytes: input.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
            HostBuffer::zeros(DType::I32, &[256]),
        ];
        let mut expected_args = args.clone();
        Emulator::new()
            .run_mlir(&custom, name, &mut args)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{custom}"));
        Emulator::new().run_mlir(&text, name, &mut expected_args).unwrap();
        assert_eq!(i32s(&args[1]), i32s(&expected_args[1]), "{name}");
        assert_ne!(i32s(&args[1]), input, "{name}: output not computed");
    }
}

#[test]
fn ops_built_with_melior_print_the_documented_generic_form() {
    let context = context();
    let loc = Location::unknown(&context);
    let mut tile = OperationBuilder::new("aie.tile", loc).add_results(&[Type::index(&context)]).build().unwrap();
    tile.set_inherent_attribute("col", Attribute::parse(&context, "0 : i32").unwrap());
    tile.set_inherent_attribute("row", Attribute::parse(&context, "2 : i32").unwrap());
    let printed = tile.to_string_with_flags(OperationPrintingFlags::new()).unwrap();
    assert_eq!(printed.trim(), "%0 = \"aie.tile\"() <{col = 0 : i32, row = 2 : i32}> : () -> index");
    assert_eq!(generic_to_custom(&printed).unwrap().trim(), "%0 = aie.tile(0, 2)");

    let mut wait = OperationBuilder::new("aiex.npu.dma_wait", loc).build().unwrap();
    wait.set_inherent_attribute("symbol", Attribute::parse(&context, "@out").unwrap());
    let printed = wait.to_string();
    assert_eq!(printed.trim(), "\"aiex.npu.dma_wait\"() <{symbol = @out}> : () -> ()");
    assert_eq!(generic_to_custom(&printed).unwrap().trim(), "aiex.npu.dma_wait {symbol = @out}");
}

#[test]
fn discardable_attribute_dictionary_is_read_too() {
    let g = "%t = \"aie.tile\"() {col = 1 : i32, row = 3 : i32} : () -> index\n";
    assert_eq!(generic_to_custom(g).unwrap(), "%t = aie.tile(1, 3)\n");
}
