// cnnkit's own fork-join thread runtime (replaces OpenMP; see parallel.hpp for the interface).
//
// Why not OpenMP: libgomp's workers either sleep soon after a region (GOMP_SPINCOUNT, a
// process-wide environment setting) and are woken onto the caller's CPU, which made small GEMMs
// bimodal from process to process (41-66 vs ~300 GFLOP/s for 256^3 on 2 threads), or spin for
// milliseconds in every other library of the process that uses the same libgomp. Here the
// waiting policy is cnnkit's alone:
// - persistent workers, each spinning on its own cache line for `spin` after its last task
//   (default 200 us, CNNKIT_SPIN_US; 0 when there are more threads than CPUs), then asleep on a
//   futex (the caller, waiting for its workers inside a region, spins up to 5 ms: see
//   caller_spin); a region wakes only the workers it uses, by syscall only for sleepers. Measured
//   on 2 cores, cifar_cnn fp32 training: 1,981 img/s without spinning, 2,083-2,095 with 200 us or
//   more; with one core busy in another process 943 / 1,002 (libgomp with GOMP_SPINCOUNT=10000,
//   what cnnkit used to set in the environment: 1,008);
// - workers run anywhere in the process's affinity mask but step off the caller's place (a core,
//   or a CPU) when they find themselves on it at a task's start: unbound, Linux left a worker and
//   the caller on one CPU for a whole run in 7 of 8 fresh processes (sgemm 256^3 on 2 threads
//   at ~59 instead of ~365 GFLOP/s); pinned for good, a worker shares its CPU with whatever else
//   lands there. OMP_PROC_BIND=false or CNNKIT_BIND=0 turns this off; OMP_PLACES (threads /
//   cores / explicit lists) pins each worker to a place; OMP_PROC_BIND=true|close|spread also
//   pins the calling thread to the first place, as OpenMP does; several local MPI ranks (Open MPI,
//   MPICH, Slurm variables) on an unbound mask each take their own slice of it (the places:
//   affinity.cpp). cpu_info()["thread_binding"] says what was done.
// - static work split only (parallel.hpp): a thread count always gives the same partition, so
//   results are bitwise identical from run to run for a given count.
// A second caller thread waits for the running region to end (regions are short); a region
// started inside a region runs on the calling thread alone (team of one). The first exception
// a task throws is rethrown on the caller after every thread has finished.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/affinity.hpp"
#include "runtime/parallel.hpp"

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cnnkit {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

void futex_wait(std::atomic<std::uint32_t>* addr, std::uint32_t seen) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAIT_PRIVATE, seen, nullptr,
          nullptr, 0);
#else
  (void)addr;
  (void)seen;
  std::this_thread::sleep_for(std::chrono::microseconds(50));
#endif
}

void futex_wake(std::atomic<std::uint32_t>* addr, int count) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), FUTEX_WAKE_PRIVATE, count, nullptr,
          nullptr, 0);
#else
  (void)addr;
  (void)count;
#endif
}

using Clock = std::chrono::steady_clock;

// Waits until *addr != seen: spins on the cache line for `spin`, then sleeps on the futex.
// `sleepers` counts the threads asleep on addr (the waker makes the wake syscall only when it is
// non-zero). No sched_yield() phase: a thread that yields and spins on loses the scheduler's
// wake-up preference to a busy neighbour (measured with one core busy in another process:
// cifar_cnn fp32 training 880 img/s with 50 us of spinning then yields up to 1 ms, 1,002 with
// 200 us of plain spinning).
std::uint32_t wait_change(std::atomic<std::uint32_t>* addr, std::uint32_t seen,
                          std::atomic<int>* sleepers, Clock::duration spin) {
  std::uint32_t v = addr->load(std::memory_order_acquire);
  if (v != seen) return v;
  if (spin.count() > 0) {
    const auto until = Clock::now() + spin;
    do {
      for (int i = 0; i < 16; ++i) {
        cpu_relax();
        v = addr->load(std::memory_order_acquire);
        if (v != seen) return v;
      }
    } while (Clock::now() < until);
  }
  for (;;) {
    sleepers->fetch_add(1, std::memory_order_seq_cst);
    v = addr->load(std::memory_order_seq_cst);
    if (v == seen) futex_wait(addr, seen);
    sleepers->fetch_sub(1, std::memory_order_seq_cst);
    v = addr->load(std::memory_order_acquire);
    if (v != seen) return v;
  }
}

void set_and_wake(std::atomic<std::uint32_t>* addr, std::uint32_t value,
                  std::atomic<int>* sleepers) {
  addr->store(value, std::memory_order_seq_cst);
  if (sleepers->load(std::memory_order_seq_cst) > 0) futex_wake(addr, 1 << 30);
}

// ---- the pool -----------------------------------------------------------------------------

thread_local int tls_thread = 0;  // index in the current team
thread_local int tls_team = 1;    // size of the current team
thread_local bool tls_in_team = false;
thread_local bool tls_caller_bound = false;

struct alignas(64) Slot {
  std::atomic<std::uint32_t> go{0};  // bumped by the caller to start this worker's task
  std::atomic<int> sleepers{0};
  char pad[64 - sizeof(std::atomic<std::uint32_t>) - sizeof(std::atomic<int>)];
};

class Pool {
 public:
  Pool() : binding_(choose_binding()) {
    if (const char* v = std::getenv("CNNKIT_SPIN_US")) {
      char* end = nullptr;
      const long us = std::strtol(v, &end, 10);
      if (end != v && us >= 0) spin_us_ = us;
    }
  }

  const Binding& binding() const { return binding_; }

  // The caller waits for its workers up to 5 ms before sleeping, longer than they wait for
  // work: a caller asleep on the futex is woken by the last worker, and Linux then tends to
  // run it on that worker's CPU (wake-affine), so one of the two moves off its warm L2 at the
  // next region. Measured, cifar_cnn bf16 inference at batch 128 in 10 fresh processes: with
  // 200 us, 1-3 processes at ~13.5k img/s instead of ~24k (and some training steps at 2,200
  // instead of 2,800); with 2 ms 2 of 10; with 5 ms none. Zero when oversubscribed.
  Clock::duration caller_spin() const {
    return spin_ns_.load(std::memory_order_relaxed) == 0 ? Clock::duration(0)
                                                         : std::chrono::milliseconds(5);
  }

  Clock::duration spin() const {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::nanoseconds(spin_ns_.load(std::memory_order_relaxed)));
  }

  void run(int nt, TeamTask task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (binding_.bind_caller && !tls_caller_bound && !binding_.places.empty()) {
      bind_to(binding_.places[0]);
      tls_caller_bound = true;
    }
    follow_caller();
    grow(nt - 1);
    task_ = task;
    team_ = nt;
    error_ = nullptr;
    // More threads than CPUs: spinning would take the CPU from a thread with work.
    spin_ns_.store(nt > binding_.cpus ? 0 : spin_us_ * 1000, std::memory_order_relaxed);
    pending_.store(nt - 1, std::memory_order_relaxed);
    barrier_count_.store(0, std::memory_order_relaxed);
    ++gen_;
    for (int t = 1; t < nt; ++t) set_and_wake(&slots_[t].go, gen_, &slots_[t].sleepers);
    execute(0, nt, task);
    // Wait for the workers: spin, then sleep on `pending`'s futex word.
    std::uint32_t left = std::uint32_t(pending_.load(std::memory_order_acquire));
    while (left != 0) {
      left = wait_change(reinterpret_cast<std::atomic<std::uint32_t>*>(&pending_), left,
                         &done_sleepers_, caller_spin());
    }
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  void barrier() {
    const int n = tls_team;
    if (n <= 1) return;
    const std::uint32_t phase = barrier_phase_.load(std::memory_order_acquire);
    if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      barrier_count_.store(0, std::memory_order_relaxed);
      set_and_wake(&barrier_phase_, phase + 1, &barrier_sleepers_);
    } else {
      wait_change(&barrier_phase_, phase, &barrier_sleepers_, spin());
    }
  }

 private:
  void execute(int t, int n, TeamTask task) {
    tls_thread = t;
    tls_team = n;
    tls_in_team = true;
    try {
      task.call(task.ctx, t, n);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    tls_in_team = false;
    tls_thread = 0;
    tls_team = 1;
  }

  // Starts workers up to index `count` (they live for the rest of the process).
  void grow(int count) {
    while (started_ < count) {
      const int id = ++started_;
      std::thread([this, id] { worker(id); }).detach();
    }
  }

  // The caller is not bound (its CPU is the user's business), so the workers keep off the
  // place it runs on now: a pinned worker t takes the t-th place after the caller's, an unpinned
  // one found on the caller's place moves there. A worker on the caller's CPU halves a region
  // (measured: sgemm 256^3 on 2 threads at ~89 instead of ~310 GFLOP/s in 3 of 5 fresh
  // processes with workers pinned to fixed places).
  void follow_caller() {
    if (binding_.places.empty()) return;
    int place = 0;
#if defined(__linux__)
    if (!binding_.bind_caller) {
      const int cpu = sched_getcpu();
      place = cpu >= 0 && std::size_t(cpu) < binding_.place_of_cpu.size()
                  ? binding_.place_of_cpu[std::size_t(cpu)]
                  : -1;
      if (place < 0) place = caller_place_;  // outside every place: keep the last choice
    }
#endif
    if (place != caller_place_) {
      caller_place_ = place;
      ++placement_;
    }
  }

  void worker(int id) {
#if defined(__linux__)
    const std::string name = "cnnkit-" + std::to_string(id);  // as top / perf show it
    pthread_setname_np(pthread_self(), name.c_str());
#endif
    Slot& slot = slots_[id];
    std::uint32_t seen = 0, placed = ~0u;
    for (;;) {
      seen = wait_change(&slot.go, seen, &slot.sleepers, spin());
      const std::size_t n = binding_.places.size();
      if (n > 0 && binding_.hard && placed != placement_) {
        placed = placement_;
        bind_to(binding_.places[(std::size_t(caller_place_) + std::size_t(id)) % n]);
      } else if (n > 1 && !binding_.hard) {
#if defined(__linux__)
        // On the caller's place: move to another one now (a mask without this CPU migrates
        // the thread at once), then let the scheduler place it freely again.
        const int cpu = sched_getcpu();
        if (cpu >= 0 && std::size_t(cpu) < binding_.place_of_cpu.size() &&
            binding_.place_of_cpu[std::size_t(cpu)] == caller_place_) {
          bind_to(binding_.places[(std::size_t(caller_place_) + std::size_t(id)) % n]);
          bind_to(binding_.all);
        }
#endif
      }
      execute(id, team_, task_);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
          done_sleepers_.load(std::memory_order_seq_cst) > 0) {
        futex_wake(reinterpret_cast<std::atomic<std::uint32_t>*>(&pending_), 1);
      }
    }
  }

  Binding binding_;
  std::int64_t spin_us_ = 200;
  std::mutex mutex_;  // one region at a time
  std::mutex error_mutex_;
  std::unique_ptr<Slot[]> slots_{new Slot[kMaxThreads]};
  int started_ = 0;
  TeamTask task_{};
  int caller_place_ = 0;         // the place the caller ran on at the last region's start
  std::uint32_t placement_ = 0;  // bumped when caller_place_ changes
  int team_ = 1;
  std::uint32_t gen_ = 0;
  std::atomic<std::int64_t> spin_ns_{0};
  std::exception_ptr error_;
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<int> done_sleepers_{0};
  alignas(64) std::atomic<int> barrier_count_{0};
  alignas(64) std::atomic<std::uint32_t> barrier_phase_{0};
  std::atomic<int> barrier_sleepers_{0};
};

static_assert(sizeof(std::atomic<int>) == sizeof(std::atomic<std::uint32_t>),
              "pending_ doubles as a futex word");

// Never destroyed (workers may still be asleep at exit); a forked child gets a fresh pool
// (the parent's workers do not exist there).
Pool* g_pool = nullptr;
std::once_flag g_pool_once;

void after_fork_in_child() { g_pool = new Pool(); }

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool = new Pool();
#if defined(__linux__)
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif
  });
  return *g_pool;
}

}  // namespace

void run_team(int nt, TeamTask task) {
  if (nt <= 1 || tls_in_team) {
    // Alone, or nested in a region: a team of one on this thread.
    const int t = tls_thread, n = tls_team;
    const bool in = tls_in_team;
    tls_thread = 0;
    tls_team = 1;
    tls_in_team = true;
    struct Restore {
      int t, n;
      bool in;
      ~Restore() {
        tls_thread = t;
        tls_team = n;
        tls_in_team = in;
      }
    } restore{t, n, in};
    task.call(task.ctx, 0, 1);
    return;
  }
  pool().run(nt, task);
}

void team_barrier() {
  if (tls_team > 1) pool().barrier();
}

int current_thread() { return tls_thread; }

int team_size() { return tls_team; }

std::string thread_binding() { return pool().binding().text; }

int usable_cpus() { return pool().binding().cpus; }

std::vector<int> thread_team_probe(int nt, int rounds, int throw_thread) {
  if (nt < 1 || nt > kMaxThreads)
    throw_invalid("thread_team_probe: nt must be in [1, ", kMaxThreads, "], got ", nt);
  std::vector<std::atomic<int>> ran(std::size_t(nt) + 1);
  std::atomic<int> arrived{0}, bad{0};
  parallel_team(nt, [&](int t, int n) {
    ran[std::size_t(t)].fetch_add(1);
    if (t == 0) ran[std::size_t(nt)].store(n);
    for (int r = 0; r < rounds; ++r) {
      arrived.fetch_add(1);
      team_barrier();
      if (arrived.load() != n * (r + 1)) bad.fetch_add(1);
      team_barrier();
    }
    if (t == throw_thread) throw_invalid("thread_team_probe: thrown by thread ", t);
  });
  if (bad.load() != 0) throw_invalid("thread_team_probe: ", bad.load(), " barrier checks failed");
  std::vector<int> out;
  for (auto& r : ran) out.push_back(r.load());
  return out;
}

}  // namespace cnnkit
