// Fills the normalisation family's sub-table for one ISA: reference first, then ISA overrides.
#include "norm/norm_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_norm_kernels(NormKernels& k, Isa isa) {
  k.bn_stats = ref::bn_stats_f32_ref;
  k.bn_apply = ref::bn_apply_f32_ref;
  k.bn_bwd_reduce = ref::bn_bwd_reduce_f32_ref;
  k.bn_bwd_apply = ref::bn_bwd_apply_f32_ref;
  k.lrn_fwd = ref::lrn_fwd_f32_ref;
  k.lrn_bwd = ref::lrn_bwd_f32_ref;
  k.rn_apply = ref::rn_apply_f32_ref;
  k.rn_bwd_reduce = ref::rn_bwd_reduce_f32_ref;
  k.rn_bwd_apply = ref::rn_bwd_apply_f32_ref;
  k.rn_dwdb = ref::rn_dwdb_f32_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) {
    k.bn_stats = avx2::bn_stats_f32_avx2;
    k.bn_apply = avx2::bn_apply_f32_avx2;
    k.bn_bwd_reduce = avx2::bn_bwd_reduce_f32_avx2;
    k.bn_bwd_apply = avx2::bn_bwd_apply_f32_avx2;
    k.lrn_fwd = avx2::lrn_fwd_f32_avx2;
    k.lrn_bwd = avx2::lrn_bwd_f32_avx2;
    k.rn_apply = avx2::rn_apply_f32_avx2;
    k.rn_bwd_reduce = avx2::rn_bwd_reduce_f32_avx2;
    k.rn_bwd_apply = avx2::rn_bwd_apply_f32_avx2;
    k.rn_dwdb = avx2::rn_dwdb_f32_avx2;
  }
  if (isa >= Isa::avx512) {
    k.bn_stats = avx512::bn_stats_f32_avx512;
    k.bn_apply = avx512::bn_apply_f32_avx512;
    k.bn_bwd_reduce = avx512::bn_bwd_reduce_f32_avx512;
    k.bn_bwd_apply = avx512::bn_bwd_apply_f32_avx512;
    k.lrn_fwd = avx512::lrn_fwd_f32_avx512;
    k.lrn_bwd = avx512::lrn_bwd_f32_avx512;
    k.rn_apply = avx512::rn_apply_f32_avx512;
    k.rn_bwd_reduce = avx512::rn_bwd_reduce_f32_avx512;
    k.rn_bwd_apply = avx512::rn_bwd_apply_f32_avx512;
    k.rn_dwdb = avx512::rn_dwdb_f32_avx512;
  }
#elif CNNKIT_NEON  // kernels/neon/: built on aarch64 only; LRN and row norms stay on ref
  if (isa == Isa::neon) {
    k.bn_stats = neon::bn_stats_f32_neon;
    k.bn_apply = neon::bn_apply_f32_neon;
    k.bn_bwd_reduce = neon::bn_bwd_reduce_f32_neon;
    k.bn_bwd_apply = neon::bn_bwd_apply_f32_neon;
  }
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
