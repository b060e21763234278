// int8 convolution forward (inference): implicit GEMM through the int8 engine.
//
//   sum[k][j] = sum_{c, fy, fx} wq[k][c][fy][fx] * q(x[c][oy S - P + fy D][ox S - P + fx D])
//   y[k][j]   = float(sum - x_zp * rowsum(wq[k])) * scale[k] + bias[k], ReLU   (j = oy Wo + ox)
//
// Per image and group, the weights (already int8, packed once per call or by the caller's
// cache) are A and the image's patches are B: the
// engine packs each 32-column panel of patches from the NCHW image in fp32 (the same packer as
// the fp32 path, zeros for the padding, which quantize to the zero point as a real 0 would),
// quantizes it into uint8 quads and sums exactly; the epilogue dequantizes straight into y
// (or, with a fused max pooling, into the thread's workspace, pooled from there while in cache).
// No column matrix; the threads split the output pixels of each image.
#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"
#include "conv/image_operands.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

std::size_t conv2d_int8_packed_bytes(const Conv2dParams& p) {
  const index_t G = p.groups;
  return std::size_t(G) * gemm_s8u8_packed_bytes(p.K / G, p.C / G * p.Fh * p.Fw);
}

void conv2d_int8_pack(const Conv2dParams& p, const std::int8_t* wq, std::int8_t* packed) {
  const index_t G = p.groups, Kg = p.K / G, rows = p.C / G * p.Fh * p.Fw;
  const std::size_t per = gemm_s8u8_packed_bytes(Kg, rows);
  for (index_t gi = 0; gi < G; ++gi) {
    gemm_s8u8_pack_a(Kg, rows, wq + gi * Kg * rows, rows, packed + gi * per);
  }
}

void conv2d_forward_int8(const Conv2dParams& p, const float* src, const Conv2dInt8Weights& w,
                         float x_inv_scale, int x_zero_point, const float* bias, float* dst,
                         bool relu, const Pool2dParams* pool) {
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G;
  const PatchGeom g{Cg,      p.H,     p.W,     p.Fh,    p.Fw, p.stride_h, p.stride_w,
                    p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.Ho, p.Wo};
  const index_t rows = g.rows(), cols = g.cols();
  const int threads = get_num_threads();
  // the weights' panels: the caller's cache, else packed here once for the whole batch (slot 2:
  // the engine uses slots 0 and 1)
  const std::int8_t* packed = w.packed;
  if (!packed) {
    std::int8_t* dst = reinterpret_cast<std::int8_t*>(
        thread_workspace(2, conv2d_int8_packed_bytes(p) / sizeof(float) + 16));
    conv2d_int8_pack(p, w.wq, dst);
    packed = dst;
  }
  const std::size_t per = gemm_s8u8_packed_bytes(Kg, rows);
  const index_t pooled = pool ? pool_out_h(*pool) * pool_out_w(*pool) : 0;
  auto image = [&](index_t n, int gemm_threads) {
    // with a pooling: this image's unpooled planes in the thread's workspace (slot 3), then
    // pooled from there into dst
    float* planes = pool ? thread_workspace(3, std::size_t(p.K) * cols) : nullptr;
    for (index_t gi = 0; gi < G; ++gi) {
      const ImagePatchesB patches(src + (n * p.C + gi * Cg) * p.H * p.W, g);
      I8OperandB b;
      b.f32 = &patches;
      b.inv_scale = x_inv_scale;
      b.zero_point = x_zero_point;
      I8Output out;
      out.y = pool ? planes + gi * Kg * cols : dst + (n * p.K + gi * Kg) * cols;
      out.ldy = cols;
      out.row_sums = w.row_sums + gi * Kg;
      out.scale = w.scale + gi * Kg;
      out.bias = bias ? bias + gi * Kg : nullptr;
      out.relu = relu;
      gemm_s8u8(Kg, cols, rows, w.wq + gi * Kg * rows, rows, b, out, gemm_threads,
                packed + gi * per);
    }
    if (pool) max_pool2d_forward(*pool, planes, dst + n * p.K * pooled, nullptr);
  };
  // At least as many images as threads: one image per thread at a time (no team start-up and
  // barrier per image; the result does not depend on the split: exact sums). Else the threads
  // share each image's columns (and rows).
  if (p.N >= threads && threads > 1) {
    parallel_for(threads, p.N, [&](index_t n) { image(n, 1); });
  } else {
    for (index_t n = 0; n < p.N; ++n) image(n, threads);
  }
}

}  // namespace cnnkit
