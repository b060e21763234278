// SGEMM microbenchmark: GFLOP/s and fraction of the in-process FMA peak probe.
// Build: cmake -S . -B build/bench -DCNNKIT_BUILD_BENCH=ON && cmake --build build/bench
// Run:   OMP_NUM_THREADS=2 build/bench/bench_gemm [repeats]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"

using cnnkit::index_t;

static double time_sgemm(index_t M, index_t N, index_t K, int repeats) {
  std::vector<float> a(M * K), b(K * N), c(M * N);
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : a) v = dist(gen);
  for (float& v : b) v = dist(gen);
  auto run = [&] {
    cnnkit::sgemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
  };
  run();
  double best = 1e30;
  // Enough calls per sample that tiny sizes are not dominated by the clock.
  const int inner = std::max<index_t>(1, index_t(2e8 / (2.0 * M * N * K + 1)));
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) run();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt / inner);
  }
  return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 7;
  cnnkit::init_runtime();
  const int threads = cnnkit::get_num_threads();
  const double peak = cnnkit::fma_peak_gflops(threads, 0.3, 3);
  std::printf("isa=%s threads=%d  FMA peak probe: %.1f GFLOP/s\n",
              cnnkit::isa_name(cnnkit::active_isa()), threads, peak);
  std::printf("%-28s %10s %8s\n", "M x N x K", "GFLOP/s", "of peak");
  struct Shape {
    index_t M, N, K;
    const char* note;
  };
  const Shape shapes[] = {
      {64, 64, 64, ""},
      {128, 128, 128, ""},
      {256, 256, 256, ""},
      {512, 512, 512, ""},
      {1024, 1024, 1024, ""},
      {2048, 2048, 2048, ""},
      {64, 32768, 288, "conv 32->64 3x3"},
      {256, 729, 2304, "conv 256->256 3x3 27x27"},
  };
  for (const Shape& s : shapes) {
    const double g = time_sgemm(s.M, s.N, s.K, repeats);
    char name[64];
    std::snprintf(name, sizeof name, "%lld x %lld x %lld", (long long)s.M, (long long)s.N,
                  (long long)s.K);
    std::printf("%-28s %10.1f %7.1f%%  %s\n", name, g, 100.0 * g / peak, s.note);
  }
  return 0;
}
