// Tiles 0-3 as the fp32 sums of a block of C (included by the AMX kernel files only, which are
// compiled with -mamx-tile): 0 and 1 rows 0-15 of columns 0-15 and 16-31, 2 and 3 rows 16-31
// (only with kTwoRows). C's row stride is ldc floats.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace cnnkit {
namespace amx {

// The sums start from C (load) or from zero.
template <bool kTwoRows>
inline void start_sums(const float* c, std::int64_t ldc, bool load) {
  const std::int64_t sc = ldc * std::int64_t(sizeof(float));
  if (load) {
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    if (kTwoRows) {
      _tile_loadd(2, c + 16 * ldc, sc);
      _tile_loadd(3, c + 16 * ldc + 16, sc);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    if (kTwoRows) {
      _tile_zero(2);
      _tile_zero(3);
    }
  }
}

template <bool kTwoRows>
inline void store_sums(float* c, std::int64_t ldc) {
  const std::int64_t sc = ldc * std::int64_t(sizeof(float));
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  if (kTwoRows) {
    _tile_stored(2, c + 16 * ldc, sc);
    _tile_stored(3, c + 16 * ldc + 16, sc);
  }
}

}  // namespace amx
}  // namespace cnnkit
