//! Compiles the C++ shim over XRT's native API, but only where XRT >= 2.17 is installed.
//! Elsewhere the crate still builds; `cfg(xrt_available)` is left unset and the reason is
//! passed to the library in `XRT_SYS_UNAVAILABLE` so every call can say why.

#[path = "src/detect.rs"]
#[allow(dead_code)]
mod detect;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(xrt_available)");
    println!("cargo:rerun-if-env-changed=XILINX_XRT");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/detect.rs");
    println!("cargo:rerun-if-changed=src/shim.cpp");

    let prefix = detect::prefix_from_env(std::env::var("XILINX_XRT").ok().as_deref());
    match detect::detect(&prefix) {
        Ok(install) => {
            cc::Build::new()
                .cpp(true)
                .std("c++17")
                .file("src/shim.cpp")
                .include(&install.include_dir)
                .warnings(false)
                .compile("xrt_sys_shim");
            println!("cargo:rustc-link-search=native={}", install.lib_dir.display());
            println!("cargo:rustc-link-lib=dylib=xrt_coreutil");
            println!("cargo:rustc-cfg=xrt_available");
            println!("cargo:rustc-env=XRT_SYS_VERSION={}", install.version_string);
            println!("cargo:rustc-env=XRT_SYS_PREFIX={}", install.prefix.display());
        }
        Err(why) => {
            // One line: it becomes a compile-time string in the library.
            let why = why.replace('\n', " ");
            println!("cargo:rustc-env=XRT_SYS_UNAVAILABLE={why}");
            println!("cargo:rustc-env=XRT_SYS_PREFIX={}", prefix.display());
        }
    }
}
