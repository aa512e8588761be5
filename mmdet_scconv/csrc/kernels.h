// The entry points of the compiled CPU kernels (module.cpp binds them).
#pragma once

#include <torch/extension.h>

#include <optional>

namespace mmdet_scconv {

// sru_inference_cpu.cpp: the SRU output of `x` (N, C, H, W), fp32,
// contiguous NCHW or channels-last, written into `out` (x's shape and
// layout): channels [0, C/2) are the upper half (X11 + X22), [C/2, C) the
// lower half (X12 + X21). gamma, beta: (C,), the GroupNorm's own affine;
// W_gamma = gamma / sum(gamma), the sum at least gamma_sum_eps in magnitude.
void sru_inference_out(const torch::Tensor& x, const torch::Tensor& gamma,
                       const torch::Tensor& beta, int64_t num_groups,
                       double eps, double gamma_sum_eps, double threshold,
                       bool hard, torch::Tensor& out);

// The same with the lower half pooled 2x2, as a strided CRU uses it: `upper`
// (N, C/2, H, W) and `lower` (N, C/2, H/2, W/2), both in x's layout; H and W
// must be even.
void sru_inference_pooled_out(const torch::Tensor& x,
                              const torch::Tensor& gamma,
                              const torch::Tensor& beta, int64_t num_groups,
                              double eps, double gamma_sum_eps,
                              double threshold, bool hard,
                              torch::Tensor& upper, torch::Tensor& lower);

// The SRU output's halves squeezed (SCConv's CRU squeeze convolutions, 1x1,
// alpha = 1/2), never written whole: z_up = w_up upper, z_low = w_low lower,
// w_up (Cu, C/2) and w_low (Cl, C/2); z_up (N, Cu, H, W) and z_low (N, Cl,
// H, W) each NCHW or channels-last, whatever x's layout.
void sru_squeeze_out(const torch::Tensor& x, const torch::Tensor& gamma,
                     const torch::Tensor& beta, int64_t num_groups,
                     double eps, double gamma_sum_eps, double threshold,
                     bool hard,
                     const torch::Tensor& w_up, const torch::Tensor& w_low,
                     torch::Tensor& z_up, torch::Tensor& z_low);

// cru_fuse_cpu.cpp: the CRU output from g = GWC(X_up) (N, C, Ho, Wo) and the
// pooled squeezed inputs z_up (N, Cu, Ho, Wo), z_low (N, Cl, Ho, Wo), all
// fp32 in one layout, with w_up (C, Cu) and w_low (C - Cl, Cl) the pointwise
// weights, an optional folded BatchNorm (scale, shift: (C,)) and an optional
// ReLU after it, written into `out` (g's shape; NCHW, or channels-last when g
// is).
void cru_fuse_out(const torch::Tensor& g, const torch::Tensor& z_up,
                  const torch::Tensor& z_low, const torch::Tensor& w_up,
                  const torch::Tensor& w_low,
                  const std::optional<torch::Tensor>& scale,
                  const std::optional<torch::Tensor>& shift, bool relu,
                  torch::Tensor& out);

}  // namespace mmdet_scconv
