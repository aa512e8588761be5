// mmdet_scconv::cru_fuse on the CPU: the CRU's fuse (Eq. 8-10 of the SCConv
// paper) after its grouped convolution, in one pass that writes the output
// once. From G = GWC(X_up) and the pooled squeezed inputs Z_up, Z_low:
//
//   Y1 = G + PWC1(Z_up),  Y2 = cat(PWC2(Z_low), Z_low),
//   beta1 = sigmoid(GAP(Y1) - GAP(Y2)),  beta2 = 1 - beta1,
//   out = scale * (beta1 Y1 + beta2 Y2) + shift.
//
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
// The product runs in G's layout (along pixels for NCHW, along channels for
// channels-last); an NCHW output of a channels-last G (SCConv's grouped
// convolution runs channels-last on the CPU where its groups are narrow) is
// transposed through a small buffer as it is written.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace mmdet_scconv {
namespace {

constexpr int64_t kLanes = Vec::size();

// All lanes, or the first `lanes` (0 to kLanes) of a partial vector.
template <bool kFull>
inline Vec load(const float* values, int64_t lanes) {
  if (kFull) return Vec::loadu(values);
  return lanes > 0 ? Vec::loadu(values, lanes) : Vec(0.f);
}

template <bool kFull>
inline void store(const Vec& v, float* values, int64_t lanes) {
  if (kFull) {
    v.store(values);
  } else if (lanes > 0) {
    v.store(values, lanes);
  }
}

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

// The channels-last pass's register block: kPixels pixels by kChannelVecs
// vectors of channels.
constexpr int kPixels = 4;
constexpr int kChannelVecs = kLanes >= 16 ? 4 : 2;
constexpr int64_t kChannelTile = kChannelVecs * kLanes;

inline int64_t channel_blocks(int64_t c) {
  return (c + kChannelTile - 1) / kChannelTile;
}

// One sample's operands of the fused pass.
struct Sample {
  const float* g;      // (C, HW) or (HW, C)
  const float* z_up;   // (Cu, HW) or (HW, Cu)
  const float* z_low;  // (Cl, HW) or (HW, Cl)
  // A: NCHW as (C, Cu + Cl); channels-last in blocks of kChannelTile
  // channels, (ceil(C / kChannelTile), Cu + Cl, kChannelTile), so that a
  // block's coefficients are read in order (a (Cu + Cl, C) layout has C
  // apart from one k to the next, a stride that maps into few cache sets).
  const float* coef;
  const float* b1;     // (C,) scale * beta1
  const float* shift;  // (C,)
  int64_t c, cu, cl, hw;
};

// NCHW: output rows [c0, c0 + kRows) over the pixels [p0, p0 + count) of one
// tile of kPixelVecs vectors, into `out` (C, HW).
constexpr int kRows = 4;
constexpr int kPixelVecs = kLanes >= 16 ? 4 : 2;
constexpr int64_t kPixelTile = kPixelVecs * kLanes;

template <int kR, bool kFull>
void nchw_rows(const Sample& f, int64_t c0, int64_t p0, int64_t count,
               float* out) {
  const int64_t k_total = f.cu + f.cl;
  int64_t lanes[kPixelVecs];
  for (int v = 0; v < kPixelVecs; ++v) {
    lanes[v] = std::clamp<int64_t>(count - v * kLanes, 0, kLanes);
  }
  Vec acc[kR][kPixelVecs];
  for (int r = 0; r < kR; ++r) {
    const float* g_row = f.g + (c0 + r) * f.hw + p0;
    const Vec b(f.b1[c0 + r]), t(f.shift[c0 + r]);
    for (int v = 0; v < kPixelVecs; ++v) {
      acc[r][v] = at::vec::fmadd(b, load<kFull>(g_row + v * kLanes, lanes[v]),
                                 t);
    }
  }
  auto add_rows = [&](const float* z, int64_t channels, int64_t k_offset) {
    for (int64_t k = 0; k < channels; ++k) {
      const float* z_row = z + k * f.hw + p0;
      Vec zv[kPixelVecs];
      for (int v = 0; v < kPixelVecs; ++v) {
        zv[v] = load<kFull>(z_row + v * kLanes, lanes[v]);
      }
      for (int r = 0; r < kR; ++r) {
        const Vec w(f.coef[(c0 + r) * k_total + k_offset + k]);
        for (int v = 0; v < kPixelVecs; ++v) {
          acc[r][v] = at::vec::fmadd(w, zv[v], acc[r][v]);
        }
      }
    }
  };
  add_rows(f.z_up, f.cu, 0);
  add_rows(f.z_low, f.cl, f.cu);
  for (int r = 0; r < kR; ++r) {
    for (int v = 0; v < kPixelVecs; ++v) {
      store<kFull>(acc[r][v], out + (c0 + r) * f.hw + p0 + v * kLanes,
                   lanes[v]);
    }
  }
}

template <bool kFull>
void nchw_tile(const Sample& f, int64_t p0, int64_t count, float* out) {
  int64_t c0 = 0;
  for (; c0 + kRows <= f.c; c0 += kRows) {
    nchw_rows<kRows, kFull>(f, c0, p0, count, out);
  }
  for (; c0 < f.c; ++c0) nchw_rows<1, kFull>(f, c0, p0, count, out);
}

// Where channel c0's coefficient for k = 0 is in a channels-last A.
inline int64_t channel_block_offset(const Sample& f, int64_t c0) {
  return (c0 / kChannelTile) * (f.cu + f.cl) * kChannelTile +
         c0 % kChannelTile;
}

// Channels-last: kP pixels from p0 and the channels [c0, c0 + kV vectors)
// (the last one `last` lanes wide unless kFull), into dst (pixel p0's
// channel c0; the next pixels `dst_stride` apart).

template <int kP, int kV, bool kFull>
void channels_last_block(const Sample& f, int64_t p0, int64_t c0,
                         int64_t last, float* dst, int64_t dst_stride) {
  int64_t lanes[kV];
  for (int v = 0; v < kV; ++v) lanes[v] = v == kV - 1 ? last : kLanes;
  Vec acc[kP][kV];
  for (int v = 0; v < kV; ++v) {
    const int64_t c = c0 + v * kLanes;
    const Vec b = load<kFull>(f.b1 + c, lanes[v]);
    const Vec t = load<kFull>(f.shift + c, lanes[v]);
    for (int p = 0; p < kP; ++p) {
      acc[p][v] = at::vec::fmadd(
          b, load<kFull>(f.g + (p0 + p) * f.c + c, lanes[v]), t);
    }
  }
  auto add_rows = [&](const float* z, int64_t channels, int64_t k_offset) {
    for (int64_t k = 0; k < channels; ++k) {
      const float* w_row = f.coef + channel_block_offset(f, c0) +
                           (k_offset + k) * kChannelTile;
      Vec w[kV];
      for (int v = 0; v < kV; ++v) {
        w[v] = load<kFull>(w_row + v * kLanes, lanes[v]);
      }
      for (int p = 0; p < kP; ++p) {
        const Vec zb(z[(p0 + p) * channels + k]);
        for (int v = 0; v < kV; ++v) {
          acc[p][v] = at::vec::fmadd(zb, w[v], acc[p][v]);
        }
      }
    }
  };
  add_rows(f.z_up, f.cu, 0);
  add_rows(f.z_low, f.cl, f.cu);
  for (int p = 0; p < kP; ++p) {
    for (int v = 0; v < kV; ++v) {
      store<kFull>(acc[p][v], dst + p * dst_stride + v * kLanes, lanes[v]);
    }
  }
}

// kP pixels from p0, all channels, into dst (stride C per pixel).
template <int kP>
void channels_last_pixels(const Sample& f, int64_t p0, float* dst) {
  int64_t c0 = 0;
  for (; c0 + kChannelTile <= f.c; c0 += kChannelTile) {
    channels_last_block<kP, kChannelVecs, true>(f, p0, c0, kLanes, dst + c0,
                                                f.c);
  }
  for (; c0 < f.c; c0 += kLanes) {
    channels_last_block<kP, 1, false>(f, p0, c0,
                                      std::min(kLanes, f.c - c0), dst + c0,
                                      f.c);
  }
}

// The pixels [p0, p0 + count) into dst, pixel-major (stride C).
void channels_last_tile(const Sample& f, int64_t p0, int64_t count,
                        float* dst) {
  int64_t p = 0;
  for (; p + kPixels <= count; p += kPixels) {
    channels_last_pixels<kPixels>(f, p0 + p, dst + p * f.c);
  }
  for (; p < count; ++p) channels_last_pixels<1>(f, p0 + p, dst + p * f.c);
}

// Channels-last G into an NCHW `out` (C, HW): each tile of pixels goes
// through a pixel-major buffer, then row by row into the output.
constexpr int64_t kTransposeTile = 16;

void channels_last_tile_to_nchw(const Sample& f, int64_t p0, int64_t count,
                                float* buffer, float* out) {
  channels_last_tile(f, p0, count, buffer);
  for (int64_t c = 0; c < f.c; ++c) {
    float* row = out + c * f.hw + p0;
    for (int64_t p = 0; p < count; ++p) row[p] = buffer[p * f.c + c];
  }
}

bool is_channels_last(const torch::Tensor& t) {
  return !t.is_contiguous() &&
         t.is_contiguous(at::MemoryFormat::ChannelsLast);
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

// An optional per-channel operand as a contiguous fp32 tensor (undefined if
// not given).
torch::Tensor per_channel(const std::optional<torch::Tensor>& given,
                          const char* name, int64_t c) {
  if (!given.has_value()) return torch::Tensor();
  TORCH_CHECK(given->numel() == c, "cru_fuse: ", name, " must have ", c,
              " values, got ", given->numel());
  return given->to(torch::kFloat).contiguous();
}

// Per-sample coefficients: b1 = scale beta1 (N, C) and A (N, C, Cu + Cl),
// or in the channels-last pass's blocks (see Sample::coef).
struct Coefficients {
  std::vector<float> b1, coef, shift;
};

Coefficients coefficients(const std::vector<double>& g_mean,
                          const std::vector<double>& up_mean,
                          const std::vector<double>& low_mean,
                          const float* w_up, const float* w_low,
                          const float* scale, const float* shift, int64_t n,
                          int64_t c, int64_t cu, int64_t cl,
                          bool transposed) {
  const int64_t k_total = cu + cl, cp = c - cl;
  Coefficients result;
  result.b1.resize(n * c);
  const int64_t per_sample =
      transposed ? channel_blocks(c) * kChannelTile * k_total : c * k_total;
  result.coef.assign(n * per_sample, 0.f);
  result.shift.resize(c);
  for (int64_t o = 0; o < c; ++o) result.shift[o] = shift ? shift[o] : 0.f;
  for (int64_t s = 0; s < n; ++s) {
    const double* mu_up = up_mean.data() + s * cu;
    const double* mu_low = low_mean.data() + s * cl;
    float* coef = result.coef.data() + s * per_sample;
    auto at = [&](int64_t o, int64_t k) -> float& {
      if (!transposed) return coef[o * k_total + k];
      return coef[(o / kChannelTile) * k_total * kChannelTile +
                  k * kChannelTile + o % kChannelTile];
    };
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
      for (int64_t k = 0; k < cu; ++k) at(o, k) = up * w_up[o * cu + k];
      if (o < cp) {
        for (int64_t k = 0; k < cl; ++k) {
          at(o, cu + k) = low * w_low[o * cl + k];
        }
      } else {
        at(o, cu + o - cp) = low;
      }
    }
  }
  return result;
}

}  // namespace

void cru_fuse_out(const torch::Tensor& g, const torch::Tensor& z_up,
                  const torch::Tensor& z_low, const torch::Tensor& w_up,
                  const torch::Tensor& w_low,
                  const std::optional<torch::Tensor>& scale,
                  const std::optional<torch::Tensor>& shift,
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
  TORCH_CHECK(out.scalar_type() == torch::kFloat && out.sizes() == g.sizes() &&
                  (out.is_contiguous() ||
                   (channels_last &&
                    out.is_contiguous(at::MemoryFormat::ChannelsLast))),
              "cru_fuse: out must be fp32 of g's shape, NCHW or (for a "
              "channels-last g) channels-last");
  const torch::Tensor wu = w_up.reshape({c, cu}).to(torch::kFloat).contiguous();
  const torch::Tensor wl =
      w_low.reshape({c - cl, cl}).to(torch::kFloat).contiguous();
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
        std::vector<float> buffer;
        if (channels_last && !out_channels_last) buffer.resize(tile * c);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t s = item / tiles;
          const int64_t p0 = (item % tiles) * tile;
          const int64_t count = std::min(tile, hw - p0);
          const Sample f{g_data + s * c * hw,
                         up_data + s * cu * hw,
                         low_data + s * cl * hw,
                         coef.coef.data() + s * coef.coef.size() / n,
                         coef.b1.data() + s * c,
                         coef.shift.data(),
                         c,
                         cu,
                         cl,
                         hw};
          float* sample_out = out_data + s * c * hw;
          if (!channels_last) {
            (count == tile ? nchw_tile<true> : nchw_tile<false>)(
                f, p0, count, sample_out);
          } else if (out_channels_last) {
            channels_last_tile(f, p0, count, sample_out + p0 * c);
          } else {
            channels_last_tile_to_nchw(f, p0, count, buffer.data(),
                                       sample_out);
          }
        }
      });
}

}  // namespace mmdet_scconv
