"""Channel Reconstruction Unit (CRU), Eq. 5-9 of the SCConv paper."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_divides, check_positive_int
from ._numerics import at_least_fp32


def split_channels(in_channels: int, alpha: float):
    """Return ``(upper, lower)`` channel counts of the CRU split."""
    upper = int(alpha * in_channels)
    return upper, in_channels - upper


def strided_size(size: int, stride: int) -> int:
    """``ceil(size / stride)``: the CRU's output size, that of the
    same-padded convolution it replaces."""
    return (size - 1) // stride + 1


def downsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The CRU pointwise paths' stride: a ``stride x stride`` mean (ceil
    mode, padding excluded), whose output size is :func:`strided_size`."""
    if stride == 1:
        return x
    return F.avg_pool2d(x, stride, ceil_mode=True, count_include_pad=False)


def check_cru_args(in_channels, out_channels, kernel_size, stride, dilation,
                   alpha, squeeze_ratio, groups) -> None:
    """Validate the CRU arguments; raise ``ValueError`` naming the fix."""
    for name, value in (('in_channels', in_channels), ('out_channels',
                                                       out_channels),
                        ('kernel_size', kernel_size), ('stride', stride),
                        ('dilation', dilation),
                        ('squeeze_ratio', squeeze_ratio), ('groups', groups)):
        check_positive_int(name, value)
    if kernel_size % 2 == 0:
        raise ValueError(
            f'kernel_size must be odd so that the output keeps the size of a '
            f'same-padded convolution, got kernel_size={kernel_size}.')
    if (not isinstance(alpha, (int, float)) or isinstance(alpha, bool)
            or not 0 < alpha < 1):
        raise ValueError(f'alpha must be a number in (0, 1) (the paper uses '
                         f'1/2 and 3/4), got {alpha!r}.')
    upper, lower = split_channels(in_channels, alpha)
    if upper == 0 or lower == 0:
        raise ValueError(
            f'alpha={alpha} splits in_channels={in_channels} into '
            f'{upper} upper and {lower} lower channels; both must be at least '
            f'1: pick alpha closer to 1/2 or use more channels.')
    for part, size in (('upper', upper), ('lower', lower)):
        check_divides(
            'squeeze_ratio', squeeze_ratio, f'the {part} split of '
            f'in_channels={in_channels} at alpha={alpha}', size,
            'choose a squeeze_ratio that divides both split sizes, or '
            'another alpha')
    squeezed_upper = upper // squeeze_ratio
    check_divides(
        'groups', groups, 'the squeezed upper channels', squeezed_upper,
        'choose groups dividing int(alpha*in_channels)/squeeze_ratio')
    check_divides('groups', groups, 'out_channels', out_channels,
                  'choose groups dividing out_channels')
    reused = lower // squeeze_ratio
    if out_channels <= reused:
        raise ValueError(
            f'out_channels={out_channels} must exceed the {reused} squeezed '
            f'lower channels that CRU reuses as output (Eq. 7); raise '
            f'out_channels, alpha or squeeze_ratio.')


class CRU(nn.Module):
    """Channel Reconstruction Unit (SCConv, CVPR 2023, Sec. 3.2).

    Split (Eq. 5): the input is split into ``int(alpha*C_in)`` upper and the
    remaining lower channels, each squeezed by a 1x1 convolution
    (``squeeze_up``, ``squeeze_low``) by ``squeeze_ratio``.
    Transform (Eq. 6-7): ``Y1 = GWC(X_up) + PWC1(X_up)`` (``gwc``,
    ``pwc_up``), ``Y2 = cat(PWC2(X_low), X_low)`` (``pwc_low``).
    Fuse (Eq. 8-9): ``S_m = GAP(Y_m)``; per output channel a softmax over the
    two branches gives ``beta1, beta2``; ``Y = beta1*Y1 + beta2*Y2``.

    Stride (the paper is silent): the grouped kxk convolution ``gwc`` strides
    like the convolution it replaces. The pointwise paths (``pwc_up``,
    ``pwc_low`` and the reused ``X_low``) have no spatial extent, so a strided
    1x1 would drop 3 of every 4 positions; instead they see a
    ``stride x stride`` average pool (``ceil_mode``, padding excluded), which
    keeps every input position and yields exactly the size of the ``gwc``
    output for any H and W. Pooling and the 1x1 squeeze are both linear and
    commute, so the pool runs on the narrow squeezed tensors.

    Args:
        in_channels (int): Input channels ``C_in``.
        out_channels (int): Output channels ``C_out``; must exceed the reused
            ``(C_in - int(alpha*C_in)) / squeeze_ratio``.
        kernel_size (int): Odd kernel size of ``gwc``. Default: 3.
        stride (int): Stride. Default: 1.
        dilation (int): Dilation of ``gwc``; padding is
            ``dilation * (kernel_size // 2)``. Default: 1.
        alpha (float): Split ratio in (0, 1). Default: 0.5.
        squeeze_ratio (int): Squeeze ratio ``r``. Default: 2.
        groups (int): Groups of ``gwc``. Default: 2.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 dilation: int = 1,
                 alpha: float = 0.5,
                 squeeze_ratio: int = 2,
                 groups: int = 2):
        super().__init__()
        check_cru_args(in_channels, out_channels, kernel_size, stride,
                       dilation, alpha, squeeze_ratio, groups)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.up_channels, self.low_channels = split_channels(
            in_channels, alpha)
        squeezed_up = self.up_channels // squeeze_ratio
        squeezed_low = self.low_channels // squeeze_ratio
        self.squeeze_up = nn.Conv2d(
            self.up_channels, squeezed_up, 1, bias=False)
        self.squeeze_low = nn.Conv2d(
            self.low_channels, squeezed_low, 1, bias=False)
        self.gwc = nn.Conv2d(
            squeezed_up,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            groups=groups,
            bias=False)
        self.pwc_up = nn.Conv2d(squeezed_up, out_channels, 1, bias=False)
        self.pwc_low = nn.Conv2d(
            squeezed_low, out_channels - squeezed_low, 1, bias=False)

    @property
    def splits_in_halves(self) -> bool:
        """Whether the split is at the half (``alpha=0.5``), the case the
        Triton kernels take."""
        return self.up_channels == self.low_channels

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """The pointwise paths' stride (:func:`downsample`)."""
        return downsample(x, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_up, x_low = torch.split(
            x, [self.up_channels, self.low_channels], dim=1)
        return self.transform_and_fuse(
            self.squeeze_up(x_up), self.squeeze_low(x_low))

    def transform_and_fuse(self, x_up: torch.Tensor,
                           x_low: torch.Tensor) -> torch.Tensor:
        """Eq. 6-9 from the squeezed ``X_up`` and ``X_low`` (Eq. 5)."""
        x_low = self.downsample(x_low)
        y1 = self.gwc(x_up) + self.pwc_up(self.downsample(x_up))
        y2 = torch.cat([self.pwc_low(x_low), x_low], dim=1)
        s = torch.stack([y1.mean((2, 3)), y2.mean((2, 3))])
        beta1, beta2 = torch.softmax(
            s.to(at_least_fp32(s.dtype)), dim=0).to(y1.dtype)
        return (beta1[..., None, None] * y1 + beta2[..., None, None] * y2)

    def extra_repr(self) -> str:
        return (f'split=({self.up_channels}, {self.low_channels}), '
                f'stride={self.stride}')
