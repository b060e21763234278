// Fills the peak probe's sub-table for one ISA: reference first, then ISA overrides.
#include "runtime/peak_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_peak_kernels(PeakKernels& k, Isa isa) {
  k.fma_chains = fma_chains_ref;
  k.fma_chain_flops = 8.0 * 2;
  k.bf16_chains = fma_chains_ref;  // no bf16 instructions of its own: the fp32 chains
  k.bf16_chain_flops = k.fma_chain_flops;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) {
    k.fma_chains = avx2::fma_chains_avx2;
    k.fma_chain_flops = 12.0 * 8 * 2;
  }
  if (isa >= Isa::avx512) {
    k.fma_chains = avx512::fma_chains_avx512;
    k.fma_chain_flops = 24.0 * 16 * 2;
  }
  k.bf16_chains = k.fma_chains;
  k.bf16_chain_flops = k.fma_chain_flops;
  if (isa >= Isa::avx512_bf16) {
    k.bf16_chains = avx512_bf16::dpbf16_chains;
    k.bf16_chain_flops = 24.0 * 16 * 2 * 2;
  }
  if (isa >= Isa::amx) {
    k.bf16_chains = amx::tdp_chains;
    k.bf16_chain_flops = 4.0 * 16 * 16 * 32 * 2;
  }
#elif CNNKIT_NEON
  if (isa == Isa::neon) {
    k.fma_chains = k.bf16_chains = neon::fma_chains_neon;
    k.fma_chain_flops = k.bf16_chain_flops = 16.0 * 4 * 2;
  }
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
