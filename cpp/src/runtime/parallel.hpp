// Splitting an op's work over the OpenMP threads (baseline code only: it is a template).
//
// parallel_ranges(total, min_per_thread, f): calls f(begin, end) once per thread on contiguous,
// near-equal ranges of [0, total) (static schedule, so a given thread count always gives the
// same split); stays on the calling thread when there is too little work. f must not throw.
#pragma once

#include <algorithm>
#include <utility>

#include "cnnkit/runtime.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {

// Part i of `total` split into `parts` near-equal pieces: [begin, begin + len).
inline void balanced_part(index_t total, index_t parts, index_t i, index_t* begin, index_t* len) {
  const index_t base = total / parts, rem = total % parts;
  *begin = i * base + std::min(i, rem);
  *len = base + (i < rem ? 1 : 0);
}

inline void balanced_range(index_t total, index_t parts, index_t i, index_t* begin, index_t* end) {
  index_t len;
  balanced_part(total, parts, i, begin, &len);
  *end = *begin + len;
}

// Threads worth waking for `total` items when each thread should get >= min_per_thread.
inline int threads_for(index_t total, index_t min_per_thread) {
  const index_t useful = std::max<index_t>(1, total / std::max<index_t>(1, min_per_thread));
  return int(std::min<index_t>(get_num_threads(), useful));
}

// parallel_ranges on at most `nt` threads, a count the caller already read with threads_for()
// and sized per-thread buffers by: reading get_num_threads() again could give a larger count
// if another Python thread called set_num_threads() in between (issue 9).
template <typename F>
void parallel_ranges_on(int nt, index_t total, F&& f) {
  if (total <= 0) return;
  if (nt <= 1) {
    f(index_t(0), total);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    index_t b, e;
    balanced_range(total, n, t, &b, &e);
    if (b < e) f(b, e);
  }
#else
  f(index_t(0), total);
#endif
}

template <typename F>
void parallel_ranges(index_t total, index_t min_per_thread, F&& f) {
  if (total <= 0) return;
  parallel_ranges_on(threads_for(total, min_per_thread), total, std::forward<F>(f));
}

}  // namespace cnnkit

namespace cnnkit {

// Index of the calling OpenMP thread inside the innermost parallel region (0 outside one).
inline int current_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace cnnkit
