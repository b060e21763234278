// AVX2 dropout forward (contract: DropoutFwd in dropout/dropout_kernels.hpp): the same splitmix64
// hash as the reference (dropout_hash in cnnkit/dropout.hpp), 4 x 64-bit lanes at a time, so the
// mask is bit-identical to the reference for any seed, thread count or ISA. AVX2 has no 64-bit
// low multiply (vpmullq): a * c mod 2^64 is built from three 32 x 32 -> 64 vpmuludq,
//   lo(a) lo(c) + ((hi(a) lo(c) + lo(a) hi(c)) << 32).
// The first step, seed + (i + 1) golden, is a scalar product per block plus per-lane constants
// (all mod 2^64, so exact). Each block of 8 elements hashes two vectors, holding elements
// {0, 1, 4, 5} and {2, 3, 6, 7}, so that one vshufps of their low halves gives the 8 keep masks
// in element order. The tail goes through the same code with masked loads and stores.
#include <immintrin.h>

#include <cstdint>

#include "dropout/dropout_kernels.hpp"
#include "kernels/avx2/vmath_avx2.hpp"

namespace cnnkit {
namespace avx2 {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t kMul1 = 0xBF58476D1CE4E5B9ull;
constexpr std::uint64_t kMul2 = 0x94D049BB133111EBull;

// a * c mod 2^64 per 64-bit lane; c_lo / c_hi hold the low / high 32 bits of c in each lane.
inline __m256i mul64(__m256i a, __m256i c_lo, __m256i c_hi) {
  const __m256i ll = _mm256_mul_epu32(a, c_lo);
  const __m256i cross =
      _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), c_lo), _mm256_mul_epu32(a, c_hi));
  return _mm256_add_epi64(ll, _mm256_slli_epi64(cross, 32));
}

struct Hash {
  __m256i m1_lo, m1_hi, m2_lo, m2_hi, thr;
  // All ones in the lanes to drop: (z >> 32) < threshold, given z = seed + (i + 1) golden.
  __m256i drop(__m256i z) const {
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), m1_lo, m1_hi);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), m2_lo, m2_hi);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    return _mm256_cmpgt_epi64(thr, _mm256_srli_epi64(z, 32));  // both in [0, 2^32): signed is ok
  }
};

inline __m256i set1_u64(std::uint64_t v) { return _mm256_set1_epi64x(std::int64_t(v)); }

inline __m256i lanes_u64(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
  return _mm256_setr_epi64x(std::int64_t(a), std::int64_t(b), std::int64_t(c), std::int64_t(d));
}

}  // namespace

void dropout_fwd_f32_avx2(const float* src, float* dst, std::uint8_t* mask, std::int64_t n,
                          std::int64_t first, std::uint64_t seed, std::uint32_t threshold,
                          float scale) {
  const Hash h{set1_u64(kMul1 & 0xFFFFFFFFu), set1_u64(kMul1 >> 32), set1_u64(kMul2 & 0xFFFFFFFFu),
               set1_u64(kMul2 >> 32), set1_u64(threshold)};
  // z for element first + j: base + j golden (mod 2^64)
  const std::uint64_t base = seed + (std::uint64_t(first) + 1) * kGolden;
  const __m256i za = lanes_u64(base, base + kGolden, base + 4 * kGolden, base + 5 * kGolden);
  const __m256i zb =
      lanes_u64(base + 2 * kGolden, base + 3 * kGolden, base + 6 * kGolden, base + 7 * kGolden);
  const __m256 sc = set1(scale);
  const __m128i ones = _mm_set1_epi8(1);
  blocks(n, [&](std::int64_t i, auto io) {
    const __m256i off = set1_u64(std::uint64_t(i) * kGolden);
    const __m256 da = _mm256_castsi256_ps(h.drop(_mm256_add_epi64(za, off)));
    const __m256 db = _mm256_castsi256_ps(h.drop(_mm256_add_epi64(zb, off)));
    const __m256 d = _mm256_shuffle_ps(da, db, _MM_SHUFFLE(2, 0, 2, 0));  // elements 0..7
    io.store(dst + i, _mm256_andnot_ps(d, _mm256_mul_ps(io.load(src + i), sc)));
    const __m256i di = _mm256_castps_si256(d);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(di), _mm256_extracti128_si256(di, 1));
    const __m128i keep = _mm_andnot_si128(_mm_packs_epi16(w, w), ones);  // 8 bytes of 0 / 1
    if (n - i >= 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(mask + i), keep);
    } else {
      alignas(16) std::uint8_t buf[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(buf), keep);
      for (std::int64_t j = 0; j < n - i; ++j) mask[i + j] = buf[j];
    }
  });
}

}  // namespace avx2
}  // namespace cnnkit
