// Run-time environment: CPU feature detection, the ISA choice, threads and workspaces.
#pragma once

#include <cstddef>
#include <string>

#include "cnnkit/common.hpp"

namespace cnnkit {

// The kernel paths, in order: each level's kernel table is the one below it plus the kernels
// that level adds (so `isa >= Isa::avx2` holds for every table with AVX2 kernels).
enum class Isa { ref = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);

struct CpuFeatures {
  std::string vendor;
  std::string brand;
  bool sse42 = false;
  bool avx = false;  // CPUID bit and the OS saves YMM state (XGETBV)
  bool fma = false;
  bool avx2 = false;
  bool avx512f = false;  // CPUID bits and the OS saves opmask/ZMM state
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool os_avx = false;     // XCR0 bits 1-2
  bool os_avx512 = false;  // XCR0 bits 5-7
};

// Detected once, on first use.
const CpuFeatures& cpu_features();

// Whether this CPU (and OS) can run the given ISA path.
bool isa_supported(Isa isa);

// Best ISA this machine supports.
Isa best_isa();

// Parses "ref" / "avx2" / "avx512"; throws std::invalid_argument naming the choices.
Isa parse_isa(const std::string& name);

// The ISA whose kernels run. Starts as best_isa(), or CNNKIT_ISA when set (see
// init_runtime()).
Isa active_isa();

// Switches the kernels; throws std::invalid_argument if the CPU cannot run them.
void set_isa(Isa isa);

// Reads CNNKIT_ISA and picks the starting table; throws std::invalid_argument for a bad value.
// Also calls tune_allocator().
void init_runtime();

// Keeps freed large blocks in the process (glibc mallopt) instead of unmapping them, so the
// arrays a training step allocates again and again do not page-fault each time. Skipped when
// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or CNNKIT_KEEP_MALLOC is set.
void tune_allocator();

// Thread count used by every op (default: OpenMP's default, which honours OMP_NUM_THREADS).
int get_num_threads();
void set_num_threads(int n);  // n >= 1, else std::invalid_argument
bool openmp_enabled();

// Measured FMA throughput of the active ISA on `threads` threads (GFLOP/s): the best of
// `repeats` runs of about `seconds` each. The yardstick for "fraction of peak" in benchmarks.
double fma_peak_gflops(int threads, double seconds, int repeats);

// Per-OS-thread scratch memory, 64-byte aligned, grown on demand and kept for reuse
// (no allocation in hot loops; safe when several Python threads call in at once because
// every OpenMP worker and every caller has its own). `slot` separates buffers that are
// alive at the same time. Throws std::bad_alloc (-> MemoryError) when memory runs out.
constexpr int kWorkspaceSlots = 4;
float* thread_workspace(int slot, std::size_t floats);

}  // namespace cnnkit
