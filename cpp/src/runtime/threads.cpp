// Thread count shared by every op, and per-thread scratch memory.
#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cnnkit/runtime.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {
namespace {

int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

std::atomic<int> g_threads{0};

struct Workspace {
  float* ptr[kWorkspaceSlots] = {};
  std::size_t size[kWorkspaceSlots] = {};
  ~Workspace() {
    for (float* p : ptr) std::free(p);
  }
};

}  // namespace

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) throw_invalid("set_num_threads: n must be >= 1, got ", n);
  g_threads.store(n, std::memory_order_relaxed);
}

float* thread_workspace(int slot, std::size_t floats) {
  thread_local Workspace ws;
  if (floats > ws.size[slot] || ws.ptr[slot] == nullptr) {
    std::free(ws.ptr[slot]);
    ws.ptr[slot] = nullptr;
    ws.size[slot] = 0;
    // Round up to whole cache lines; +16 floats lets kernels over-read a vector safely.
    std::size_t bytes = ((floats + 16) * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    ws.ptr[slot] = static_cast<float*>(p);
    ws.size[slot] = floats;
  }
  return ws.ptr[slot];
}

void tune_allocator() {
#if defined(__GLIBC__)
  // Every op returns a new array; a training step frees and re-allocates the same few
  // megabyte-sized activations. glibc serves blocks above its (adaptive) mmap threshold with
  // fresh mmap()s and trims the heap top back to the OS, so each allocation page-faults and
  // zeroes its memory again: measured 14 % of a cifar_cnn step in clear_page. A fixed 32 MiB
  // threshold (glibc's maximum) and a 1 GiB trim threshold keep freed blocks for reuse. The
  // high-water mark (peak RSS) is unchanged; glibc's own MALLOC_*_THRESHOLD_ settings win.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr &&
      std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr &&
      std::getenv("CNNKIT_KEEP_MALLOC") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
}

}  // namespace cnnkit
