//! `aiec doctor`: which parts of the NPU flow are present, their versions, and what to do next.

use super::config::{Tool, Toolchain};
use super::driver::{BUILD_TOOLS, STEP_TOOLS};
use aiec_runtime::npu::xrt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `--version` (or `xrt-smi examine`) may take before it is given up on.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a check is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// `aiec build` cannot work without it.
    Build,
    /// `aiec run --npu` cannot work without it.
    Run,
}

/// Whether a check found what it looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Present.
    Found {
        /// The file (executable, header, device node, driver directory) that shows it.
        path: PathBuf,
        /// Its version, when it reports one.
        version: Option<String>,
    },
    /// Not there.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked (`aie-opt`, `XRT headers`, `NPU device`, ...).
    pub name: String,
    pub(crate) need: Need,
    /// Found or missing.
    pub status: Status,
    /// Where it was found or looked for.
    pub detail: String,
    /// The exact next step when it is missing.
    pub next_step: Option<String>,
}

impl Check {
    /// Found.
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Found { .. })
    }
}

/// Everything `aiec doctor` checked.
#[derive(Debug, Clone)]
pub struct DoctorReport {
    /// One per line of the report, in the order printed.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Everything `aiec build` needs is there.
    pub fn can_build(&self) -> bool {
        self.checks.iter().filter(|c| c.need == Need::Build).all(Check::ok)
    }
    /// `aiec build` can run its five steps up to the cores' LLVM IR (aie-opt and aie-translate).
    pub(crate) fn can_build_llvm(&self) -> bool {
        STEP_TOOLS.iter().all(|t| self.check(t.key()).is_some_and(Check::ok))
    }
    /// Everything `aiec run --npu` needs (besides a built design) is there.
    pub fn can_run(&self) -> bool {
        self.checks.iter().filter(|c| c.need == Need::Run).all(Check::ok)
    }
    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Where the NPU shows itself on Linux; a parameter so the checks can be pointed elsewhere.
#[derive(Debug, Clone)]
pub struct NpuPaths {
    /// The accel device node the amdxdna driver creates.
    pub accel_node: PathBuf,
    /// Directories that exist when the amdxdna driver is loaded.
    pub driver_dirs: Vec<PathBuf>,
}

impl Default for NpuPaths {
    fn default() -> Self {
        NpuPaths {
            accel_node: PathBuf::from("/dev/accel/accel0"),
            driver_dirs: vec![PathBuf::from("/sys/module/amdxdna"), PathBuf::from("/sys/bus/pci/drivers/amdxdna")],
        }
    }
}

/// Runs every check against the real system and prints the report to `out`.
pub fn run(tc: &Toolchain, out: &mut dyn Write) -> DoctorReport {
    run_with(tc, &NpuPaths::default(), out)
}

/// [`run`] with the NPU looked for at `npu`.
pub fn run_with(tc: &Toolchain, npu: &NpuPaths, out: &mut dyn Write) -> DoctorReport {
    let mut checks = Vec::new();
    for tool in BUILD_TOOLS {
        checks.push(tool_check(tc, tool, Need::Build));
    }
    checks.push(tool_check(tc, Tool::XrtSmi, Need::Run));
    checks.push(xrt_headers_check(tc));
    checks.extend(npu_checks(tc, npu));
    let report = DoctorReport { checks };
    print_report(tc, &report, out);
    report
}

fn tool_check(tc: &Toolchain, tool: Tool, need: Need) -> Check {
    match tc.find(tool) {
        Some(found) => {
            let version = tool_version(tool, &found.path);
            Check {
                name: tool.key().to_string(),
                need,
                status: Status::Found {
                    path: found.path.clone(),
                    version,
                },
                detail: found.via,
                next_step: None,
            }
        }
        None => Check {
            name: tool.key().to_string(),
            need,
            status: Status::Missing,
            detail: "not found".into(),
            next_step: Some(tc.hint(tool)),
        },
    }
}

/// The tool's version line, for the tools that print one.
fn tool_version(tool: Tool, path: &Path) -> Option<String> {
    // bootgen has no version flag; it prints its banner on any call, so it is not asked.
    if tool == Tool::Bootgen {
        return None;
    }
    let text = run_captured(path, &["--version"])?;
    match tool {
        Tool::AieOpt | Tool::AieTranslate => mlir_tool_version(tool.key(), &text),
        _ => pick_version_line(&text),
    }
}

/// aie-opt and aie-translate print LLVM's version block and then `NAME COMMIT` (the mlir-aie
/// commit, empty in some builds): shown as `NAME COMMIT (LLVM version X)`.
pub(crate) fn mlir_tool_version(name: &str, text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let llvm = lines.iter().find(|l| l.contains("LLVM version"));
    let own = lines.iter().find(|l| l.starts_with(name)).map(|l| l.to_string());
    match (own, llvm) {
        (Some(own), Some(llvm)) => Some(format!("{own} ({llvm})")),
        (Some(own), None) if own != name => Some(own),
        (_, Some(llvm)) => Some(format!("{name} ({llvm})")),
        _ => pick_version_line(text),
    }
}

/// The first line mentioning a version, else the first non-empty line.
pub(crate) fn pick_version_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .find(|l| l.to_ascii_lowercase().contains("version"))
        .or(lines.first())
        .map(|l| l.to_string())
}

/// Runs `path args`, returning stdout + stderr; `None` if it cannot start or does not finish in time.
fn run_captured(path: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < PROBE_TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text)
}

fn xrt_headers_check(tc: &Toolchain) -> Check {
    let prefix = &tc.xrt.value;
    let install = format!(
        "install XRT >= 2.17 with the NPU plugin (AMD's xrt and xrt_plugin-amdxdna packages, or build github.com/amd/xdna-driver, which brings XRT), then `source {}/setup.sh` and rebuild aiec (Debian's libxrt-dev is 2.13: too old)",
        prefix.display()
    );
    match xrt::detect::header_version(prefix) {
        Some((major, minor, v)) if (major, minor) >= (2, 17) && xrt::available() => Check {
            name: "XRT headers".into(),
            need: Need::Run,
            status: Status::Found { path: prefix.join("include"), version: Some(v) },
            detail: format!("prefix from {}; the runtime is compiled with XRT {}", tc.xrt.origin, xrt::compiled_version().unwrap_or("?")),
            next_step: None,
        },
        // Usable headers, but this aiec was built before they were there: it cannot call XRT.
        Some((major, minor, v)) if (major, minor) >= (2, 17) => Check {
            name: "XRT headers".into(),
            need: Need::Run,
            status: Status::Missing,
            detail: format!("XRT {v} at {} is usable, but this aiec was built without it", prefix.display()),
            next_step: Some(format!(
                "with XILINX_XRT={} set (`source {}/setup.sh`), rebuild so xrt-sys compiles its XRT shim: `cargo clean -p xrt-sys && cargo build --release -p aiec`",
                prefix.display(),
                prefix.display()
            )),
        },
        Some((_, _, v)) => Check {
            name: "XRT headers".into(),
            need: Need::Run,
            status: Status::Missing,
            detail: format!("XRT {v} at {} is older than 2.17", prefix.display()),
            next_step: Some(install),
        },
        None => Check {
            name: "XRT headers".into(),
            need: Need::Run,
            status: Status::Missing,
            detail: format!("no XRT version header under {}/include (prefix from {})", prefix.display(), tc.xrt.origin),
            next_step: Some(install),
        },
    }
}

fn npu_checks(tc: &Toolchain, npu: &NpuPaths) -> Vec<Check> {
    let mut checks = Vec::new();
    let driver = npu.driver_dirs.iter().find(|d| d.exists());
    checks.push(match driver {
        Some(d) => Check { name: "amdxdna driver".into(), need: Need::Run, status: Status::Found { path: d.clone(), version: None }, detail: "loaded".into(), next_step: None },
        None => Check {
            name: "amdxdna driver".into(),
            need: Need::Run,
            status: Status::Missing,
            detail: format!("none of {} exists", npu.driver_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")),
            next_step: Some("use Linux >= 6.14 (amdxdna is in mainline) or build github.com/amd/xdna-driver; then `sudo modprobe amdxdna`; check BIOS has the IPU/NPU enabled".into()),
        },
    });
    checks.push(if npu.accel_node.exists() {
        Check { name: "NPU device".into(), need: Need::Run, status: Status::Found { path: npu.accel_node.clone(), version: None }, detail: "device node present".into(), next_step: None }
    } else {
        Check {
            name: "NPU device".into(),
            need: Need::Run,
            status: Status::Missing,
            detail: format!("{} does not exist", npu.accel_node.display()),
            next_step: Some(format!(
                "no NPU visible: on a Ryzen AI (Phoenix, Hawk Point, Strix) laptop load amdxdna (`sudo modprobe amdxdna`) and check `ls {}`; elsewhere use `aiec run --emulate`",
                npu.accel_node.parent().unwrap_or(Path::new("/dev")).display()
            )),
        }
    });
    // xrt-smi is asked only when it and a device are there: it is what users run to see the NPU.
    if let (Some(smi), true) = (tc.find(Tool::XrtSmi), npu.accel_node.exists()) {
        let text = run_captured(&smi.path, &["examine"]);
        let npu_line = text.as_deref().and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| l.contains("NPU") || l.contains("RyzenAI") || l.contains("[0000:"))
                .map(str::to_string)
        });
        checks.push(match npu_line {
            Some(line) => Check {
                name: "xrt-smi examine".into(),
                need: Need::Run,
                status: Status::Found {
                    path: smi.path.clone(),
                    version: Some(line),
                },
                detail: "XRT sees the NPU".into(),
                next_step: None,
            },
            None => Check {
                name: "xrt-smi examine".into(),
                need: Need::Run,
                status: Status::Missing,
                detail: "XRT lists no NPU".into(),
                next_step: Some(format!(
                    "run `{} examine` and check the amdxdna plugin (xrt_plugin-amdxdna) matches the XRT version",
                    smi.path.display()
                )),
            },
        });
    }
    checks
}

fn print_report(tc: &Toolchain, report: &DoctorReport, out: &mut dyn Write) {
    let _ = writeln!(out, "aiec doctor");
    let _ = writeln!(
        out,
        "  toolchain file: {}",
        tc.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "none (defaults + environment)".into())
    );
    let _ = writeln!(out, "  device: {} ({})", tc.device.value, tc.device.origin);
    let show = |v: &Option<super::config::Sourced<PathBuf>>| {
        v.as_ref()
            .map(|s| format!("{} ({})", s.value.display(), s.origin))
            .unwrap_or_else(|| "not set".into())
    };
    let _ = writeln!(out, "  mlir-aie: {}", show(&tc.mlir_aie));
    let _ = writeln!(out, "  peano:    {}", show(&tc.peano));
    let _ = writeln!(out, "  xrt:      {} ({})", tc.xrt.value.display(), tc.xrt.origin);
    let _ = writeln!(out);
    for (need, title) in [(Need::Build, "aiec build"), (Need::Run, "aiec run --npu")] {
        let _ = writeln!(out, "for `{title}`:");
        for c in report.checks.iter().filter(|c| c.need == need) {
            match &c.status {
                Status::Found { path, version } => {
                    let v = version.as_deref().map(|v| format!(" — {v}")).unwrap_or_default();
                    let _ = writeln!(out, "  [ok]      {:<16} {}{v}  ({})", c.name, path.display(), c.detail);
                }
                Status::Missing => {
                    let _ = writeln!(out, "  [missing] {:<16} {}", c.name, c.detail);
                }
            }
            if let Some(step) = &c.next_step {
                let _ = writeln!(out, "            next: {step}");
            }
        }
    }
    let _ = writeln!(out);
    let build = if report.can_build() {
        "ready"
    } else if report.can_build_llvm() {
        "NOT ready (steps 1-5, up to the cores' LLVM IR: ready)"
    } else {
        "NOT ready"
    };
    let _ = writeln!(
        out,
        "build: {build}   NPU run: {}   emulator: always available (`aiec run FILE --emulate`)",
        if report.can_run() { "ready" } else { "NOT ready" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        assert_eq!(
            pick_version_line("\nclang version 19.0.0 (llvm-aie)\nTarget: x\n").as_deref(),
            Some("clang version 19.0.0 (llvm-aie)")
        );
        assert_eq!(pick_version_line("aiecc 1.0\n").as_deref(), Some("aiecc 1.0"));
        assert_eq!(pick_version_line("  \n"), None);
        let aie_opt = "Debian LLVM version 22.1.8\n  Optimized build.\naie-opt \n";
        assert_eq!(mlir_tool_version("aie-opt", aie_opt).as_deref(), Some("aie-opt (Debian LLVM version 22.1.8)"));
        let with_commit = "LLVM (http://llvm.org/):\n  LLVM version 20.0.0git\n  Optimized build.\naie-translate 1e400306\n";
        assert_eq!(
            mlir_tool_version("aie-translate", with_commit).as_deref(),
            Some("aie-translate 1e400306 (LLVM version 20.0.0git)")
        );
    }
}
