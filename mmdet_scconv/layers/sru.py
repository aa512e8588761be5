"""Spatial Reconstruction Unit (SRU), Eq. 1-4 of the SCConv paper."""
import torch
import torch.nn as nn

from ._checks import check_divides, check_positive_int, divisors
from ._numerics import at_least_fp32

GATE_MODES = ('soft', 'hard')

# |sum(gamma)| is kept at least this large so that W_gamma = gamma / sum(gamma)
# stays finite when the GroupNorm scales cancel out or are all zero.
GAMMA_SUM_EPS = 1e-6


def normalised_gamma(gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``W_gamma = gamma / sum(gamma)``, guarded against a zero sum.

    The sum keeps its sign and is pushed away from zero to at least
    ``GAMMA_SUM_EPS`` in magnitude (a zero sum counts as positive). The result
    is computed in at least fp32 whatever the parameter dtype.

    Args:
        gamma (Tensor): GroupNorm scale, shape ``(C,)``.

    Returns:
        Tensor: ``W_gamma`` in at least fp32, shape ``(C,)``.
    """
    gamma = gamma.to(at_least_fp32(gamma.dtype))
    return gamma / safe_sum(gamma)


def safe_sum(gamma: torch.Tensor) -> torch.Tensor:
    """``sum(gamma)`` pushed away from zero to at least ``GAMMA_SUM_EPS`` in
    magnitude, keeping its sign (a zero sum counts as positive); where it is
    pushed, it passes no gradient."""
    total = gamma.sum()
    return torch.where(total >= 0, total.clamp(min=GAMMA_SUM_EPS),
                       total.clamp(max=-GAMMA_SUM_EPS))


def check_sru_args(channels, gn_groups, gate_threshold, gate) -> None:
    """Validate the SRU arguments; raise ``ValueError`` naming the fix."""
    check_positive_int('channels', channels)
    if channels % 2:
        raise ValueError(
            f'SRU splits its channels into two halves, so channels must be '
            f'even; got channels={channels}.')
    check_positive_int('gn_groups', gn_groups)
    check_divides('gn_groups', gn_groups, 'channels', channels,
                  f'use one of {divisors(channels)}')
    if not isinstance(gate_threshold, (int, float)) or isinstance(
            gate_threshold, bool) or not 0 < gate_threshold < 1:
        raise ValueError(
            f'gate_threshold must be a number in (0, 1) (the paper uses '
            f'0.5), got {gate_threshold!r}.')
    if gate not in GATE_MODES:
        raise ValueError(
            f"gate must be one of {GATE_MODES}, got {gate!r}. 'soft' keeps "
            f"the reweights below the threshold (gradients reach the "
            f"GroupNorm); 'hard' uses the literal 0/1 masks.")


class SRU(nn.Module):
    """Spatial Reconstruction Unit (SCConv, CVPR 2023, Sec. 3.1).

    ``GN(X)`` (Eq. 1) measures how informative each channel is through its
    GroupNorm scale ``gamma``; ``W_gamma = gamma / sum(gamma)`` (Eq. 2);
    ``R = sigmoid(GN(X) * W_gamma)`` (Eq. 3). A threshold splits ``R`` into
    informative weights ``W1`` and non-informative weights ``W2``:

    * ``gate='soft'`` (default): ``W1 = where(R > t, 1, R)``,
      ``W2 = where(R > t, 0, R)``. Gradients reach ``gamma`` and ``beta``.
    * ``gate='hard'`` (the literal reading): ``W1 = [R > t]``,
      ``W2 = 1 - W1``. No gradient reaches the GroupNorm.

    ``X1 = W1 * X`` and ``X2 = W2 * X`` are split into channel halves and
    cross-reconstructed (Eq. 4): ``cat(X11 + X22, X12 + X21)``.

    Args:
        channels (int): Input and output channels; must be even.
        gn_groups (int): GroupNorm groups; must divide ``channels``.
            Default: 16.
        gate_threshold (float): The threshold ``t`` in (0, 1). Default: 0.5.
        gate (str): ``'soft'`` or ``'hard'``. Default: ``'soft'``.
    """

    def __init__(self,
                 channels: int,
                 gn_groups: int = 16,
                 gate_threshold: float = 0.5,
                 gate: str = 'soft'):
        super().__init__()
        check_sru_args(channels, gn_groups, gate_threshold, gate)
        self.channels = channels
        self.gate_threshold = float(gate_threshold)
        self.gate = gate
        self.gn = nn.GroupNorm(gn_groups, channels)

    def reweights(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1-3: the reweights ``R`` in at least fp32, shape of ``x``."""
        w_gamma = normalised_gamma(self.gn.weight).view(1, -1, 1, 1)
        return torch.sigmoid(self.gn(x).to(w_gamma.dtype) * w_gamma)

    def gate_weights(self, x: torch.Tensor):
        """Return ``(W1, W2)`` for ``x`` in ``x``'s dtype."""
        r = self.reweights(x)
        informative = r > self.gate_threshold
        if self.gate == 'soft':
            w1 = torch.where(informative, torch.ones_like(r), r)
            w2 = torch.where(informative, torch.zeros_like(r), r)
        else:
            w1 = informative.to(r.dtype)
            w2 = 1 - w1
        return w1.to(x.dtype), w2.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w1, w2 = self.gate_weights(x)
        x11, x12 = torch.chunk(w1 * x, 2, dim=1)
        x21, x22 = torch.chunk(w2 * x, 2, dim=1)
        return torch.cat([x11 + x22, x12 + x21], dim=1)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, gate={self.gate!r}, '
                f'gate_threshold={self.gate_threshold}')
