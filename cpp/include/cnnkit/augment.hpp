// Data augmentation on image batches: resampling of per-image windows and colour jitter (see
// src/augment/augment.cpp; the Python transforms in cnnkit.data.transforms call these).
#pragma once

#include <cstdint>

#include "cnnkit/common.hpp"

namespace cnnkit {

// src [N, C, H, W] float32; boxes [N, 4] float64 (top, left, height, width) in whole pixels;
// dst [N, C, h, w].
struct ResizeBoxesParams {
  index_t N = 0, C = 0, H = 0, W = 0;
  index_t h = 0, w = 0;  // output size
  int threads = 0;       // at most this many threads (0: get_num_threads())
};

// Throws std::invalid_argument unless the sizes are valid (h, w >= 1, 0 <= threads <= 512) and
// every box is a
// whole-pixel window inside its image with height, width >= 1 (boxes may be null: sizes only).
void validate(const ResizeBoxesParams& p, const double* boxes);
// dst[n] = window boxes[n] of src[n] resized to h x w with PIL's antialiased bilinear filter.
// The same bits for any thread count.
void resize_boxes(const ResizeBoxesParams& p, const float* src, const double* boxes, float* dst);

// src, dst [N, C, H, W] float32; factors [N, 3] float64 (brightness, contrast, saturation);
// order [N, K] int64: the ops (0 brightness, 1 contrast, 2 saturation, -1 nothing) image n
// goes through, in that order, each op at most once.
struct ColorJitterParams {
  index_t N = 0, C = 0, H = 0, W = 0;
  index_t K = 0;    // steps per image (order's columns)
  int threads = 0;  // at most this many threads (0: get_num_threads())
};

// Throws std::invalid_argument unless 0 <= threads <= 512, the factors are finite and >= 0,
// every order entry is
// -1, 0, 1 or 2 with no op twice for an image, contrast meets 1 or 3 channels and saturation 3
// (factors and order may be null: sizes only).
void validate(const ColorJitterParams& p, const double* factors, const std::int64_t* order);
// dst = src with each image's ops applied in its order, each clamping to [0, 1]. The same bits
// for any thread count.
void color_jitter(const ColorJitterParams& p, const float* src, const double* factors,
                  const std::int64_t* order, float* dst);

}  // namespace cnnkit
