// mmdet_scconv::sru_inference on the CPU: the SRU output (Eq. 1-4 of the
// SCConv paper) in two passes over the input, the GroupNorm statistics, then
// one pass that normalises, gates and cross-reconstructs each pair of
// channels (c, c + C/2) and writes both of them. The PyTorch twin of the same
// equations (mmdet_scconv/layers/ops/sru_inference.py) makes about a dozen
// passes over memory.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "pointwise_tile.h"

namespace mmdet_scconv {
namespace {

// Count, mean and sum of squared deviations of a run of values; runs are
// summed shifted by one of their values, which keeps the variance exact when
// the mean is large against the spread.
struct Moments {
  double count = 0;
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean

  // From `count` values' sums of (v - pivot) and of its square.
  static Moments of_shifted(int64_t count, double pivot, double sum,
                            double squares) {
    Moments m;
    m.count = static_cast<double>(count);
    const double shifted_mean = sum / m.count;
    m.mean = pivot + shifted_mean;
    m.m2 = std::max(0.0, squares - sum * shifted_mean);
    return m;
  }

  // Chan et al.'s pairwise combination: stable in any merge order.
  void merge(const Moments& other) {
    if (other.count == 0) return;
    double total = count + other.count;
    double delta = other.mean - mean;
    mean += delta * other.count / total;
    m2 += other.m2 + delta * delta * count * other.count / total;
    count = total;
  }
};

Moments contiguous_moments(const float* values, int64_t length) {
  constexpr int64_t kChunk = 2048;  // float partial sums stay exact enough
  const float pivot = values[0];
  const Vec pivot_vec(pivot);
  double shifted_sum = 0, shifted_squares = 0;
  for (int64_t start = 0; start < length; start += kChunk) {
    const int64_t end = std::min(length, start + kChunk);
    Vec sum_vec(0.f), squares_vec(0.f);
    int64_t i = start;
    for (; i + Vec::size() <= end; i += Vec::size()) {
      Vec d = Vec::loadu(values + i) - pivot_vec;
      sum_vec = sum_vec + d;
      squares_vec = at::vec::fmadd(d, d, squares_vec);
    }
    if (i < end) {
      Vec d = Vec::loadu(values + i, end - i) - pivot_vec;
      // loadu leaves the lanes past `count` zero, which would add pivots.
      d = Vec::set(Vec(0.f), d, end - i);
      sum_vec = sum_vec + d;
      squares_vec = at::vec::fmadd(d, d, squares_vec);
    }
    float sums[Vec::size()], squares[Vec::size()];
    sum_vec.store(sums);
    squares_vec.store(squares);
    for (int64_t lane = 0; lane < Vec::size(); ++lane) {
      shifted_sum += sums[lane];
      shifted_squares += squares[lane];
    }
  }
  return Moments::of_shifted(length, pivot, shifted_sum, shifted_squares);
}

// Per-channel scale and shift of the normalised input (the GroupNorm with
// its affine), per sample: (N, C) each.
void channel_affine(const std::vector<Moments>& groups, const float* weight,
                    const float* bias, int64_t n, int64_t c,
                    int64_t num_groups, double eps, float* scale,
                    float* shift) {
  const int64_t per_group = c / num_groups;
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t g = 0; g < num_groups; ++g) {
      const Moments& m = groups[s * num_groups + g];
      const float mean = static_cast<float>(m.mean);
      const float rstd =
          static_cast<float>(1.0 / std::sqrt(m.m2 / m.count + eps));
      for (int64_t k = g * per_group; k < (g + 1) * per_group; ++k) {
        const float a = rstd * weight[k];
        scale[s * c + k] = a;
        shift[s * c + k] = bias[k] - mean * a;
      }
    }
  }
}

inline Vec sigmoid(const Vec& z) {
  const Vec one(1.f);
  return one / (one + z.neg().exp());
}

// One pair of channels (a, b) = (c, c + C/2) over `count` values:
// upper = W1(a) x_a + W2(b) x_b, lower = W1(b) x_b + W2(a) x_a, with
// soft W1 = R > t ? 1 : R, W2 = R > t ? 0 : R; hard W1 = [R > t], W2 = 1 - W1.
template <bool kHard>
inline void gate_pair(const Vec& xa, const Vec& xb, const Vec& scale_a,
                      const Vec& shift_a, const Vec& scale_b,
                      const Vec& shift_b, const Vec& threshold, Vec* upper,
                      Vec* lower) {
  const Vec one(1.f), zero(0.f);
  const Vec ra = sigmoid(at::vec::fmadd(xa, scale_a, shift_a));
  const Vec rb = sigmoid(at::vec::fmadd(xb, scale_b, shift_b));
  const Vec ma = ra > threshold, mb = rb > threshold;
  Vec w1a, w2a, w1b, w2b;
  if (kHard) {
    w1a = Vec::blendv(zero, one, ma);
    w1b = Vec::blendv(zero, one, mb);
    w2a = one - w1a;
    w2b = one - w1b;
  } else {
    w1a = Vec::blendv(ra, one, ma);
    w2a = Vec::blendv(ra, zero, ma);
    w1b = Vec::blendv(rb, one, mb);
    w2b = Vec::blendv(rb, zero, mb);
  }
  *upper = w1a * xa + w2b * xb;
  *lower = w1b * xb + w2a * xa;
}

// The SRU output of one sample's pixels [p0, p0 + count) into `out` (its
// planes from pixel p0 on): x (C, HW) NCHW or (HW, C) channels-last; scale
// and shift the sample's GroupNorm as a per-channel affine of x.
template <bool kHard>
void sru_tile(const float* x, bool channels_last, int64_t c, int64_t hw,
              int64_t p0, int64_t count, const float* scale,
              const float* shift, const Vec& threshold, const Out& out) {
  const int64_t half = c / 2;
  if (!channels_last) {
    for (int64_t k = 0; k < half; ++k) {
      const float* xa = x + k * hw + p0;
      const float* xb = xa + half * hw;
      const Vec sa(scale[k]), ha(shift[k]);
      const Vec sb(scale[k + half]), hb(shift[k + half]);
      for (int64_t i = 0; i < count; i += kLanes) {
        const int64_t lanes = std::min(kLanes, count - i);
        Vec up, low;
        gate_pair<kHard>(Vec::loadu(xa + i, lanes), Vec::loadu(xb + i, lanes),
                         sa, ha, sb, hb, threshold, &up, &low);
        up.store(out.at(k, i), lanes);
        low.store(out.at(k + half, i), lanes);
      }
    }
    return;
  }
  for (int64_t p = 0; p < count; ++p) {
    const float* row = x + (p0 + p) * c;
    for (int64_t k = 0; k < half; k += kLanes) {
      const int64_t lanes = std::min(kLanes, half - k);
      Vec up, low;
      gate_pair<kHard>(
          Vec::loadu(row + k, lanes), Vec::loadu(row + half + k, lanes),
          Vec::loadu(scale + k, lanes), Vec::loadu(shift + k, lanes),
          Vec::loadu(scale + half + k, lanes),
          Vec::loadu(shift + half + k, lanes), threshold, &up, &low);
      up.store(out.at(k, p), lanes);
      low.store(out.at(k + half, p), lanes);
    }
  }
}

// Pixels per tile of the SRU output written straight into a tensor: long
// runs of a channel's plane (NCHW), or enough pixels to share out (channels-
// last).
constexpr int64_t kOutputTileNchw = 2048;
constexpr int64_t kOutputTileChannelsLast = 64;
// Pixels per tile of a channels-last input whose SRU output is squeezed
// (its buffer: this many pixels of every channel).
constexpr int64_t kChannelsLastTile = 16;

template <bool kHard>
void apply(const float* x, bool channels_last, const float* scale,
           const float* shift, float threshold, int64_t n, int64_t c,
           int64_t hw, float* out) {
  const Vec t(threshold);
  const int64_t tile =
      channels_last ? kOutputTileChannelsLast : kOutputTileNchw;
  const int64_t tiles = (hw + tile - 1) / tile;
  at::parallel_for(0, n * tiles, grain_for(tile * c), [&](int64_t begin,
                                                          int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / tiles, p0 = (item % tiles) * tile;
      sru_tile<kHard>(
          x + s * c * hw, channels_last, c, hw, p0, std::min(tile, hw - p0),
          scale + s * c, shift + s * c, t,
          planes_of(out + s * c * hw, c, hw, channels_last).from(p0));
    }
  });
}

// The pooled lower half: a 2x2 window's mean, summed in the order of
// mmdet_scconv.layers.fast.pool: ((top left + top right) + bottom left) +
// bottom right.
inline float window_mean(float top_left, float top_right, float bottom_left,
                         float bottom_right) {
  return (((top_left + top_right) + bottom_left) + bottom_right) * 0.25f;
}

// apply_nchw with the lower half pooled 2x2 (h and w even): `upper` is
// (N, C/2, H, W), `lower` (N, C/2, H/2, W/2), both NCHW.
template <bool kHard>
void apply_nchw_pooled(const float* x, const float* scale, const float* shift,
                       float threshold, int64_t n, int64_t c, int64_t h,
                       int64_t w, float* upper, float* lower) {
  const int64_t half = c / 2, hw = h * w, ho = h / 2, wo = w / 2;
  const Vec t(threshold);
  const int64_t grain = grain_for(4 * w);
  at::parallel_for(0, n * half * ho, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> lower_rows(2 * w);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t plane = item / ho, i = item % ho;  // plane: (s, k)
      const int64_t s = plane / half, k = plane % half;
      const int64_t ia = s * c + k, ib = ia + half;
      const Vec sa(scale[ia]), ha(shift[ia]), sb(scale[ib]), hb(shift[ib]);
      for (int64_t r = 0; r < 2; ++r) {
        const int64_t offset = (2 * i + r) * w;
        const float* xa = x + ia * hw + offset;
        const float* xb = x + ib * hw + offset;
        float* upper_row = upper + plane * hw + offset;
        for (int64_t j = 0; j < w; j += Vec::size()) {
          const int64_t count = std::min<int64_t>(Vec::size(), w - j);
          Vec up, low;
          gate_pair<kHard>(Vec::loadu(xa + j, count),
                           Vec::loadu(xb + j, count), sa, ha, sb, hb, t, &up,
                           &low);
          up.store(upper_row + j, count);
          low.store(lower_rows.data() + r * w + j, count);
        }
      }
      const float* top = lower_rows.data();
      const float* bottom = top + w;
      float* pooled = lower + item * wo;
      for (int64_t j = 0; j < wo; ++j) {
        pooled[j] = window_mean(top[2 * j], top[2 * j + 1], bottom[2 * j],
                                bottom[2 * j + 1]);
      }
    }
  });
}

// apply_channels_last with the lower half pooled 2x2 (h and w even):
// `upper` is (N, H, W, C/2) and `lower` (N, H/2, W/2, C/2) in memory.
template <bool kHard>
void apply_channels_last_pooled(const float* x, const float* scale,
                                const float* shift, float threshold,
                                int64_t n, int64_t c, int64_t h, int64_t w,
                                float* upper, float* lower) {
  const int64_t half = c / 2, ho = h / 2, wo = w / 2;
  const Vec t(threshold), quarter(0.25f);
  const int64_t grain = grain_for(4 * c);
  at::parallel_for(0, n * ho * wo, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / (ho * wo), i = (item / wo) % ho, j = item % wo;
      const int64_t top_left = (s * h + 2 * i) * w + 2 * j;
      const int64_t pixels[4] = {top_left, top_left + 1, top_left + w,
                                 top_left + w + 1};
      const float* scale_row = scale + s * c;
      const float* shift_row = shift + s * c;
      for (int64_t k = 0; k < half; k += Vec::size()) {
        const int64_t count = std::min<int64_t>(Vec::size(), half - k);
        const Vec sa = Vec::loadu(scale_row + k, count);
        const Vec ha = Vec::loadu(shift_row + k, count);
        const Vec sb = Vec::loadu(scale_row + half + k, count);
        const Vec hb = Vec::loadu(shift_row + half + k, count);
        Vec sum(0.f);
        for (int64_t q = 0; q < 4; ++q) {
          const float* row = x + pixels[q] * c;
          Vec up, low;
          gate_pair<kHard>(Vec::loadu(row + k, count),
                           Vec::loadu(row + half + k, count), sa, ha, sb, hb,
                           t, &up, &low);
          up.store(upper + pixels[q] * half + k, count);
          sum = q == 0 ? low : sum + low;
        }
        (sum * quarter).store(lower + item * half + k, count);
      }
    }
  });
}

// Moments of each (sample, group) of an NCHW tensor: a group is one run of
// channels * hw values.
std::vector<Moments> group_moments_nchw(const float* x, int64_t n, int64_t c,
                                        int64_t hw, int64_t num_groups) {
  const int64_t per_group = c / num_groups;
  std::vector<Moments> channels(n * c);
  at::parallel_for(0, n * c, grain_for(hw), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      channels[i] = contiguous_moments(x + i * hw, hw);
    }
  });
  std::vector<Moments> groups(n * num_groups);
  for (int64_t i = 0; i < n * c; ++i) {
    groups[i / per_group].merge(channels[i]);
  }
  return groups;
}

// The same for a channels-last tensor: per-channel sums over blocks of
// pixels, each block's per-channel moments merged into its sample's groups.
std::vector<Moments> group_moments_channels_last(const float* x, int64_t n,
                                                 int64_t c, int64_t hw,
                                                 int64_t num_groups) {
  constexpr int64_t kBlock = 256;
  const int64_t per_group = c / num_groups;
  const int64_t blocks_per_sample = (hw + kBlock - 1) / kBlock;
  std::vector<Moments> block_groups(n * blocks_per_sample * num_groups);
  const int64_t blocks = n * blocks_per_sample;
  const int64_t grain = grain_for(kBlock * c);
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> sums(c), squares(c);
    for (int64_t block = begin; block < end; ++block) {
      const int64_t s = block / blocks_per_sample;
      const int64_t first = (block % blocks_per_sample) * kBlock;
      const int64_t pixels = std::min(kBlock, hw - first);
      const float* rows = x + (s * hw + first) * c;
      std::fill(sums.begin(), sums.end(), 0.f);
      std::fill(squares.begin(), squares.end(), 0.f);
      for (int64_t k = 0; k < c; k += Vec::size()) {
        const int64_t count = std::min<int64_t>(Vec::size(), c - k);
        const Vec pivot = Vec::loadu(rows + k, count);
        Vec sum_vec(0.f), squares_vec(0.f);
        for (int64_t p = 0; p < pixels; ++p) {
          Vec d = Vec::loadu(rows + p * c + k, count) - pivot;
          sum_vec = sum_vec + d;
          squares_vec = at::vec::fmadd(d, d, squares_vec);
        }
        sum_vec.store(sums.data() + k, count);
        squares_vec.store(squares.data() + k, count);
      }
      for (int64_t k = 0; k < c; ++k) {
        block_groups[block * num_groups + k / per_group].merge(
            Moments::of_shifted(pixels, rows[k], sums[k], squares[k]));
      }
    }
  });
  std::vector<Moments> groups(n * num_groups);
  for (int64_t block = 0; block < n * blocks_per_sample; ++block) {
    const int64_t s = block / blocks_per_sample;
    for (int64_t g = 0; g < num_groups; ++g) {
      groups[s * num_groups + g].merge(block_groups[block * num_groups + g]);
    }
  }
  return groups;
}

// The GroupNorm of an SRU input, as a per-(sample, channel) scale and shift
// of x, after the checks every entry point makes.
struct Normalisation {
  bool channels_last;
  std::vector<float> scale, shift;  // (N, C)
};

// The GroupNorm affine that also applies W_gamma (Eq. 2-3): weight =
// gamma W_gamma, bias = beta W_gamma with W_gamma = gamma / sum(gamma), the
// sum pushed away from zero to at least gamma_sum_eps in magnitude, keeping
// its sign (gn_affine and normalised_gamma in Python).
void gamma_weighted_affine(const torch::Tensor& gamma,
                           const torch::Tensor& beta, double gamma_sum_eps,
                           int64_t c, std::vector<float>* weight,
                           std::vector<float>* bias) {
  TORCH_CHECK(gamma.numel() == c && beta.numel() == c,
              "sru_inference: gamma and beta must have ", c,
              " values, got ", gamma.numel(), " and ", beta.numel());
  const torch::Tensor g = as_float(gamma), b = as_float(beta);
  const float* g_data = g.data_ptr<float>();
  const float* b_data = b.data_ptr<float>();
  double total = 0;
  for (int64_t k = 0; k < c; ++k) total += g_data[k];
  total = total >= 0 ? std::max(total, gamma_sum_eps)
                     : std::min(total, -gamma_sum_eps);
  const float sum = static_cast<float>(total);
  weight->resize(c);
  bias->resize(c);
  for (int64_t k = 0; k < c; ++k) {
    const float w_gamma = g_data[k] / sum;
    (*weight)[k] = g_data[k] * w_gamma;
    (*bias)[k] = b_data[k] * w_gamma;
  }
}

Normalisation normalisation(const torch::Tensor& x, const torch::Tensor& gamma,
                            const torch::Tensor& beta, int64_t num_groups,
                            double eps, double gamma_sum_eps) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
                  x.dim() == 4,
              "sru_inference takes a 4-D fp32 CPU tensor, got ", x.sizes(),
              " ", x.scalar_type(), " on ", x.device());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(c % 2 == 0 && c % num_groups == 0, "sru_inference: channels ",
              c, " must be even and divisible by the groups ", num_groups);
  std::vector<float> weight, bias;
  gamma_weighted_affine(gamma, beta, gamma_sum_eps, c, &weight, &bias);
  Normalisation result;
  result.channels_last = is_channels_last(x);
  TORCH_CHECK(result.channels_last || x.is_contiguous(),
              "sru_inference takes a contiguous NCHW or channels-last tensor");
  if (n == 0 || hw == 0) return result;
  const float* data = x.data_ptr<float>();
  const std::vector<Moments> groups =
      result.channels_last
          ? group_moments_channels_last(data, n, c, hw, num_groups)
          : group_moments_nchw(data, n, c, hw, num_groups);
  result.scale.resize(n * c);
  result.shift.resize(n * c);
  channel_affine(groups, weight.data(), bias.data(), n, c, num_groups, eps,
                 result.scale.data(), result.shift.data());
  return result;
}

void check_output(const torch::Tensor& out, at::IntArrayRef sizes,
                  bool channels_last, const char* name) {
  TORCH_CHECK(out.scalar_type() == torch::kFloat && out.sizes() == sizes &&
                  out.is_contiguous(channels_last
                                        ? at::MemoryFormat::ChannelsLast
                                        : at::MemoryFormat::Contiguous),
              "sru_inference: ", name, " must be fp32 of shape ", sizes,
              " in x's layout");
}

// A squeeze output's checks: (N, channels, H, W) fp32, NCHW or
// channels-last.
void check_squeezed(const torch::Tensor& z, const torch::Tensor& x,
                    int64_t channels, const char* name) {
  TORCH_CHECK(z.device().is_cpu() && z.scalar_type() == torch::kFloat &&
                  z.dim() == 4 &&
                  z.size(0) == x.size(0) && z.size(1) == channels &&
                  z.size(2) == x.size(2) && z.size(3) == x.size(3) &&
                  (z.is_contiguous() ||
                   z.is_contiguous(at::MemoryFormat::ChannelsLast)),
              "sru_squeeze: ", name, " must be fp32 of shape (", x.size(0),
              ", ", channels, ", ", x.size(2), ", ", x.size(3),
              "), NCHW or channels-last, on the CPU, got ", z.sizes(), " ",
              z.scalar_type(), " on ", z.device());
}

// A squeeze weight's values as (out, C/2) fp32 rows.
torch::Tensor squeeze_rows(const torch::Tensor& weight, int64_t half,
                           const char* name) {
  TORCH_CHECK((weight.dim() == 2 || weight.dim() == 4) &&
                  weight.size(1) == half &&
                  weight.numel() == weight.size(0) * half,
              "sru_squeeze: ", name, " must have C/2 = ", half,
              " input channels (a 1x1 convolution's weight), got shape ",
              weight.sizes());
  return as_float(weight);
}

}  // namespace

void sru_inference_out(const torch::Tensor& x, const torch::Tensor& gamma,
                       const torch::Tensor& beta, int64_t num_groups,
                       double eps, double gamma_sum_eps, double threshold,
                       bool hard, torch::Tensor& out) {
  const Normalisation norm =
      normalisation(x, gamma, beta, num_groups, eps, gamma_sum_eps);
  check_output(out, x.sizes(), norm.channels_last, "out");
  if (x.numel() == 0) return;
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  (hard ? apply<true> : apply<false>)(
      x.data_ptr<float>(), norm.channels_last, norm.scale.data(),
      norm.shift.data(), static_cast<float>(threshold), n, c, hw,
      out.data_ptr<float>());
}

void sru_inference_pooled_out(const torch::Tensor& x,
                              const torch::Tensor& gamma,
                              const torch::Tensor& beta, int64_t num_groups,
                              double eps, double gamma_sum_eps,
                              double threshold, bool hard,
                              torch::Tensor& upper, torch::Tensor& lower) {
  const Normalisation norm =
      normalisation(x, gamma, beta, num_groups, eps, gamma_sum_eps);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(h % 2 == 0 && w % 2 == 0,
              "sru_inference: pooling the lower half needs an even height "
              "and width, got ", h, "x", w);
  check_output(upper, {n, c / 2, h, w}, norm.channels_last, "upper");
  check_output(lower, {n, c / 2, h / 2, w / 2}, norm.channels_last, "lower");
  if (x.numel() == 0) return;
  const float t = static_cast<float>(threshold);
  if (norm.channels_last) {
    (hard ? apply_channels_last_pooled<true>
          : apply_channels_last_pooled<false>)(
        x.data_ptr<float>(), norm.scale.data(), norm.shift.data(), t, n, c, h,
        w, upper.data_ptr<float>(), lower.data_ptr<float>());
  } else {
    (hard ? apply_nchw_pooled<true> : apply_nchw_pooled<false>)(
        x.data_ptr<float>(), norm.scale.data(), norm.shift.data(), t, n, c, h,
        w, upper.data_ptr<float>(), lower.data_ptr<float>());
  }
}


void sru_squeeze_out(const torch::Tensor& x, const torch::Tensor& gamma,
                     const torch::Tensor& beta, int64_t num_groups,
                     double eps, double gamma_sum_eps, double threshold,
                     bool hard,
                     const torch::Tensor& w_up, const torch::Tensor& w_low,
                     torch::Tensor& z_up, torch::Tensor& z_low) {
  const Normalisation norm =
      normalisation(x, gamma, beta, num_groups, eps, gamma_sum_eps);
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const int64_t half = c / 2;
  const torch::Tensor rows_up = squeeze_rows(w_up, half, "w_up");
  const torch::Tensor rows_low = squeeze_rows(w_low, half, "w_low");
  const int64_t cu = w_up.size(0), cl = w_low.size(0);
  check_squeezed(z_up, x, cu, "z_up");
  check_squeezed(z_low, x, cl, "z_low");
  if (x.numel() == 0 || z_up.numel() + z_low.numel() == 0) return;
  const bool along_channels = norm.channels_last;
  const std::vector<float> coef_up = pack_coefficients(
      rows_up.data_ptr<float>(), cu, half, along_channels);
  const std::vector<float> coef_low = pack_coefficients(
      rows_low.data_ptr<float>(), cl, half, along_channels);
  const bool up_channels_last = is_channels_last(z_up);
  const bool low_channels_last = is_channels_last(z_low);
  const float* x_data = x.data_ptr<float>();
  float* up_data = z_up.data_ptr<float>();
  float* low_data = z_low.data_ptr<float>();
  const Vec t(static_cast<float>(threshold));
  const int64_t tile = along_channels ? kChannelsLastTile : kPixelTile;
  const int64_t tiles = (hw + tile - 1) / tile;
  at::parallel_for(0, n * tiles, grain_for(tile * c), [&](int64_t begin,
                                                          int64_t end) {
    std::vector<float> sru(tile * c), scratch(tile * std::max(cu, cl));
    // The tile's SRU output, in the orientation's layout.
    const Out sru_out = along_channels ? Out{sru.data(), 1, c}
                                       : Out{sru.data(), tile, 1};
    const In upper{sru_out.data, sru_out.channel_stride,
                   sru_out.pixel_stride};
    const In lower = {upper.at(half, 0), upper.channel_stride,
                      upper.pixel_stride};
    const PointwiseTile squeeze_up{cu,      half,    coef_up.data(), {upper},
                                   {half},  1,       nullptr,        {},
                                   nullptr};
    const PointwiseTile squeeze_low{cl,     half,    coef_low.data(), {lower},
                                    {half}, 1,       nullptr,         {},
                                    nullptr};
    for (int64_t item = begin; item < end; ++item) {
      const int64_t s = item / tiles, p0 = (item % tiles) * tile;
      const int64_t count = std::min(tile, hw - p0);
      (hard ? sru_tile<true> : sru_tile<false>)(
          x_data + s * c * hw, norm.channels_last, c, hw, p0, count,
          norm.scale.data() + s * c, norm.shift.data() + s * c, t, sru_out);
      tile_product(
          squeeze_up, along_channels, count,
          planes_of(up_data + s * cu * hw, cu, hw, up_channels_last).from(p0),
          scratch.data());
      tile_product(squeeze_low, along_channels, count,
                   planes_of(low_data + s * cl * hw, cl, hw, low_channels_last)
                       .from(p0),
                   scratch.data());
    }
  });
}

}  // namespace mmdet_scconv
