// Thread placement for the thread pool (see affinity.hpp and the top of thread_pool.cpp):
// places from the affinity mask (one per core, distinct cores first), OMP_PLACES' abstract
// names and explicit lists, OMP_PROC_BIND, and a slice per local MPI rank on an unbound machine.
#include "runtime/affinity.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#endif

namespace cnnkit {
namespace {

#if defined(__linux__)
CpuSet affinity_cpus() {
  CpuSet out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

// The CPUs sharing a core with `cpu` (sysfs), or just {cpu}.
CpuSet core_siblings(int cpu) {
  const std::string path =
      "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list";
  CpuSet out;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[256] = {};
    if (std::fgets(buf, sizeof buf, f)) {
      const char* s = buf;
      while (*s) {
        char* end = nullptr;
        const long a = std::strtol(s, &end, 10);
        if (end == s) break;
        long b = a;
        s = end;
        if (*s == '-') {
          b = std::strtol(s + 1, &end, 10);
          s = end;
        }
        for (long c = a; c <= b; ++c) out.push_back(int(c));
        if (*s == ',')
          ++s;
        else
          break;
      }
    }
    std::fclose(f);
  }
  if (out.empty()) out.push_back(cpu);
  return out;
}
#endif

bool env_is(const char* name, std::initializer_list<const char*> values) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  std::string s(v);
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* x : values) {
    if (s == x) return true;
  }
  return false;
}

// Parses OMP_PLACES' explicit form: places "{a,b:len[:stride],...}" separated by commas, each
// optionally followed by ":count[:stride]" (count copies, shifted by stride). False if it is
// not understood.
bool parse_place_list(const std::string& text, std::vector<CpuSet>* places) {
  const char* s = text.c_str();
  auto number = [&](long* v) {
    char* end = nullptr;
    *v = std::strtol(s, &end, 10);
    if (end == s) return false;
    s = end;
    return true;
  };
  while (*s) {
    if (*s != '{') return false;
    ++s;
    CpuSet place;
    for (;;) {
      long a = 0, len = 1, stride = 1;
      if (!number(&a)) return false;
      if (*s == ':') {
        ++s;
        if (!number(&len)) return false;
        if (*s == ':') {
          ++s;
          if (!number(&stride)) return false;
        }
      }
      if (len < 1 || len > 4096) return false;
      for (long i = 0; i < len; ++i) place.push_back(int(a + i * stride));
      if (*s == ',') {
        ++s;
        continue;
      }
      if (*s == '}') {
        ++s;
        break;
      }
      return false;
    }
    long count = 1, shift = 0;
    if (*s == ':') {
      ++s;
      if (!number(&count)) return false;
      shift = long(place.size());
      if (*s == ':') {
        ++s;
        if (!number(&shift)) return false;
      }
    }
    if (count < 1 || count > 4096) return false;
    for (long r = 0; r < count; ++r) {
      CpuSet p = place;
      for (int& c : p) c += int(r * shift);
      places->push_back(p);
    }
    if (*s == ',')
      ++s;
    else if (*s)
      return false;
  }
  return !places->empty();
}

long env_long(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (const char* v = std::getenv(n)) {
      char* end = nullptr;
      const long x = std::strtol(v, &end, 10);
      if (end != v) return x;
    }
  }
  return -1;
}

}  // namespace

Binding choose_binding() {
  Binding b;
#if defined(__linux__)
  const CpuSet mask = affinity_cpus();
  b.cpus = std::max<int>(1, int(mask.size()));
  if (env_is("CNNKIT_BIND", {"0", "false", "off", "no"}) || env_is("OMP_PROC_BIND", {"false"})) {
    b.text = "none (turned off by " +
             std::string(std::getenv("CNNKIT_BIND") ? "CNNKIT_BIND" : "OMP_PROC_BIND=false") + ")";
    return b;
  }
  b.bind_caller = env_is("OMP_PROC_BIND", {"true", "close", "spread", "primary", "master"});
  const char* places_env = std::getenv("OMP_PLACES");
  b.hard = b.bind_caller || places_env != nullptr;
  std::string how;
  if (places_env && !env_is("OMP_PLACES", {"threads", "cores"})) {
    std::vector<CpuSet> parsed;
    if (!parse_place_list(places_env, &parsed)) {
      b.text = std::string("none (OMP_PLACES='") + places_env + "' not understood)";
      return b;
    }
    for (auto& p : parsed) {  // keep the CPUs of the mask
      CpuSet q;
      for (int c : p) {
        if (std::find(mask.begin(), mask.end(), c) != mask.end()) q.push_back(c);
      }
      if (!q.empty()) b.places.push_back(q);
    }
    how = "OMP_PLACES";
  } else {
    const bool cores = places_env == nullptr || env_is("OMP_PLACES", {"cores"});
    // One place per core (all of its CPUs in the mask) or per CPU; cores first, their second
    // hardware threads after, so a team smaller than the core count gets distinct cores.
    std::vector<CpuSet> firsts, seconds;
    CpuSet seen;
    for (int c : mask) {
      if (std::find(seen.begin(), seen.end(), c) != seen.end()) continue;
      CpuSet core;
      for (int s : core_siblings(c)) {
        if (std::find(mask.begin(), mask.end(), s) != mask.end()) core.push_back(s);
      }
      if (core.empty()) core.push_back(c);
      seen.insert(seen.end(), core.begin(), core.end());
      if (cores) {
        firsts.push_back(core);
      } else {
        firsts.push_back({core[0]});
        for (std::size_t i = 1; i < core.size(); ++i) seconds.push_back({core[i]});
      }
    }
    b.places = firsts;
    b.places.insert(b.places.end(), seconds.begin(), seconds.end());
    how = cores ? "cores" : "threads";
  }
  if (b.places.empty()) {
    b.text = "none (no usable place in the affinity mask)";
    return b;
  }
  // Several ranks of one job on this node with the whole machine each: a slice per rank.
  const long local_size =
      env_long({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"});
  const long local_rank =
      env_long({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"});
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (local_size > 1 && local_rank >= 0 && local_rank < local_size && long(mask.size()) == online) {
    const std::size_t n = b.places.size(), per = n / std::size_t(local_size);
    if (per == 0) {
      b.places.clear();
      b.text = "none (more local MPI ranks than places)";
      return b;
    }
    std::vector<CpuSet> slice(b.places.begin() + std::ptrdiff_t(per * std::size_t(local_rank)),
                              b.places.begin() + std::ptrdiff_t(per * std::size_t(local_rank + 1)));
    b.places = slice;
    b.cpus = 0;
    for (auto& p : b.places) b.cpus += int(p.size());
    how += ", MPI local rank " + std::to_string(local_rank) + " of " + std::to_string(local_size);
  }
  for (std::size_t i = 0; i < b.places.size(); ++i) {
    b.all.insert(b.all.end(), b.places[i].begin(), b.places[i].end());
    for (int c : b.places[i]) {
      if (c < 0 || c >= CPU_SETSIZE) continue;
      if (std::size_t(c) >= b.place_of_cpu.size()) b.place_of_cpu.resize(std::size_t(c) + 1, -1);
      b.place_of_cpu[std::size_t(c)] = int(i);
    }
  }
  b.text = (b.hard ? "workers bound to " : "workers kept off the caller's place, ") +
           std::to_string(b.places.size()) + " places (" + how + ")" +
           (b.bind_caller ? ", caller bound (OMP_PROC_BIND)" : "");
#else
  b.text = "none (not Linux)";
#endif
  return b;
}

bool bind_to(const CpuSet& place) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : place) {
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
  }
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
#else
  (void)place;
  return false;
#endif
}

}  // namespace cnnkit
