// Reference Winograd F(4x4, 3x3) transforms: the same maths as the SIMD kernels
// (winograd_f43.hpp), one lane (tile) at a time.
#include <algorithm>

#include "conv/conv_kernels.hpp"
#include "conv/winograd_f43.hpp"
#include "util/bf16.hpp"

namespace cnnkit {

using wino::kA;
using wino::kLanes;
using wino::kM;

namespace {

inline bool lane_in(const WinoLanes& L, int i, int j, int l) {
  return ((L.rows[i] & L.cols[j]) >> l) & 1u;
}

}  // namespace

void wino_input_ref(const float* x, std::int64_t plane, std::int64_t ld, int channels,
                    const WinoLanes& L, float* v, std::int64_t v_xi, std::int64_t v_c,
                    bool round_bf16) {
  for (int c = 0; c < channels; ++c) {
    const float* xc = x + c * plane;
    for (int l = 0; l < kLanes; ++l) {
      float d[kA * kA], t[kA * kA], o[kA * kA];
      for (int i = 0; i < kA; ++i) {
        for (int j = 0; j < kA; ++j) {
          const float e = lane_in(L, i, j, l) ? xc[L.off[l] + i * ld + j] : 0.0f;
          d[i * kA + j] = round_bf16 ? bf16_round(e) : e;
        }
      }
      for (int i = 0; i < kA; ++i) wino::input_1d(d + i * kA, 1, t + i * kA, 1);  // d B
      for (int j = 0; j < kA; ++j) wino::input_1d(t + j, kA, o + j, kA);          // B^T (d B)
      for (int xi = 0; xi < kA * kA; ++xi) v[xi * v_xi + c * v_c + l] = o[xi];
    }
  }
}

void wino_output_ref(const float* m, std::int64_t m_xi, std::int64_t m_k, int channels,
                     const WinoLanes& L, float* y, std::int64_t plane, std::int64_t ld,
                     const float* bias, bool relu) {
  for (int k = 0; k < channels; ++k) {
    float* yk = y + k * plane;
    const float b = bias ? bias[k] : 0.0f;
    for (int l = 0; l < L.n; ++l) {
      float in[kA * kA], t[kM * kA], o[kM * kM];
      for (int xi = 0; xi < kA * kA; ++xi) in[xi] = m[xi * m_xi + k * m_k + l];
      for (int j = 0; j < kA; ++j) wino::output_1d(in + j, kA, t + j, kA);  // A^T M: 4 x 6
      for (int i = 0; i < kM; ++i) wino::output_1d(t + i * kA, 1, o + i * kM, 1);
      for (int i = 0; i < kM; ++i) {
        for (int j = 0; j < kM; ++j) {
          if (!lane_in(L, i, j, l)) continue;
          const float r = o[i * kM + j] + b;
          yk[L.off[l] + i * ld + j] = relu ? std::max(r, 0.0f) : r;
        }
      }
    }
  }
}

void wino_grad_output_ref(const float* dy, std::int64_t plane, std::int64_t ld, int channels,
                          const WinoLanes& L, float* m, std::int64_t m_xi, std::int64_t m_k,
                          bool round_bf16) {
  for (int k = 0; k < channels; ++k) {
    const float* dk = dy + k * plane;
    for (int l = 0; l < kLanes; ++l) {
      float g[kM * kM], t[kM * kA], o[kA * kA];
      for (int i = 0; i < kM; ++i) {
        for (int j = 0; j < kM; ++j) {
          const float e = lane_in(L, i, j, l) ? dk[L.off[l] + i * ld + j] : 0.0f;
          g[i * kM + j] = round_bf16 ? bf16_round(e) : e;
        }
      }
      for (int i = 0; i < kM; ++i) wino::grad_output_1d(g + i * kM, 1, t + i * kA, 1);
      for (int j = 0; j < kA; ++j) wino::grad_output_1d(t + j, kA, o + j, kA);
      for (int xi = 0; xi < kA * kA; ++xi) m[xi * m_xi + k * m_k + l] = o[xi];
    }
  }
}

}  // namespace cnnkit
