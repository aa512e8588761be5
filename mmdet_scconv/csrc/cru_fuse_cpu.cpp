// mmdet_scconv::cru_fuse on the CPU: the CRU's fuse (Eq. 8-10 of the SCConv
// paper) after its grouped convolution, in one pass that writes the output
// once. From G = GWC(X_up) and the pooled squeezed inputs Z_up, Z_low:
//
//   Y1 = G + PWC1(Z_up),  Y2 = cat(PWC2(Z_low), Z_low),
//   beta1 = sigmoid(GAP(Y1) - GAP(Y2)),  beta2 = 1 - beta1,
//   out = scale * (beta1 Y1 + beta2 Y2) + shift  (then a ReLU, if asked),
//
// scale and shift being a following BatchNorm folded in (inference).
// GAP(Y1) = GAP(G) + W1 GAP(Z_up) and GAP(Y2) = cat(W2 GAP(Z_low),
// GAP(Z_low)), since a 1x1 convolution commutes with the spatial mean, so
// beta comes from one reading of G and the (small) Z's. Then every output
// value is b1[c] G[c] + sum_k A[c, k] Z[k] + shift[c] with per-sample
// coefficients (b1 = scale beta1; A = scale beta1 W1 for Z_up and scale
// beta2 [W2; I] for Z_low): one small matrix product per pixel block, Z's
// block held in cache, G read once more and the output written once, where
// the PyTorch twin (mmdet_scconv/layers/ops/cru_fuse.py) writes Y1, reads
// it four times and writes the output twice.
//
// The product (pointwise_tile.h) runs in G's layout, along pixels for NCHW
// and along channels for channels-last; an output in the other layout (an
// NCHW layer's grouped convolution runs channels-last on the CPU where its
// groups are narrow) is transposed through a small buffer as it is written.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pointwise_tile.h"

namespace mmdet_scconv {
namespace {

// Pixels per tile of a channels-last pass (its scratch: this many pixels of
// every output channel).
constexpr int64_t kTransposeTile = 16;

// Sum of a contiguous run, in float vectors over chunks added up in double.
double contiguous_sum(const float* values, int64_t length) {
  constexpr int64_t kChunk = 2048;
  double total = 0;
  for (int64_t start = 0; start < length; start += kChunk) {
    const int64_t end = std::min(length, start + kChunk);
    Vec acc(0.f);
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes) acc = acc + Vec::loadu(values + i);
    float lanes[kLanes];
    acc.store(lanes);
    for (int64_t lane = 0; lane < kLanes; ++lane) total += lanes[lane];
    for (; i < end; ++i) total += values[i];
  }
  return total;
}

// Per-(sample, channel) means of an (N, C, HW) tensor in either layout.
std::vector<double> channel_means(const float* x, int64_t n, int64_t c,
                                  int64_t hw, bool channels_last) {
  std::vector<double> means(n * c, 0.0);
  if (!channels_last) {
    at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        means[i] = contiguous_sum(x + i * hw, hw) / hw;
      }
    });
    return means;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks_per_sample = (hw + kBlock - 1) / kBlock;
  std::vector<float> partial(n * blocks_per_sample * c);
  at::parallel_for(
      0, n * blocks_per_sample, grain_for(kBlock * c),
      [&](int64_t begin, int64_t end) {
        for (int64_t block = begin; block < end; ++block) {
          const int64_t s = block / blocks_per_sample;
          const int64_t first = (block % blocks_per_sample) * kBlock;
          const int64_t pixels = std::min(kBlock, hw - first);
          const float* rows = x + (s * hw + first) * c;
          float* sums = partial.data() + block * c;
          for (int64_t k = 0; k < c; k += kLanes) {
            const int64_t lanes = std::min(kLanes, c - k);
            Vec acc(0.f);
            for (int64_t p = 0; p < pixels; ++p) {
              acc = acc + Vec::loadu(rows + p * c + k, lanes);
            }
            acc.store(sums + k, lanes);
          }
        }
      });
  for (int64_t block = 0; block < n * blocks_per_sample; ++block) {
    double* row = means.data() + (block / blocks_per_sample) * c;
    const float* sums = partial.data() + block * c;
    for (int64_t k = 0; k < c; ++k) row[k] += sums[k];
  }
  for (double& mean : means) mean /= hw;
  return means;
}

void check_operand(const torch::Tensor& t, const char* name, int64_t n,
                   int64_t channels, int64_t h, int64_t w,
                   bool channels_last) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat &&
                  t.dim() == 4 && t.size(0) == n && t.size(1) == channels &&
                  t.size(2) == h && t.size(3) == w,
              "cru_fuse: ", name, " must be an fp32 CPU tensor of shape (", n,
              ", ", channels, ", ", h, ", ", w, "), got ", t.sizes(), " ",
              t.scalar_type(), " on ", t.device());
  TORCH_CHECK(t.is_contiguous(channels_last ? at::MemoryFormat::ChannelsLast
                                            : at::MemoryFormat::Contiguous),
              "cru_fuse: ", name, " must be contiguous in g's layout (",
              channels_last ? "channels-last" : "NCHW", ")");
}

// A 1x1 convolution's weight's values as (out, in) fp32 rows.
torch::Tensor pointwise_rows(const torch::Tensor& weight, const char* name,
                             int64_t out, int64_t in) {
  TORCH_CHECK(weight.numel() == out * in && weight.size(0) == out,
              "cru_fuse: ", name, " must be a (", out, ", ", in,
              ") weight (or its 1x1 convolution form), got shape ",
              weight.sizes());
  return as_float(weight);
}

// An optional per-channel operand as a contiguous fp32 tensor (undefined if
// not given).
torch::Tensor per_channel(const std::optional<torch::Tensor>& given,
                          const char* name, int64_t c) {
  if (!given.has_value()) return torch::Tensor();
  TORCH_CHECK(given->numel() == c, "cru_fuse: ", name, " must have ", c,
              " values, got ", given->numel());
  return as_float(*given);
}

// Per-sample coefficients: b1 = scale beta1 (N, C) and A, (C, Cu + Cl) per
// sample, packed for the pass's orientation.
struct Coefficients {
  std::vector<float> b1, shift;
  std::vector<std::vector<float>> coef;
};

Coefficients coefficients(const std::vector<double>& g_mean,
                          const std::vector<double>& up_mean,
                          const std::vector<double>& low_mean,
                          const float* w_up, const float* w_low,
                          const float* scale, const float* shift, int64_t n,
                          int64_t c, int64_t cu, int64_t cl,
                          bool along_channels) {
  const int64_t k_total = cu + cl, cp = c - cl;
  Coefficients result;
  result.b1.resize(n * c);
  result.shift.resize(c);
  for (int64_t o = 0; o < c; ++o) result.shift[o] = shift ? shift[o] : 0.f;
  std::vector<float> rows(c * k_total);
  for (int64_t s = 0; s < n; ++s) {
    const double* mu_up = up_mean.data() + s * cu;
    const double* mu_low = low_mean.data() + s * cl;
    std::fill(rows.begin(), rows.end(), 0.f);
    for (int64_t o = 0; o < c; ++o) {
      double s1 = g_mean[s * c + o], s2 = 0;
      for (int64_t k = 0; k < cu; ++k) s1 += w_up[o * cu + k] * mu_up[k];
      if (o < cp) {
        for (int64_t k = 0; k < cl; ++k) s2 += w_low[o * cl + k] * mu_low[k];
      } else {
        s2 = mu_low[o - cp];
      }
      const double beta1 = 1.0 / (1.0 + std::exp(s2 - s1));
      const double a = scale ? scale[o] : 1.0;
      const float up = static_cast<float>(a * beta1);
      const float low = static_cast<float>(a * (1.0 - beta1));
      result.b1[s * c + o] = up;
      float* row = rows.data() + o * k_total;
      for (int64_t k = 0; k < cu; ++k) row[k] = up * w_up[o * cu + k];
      if (o < cp) {
        for (int64_t k = 0; k < cl; ++k) row[cu + k] = low * w_low[o * cl + k];
      } else {
        row[cu + o - cp] = low;
      }
    }
    result.coef.push_back(
        pack_coefficients(rows.data(), c, k_total, along_channels));
  }
  return result;
}

}  // namespace

void cru_fuse_out(const torch::Tensor& g, const torch::Tensor& z_up,
                  const torch::Tensor& z_low, const torch::Tensor& w_up,
                  const torch::Tensor& w_low,
                  const std::optional<torch::Tensor>& scale,
                  const std::optional<torch::Tensor>& shift, bool relu,
                  torch::Tensor& out) {
  TORCH_CHECK(g.dim() == 4, "cru_fuse: g must be 4-D, got ", g.sizes());
  const int64_t n = g.size(0), c = g.size(1), h = g.size(2), w = g.size(3);
  const int64_t hw = h * w, cu = z_up.size(1), cl = z_low.size(1);
  const bool channels_last = is_channels_last(g);
  check_operand(g, "g", n, c, h, w, channels_last);
  check_operand(z_up, "z_up", n, cu, h, w, channels_last);
  check_operand(z_low, "z_low", n, cl, h, w, channels_last);
  TORCH_CHECK(cl <= c, "cru_fuse: z_low has more channels (", cl,
              ") than the output (", c, ")");
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat &&
                  out.sizes() == g.sizes() &&
                  (out.is_contiguous() ||
                   out.is_contiguous(at::MemoryFormat::ChannelsLast)),
              "cru_fuse: out must be an fp32 CPU tensor of g's shape, NCHW "
              "or channels-last");
  const torch::Tensor wu = pointwise_rows(w_up, "w_up", c, cu);
  const torch::Tensor wl = pointwise_rows(w_low, "w_low", c - cl, cl);
  const torch::Tensor a = per_channel(scale, "scale", c);
  const torch::Tensor t = per_channel(shift, "shift", c);
  if (out.numel() == 0) return;
  const bool out_channels_last = is_channels_last(out);
  const float* g_data = g.data_ptr<float>();
  const float* up_data = z_up.data_ptr<float>();
  const float* low_data = z_low.data_ptr<float>();
  const Coefficients coef = coefficients(
      channel_means(g_data, n, c, hw, channels_last),
      channel_means(up_data, n, cu, hw, channels_last),
      channel_means(low_data, n, cl, hw, channels_last),
      wu.data_ptr<float>(), wl.data_ptr<float>(),
      a.defined() ? a.data_ptr<float>() : nullptr,
      t.defined() ? t.data_ptr<float>() : nullptr, n, c, cu, cl,
      channels_last);
  float* out_data = out.data_ptr<float>();
  const int64_t tile = channels_last ? kTransposeTile : kPixelTile;
  const int64_t tiles = (hw + tile - 1) / tile;
  at::parallel_for(
      0, n * tiles, grain_for(tile * (c + cu + cl)),
      [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(tile * c);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t s = item / tiles;
          const int64_t p0 = (item % tiles) * tile;
          const In z_up_planes =
              planes_of(up_data + s * cu * hw, cu, hw, channels_last)
                  .from(p0);
          const In z_low_planes =
              planes_of(low_data + s * cl * hw, cl, hw, channels_last)
                  .from(p0);
          const PointwiseTile f{
              c,
              cu + cl,
              coef.coef[s].data(),
              {z_up_planes, z_low_planes},
              {cu, cl},
              2,
              coef.b1.data() + s * c,
              planes_of(g_data + s * c * hw, c, hw, channels_last).from(p0),
              coef.shift.data(),
              relu};
          tile_product(
              f, channels_last, std::min(tile, hw - p0),
              planes_of(out_data + s * c * hw, c, hw, out_channels_last)
                  .from(p0),
              scratch.data());
        }
      });
}

}  // namespace mmdet_scconv
