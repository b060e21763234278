// Thread count shared by every op, and per-thread scratch memory.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "cnnkit/runtime.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {
namespace {

// OMP_NUM_THREADS (its first entry), as OpenMP programs read it, else the CPUs this process
// may run on (its affinity mask, or its slice of it under several local MPI ranks).
int default_threads() {
  if (const char* v = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && n >= 1) return int(std::min<long>(n, kMaxThreads));
  }
  return std::max(1, std::min(usable_cpus(), kMaxThreads));
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

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) {
    throw_invalid("set_num_threads: n must be in [1, ", kMaxThreads, "], got ", n);
  }
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
