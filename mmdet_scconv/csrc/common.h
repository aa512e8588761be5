// Shared by the CPU kernels: the vector type and the parallel grain.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>

namespace mmdet_scconv {

using Vec = at::vec::Vectorized<float>;

// Values a thread takes at least: below this a parallel region costs more
// than it saves, and small inputs run on the calling thread.
constexpr int64_t kGrainValues = 32768;

// parallel_for's grain for work items of `values_per_item` values each.
inline int64_t grain_for(int64_t values_per_item) {
  return std::max<int64_t>(
      1, kGrainValues / std::max<int64_t>(1, values_per_item));
}

// Whether `t` is channels-last and not also NCHW-contiguous (which a tensor
// with one pixel or one channel can be): the layout a kernel addresses it in.
inline bool is_channels_last(const torch::Tensor& t) {
  return !t.is_contiguous() &&
         t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// `t` as contiguous fp32 values: `t` itself where it already is (without a
// trip through the dispatcher: these run for every layer of every call).
inline torch::Tensor as_float(const torch::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(),
              "mmdet_scconv's CPU kernels take CPU tensors, got one on ",
              t.device());
  if (t.scalar_type() == torch::kFloat && t.is_contiguous()) return t;
  return t.to(torch::kFloat).contiguous();
}

}  // namespace mmdet_scconv
