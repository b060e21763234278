// The kernel tables (one per ISA) and the switch between them.
//
// Every family fills its own sub-table for a given ISA: the reference kernels first, then the
// overrides of each level up to that ISA (x86-64: ref -> avx2 -> avx512 -> avx512_bf16 -> amx;
// aarch64: ref -> neon). So an op without an AVX-512 kernel still gets its AVX2 (or reference)
// kernel on an AVX-512 machine, and forcing CNNKIT_ISA=ref exercises the portable code. The fill
// functions are baseline code: building every table on any CPU only takes addresses, it never
// runs an ISA instruction.
#include <atomic>
#include <cstdlib>
#include <string>

#include "cnnkit/runtime.hpp"
#include "runtime/kernel_table.hpp"

namespace cnnkit {
namespace {

KernelTable make_table(Isa isa) {
  KernelTable t;
  register_gemm_kernels(t.gemm, isa);
  register_conv_kernels(t.conv, isa);
  register_pool_kernels(t.pool, isa);
  register_activation_kernels(t.activation, isa);
  register_norm_kernels(t.norm, isa);
  register_dropout_kernels(t.dropout, isa);
  register_loss_kernels(t.loss, isa);
  register_peak_kernels(t.peak, isa);
  return t;
}

struct Tables {
  KernelTable ref = make_table(Isa::ref);
  KernelTable avx2 = make_table(Isa::avx2);
  KernelTable avx512 = make_table(Isa::avx512);
  KernelTable avx512_bf16 = make_table(Isa::avx512_bf16);
  KernelTable amx = make_table(Isa::amx);
  KernelTable neon = make_table(Isa::neon);
  const KernelTable& of(Isa isa) const {
    switch (isa) {
      case Isa::neon:
        return neon;
      case Isa::amx:
        return amx;
      case Isa::avx512_bf16:
        return avx512_bf16;
      case Isa::avx512:
        return avx512;
      case Isa::avx2:
        return avx2;
      default:
        return ref;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

std::atomic<int> g_isa{-1};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref:
      return "ref";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::amx:
      return "amx";
    case Isa::neon:
      return "neon";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "ref") return Isa::ref;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  if (name == "avx512_bf16") return Isa::avx512_bf16;
  if (name == "amx") return Isa::amx;
  if (name == "neon") return Isa::neon;
  throw_invalid("set_isa: unknown ISA '", name,
                "'; expected one of 'ref', 'avx2', 'avx512', 'avx512_bf16', 'amx', 'neon'");
}

void set_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw_invalid("set_isa: this CPU cannot run '", isa_name(isa), "' (best available: '",
                  isa_name(best_isa()), "')");
  }
  g_isa.store(static_cast<int>(isa));
}

Isa active_isa() {
  int v = g_isa.load();
  if (v < 0) {
    init_runtime();
    v = g_isa.load();
  }
  return static_cast<Isa>(v);
}

const KernelTable& kernels() { return tables().of(active_isa()); }

const char* bf16_path() { return kernels().gemm.bf16_path; }

std::string bf16_path_reason() {
  const CpuFeatures& f = cpu_features();
  const Isa active = active_isa();
#if !CNNKIT_X86
  (void)f;
  (void)active;
  return "amx, avx512_bf16: x86-64 only (this build is for " CNNKIT_ARCH_NAME
         "); cnnkit has no bf16 kernels for it yet";
#else
  if (active >= Isa::amx) return "";
  std::string why;
  if (!f.amx_bf16) {
    why = "amx: the CPU has no AMX-BF16 (or the OS does not save tile state)";
  } else if (!f.amx_permitted) {
    why = "amx: " + f.amx_refusal;
  } else {
    why = std::string("amx: forced off by CNNKIT_ISA / set_isa('") + isa_name(active) + "')";
  }
  if (active >= Isa::avx512_bf16) return why;
  if (!isa_supported(Isa::avx512_bf16)) {
    why += "; avx512_bf16: the CPU has no AVX512-BF16";
  } else {
    why += std::string("; avx512_bf16: forced off by CNNKIT_ISA / set_isa('") + isa_name(active) +
           "')";
  }
  return why;
#endif
}

void init_runtime() {
  const char* env = std::getenv("CNNKIT_ISA");
  if (env != nullptr && *env != '\0') {
    Isa isa;
    try {
      isa = parse_isa(env);
    } catch (const std::invalid_argument&) {
      throw_invalid("CNNKIT_ISA='", env,
                    "' is not a known ISA; expected 'ref', 'avx2', 'avx512', 'avx512_bf16', "
                    "'amx' or 'neon'");
    }
    if (!isa_supported(isa)) {
      throw_invalid("CNNKIT_ISA='", env, "' but this CPU cannot run it (best available: '",
                    isa_name(best_isa()), "')");
    }
    g_isa.store(static_cast<int>(isa));
  } else {
    g_isa.store(static_cast<int>(best_isa()));
  }
}

}  // namespace cnnkit
