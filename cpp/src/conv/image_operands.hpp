// GEMM operand sources that read convolution patches straight from an NCHW image (implicit
// im2col): the engine packs panels from the image, so no column matrix is ever materialised.
#pragma once

#include "cnnkit/gemm.hpp"

namespace cnnkit {

// One image (or one group of its channels): C planes of H x W, read by an Fh x Fw filter
// with stride s, padding p (may be negative: a crop) and dilation d into Ho x Wo positions.
struct PatchGeom {
  index_t C, H, W, Fh, Fw, sh, sw, ph, pw, dh, dw, Ho, Wo;
  index_t rows() const { return C * Fh * Fw; }  // (c, fy, fx), fx fastest
  index_t cols() const { return Ho * Wo; }      // (oy, ox), ox fastest
  bool is_pointwise() const {                   // 1x1, stride 1, no padding: patches == image
    return Fh == 1 && Fw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  }
};

// Writes patch row `row` = (c, fy, fx), columns [j0, j0 + n), contiguously to out:
//   out[t] = x[c][oy * sh - ph + fy * dh][ox * sw - pw + fx * dw]  (0 outside the image).
void gather_patch_row(const PatchGeom& g, const float* x, index_t row, index_t j0, index_t n,
                      float* out);

// The adjoint of gather_patch_row (col2im): x[c][iy][ix] += in[t] for the same positions.
void scatter_add_patch_row(const PatchGeom& g, float* x, index_t row, index_t j0, index_t n,
                           const float* in);

// op(B) = patches [C Fh Fw x Ho Wo] of image x (forward: W @ patches).
class ImagePatchesB final : public GemmOperandB {
 public:
  ImagePatchesB(const float* x, const PatchGeom& g) : x_(x), g_(g) {}
  void pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const override;

 private:
  const float* x_;
  PatchGeom g_;
};

// op(B) = patches^T [Ho Wo x C Fh Fw] (weight gradient: dY @ patches^T).
class ImagePatchesTB final : public GemmOperandB {
 public:
  ImagePatchesTB(const float* x, const PatchGeom& g) : x_(x), g_(g) {}
  void pack(index_t p0, int kc, index_t j0, int n, int nr, float* dst) const override;

 private:
  const float* x_;
  PatchGeom g_;
};

}  // namespace cnnkit
