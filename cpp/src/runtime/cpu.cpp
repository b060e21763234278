// CPU feature detection with CPUID and XGETBV (x86-64), or with Linux's getauxval HWCAP bits
// (aarch64); elsewhere every feature is false (the reference kernels). Off x86-64 the cache
// sizes come from Linux's sysfs.
//
// A CPUID bit only says the core has an instruction set; the OS must also save the wider
// register state on context switches, which XGETBV(0) reports in XCR0: bits 1-2 (SSE/AVX
// state) for AVX/AVX2/FMA, bits 5-7 (opmask, ZMM0-15 upper halves, ZMM16-31) for AVX-512, and
// bits 17-18 (XTILECFG, XTILEDATA) for AMX. Linux also wants each process to ask for the tile
// data state before its first tile instruction (arch_prctl, below).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cnnkit/runtime.hpp"

#if CNNKIT_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#include <fstream>
#endif
#if CNNKIT_NEON && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace cnnkit {
namespace {

#if CNNKIT_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

std::uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  // Encoded as bytes so the baseline build needs no -mxsave.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

// Asks Linux for the AMX tile data state (once per process; every thread inherits it).
// Returns "" when granted, else why not.
std::string request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    return std::string("Linux refused the AMX tile data (arch_prctl(ARCH_REQ_XCOMP_PERM): ") +
           std::strerror(errno) + ")";
  }
  unsigned long long mask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0 ||
      !((mask >> kXfeatureXtiledata) & 1)) {
    return "Linux did not grant the AMX tile data (ARCH_GET_XCOMP_PERM)";
  }
  return "";
#else
  return "AMX tile data is only requested on Linux";
#endif
}

// Data and unified cache sizes from the deterministic cache parameters: leaf 4 (Intel) or
// 0x8000001D (AMD, with topology extensions), one sub-leaf per cache until type 0; the size is
// ways x partitions x line size x sets. False if the CPU has neither leaf.
bool detect_caches(unsigned leaf, CpuFeatures* f) {
  bool any = false;
  for (unsigned sub = 0; sub < 16; ++sub) {
    const Regs r = cpuid(leaf, sub);
    const unsigned type = r.a & 0x1f, level = (r.a >> 5) & 0x7;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const std::size_t bytes = std::size_t((r.b >> 22) + 1) * (((r.b >> 12) & 0x3ff) + 1) *
                              ((r.b & 0xfff) + 1) * (std::size_t(r.c) + 1);
    if (level == 1) f->l1d_bytes = bytes;
    if (level == 2) f->l2_bytes = bytes;
    if (level == 3) f->l3_bytes = bytes;
    any = true;
  }
  return any;
}
#else
// Elsewhere (aarch64): the data and unified caches Linux lists in
// /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size} (size as "48K" or "2M").
bool detect_caches(CpuFeatures* f) {
  bool any = false;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
    int level = 0;
    std::string type, size;
    if (!(level_file >> level) || !(type_file >> type) || !(size_file >> size)) break;
    if (type == "Instruction" || size.empty()) continue;
    std::size_t bytes = std::size_t(std::strtoull(size.c_str(), nullptr, 10));
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    if (level == 1) f->l1d_bytes = bytes;
    if (level == 2) f->l2_bytes = bytes;
    if (level == 3) f->l3_bytes = bytes;
    any = true;
  }
  return any;
}
#endif

#if CNNKIT_NEON
// The CPU's designer from MIDR_EL1's implementer byte (Linux exports the register in sysfs).
std::string arm_implementer() {
  std::ifstream midr_file("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1");
  std::string text;
  if (!(midr_file >> text)) return "";
  const unsigned long long midr = std::strtoull(text.c_str(), nullptr, 16);
  switch ((midr >> 24) & 0xff) {
    case 0x41:
      return "ARM";
    case 0x42:
      return "Broadcom";
    case 0x46:
      return "Fujitsu";
    case 0x48:
      return "HiSilicon";
    case 0x4e:
      return "NVIDIA";
    case 0x51:
      return "Qualcomm";
    case 0x61:
      return "Apple";
    case 0xc0:
      return "Ampere";
    default:
      return "implementer " + std::to_string((midr >> 24) & 0xff);
  }
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if !CNNKIT_X86
  f.caches_from_cpuid = detect_caches(&f);  // not CPUID here: the kernel's cache list
#if CNNKIT_NEON
  // Advanced SIMD is mandatory in ARMv8-A (the compiler's baseline uses it); Linux still says
  // so in HWCAP, and the extensions beyond it only there. Bit numbers: the kernel's
  // arch/arm64/include/uapi/asm/hwcap.h.
  f.vendor = arm_implementer();
  f.neon = true;
#if defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  f.asimd_dot = (hwcap >> 20) & 1;  // HWCAP_ASIMDDP
  f.sve = (hwcap >> 22) & 1;        // HWCAP_SVE
  f.i8mm = (hwcap2 >> 13) & 1;      // HWCAP2_I8MM
  f.arm_bf16 = (hwcap2 >> 14) & 1;  // HWCAP2_BF16
#endif
#endif
#else
  const unsigned max_leaf = cpuid(0).a;
  {
    Regs v = cpuid(0);
    char vendor[13] = {};
    std::memcpy(vendor, &v.b, 4);
    std::memcpy(vendor + 4, &v.d, 4);
    std::memcpy(vendor + 8, &v.c, 4);
    f.vendor = vendor;
  }
  if (cpuid(0x80000000u).a >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    while (!f.brand.empty() && f.brand.front() == ' ') f.brand.erase(f.brand.begin());
  }
  const unsigned max_ext = cpuid(0x80000000u).a;
  const bool amd_topology = max_ext >= 0x8000001Du && ((cpuid(0x80000001u).c >> 22) & 1);
  if ((f.vendor == "GenuineIntel" && max_leaf >= 4 && detect_caches(4, &f)) ||
      (amd_topology && detect_caches(0x8000001Du, &f))) {
    f.caches_from_cpuid = true;
  }
  if (max_leaf < 1) return f;
  const Regs l1 = cpuid(1);
  f.sse42 = (l1.c >> 20) & 1;
  const bool osxsave = (l1.c >> 27) & 1;
  const bool cpu_avx = (l1.c >> 28) & 1;
  const bool cpu_fma = (l1.c >> 12) & 1;
  std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  f.os_avx = (xcr0 & 0x6) == 0x6;
  f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;
  f.avx = cpu_avx && f.os_avx;
  f.fma = cpu_fma && f.os_avx;
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = f.avx && ((l7.b >> 5) & 1);
    f.avx512f = f.os_avx512 && ((l7.b >> 16) & 1);
    f.avx512dq = f.os_avx512 && ((l7.b >> 17) & 1);
    f.avx512bw = f.os_avx512 && ((l7.b >> 30) & 1);
    f.avx512vl = f.os_avx512 && ((l7.b >> 31) & 1);
    f.os_amx = (xcr0 & 0x60000) == 0x60000;
    f.amx_tile = f.os_amx && ((l7.d >> 24) & 1);
    f.amx_bf16 = f.amx_tile && ((l7.d >> 22) & 1);
    f.amx_int8 = f.amx_tile && ((l7.d >> 25) & 1);
    f.avx512_vnni = f.os_avx512 && ((l7.c >> 11) & 1);
    if (l7.a >= 1) f.avx512_bf16 = f.os_avx512 && ((cpuid(7, 1).a >> 5) & 1);
    if (f.amx_tile) {
      f.amx_refusal = request_amx_permission();
      f.amx_permitted = f.amx_refusal.empty();
    }
  }
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

GemmBlocking gemm_blocking(int mr) {
  const CpuFeatures& f = cpu_features();
  GemmBlocking b;
  const index_t fit = index_t(f.l1d_bytes) * 2 / 3 / (index_t(std::max(mr, 1)) * 4);
  b.kc = std::min<index_t>(576, std::max<index_t>(128, fit / 32 * 32));
  // The chunk shares L2 with the A panels that pass through it from L3 on their way to L1
  // and with the C tiles. Half of L2 (the textbook choice) lost lines to them: on Zen 4, an
  // eighth (2-3 micro-panels) gave +5-10 % at 1 and 2 threads (sgemm 1024^3 and 2048^3, same
  // process, alternating calls), and no shape measured got slower.
  b.b_chunk_floats = std::max<index_t>(32 * 1024, index_t(f.l2_bytes) / 8 / 4);
  return b;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::ref:
      return true;
    case Isa::avx2:
      return f.avx2 && f.fma;
    case Isa::avx512:
      return f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.fma;
    case Isa::avx512_bf16:  // every CPU with AVX512-BF16 also has AVX512-VNNI (int8 kernels)
      return isa_supported(Isa::avx512) && f.avx512_bf16 && f.avx512_vnni;
    case Isa::amx:  // AMX-BF16 and AMX-INT8 come together (Sapphire Rapids and later)
      return isa_supported(Isa::avx512_bf16) && f.amx_bf16 && f.amx_int8 && f.amx_permitted;
    case Isa::neon:
      return f.neon;
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::neon)) return Isa::neon;
  if (isa_supported(Isa::amx)) return Isa::amx;
  if (isa_supported(Isa::avx512_bf16)) return Isa::avx512_bf16;
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::ref;
}

}  // namespace cnnkit
