// Small matrix products over a tile of pixels, the core of the fused CPU
// kernels (1x1 convolutions with whatever comes before or after them fused
// in):
//
//   out[o, p] = scale[o] g[o, p] + shift[o] + sum_k A[o, k] z[k, p]
//
// (optionally clamped at zero: a ReLU after it) for every output channel o
// and the pixels p of one tile, z being one or two sources stacked along k.
// Every operand is addressed as planes of channels and pixels with two
// strides, so one product reads NCHW tensors, channels-last tensors and the
// kernels' own tile buffers alike. It runs in one of two orientations:
// along pixels (vectors of pixels, for operands whose pixels are adjacent)
// or along channels (vectors of output channels, for channels-last
// operands); an output in the other layout goes through a scratch tile and
// is transposed as it is copied out.
#pragma once

#include <algorithm>
#include <vector>

#include "common.h"

namespace mmdet_scconv {

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

// Element (c, p) at data + c * channel_stride + p * pixel_stride, p counted
// from the tile's first pixel.
template <typename T>
struct Planes {
  T* data;
  int64_t channel_stride, pixel_stride;

  T* at(int64_t c, int64_t p) const {
    return data + c * channel_stride + p * pixel_stride;
  }
  // The same planes from pixel p on.
  Planes from(int64_t p) const {
    return {data + p * pixel_stride, channel_stride, pixel_stride};
  }
};
using In = Planes<const float>;
using Out = Planes<float>;

// NCHW planes of `channels` x `hw` (one sample), or channels-last ones.
template <typename T>
Planes<T> planes_of(T* data, int64_t channels, int64_t hw,
                    bool channels_last) {
  return channels_last ? Planes<T>{data, 1, channels}
                       : Planes<T>{data, hw, 1};
}

// Along pixels: kRows output channels by kPixelVecs vectors of pixels.
constexpr int kRows = 4;
constexpr int kPixelVecs = kLanes >= 16 ? 4 : 2;
constexpr int64_t kPixelTile = kPixelVecs * kLanes;
// Along channels: kPixels pixels by kChannelVecs vectors of channels.
constexpr int kPixels = 4;
constexpr int kChannelVecs = kLanes >= 16 ? 4 : 2;
constexpr int64_t kChannelTile = kChannelVecs * kLanes;

// One tile's product. `coef` is A as pack_coefficients lays it out for the
// orientation; `scale` null means no g term, `shift` null a zero shift;
// `relu` clamps the result at zero.
struct PointwiseTile {
  int64_t channels;  // C, the output channels
  int64_t k_total;   // the sources' channels together
  const float* coef;
  In sources[2];
  int64_t source_channels[2];
  int num_sources;
  const float* scale;
  In g;
  const float* shift;
  bool relu = false;
};

// A (C, K) row-major for the orientation: along pixels as it is; along
// channels in blocks of kChannelTile output channels, (ceil(C / tile), K,
// tile), so that a block's coefficients are read in order (a (K, C) layout
// puts C floats between one k and the next, a stride that maps into few
// cache sets).
inline std::vector<float> pack_coefficients(const float* rows, int64_t c,
                                            int64_t k_total,
                                            bool along_channels) {
  if (!along_channels) return std::vector<float>(rows, rows + c * k_total);
  const int64_t blocks = (c + kChannelTile - 1) / kChannelTile;
  std::vector<float> packed(blocks * k_total * kChannelTile, 0.f);
  for (int64_t o = 0; o < c; ++o) {
    for (int64_t k = 0; k < k_total; ++k) {
      packed[(o / kChannelTile) * k_total * kChannelTile + k * kChannelTile +
             o % kChannelTile] = rows[o * k_total + k];
    }
  }
  return packed;
}

template <int kR, bool kFull>
void rows_along_pixels(const PointwiseTile& f, int64_t c0, int64_t count,
                       const Out& dst) {
  int64_t lanes[kPixelVecs];
  for (int v = 0; v < kPixelVecs; ++v) {
    lanes[v] = std::clamp<int64_t>(count - v * kLanes, 0, kLanes);
  }
  Vec acc[kR][kPixelVecs];
  for (int r = 0; r < kR; ++r) {
    const Vec t(f.shift ? f.shift[c0 + r] : 0.f);
    for (int v = 0; v < kPixelVecs; ++v) {
      acc[r][v] = f.scale ? at::vec::fmadd(
                                Vec(f.scale[c0 + r]),
                                load<kFull>(f.g.at(c0 + r, v * kLanes),
                                            lanes[v]),
                                t)
                          : t;
    }
  }
  int64_t k_offset = 0;
  for (int s = 0; s < f.num_sources; ++s) {
    for (int64_t k = 0; k < f.source_channels[s]; ++k) {
      Vec z[kPixelVecs];
      for (int v = 0; v < kPixelVecs; ++v) {
        z[v] = load<kFull>(f.sources[s].at(k, v * kLanes), lanes[v]);
      }
      for (int r = 0; r < kR; ++r) {
        const Vec w(f.coef[(c0 + r) * f.k_total + k_offset + k]);
        for (int v = 0; v < kPixelVecs; ++v) {
          acc[r][v] = at::vec::fmadd(w, z[v], acc[r][v]);
        }
      }
    }
    k_offset += f.source_channels[s];
  }
  for (int r = 0; r < kR; ++r) {
    for (int v = 0; v < kPixelVecs; ++v) {
      if (f.relu) acc[r][v] = at::vec::maximum(acc[r][v], Vec(0.f));
      store<kFull>(acc[r][v], dst.at(c0 + r, v * kLanes), lanes[v]);
    }
  }
}

// Up to kPixelTile pixels, every output channel; dst's pixels adjacent.
inline void tile_along_pixels(const PointwiseTile& f, int64_t count,
                              const Out& dst) {
  const bool full = count == kPixelTile;
  int64_t c0 = 0;
  for (; c0 + kRows <= f.channels; c0 += kRows) {
    (full ? rows_along_pixels<kRows, true> : rows_along_pixels<kRows, false>)(
        f, c0, count, dst);
  }
  for (; c0 < f.channels; ++c0) {
    (full ? rows_along_pixels<1, true> : rows_along_pixels<1, false>)(
        f, c0, count, dst);
  }
}

// kP pixels from p0 and the channels [c0, c0 + kV vectors), the last one
// `last` lanes wide unless kFull.
template <int kP, int kV, bool kFull>
void block_along_channels(const PointwiseTile& f, int64_t p0, int64_t c0,
                          int64_t last, const Out& dst) {
  int64_t lanes[kV];
  for (int v = 0; v < kV; ++v) lanes[v] = v == kV - 1 ? last : kLanes;
  Vec acc[kP][kV];
  for (int v = 0; v < kV; ++v) {
    const int64_t c = c0 + v * kLanes;
    const Vec t = f.shift ? load<kFull>(f.shift + c, lanes[v]) : Vec(0.f);
    const Vec b = f.scale ? load<kFull>(f.scale + c, lanes[v]) : Vec(0.f);
    for (int p = 0; p < kP; ++p) {
      acc[p][v] =
          f.scale ? at::vec::fmadd(b, load<kFull>(f.g.at(c, p0 + p), lanes[v]),
                                   t)
                  : t;
    }
  }
  const float* block = f.coef + (c0 / kChannelTile) * f.k_total * kChannelTile +
                       c0 % kChannelTile;
  int64_t k_offset = 0;
  for (int s = 0; s < f.num_sources; ++s) {
    for (int64_t k = 0; k < f.source_channels[s]; ++k) {
      const float* w_row = block + (k_offset + k) * kChannelTile;
      Vec w[kV];
      for (int v = 0; v < kV; ++v) {
        w[v] = load<kFull>(w_row + v * kLanes, lanes[v]);
      }
      for (int p = 0; p < kP; ++p) {
        const Vec z(*f.sources[s].at(k, p0 + p));
        for (int v = 0; v < kV; ++v) {
          acc[p][v] = at::vec::fmadd(z, w[v], acc[p][v]);
        }
      }
    }
    k_offset += f.source_channels[s];
  }
  for (int p = 0; p < kP; ++p) {
    for (int v = 0; v < kV; ++v) {
      if (f.relu) acc[p][v] = at::vec::maximum(acc[p][v], Vec(0.f));
      store<kFull>(acc[p][v], dst.at(c0 + v * kLanes, p0 + p), lanes[v]);
    }
  }
}

template <int kP>
void pixels_along_channels(const PointwiseTile& f, int64_t p0,
                           const Out& dst) {
  int64_t c0 = 0;
  for (; c0 + kChannelTile <= f.channels; c0 += kChannelTile) {
    block_along_channels<kP, kChannelVecs, true>(f, p0, c0, kLanes, dst);
  }
  for (; c0 < f.channels; c0 += kLanes) {
    block_along_channels<kP, 1, false>(
        f, p0, c0, std::min(kLanes, f.channels - c0), dst);
  }
}

// `count` pixels, every output channel; dst's channels adjacent.
inline void tile_along_channels(const PointwiseTile& f, int64_t count,
                                const Out& dst) {
  int64_t p = 0;
  for (; p + kPixels <= count; p += kPixels) {
    pixels_along_channels<kPixels>(f, p, dst);
  }
  for (; p < count; ++p) pixels_along_channels<1>(f, p, dst);
}

// `channels` x `count` values from src to dst, in the order of dst.
inline void copy_tile(const In& src, const Out& dst, int64_t channels,
                      int64_t count) {
  if (dst.pixel_stride == 1) {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t p = 0; p < count; ++p) *dst.at(c, p) = *src.at(c, p);
    }
  } else {
    for (int64_t p = 0; p < count; ++p) {
      for (int64_t c = 0; c < channels; ++c) *dst.at(c, p) = *src.at(c, p);
    }
  }
}

// The product of `count` pixels (at most kPixelTile along pixels) into dst
// in either layout; `scratch` (channels x count floats) holds it first where
// dst is not in the orientation's layout.
inline void tile_product(const PointwiseTile& f, bool along_channels,
                         int64_t count, const Out& dst, float* scratch) {
  const bool direct = along_channels ? dst.channel_stride == 1
                                     : dst.pixel_stride == 1;
  const Out into = direct ? dst
                          : along_channels ? Out{scratch, 1, f.channels}
                                           : Out{scratch, count, 1};
  if (along_channels) {
    tile_along_channels(f, count, into);
  } else {
    tile_along_pixels(f, count, into);
  }
  if (!direct) {
    copy_tile(In{into.data, into.channel_stride, into.pixel_stride}, dst,
              f.channels, count);
  }
}

}  // namespace mmdet_scconv
