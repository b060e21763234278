// Reuse of the large blocks behind output arrays (see arrays.hpp).
//
// glibc hands out blocks of 32 MiB and more (its largest mmap threshold) with mmap() and gives
// them back with munmap(); smaller ones come from the heap, whose top it gives back to the
// kernel once the free space there passes the trim threshold -- which the end of a training
// step, freeing most activations at once, does. Either way every such output page-faults and
// is zeroed by the kernel again on each step (AlexNet's fully connected weight gradients: 151 +
// 67 MB; cifar_cnn's 8-16 MB activations at batch 128: 7 % of a bf16 training step in
// clear_page, measured by perf). Outputs of 128 KiB and more are allocated here; freed blocks
// larger than the caches (see cache_min_bytes) are kept, keyed by size, up to a bounded total,
// and handed out again. This is
// cnnkit's alone: glibc's thresholds (mallopt) are never changed, so other libraries in the process
// behave as without cnnkit.
#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

#include "arrays.hpp"
#include "cnnkit/runtime.hpp"

namespace cnnkit::bind {
namespace {

constexpr std::size_t kHeader = 64;                         // keeps the data 64-byte aligned
constexpr std::size_t kMaxCached = std::size_t(512) << 20;  // bytes kept for reuse at most
// Freed blocks of at least twice a core's L2 are kept; smaller ones go back to glibc at once,
// which then serves them from its heap (its mmap threshold rises as such blocks are freed) and
// hands out recently freed, still cached memory, where an exact-size reuse here would give an
// older, colder block. Measured with bench/train.py workers on the Intel Xeon (2 MiB L2, 2
// threads), lenet5 training fp32 / bf16 (img/s): blocks kept from 128 KiB 18.9k / -, from 1 MiB
// 25.9k / 18.5k, none 25.8k / 23.3k, from 4 MiB 25.6k / 23.9k; cifar_cnn fp32 1,953 / 1,991 /
// 1,916 / 1,974 (none: 80 MB more peak RSS).
std::size_t cache_min_bytes() {
  static const std::size_t v =
      std::max<std::size_t>(std::size_t(1) << 20, 2 * cnnkit::cpu_features().l2_bytes);
  return v;
}

struct Cache {
  std::mutex mu;
  std::multimap<std::size_t, void*> free_blocks;  // size -> block (header included)
  std::size_t cached = 0;
  bool enabled = std::getenv("CNNKIT_KEEP_MALLOC") == nullptr;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: arrays may outlive static destructors
  return *c;
}

}  // namespace

void* big_block_acquire(std::size_t bytes) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    // the block of this size freed last (equal keys keep their insertion order): the one
    // most likely still in cache
    auto range = c.free_blocks.equal_range(bytes);
    if (range.first != range.second) {
      auto it = std::prev(range.second);
      void* block = it->second;
      c.free_blocks.erase(it);
      c.cached -= bytes;
      return static_cast<char*>(block) + kHeader;
    }
  }
  void* block = std::aligned_alloc(64, kHeader + (bytes + 63) / 64 * 64);
  if (block == nullptr) return nullptr;
  *static_cast<std::size_t*>(block) = bytes;
  return static_cast<char*>(block) + kHeader;
}

void big_block_release(void* data) {
  void* block = static_cast<char*>(data) - kHeader;
  const std::size_t bytes = *static_cast<std::size_t*>(block);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.enabled && bytes >= cache_min_bytes() && c.cached + bytes <= kMaxCached) {
      c.free_blocks.emplace(bytes, block);
      c.cached += bytes;
      return;
    }
  }
  std::free(block);
}

}  // namespace cnnkit::bind
