//! Compiled Whisper kernels on disk, so a second run compiles nothing.
//!
//! One directory per design: `<cache>/<key>/design.mlir`, `design.json` and `kernel.txt` (what it
//! is). The key hashes the kernel's shape class, the device and the identity of the program that
//! compiled it (its version, and the size and modification time of its executable), so a rebuilt
//! compiler never reuses a design an older one emitted. An entry is written to a temporary
//! directory and renamed into place: a crash never leaves a half-written design behind, and two
//! processes compiling the same design both end with a whole one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aiec::DeviceModel;
use aiec_runtime::artifact::{ArtifactDir, DesignJson};

use crate::kernels::KernelSpec;

/// Why a kernel could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("compiling {kernel} for {device}: {source}")]
    Compile {
        kernel: String,
        device: String,
        #[source]
        source: aiec::CompileError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Artifact(#[from] aiec_runtime::RuntimeError),
}

/// A design ready in the cache.
#[derive(Debug, Clone)]
pub struct CachedDesign {
    pub dir: PathBuf,
    pub json: DesignJson,
    /// Whether this call compiled it (false: found on disk).
    pub compiled: bool,
}

/// The kernel cache directory.
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
    build: String,
}

impl KernelCache {
    /// A cache in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> KernelCache {
        KernelCache {
            dir: dir.into(),
            build: build_identity(),
        }
    }

    /// `$AIEC_CACHE_DIR`, else `$XDG_CACHE_HOME/aiec/kernels`, else `~/.cache/aiec/kernels`, else a
    /// directory under the system's temporary directory.
    pub fn default_dir() -> PathBuf {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = env("AIEC_CACHE_DIR") {
            return dir;
        }
        if let Some(xdg) = env("XDG_CACHE_HOME") {
            return xdg.join("aiec").join("kernels");
        }
        if let Some(home) = env("HOME") {
            return home.join(".cache").join("aiec").join("kernels");
        }
        std::env::temp_dir().join("aiec-kernels")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory `spec` compiled for `device` lives in.
    pub fn entry(&self, spec: &KernelSpec, device: &DeviceModel) -> PathBuf {
        let identity = format!("{spec:?}|{}|{}", device.name, self.build);
        self.dir.join(format!("{}-{}-{:016x}", spec.name(), device.name, fnv1a(identity.as_bytes())))
    }

    /// The design for `spec` on `device`: read from the cache, or compiled and stored.
    pub fn get_or_compile(&self, spec: &KernelSpec, device: &DeviceModel) -> Result<CachedDesign, CacheError> {
        let dir = self.entry(spec, device);
        let art = ArtifactDir::new(&dir);
        if art.mlir().is_file() && art.json().is_file() {
            let json = DesignJson::read(&art.json())?;
            return Ok(CachedDesign { dir, json, compiled: false });
        }
        let compile_error = |source| CacheError::Compile {
            kernel: spec.name(),
            device: device.name.to_string(),
            source,
        };
        let kernel = spec.kernel().map_err(compile_error)?;
        let compiled = aiec::compile_kernel(&kernel, device).map_err(compile_error)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // Unique per process and call: threads compiling the same kernel for two devices (or the
        // same design twice) must not share a scratch directory.
        static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{}-{name}", std::process::id(), NEXT_TMP.fetch_add(1, Ordering::Relaxed)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let tmp_art = ArtifactDir::new(&tmp);
        fs::write(tmp_art.mlir(), &compiled.mlir).map_err(io(&tmp_art.mlir()))?;
        fs::write(tmp_art.json(), compiled.json.to_pretty_json()).map_err(io(&tmp_art.json()))?;
        let about = format!("{spec:?}\ndevice {}\ncompiled by {}\n", device.name, self.build);
        fs::write(tmp.join("kernel.txt"), about).map_err(io(&tmp.join("kernel.txt")))?;
        if let Err(e) = fs::rename(&tmp, &dir) {
            // Another process put the same design there first: keep theirs.
            let _ = fs::remove_dir_all(&tmp);
            if !(art.mlir().is_file() && art.json().is_file()) {
                return Err(CacheError::Io { path: dir, source: e });
            }
        }
        Ok(CachedDesign {
            dir,
            json: compiled.json,
            compiled: true,
        })
    }
}

/// The compiling program: crate version plus its executable's size and modification time.
fn build_identity() -> String {
    let exe = std::env::current_exe().ok().and_then(|p| fs::metadata(p).ok());
    let stamp = exe
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{modified}", m.len())
        })
        .unwrap_or_default();
    format!("aiec {} {stamp}", env!("CARGO_PKG_VERSION"))
}

/// 64-bit FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads compiling one kernel for both devices at once each end with their own complete
    /// design: no scratch directory is shared between them.
    #[test]
    fn concurrent_compiles_of_one_kernel_for_two_devices_keep_each_design() {
        let spec = KernelSpec::LayerNorm { m: 16, d: 384 };
        for _ in 0..16 {
            let work = tempfile::tempdir().unwrap();
            let cache = KernelCache::new(work.path().join("designs"));
            let devices = [DeviceModel::npu1(), DeviceModel::npu2(), DeviceModel::npu1(), DeviceModel::npu2()];
            let start = std::sync::Barrier::new(devices.len());
            std::thread::scope(|s| {
                for device in &devices {
                    let (cache, start) = (&cache, &start);
                    s.spawn(move || {
                        start.wait();
                        let design = cache.get_or_compile(&spec, device).expect("compiled");
                        let mlir = fs::read_to_string(design.dir.join("design.mlir")).expect("design.mlir is there");
                        assert!(
                            mlir.contains(&format!("aie.device({}", device.name)),
                            "{}: another device's design",
                            device.name
                        );
                        assert!(design.dir.join("design.json").is_file());
                    });
                }
            });
            let left: Vec<_> = fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left.len(), 2, "one entry per device and no scratch directory left: {left:?}");
        }
    }
}
