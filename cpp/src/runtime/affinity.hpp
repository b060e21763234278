// Where cnnkit's worker threads may run (runtime/affinity.cpp): the places (cores or CPUs of
// the process's affinity mask, OMP_PLACES, an MPI rank's slice) and how strictly workers keep
// to them. The thread pool (thread_pool.cpp) applies it.
#pragma once

#include <string>
#include <vector>

namespace cnnkit {

using CpuSet = std::vector<int>;

struct Binding {
  std::vector<CpuSet> places;  // a bound caller: places[0]; worker t: t places after the caller's
  std::vector<int> place_of_cpu;  // CPU number -> index in places, or -1
  CpuSet all;                     // every CPU of the places
  bool bind_caller = false;
  // hard: each worker stays on its place (OMP_PROC_BIND / OMP_PLACES given). Otherwise a
  // worker may run anywhere in the mask and only steps off the caller's place when it finds
  // itself there (a pinned worker shares its CPU with whatever else lands there).
  bool hard = false;
  std::string text;  // for cpu_info()
  int cpus = 1;      // CPUs this process may use
};

// Reads the affinity mask, OMP_PROC_BIND / OMP_PLACES / CNNKIT_BIND and the local MPI rank
// variables (Linux; elsewhere: no binding).
Binding choose_binding();

// Restricts the calling thread to the CPUs of `place`; false if the OS refused.
bool bind_to(const CpuSet& place);

}  // namespace cnnkit
