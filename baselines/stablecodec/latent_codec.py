"""StableCodec's latent codec: the network that turns SD-Turbo's VAE latent (plus the ELIC auxiliary latent) into
CompressAI rANS strings and back into the 320-channel UNet input and a 4-channel residual.

Module names and shapes follow the official ``src/latent_codec.py`` so its ``state_dict_codec`` loads unchanged
(the official code has no config: every width below is hard-wired there too). Our own code, not a copy: the four
checkerboard-by-channel-group coding passes are one loop, and everything that CompressAI provides (entropy
bottleneck, Gaussian conditional, rANS coder, CDF updates, buffer resizing on load) is CompressAI's.

Coding order (must match the official encoder bit for bit): z with the entropy bottleneck (its own string); then
y in four groups k = 0..3, each group the 80-channel "squeeze" of y under mask k (one of four spatial 2x2
positions per 80-channel slice), coded into ONE rANS stream with means and scales predicted from everything
decoded so far; after each group a latent residual prediction ``0.5 tanh(LRP_k(...))`` refines it.
"""

from __future__ import annotations

from typing import Any

M = 320          # latent channels
CONTEXT = 3 * M  # spatial-context width
#: for mask k, the spatial 2x2 position (0: top-left, 1: top-right, 2: bottom-left, 3: bottom-right) used by
#: each of the four 80-channel slices (official get_mask_four_parts)
MASK_POSITIONS = ((0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))


def build_latent_codec_class():
    """Define the torch modules on first use, so importing the codec registry does not import torch."""
    import torch
    from compressai.ans import BufferedRansEncoder, RansDecoder
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.models import CompressionModel
    from torch import nn

    def seq(*layers):
        return nn.Sequential(*layers)

    class InceptionDWConv2d(nn.Module):
        def __init__(self, ch: int, square: int = 3, band: int = 11):
            super().__init__()
            g = ch // 8
            self.split_indexes = (ch - 3 * g, g, g, g)
            self.dwconv_hw = nn.Conv2d(g, g, square, padding=square // 2, groups=g)
            self.dwconv_w = nn.Conv2d(g, g, (1, band), padding=(0, band // 2), groups=g)
            self.dwconv_h = nn.Conv2d(g, g, (band, 1), padding=(band // 2, 0), groups=g)

        def forward(self, x):
            keep, hw, w, h = torch.split(x, self.split_indexes, dim=1)
            return torch.cat((keep, self.dwconv_hw(hw), self.dwconv_w(w), self.dwconv_h(h)), dim=1)

    class InceptionNeXt(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            self.depthconv = InceptionDWConv2d(ch)
            self.conv1 = nn.Conv2d(ch, 2 * ch, 1)
            self.conv2 = nn.Conv2d(2 * ch, ch, 1)
            self.act = nn.GELU()

        def forward(self, x):
            return self.conv2(self.act(self.conv1(self.depthconv(x)))) + x

    class GatedCNNBlock(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            hidden = 2 * ch
            self.norm = nn.LayerNorm(ch, eps=1e-6)
            self.fc1 = nn.Conv2d(ch, 2 * hidden, 1)
            self.act = nn.GELU()
            self.conv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
            self.fc2 = nn.Conv2d(hidden, ch, 1)

        def forward(self, x):
            gate, value = self.fc1(self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)).chunk(2, 1)
            return self.fc2(self.act(gate) * self.conv(value)) + x

    class BasicBlock(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            self.blocks = seq(InceptionNeXt(ch), GatedCNNBlock(ch))

        def forward(self, x):
            return self.blocks(x)

    class TwoBranch(nn.Module):
        """The sum of two branches (the official Downsample and Upsample)."""

        def forward(self, x):
            return self.branch1(x) + self.branch2(x)

    class Downsample(TwoBranch):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.branch1 = seq(nn.Conv2d(cin, cout, 1), nn.GELU(), nn.Conv2d(cout, cout, 3, stride=2, padding=1))
            self.branch2 = seq(nn.Conv2d(cin, cout, 1), nn.GELU(),
                               nn.Conv2d(cout, cout, 5, stride=2, padding=2, groups=cout))

    class Upsample(TwoBranch):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.branch1 = seq(nn.Conv2d(cin, cin, 3, padding=1), nn.GELU(), nn.Conv2d(cin, 4 * cout, 1),
                               nn.PixelShuffle(2))
            self.branch2 = seq(nn.Conv2d(cin, cin, 5, padding=2, groups=cin), nn.GELU(),
                               nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))

    class Adapter(TwoBranch):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            mid = (cin + cout) // 2
            self.branch1 = seq(nn.Conv2d(cin, mid, 1), nn.GELU(), nn.Conv2d(mid, mid, 5, padding=2, groups=mid),
                               nn.GELU(), nn.Conv2d(mid, cout, 1))
            self.branch2 = nn.Conv2d(cin, cout, 1)

    class AnalysisTransform(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre1 = Downsample(4, 128)
            self.pre2 = nn.Conv2d(M, 64, 3, padding=1)
            self.analysis_transform = seq(BasicBlock(192), Downsample(192, 256), BasicBlock(256),
                                          Downsample(256, M), BasicBlock(M))

        def forward(self, latent, aux_latent):
            return self.analysis_transform(torch.cat((self.pre1(latent), self.pre2(aux_latent)), dim=1))

    def stack(name: str, *layers) -> nn.Module:
        """A module holding one nn.Sequential under ``name`` (the official wrappers' attribute names)."""
        holder = nn.Module()
        setattr(holder, name, seq(*layers))
        holder.forward = getattr(holder, name).forward
        return holder

    class Masks:
        """The four complementary masks of a (C, H, W) latent: 0/1 floats, exactly as the official code."""

        def __init__(self, batch: int, channels: int, h: int, w: int, device):
            spots = []
            for position in range(4):
                micro = torch.zeros(2, 2, device=device)
                micro[position // 2, position % 2] = 1.0
                spots.append(micro.repeat((h + 1) // 2, (w + 1) // 2)[:h, :w][None, None])
            ones = torch.ones((batch, channels // 4, h, w), device=device)
            self.masks = [torch.cat([ones * spots[p] for p in positions], dim=1) for positions in MASK_POSITIONS]

        def __getitem__(self, k: int):
            return self.masks[k]

    def squeeze(t, mask):
        """The entries of ``t`` that ``mask`` selects, folded into a quarter of the channels."""
        parts, masks = t.chunk(4, 1), mask.chunk(4, 1)
        return parts[0] * masks[0] + parts[1] * masks[1] + parts[2] * masks[2] + parts[3] * masks[3]

    def unsqueeze(t, mask):
        return torch.cat([t * m for m in mask.chunk(4, 1)], dim=1)

    class LatentCodec(CompressionModel):
        """State-dict compatible with the official ``LatentCodec`` (coding path only; no rate loss)."""

        def __init__(self):
            super().__init__()
            self.g_a = AnalysisTransform()
            self.g_s = stack("synthesis_transform", BasicBlock(M), Upsample(M, M), BasicBlock(M), Upsample(M, M),
                             BasicBlock(M), Upsample(M, M))
            self.h_a = stack("reduction", nn.Conv2d(M, M // 2, 3, stride=2, padding=1), BasicBlock(M // 2),
                             nn.Conv2d(M // 2, M // 2, 3, stride=2, padding=1))
            self.h_s = stack("increase", nn.Conv2d(M // 2, 2 * M, 1), nn.PixelShuffle(2), BasicBlock(M // 2),
                             nn.Conv2d(M // 2, 4 * M, 1), nn.PixelShuffle(2))
            self.aux = stack("block", BasicBlock(M), Upsample(M, 256), BasicBlock(256), Upsample(256, 192),
                             BasicBlock(192), Upsample(192, 4))
            self.adapter_in = nn.ModuleList(Adapter(M, CONTEXT) for _ in range(4))
            self.g_c = stack("block", *[BasicBlock(CONTEXT) for _ in range(4)])
            self.adapter_out = nn.ModuleList(Adapter(CONTEXT, 2 * M) for _ in range(4))
            self.LRP = nn.ModuleList(stack("block", Adapter(2 * M, (3 * M) // 2), Adapter((3 * M) // 2, M))
                                     for _ in range(4))
            self.entropy_bottleneck = EntropyBottleneck(M // 2)
            self.gaussian_conditional = GaussianConditional(None)

        def _params(self, k: int, base):
            means, scales = self.adapter_out[k](self.g_c(self.adapter_in[k](base))).chunk(2, 1)
            return means, scales

        def _refine(self, k: int, y_hat_k, base, mask):
            lrp = self.LRP[k](torch.cat([y_hat_k, base], dim=1)) * mask
            return y_hat_k + 0.5 * torch.tanh(lrp)

        def _tables(self):
            gc = self.gaussian_conditional
            return (gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(),
                    gc.offset.reshape(-1).int().tolist())

        def compress(self, latent, aux_latent) -> dict[str, Any]:
            """VAE latent (scaled) + ELIC latent -> ``strings`` ([y], [z]) and the quantised latents."""
            y = self.g_a(latent, aux_latent)
            z = self.h_a(y)
            z_strings = self.entropy_bottleneck.compress(z)
            z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
            masks = Masks(*y.shape, device=y.device)
            gc = self.gaussian_conditional
            symbols: list[int] = []
            indexes: list[int] = []
            base = self.h_s(z_hat)
            y_hat = 0
            for k in range(4):
                means, scales = self._params(k, base)
                means_sq = squeeze(means, masks[k])
                idx = gc.build_indexes(squeeze(scales, masks[k]))
                q = gc.quantize(squeeze(y, masks[k]), "symbols", means_sq)
                symbols += q.reshape(-1).tolist()
                indexes += idx.reshape(-1).tolist()
                y_hat_k = self._refine(k, unsqueeze(q + means_sq, masks[k]), base, masks[k])
                y_hat = y_hat + y_hat_k
                base = base * (1 - masks[k]) + y_hat_k
            encoder = BufferedRansEncoder()
            encoder.encode_with_indexes(symbols, indexes, *self._tables())
            return {"strings": [[encoder.flush()], z_strings], "z_hat": z_hat, "y_hat": y_hat, "y": y, "z": z}

        def decompress(self, strings, z_shape) -> dict[str, Any]:
            """``strings`` ([y], [z]) -> UNet input (320 channels at the VAE latent size) and the residual."""
            z_hat = self.entropy_bottleneck.decompress(strings[1], z_shape)
            b, c, h, w = z_hat.shape
            masks = Masks(b, 2 * c, 4 * h, 4 * w, device=z_hat.device)
            decoder = RansDecoder()
            decoder.set_stream(strings[0][0])
            cdf, lengths, offsets = self._tables()
            base = self.h_s(z_hat)
            y_hat = 0
            for k in range(4):
                means, scales = self._params(k, base)
                means_sq = squeeze(means, masks[k])
                idx = self.gaussian_conditional.build_indexes(squeeze(scales, masks[k]))
                values = decoder.decode_stream(idx.reshape(-1).tolist(), cdf, lengths, offsets)
                q = torch.Tensor(values).reshape(means_sq.shape).to(z_hat.device)
                y_hat_k = self._refine(k, unsqueeze(q + means_sq, masks[k]), base, masks[k])
                y_hat = y_hat + y_hat_k
                base = base * (1 - masks[k]) + y_hat_k
            return {"unet_input": self.g_s(y_hat), "residual": self.aux(y_hat), "y_hat": y_hat, "z_hat": z_hat}

    return LatentCodec


_CLASS = None


def latent_codec_class():
    global _CLASS
    if _CLASS is None:
        _CLASS = build_latent_codec_class()
    return _CLASS
