// Thread count shared by every op, and per-thread scratch memory.
#include <atomic>
#include <cstdlib>
#include <new>

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

}  // namespace cnnkit
