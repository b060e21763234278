// The peak probe's kernel (runtime/peak.cpp): its contract, every ISA's implementation and the
// runtime's sub-table (filled by register_peak_kernels() in peak_kernels.cpp: reference first,
// then ISA overrides). Included by ISA files: declarations only.
#pragma once

#include <cstdint>

namespace cnnkit {

enum class Isa;

// The peak probe's hot loop: `iters` rounds of independent FMA chains (no memory traffic);
// returns a value derived from the chains so the work cannot be optimised away.
using FmaChains = float (*)(std::int64_t iters);

struct PeakKernels {
  FmaChains fma_chains = nullptr;
  double fma_chain_flops = 0;  // FLOPs per iteration of fma_chains
  // The bf16 path's instructions (the fp32 chains where it has none of its own).
  FmaChains bf16_chains = nullptr;
  double bf16_chain_flops = 0;
};

void register_peak_kernels(PeakKernels& k, Isa isa);

float fma_chains_ref(std::int64_t iters);  // peak.cpp: 8 scalar chains
namespace avx2 {
float fma_chains_avx2(std::int64_t iters);  // 12 chains of 8 lanes
}
namespace avx512 {
float fma_chains_avx512(std::int64_t iters);  // 24 chains of 16 lanes
}
namespace avx512_bf16 {
float dpbf16_chains(std::int64_t iters);  // 24 VDPBF16PS chains of 16 lanes x 2 products
}
namespace neon {
float fma_chains_neon(std::int64_t iters);  // 16 FMLA chains of 4 lanes
}
namespace amx {
float tdp_chains(std::int64_t iters);  // 4 TDPBF16PS tile accumulators (16 x 16 x 32 each)
}

}  // namespace cnnkit
