"""The official RFR-Net generator's computation, restated op for op, as the speed reference of our benchmarks.

The official repository cannot be fetched on our machines, so benchmarks compare `RFRNet` against this restatement:
the same layers under the official state-dict names (official checkpoints load into it as they are), the same
multi-channel mask convolutions (one output channel per feature channel), the per-sample attention loop with 1×1
convolution kernels, and the stacked 7-map merge. `tests/test_official_reference.py` checks it against the fixtures
produced by the official code, so the speed ratios we report are against something that computes the same thing.
Only the official code's bugs that would stop it running here (a hard-coded `.cuda()`) are left out.
Not part of the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OfficialPartialConv2d(nn.Conv2d):
    """NVIDIA's multi-channel partial convolution, as the official code uses it (no bias, mask conv per channel)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, bias=False, **kwargs)
        self.register_buffer("weight_mask_updater", torch.ones(self.out_channels, self.in_channels, *self.kernel_size),
                             persistent=False)
        self.slide_winsize = self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x, mask):
        with torch.no_grad():
            update_mask = F.conv2d(mask, self.weight_mask_updater, None, self.stride, self.padding, self.dilation)
            mask_ratio = self.slide_winsize / (update_mask + 1e-8)
            update_mask = torch.clamp(update_mask, 0, 1)
            mask_ratio = torch.mul(mask_ratio, update_mask)
        raw_out = super().forward(torch.mul(x, mask))
        return torch.mul(raw_out, mask_ratio), update_mask


class OfficialKCA(nn.Module):
    def __init__(self):
        super().__init__()
        self.ratio = nn.Parameter(torch.ones(1))
        self.att_scores_prev = None
        self.masks_prev = None

    def forward(self, foreground, masks):
        bz, nc, h, w = foreground.size()
        if masks.size(3) != foreground.size(3):
            masks = F.interpolate(masks, foreground.size()[2:])
        background = foreground.clone()
        conv_kernels_all = background.view(bz, nc, w * h, 1, 1).permute(0, 2, 1, 3, 4)
        output_tensor, att_score = [], []
        for i in range(bz):
            feature_map = foreground[i : i + 1]
            conv_kernels = conv_kernels_all[i] + 0.0000001
            norm_factor = torch.sum(conv_kernels**2, [1, 2, 3], keepdim=True) ** 0.5
            conv_kernels = conv_kernels / norm_factor
            conv_result = F.conv2d(feature_map, conv_kernels, padding=0)
            conv_result = F.avg_pool2d(conv_result, 3, 1, padding=1) * 9
            attention_scores = F.softmax(conv_result, dim=1)
            if self.att_scores_prev is not None:
                attention_scores = (
                    self.att_scores_prev[i : i + 1] * self.masks_prev[i : i + 1]
                    + attention_scores * (torch.abs(self.ratio) + 1e-7)
                ) / (self.masks_prev[i : i + 1] + (torch.abs(self.ratio) + 1e-7))
            att_score.append(attention_scores)
            output_tensor.append(F.conv_transpose2d(attention_scores, conv_kernels, stride=1, padding=0))
        self.att_scores_prev = torch.cat(att_score, dim=0).view(bz, h * w, h, w)
        self.masks_prev = masks.view(bz, 1, h, w)
        return torch.cat(output_tensor, dim=0)


class OfficialAttentionModule(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.att = OfficialKCA()
        self.combiner = nn.Conv2d(channels * 2, channels, kernel_size=1)

    def forward(self, foreground, mask):
        return self.combiner(torch.cat([self.att(foreground, mask), foreground], dim=1))


def _block(conv, channels, act):
    return nn.Sequential(conv, nn.BatchNorm2d(channels), act)


class OfficialRFRModule(nn.Module):
    def __init__(self, in_channel=64):
        super().__init__()
        c = in_channel
        for i in range(3):
            setattr(self, f"enc_{i + 1}", _block(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), 2 * c, nn.ReLU(True)))
            c *= 2
        for i in range(3, 6):
            setattr(self, f"enc_{i + 1}", _block(nn.Conv2d(c, c, 3, 1, 2, dilation=2, bias=False), c, nn.ReLU(True)))
        self.att = OfficialAttentionModule(c)
        for i in (5, 4):
            setattr(self, f"dec_{i}", _block(nn.Conv2d(2 * c, c, 3, 1, 2, dilation=2, bias=False), c,
                                             nn.LeakyReLU(0.2, True)))
        self.dec_3 = _block(nn.ConvTranspose2d(1024, 512, 4, 2, 1, bias=False), 512, nn.LeakyReLU(0.2, True))
        self.dec_2 = _block(nn.ConvTranspose2d(768, 256, 4, 2, 1, bias=False), 256, nn.LeakyReLU(0.2, True))
        self.dec_1 = _block(nn.ConvTranspose2d(384, 64, 4, 2, 1, bias=False), 64, nn.LeakyReLU(0.2, True))

    def forward(self, x, mask):
        h_dict = {"h_0": x}
        for i in range(1, 7):
            h_dict[f"h_{i}"] = getattr(self, f"enc_{i}")(h_dict[f"h_{i - 1}"])
        h = h_dict["h_6"]
        for i in range(5, 0, -1):
            h = getattr(self, f"dec_{i}")(torch.cat([h, h_dict[f"h_{i}"]], 1))
            if i == 3:
                h = self.att(h, mask)
        return h


class OfficialBottleneck(nn.Module):
    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x
        return self.relu(out)


class OfficialRFRNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.Pconv1 = OfficialPartialConv2d(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.Pconv2 = OfficialPartialConv2d(64, 64, 7, 1, 3)
        self.bn20 = nn.BatchNorm2d(64)
        self.Pconv21 = OfficialPartialConv2d(64, 64, 7, 1, 3)
        self.Pconv22 = OfficialPartialConv2d(64, 64, 7, 1, 3)
        self.bn2 = nn.BatchNorm2d(64)
        self.RFRModule = OfficialRFRModule()
        self.Tconv = nn.ConvTranspose2d(64, 64, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.tail1 = OfficialPartialConv2d(67, 32, 3, 1, 1)
        self.tail2 = OfficialBottleneck(32, 8)
        self.out = nn.Conv2d(64, 3, 3, 1, 1, bias=False)

    def forward(self, in_image, mask):
        """`in_image` is the masked image, `mask` the 3-channel known mask (1 = known)."""
        x1, m1 = self.Pconv1(in_image, mask)
        x1 = F.relu(self.bn1(x1), inplace=True)
        x1, m1 = self.Pconv2(x1, m1)
        x1 = F.relu(self.bn20(x1), inplace=True)
        x2, m2 = x1, m1
        n, c, h, w = x2.size()
        feature_group = [x2.view(n, c, 1, h, w)]
        mask_group = [m2.view(n, c, 1, h, w)]
        self.RFRModule.att.att.att_scores_prev = None
        self.RFRModule.att.att.masks_prev = None
        for _ in range(6):
            x2, m2 = self.Pconv21(x2, m2)
            x2, m2 = self.Pconv22(x2, m2)
            x2 = F.leaky_relu(self.bn2(x2), inplace=True)
            x2 = self.RFRModule(x2, m2[:, 0:1, :, :])
            x2 = x2 * m2
            feature_group.append(x2.view(n, c, 1, h, w))
            mask_group.append(m2.view(n, c, 1, h, w))
        x3 = torch.cat(feature_group, dim=2)
        m3 = torch.cat(mask_group, dim=2)
        amp_vec = m3.mean(dim=2)
        x3 = (x3 * m3).mean(dim=2) / (amp_vec + 1e-7)
        m3 = m3[:, :, -1, :, :]
        x4 = F.leaky_relu(self.bn3(self.Tconv(x3)), inplace=True)
        m4 = F.interpolate(m3, scale_factor=2)
        x5, _ = self.tail1(torch.cat([in_image, x4], dim=1), torch.cat([mask, m4], dim=1))
        x5 = F.leaky_relu(x5, inplace=True)
        x6 = torch.cat([x5, self.tail2(x5)], dim=1)
        return self.out(x6)


def official_generator_loss(vgg, gt, known3, output):
    """The official `get_g_loss`: three separate VGG passes (gt, out, comp) and the paper's weights."""
    comp = output * (1 - known3) + gt * known3
    real_feats, fake_feats, comp_feats = vgg(gt), vgg(output), vgg(comp)

    def gram(x):
        b, c, h, w = x.size()
        f = x.view(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2))

    def style(a_feats, b_feats):
        total = 0.0
        for a, b in zip(a_feats, b_feats):
            _, c, h, w = a.size()
            total += torch.mean(torch.abs(gram(a) - gram(b)) / (c * h * w))
        return total

    def perceptual(a_feats, b_feats):
        return sum(torch.mean(torch.abs(a - b)) for a, b in zip(a_feats, b_feats))

    hole_region = comp * (1 - known3)
    tv = torch.mean(torch.abs(hole_region[:, :, 1:, :] - hole_region[:, :, :-1, :])) + torch.mean(
        torch.abs(hole_region[:, :, :, 1:] - hole_region[:, :, :, :-1])
    )
    valid = torch.mean(torch.abs(gt - output) * known3)
    hole = torch.mean(torch.abs(gt - output) * (1 - known3))
    return (
        tv * 0.1
        + (style(real_feats, fake_feats) + style(real_feats, comp_feats)) * 120
        + (perceptual(real_feats, fake_feats) + perceptual(real_feats, comp_feats)) * 0.05
        + valid
        + 6 * hole
    )


def fixture_state_dict(fixture: dict) -> dict[str, torch.Tensor]:
    """The official state dict of a ../shared/fixtures/official_parity_seed*.pt fixture, rebuilt by its recipe:
    one generator seeded with `seed` draws every non-counter tensor uniformly in [lo, hi], in `rules` order; then
    `overrides` replace their keys."""
    generator = torch.Generator().manual_seed(fixture["seed"])
    state_dict = {}
    for key, shape, lo, hi in fixture["rules"]:
        if key.endswith("num_batches_tracked"):
            state_dict[key] = torch.tensor(int(lo))
        else:
            state_dict[key] = lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=torch.float32)
    state_dict.update(fixture["overrides"])
    return state_dict
