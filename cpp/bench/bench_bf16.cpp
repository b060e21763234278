// bf16 GEMM microbenchmark: where the time goes, against the in-process bf16 peak probe.
// Three figures per shape: the whole sgemm (fp32 operands rounded and packed per call), the
// engine on operands packed once (PrepackedA / PrepackedB: the micro-kernel and its loops
// only), and the share of packing that makes the difference.
// Build: cmake -S . -B build/bench -DCNNKIT_BUILD_BENCH=ON && cmake --build build/bench
// Run:   build/bench/bench_bf16 [repeats] [threads...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"

using cnnkit::index_t;

namespace {

template <class F>
double best_seconds(F&& f, int repeats) {
  f();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

struct Result {
  double whole, engine;  // GFLOP/s
};

Result measure(index_t M, index_t N, index_t K, int threads, int repeats) {
  std::vector<float> a(M * K), b(K * N), c(M * N);
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : a) v = dist(gen);
  for (float& v : b) v = dist(gen);
  const double flops = 2.0 * M * N * K;
  const auto bf16 = cnnkit::Precision::bf16;
  Result r;
  r.whole = flops /
            best_seconds(
                [&] {
                  cnnkit::sgemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f,
                                c.data(), N, bf16);
                },
                repeats) /
            1e9;
  const cnnkit::MatrixOperandA ma(a.data(), K, false);
  const cnnkit::MatrixOperandB mb(b.data(), N, false);
  std::vector<float> a_store(cnnkit::PrepackedA::floats(M, K, bf16));
  std::vector<std::uint16_t> b_store(cnnkit::PrepackedB::values(K, N));
  const cnnkit::PrepackedA pa(M, K, ma, a_store.data(), bf16);
  cnnkit::PrepackedB::pack(K, N, mb, b_store.data());
  const cnnkit::PrepackedB pb(K, N, b_store.data());
  cnnkit::GemmOutput out;
  out.c = c.data();
  out.ldc = N;
  r.engine =
      flops /
      best_seconds([&] { cnnkit::gemm(M, N, K, pa, pb, out, threads, nullptr, bf16); }, repeats) /
      1e9;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 7;
  std::vector<int> thread_counts;
  for (int i = 2; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
  if (thread_counts.empty()) thread_counts = {1, 2};
  cnnkit::init_runtime();
  struct Shape {
    index_t M, N, K;
    const char* note;
  };
  const Shape shapes[] = {
      {256, 256, 256, ""},
      {512, 512, 512, ""},
      {1024, 1024, 1024, ""},
      {2048, 2048, 2048, ""},
      {64, 32768, 288, "conv 32->64 3x3"},
      {256, 729, 2304, "conv 256->256 3x3 27x27"},
  };
  for (int threads : thread_counts) {
    cnnkit::set_num_threads(threads);
    const double peak = cnnkit::bf16_peak_gflops(threads, 0.3, 3);
    std::printf("threads=%d  bf16 peak probe: %.0f GFLOP/s\n", threads, peak);
    std::printf("%-22s %16s %16s\n", "M x N x K", "sgemm bf16", "prepacked");
    for (const Shape& s : shapes) {
      const Result r = measure(s.M, s.N, s.K, threads, repeats);
      char name[64];
      std::snprintf(name, sizeof name, "%lld x %lld x %lld", (long long)s.M, (long long)s.N,
                    (long long)s.K);
      std::printf("%-22s %7.0f (%4.1f%%) %7.0f (%4.1f%%)  %s\n", name, r.whole,
                  100.0 * r.whole / peak, r.engine, 100.0 * r.engine / peak, s.note);
    }
  }
  return 0;
}
