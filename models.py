"""Encoder and decoder of AS-IntroVAE (Soft-IntroVAE's ResNet-style networks), and their config.

The networks follow docs/ALGORITHM.md ("Networks"). A model is fully described by a
`ModelConfig`, which every checkpoint and exported model stores, so `build_model(config)` rebuilds it.
"""
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

FULL_WIDTHS = (64, 128, 256, 512, 512, 512)  # the seed's model at 256x256, about 43 M parameters
# The decoder's x2 upsamplings. nearest (the official) copies each pixel into a 2x2 block, whose edges the
# convolutions after it can turn into patterns aligned with the axes; bilinear leaves no blocks (docs/ALGORITHM.md)
UPSAMPLING = {"nearest": {}, "bilinear": {"align_corners": False}}
# The encoder's /2 poolings. average (the official) is a 2x2 box; blur is StyleGAN2's anti-aliased downsampling, a
# [1, 3, 3, 1] blur then every second pixel. (StyleGAN2's upsampling, zeros between the pixels and the same blur, is
# exactly bilinear: --upsample bilinear.)
DOWNSAMPLING = ("average", "blur")
# --head-norm: the number of features at which the encoder's last layer, read unnormalised, was measured stable
# (the small preset's 128 x 4 x 4); wider heads read features normalised per image and scaled down (Encoder.forward)
HEAD_BASE_FEATURES = 2048
# ACAI's critic (--critic): none, a one-output head on the encoder's features, or a network of its own
CRITICS = ("", "head", "net")
FEATURE_STAGES = 3  # --rec-loss features: the encoder's maps at S/2, S/4 and S/8, where fine detail still has room


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 256
    z_dim: int = 256
    widths: tuple = FULL_WIDTHS  # one width per halving of the image, 4x4 at the bottom
    upsample: str = "nearest"  # the decoder's x2 upsamplings: nearest (official) or bilinear
    downsample: str = "average"  # the encoder's /2 poolings: average (official) or blur
    head_norm: bool = False  # the encoder's last layer reads features normalised per image (not official)
    critic: str = ""  # ACAI's critic (--acai, --critic; not official): "head" on the encoder, a "net" of its own, or ""

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        # (a bool in the models saved before --critic net: True was the head)
        object.__setattr__(self, "critic", {True: "head", False: ""}.get(self.critic, self.critic))
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {', '.join(map(repr, CRITICS))}, got {self.critic!r}")
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {self.upsample!r}")
        if self.downsample not in DOWNSAMPLING:
            raise ValueError(f"downsample must be one of {', '.join(DOWNSAMPLING)}, got {self.downsample!r}")
        if self.image_size != 4 * 2 ** len(self.widths):
            raise ValueError(f"image size {self.image_size} needs {len(self.widths)} widths to reach 4x4, "
                             f"got {self.widths}")

    def to_dict(self):
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


# Presets: name -> (base widths for 256x256, width multiplier, default image size, default z_dim).
PRESETS = {
    "full": (FULL_WIDTHS, 1.0, 256, 256),
    "small": (FULL_WIDTHS, 0.25, 256, 256),  # about 3.8 M parameters: trains on a CPU
    "tiny": (FULL_WIDTHS, 0.125, 64, 32),  # 64x64, for tests
}


def preset_config(name, image_size=None, z_dim=None, upsample="nearest", downsample="average", head_norm=None,
                  critic=""):
    """The ModelConfig of a preset; image size 128 keeps the first five widths, 64 the first four. head_norm None:
    on where the encoder's last layer reads more than HEAD_BASE_FEATURES features (the full preset)."""
    base, mult, default_size, default_z = PRESETS[name]
    image_size = image_size or default_size
    n = {64: 4, 128: 5, 256: 6}.get(image_size)
    if n is None:
        raise ValueError(f"image size must be 64, 128 or 256, got {image_size}")
    widths = tuple(max(4, int(w * mult)) for w in base[:n])
    if head_norm is None:
        head_norm = widths[-1] * 4 * 4 > HEAD_BASE_FEATURES
    return ModelConfig(image_size=image_size, z_dim=z_dim or default_z, widths=widths, upsample=upsample,
                       downsample=downsample, head_norm=head_norm, critic=critic)


class ResidualBlock(nn.Module):
    """conv3x3-BN-LReLU-conv3x3-BN plus identity (1x1 conv when widths differ), then LReLU."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.identity = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.main(x) + self.identity(x))


class BlurPool(nn.Module):
    """StyleGAN2's anti-aliased /2 downsampling: a [1, 3, 3, 1] x [1, 3, 3, 1] / 64 blur, then every second pixel
    (the border repeated). What the smaller map cannot hold folds back as a coarser pattern: of a wave of 0.375
    cycles per pixel, a 2x2 box average passes 15 % of the power, this filter 0.3 %."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", (torch.outer(k, k) / 64)[None, None], persistent=False)  # (1, 1, 4, 4)

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 4, 4), stride=2, groups=c)


def pooling(cfg):
    return nn.AvgPool2d(2) if cfg.downsample == "average" else BlurPool()


def trunk(cfg):
    """The encoder's convolutions, from the image to its features at 4x4 (B, w[-1], 4, 4)."""
    w = cfg.widths
    layers = [nn.Conv2d(3, w[0], 5, padding=2, bias=False), nn.BatchNorm2d(w[0]), nn.LeakyReLU(0.2), pooling(cfg)]
    for c_in, c_out in zip(w, w[1:]):
        layers += [ResidualBlock(c_in, c_out), pooling(cfg)]
    layers.append(ResidualBlock(w[-1], w[-1]))
    return nn.Sequential(*layers)


def critic_head(n):
    """ACAI's critic's output layer on n features. It starts at 0 for every image, so that neither the decoder nor the
    features feel it before it has learned something (measured on the head on the encoder: initialised like fc and
    reading the features as they are, it made the training images' reconstruction error jump tenfold in the first
    introspective steps, and the run stopped)."""
    layer = nn.Linear(n, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def critic_guess(head, h):
    """The critic's guesses (B,) from features h (B, n), read at RMS 1 / sqrt(n): an Adam step moves a guess by
    lr sqrt(n) at most (0.009 at n = 2,048)."""
    return head(F.rms_norm(h, h.shape[1:], eps=1e-6) / math.sqrt(h.shape[1])).squeeze(1)


class Critic(nn.Module):
    """--critic net: ACAI's critic as a network of its own, the encoder's convolutions with one output, as in ACAI
    (Berthelot et al. 2019). Its guesses then cost the encoder nothing: the head shares the encoder's features,
    which the critic's terms pull away from the codes (at --acai 0.125 the head cost the reconstructions 0.66 dB)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = trunk(cfg)
        self.head = critic_head(cfg.widths[-1] * 4 * 4)

    def forward(self, x):
        return critic_guess(self.head, self.main(x).flatten(1))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = trunk(cfg)
        self.fc = nn.Linear(cfg.widths[-1] * 4 * 4, 2 * cfg.z_dim)
        self.head_gain = min(1.0, HEAD_BASE_FEATURES / self.fc.in_features) if cfg.head_norm else None
        # --acai: how far between two images' codes the code of a decoded image lay: a head read from the encoder's
        # features, or a network of its own (Critic), which the encoder carries so that its optimiser,
        # DistributedDataParallel and checkpoints serve the critic too (Adam treats each parameter apart: the same
        # as an optimiser of its own at the same rate)
        self.critic = None
        if cfg.critic == "head":
            self.critic = critic_head(self.fc.in_features)
        elif cfg.critic == "net":
            self.critic = Critic(cfg)

    def forward(self, x, critic=False):  # x: (B, 3, S, S) in [0, 1]
        """The posterior's mu and logvar, (B, z_dim) each; critic: instead, ACAI's critic's guess for each image of
        where between two codes the code it was decoded from lay, (B,) (0: a real image; --acai)."""
        if critic and isinstance(self.critic, Critic):
            return self.critic(x)
        h = self.main(x).flatten(1)  # (B, c_last * 4 * 4)
        if self.head_gain:
            # An Adam step moves each weight of fc by about lr, so an image's logvar by up to lr times the sum of
            # its |h|: with 8,192 features, two or three early steps of a small but coherent KL gradient lift the
            # logvar of an image whose features are unusually large (a colour chart among photographs) from below
            # 4.5 to 12 or more, and its KL with exp(logvar). Normalised to RMS head_gain, every image's |h| sums
            # to the same, and a wider head moves its outputs no faster than the 2,048-feature head that was
            # measured stable (muP's output-layer scaling). docs/ALGORITHM.md, Networks.
            h = self.head_gain * F.rms_norm(h, h.shape[1:], eps=1e-6)
        if critic:
            return critic_guess(self.critic, h)
        mu, logvar = self.fc(h).chunk(2, dim=1)
        return mu, logvar

    def features(self, x, stages=FEATURE_STAGES):
        """The feature maps after the first `stages` poolings (S/2, S/4, ...): what --rec-loss features compares."""
        found = []
        for layer in self.main:
            x = layer(x)
            if isinstance(layer, (nn.AvgPool2d, BlurPool)):
                found.append(x)
                if len(found) == stages:
                    break
        return found


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.widths
        self.c_last = w[-1]
        self.fc = nn.Sequential(nn.Linear(cfg.z_dim, w[-1] * 4 * 4), nn.ReLU())
        layers = []
        for c_in, c_out in zip((w[-1],) + w[::-1][:-1], w[::-1]):  # each width in reverse order
            layers += [ResidualBlock(c_in, c_out), nn.Upsample(scale_factor=2, mode=cfg.upsample,
                                                               **UPSAMPLING[cfg.upsample])]
        layers += [ResidualBlock(w[0], w[0]), nn.Conv2d(w[0], 3, 5, padding=2)]
        self.main = nn.Sequential(*layers)

    def forward(self, z):  # z: (B, z_dim)
        h = self.fc(z).view(-1, self.c_last, 4, 4)
        return self.main(h)  # (B, 3, S, S), unbounded: clamp to [0, 1] only for display


class IntroVAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)


def reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps; eps is drawn by the caller so that steps can be replayed exactly."""
    return mu + torch.exp(0.5 * logvar) * eps


def build_model(config):
    """An IntroVAE from a ModelConfig or its dict (as stored in checkpoints)."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    return IntroVAE(cfg)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())
