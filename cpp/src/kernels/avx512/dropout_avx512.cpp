// AVX-512 dropout forward (contract: DropoutFwd in dropout/dropout_kernels.hpp): the same
// splitmix64 hash as the reference (dropout_hash in cnnkit/dropout.hpp), 8 x 64-bit lanes at a time
// with vpmullq, so the mask is bit-identical to the reference for any seed, thread count or ISA.
#include <immintrin.h>

#include <cstdint>

#include "dropout/dropout_kernels.hpp"
#include "kernels/avx512/vmath_avx512.hpp"

namespace cnnkit {
namespace avx512 {
namespace {

// keep bits for the 8 element indices in idx: (hash >> 32) >= threshold
inline __mmask8 keep8(__m512i idx, __m512i seed, __m512i thr) {
  const __m512i one = _mm512_set1_epi64(1);
  __m512i z = _mm512_add_epi64(
      seed, _mm512_mullo_epi64(_mm512_add_epi64(idx, one),
                               _mm512_set1_epi64(std::int64_t(0x9E3779B97F4A7C15ull))));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                         _mm512_set1_epi64(std::int64_t(0xBF58476D1CE4E5B9ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                         _mm512_set1_epi64(std::int64_t(0x94D049BB133111EBull)));
  z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
  return _mm512_cmp_epu64_mask(_mm512_srli_epi64(z, 32), thr, _MM_CMPINT_NLT);
}

}  // namespace

void dropout_fwd_f32_avx512(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                            std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                            float scale) {
  const __m512i vseed = _mm512_set1_epi64(std::int64_t(seed));
  const __m512i thr = _mm512_set1_epi64(std::int64_t(threshold));
  const __m512i lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512 sc = set1(scale);
  const __m128i ones = _mm_set1_epi8(1);
  blocks(n, [&](std::int64_t i, __mmask16 m) {
    const __m512i idx = _mm512_add_epi64(_mm512_set1_epi64(first + i), lanes);
    const __mmask16 k =
        __mmask16(keep8(idx, vseed, thr)) |
        __mmask16(__mmask16(keep8(_mm512_add_epi64(idx, _mm512_set1_epi64(8)), vseed, thr)) << 8);
    store(dst + i, _mm512_maskz_mul_ps(k, load(src + i, m), sc), m);
    _mm_mask_storeu_epi8(mask + i, m, _mm_maskz_mov_epi8(k, ones));
  });
}

}  // namespace avx512
}  // namespace cnnkit
