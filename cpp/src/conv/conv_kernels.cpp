// Fills the convolution family's sub-table for one ISA: the reference kernels first, then each
// ISA's overrides on top of the level below it. Baseline code: it only takes the ISA kernels'
// addresses.
#include "conv/conv_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_conv_kernels(ConvKernels& k, Isa isa) {
  k.pack_patch_panel = pack_patch_panel_ref;
  k.add_f32 = add_f32_ref;
  k.bias_relu_rows = bias_relu_rows_ref;
  k.wino_input = wino_input_ref;
  k.wino_output = wino_output_ref;
  k.wino_grad_output = wino_grad_output_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) {
    k.pack_patch_panel = avx2::pack_patch_panel_avx2;
    k.add_f32 = avx2::add_f32_avx2;
    k.wino_input = avx2::wino_input_avx2;
    k.wino_output = avx2::wino_output_avx2;
    k.wino_grad_output = avx2::wino_grad_output_avx2;
  }
  if (isa >= Isa::avx512) {
    k.pack_patch_panel = avx512::pack_patch_panel_avx512;
    k.add_f32 = avx512::add_f32_avx512;
    k.bias_relu_rows = avx512::bias_relu_rows_avx512;
    k.wino_input = avx512::wino_input_avx512;
    k.wino_output = avx512::wino_output_avx512;
    k.wino_grad_output = avx512::wino_grad_output_avx512;
  }
  if (isa >= Isa::avx512_bf16) {  // the bf16 rounding by VCVTNEPS2BF16
    k.wino_input = avx512_bf16::wino_input_avx512bf16;
    k.wino_grad_output = avx512_bf16::wino_grad_output_avx512bf16;
  }
  if (isa >= Isa::amx) k.bf16_direct_blocks = amx::bf16_direct_blocks_amx;
#elif CNNKIT_NEON  // kernels/neon/: built on aarch64 only
  if (isa == Isa::neon) {
    k.pack_patch_panel = neon::pack_patch_panel_neon;
    k.add_f32 = neon::add_f32_neon;
  }
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
