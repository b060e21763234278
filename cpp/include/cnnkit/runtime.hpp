// Run-time environment: CPU feature detection, the ISA choice, threads and workspaces.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cnnkit/common.hpp"

// CNNKIT_X86: the x86 kernel folders are built (x86-64 only; CMakeLists.txt). CNNKIT_NEON: the
// kernels/neon/ folder is built (aarch64, where Advanced SIMD is part of every ARMv8-A CPU).
// Elsewhere the kernel tables hold the reference kernels only.
#if defined(__x86_64__)
#define CNNKIT_X86 1
#else
#define CNNKIT_X86 0
#endif
#if defined(__aarch64__)
#define CNNKIT_NEON 1
#else
#define CNNKIT_NEON 0
#endif
// The build's target, as cpu_info()["arch"] reports it.
#if defined(__x86_64__)
#define CNNKIT_ARCH_NAME "x86_64"
#elif defined(__aarch64__)
#define CNNKIT_ARCH_NAME "aarch64"
#else
#define CNNKIT_ARCH_NAME "other"
#endif

namespace cnnkit {

// The kernel paths. On x86-64 they are levels, in order: each level's kernel table is the one
// below it plus the kernels that level adds (so `isa >= Isa::avx2` holds for every table with
// AVX2 kernels; such comparisons appear only inside `#if CNNKIT_X86`). The two top levels add
// only bf16 kernels (fp32 runs the AVX-512 kernels there): avx512_bf16 the VDPBF16PS
// micro-kernel and conversions (and the VPDPBUSD int8 kernels: it needs AVX512-VNNI too), amx
// the AMX tile micro-kernels (bf16 and int8: it needs AMX-BF16 and AMX-INT8). On aarch64
// there is one level above ref: neon (the reference table plus the kernels/neon/ overrides).
enum class Isa { ref = 0, avx2 = 1, avx512 = 2, avx512_bf16 = 3, amx = 4, neon = 5 };

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
  bool avx512_vnni = false;  // CPUID.(7,0):ECX[11] (VPDPBUSD), AVX-512 state saved
  bool avx512_bf16 = false;  // CPUID.(7,1):EAX[5] (VDPBF16PS, VCVTNE2PS2BF16), AVX-512 state saved
  bool amx_tile = false;     // CPUID.(7,0):EDX[24], and the OS saves tile state (XCR0 17-18)
  bool amx_bf16 = false;     // CPUID.(7,0):EDX[22] (TDPBF16PS), with amx_tile
  bool amx_int8 = false;     // CPUID.(7,0):EDX[25], with amx_tile
  bool os_avx = false;       // XCR0 bits 1-2
  bool os_avx512 = false;    // XCR0 bits 5-7
  bool os_amx = false;       // XCR0 bits 17-18 (XTILECFG, XTILEDATA)
  // aarch64, from Linux's getauxval(AT_HWCAP / AT_HWCAP2): Advanced SIMD (every ARMv8-A CPU
  // has it; the neon kernels need nothing more) and the extensions beyond it, reported only
  // (cnnkit has no kernels for them yet: none could be tested here).
  bool neon = false;       // HWCAP_ASIMD
  bool asimd_dot = false;  // HWCAP_ASIMDDP (SDOT/UDOT)
  bool sve = false;        // HWCAP_SVE
  bool arm_bf16 = false;   // HWCAP2_BF16 (BFDOT, BFMMLA)
  bool i8mm = false;       // HWCAP2_I8MM (SMMLA)
  // Linux hands out the (8 KB) tile data state only on request: arch_prctl(ARCH_REQ_XCOMP_PERM,
  // XFEATURE_XTILEDATA), asked once at detection when the CPU has AMX. A tile instruction
  // without it kills the process (SIGILL), so AMX runs only when this is true.
  bool amx_permitted = false;
  std::string amx_refusal;  // why not, when the CPU has AMX but amx_permitted is false
  // Cache sizes per core (L1 data, L2) and of the last level, from CPUID leaf 4 (Intel) or
  // 0x8000001D (AMD); where the CPU reports neither, the Zen 4 sizes the blocking was first
  // tuned on (caches_from_cpuid false). The GEMM blocking is derived from them (gemm_blocking).
  std::size_t l1d_bytes = 32 << 10, l2_bytes = 1 << 20, l3_bytes = 32 << 20;
  bool caches_from_cpuid = false;
};

// The fp32 GEMM's cache blocking for a micro-kernel of mr rows, from the cache sizes above:
// kc (K block) so that the mr x kc A micro-panel fills about 2/3 of L1D (a multiple of 32,
// 128..576), and the per-thread packed B chunk (an eighth of L2, at least 128 KB), in floats.
// Zen 4 (32 KB L1D, 1 MB L2): kc 384, chunk 32 Ki floats; Intel Xeon (48 KB, 2 MB): 576, 64 Ki.
struct GemmBlocking {
  index_t kc = 384, b_chunk_floats = 32 * 1024;
};
GemmBlocking gemm_blocking(int mr);

// Detected once, on first use.
const CpuFeatures& cpu_features();

// Whether this CPU (and OS) can run the given ISA path.
bool isa_supported(Isa isa);

// Best ISA this machine supports.
Isa best_isa();

// Parses "ref" / "avx2" / "avx512" / "avx512_bf16" / "amx" / "neon"; throws
// std::invalid_argument naming the choices.
Isa parse_isa(const std::string& name);

// The ISA whose kernels run. Starts as best_isa(), or CNNKIT_ISA when set (see
// init_runtime()).
Isa active_isa();

// Switches the kernels; throws std::invalid_argument if the CPU cannot run them.
void set_isa(Isa isa);

// The bf16 GEMM micro-kernel of the active table: "amx", "avx512_bf16" or "ref" (the exact
// emulation), and why a faster one is not in use ("" when it is the best this CPU can run):
// the CPU lacks it, Linux refused the tile data, or CNNKIT_ISA / set_isa() chose a lower level.
const char* bf16_path();
std::string bf16_path_reason();

// Reads CNNKIT_ISA and picks the starting table; throws std::invalid_argument for a bad value.
void init_runtime();

// Thread count used by every op: OMP_NUM_THREADS when set, else the CPUs of the process's
// affinity mask (runtime/thread_pool.cpp runs the threads; no OpenMP).
int get_num_threads();
void set_num_threads(int n);  // 1 <= n <= 512, else std::invalid_argument
// CPUs this process may use (affinity mask, or this MPI rank's slice of it).
int usable_cpus();
// How the worker threads are bound to CPUs, in words (for cpu_info()).
std::string thread_binding();
// Self-check of the thread runtime (tests): runs a team of `nt`, each thread passing `rounds`
// barriers and checking that all arrived; returns how often each team index ran (all 1), the
// team size last. Thread `throw_thread` (if >= 0) throws std::invalid_argument, which must
// reach the caller.
std::vector<int> thread_team_probe(int nt, int rounds, int throw_thread);

// Measured FMA throughput of the active ISA on `threads` threads (GFLOP/s): the best of
// `repeats` runs of about `seconds` each. The yardstick for "fraction of peak" in benchmarks.
double fma_peak_gflops(int threads, double seconds, int repeats);
// The same for the active bf16 path's instructions: AMX tiles (TDPBF16PS, 4 accumulators),
// VDPBF16PS chains, or (ref) the fp32 FMA chains.
double bf16_peak_gflops(int threads, double seconds, int repeats);

// Per-OS-thread scratch memory, 64-byte aligned, grown on demand and kept for reuse
// (no allocation in hot loops; safe when several Python threads call in at once because
// every worker thread and every caller has its own). `slot` separates buffers that are
// alive at the same time (6 and 7: conv2d.cpp's bf16-rounded operand copies, on the calling
// thread; 4: its unpooled output before a fused max pooling, and the int8 convolutions'
// quantized image). Throws std::bad_alloc (-> MemoryError) when memory runs out.
constexpr int kWorkspaceSlots = 8;
float* thread_workspace(int slot, std::size_t floats);

}  // namespace cnnkit
