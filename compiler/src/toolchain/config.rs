//! `toolchain.toml`, the environment and command-line flags, merged into one [`Toolchain`].
//!
//! Precedence, lowest first: built-in defaults < `toolchain.toml` < environment
//! (`MLIR_AIE_INSTALL_DIR`, `PEANO_INSTALL_DIR`, `XILINX_XRT`, `AIEC_DEVICE`) < flags.
//! Every value remembers where it came from so `aiec doctor` and error messages can say so.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file name looked for when no `--toolchain FILE` is given.
pub(crate) const TOOLCHAIN_FILE: &str = "toolchain.toml";

/// Where XRT is installed when nothing says otherwise (the layout of AMD's packages).
pub(crate) const DEFAULT_XRT_PREFIX: &str = "/opt/xilinx/xrt";

/// Devices a design can target (the names `aie.device(...)` uses for whole-array designs).
pub(crate) const DEVICES: [&str; 2] = ["npu1", "npu2"];

/// Values given on the command line; `None` leaves the lower layers in charge.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--device`: the default device (`npu1`, `npu2`).
    pub device: Option<String>,
    /// `--mlir-aie`: mlir-aie's install directory.
    pub mlir_aie: Option<PathBuf>,
    /// `--peano`: Peano's (llvm-aie's) install directory.
    pub peano: Option<PathBuf>,
    /// `--xrt`: XRT's install prefix.
    pub xrt: Option<PathBuf>,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built in.
    Default,
    /// A line of a toolchain.toml.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the setting.
        line: usize,
    },
    /// An environment variable (its name).
    Env(&'static str),
    /// A command-line flag (its name).
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

impl<T> Sourced<T> {
    fn new(value: T, origin: Origin) -> Self {
        Sourced { value, origin }
    }
}

/// A program the build or the doctor looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    /// mlir-aie's compiler driver (`aiecc`, or the `aiecc.py` wrapper around it).
    Aiecc,
    /// mlir-aie's `mlir-opt`: the aie dialects and their passes (object FIFO lowering, routing, ...).
    AieOpt,
    /// mlir-aie's `mlir-translate`: NPU instructions to insts.bin, core MLIR to LLVM IR.
    AieTranslate,
    /// Peano (llvm-aie)'s clang, which compiles the core programs.
    PeanoClang,
    /// Packs the configuration into a PDI (shipped with mlir-aie).
    Bootgen,
    /// Packs the PDI and metadata into an xclbin (shipped with XRT).
    Xclbinutil,
    /// XRT's device tool; only needed to inspect the NPU.
    XrtSmi,
}

impl Tool {
    /// Every tool.
    pub(crate) const ALL: [Tool; 7] = [
        Tool::Aiecc,
        Tool::AieOpt,
        Tool::AieTranslate,
        Tool::PeanoClang,
        Tool::Bootgen,
        Tool::Xclbinutil,
        Tool::XrtSmi,
    ];

    /// The key under `[tools]` in toolchain.toml.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Tool::Aiecc => "aiecc",
            Tool::AieOpt => "aie-opt",
            Tool::AieTranslate => "aie-translate",
            Tool::PeanoClang => "peano-clang",
            Tool::Bootgen => "bootgen",
            Tool::Xclbinutil => "xclbinutil",
            Tool::XrtSmi => "xrt-smi",
        }
    }

    /// The tool whose `[tools]` key is `key`.
    pub(crate) fn from_key(key: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.key() == key)
    }

    /// Executable names tried in order inside a directory.
    fn file_names(self) -> &'static [&'static str] {
        match self {
            // The binary first: aiecc.py only forwards to it and needs mlir-aie's python package.
            Tool::Aiecc => &["aiecc", "aiecc.py"],
            Tool::AieOpt => &["aie-opt"],
            Tool::AieTranslate => &["aie-translate"],
            Tool::PeanoClang => &["clang"],
            Tool::Bootgen => &["bootgen"],
            Tool::Xclbinutil => &["xclbinutil"],
            Tool::XrtSmi => &["xrt-smi"],
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Where a tool was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPath {
    pub(crate) tool: Tool,
    /// The executable.
    pub path: PathBuf,
    /// How it was found ("\[tools\] in toolchain.toml", "mlir-aie install dir", "PATH").
    pub via: String,
}

/// The resolved toolchain: install directories, the default device, explicit tool paths.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The toolchain.toml that was read, if any.
    pub file: Option<PathBuf>,
    /// The device `aiec build` targets unless the design says otherwise.
    pub device: Sourced<String>,
    /// mlir-aie's install directory (aie-opt, aie-translate, aiecc, bootgen in its `bin/`).
    pub mlir_aie: Option<Sourced<PathBuf>>,
    /// Peano's (llvm-aie's) install directory (its `bin/clang` compiles the cores).
    pub peano: Option<Sourced<PathBuf>>,
    /// XRT's install prefix (xclbinutil, xrt-smi in its `bin/`).
    pub xrt: Sourced<PathBuf>,
    /// `[tools]` entries: explicit paths that win over every search.
    pub tools: BTreeMap<Tool, Sourced<PathBuf>>,
    /// The PATH the tools are searched on (taken from the environment at resolve time).
    pub(crate) search_path: Vec<PathBuf>,
}

/// Why the toolchain settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// The toolchain.toml could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Bad TOML or a bad value; `key` is the key on that line when there is one.
    #[error("{}:{line}:{column}: {}{message}", path.display(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key on that line, when there is one.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A device aiec does not target.
    #[error("unknown device '{value}' (from {origin}): expected one of {}", DEVICES.join(", "))]
    UnknownDevice {
        /// The name given.
        value: String,
        /// Where it was given.
        origin: Origin,
    },
    /// A path or name set to the empty string.
    #[error("{what} is empty (from {origin})")]
    EmptyValue {
        /// The setting.
        what: &'static str,
        /// Where it was set.
        origin: Origin,
    },
}

// The file's shape. Unknown keys are errors so a typo is not silently ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    device: Option<DeviceSection>,
    #[serde(rename = "mlir-aie")]
    mlir_aie: Option<InstallSection>,
    peano: Option<InstallSection>,
    xrt: Option<XrtSection>,
    tools: Option<BTreeMap<toml::Spanned<String>, toml::Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    default: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallSection {
    install_dir: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XrtSection {
    prefix: Option<toml::Spanned<String>>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|nl| before.len() - nl).unwrap_or(before.len() + 1);
    (line, column)
}

/// The key assigned on the line holding `offset` (`key = value`), if that line has one.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = text[offset..].find('\n').map(|i| offset + i).unwrap_or(text.len());
    let line = &text[start..end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

impl Toolchain {
    /// Resolves the toolchain. `file` is `--toolchain FILE`; without it, toolchain.toml is looked
    /// for in the current directory and its parents (none found = defaults). `env` reads the
    /// environment (a closure so tests need not touch the process environment).
    pub fn resolve(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>, overrides: &Overrides) -> Result<Toolchain, ToolchainError> {
        let found = match file {
            Some(f) => Some(f.to_path_buf()),
            None => std::env::current_dir().ok().and_then(|d| Self::find_file(&d)),
        };
        match found {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ToolchainError::Io { path: path.clone(), source })?;
                Self::from_toml(&text, &path, env, overrides)
            }
            None => Self::from_layers(None, FileLayer::default(), env, overrides),
        }
    }

    /// The nearest toolchain.toml in `start` or one of its parents.
    pub fn find_file(start: &Path) -> Option<PathBuf> {
        start.ancestors().map(|d| d.join(TOOLCHAIN_FILE)).find(|p| p.is_file())
    }

    /// Resolves from the text of a toolchain.toml at `path` (relative paths in it are relative
    /// to the file's directory).
    pub fn from_toml(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>, overrides: &Overrides) -> Result<Toolchain, ToolchainError> {
        let layer = parse_file(text, path)?;
        Self::from_layers(Some(path.to_path_buf()), layer, env, overrides)
    }

    fn from_layers(file: Option<PathBuf>, layer: FileLayer, env: &dyn Fn(&str) -> Option<String>, overrides: &Overrides) -> Result<Toolchain, ToolchainError> {
        let env_value = |var: &'static str| env(var).filter(|v| !v.trim().is_empty()).map(|v| Sourced::new(v, Origin::Env(var)));
        let env_path = |var: &'static str| env_value(var).map(|s| Sourced::new(PathBuf::from(s.value), s.origin));
        let flag_path = |p: &Option<PathBuf>, flag: &'static str| p.clone().map(|v| Sourced::new(v, Origin::Flag(flag)));

        let device = overrides
            .device
            .clone()
            .map(|v| Sourced::new(v, Origin::Flag("--device")))
            .or_else(|| env_value("AIEC_DEVICE"))
            .or(layer.device)
            .unwrap_or_else(|| Sourced::new("npu1".to_string(), Origin::Default));
        if !DEVICES.contains(&device.value.as_str()) {
            return Err(ToolchainError::UnknownDevice {
                value: device.value,
                origin: device.origin,
            });
        }
        let mlir_aie = flag_path(&overrides.mlir_aie, "--mlir-aie")
            .or_else(|| env_path("MLIR_AIE_INSTALL_DIR"))
            .or(layer.mlir_aie);
        let peano = flag_path(&overrides.peano, "--peano").or_else(|| env_path("PEANO_INSTALL_DIR")).or(layer.peano);
        let xrt = flag_path(&overrides.xrt, "--xrt")
            .or_else(|| env_path("XILINX_XRT"))
            .or(layer.xrt)
            .unwrap_or_else(|| Sourced::new(PathBuf::from(DEFAULT_XRT_PREFIX), Origin::Default));
        for (what, value) in [("mlir-aie install_dir", &mlir_aie), ("peano install_dir", &peano)] {
            if let Some(v) = value {
                if v.value.as_os_str().is_empty() {
                    return Err(ToolchainError::EmptyValue {
                        what,
                        origin: v.origin.clone(),
                    });
                }
            }
        }
        let search_path = env("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
        Ok(Toolchain {
            file,
            device,
            mlir_aie,
            peano,
            xrt,
            tools: layer.tools,
            search_path,
        })
    }

    /// Finds `tool`: an explicit `[tools]` path, then its install directory's `bin/`, then PATH.
    /// Peano's clang is only taken from the Peano install (a host clang cannot compile for AIE).
    pub fn find(&self, tool: Tool) -> Option<ToolPath> {
        if let Some(explicit) = self.tools.get(&tool) {
            // An explicit path is used as given; the caller reports it missing if it is not there.
            return is_executable(&explicit.value).then(|| ToolPath {
                tool,
                path: explicit.value.clone(),
                via: format!("[tools] {} ({})", tool.key(), explicit.origin),
            });
        }
        let install: Option<(&Sourced<PathBuf>, &str)> = match tool {
            Tool::Aiecc | Tool::AieOpt | Tool::AieTranslate | Tool::Bootgen => self.mlir_aie.as_ref().map(|d| (d, "mlir-aie")),
            Tool::PeanoClang => self.peano.as_ref().map(|d| (d, "peano")),
            Tool::Xclbinutil | Tool::XrtSmi => Some((&self.xrt, "xrt")),
        };
        if let Some((dir, what)) = install {
            for name in tool.file_names() {
                let p = dir.value.join("bin").join(name);
                if is_executable(&p) {
                    return Some(ToolPath {
                        tool,
                        path: p,
                        via: format!("{what} install dir ({})", dir.origin),
                    });
                }
            }
        }
        if tool == Tool::PeanoClang {
            return None;
        }
        for dir in &self.search_path {
            for name in tool.file_names() {
                let p = dir.join(name);
                if is_executable(&p) {
                    return Some(ToolPath {
                        tool,
                        path: p,
                        via: "PATH".to_string(),
                    });
                }
            }
        }
        None
    }

    /// What to do to make `tool` available.
    pub fn hint(&self, tool: Tool) -> String {
        if let Some(explicit) = self.tools.get(&tool) {
            return format!(
                "{} (set by [tools] {} at {}) is not an executable file: fix that path",
                explicit.value.display(),
                tool.key(),
                explicit.origin
            );
        }
        let mlir_aie_where = match &self.mlir_aie {
            Some(d) => format!("not in {}/bin (mlir-aie dir from {}) nor on PATH", d.value.display(), d.origin),
            None => "not on PATH and no mlir-aie install dir is set".to_string(),
        };
        match tool {
            Tool::Aiecc | Tool::AieOpt | Tool::AieTranslate | Tool::Bootgen => format!(
                "{} {mlir_aie_where}: install mlir-aie (`pip install mlir_aie` from its release wheels, or build it) and set [mlir-aie] install_dir in toolchain.toml, MLIR_AIE_INSTALL_DIR or --mlir-aie to the directory holding bin/{}",
                tool.key(),
                tool.file_names()[0]
            ),
            Tool::PeanoClang => match &self.peano {
                Some(d) => format!("no bin/clang under {} (Peano dir from {}): install Peano (`pip install llvm-aie`) and point [peano] install_dir, PEANO_INSTALL_DIR or --peano at it", d.value.display(), d.origin),
                None => "no Peano install dir is set: install Peano (`pip install llvm-aie`) and set [peano] install_dir in toolchain.toml, PEANO_INSTALL_DIR or --peano to the directory holding bin/clang".to_string(),
            },
            Tool::Xclbinutil | Tool::XrtSmi => format!(
                "{} not in {}/bin (XRT prefix from {}) nor on PATH: install XRT >= 2.17 with the NPU plugin (AMD's xrt and xrt_plugin-amdxdna packages, or build github.com/amd/xdna-driver) and `source {}/setup.sh`, or set [xrt] prefix / XILINX_XRT / --xrt",
                tool.key(),
                self.xrt.value.display(),
                self.xrt.origin,
                self.xrt.value.display()
            ),
        }
    }

    /// The environment the build tools run with: install dirs exported and their `bin/`s first on
    /// PATH (aiecc itself looks up bootgen and xclbinutil on PATH).
    pub(crate) fn tool_env(&self) -> Vec<(String, std::ffi::OsString)> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for tool in [Tool::Aiecc, Tool::Bootgen, Tool::Xclbinutil] {
            if let Some(found) = self.find(tool) {
                if let Some(parent) = found.path.parent() {
                    if !dirs.iter().any(|d| d == parent) {
                        dirs.push(parent.to_path_buf());
                    }
                }
            }
        }
        for d in &self.search_path {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        let mut vars = Vec::new();
        if let Ok(path) = std::env::join_paths(&dirs) {
            vars.push(("PATH".to_string(), path));
        }
        if let Some(d) = &self.mlir_aie {
            vars.push(("MLIR_AIE_INSTALL_DIR".to_string(), d.value.clone().into_os_string()));
            // aiecc.py imports mlir-aie's python package from here.
            vars.push(("PYTHONPATH".to_string(), d.value.join("python").into_os_string()));
        }
        if let Some(d) = &self.peano {
            vars.push(("PEANO_INSTALL_DIR".to_string(), d.value.clone().into_os_string()));
        }
        vars.push(("XILINX_XRT".to_string(), self.xrt.value.clone().into_os_string()));
        vars
    }
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[derive(Default)]
struct FileLayer {
    device: Option<Sourced<String>>,
    mlir_aie: Option<Sourced<PathBuf>>,
    peano: Option<Sourced<PathBuf>>,
    xrt: Option<Sourced<PathBuf>>,
    tools: BTreeMap<Tool, Sourced<PathBuf>>,
}

fn parse_file(text: &str, path: &Path) -> Result<FileLayer, ToolchainError> {
    let parse_error = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        ToolchainError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            key: key_on_line(text, offset),
            message,
        }
    };
    let config: FileConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        parse_error(offset, e.message().trim_end().to_string())
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let origin_at = |offset: usize| Origin::File {
        path: path.to_path_buf(),
        line: line_col(text, offset).0,
    };
    let dir = |v: &toml::Spanned<String>, key: &str| -> Result<Sourced<PathBuf>, ToolchainError> {
        let raw = v.get_ref().trim();
        if raw.is_empty() {
            let (line, column) = line_col(text, v.span().start);
            return Err(ToolchainError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                key: Some(key.to_string()),
                message: "empty path".into(),
            });
        }
        let p = PathBuf::from(raw);
        let p = if p.is_relative() { base.join(p) } else { p };
        Ok(Sourced::new(p, origin_at(v.span().start)))
    };

    let mut layer = FileLayer::default();
    if let Some(d) = config.device.and_then(|d| d.default) {
        if !DEVICES.contains(&d.get_ref().as_str()) {
            return Err(parse_error(
                d.span().start,
                format!("unknown device '{}': expected one of {}", d.get_ref(), DEVICES.join(", ")),
            ));
        }
        layer.device = Some(Sourced::new(d.get_ref().clone(), origin_at(d.span().start)));
    }
    if let Some(v) = config.mlir_aie.and_then(|s| s.install_dir) {
        layer.mlir_aie = Some(dir(&v, "install_dir")?);
    }
    if let Some(v) = config.peano.and_then(|s| s.install_dir) {
        layer.peano = Some(dir(&v, "install_dir")?);
    }
    if let Some(v) = config.xrt.and_then(|s| s.prefix) {
        layer.xrt = Some(dir(&v, "prefix")?);
    }
    for (key, value) in config.tools.unwrap_or_default() {
        let tool = Tool::from_key(key.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = Tool::ALL.iter().map(|t| t.key()).collect();
            parse_error(
                key.span().start,
                format!("unknown tool '{}' in [tools]: expected one of {}", key.get_ref(), known.join(", ")),
            )
        })?;
        layer.tools.insert(tool, dir(&value, key.get_ref())?);
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(key_on_line(text, 8).as_deref(), Some("bb"));
        assert_eq!(key_on_line("[x]\n", 1), None);
    }
}
