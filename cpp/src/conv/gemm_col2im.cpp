// Backward data by GEMM and col2im: per image n and group g,
//   dP [CgFF x HoWo] = W[g]^T @ dY[n,g],   dX[n,g] = col2im(dP),
// where col2im adds each patch row back into the image positions it was read from
// (scatter_add_patch_row, the adjoint of the forward's gather). dP is formed a chunk of output
// pixels at a time in a per-thread buffer, so memory stays bounded. Any shape; the list's
// choice for strided layers and for few input channels (M = C F F fills the micro-kernel where
// the transposed convolution's M = C would not).
#include "conv/conv2d_algorithms.hpp"
#include "conv/conv2d_shared.hpp"

namespace cnnkit {

bool gemm_col2im_backward_data_applies(const Conv2dParams&, const ConvPolicy&) { return true; }

void gemm_col2im_backward_data(const Conv2dParams& p, const float* diff_dst, const float* weights,
                               float* diff_src) {
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G, FF = p.Fh * p.Fw;
  const index_t rows = Cg * FF, HoWo = p.Ho * p.Wo, HW = p.H * p.W;
  const PatchGeom g = forward_geom(p);
  const index_t chunk = std::min<index_t>(HoWo, std::max<index_t>(64, (64 * 1024) / rows));
  const int nt = get_num_threads();
  const index_t items = p.N * G;
  const bool parallel_items = items >= nt && nt > 1;
  const int gemm_threads = parallel_items ? 1 : nt;
  const std::size_t gws = gemm_workspace_floats(rows, chunk, Kg, gemm_threads, p.precision);
  const std::size_t per = std::size_t(rows) * chunk + (parallel_items ? gws : 0);
  float* ws = thread_workspace(1, per * (parallel_items ? nt : 1));
  const GroupWeights packed(weights, G, rows, Kg, true, p.precision);  // W[g]^T, rows x Kg
  auto item = [&](index_t it, float* buf, float* gemm_ws) {
    const index_t n = it / G, grp = it % G;
    const float* dy = diff_dst + n * p.K * HoWo + grp * Kg * HoWo;
    float* dx = diff_src + n * p.C * HW + grp * Cg * HW;
    std::memset(dx, 0, sizeof(float) * Cg * HW);
    const GemmOperandA& wa = packed[grp];
    for (index_t j0 = 0; j0 < HoWo; j0 += chunk) {
      const index_t nc = std::min(chunk, HoWo - j0);
      GemmOutput out;
      out.c = buf;
      out.ldc = nc;
      gemm(rows, nc, Kg, wa, MatrixOperandB(dy + j0, HoWo, false), out, gemm_threads, gemm_ws,
           p.precision);
      for (index_t r = 0; r < rows; ++r) scatter_add_patch_row(g, dx, r, j0, nc, buf + r * nc);
    }
  };
  if (parallel_items) {
    parallel_for(nt, items, [&](index_t it) {
      float* mine = ws + per * current_thread();
      item(it, mine, mine + std::size_t(rows) * chunk);
    });
  } else {
    for (index_t it = 0; it < items; ++it) item(it, ws, nullptr);
  }
}

}  // namespace cnnkit
