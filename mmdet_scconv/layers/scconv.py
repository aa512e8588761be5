"""SCConv = SRU followed by CRU, a drop-in for a kxk convolution."""
import torch
import torch.nn as nn

from . import ops
from ._numerics import conv_dtype
from .compiled import compiled_call, compiles_itself, reference_forward
from .conv_export_form import ConvExportSCConv
from .cru import CRU, check_cru_args
from .export_form import ExportSCConv
from .kernel_check import kernels_checked
from .kernels import TRITON_AVAILABLE, require_triton
from .norm_folding import apply_affine, batchnorm_affine
from .sru import SRU, check_sru_args

#: ``'fast'`` (the default): the Triton kernels (the registered ops of
#: :mod:`.ops`) on CUDA for ``alpha=0.5`` where triton is installed, else
#: as ``'torch'``; ``'triton'``: the kernels always (an error where they
#: cannot run); ``'torch'``: the reference modules compiled by inductor
#: (:mod:`.compiled`), never the kernels; ``'reference'``: ``cru(sru(x))``,
#: the modules written as the equations, run as they are.
IMPLEMENTATIONS = ('fast', 'triton', 'torch', 'reference')


def check_impl(impl) -> None:
    """Raise ``ValueError`` unless ``impl`` is a known implementation."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f'impl must be one of {IMPLEMENTATIONS}, got '
                         f'{impl!r}.')


def check_scconv_args(in_channels,
                      out_channels,
                      kernel_size=3,
                      stride=1,
                      dilation=1,
                      alpha=0.5,
                      squeeze_ratio=2,
                      groups=2,
                      gn_groups=16,
                      gate_threshold=0.5,
                      gate='soft',
                      impl='fast') -> None:
    """Validate SCConv's arguments without building anything.

    Raises:
        ValueError: naming the argument, its value and what would work.
    """
    check_impl(impl)
    check_sru_args(in_channels, gn_groups, gate_threshold, gate)
    check_cru_args(in_channels, out_channels, kernel_size, stride, dilation,
                   alpha, squeeze_ratio, groups)


class SCConv(nn.Module):
    """Spatial and Channel reconstruction Convolution (Li et al., CVPR 2023).

    ``SCConv(x) = CRU(SRU(x))``. It replaces a ``kernel_size`` convolution
    with "same" padding, so its output size equals that of
    ``nn.Conv2d(kernel_size, stride, padding=dilation*(kernel_size//2),
    dilation=dilation)`` for every input size (see :class:`CRU` for how the
    stride is applied).

    The extra ``padding``, ``bias`` and ``groups`` keywords make the class a
    drop-in ``conv_cfg=dict(type='SCConv')`` for mmcv's ``build_conv_layer``;
    they are checked, never silently ignored.

    Args:
        in_channels (int): Input channels; must be even.
        out_channels (int): Output channels.
        kernel_size (int): Odd kernel size. Default: 3.
        stride (int): Stride. Default: 1.
        dilation (int): Dilation. Default: 1.
        alpha (float): CRU split ratio in (0, 1). Default: 0.5.
        squeeze_ratio (int): CRU squeeze ratio. Default: 2.
        groups (int): Groups of the CRU's grouped kxk convolution. Default: 2.
        gn_groups (int): GroupNorm groups of the SRU. Default: 16.
        gate_threshold (float): SRU gate threshold. Default: 0.5.
        gate (str): SRU gate, ``'soft'`` or ``'hard'``. Default: ``'soft'``.
        padding (int, optional): Accepted only when it equals
            ``dilation * (kernel_size // 2)``. Default: None.
        bias (bool): Must be False: a norm layer follows SCConv wherever it
            replaces a convolution, which makes a bias redundant.
            Default: False.
        impl (str): ``'fast'`` (Triton kernels on CUDA, the compiled
            reference elsewhere), ``'triton'`` (the kernels, also on the
            CPU under ``TRITON_INTERPRET=1``), ``'torch'`` (the reference
            compiled by inductor) or ``'reference'`` (the SRU and CRU
            modules as written from the equations, eagerly). Default:
            ``'fast'``. See :data:`IMPLEMENTATIONS`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 dilation: int = 1,
                 alpha: float = 0.5,
                 squeeze_ratio: int = 2,
                 groups: int = 2,
                 gn_groups: int = 16,
                 gate_threshold: float = 0.5,
                 gate: str = 'soft',
                 padding=None,
                 bias: bool = False,
                 impl: str = 'fast'):
        super().__init__()
        if isinstance(kernel_size, (tuple, list)):
            kernel_size = _square('kernel_size', kernel_size)
        if isinstance(stride, (tuple, list)):
            stride = _square('stride', stride)
        if isinstance(dilation, (tuple, list)):
            dilation = _square('dilation', dilation)
        if isinstance(padding, (tuple, list)):
            padding = _square('padding', padding)
        if padding is not None and isinstance(kernel_size, int) and isinstance(
                dilation, int) and padding != dilation * (kernel_size // 2):
            raise ValueError(
                f'SCConv always pads "same" (dilation*(kernel_size//2) = '
                f'{dilation * (kernel_size // 2)}), got padding={padding}; '
                f'drop padding or set it to that value.')
        if bias:
            raise ValueError(
                'SCConv has no bias (a norm layer follows it); pass '
                'bias=False.')
        check_scconv_args(in_channels, out_channels, kernel_size, stride,
                          dilation, alpha, squeeze_ratio, groups, gn_groups,
                          gate_threshold, gate, impl)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.impl = impl
        self.sru = SRU(in_channels, gn_groups, gate_threshold, gate)
        self.cru = CRU(in_channels, out_channels, kernel_size, stride,
                       dilation, alpha, squeeze_ratio, groups)
        # Set by fuse_norm (deploy form): the following BatchNorm's affine.
        self.register_buffer('norm_scale', None)
        self.register_buffer('norm_shift', None)

    @property
    def out_affine(self):
        """``(scale, shift)`` of a fused BatchNorm, or None."""
        if self.norm_scale is None:
            return None
        return self.norm_scale, self.norm_shift

    @torch.no_grad()
    def fuse_norm(self, norm: nn.modules.batchnorm._BatchNorm) -> None:
        """Deploy form: absorb the inference-time BatchNorm that follows.

        Afterwards ``self(x)`` equals ``norm(old_self(x))`` with ``norm`` in
        eval mode, and the norm can be replaced by ``nn.Identity``. Its
        ``scale, shift`` ride on the CRU's final combine, so the norm costs
        no pass of its own. For inference only: the running statistics are
        frozen into the two buffers ``norm_scale`` and ``norm_shift``.

        Args:
            norm (_BatchNorm): The norm layer right after this SCConv.
        """
        if self.norm_scale is not None:
            raise RuntimeError('This SCConv already has a norm fused in.')
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or (
                norm.running_mean is None):
            raise TypeError(
                f'fuse_norm needs a BatchNorm with running statistics, got '
                f'{type(norm).__name__}.')
        self.norm_scale, self.norm_shift = batchnorm_affine(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs one of four paths, chosen here and nowhere else: the export
        form (inside an ONNX export), the registered ops (the Triton
        kernels), the reference compiled by inductor (:mod:`.compiled`) or
        the reference modules (``impl='reference'``, or inside a compiled
        backbone or any ``torch.compile``, which traces them)."""
        if self.impl != 'reference' and torch.onnx.is_in_onnx_export():
            # Any ONNX export of a model with SCConv (mmdeploy's included)
            # gets the form that ONNX Runtime runs well.
            return ExportSCConv(self)(x)
        if self.runs_kernels(x):
            return self._forward_ops(x)
        if compiles_itself(self.impl, x):
            return compiled_call(reference_forward, self, x)
        return reference_forward(self, x)

    def runs_kernels(self, x: torch.Tensor) -> bool:
        """Whether :meth:`forward` runs the Triton kernels for ``x``:
        ``impl='triton'`` always (or raises where they cannot run);
        ``impl='fast'`` on CUDA for ``alpha=0.5`` with triton installed,
        once the kernels passed their check on this device and dtype
        (:mod:`.kernel_check`)."""
        if self.impl == 'triton':
            require_triton(x)
            if x.device.type not in ops.KERNEL_DEVICES:
                raise RuntimeError(
                    f"impl='triton' on {x.device.type} tensors needs the "
                    f"kernels registered there: import mmdet_scconv with "
                    f"TRITON_INTERPRET=1 already set, or call "
                    f"mmdet_scconv.layers.ops.register_cpu_kernels().")
            if not self.cru.splits_in_halves:
                raise ValueError(
                    f"impl='triton' runs SCConv layers with alpha=0.5; this "
                    f"one splits {self.cru.up_channels}/"
                    f"{self.cru.low_channels}: use impl='fast', which runs "
                    f"it compiled by inductor.")
            return kernels_checked(x, conv_dtype(x), ops.CHECK_CASES)
        return (self.impl == 'fast' and x.is_cuda and TRITON_AVAILABLE
                and self.cru.splits_in_halves and kernels_checked(
                    x, conv_dtype(x), ops.CHECK_CASES, strict=False))

    def _forward_ops(self, x):
        sru, cru = self.sru, self.cru
        gn, gwc = sru.gn, cru.gwc
        args = (x, gn.weight, gn.bias, cru.squeeze_up.weight,
                cru.squeeze_low.weight, gwc.weight, cru.pwc_up.weight,
                cru.pwc_low.weight)
        options = (gn.num_groups, gn.eps, sru.gate_threshold, sru.gate,
                   cru.stride, gwc.dilation[0], conv_dtype(x))
        needs_autograd = torch.is_grad_enabled() and (x.requires_grad or any(
            p.requires_grad for p in self.parameters()))
        if not needs_autograd:
            return ops.scconv_inference(*args, self.norm_scale,
                                        self.norm_shift, *options)
        y = ops.scconv(*args, *options)[0]
        # A folded BatchNorm under autograd (a deploy-form model asked for
        # gradients) rides on no kernel.
        return y if self.out_affine is None else apply_affine(
            y, self.out_affine)

    def extra_repr(self) -> str:
        fused = ', norm fused' if self.norm_scale is not None else ''
        return f'impl={self.impl!r}{fused}'


def run_backbone(forward, backbone: nn.Module, x: torch.Tensor):
    """``forward(backbone, x)``, compiled whole by inductor on the CPU where
    the backbone's SCConv layers would compile themselves (see
    :mod:`.compiled`): a whole-backbone graph fuses their passes with the
    norms and activations around them and stays channels-last, which a
    layer compiled on its own cannot.

    Args:
        forward (callable): The backbone class's forward, unbound.
        backbone (nn.Module): A module with SCConv layers.
        x (Tensor): Its input.
    """
    impl = next((m.impl for m in backbone.modules() if isinstance(m, SCConv)),
                None)
    if x.device.type == 'cpu' and compiles_itself(impl, x):
        return compiled_call(forward, backbone, x)
    return forward(backbone, x)


def set_scconv_impl(module: nn.Module, impl: str) -> nn.Module:
    """Switch every :class:`SCConv` inside ``module`` to ``impl``.

    Args:
        module (nn.Module): A model or layer.
        impl (str): One of :data:`IMPLEMENTATIONS`.

    Returns:
        nn.Module: ``module``.
    """
    check_impl(impl)
    for m in module.modules():
        if isinstance(m, SCConv):
            m.impl = impl
    return module


#: The export form of :class:`SCConv` for each graph engine.
EXPORT_FORMS = {'onnxruntime': ExportSCConv, 'openvino': ConvExportSCConv}


def to_export_form(module: nn.Module, engine: str = 'onnxruntime'):
    """Replace every :class:`SCConv` inside ``module`` by its export form
    for ``engine`` (in place; the replacement when ``module`` is one).

    Args:
        module (nn.Module): A model, in eval mode; fold its BatchNorms
            first (``switch_to_deploy``) for the fewest operators.
        engine (str): ``'onnxruntime'`` (:class:`.ExportSCConv`) or
            ``'openvino'`` (:class:`.ConvExportSCConv`). Both compute the
            same numbers; each runs fastest in its engine. Default:
            ``'onnxruntime'``.

    Returns:
        nn.Module: ``module``, or the replacement when it is an SCConv.
    """
    if engine not in EXPORT_FORMS:
        raise ValueError(f'No export form for engine {engine!r}; choose one '
                         f'of {sorted(EXPORT_FORMS)}.')
    if isinstance(module, SCConv):
        return EXPORT_FORMS[engine](module)
    for name, child in module.named_children():
        replaced = to_export_form(child, engine)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def _square(name, value):
    """Reduce a ``(v, v)`` pair to ``v``; SCConv is square only."""
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f'SCConv supports square {name} only, got {value}.')
    return value[0]
