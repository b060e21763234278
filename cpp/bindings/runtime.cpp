// Bindings: CPU features, ISA selection, threads, peak probe.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cnnkit/conv.hpp"
#include "cnnkit/gemm.hpp"
#include "cnnkit/runtime.hpp"

namespace cnnkit::bind {

namespace py = pybind11;

void bind_runtime(py::module_& m) {
  m.def("_init_runtime", &init_runtime, "Read CNNKIT_ISA and pick the kernel table.");
  m.def("cpu_info", []() {
    const CpuFeatures& f = cpu_features();
    py::dict features;
    features["sse4_2"] = f.sse42;
    features["avx"] = f.avx;
    features["fma"] = f.fma;
    features["avx2"] = f.avx2;
    features["avx512f"] = f.avx512f;
    features["avx512dq"] = f.avx512dq;
    features["avx512bw"] = f.avx512bw;
    features["avx512vl"] = f.avx512vl;
    features["os_saves_avx_state"] = f.os_avx;
    features["os_saves_avx512_state"] = f.os_avx512;
    features["avx512_vnni"] = f.avx512_vnni;
    features["avx512_bf16"] = f.avx512_bf16;
    features["amx_tile"] = f.amx_tile;
    features["amx_bf16"] = f.amx_bf16;
    features["amx_int8"] = f.amx_int8;
    features["os_saves_amx_state"] = f.os_amx;
    features["os_grants_amx_tiles"] = f.amx_permitted;
    features["neon"] = f.neon;
    features["asimd_dot"] = f.asimd_dot;
    features["sve"] = f.sve;
    features["arm_bf16"] = f.arm_bf16;
    features["i8mm"] = f.i8mm;
    py::list supported;
    for (Isa isa : {Isa::ref, Isa::neon, Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::amx}) {
      if (isa_supported(isa)) supported.append(isa_name(isa));
    }
    py::dict d;
    d["arch"] = CNNKIT_ARCH_NAME;
    d["vendor"] = f.vendor;
    d["brand"] = f.brand;
    d["features"] = features;
    d["supported_isas"] = supported;
    d["best_isa"] = isa_name(best_isa());
    d["isa"] = isa_name(active_isa());
    d["num_threads"] = get_num_threads();
    d["thread_binding"] = thread_binding();
    const SgemmTile tile = sgemm_tile();
    d["sgemm_tile"] = py::make_tuple(tile.mr, tile.nr);
    py::dict caches;
    caches["l1d"] = f.l1d_bytes;
    caches["l2"] = f.l2_bytes;
    caches["l3"] = f.l3_bytes;
    caches["from_cpuid"] = f.caches_from_cpuid;
    d["caches"] = caches;
    const GemmBlocking blk = gemm_blocking(tile.mr);
    d["sgemm_blocking"] =
        py::dict(py::arg("kc") = blk.kc, py::arg("b_chunk_floats") = blk.b_chunk_floats);
    d["bf16_path"] = bf16_path();
    d["bf16_path_reason"] = bf16_path_reason();
    d["int8_path"] = i8_path();
    return d;
  });
  m.def("get_isa", []() { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name)); }, py::arg("name"));
  m.def("get_conv_algorithm", []() {
    switch (conv_algorithm()) {
      case ConvAlgorithm::direct:
        return std::string("direct");
      case ConvAlgorithm::winograd:
        return std::string("winograd");
      default:
        return std::string("auto");
    }
  });
  m.def(
      "set_conv_algorithm",
      [](const std::string& name) {
        if (name == "auto") {
          set_conv_algorithm(ConvAlgorithm::automatic);
        } else if (name == "direct") {
          set_conv_algorithm(ConvAlgorithm::direct);
        } else if (name == "winograd") {
          set_conv_algorithm(ConvAlgorithm::winograd);
        } else {
          throw py::value_error(
              "set_conv_algorithm: name must be 'auto', 'direct' or "
              "'winograd', got '" +
              name + "'");
        }
      },
      py::arg("name"));
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def(
      "_thread_team_probe",
      [](int nt, int rounds, int throw_thread) {
        py::gil_scoped_release release;
        return thread_team_probe(nt, rounds, throw_thread);
      },
      py::arg("nt"), py::arg("rounds") = 3, py::arg("throw_thread") = -1);
  m.def(
      "fma_peak_gflops",
      [](int threads, double seconds, int repeats) {
        py::gil_scoped_release release;
        return fma_peak_gflops(threads, seconds, repeats);
      },
      py::arg("threads"), py::arg("seconds") = 0.2, py::arg("repeats") = 3);
  m.def(
      "bf16_peak_gflops",
      [](int threads, double seconds, int repeats) {
        py::gil_scoped_release release;
        return bf16_peak_gflops(threads, seconds, repeats);
      },
      py::arg("threads"), py::arg("seconds") = 0.2, py::arg("repeats") = 3);
}

}  // namespace cnnkit::bind
