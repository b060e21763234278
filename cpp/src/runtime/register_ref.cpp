// Fills the kernel table with the portable reference kernels (the base every ISA overrides).
#include <cstdint>

#include "conv/image_operands.hpp"
#include "gemm/gemm_kernels.hpp"

namespace cnnkit {
namespace {

float fma_chains_ref(std::int64_t iters) {
  constexpr int kChains = 8;
  float acc[kChains];
  volatile float seed = 1e-7f;
  const float x = seed, y = 1.0f - seed;
  for (int i = 0; i < kChains; ++i) acc[i] = float(i);
  for (std::int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * y + x;
  }
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

}  // namespace

void register_ref_kernels(KernelTable& t) {
  t.sgemm_mr = kSgemmMrRef;
  t.sgemm_nr = kSgemmNrRef;
  t.sgemm_ukr = sgemm_ukr_4x16_ref;
  t.pack_patch_panel = pack_patch_panel_ref;
  t.dot_mr = 4;
  t.dot_nr = 4;
  t.dot_nt_tile = dot_nt_tile_ref;
  t.fma_chains = fma_chains_ref;
  t.fma_chain_flops = 8.0 * 2;
}

}  // namespace cnnkit
