"""One training run's seeded streams and its batches, shared by :func:`tbal.training.train.train_classifier`
and DUQ's training (:mod:`tbal.uncertainty`): the data on its device, a permutation per epoch, the cosine
learning rate of each step (Loshchilov & Hutter 2017) and random whole-pixel shifts of images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tbal.config import NetworkTraining, TrainConfig
from tbal.errors import TBALInputError


@dataclass
class TrainingRun:
    """One training run's data on its device and its random streams (each seeded from the run's seed)."""

    shuffle: torch.Generator  # the epoch's permutation
    shift_gen: torch.Generator  # image shifts
    shift: int  # largest shift in pixels (0: none)
    epochs: int  # the run's length (the cosine schedule's span)
    lr: float  # the cosine schedule's starting learning rate
    sample: torch.Generator  # the ``sampled`` targets' classes
    x_all: torch.Tensor  # (n, ...)
    t_cpu: torch.Tensor  # (n, K) target distributions, on the CPU (multinomial draws)
    device: torch.device
    t_all: torch.Tensor = field(init=False)  # (n, K) on the device
    argmax_all: torch.Tensor = field(init=False)  # (n,) the hard labels
    step: int = field(init=False, default=0)  # steps taken so far (the cosine schedule's position)

    def __post_init__(self) -> None:
        self.t_all = self.t_cpu.to(self.device)
        self.argmax_all = self.t_all.argmax(dim=1)

    @classmethod
    def start(
        cls,
        X32: np.ndarray,
        T: np.ndarray,
        values: NetworkTraining,
        device: torch.device,
        *,
        seeds: tuple[int, int, int],
    ) -> TrainingRun:
        """A run on prepared inputs (n, ...) and targets (n, K) with the network's training ``values``
        (:meth:`TrainConfig.for_network`), its generators seeded by ``seeds`` = (shuffle, shift, sample);
        images (n, C, H, W) are shifted by up to ``values.augment_shift``."""
        shuffle_seed, shift_seed, sample_seed = seeds
        return cls(
            shuffle=torch.Generator().manual_seed(shuffle_seed),
            shift_gen=torch.Generator().manual_seed(shift_seed),
            shift=values.augment_shift if X32.ndim == 4 else 0,
            epochs=values.epochs,
            lr=values.lr,
            sample=torch.Generator().manual_seed(sample_seed),
            x_all=torch.from_numpy(X32).to(device),  # (n, ...)
            t_cpu=torch.from_numpy(T),  # (n, K)
            device=device,
        )

    def inputs(self, index: torch.Tensor) -> torch.Tensor:
        """The batch's inputs (B, ...) for row indices (B,), each image shifted when ``shift`` > 0."""
        x = self.x_all[index.to(self.device)]
        return random_shift(x, self.shift, self.shift_gen) if self.shift > 0 else x


def epoch_batches(
    run: TrainingRun, optimizer: torch.optim.Optimizer, config: TrainConfig, perm: torch.Tensor
) -> Iterator[torch.Tensor]:
    """One epoch's batches of row indices (B,) from ``perm`` (n,), the learning rate of each step set first
    (cosine over all the run's ⌈n / batch_size⌉ · epochs steps) and the run's step counted after it."""
    n = perm.shape[0]
    total_steps = run.epochs * -(-n // config.batch_size)
    for start in range(0, n, config.batch_size):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(run.lr, run.step, total_steps)
        yield perm[start : start + config.batch_size]
        run.step += 1


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of x (B, C, H, W) by its own whole-pixel offset (dy, dx), each drawn
    uniformly from {−s, …, s} (s = ``max_shift``) with the CPU ``generator``; pixels shifted in from
    outside the image are 0 (the background of [0, 1] images). Returns (B, C, H, W) on x's device."""
    if x.ndim != 4:
        raise TBALInputError(f"random_shift expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    dy = torch.randint(0, 2 * s + 1, (b,), generator=generator).to(x.device)  # (B,) top offset
    dx = torch.randint(0, 2 * s + 1, (b,), generator=generator).to(x.device)  # (B,) left offset
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    images = torch.arange(b, device=x.device)[:, None, None, None]  # (B, 1, 1, 1)
    channels = torch.arange(c, device=x.device)[None, :, None, None]  # (1, C, 1, 1)
    return padded[images, channels, rows, cols]  # (B, C, H, W)


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """Cosine schedule without restarts (Loshchilov & Hutter 2017): lr · ½(1 + cos(π · step / total))."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total_steps))
