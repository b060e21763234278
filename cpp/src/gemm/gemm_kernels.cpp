// Fills the GEMM family's sub-table for one ISA: the reference kernels first, then each ISA's
// overrides on top of the level below it (as BLIS registers reference kernels, then per-CPU
// ones). Baseline code: it only takes the ISA kernels' addresses; the dispatcher calls them
// after CPUID/XGETBV said the CPU can run them.
#include "gemm/gemm_kernels.hpp"

#include "cnnkit/runtime.hpp"

namespace cnnkit {

void register_gemm_kernels(GemmKernels& k, Isa isa) {
  k.sgemm_mr = kSgemmMrRef;
  k.sgemm_nr = kSgemmNrRef;
  k.sgemm_ukr = sgemm_ukr_4x16_ref;
  k.sgemm_rows = nullptr;  // the packed path
  k.transpose = transpose_f32_ref;
  k.dot_mr = kDotMrRef;
  k.dot_nr = kDotNrRef;
  k.dot_nt_tile = dot_nt_tile_ref;
  k.bf16_path = "ref";
  k.bf16_mr = kBf16MrRef;
  k.bf16_kc = kBf16KcRef;
  k.bf16_ukr = bf16_ukr_ref;
  k.bf16_begin = k.bf16_end = nullptr;
  k.round_bf16 = round_bf16_ref;
  k.round_bf16_f32 = round_bf16_f32_ref;
  k.pack_bf16_a = pack_bf16_a_ref;
  k.pack_bf16_b = pack_bf16_b_ref;
  k.interleave_bf16 = interleave_bf16_ref;
  k.bf16_dot_nt_tile = nullptr;  // the bf16 GEMM engine
  k.i8_path = "ref";
  k.i8r_mr = kI8RowsMrRef;
  k.i8_kstep = kI8KStepVec;
  k.u8s8_ukr = u8s8_ukr_ref;
  k.i8_requantize = i8_requantize_ref;
  k.i8_dequantize_cols = i8_dequantize_cols_ref;
  k.quantize_u8_nhwc = quantize_u8_nhwc_ref;
#if CNNKIT_X86  // the x86 kernels: built on x86-64 only (CMakeLists.txt)
  if (isa >= Isa::avx2) {
    k.sgemm_mr = avx2::kSgemmMr;
    k.sgemm_nr = avx2::kSgemmNr;
    k.sgemm_ukr = avx2::sgemm_ukr_6x16_avx2;
    k.transpose = avx2::transpose_f32_avx2;
    k.dot_mr = avx2::kDotMr;
    k.dot_nr = avx2::kDotNr;
    k.dot_nt_tile = avx2::dot_nt_tile_avx2;
    k.bf16_path = "avx2";
    k.bf16_mr = avx2::kBf16MrAvx2;
    k.bf16_kc = avx2::kBf16KcAvx2;
    k.bf16_ukr = avx2::bf16_ukr_avx2;
    k.round_bf16 = avx2::round_bf16_avx2;
    k.round_bf16_f32 = avx2::round_bf16_f32_avx2;
    k.pack_bf16_a = avx2::pack_bf16_a_avx2;
    k.pack_bf16_b = avx2::pack_bf16_b_avx2;
    k.interleave_bf16 = avx2::interleave_bf16_avx2;
    k.i8_path = "avx2";
    k.i8r_mr = avx2::kI8RowsMr;
    k.u8s8_ukr = avx2::u8s8_ukr_avx2;
    k.i8_requantize = avx2::i8_requantize_avx2;
    k.i8_dequantize_cols = avx2::i8_dequantize_cols_avx2;
    k.quantize_u8_nhwc = avx2::quantize_u8_nhwc_avx2;
  }
  if (isa >= Isa::avx512) {
    k.sgemm_mr = avx512::kSgemmMr;
    k.sgemm_nr = avx512::kSgemmNr;
    k.sgemm_ukr = avx512::sgemm_ukr_14x32_avx512;
    k.sgemm_rows = avx512::sgemm_rows_avx512;
    k.transpose = avx512::transpose_f32_avx512;
    k.dot_mr = avx512::kDotMr;
    k.dot_nr = avx512::kDotNr;
    k.dot_nt_tile = avx512::dot_nt_tile_avx512;
    k.i8_requantize = avx512::i8_requantize_avx512;
    k.i8_dequantize_cols = avx512::i8_dequantize_cols_avx512;
  }
  if (isa >= Isa::avx512_bf16) {
    k.bf16_path = "avx512_bf16";
    k.bf16_mr = avx512_bf16::kBf16Mr;
    k.bf16_kc = avx512_bf16::kBf16Kc;
    k.bf16_ukr = avx512_bf16::bf16_ukr_14x32;
    k.round_bf16 = avx512_bf16::round_bf16;
    k.round_bf16_f32 = avx512_bf16::round_bf16_f32;
    k.pack_bf16_a = avx512_bf16::pack_bf16_a;
    k.pack_bf16_b = avx512_bf16::pack_bf16_b;
    k.interleave_bf16 = avx512_bf16::interleave_bf16;
    k.bf16_dot_nt_tile = avx512_bf16::bf16_dot_nt_tile;
    k.i8_path = "avx512_vnni";
    k.i8r_mr = avx512_vnni::kI8RowsMr;
    k.u8s8_ukr = avx512_vnni::u8s8_ukr_14x32;
    k.quantize_u8_nhwc = avx512_vnni::quantize_u8_nhwc;
  }
  if (isa >= Isa::amx) {
    k.bf16_path = "amx";
    k.bf16_mr = amx::kBf16Mr;
    k.bf16_kc = amx::kBf16Kc;
    k.bf16_ukr = amx::bf16_ukr_32x32;
    k.bf16_row = amx::bf16_row_32;
    k.bf16_finish = amx::bf16_finish;
    k.bf16_begin = amx::tiles_begin;
    k.bf16_end = amx::tiles_end;
    k.bf16_accumulate_block = amx::bf16_accumulate_block;
    k.bf16_dot_nt_tile = nullptr;  // measured only without AMX: the tile engine instead
    k.i8_path = "amx";
    k.i8r_mr = amx::kI8RowsMr;
    k.i8_kstep = kI8KStepAmx;
    k.u8s8_ukr = amx::u8s8_ukr_32x32;
  }
#elif CNNKIT_NEON  // kernels/neon/: built on aarch64 only
  if (isa == Isa::neon) {
    k.sgemm_mr = neon::kSgemmMr;
    k.sgemm_nr = neon::kSgemmNr;
    k.sgemm_ukr = neon::sgemm_ukr_8x12_neon;
    k.transpose = neon::transpose_f32_neon;
    k.dot_mr = neon::kDotMr;
    k.dot_nr = neon::kDotNr;
    k.dot_nt_tile = neon::dot_nt_tile_neon;
  }
#else
  (void)isa;
#endif
}

}  // namespace cnnkit
