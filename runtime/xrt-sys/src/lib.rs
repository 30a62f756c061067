//! The project's own binding to AMD XRT, for running designs on a Ryzen AI NPU.
//!
//! A small C++ shim (`src/shim.cpp`) exposes the few pieces of XRT's native C++ API the NPU
//! flow needs as `extern "C"` functions; this module wraps them in a safe API:
//! [`Device`] -> [`Xclbin`] (registered on the device) -> [`HwContext`] -> [`Kernel`]
//! (the one whose name starts with `MLIR_AIE`) -> [`Bo`] buffers -> [`Run`].
//!
//! The shim is compiled only where XRT >= 2.17 is installed (`XILINX_XRT` or /opt/xilinx/xrt).
//! Elsewhere the crate builds all the same and every call returns
//! [`XrtError::Unavailable`] saying why and how to install XRT; [`available`] tells in advance.

pub mod detect;

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XrtError {
    /// This build has no XRT (the message says why and how to get it).
    #[error("{0}")]
    Unavailable(String),
    /// XRT raised an error in `call`.
    #[error("XRT {call}: {message}")]
    Call { call: &'static str, message: String },
    #[error("no kernel whose name starts with '{prefix}' in the xclbin (kernels: {found})")]
    NoKernel { prefix: String, found: String },
    #[error("the run did not complete: XRT command state {state}{}", if *timed_out { " (timed out)" } else { "" })]
    RunFailed { state: i32, timed_out: bool },
    #[error("{what}: {message}")]
    BadArgument { what: &'static str, message: String },
}

/// True when the XRT shim was compiled in (XRT >= 2.17 was found at build time).
pub fn available() -> bool {
    cfg!(xrt_available)
}

/// Why XRT cannot be used by this build, with how to fix it; `None` when it was compiled in.
pub fn unavailable_reason() -> Option<String> {
    #[cfg(xrt_available)]
    {
        None
    }
    #[cfg(not(xrt_available))]
    {
        Some(format!("XRT not available: {}; {}", env!("XRT_SYS_UNAVAILABLE"), detect::INSTALL_HINT))
    }
}

/// The XRT version compiled against, when there is one.
pub fn compiled_version() -> Option<&'static str> {
    option_env!("XRT_SYS_VERSION")
}

/// The raw `extern "C"` functions of the shim.
#[cfg(xrt_available)]
mod ffi {
    use std::ffi::{c_char, c_int, c_uint, c_void};
    extern "C" {
        pub fn xrts_last_error() -> *const c_char;
        pub fn xrts_device_open(index: c_uint, out: *mut *mut c_void) -> c_int;
        pub fn xrts_device_free(device: *mut c_void);
        pub fn xrts_xclbin_load(path: *const c_char, out: *mut *mut c_void) -> c_int;
        pub fn xrts_xclbin_free(xclbin: *mut c_void);
        pub fn xrts_xclbin_kernel_names(xclbin: *mut c_void, out: *mut *const c_char) -> c_int;
        pub fn xrts_device_register_xclbin(device: *mut c_void, xclbin: *mut c_void) -> c_int;
        pub fn xrts_hw_context_new(device: *mut c_void, xclbin: *mut c_void, out: *mut *mut c_void) -> c_int;
        pub fn xrts_hw_context_free(ctx: *mut c_void);
        pub fn xrts_kernel_new(ctx: *mut c_void, name: *const c_char, out: *mut *mut c_void) -> c_int;
        pub fn xrts_kernel_free(kernel: *mut c_void);
        pub fn xrts_kernel_group_id(kernel: *mut c_void, arg: c_int, out: *mut c_int) -> c_int;
        pub fn xrts_bo_new(device: *mut c_void, size: usize, flags: c_uint, group: c_uint, out: *mut *mut c_void) -> c_int;
        pub fn xrts_bo_free(bo: *mut c_void);
        pub fn xrts_bo_write(bo: *mut c_void, src: *const c_void, size: usize, offset: usize) -> c_int;
        pub fn xrts_bo_read(bo: *mut c_void, dst: *mut c_void, size: usize, offset: usize) -> c_int;
        pub fn xrts_bo_sync(bo: *mut c_void, to_device: c_int) -> c_int;
        pub fn xrts_run_new(kernel: *mut c_void, out: *mut *mut c_void) -> c_int;
        pub fn xrts_run_free(run: *mut c_void);
        pub fn xrts_run_set_arg_u32(run: *mut c_void, index: c_int, value: u32) -> c_int;
        pub fn xrts_run_set_arg_u64(run: *mut c_void, index: c_int, value: u64) -> c_int;
        pub fn xrts_run_set_arg_bo(run: *mut c_void, index: c_int, bo: *mut c_void) -> c_int;
        pub fn xrts_run_start(run: *mut c_void) -> c_int;
        pub fn xrts_run_wait(run: *mut c_void, timeout_ms: c_uint, state: *mut c_int, completed: *mut c_int) -> c_int;
    }
}

/// Without XRT: the same functions, each failing with "unavailable". Keeps the safe layer
/// identical in both builds.
#[cfg(not(xrt_available))]
#[allow(clippy::missing_safety_doc)]
mod ffi {
    use std::ffi::{c_char, c_int, c_uint, c_void};
    const UNAVAILABLE: c_int = -2;
    pub unsafe fn xrts_last_error() -> *const c_char {
        c"".as_ptr()
    }
    pub unsafe fn xrts_device_open(_: c_uint, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_device_free(_: *mut c_void) {}
    pub unsafe fn xrts_xclbin_load(_: *const c_char, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_xclbin_free(_: *mut c_void) {}
    pub unsafe fn xrts_xclbin_kernel_names(_: *mut c_void, _: *mut *const c_char) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_device_register_xclbin(_: *mut c_void, _: *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_hw_context_new(_: *mut c_void, _: *mut c_void, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_hw_context_free(_: *mut c_void) {}
    pub unsafe fn xrts_kernel_new(_: *mut c_void, _: *const c_char, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_kernel_free(_: *mut c_void) {}
    pub unsafe fn xrts_kernel_group_id(_: *mut c_void, _: c_int, _: *mut c_int) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_bo_new(_: *mut c_void, _: usize, _: c_uint, _: c_uint, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_bo_free(_: *mut c_void) {}
    pub unsafe fn xrts_bo_write(_: *mut c_void, _: *const c_void, _: usize, _: usize) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_bo_read(_: *mut c_void, _: *mut c_void, _: usize, _: usize) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_bo_sync(_: *mut c_void, _: c_int) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_new(_: *mut c_void, _: *mut *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_free(_: *mut c_void) {}
    pub unsafe fn xrts_run_set_arg_u32(_: *mut c_void, _: c_int, _: u32) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_set_arg_u64(_: *mut c_void, _: c_int, _: u64) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_set_arg_bo(_: *mut c_void, _: c_int, _: *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_start(_: *mut c_void) -> c_int {
        UNAVAILABLE
    }
    pub unsafe fn xrts_run_wait(_: *mut c_void, _: c_uint, _: *mut c_int, _: *mut c_int) -> c_int {
        UNAVAILABLE
    }
}

/// Turns a shim status into a Result, reading the thread's error message on failure.
fn check(call: &'static str, status: c_int) -> Result<(), XrtError> {
    match status {
        0 => Ok(()),
        -2 => Err(XrtError::Unavailable(unavailable_reason().unwrap_or_else(|| "XRT not available".into()))),
        _ => {
            // SAFETY: the shim returns a pointer to a thread-local, NUL-terminated string.
            let message = unsafe { CStr::from_ptr(ffi::xrts_last_error()) }.to_string_lossy().into_owned();
            Err(XrtError::Call { call, message })
        }
    }
}

/// Creates an object through a shim constructor and checks the pointer it returned.
fn create(call: &'static str, f: impl FnOnce(*mut *mut c_void) -> c_int) -> Result<NonNull<c_void>, XrtError> {
    let mut out: *mut c_void = std::ptr::null_mut();
    check(call, f(&mut out))?;
    NonNull::new(out).ok_or(XrtError::Call {
        call,
        message: "returned no object".into(),
    })
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $free:ident) => {
        $(#[$doc])*
        pub struct $name {
            raw: NonNull<c_void>,
        }
        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: raw came from the matching shim constructor and is freed once.
                unsafe { ffi::$free(self.raw.as_ptr()) }
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:p})"), self.raw)
            }
        }
    };
}

handle!(
    /// An XRT device (`xrt::device`).
    Device,
    xrts_device_free
);
handle!(
    /// A loaded xclbin file (`xrt::xclbin`).
    Xclbin,
    xrts_xclbin_free
);
handle!(
    /// A hardware context on a device for one xclbin (`xrt::hw_context`).
    HwContext,
    xrts_hw_context_free
);
handle!(
    /// A kernel in a hardware context (`xrt::kernel`).
    Kernel,
    xrts_kernel_free
);
handle!(
    /// A buffer object (`xrt::bo`) of a fixed size.
    BoHandle,
    xrts_bo_free
);
handle!(
    /// One execution of a kernel (`xrt::run`).
    RunHandle,
    xrts_run_free
);

impl Device {
    /// Opens device `index` (0 is the NPU on a Ryzen AI laptop).
    pub fn open(index: u32) -> Result<Device, XrtError> {
        // SAFETY: out is a valid pointer for the shim to write the new object to.
        let raw = create("xrt::device", |out| unsafe { ffi::xrts_device_open(index, out) })?;
        Ok(Device { raw })
    }

    pub fn register_xclbin(&self, xclbin: &Xclbin) -> Result<(), XrtError> {
        // SAFETY: both handles are live objects owned by their wrappers.
        check("xrt::device::register_xclbin", unsafe {
            ffi::xrts_device_register_xclbin(self.raw.as_ptr(), xclbin.raw.as_ptr())
        })
    }
}

impl Xclbin {
    pub fn load(path: &Path) -> Result<Xclbin, XrtError> {
        let c = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| XrtError::BadArgument {
            what: "xclbin path",
            message: format!("{} contains a NUL byte", path.display()),
        })?;
        // SAFETY: c outlives the call; out is valid.
        let raw = create("xrt::xclbin", |out| unsafe { ffi::xrts_xclbin_load(c.as_ptr(), out) })?;
        Ok(Xclbin { raw })
    }

    pub fn kernel_names(&self) -> Result<Vec<String>, XrtError> {
        let mut out: *const c_char = std::ptr::null();
        // SAFETY: live handle; out receives a thread-local string we copy before any other call.
        check("xrt::xclbin::get_kernels", unsafe {
            ffi::xrts_xclbin_kernel_names(self.raw.as_ptr(), &mut out)
        })?;
        if out.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: non-null, NUL-terminated, valid until the next shim call on this thread.
        let text = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        Ok(text.split('\n').filter(|s| !s.is_empty()).map(str::to_string).collect())
    }
}

impl HwContext {
    /// A hardware context for `xclbin`, which must have been registered on `device`.
    pub fn new(device: &Device, xclbin: &Xclbin) -> Result<HwContext, XrtError> {
        // SAFETY: live handles; out is valid.
        let raw = create("xrt::hw_context", |out| unsafe {
            ffi::xrts_hw_context_new(device.raw.as_ptr(), xclbin.raw.as_ptr(), out)
        })?;
        Ok(HwContext { raw })
    }
}

impl Kernel {
    pub fn new(ctx: &HwContext, name: &str) -> Result<Kernel, XrtError> {
        let c = CString::new(name).map_err(|_| XrtError::BadArgument {
            what: "kernel name",
            message: format!("{name:?} contains a NUL byte"),
        })?;
        // SAFETY: live handle; c outlives the call; out is valid.
        let raw = create("xrt::kernel", |out| unsafe { ffi::xrts_kernel_new(ctx.raw.as_ptr(), c.as_ptr(), out) })?;
        Ok(Kernel { raw })
    }

    /// The kernel in `xclbin` whose name starts with `prefix` (mlir-aie names it `MLIR_AIE`).
    pub fn find(ctx: &HwContext, xclbin: &Xclbin, prefix: &str) -> Result<Kernel, XrtError> {
        let names = xclbin.kernel_names()?;
        let name = names.iter().find(|n| n.starts_with(prefix)).ok_or_else(|| XrtError::NoKernel {
            prefix: prefix.to_string(),
            found: if names.is_empty() { "none".into() } else { names.join(", ") },
        })?;
        Kernel::new(ctx, name)
    }

    /// The memory group of kernel argument `arg` (where its buffer must be allocated).
    pub fn group_id(&self, arg: u32) -> Result<u32, XrtError> {
        let mut out: c_int = 0;
        // SAFETY: live handle; out is valid.
        check("xrt::kernel::group_id", unsafe {
            ffi::xrts_kernel_group_id(self.raw.as_ptr(), arg as c_int, &mut out)
        })?;
        u32::try_from(out).map_err(|_| XrtError::Call {
            call: "xrt::kernel::group_id",
            message: format!("negative group id {out} for argument {arg}"),
        })
    }
}

/// How a buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoFlags {
    Normal,
    /// Host-cached; what the instruction stream uses.
    Cacheable,
    /// Host memory the NPU reads and writes; what data buffers use.
    HostOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDirection {
    ToDevice,
    FromDevice,
}

/// A buffer object of `size` bytes.
#[derive(Debug)]
pub struct Bo {
    handle: BoHandle,
    size: usize,
}

impl Bo {
    pub fn new(device: &Device, size: usize, flags: BoFlags, group: u32) -> Result<Bo, XrtError> {
        if size == 0 {
            return Err(XrtError::BadArgument {
                what: "buffer size",
                message: "a buffer object cannot be empty".into(),
            });
        }
        let f: c_uint = match flags {
            BoFlags::Normal => 0,
            BoFlags::Cacheable => 1,
            BoFlags::HostOnly => 2,
        };
        // SAFETY: live handle; out is valid.
        let raw = create("xrt::bo", |out| unsafe { ffi::xrts_bo_new(device.raw.as_ptr(), size, f, group, out) })?;
        Ok(Bo {
            handle: BoHandle { raw },
            size,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn bounds(&self, len: usize, offset: usize) -> Result<(), XrtError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(XrtError::BadArgument {
                what: "buffer range",
                message: format!("{len} bytes at offset {offset} exceed the buffer's {} bytes", self.size),
            }),
        }
    }

    /// Copies `data` into the buffer's host memory at `offset`.
    pub fn write(&mut self, data: &[u8], offset: usize) -> Result<(), XrtError> {
        self.bounds(data.len(), offset)?;
        // SAFETY: live handle; data is valid for data.len() bytes, range checked above.
        check("xrt::bo::write", unsafe {
            ffi::xrts_bo_write(self.handle.raw.as_ptr(), data.as_ptr().cast(), data.len(), offset)
        })
    }

    /// Copies the buffer's host memory at `offset` into `out`.
    pub fn read(&self, out: &mut [u8], offset: usize) -> Result<(), XrtError> {
        self.bounds(out.len(), offset)?;
        // SAFETY: live handle; out is valid for out.len() bytes, range checked above.
        check("xrt::bo::read", unsafe {
            ffi::xrts_bo_read(self.handle.raw.as_ptr(), out.as_mut_ptr().cast(), out.len(), offset)
        })
    }

    pub fn sync(&mut self, direction: SyncDirection) -> Result<(), XrtError> {
        let to_device = matches!(direction, SyncDirection::ToDevice) as c_int;
        // SAFETY: live handle.
        check("xrt::bo::sync", unsafe { ffi::xrts_bo_sync(self.handle.raw.as_ptr(), to_device) })
    }
}

/// One kernel execution: set the arguments, start, wait.
#[derive(Debug)]
pub struct Run {
    handle: RunHandle,
}

impl Run {
    pub fn new(kernel: &Kernel) -> Result<Run, XrtError> {
        // SAFETY: live handle; out is valid.
        let raw = create("xrt::run", |out| unsafe { ffi::xrts_run_new(kernel.raw.as_ptr(), out) })?;
        Ok(Run { handle: RunHandle { raw } })
    }

    pub fn set_arg_u32(&mut self, index: u32, value: u32) -> Result<(), XrtError> {
        // SAFETY: live handle.
        check("xrt::run::set_arg", unsafe {
            ffi::xrts_run_set_arg_u32(self.handle.raw.as_ptr(), index as c_int, value)
        })
    }

    pub fn set_arg_u64(&mut self, index: u32, value: u64) -> Result<(), XrtError> {
        // SAFETY: live handle.
        check("xrt::run::set_arg", unsafe {
            ffi::xrts_run_set_arg_u64(self.handle.raw.as_ptr(), index as c_int, value)
        })
    }

    /// The run keeps its own reference to the buffer (XRT handles are reference-counted).
    pub fn set_arg_bo(&mut self, index: u32, bo: &Bo) -> Result<(), XrtError> {
        // SAFETY: live handles.
        check("xrt::run::set_arg", unsafe {
            ffi::xrts_run_set_arg_bo(self.handle.raw.as_ptr(), index as c_int, bo.handle.raw.as_ptr())
        })
    }

    pub fn start(&mut self) -> Result<(), XrtError> {
        // SAFETY: live handle.
        check("xrt::run::start", unsafe { ffi::xrts_run_start(self.handle.raw.as_ptr()) })
    }

    /// Waits for the run; `None` waits without limit. An incomplete run is [`XrtError::RunFailed`].
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<(), XrtError> {
        let ms = timeout.map(|t| t.as_millis().clamp(1, u32::MAX as u128) as c_uint).unwrap_or(0);
        let (mut state, mut completed): (c_int, c_int) = (0, 0);
        // SAFETY: live handle; state and completed are valid.
        check("xrt::run::wait", unsafe {
            ffi::xrts_run_wait(self.handle.raw.as_ptr(), ms, &mut state, &mut completed)
        })?;
        if completed == 1 {
            Ok(())
        } else {
            Err(XrtError::RunFailed {
                state,
                timed_out: timeout.is_some(),
            })
        }
    }
}
