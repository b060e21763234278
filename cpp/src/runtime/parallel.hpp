// Splitting an op's work over cnnkit's threads (runtime/thread_pool.cpp; baseline code only).
//
// parallel_team(nt, f): calls f(t, n) on n = nt threads at once, t = 0 on the caller; inside,
//   team_barrier() waits for the whole team and current_thread() is t. A region started inside
//   a region runs as a team of one on the calling thread.
// parallel_for(nt, total, f): f(i) for i in [0, total), a static split (thread t gets the t-th
//   of nt contiguous near-equal ranges: the same partition for the same count, every time).
// parallel_ranges(total, min_per_thread, f): f(begin, end) once per thread on those ranges;
//   stays on the calling thread when there is too little work.
// A task that throws: the first exception is rethrown on the caller once every thread is done.
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include "cnnkit/runtime.hpp"

namespace cnnkit {

// At most this many threads (set_num_threads refuses more).
constexpr int kMaxThreads = 512;

// A type-erased reference to the caller's callable (no allocation).
struct TeamTask {
  void (*call)(void* ctx, int t, int n) = nullptr;
  void* ctx = nullptr;
};

void run_team(int nt, TeamTask task);
void team_barrier();
int current_thread();  // index in the innermost team (0 outside one)
int team_size();       // size of the innermost team (1 outside one)

template <typename F>
void parallel_team(int nt, F&& f) {
  using Fn = std::remove_reference_t<F>;
  TeamTask task;
  task.call = [](void* ctx, int t, int n) { (*static_cast<Fn*>(ctx))(t, n); };
  task.ctx = const_cast<void*>(static_cast<const void*>(&f));
  run_team(nt, task);
}

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
  parallel_team(nt, [&](int t, int n) {
    index_t b, e;
    balanced_range(total, n, t, &b, &e);
    if (b < e) f(b, e);
  });
}

// This thread's static share of [0, total) inside a team: what `#pragma omp for
// schedule(static)` gave (the same split).
inline void team_range(index_t total, index_t* begin, index_t* end) {
  balanced_range(total, team_size(), current_thread(), begin, end);
}

template <typename F>
void parallel_for(int nt, index_t total, F&& f) {
  if (total <= 0) return;
  parallel_team(nt, [&](int t, int n) {
    index_t b, e;
    balanced_range(total, n, t, &b, &e);
    for (index_t i = b; i < e; ++i) f(i);
  });
}

template <typename F>
void parallel_ranges(index_t total, index_t min_per_thread, F&& f) {
  if (total <= 0) return;
  parallel_ranges_on(threads_for(total, min_per_thread), total, std::forward<F>(f));
}

}  // namespace cnnkit
