//! xrt-sys without hardware: unavailability is reported clearly, and the XRT detection that
//! decides whether the shim is compiled accepts 2.17+ installs and rejects older ones.

use std::fs;
use std::path::Path;
use xrt_sys::detect;
use xrt_sys::{BoFlags, Device, Xclbin, XrtError};

fn fake_xrt(root: &Path, version_header: Option<(&str, &str)>, hw_context: Option<&str>, lib: bool) {
    fs::create_dir_all(root.join("include/xrt/detail")).unwrap();
    fs::write(root.join("include/xrt/xrt_device.h"), "// device\n").unwrap();
    if let Some((rel, text)) = version_header {
        let p = root.join("include").join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    if let Some(rel) = hw_context {
        let p = root.join("include").join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "// hw context\n").unwrap();
    }
    if lib {
        fs::create_dir_all(root.join("lib")).unwrap();
        fs::write(root.join("lib/libxrt_coreutil.so.2.17.0"), "").unwrap();
    }
}

#[test]
fn availability_and_reason_agree() {
    match xrt_sys::unavailable_reason() {
        Some(reason) => {
            assert!(!xrt_sys::available());
            assert!(reason.starts_with("XRT not available: "), "{reason}");
            assert!(reason.contains("2.17"), "reason must say which XRT is needed: {reason}");
            assert!(reason.contains("install"), "reason must say how to get XRT: {reason}");
            assert!(xrt_sys::compiled_version().is_none());
        }
        None => {
            assert!(xrt_sys::available());
            assert!(xrt_sys::compiled_version().is_some());
        }
    }
}

#[test]
fn every_call_fails_with_the_reason_when_xrt_is_missing() {
    let Some(reason) = xrt_sys::unavailable_reason() else {
        // Compiled with XRT: opening a device is a hardware matter, covered by the NPU tests.
        return;
    };
    match Device::open(0) {
        Err(XrtError::Unavailable(msg)) => assert_eq!(msg, reason),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match Xclbin::load(Path::new("/nonexistent/final.xclbin")) {
        Err(XrtError::Unavailable(msg)) => assert!(msg.contains("XRT not available")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let e = Device::open(0).unwrap_err();
    assert_eq!(e.to_string(), reason, "the error displays the full reason");
    // The flag enum is part of the API either way.
    assert_ne!(BoFlags::Cacheable, BoFlags::HostOnly);
}

#[test]
fn detects_a_2_17_install() {
    let dir = tempfile::tempdir().unwrap();
    fake_xrt(
        dir.path(),
        Some(("xrt/detail/version.h", "static const char xrt_build_version[] = \"2.17.319\";\n")),
        Some("xrt/xrt_hw_context.h"),
        true,
    );
    let found = detect::detect(dir.path()).expect("2.17 with headers and library is usable");
    assert_eq!(found.version, (2, 17));
    assert_eq!(found.version_string, "2.17.319");
    assert_eq!(found.lib_dir, dir.path().join("lib"));
    assert!(found.hw_context_header.ends_with("xrt/xrt_hw_context.h"));
}

#[test]
fn accepts_the_experimental_hw_context_header_and_the_slim_version_header() {
    let dir = tempfile::tempdir().unwrap();
    fake_xrt(
        dir.path(),
        Some((
            "xrt/detail/version-slim.h",
            "#define XRT_SLIM_VERSION(major, minor) ((major << 16) + (minor))\n#define XRT_SLIM_VERSION_CODE XRT_SLIM_VERSION(2, 18)\n",
        )),
        Some("xrt/experimental/xrt_hw_context.h"),
        true,
    );
    let found = detect::detect(dir.path()).unwrap();
    assert_eq!(found.version, (2, 18));
    assert!(found.hw_context_header.ends_with("experimental/xrt_hw_context.h"));
}

#[test]
fn rejects_debians_2_13() {
    let dir = tempfile::tempdir().unwrap();
    fake_xrt(
        dir.path(),
        Some(("version.h", "static const char xrt_build_version[] = \"2.13.0\";\n")),
        Some("xrt/experimental/xrt_hw_context.h"),
        true,
    );
    let why = detect::detect(dir.path()).unwrap_err();
    assert!(why.contains("2.13.0") && why.contains("older than 2.17"), "{why}");
}

#[test]
fn says_what_is_missing() {
    let empty = tempfile::tempdir().unwrap();
    let why = detect::detect(empty.path()).unwrap_err();
    assert!(why.contains("no XRT headers"), "{why}");

    let no_version = tempfile::tempdir().unwrap();
    fake_xrt(no_version.path(), None, Some("xrt/xrt_hw_context.h"), true);
    assert!(detect::detect(no_version.path()).unwrap_err().contains("cannot tell the XRT version"));

    let no_lib = tempfile::tempdir().unwrap();
    fake_xrt(
        no_lib.path(),
        Some(("version.h", "static const char xrt_build_version[] = \"2.19.0\";")),
        Some("xrt/xrt_hw_context.h"),
        false,
    );
    assert!(detect::detect(no_lib.path()).unwrap_err().contains("libxrt_coreutil"));

    let no_ctx = tempfile::tempdir().unwrap();
    fake_xrt(
        no_ctx.path(),
        Some(("version.h", "static const char xrt_build_version[] = \"2.19.0\";")),
        None,
        true,
    );
    assert!(detect::detect(no_ctx.path()).unwrap_err().contains("xrt_hw_context.h"));
}

#[test]
fn prefix_comes_from_xilinx_xrt_or_the_default() {
    assert_eq!(detect::prefix_from_env(Some("/x/xrt")), Path::new("/x/xrt"));
    assert_eq!(detect::prefix_from_env(Some("  ")), Path::new(detect::DEFAULT_PREFIX));
    assert_eq!(detect::prefix_from_env(None), Path::new("/opt/xilinx/xrt"));
}

#[test]
fn version_parsers_reject_garbage() {
    assert_eq!(detect::parse_build_version("xrt_build_version[] = \"two.x\""), None);
    assert_eq!(detect::parse_slim_version("#define OTHER 1"), None);
    assert_eq!(
        detect::parse_build_version("static const char xrt_build_version[] = \"2.20.1\";").map(|v| (v.0, v.1)),
        Some((2, 20))
    );
}
