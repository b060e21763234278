// Shared helpers for the C++ core: index type and argument errors.
#pragma once

// Baseline code only. The ISA files (cpp/src/kernels/<isa>/, compiled with their ISA's flags
// and CNNKIT_ISA_FILE) may not see the inline functions and templates below or in the headers
// built on this one (runtime, parallel, reduce, gemm, ...): the linker keeps one copy of each
// inline function, possibly the one compiled with AVX-512 flags, and baseline code would then
// run it on a CPU without AVX-512. ISA files include only their family's kernel header.
#ifdef CNNKIT_ISA_FILE
#error "cnnkit/common.hpp is baseline code; an ISA file includes only its family's kernels header"
#endif

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

namespace cnnkit {

// All sizes and offsets are 64-bit: a conv output can exceed 2^31 elements.
using index_t = std::int64_t;

// What the GEMM-shaped ops (conv, linear, matmul) compute with: fp32, or (autocast) both
// operands rounded to bf16, nearest even, with fp32 accumulation and fp32 results.
enum class Precision { fp32 = 0, bf16 = 1 };

// "[8, 4, 32, 32]" for error messages.
inline std::string shape_str(std::initializer_list<index_t> dims) {
  std::ostringstream os;
  os << '[';
  bool first = true;
  for (index_t d : dims) {
    if (!first) os << ", ";
    os << d;
    first = false;
  }
  os << ']';
  return os.str();
}

// Builds a message from any streamable pieces and throws std::invalid_argument
// (which pybind11 turns into ValueError). Inside a parallel region (parallel.hpp) prefer
// checking before it: the first exception of a task reaches the caller after every thread is done.
template <typename... Parts>
[[noreturn]] void throw_invalid(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

// a + b and a * b for size arithmetic on user-given values (padding 2^62, dilation 2^40, ...):
// ValueError naming the op and `what` instead of signed overflow (undefined behaviour).
inline index_t checked_add(index_t a, index_t b, const char* op, const char* what) {
  index_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw_invalid(op, ": ", what, " is too large (overflows 64 bits)");
  return r;
}
inline index_t checked_mul(index_t a, index_t b, const char* op, const char* what) {
  index_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw_invalid(op, ": ", what, " is too large (overflows 64 bits)");
  return r;
}

}  // namespace cnnkit
