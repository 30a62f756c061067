// extern "C" functions over XRT's native C++ API, for the Rust side of xrt-sys.
//
// Every function returns 0 on success and -1 on failure; the failure's message (the C++
// exception's what()) is kept per thread and read with xrts_last_error(). Objects are
// heap-allocated XRT handles (themselves reference-counted), freed with the matching _free.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include <xrt/xrt_bo.h>
#include <xrt/xrt_device.h>
#include <xrt/xrt_kernel.h>
#if __has_include(<xrt/xrt_hw_context.h>)
#include <xrt/xrt_hw_context.h>
#else
#include <xrt/experimental/xrt_hw_context.h>
#endif
#if __has_include(<xrt/xrt_xclbin.h>)
#include <xrt/xrt_xclbin.h>
#else
#include <xrt/experimental/xrt_xclbin.h>
#endif

namespace {

thread_local std::string last_error;
thread_local std::string last_string;

template <typename F> int guarded(F &&body) {
  try {
    body();
    return 0;
  } catch (const std::exception &e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception from XRT";
  }
  return -1;
}

} // namespace

extern "C" {

const char *xrts_last_error(void) { return last_error.c_str(); }

int xrts_device_open(unsigned int index, void **out) {
  return guarded([&] { *out = new xrt::device(index); });
}
void xrts_device_free(void *device) { delete static_cast<xrt::device *>(device); }

int xrts_xclbin_load(const char *path, void **out) {
  return guarded([&] { *out = new xrt::xclbin(std::string(path)); });
}
void xrts_xclbin_free(void *xclbin) { delete static_cast<xrt::xclbin *>(xclbin); }

// The kernel names, '\n'-separated, valid until the next call on this thread.
int xrts_xclbin_kernel_names(void *xclbin, const char **out) {
  return guarded([&] {
    last_string.clear();
    for (const auto &kernel : static_cast<xrt::xclbin *>(xclbin)->get_kernels()) {
      if (!last_string.empty())
        last_string += '\n';
      last_string += kernel.get_name();
    }
    *out = last_string.c_str();
  });
}

int xrts_device_register_xclbin(void *device, void *xclbin) {
  return guarded([&] {
    static_cast<xrt::device *>(device)->register_xclbin(*static_cast<xrt::xclbin *>(xclbin));
  });
}

int xrts_hw_context_new(void *device, void *xclbin, void **out) {
  return guarded([&] {
    auto *x = static_cast<xrt::xclbin *>(xclbin);
    *out = new xrt::hw_context(*static_cast<xrt::device *>(device), x->get_uuid());
  });
}
void xrts_hw_context_free(void *ctx) { delete static_cast<xrt::hw_context *>(ctx); }

int xrts_kernel_new(void *ctx, const char *name, void **out) {
  return guarded([&] {
    *out = new xrt::kernel(*static_cast<xrt::hw_context *>(ctx), std::string(name));
  });
}
void xrts_kernel_free(void *kernel) { delete static_cast<xrt::kernel *>(kernel); }

int xrts_kernel_group_id(void *kernel, int arg, int *out) {
  return guarded([&] { *out = static_cast<xrt::kernel *>(kernel)->group_id(arg); });
}

// flags: 0 normal, 1 cacheable (instructions), 2 host_only (data).
int xrts_bo_new(void *device, size_t size, unsigned int flags, unsigned int group, void **out) {
  return guarded([&] {
    xrt::bo::flags f = xrt::bo::flags::normal;
    if (flags == 1)
      f = xrt::bo::flags::cacheable;
    else if (flags == 2)
      f = xrt::bo::flags::host_only;
    *out = new xrt::bo(*static_cast<xrt::device *>(device), size, f, group);
  });
}
void xrts_bo_free(void *bo) { delete static_cast<xrt::bo *>(bo); }

int xrts_bo_write(void *bo, const void *src, size_t size, size_t offset) {
  return guarded([&] { static_cast<xrt::bo *>(bo)->write(src, size, offset); });
}

int xrts_bo_read(void *bo, void *dst, size_t size, size_t offset) {
  return guarded([&] { static_cast<xrt::bo *>(bo)->read(dst, size, offset); });
}

int xrts_bo_sync(void *bo, int to_device) {
  return guarded([&] {
    static_cast<xrt::bo *>(bo)->sync(to_device ? XCL_BO_SYNC_BO_TO_DEVICE : XCL_BO_SYNC_BO_FROM_DEVICE);
  });
}

int xrts_run_new(void *kernel, void **out) {
  return guarded([&] { *out = new xrt::run(*static_cast<xrt::kernel *>(kernel)); });
}
void xrts_run_free(void *run) { delete static_cast<xrt::run *>(run); }

int xrts_run_set_arg_u32(void *run, int index, uint32_t value) {
  return guarded([&] { static_cast<xrt::run *>(run)->set_arg(index, value); });
}

int xrts_run_set_arg_u64(void *run, int index, uint64_t value) {
  return guarded([&] { static_cast<xrt::run *>(run)->set_arg(index, value); });
}

int xrts_run_set_arg_bo(void *run, int index, void *bo) {
  return guarded([&] { static_cast<xrt::run *>(run)->set_arg(index, *static_cast<xrt::bo *>(bo)); });
}

int xrts_run_start(void *run) {
  return guarded([&] { static_cast<xrt::run *>(run)->start(); });
}

// Waits up to timeout_ms (0 = no limit); *state is XRT's command state, *completed 1 when done.
int xrts_run_wait(void *run, unsigned int timeout_ms, int *state, int *completed) {
  return guarded([&] {
    auto s = static_cast<xrt::run *>(run)->wait(std::chrono::milliseconds(timeout_ms));
    *state = static_cast<int>(s);
    *completed = s == ERT_CMD_STATE_COMPLETED ? 1 : 0;
  });
}

} // extern "C"
