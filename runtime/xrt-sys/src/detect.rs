//! Finding an XRT install good enough for the NPU (>= 2.17). Shared by build.rs (which decides
//! whether the C++ shim is compiled) and the library (so `aiec doctor` says the same thing).
//! Standard library only: build.rs includes this file by path.

use std::path::{Path, PathBuf};

/// The first XRT with the hardware-context API the NPU (amdxdna) needs.
pub const MIN_VERSION: (u32, u32) = (2, 17);

/// Where XRT is looked for when `XILINX_XRT` is not set.
pub const DEFAULT_PREFIX: &str = "/opt/xilinx/xrt";

/// How to get a usable XRT, appended to every "not available" reason.
pub const INSTALL_HINT: &str = "install XRT >= 2.17 with the NPU plugin (AMD's xrt and xrt_plugin-amdxdna packages, or build github.com/amd/xdna-driver), `source /opt/xilinx/xrt/setup.sh` so XILINX_XRT is set, then rebuild (Debian's libxrt-dev 2.13 is too old)";

/// A usable XRT install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrtInstall {
    pub prefix: PathBuf,
    pub include_dir: PathBuf,
    pub lib_dir: PathBuf,
    pub version: (u32, u32),
    pub version_string: String,
    /// `xrt/xrt_hw_context.h` or `xrt/experimental/xrt_hw_context.h`.
    pub hw_context_header: PathBuf,
}

/// The prefix to look at: `XILINX_XRT` when set, else /opt/xilinx/xrt.
pub fn prefix_from_env(xilinx_xrt: Option<&str>) -> PathBuf {
    match xilinx_xrt {
        Some(p) if !p.trim().is_empty() => PathBuf::from(p.trim()),
        _ => PathBuf::from(DEFAULT_PREFIX),
    }
}

/// XRT's version from its installed headers: (major, minor, full string).
pub fn header_version(prefix: &Path) -> Option<(u32, u32, String)> {
    let include = prefix.join("include");
    for rel in ["xrt/detail/version.h", "version.h"] {
        if let Ok(text) = std::fs::read_to_string(include.join(rel)) {
            if let Some(v) = parse_build_version(&text) {
                return Some(v);
            }
        }
    }
    for rel in ["xrt/detail/version-slim.h", "version-slim.h"] {
        if let Ok(text) = std::fs::read_to_string(include.join(rel)) {
            if let Some(v) = parse_slim_version(&text) {
                return Some(v);
            }
        }
    }
    None
}

/// `static const char xrt_build_version[] = "2.17.319";`
pub fn parse_build_version(text: &str) -> Option<(u32, u32, String)> {
    let i = text.find("xrt_build_version[]")?;
    let rest = &text[i..];
    let open = rest.find('"')? + 1;
    let close = rest[open..].find('"')? + open;
    let version = rest[open..close].trim().to_string();
    let mut parts = version.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor, version))
}

/// `#define XRT_SLIM_VERSION_CODE XRT_SLIM_VERSION(2, 17)`
pub fn parse_slim_version(text: &str) -> Option<(u32, u32, String)> {
    let line = text.lines().find(|l| l.contains("XRT_SLIM_VERSION_CODE") && l.contains("XRT_SLIM_VERSION("))?;
    let args = line.rsplit("XRT_SLIM_VERSION(").next()?.split(')').next()?;
    let (major, minor) = args.split_once(',')?;
    let (major, minor) = (major.trim().parse().ok()?, minor.trim().parse().ok()?);
    Some((major, minor, format!("{major}.{minor}")))
}

/// Checks that `prefix` holds XRT >= 2.17 headers and its core library; the error says why not.
pub fn detect(prefix: &Path) -> Result<XrtInstall, String> {
    let include_dir = prefix.join("include");
    if !include_dir.join("xrt/xrt_device.h").is_file() {
        return Err(format!("no XRT headers at {} (looked for include/xrt/xrt_device.h)", prefix.display()));
    }
    let (major, minor, version_string) = header_version(prefix).ok_or_else(|| {
        format!(
            "cannot tell the XRT version at {} (no include/xrt/detail/version.h or include/version.h)",
            prefix.display()
        )
    })?;
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "XRT {version_string} at {} is older than {}.{} (no NPU hardware contexts)",
            prefix.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        ));
    }
    let hw_context_header = ["xrt/xrt_hw_context.h", "xrt/experimental/xrt_hw_context.h"]
        .iter()
        .map(|rel| include_dir.join(rel))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("XRT {version_string} at {} has no xrt_hw_context.h", prefix.display()))?;
    let lib_dir = ["lib", "lib64"]
        .iter()
        .map(|d| prefix.join(d))
        .find(|d| d.join("libxrt_coreutil.so").exists() || has_versioned_lib(d, "libxrt_coreutil.so."))
        .ok_or_else(|| format!("XRT {version_string} at {} has no lib/libxrt_coreutil.so", prefix.display()))?;
    Ok(XrtInstall {
        prefix: prefix.to_path_buf(),
        include_dir,
        lib_dir,
        version: (major, minor),
        version_string,
        hw_context_header,
    })
}

fn has_versioned_lib(dir: &Path, stem: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(stem)))
        .unwrap_or(false)
}
