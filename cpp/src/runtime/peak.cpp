// In-process FMA peak probe: the yardstick for "fraction of peak" in the benchmarks.
// Measured rather than computed from a clock rate, because a shared VM's clock and its
// neighbours vary; benchmarks run it in the same process as the code they rate.
#include <algorithm>
#include <atomic>
#include <chrono>

#include "cnnkit/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/parallel.hpp"

namespace cnnkit {

// The reference probe: 8 independent scalar chains.
float fma_chains_ref(std::int64_t iters) {
  constexpr int kChains = 8;
  float acc[kChains];
  volatile float seed = 1e-7f;
  const float x = seed, y = 1.0f - seed;
  for (int i = 0; i < kChains; ++i) acc[i] = float(i);
  for (std::int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * y + x;
  }
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

namespace {

double probe(const char* op, FmaChains chains, double flops_per_iter, int threads, double seconds,
             int repeats) {
  if (threads < 1) throw_invalid(op, ": threads must be >= 1, got ", threads);
  if (!(seconds > 0)) throw_invalid(op, ": seconds must be > 0, got ", seconds);
  using clock = std::chrono::steady_clock;
  // Calibrate the iteration count on one thread.
  std::int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = clock::now();
    volatile float sink = chains(iters);
    (void)sink;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > 0.02 || iters > (std::int64_t(1) << 40)) {
      iters = std::max<std::int64_t>(1, std::int64_t(double(iters) * seconds / dt));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto t0 = clock::now();
    parallel_team(threads, [&](int, int) {
      volatile float sink = chains(iters);
      (void)sink;
    });
    const int used = threads;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, double(used) * double(iters) * flops_per_iter / dt / 1e9);
  }
  return best;
}

}  // namespace

double fma_peak_gflops(int threads, double seconds, int repeats) {
  const PeakKernels& kt = kernels().peak;
  return probe("fma_peak_gflops", kt.fma_chains, kt.fma_chain_flops, threads, seconds, repeats);
}

double bf16_peak_gflops(int threads, double seconds, int repeats) {
  const PeakKernels& kt = kernels().peak;
  return probe("bf16_peak_gflops", kt.bf16_chains, kt.bf16_chain_flops, threads, seconds, repeats);
}

}  // namespace cnnkit
