"""The learned change detector's network (PyTorch; training only — detect runs its ONNX export).

A Siamese encoder with shared weights reads each date; at every scale the two feature
maps are fused by a 1×1 convolution over ``[f_before, f_after, |f_before − f_after|]``
and a U-Net decoder brings the fused maps back to full resolution. Why this shape (and
not early fusion) is argued in ``models/README.md``: shared weights see every date as
the same kind of image, so a radiometric difference between the dates is not learnt as
change, and the absolute difference makes the output nearly symmetric in the dates.

Everything is local (convolutions, batch norm folded at export, no global pooling), so a
pixel's output depends only on the inputs within :data:`RECEPTIVE_RADIUS` pixels: a
window read with that halo, its offset a multiple of :data:`STRIDE`, gives the same
probabilities in its core whatever the window (the seam test checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The total down-sampling of the encoder: inputs are padded to a multiple of it and
#: windows start at multiples of it.
STRIDE = 16
#: Pixels on each side of a pixel that its output depends on (measured by
#: :func:`receptive_radius`; the halo read around each window is at least this).
RECEPTIVE_RADIUS = 93
WIDTHS = (16, 24, 40, 64)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _separable(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3×3 then pointwise 1×1, each with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ChangeNet(nn.Module):
    """``forward(before, after) -> logit``: ``(n, bands, h, w)`` twice → ``(n, 1, h, w)``.

    ``h`` and ``w`` must be multiples of :data:`STRIDE`. Inputs are each date's bands
    standardised by that date's scene statistics (see :mod:`swc_rs.change.learned`).
    """

    def __init__(self, bands: int, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        w = widths
        self.bands = bands
        self.encoder = nn.ModuleList([
            nn.Sequential(_conv(bands, w[0], 2), _separable(w[0], w[0])),
            nn.Sequential(_separable(w[0], w[1], 2), _separable(w[1], w[1])),
            nn.Sequential(_separable(w[1], w[2], 2), _separable(w[2], w[2])),
            nn.Sequential(_separable(w[2], w[3], 2), _separable(w[3], w[3], dilation=2)),
        ])
        self.fuse = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3 * k, k, 1, bias=False), nn.BatchNorm2d(k), nn.ReLU(inplace=True)) for k in w
        ])
        self.decoder = nn.ModuleList([_separable(w[3] + w[2], w[2]), _separable(w[2] + w[1], w[1]),
                                      _separable(w[1] + w[0], w[0])])
        self.head = nn.Conv2d(w[0], 1, 1)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.encoder:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        fused = [f(torch.cat([a, b, (a - b).abs()], 1))
                 for f, a, b in zip(self.fuse, self._features(before), self._features(after), strict=True)]
        x = fused[-1]
        for stage, skip in zip(self.decoder, reversed(fused[:-1]), strict=True):
            x = stage(torch.cat([F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False), skip], 1))
        return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=False)


def receptive_radius(net: ChangeNet, size: int = 512) -> int:
    """Pixels on each side of the centre whose input changes the centre's output."""
    net = net.eval()
    x = torch.zeros(1, net.bands, size, size, requires_grad=True)
    out = net(x, torch.zeros(1, net.bands, size, size))
    out[0, 0, size // 2, size // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3)) > 0)
    return int(max(size // 2 - rows.min().item(), rows.max().item() - size // 2))


def export_onnx(net: ChangeNet, path, *, opset: int = 17) -> None:
    """Write ``net`` (in eval mode) as ONNX: inputs ``before``/``after``, output ``logit``."""
    net = net.eval()
    example = torch.zeros(1, net.bands, 64, 64)
    axes = {"n": 0, "h": 2, "w": 3}
    dynamic = {name: {i: k for k, i in axes.items()} for name in ("before", "after", "logit")}
    torch.onnx.export(net, (example, example), str(path), input_names=["before", "after"], output_names=["logit"],
                      dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
