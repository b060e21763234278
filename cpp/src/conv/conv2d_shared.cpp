// Building blocks the convolution algorithms share (see conv2d_shared.hpp).
#include "conv/conv2d_shared.hpp"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "util/reduce.hpp"

namespace cnnkit {

PatchGeom forward_geom(const Conv2dParams& p) {
  return PatchGeom{p.C / p.groups, p.H,     p.W,     p.Fh,    p.Fw, p.stride_h, p.stride_w,
                   p.pad_h,        p.pad_w, p.dil_h, p.dil_w, p.Ho, p.Wo};
}

bool backward_data_as_forward(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.C / p.groups >= kMinRowsForTransposedConv;
}

Conv2dParams as_forward_of_diff_dst(const Conv2dParams& p) {
  Conv2dParams t = p;
  t.packed_weights = nullptr;  // packed for the forward's weights, not the rotated ones
  t.weight_cache = nullptr;
  t.C = p.K;
  t.H = p.Ho;
  t.W = p.Wo;
  t.K = p.C;
  t.pad_h = p.dil_h * (p.Fh - 1) - p.pad_h;
  t.pad_w = p.dil_w * (p.Fw - 1) - p.pad_w;
  t.Ho = p.H;
  t.Wo = p.W;
  return t;
}

std::vector<float> rotated_weights(const Conv2dParams& p, const float* weights) {
  const index_t G = p.groups, Cg = p.C / G, Kg = p.K / G, FF = p.Fh * p.Fw;
  std::vector<float> wt(std::size_t(G) * Cg * Kg * FF);
  for (index_t grp = 0; grp < G; ++grp) {
    for (index_t k = 0; k < Kg; ++k) {
      for (index_t c = 0; c < Cg; ++c) {
        const float* w = weights + ((grp * Kg + k) * Cg + c) * FF;
        float* d = wt.data() + ((grp * Cg + c) * Kg + k) * FF;
        for (index_t f = 0; f < FF; ++f) d[f] = w[FF - 1 - f];
      }
    }
  }
  return wt;
}

void bias_grad(const Conv2dParams& p, const float* diff_dst, float* diff_bias) {
  const index_t HoWo = p.Ho * p.Wo;
  const int nt = get_num_threads();
  parallel_for(nt, p.K, [&](index_t k) {
    double s = 0;
    for (index_t n = 0; n < p.N; ++n) s += sum_floats(diff_dst + (n * p.K + k) * HoWo, HoWo);
    diff_bias[k] = float(s);
  });
}

GroupWeights::GroupWeights(const float* w, index_t G, index_t M, index_t K, bool trans,
                           Precision precision) {
  src_.reserve(std::size_t(G));
  packed_.reserve(std::size_t(G));  // no reallocation: packed_ refers into src_
  const std::size_t per_group = PrepackedA::floats(M, K, precision);
  float* storage = thread_workspace(2, per_group * G);
  for (index_t grp = 0; grp < G; ++grp) {
    src_.emplace_back(w + grp * M * K, trans ? M : K, trans);
    packed_.emplace_back(M, K, src_.back(), storage + per_group * grp, precision);
  }
}

GroupedImageGemm forward_gemms(const Conv2dParams& p, const float* src, const float* weights,
                               const float* bias, float* dst, bool relu) {
  GroupedImageGemm r;
  r.g = forward_geom(p);
  r.N = p.N;
  r.G = p.groups;
  r.M = p.K / p.groups;
  r.x = src;
  r.x_img = p.C * p.H * p.W;
  r.x_grp = r.g.C * p.H * p.W;
  r.a = weights;
  r.bias = bias;
  r.y = dst;
  r.y_img = p.K * p.Ho * p.Wo;
  r.y_grp = r.M * p.Ho * p.Wo;
  r.relu = relu;
  r.precision = p.precision;
  return r;
}

struct ConvWeightCache::Impl {
  mutable std::mutex mu;
  std::map<std::string, std::pair<std::unique_ptr<float, void (*)(void*)>, std::size_t>> entries;
  std::size_t bytes = 0;
};

ConvWeightCache::ConvWeightCache() : impl_(new Impl()) {}
ConvWeightCache::~ConvWeightCache() { delete impl_; }

const float* ConvWeightCache::get_or_fill(const std::string& key, std::size_t floats,
                                          FillRef fill) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->entries.find(key);
  if (it != impl_->entries.end()) return it->second.first.get();
  const std::size_t bytes = (std::max<std::size_t>(floats, 1) * sizeof(float) + 63) / 64 * 64;
  float* buf = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (buf == nullptr) throw std::bad_alloc();
  std::unique_ptr<float, void (*)(void*)> owned(buf, std::free);
  fill.call(fill.ctx, buf);
  impl_->bytes += bytes;
  impl_->entries.emplace(key, std::make_pair(std::move(owned), bytes));
  return buf;
}

std::size_t ConvWeightCache::bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bytes;
}

std::size_t ConvWeightCache::entries() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entries.size();
}

}  // namespace cnnkit
