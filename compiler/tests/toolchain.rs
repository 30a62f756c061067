//! The toolchain without mlir-aie installed: toolchain.toml parsing and precedence, the build
//! driver against fake tools (shell scripts that record their argv and write plausible outputs),
//! the doctor, the `aiec build` / `aiec doctor` commands, and — only with AIEC_TEST_NPU=1 on a
//! Ryzen AI machine — compile, build and run on the NPU. The real aie-opt and aie-translate are
//! exercised by real_toolchain.rs.

use aiec::toolchain::config::{Origin, Overrides, Tool, Toolchain, ToolchainError};
use aiec::toolchain::doctor::{self, NpuPaths, Status};
use aiec::toolchain::driver::{self, BuildError, Until};
use aiec::toolchain::steps::{self, Core, StepError};
use aiec::DeviceModel;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn write_script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// How the fake aiecc behaves.
#[derive(Clone, Copy, PartialEq)]
enum Aiecc {
    Works,
    Fails,
    WritesNothing,
}

/// A fake install tree: mlir-aie/bin/{aie-opt,aie-translate,aiecc,bootgen}, peano/bin/clang,
/// xrt/bin/{xclbinutil,xrt-smi}. Every tool appends one line "<name> <cwd> <args...>" to `log`.
struct FakeTools {
    root: tempfile::TempDir,
    log: PathBuf,
}

impl FakeTools {
    /// `aie_opt_fails_on`: a pass name; the fake aie-opt fails on the pipeline that holds it,
    /// printing a located error about its input file the way mlir-aie does.
    fn new(aiecc: Aiecc, aie_opt_fails_on: Option<&str>) -> FakeTools {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let log = r.join("argv.log");
        let record = |name: &str| format!("echo \"{name} $(pwd) $*\" >> '{}'\n", log.display());
        let fail = match aie_opt_fails_on {
            Some(pass) => format!(
                "case \"$p\" in *{pass}*) echo 'warning: something earlier' >&2\n\
                 echo \"$in:7:5: error: 'aie.flow' op could not be routed\" >&2\n\
                 echo \"$in:7:5: note: see current operation\" >&2\n\
                 echo \"$in:9:1: error: a second error\" >&2; exit 1;; esac\n"
            ),
            None => String::new(),
        };
        // aie-opt --pass-pipeline=P IN -o OUT: copy IN to OUT under a marker line.
        let aie_opt = format!(
            "{rec}[ \"$1\" = --version ] && {{ printf 'Fake LLVM version 22.1.8\\n  Optimized build.\\naie-opt \\n'; exit 0; }}\n\
             case \"$1\" in --pass-pipeline=*) p=\"${{1#--pass-pipeline=}}\";; *) echo 'usage: aie-opt --pass-pipeline=P IN -o OUT' >&2; exit 2;; esac\n\
             in=\"$2\"; out=\"$4\"\n[ \"$3\" = \"-o\" ] && [ -f \"$in\" ] || {{ echo 'usage: aie-opt --pass-pipeline=P IN -o OUT' >&2; exit 2; }}\n\
             {fail}{{ echo '// aie-opt'; cat \"$in\"; }} > \"$out\"\n",
            rec = record("aie-opt")
        );
        write_script(&r.join("mlir-aie/bin/aie-opt"), &aie_opt);
        let aie_translate = format!(
            "{}case \"$1\" in\n\
             --version) printf 'Fake LLVM version 22.1.8\\naie-translate \\n';;\n\
             --aie-npu-to-binary) [ \"$2\" = --aie-output-binary ] && [ \"$4\" = -o ] && [ -f \"$3\" ] || exit 2; printf '\\001\\000\\000\\000' > \"$5\";;\n\
             --mlir-to-llvmir) [ \"$3\" = -o ] && [ -f \"$2\" ] || exit 2; echo '; fake LLVM IR' > \"$4\";;\n\
             *) exit 2;;\nesac\n",
            record("aie-translate")
        );
        write_script(&r.join("mlir-aie/bin/aie-translate"), &aie_translate);
        let aiecc_body = match aiecc {
            Aiecc::Works => format!(
                "{rec}for a in \"$@\"; do last=\"$a\"; case \"$a\" in --xclbin-name=*) x=\"${{a#--xclbin-name=}}\";; --npu-insts-name=*) i=\"${{a#--npu-insts-name=}}\";; esac; done\n\
                 [ -f \"$last\" ] || {{ echo \"aiecc: no input $last\" >&2; exit 2; }}\n\
                 [ \"$(basename \"$last\")\" = design.mlir ] || {{ echo 'aiecc: input was not the design' >&2; exit 3; }}\n\
                 [ -x \"$PEANO_INSTALL_DIR/bin/clang\" ] || {{ echo 'aiecc: no peano' >&2; exit 4; }}\n\
                 echo \"env bootgen=$(command -v bootgen) xclbinutil=$(command -v xclbinutil)\" >> '{log}'\n\
                 echo 'compiling core (0, 2) with peano'\n\
                 echo 'note: packing xclbin' >&2\n\
                 printf 'xclbin2\\000fake' > \"$x\"\n\
                 printf '\\001\\002\\003\\004\\377\\000\\000\\200' > \"$i\"\n",
                rec = record("aiecc"),
                log = log.display()
            ),
            Aiecc::Fails => format!("{}echo 'compiling core (0, 2)'\necho 'aiecc: warning: something earlier' >&2\necho 'error: could not route the flows of @in0' >&2\nexit 1\n", record("aiecc")),
            Aiecc::WritesNothing => format!("{}exit 0\n", record("aiecc")),
        };
        write_script(&r.join("mlir-aie/bin/aiecc"), &aiecc_body);
        write_script(&r.join("mlir-aie/bin/bootgen"), &record("bootgen"));
        write_script(
            &r.join("peano/bin/clang"),
            &format!(
                "{}echo 'clang version 19.0.0git (llvm-aie fake)'\necho 'Target: aie2-none-unknown-elf'\n",
                record("clang")
            ),
        );
        write_script(
            &r.join("xrt/bin/xclbinutil"),
            &format!("{}echo '****'\necho '       XRT Build Version: 2.17.0 (fake)'\n", record("xclbinutil")),
        );
        write_script(&r.join("xrt/bin/xrt-smi"), &format!("{}echo 'xrt-smi fake'\n", record("xrt-smi")));
        FakeTools { root, log }
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    fn toolchain(&self) -> Toolchain {
        let overrides = Overrides {
            mlir_aie: Some(self.dir("mlir-aie")),
            peano: Some(self.dir("peano")),
            xrt: Some(self.dir("xrt")),
            device: None,
        };
        // PATH holds only the shell utilities the fake scripts use.
        let env = |k: &str| (k == "PATH").then(|| "/usr/bin:/bin".to_string());
        Toolchain::resolve(Some(&workspace().join("toolchain.toml")), &env, &overrides).unwrap()
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// The calls of one tool, without the tool name and working directory.
    fn calls_of(&self, tool: &str) -> Vec<String> {
        let cwd = std::env::current_dir().unwrap();
        self.calls()
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("{tool} ")))
            .map(|c| c.strip_prefix(&format!("{} ", cwd.display())).unwrap_or(c).to_string())
            .collect()
    }
}

const DESIGN: &str = "module {\n  aie.device(npu1) {\n    %tile_0_2 = aie.tile(0, 2)\n    %core_0_2 = aie.core(%tile_0_2) {\n      aie.end\n    }\n  }\n}\n";

fn design_in(dir: &Path, text: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("design.mlir");
    fs::write(&p, text).unwrap();
    p
}

// ---------------------------------------------------------------- the build driver

#[test]
fn build_runs_the_five_steps_then_aiecc_and_files_flow_between_them() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().canonicalize().unwrap();
    let design = design_in(&out_dir, DESIGN);
    let mut log = Vec::new();
    let built = driver::build(&design, &out_dir, "npu1", &fake.toolchain(), &mut log).unwrap();

    // The five steps, each on the previous one's output (step 5 on step 2's), with the pipelines
    // filled in for aie2 and the one core.
    let b = |name: &str| out_dir.join("build").join(name).display().to_string();
    let opt = |pipeline: &str, input: &str, output: &str| format!("--pass-pipeline={pipeline} {input} -o {output} --mlir-print-debuginfo");
    assert_eq!(
        fake.calls_of("aie-opt"),
        vec![
            opt(
                "builtin.module(convert-vector-to-aievec{aie-target=aie2 target-backend=llvmir})",
                &design.display().to_string(),
                &b("1-aievec.mlir")
            ),
            opt(steps::RESOURCES_PIPELINE, &b("1-aievec.mlir"), &b("2-resources.mlir")),
            opt(steps::ROUTING_PIPELINE, &b("2-resources.mlir"), &b("3-routing.mlir")),
            opt(steps::NPU_PIPELINE, &b("3-routing.mlir"), &b("4-npu.mlir")),
            opt(
                "builtin.module(aie.device(aie-localize-locks,aie-normalize-address-spaces,aie-transform-bfp-types),aie-standard-lowering{tilecol=0 tilerow=2},aiex-standard-lowering,convert-aievec-to-llvm{aie-target=aie2},canonicalize,cse,expand-strided-metadata,lower-affine,arith-expand,finalize-memref-to-llvm,convert-func-to-llvm,convert-to-llvm,convert-vector-to-llvm,convert-ub-to-llvm,canonicalize,cse)",
                &b("2-resources.mlir"),
                &b("core_0_2.mlir")
            ),
        ]
    );
    assert_eq!(
        fake.calls_of("aie-translate"),
        vec![
            format!(
                "--aie-npu-to-binary --aie-output-binary {} -o {}",
                b("4-npu.mlir"),
                out_dir.join("insts.bin").display()
            ),
            format!("--mlir-to-llvmir {} -o {}", b("core_0_2.mlir"), b("core_0_2.ll")),
        ]
    );
    let report = &built.steps;
    let names: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["aievec", "resources", "routing", "npu-insts", "core-llvm"]);
    assert_eq!(report.cores, vec![Core { col: 0, row: 2 }]);
    assert_eq!(report.steps[3].outputs, vec![out_dir.join("build/4-npu.mlir"), out_dir.join("insts.bin")]);
    assert_eq!(report.steps[4].commands.len(), 2);
    assert_eq!(fs::read_to_string(out_dir.join("build/core_0_2.ll")).unwrap(), "; fake LLVM IR\n");
    assert_eq!(
        fs::read_to_string(out_dir.join("build/1-aievec.mlir")).unwrap(),
        format!("// aie-opt\n{DESIGN}")
    );

    // Then aiecc, on design.mlir itself, in the output directory.
    let calls = fake.calls();
    assert_eq!(calls.len(), 9, "5 aie-opt, 2 aie-translate, aiecc, and aiecc's environment line: {calls:#?}");
    let expected_aiecc = format!(
        "aiecc {} --no-xchesscc --no-xbridge --peano {} --no-compile-host --tmpdir {} --aie-generate-xclbin --xclbin-name=final.xclbin --aie-generate-npu-insts --npu-insts-name=insts.bin {}",
        out_dir.display(),
        fake.dir("peano").display(),
        out_dir.join("build/aiecc.prj").display(),
        design.display()
    );
    assert_eq!(calls[7], expected_aiecc);
    // aiecc finds bootgen and xclbinutil on PATH: the driver put their install dirs there.
    assert_eq!(
        calls[8],
        format!(
            "env bootgen={} xclbinutil={}",
            fake.dir("mlir-aie/bin/bootgen").display(),
            fake.dir("xrt/bin/xclbinutil").display()
        )
    );

    // aiecc's outputs are what the build returns.
    assert_eq!(built.xclbin.as_deref(), Some(out_dir.join("final.xclbin").as_path()));
    assert_eq!(built.insts, out_dir.join("insts.bin"));
    assert_eq!(fs::read(out_dir.join("final.xclbin")).unwrap(), b"xclbin2\0fake");
    assert_eq!(built.insts_words, 2);
    assert_eq!(aiec_runtime::insts::read_insts(&built.insts).unwrap(), vec![0x0403_0201, 0x8000_00ff]);
    assert!(built.missing.is_empty());
    assert_eq!(built.commands.len(), 8);
    assert!(built.commands[7].contains("--npu-insts-name=insts.bin"));

    // One line per step, then aiecc's command line and its output streamed, stdout and stderr alike.
    let log = String::from_utf8(log).unwrap();
    for line in ["step 1 aievec", "step 4 npu-insts", "step 5 core-llvm  ok", "1 core: build/core_0_2.ll"] {
        assert!(log.contains(line), "{line} in {log}");
    }
    assert!(log.contains("build [aiecc]: "), "{log}");
    assert!(log.contains("compiling core (0, 2) with peano"), "{log}");
    assert!(log.contains("note: packing xclbin"), "{log}");
    assert!(log.contains("(2 instruction words)"), "{log}");
}

#[test]
fn a_failing_aiecc_reports_its_command_status_and_stderr() {
    let fake = FakeTools::new(Aiecc::Fails, None);
    let out = tempfile::tempdir().unwrap();
    let design = design_in(out.path(), DESIGN);
    let mut log = Vec::new();
    let err = driver::build(&design, out.path(), "npu1", &fake.toolchain(), &mut log).unwrap_err();
    match &err {
        BuildError::StepFailed {
            step,
            command_line,
            status,
            stderr_tail,
        } => {
            assert_eq!(step, "aiecc");
            assert!(command_line.contains("/mlir-aie/bin/aiecc --no-xchesscc"), "{command_line}");
            assert_eq!(status, "exit status 1");
            assert_eq!(stderr_tail, "aiecc: warning: something earlier\nerror: could not route the flows of @in0");
        }
        other => panic!("expected StepFailed, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(shown.starts_with("step 'aiecc' failed (exit status 1)"), "{shown}");
    assert!(shown.contains("could not route"), "{shown}");
    assert_eq!(fake.calls().len(), 8, "the five steps ran, then aiecc");
    assert!(!out.path().join("final.xclbin").exists());
    assert!(String::from_utf8(log).unwrap().contains("compiling core (0, 2)"));
}

#[test]
fn a_failing_mlir_aie_step_names_the_step_its_input_and_the_first_error() {
    let fake = FakeTools::new(Aiecc::Works, Some("aie-create-pathfinder-flows"));
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().canonicalize().unwrap();
    let design = design_in(&out_dir, DESIGN);
    let mut log = Vec::new();
    let err = driver::build(&design, &out_dir, "npu1", &fake.toolchain(), &mut log).unwrap_err();
    let input = out_dir.join("build/2-resources.mlir");
    match &err {
        BuildError::Step(StepError::Failed(f)) => {
            assert_eq!((f.number, f.name, f.core), (3, "routing", None));
            assert_eq!(f.input, input);
            assert!(
                f.command_line
                    .contains("--pass-pipeline=builtin.module(aie.device(aie-create-pathfinder-flows))"),
                "{}",
                f.command_line
            );
            assert_eq!(f.status, "exit status 1");
            // The first error line, with its location as fields.
            let d = f.diagnostic.as_ref().unwrap();
            let at = d.location.as_ref().unwrap();
            assert_eq!((at.path.as_path(), at.line, at.col), (input.as_path(), 7, 5));
            assert_eq!(d.message, "error: 'aie.flow' op could not be routed");
            assert_eq!(f.stderr_file.as_deref(), Some(out_dir.join("build/3-routing.stderr").as_path()));
            let completed: Vec<&str> = f.completed.iter().map(|s| s.name).collect();
            assert_eq!(completed, ["aievec", "resources"]);
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "step 3 routing (flow routing) failed: {}:7:5: error: 'aie.flow' op could not be routed\n",
            input.display()
        )),
        "{shown}"
    );
    assert!(shown.contains(&format!("  input:   {}", input.display())), "{shown}");
    assert!(shown.contains("  command: ") && shown.contains("3-routing.stderr"), "{shown}");
    assert!(!shown.contains("a second error"), "only the first error: {shown}");
    assert!(String::from_utf8(log).unwrap().contains("step 3 routing    FAIL"));
    assert!(fake.calls_of("aiecc").is_empty(), "nothing after the failing step ran");
    assert_eq!(fake.calls_of("aie-opt").len(), 3);

    // A failure in step 5 names the core.
    let fake = FakeTools::new(Aiecc::Works, Some("aie-standard-lowering"));
    let err = driver::build_until(&design, &out_dir, "npu1", &fake.toolchain(), Until::CoreLlvm, &mut Vec::new()).unwrap_err();
    match &err {
        BuildError::Step(StepError::Failed(f)) => {
            assert_eq!((f.number, f.core), (5, Some(Core { col: 0, row: 2 })));
            assert_eq!(f.completed.len(), 4);
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
    assert!(err.to_string().starts_with("step 5 core-llvm (core LLVM IR, core (0, 2)) failed: "), "{err}");
    // The stages of the earlier, longer run are gone: nothing stale passes for this run's.
    assert!(!out_dir.join("build/core_0_2.ll").exists() && !out_dir.join("build/3-routing.stderr").exists());
}

#[test]
fn without_peano_the_build_stops_after_the_core_llvm_ir() {
    let fake = FakeTools::new(Aiecc::Works, None);
    fs::remove_file(fake.dir("peano/bin/clang")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let design = design_in(out.path(), DESIGN);
    match driver::build(&design, out.path(), "npu1", &fake.toolchain(), &mut Vec::new()).unwrap_err() {
        BuildError::StoppedAfterLlvm { missing } => assert_eq!(missing, vec![Tool::PeanoClang]),
        other => panic!("expected StoppedAfterLlvm, got {other:?}"),
    }
    assert!(fake.calls_of("aiecc").is_empty());
    assert_eq!(fake.calls_of("aie-opt").len(), 5, "the five steps ran");
    assert!(out.path().join("insts.bin").is_file() && out.path().join("build/core_0_2.ll").is_file());

    // build_until reports the same as data, with the line to show.
    let built = driver::build_until(&design, out.path(), "npu1", &fake.toolchain(), Until::Xclbin, &mut Vec::new()).unwrap();
    assert_eq!((built.xclbin.as_ref(), built.missing.as_slice()), (None, &[Tool::PeanoClang][..]));
    let line = built.stop_message().unwrap();
    assert!(line.starts_with("stopped after step 5 (core LLVM IR): Peano (llvm-aie) is needed"), "{line}");
    assert!(line.contains("PEANO_INSTALL_DIR") && line.contains("aiec doctor"), "{line}");

    // Asked to end there, the build needs neither Peano nor aiecc and reports nothing missing.
    let built = driver::build_until(&design, out.path(), "npu1", &fake.toolchain(), Until::CoreLlvm, &mut Vec::new()).unwrap();
    assert!(built.xclbin.is_none() && built.missing.is_empty() && built.stop_message().is_none());
    assert_eq!(built.insts_words, 1);
    assert!(fake.calls_of("aiecc").is_empty());
}

#[test]
fn missing_step_tools_are_reported_before_anything_runs() {
    let fake = FakeTools::new(Aiecc::Works, None);
    fs::remove_file(fake.dir("mlir-aie/bin/aie-translate")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let design = design_in(out.path(), DESIGN);
    match driver::build_until(&design, out.path(), "npu1", &fake.toolchain(), Until::CoreLlvm, &mut Vec::new()).unwrap_err() {
        BuildError::MissingTool { tool, hint } => {
            assert_eq!(tool, "aie-translate");
            assert!(hint.contains("MLIR_AIE_INSTALL_DIR") && !hint.contains("also missing"), "{hint}");
        }
        other => panic!("expected MissingTool, got {other:?}"),
    }
    assert!(fake.calls().is_empty(), "nothing ran: {:?}", fake.calls());

    // Nothing configured and an empty PATH: the first is named, the rest listed.
    let tc = Toolchain::from_toml("", Path::new("/x/toolchain.toml"), &no_env, &Overrides::default()).unwrap();
    match driver::build(&design, out.path(), "npu1", &tc, &mut Vec::new()).unwrap_err() {
        BuildError::MissingTool { tool, hint } => {
            assert_eq!(tool, "aie-opt");
            assert!(hint.contains("MLIR_AIE_INSTALL_DIR"), "{hint}");
            assert!(hint.contains("also missing: aie-translate, aiecc, peano-clang, bootgen, xclbinutil"), "{hint}");
        }
        other => panic!("expected MissingTool, got {other:?}"),
    }
}

#[test]
fn stale_outputs_do_not_pass_for_a_new_build() {
    let fake = FakeTools::new(Aiecc::WritesNothing, None);
    let out = tempfile::tempdir().unwrap();
    let design = design_in(out.path(), DESIGN);
    fs::write(out.path().join("final.xclbin"), b"old").unwrap();
    fs::write(out.path().join("insts.bin"), [0u8; 8]).unwrap();
    match driver::build(&design, out.path(), "npu1", &fake.toolchain(), &mut Vec::new()).unwrap_err() {
        BuildError::MissingOutput { step, path } => {
            assert_eq!(step, "aiecc");
            assert!(path.ends_with("final.xclbin"));
        }
        other => panic!("expected MissingOutput, got {other:?}"),
    }
    assert!(!out.path().join("final.xclbin").exists());
    // insts.bin is step 4's of this build, not the old one.
    assert_eq!(fs::read(out.path().join("insts.bin")).unwrap(), [1, 0, 0, 0]);
}

#[test]
fn the_design_must_target_the_requested_device() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let out = tempfile::tempdir().unwrap();
    let design = design_in(out.path(), &DESIGN.replace("npu1", "npu2"));
    match driver::build(&design, out.path(), "npu1", &fake.toolchain(), &mut Vec::new()).unwrap_err() {
        BuildError::DeviceMismatch { found, requested, .. } => assert_eq!((found.as_str(), requested.as_str()), ("npu2", "npu1")),
        other => panic!("expected DeviceMismatch, got {other:?}"),
    }
    let not_aie = design_in(&out.path().join("b"), "module {}\n");
    assert!(matches!(
        driver::build(&not_aie, out.path(), "npu1", &fake.toolchain(), &mut Vec::new()),
        Err(BuildError::NotADesign { .. })
    ));
    assert!(fake.calls().is_empty());

    // npu2 designs are lowered for aie2p.
    let npu2 = design_in(&out.path().join("c"), &DESIGN.replace("npu1", "npu2"));
    let built = driver::build_until(&npu2, &out.path().join("c"), "npu2", &fake.toolchain(), Until::CoreLlvm, &mut Vec::new()).unwrap();
    assert_eq!(built.steps.target, steps::Target::Aie2p);
    assert!(fake.calls_of("aie-opt")[0].contains("aie-target=aie2p"), "{:?}", fake.calls());
}

#[test]
fn compiled_examples_build_with_the_fake_toolchain() {
    // What `aiec build` does: compile the kernel, write design.mlir, drive the toolchain.
    let add_one = "kernel add_one {\n  dim N = 4096 tile 256\n  in  x: i32[N]\n  out y: i32[N]\n  spread N over cores\n  y[N] = x[N] + 1\n}\n";
    let matmul = fs::read_to_string(workspace().join("dsl-examples/matmul.tile")).unwrap();
    for (name, source) in [("add_one.tile", add_one.to_string()), ("matmul.tile", matmul)] {
        let fake = FakeTools::new(Aiecc::Works, None);
        let compiled = aiec::compile_source(name, &source, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = tempfile::tempdir().unwrap();
        let design = design_in(out.path(), &compiled.mlir);
        let built = driver::build(&design, out.path(), "npu1", &fake.toolchain(), &mut Vec::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(built.xclbin.is_some_and(|x| x.is_file()) && built.insts.is_file());
        // Step 1 read the compiler's own output, and every core of the design got its LLVM IR.
        let aievec = fs::read_to_string(built.work_dir.join("1-aievec.mlir")).unwrap();
        assert_eq!(aievec.strip_prefix("// aie-opt\n").unwrap(), compiled.mlir, "{name}");
        assert_eq!(built.steps.cores.len(), compiled.design.cores.len(), "{name}");
        for core in &built.steps.cores {
            assert!(built.work_dir.join(format!("core_{}_{}.ll", core.col, core.row)).is_file(), "{name}: {core}");
        }
    }
}

// ---------------------------------------------------------------- toolchain.toml

const FULL: &str = r#"# test
[device]
default = "npu2"

[mlir-aie]
install_dir = "/opt/mlir-aie"

[peano]
install_dir = "peano-here"

[xrt]
prefix = "/opt/xrt-file"

[tools]
bootgen = "/opt/bootgen/bin/bootgen"
"#;

#[test]
fn parses_every_key_with_its_line() {
    let path = Path::new("/proj/toolchain.toml");
    let tc = Toolchain::from_toml(FULL, path, &no_env, &Overrides::default()).unwrap();
    let at = |line| Origin::File {
        path: path.to_path_buf(),
        line,
    };
    assert_eq!(tc.file.as_deref(), Some(path));
    assert_eq!((tc.device.value.as_str(), tc.device.origin.clone()), ("npu2", at(3)));
    let mlir_aie = tc.mlir_aie.clone().unwrap();
    assert_eq!((mlir_aie.value, mlir_aie.origin), (PathBuf::from("/opt/mlir-aie"), at(6)));
    // Relative paths are relative to the file's directory.
    let peano = tc.peano.clone().unwrap();
    assert_eq!((peano.value, peano.origin), (PathBuf::from("/proj/peano-here"), at(9)));
    assert_eq!((tc.xrt.value.clone(), tc.xrt.origin.clone()), (PathBuf::from("/opt/xrt-file"), at(12)));
    let bootgen = &tc.tools[&Tool::Bootgen];
    assert_eq!(
        (bootgen.value.clone(), bootgen.origin.clone()),
        (PathBuf::from("/opt/bootgen/bin/bootgen"), at(15))
    );
    assert_eq!(tc.device.origin.to_string(), "/proj/toolchain.toml:3");
}

#[test]
fn precedence_is_file_then_environment_then_flags() {
    let path = Path::new("/proj/toolchain.toml");
    let vars: HashMap<&str, &str> = [
        ("MLIR_AIE_INSTALL_DIR", "/env/mlir-aie"),
        ("PEANO_INSTALL_DIR", "/env/peano"),
        ("XILINX_XRT", "/env/xrt"),
        ("AIEC_DEVICE", "npu1"),
    ]
    .into();
    let env = |k: &str| vars.get(k).map(|v| v.to_string());

    let from_env = Toolchain::from_toml(FULL, path, &env, &Overrides::default()).unwrap();
    assert_eq!(from_env.device.value, "npu1");
    assert_eq!(from_env.device.origin, Origin::Env("AIEC_DEVICE"));
    assert_eq!(from_env.mlir_aie.as_ref().unwrap().value, Path::new("/env/mlir-aie"));
    assert_eq!(from_env.peano.as_ref().unwrap().origin, Origin::Env("PEANO_INSTALL_DIR"));
    assert_eq!(from_env.xrt.value, Path::new("/env/xrt"));

    let flags = Overrides {
        device: Some("npu2".into()),
        mlir_aie: Some("/flag/mlir-aie".into()),
        peano: Some("/flag/peano".into()),
        xrt: Some("/flag/xrt".into()),
    };
    let from_flags = Toolchain::from_toml(FULL, path, &env, &flags).unwrap();
    assert_eq!(
        (from_flags.device.value.as_str(), from_flags.device.origin.clone()),
        ("npu2", Origin::Flag("--device"))
    );
    assert_eq!(from_flags.mlir_aie.as_ref().unwrap().value, Path::new("/flag/mlir-aie"));
    assert_eq!(from_flags.mlir_aie.as_ref().unwrap().origin, Origin::Flag("--mlir-aie"));
    assert_eq!(from_flags.peano.as_ref().unwrap().value, Path::new("/flag/peano"));
    assert_eq!(
        (from_flags.xrt.value.clone(), from_flags.xrt.origin.clone()),
        (PathBuf::from("/flag/xrt"), Origin::Flag("--xrt"))
    );

    // One flag leaves the other layers in charge of the rest; an empty variable counts as unset.
    let partial_env = |k: &str| match k {
        "PEANO_INSTALL_DIR" => Some("/env/peano".to_string()),
        "XILINX_XRT" => Some("".to_string()),
        _ => None,
    };
    let mixed = Toolchain::from_toml(
        FULL,
        path,
        &partial_env,
        &Overrides {
            mlir_aie: Some("/flag/m".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(mixed.mlir_aie.unwrap().origin, Origin::Flag("--mlir-aie"));
    assert_eq!(mixed.peano.unwrap().origin, Origin::Env("PEANO_INSTALL_DIR"));
    assert_eq!(
        mixed.xrt.origin,
        Origin::File {
            path: path.to_path_buf(),
            line: 12
        }
    );
    assert_eq!(mixed.device.value, "npu2");

    // No file at all: defaults.
    let defaults = Toolchain::from_toml("", path, &no_env, &Overrides::default()).unwrap();
    assert_eq!((defaults.device.value.as_str(), defaults.device.origin.clone()), ("npu1", Origin::Default));
    assert!(defaults.mlir_aie.is_none() && defaults.peano.is_none());
    assert_eq!(defaults.xrt.value, Path::new("/opt/xilinx/xrt"));
}

fn parse_err(text: &str) -> ToolchainError {
    Toolchain::from_toml(text, Path::new("tc/toolchain.toml"), &no_env, &Overrides::default()).unwrap_err()
}

#[test]
fn errors_name_the_key_and_the_line() {
    match parse_err("[device]\ndefault = \"npu1\"\n\n[mlir-aie]\ninstal_dir = \"/opt\"\n") {
        ToolchainError::Parse { line, key, message, .. } => {
            assert_eq!(line, 5);
            assert_eq!(key.as_deref(), Some("instal_dir"));
            assert!(message.contains("unknown field `instal_dir`") && message.contains("install_dir"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = parse_err("[device]\ndefault = 3\n");
    match &e {
        ToolchainError::Parse {
            line: 2,
            key: Some(k),
            message,
            ..
        } => {
            assert_eq!(k, "default");
            assert!(message.contains("string"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("tc/toolchain.toml:2:"), "{e}");
    assert!(e.to_string().contains("key `default`"), "{e}");

    match parse_err("\n[device]\ndefault = \"npu9\"\n") {
        ToolchainError::Parse { line: 3, column, message, .. } => {
            assert_eq!(column, 11);
            assert!(message.contains("unknown device 'npu9'") && message.contains("npu1, npu2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match parse_err("[tools]\nbootgen = \"/b\"\nchess = \"/c\"\n") {
        ToolchainError::Parse { line: 3, message, .. } => assert!(message.contains("unknown tool 'chess'") && message.contains("xclbinutil"), "{message}"),
        other => panic!("{other:?}"),
    }
    match parse_err("[peano]\ninstall_dir = \"\"\n") {
        ToolchainError::Parse { line: 2, key, message, .. } => assert_eq!((key.as_deref(), message.as_str()), (Some("install_dir"), "empty path")),
        other => panic!("{other:?}"),
    }
    match parse_err("[xrt]\nprefix = \"/opt\n") {
        ToolchainError::Parse { line: 2, .. } => {}
        other => panic!("unterminated string must be an error on line 2: {other:?}"),
    }
    match parse_err("[gpu]\nx = 1\n") {
        ToolchainError::Parse { line: 1, message, .. } => assert!(message.contains("unknown field `gpu`"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A bad device from the environment names its origin.
    let env = |k: &str| (k == "AIEC_DEVICE").then(|| "xdna9".to_string());
    let e = Toolchain::from_toml("", Path::new("t.toml"), &env, &Overrides::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown device 'xdna9' (from environment AIEC_DEVICE): expected one of npu1, npu2"
    );
}

#[test]
fn the_file_is_found_by_walking_up_or_given_explicitly() {
    let root = tempfile::tempdir().unwrap();
    let nested = root.path().join("a/b/c");
    fs::create_dir_all(&nested).unwrap();
    assert_eq!(Toolchain::find_file(&nested), None, "no toolchain.toml above a fresh temp dir");
    fs::write(root.path().join("a/toolchain.toml"), "[device]\ndefault = \"npu2\"\n").unwrap();
    assert_eq!(Toolchain::find_file(&nested), Some(root.path().join("a/toolchain.toml")));

    let given = root.path().join("a/toolchain.toml");
    let tc = Toolchain::resolve(Some(&given), &no_env, &Overrides::default()).unwrap();
    assert_eq!(tc.device.value, "npu2");
    match Toolchain::resolve(Some(&root.path().join("missing.toml")), &no_env, &Overrides::default()).unwrap_err() {
        ToolchainError::Io { path, .. } => assert!(path.ends_with("missing.toml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_workspace_toolchain_toml_is_valid() {
    let tc = Toolchain::resolve(Some(&workspace().join("toolchain.toml")), &no_env, &Overrides::default()).unwrap();
    assert_eq!(tc.device.value, "npu1");
    assert!(tc.mlir_aie.is_some() && tc.peano.is_some());
}

#[test]
fn explicit_tool_paths_win_and_peano_clang_never_comes_from_path() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let alt = fake.dir("elsewhere/bootgen");
    write_script(&alt, "exit 0\n");
    let text = format!("[tools]\nbootgen = \"{}\"\n", alt.display());
    let path_env = format!("{}:{}", fake.dir("peano/bin").display(), fake.dir("mlir-aie/bin").display());
    let env = |k: &str| (k == "PATH").then(|| path_env.clone());
    let tc = Toolchain::from_toml(&text, &fake.dir("toolchain.toml"), &env, &Overrides::default()).unwrap();
    let bootgen = tc.find(Tool::Bootgen).unwrap();
    assert_eq!(bootgen.path, alt);
    assert!(bootgen.via.starts_with("[tools] bootgen"), "{}", bootgen.via);
    assert_eq!(tc.find(Tool::Aiecc).unwrap().via, "PATH");
    assert!(tc.find(Tool::PeanoClang).is_none(), "a clang on PATH is not Peano");

    // An explicit path that is not there is missing, and the hint says to fix that path.
    let tc = Toolchain::from_toml(
        "[tools]\nxclbinutil = \"/nope/xclbinutil\"\n",
        Path::new("/t/toolchain.toml"),
        &no_env,
        &Overrides::default(),
    )
    .unwrap();
    assert!(tc.find(Tool::Xclbinutil).is_none());
    assert!(tc
        .hint(Tool::Xclbinutil)
        .contains("/nope/xclbinutil (set by [tools] xclbinutil at /t/toolchain.toml:2)"));
}

// ---------------------------------------------------------------- doctor

fn no_npu(dir: &Path) -> NpuPaths {
    NpuPaths {
        accel_node: dir.join("accel0"),
        driver_dirs: vec![dir.join("amdxdna")],
    }
}

#[test]
fn doctor_reports_found_tools_with_versions_and_the_missing_npu() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let mut out = Vec::new();
    let report = doctor::run_with(&fake.toolchain(), &no_npu(fake.root.path()), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(report.can_build(), "{text}");
    assert!(!report.can_run(), "no NPU here: {text}");
    match &report.check("peano-clang").unwrap().status {
        Status::Found { path, version } => {
            assert_eq!(path, &fake.dir("peano/bin/clang"));
            assert_eq!(version.as_deref(), Some("clang version 19.0.0git (llvm-aie fake)"));
        }
        other => panic!("{other:?}"),
    }
    match &report.check("xclbinutil").unwrap().status {
        Status::Found { version, .. } => assert_eq!(version.as_deref(), Some("XRT Build Version: 2.17.0 (fake)")),
        other => panic!("{other:?}"),
    }
    // aie-opt and aie-translate: LLVM's version block, then their own name (and mlir-aie commit).
    for tool in ["aie-opt", "aie-translate"] {
        match &report.check(tool).unwrap().status {
            Status::Found { version, .. } => assert_eq!(version.clone(), Some(format!("{tool} (Fake LLVM version 22.1.8)"))),
            other => panic!("{tool}: {other:?}"),
        }
    }
    assert!(text.contains("[ok]      aie-translate"), "{text}");
    let npu = report.check("NPU device").unwrap();
    assert_eq!(npu.status, Status::Missing);
    assert!(npu.next_step.as_deref().unwrap().contains("modprobe amdxdna"));
    assert!(text.contains("[missing] NPU device"), "{text}");
    assert!(text.contains("[ok]      aiecc"), "{text}");
    assert!(text.contains("build: ready   NPU run: NOT ready"), "{text}");
    // The doctor asked each tool for its version, and never ran xrt-smi without a device.
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c.starts_with("clang ") && c.ends_with("--version")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("xrt-smi") && c.contains("examine")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("bootgen")), "bootgen has no version flag: {calls:?}");
}

#[test]
fn doctor_gives_a_next_step_for_everything_missing() {
    let empty = tempfile::tempdir().unwrap();
    let tc = Toolchain::from_toml(
        "",
        &empty.path().join("toolchain.toml"),
        &no_env,
        &Overrides {
            xrt: Some(empty.path().join("xrt")),
            ..Default::default()
        },
    )
    .unwrap();
    let mut out = Vec::new();
    let report = doctor::run_with(&tc, &no_npu(empty.path()), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(!report.can_build() && !report.can_run());
    for c in &report.checks {
        assert!(!c.ok(), "{} cannot be found in an empty tree", c.name);
        assert!(c.next_step.as_deref().is_some_and(|s| !s.is_empty()), "{} has no next step", c.name);
    }
    assert!(report.check("aiecc").unwrap().next_step.as_deref().unwrap().contains("MLIR_AIE_INSTALL_DIR"));
    assert!(report.check("XRT headers").unwrap().next_step.as_deref().unwrap().contains("2.17"));
    assert!(text.contains("build: NOT ready"), "{text}");
    assert!(text.contains("next: "), "{text}");
}

#[test]
fn doctor_finds_the_npu_when_the_driver_and_node_are_there() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let sys = fake.root.path().join("sys");
    fs::create_dir_all(sys.join("amdxdna")).unwrap();
    fs::write(sys.join("accel0"), "").unwrap();
    // xrt-smi examine reporting an NPU.
    write_script(
        &fake.dir("xrt/bin/xrt-smi"),
        "echo 'Devices present'\necho '  [0000:c5:00.1]  :  NPU Phoenix'\n",
    );
    let report = doctor::run_with(&fake.toolchain(), &no_npu(&sys), &mut Vec::new());
    assert!(report.check("NPU device").unwrap().ok());
    assert!(report.check("amdxdna driver").unwrap().ok());
    match &report.check("xrt-smi examine").unwrap().status {
        Status::Found { version, .. } => assert_eq!(version.as_deref(), Some("[0000:c5:00.1]  :  NPU Phoenix")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn doctor_tells_when_xrt_is_installed_but_not_compiled_in() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let include = fake.dir("xrt/include/xrt/detail");
    fs::create_dir_all(&include).unwrap();
    fs::write(include.join("version.h"), "static const char xrt_build_version[] = \"2.18.0\";\n").unwrap();
    let report = doctor::run_with(&fake.toolchain(), &no_npu(fake.root.path()), &mut Vec::new());
    let check = report.check("XRT headers").unwrap();
    if aiec_runtime::npu::xrt::available() {
        assert!(check.ok(), "{check:?}");
    } else {
        assert_eq!(check.status, Status::Missing, "headers alone do not make this build able to call XRT");
        assert!(check.detail.contains("2.18.0") && check.detail.contains("built without it"), "{}", check.detail);
        assert!(check.next_step.as_deref().unwrap().contains("cargo clean -p xrt-sys"));
    }

    fs::write(include.join("version.h"), "static const char xrt_build_version[] = \"2.13.0\";\n").unwrap();
    let report = doctor::run_with(&fake.toolchain(), &no_npu(fake.root.path()), &mut Vec::new());
    let check = report.check("XRT headers").unwrap();
    assert_eq!(check.status, Status::Missing);
    assert!(check.detail.contains("older than 2.17"), "{}", check.detail);
}

// ---------------------------------------------------------------- the aiec commands

fn aiec(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aiec"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MLIR_AIE_INSTALL_DIR")
        .env_remove("PEANO_INSTALL_DIR")
        .env_remove("XILINX_XRT")
        .env_remove("AIEC_DEVICE")
        .output()
        .unwrap()
}

#[test]
fn aiec_build_drives_the_toolchain_given_by_flags() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let out = tempfile::tempdir().unwrap();
    let ws = workspace();
    let (m, p, x) = (fake.dir("mlir-aie"), fake.dir("peano"), fake.dir("xrt"));
    let o = aiec(
        &[
            "build",
            "dsl-examples/matmul.tile",
            "-o",
            out.path().to_str().unwrap(),
            "--mlir-aie",
            m.to_str().unwrap(),
            "--peano",
            p.to_str().unwrap(),
            "--xrt",
            x.to_str().unwrap(),
        ],
        &ws,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(out.path().join("final.xclbin").is_file() && out.path().join("insts.bin").is_file() && out.path().join("design.json").is_file());
    assert!(stderr.contains("step 5 core-llvm  ok") && stderr.contains("build [aiecc]:"), "{stderr}");
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("aiecc ")).count(), 1);

    // --stop-after-llvm ends after step 5 even with every tool there; --timings prints each step.
    let llvm_only = tempfile::tempdir().unwrap();
    let flags = ["--mlir-aie", m.to_str().unwrap(), "--peano", p.to_str().unwrap(), "--xrt", x.to_str().unwrap()];
    let mut args = vec![
        "build",
        "dsl-examples/matmul.tile",
        "-o",
        llvm_only.path().to_str().unwrap(),
        "--stop-after-llvm",
        "--timings",
    ];
    args.extend(flags);
    let o = aiec(&args, &ws);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped after step 5 (core LLVM IR) as asked: 16 cores"), "{stderr}");
    assert!(!llvm_only.path().join("final.xclbin").exists());
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("aiecc ")).count(), 1, "aiecc did not run again");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    for (i, name) in ["aievec", "resources", "routing", "npu-insts", "core-llvm"].iter().enumerate() {
        assert_eq!(lines[i][..4], ["step", &(i + 1).to_string(), name, "ok"], "{stdout}");
        assert!(lines[i][4].parse::<f64>().is_ok(), "{stdout}");
    }
    assert_eq!(lines[5], ["cores", "16"]);

    // Without Peano: the five steps, then exit 1 with the line that says what is missing.
    let no_peano = tempfile::tempdir().unwrap();
    let o = aiec(
        &[
            "build",
            "dsl-examples/matmul.tile",
            "-o",
            no_peano.path().to_str().unwrap(),
            "--mlir-aie",
            m.to_str().unwrap(),
            "--peano",
            no_peano.path().to_str().unwrap(),
            "--xrt",
            x.to_str().unwrap(),
        ],
        &ws,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("stopped after step 5 (core LLVM IR): Peano (llvm-aie) is needed"),
        "{stderr}"
    );
    assert!(stderr.contains("step 5 core-llvm  ok"), "{stderr}");
    assert!(no_peano.path().join("insts.bin").is_file() && no_peano.path().join("build/core_0_2.ll").is_file());

    // Without a toolchain: exit 1 and the missing tool named.
    let empty = tempfile::tempdir().unwrap();
    let o = aiec(
        &[
            "build",
            "dsl-examples/matmul.tile",
            "-o",
            out.path().to_str().unwrap(),
            "--mlir-aie",
            empty.path().to_str().unwrap(),
            "--peano",
            empty.path().to_str().unwrap(),
            "--xrt",
            empty.path().to_str().unwrap(),
        ],
        &ws,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("aie-opt not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn aiec_doctor_exit_code_follows_can_build() {
    let fake = FakeTools::new(Aiecc::Works, None);
    let ws = workspace();
    let (m, p, x) = (fake.dir("mlir-aie"), fake.dir("peano"), fake.dir("xrt"));
    let o = aiec(
        &[
            "doctor",
            "--mlir-aie",
            m.to_str().unwrap(),
            "--peano",
            p.to_str().unwrap(),
            "--xrt",
            x.to_str().unwrap(),
        ],
        &ws,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("clang version 19.0.0git (llvm-aie fake)"), "{stdout}");

    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().to_str().unwrap();
    let o = aiec(&["doctor", "--mlir-aie", e, "--peano", e, "--xrt", e], &ws);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[missing] aiecc"));
}

#[test]
fn aiec_run_npu_never_falls_back_silently() {
    // A toolchain.toml found by walking up from the working directory points at the stand-in tools,
    // so the build succeeds; what is missing then is the NPU itself.
    let fake = FakeTools::new(Aiecc::Works, None);
    let work = tempfile::tempdir().unwrap();
    fs::write(
        work.path().join("toolchain.toml"),
        format!(
            "[mlir-aie]\ninstall_dir = \"{}\"\n[peano]\ninstall_dir = \"{}\"\n[xrt]\nprefix = \"{}\"\n",
            fake.dir("mlir-aie").display(),
            fake.dir("peano").display(),
            fake.dir("xrt").display()
        ),
    )
    .unwrap();
    let tile = work.path().join("add_one.tile");
    fs::write(
        &tile,
        "kernel add_one {\n  dim N = 1024 tile 256\n  in  x: i32[N]\n  out y: i32[N]\n  spread N over cores\n  y[N] = x[N] + 1\n}\n",
    )
    .unwrap();
    let out_dir = work.path().join("out");
    let o = aiec(&["run", tile.to_str().unwrap(), "--npu", "-o", out_dir.to_str().unwrap()], work.path());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(out_dir.join("final.xclbin").is_file(), "the build ran with the toolchain.toml found: {stderr}");
    if !aiec_runtime::npu::xrt::available() {
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("XRT not available") && stderr.contains("2.17"), "{stderr}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("vs reference"), "nothing ran on another backend");
    }
}

// ---------------------------------------------------------------- on the NPU

/// Compile, build and run add-one and matmul on a real NPU, checking against the reference.
/// Needs a Ryzen AI machine with the toolchain: runs only when AIEC_TEST_NPU=1.
#[test]
fn npu_end_to_end() {
    if std::env::var("AIEC_TEST_NPU").as_deref() != Ok("1") {
        eprintln!("skipped: no NPU (set AIEC_TEST_NPU=1 on a Ryzen AI machine)");
        println!("skipped: no NPU (set AIEC_TEST_NPU=1 on a Ryzen AI machine)");
        return;
    }
    let ws = workspace();
    let work = tempfile::tempdir().unwrap();
    let add_one = work.path().join("add_one.tile");
    fs::write(
        &add_one,
        "kernel add_one {\n  dim N = 4096 tile 256\n  in  x: i32[N]\n  out y: i32[N]\n  spread N over cores\n  y[N] = x[N] + 1\n}\n",
    )
    .unwrap();
    for (name, file) in [("add_one", add_one), ("matmul", ws.join("dsl-examples/matmul.tile"))] {
        let dir = work.path().join(name);
        let run = |args: &[&str]| {
            let o = Command::new(env!("CARGO_BIN_EXE_aiec")).args(args).current_dir(&ws).output().unwrap();
            let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
            assert!(o.status.success(), "aiec {args:?} failed:\n{out}\n{err}");
            out
        };
        run(&["build", file.to_str().unwrap(), "-o", dir.to_str().unwrap()]);
        assert!(dir.join("final.xclbin").is_file() && dir.join("insts.bin").is_file(), "{name}: build outputs");
        let out = run(&["run", file.to_str().unwrap(), "--npu", "-o", dir.to_str().unwrap()]);
        assert!(out.contains("vs reference: bit-exact match"), "{name} on the NPU:\n{out}");
        assert!(!out.contains("MISMATCH"), "{name}:\n{out}");
    }
}
