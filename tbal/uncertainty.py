"""Uncertainty-aware classifiers: MC Dropout, SNGP and DUQ, each wrapping one of :mod:`tbal.models`'
networks (the backbone) and keeping the :class:`~tbal.models.Classifier` interface.

Every wrapper's eval-mode forward pass returns its uncertainty-aware outputs as the logits, so that
:func:`tbal.predictions.predict`, the confidence functions, the thresholds and :mod:`tbal.evaluation` use
them unchanged:

- :class:`MCDropoutClassifier` (Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016):
  logits = log p̄, p̄ = (1/T) Σ_t softmax(z_t) over T passes with dropout on; max-softmax = max p̄.
- :class:`SNGPClassifier` (Liu et al., "Simple and Principled Uncertainty Estimation with Deterministic
  Deep Learning via Distance Awareness", NeurIPS 2020): spectral-normalised hidden layers, a random-feature
  Gaussian-process output layer, and (once :func:`fit_sngp_covariance` has run) the mean-field logits
  z / √(1 + π/8 · σ²(x)) with the Laplace posterior variance σ²(x).
- :class:`DUQClassifier` (van Amersfoort et al., "Uncertainty Estimation Using a Single Deep Deterministic
  Neural Network", ICML 2020): logits = log K_c(x), the log RBF kernel values to one centroid per class;
  the model's own confidence is max_c K_c = exp(max logit) (:class:`tbal.confidence.kernel.KernelConfidence`),
  which falls towards 0 far from the training data, where a softmax need not.

:func:`build_uncertainty_model` wraps a backbone (``ModelConfig.uncertainty``; :func:`tbal.models.build_model`
calls it) and :func:`train_uncertainty_model` trains any of them: :func:`tbal.training.train.train_classifier`
for MC Dropout and SNGP (then the SNGP covariance pass), DUQ's own loss (:func:`train_duq`) for DUQ.

Why one module of about 550 lines: each method's wrapper, its loss and its training pass belong together
and are read together; the three share the wrapping and the training entry point. A fourth method would
be the time to split it by method. (The networks it wraps are :mod:`tbal.networks`, below it, so that
:mod:`tbal.models` can build a wrapped model without an import cycle.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tbal.config import ConfigError, ModelConfig, TrainConfig
from tbal.errors import TBALInputError
from tbal.networks import Classifier, ResNet, SeededDropout, init_parameters, resolve_device
from tbal.training.run import TrainingRun, epoch_batches
from tbal.training.train import set_input_statistics, train_classifier

__all__ = [
    "DUQClassifier",
    "MCDropoutClassifier",
    "RBFCentroids",
    "SNGPClassifier",
    "SpectralNorm",
    "apply_spectral_norm",
    "build_uncertainty_model",
    "fit_sngp_covariance",
    "mc_dropout_passes",
    "train_duq",
    "train_uncertainty_model",
]

MEAN_FIELD_FACTOR = math.pi / 8.0
"""λ of the mean-field approximation E[softmax(z)] ≈ softmax(z / √(1 + λσ²)) (Liu et al. 2020, eq. 10)."""


# ----------------------------------------------------------------------------------------------------------
# MC Dropout


class MCDropoutClassifier(Classifier):
    """MC Dropout over a backbone that has dropout (p > 0): training is the backbone's; in eval mode the
    forward pass runs T = ``passes`` passes with dropout on (batch norm stays in eval mode) and returns
    logits = log p̄ with p̄ = (1/T) Σ_t softmax(z_t), and the features of a pass without dropout.

    The masks come from a generator seeded with ``mc_seed`` at every forward call, so a batch's output is
    reproducible. For the ResNet, whose only dropout sits before the output layer, the T passes share one
    backbone pass (only the head is repeated), which costs T small matrix products instead of T networks.
    """

    def __init__(self, backbone: Classifier, passes: int, mc_seed: int = 0) -> None:
        super().__init__()
        if not any(isinstance(m, SeededDropout) and m.p > 0 for m in backbone.modules()):
            raise ConfigError("MC Dropout needs a backbone with dropout > 0 (set model.dropout, e.g. 0.3)")
        self.backbone = backbone
        self.head = backbone.head  # the output layer, so init_parameters gives it the output gain
        self.passes = passes
        self.mc_seed = mc_seed
        self.num_classes = backbone.num_classes
        self.feature_dim = backbone.feature_dim
        self.input_shape = backbone.input_shape
        self.network = backbone.network
        self.relu = backbone.relu

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.standardize(x)
        if self.training:
            return self.backbone(x)
        log_probs, features = mc_dropout_passes(self.backbone, x, self.passes, self.mc_seed)
        return log_probs.logsumexp(dim=0) - math.log(self.passes), features  # log p̄ (n, K)

    def deterministic_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's logits without dropout (in eval mode): the network that is trained, at 1/T of
        the cost of the T-pass prediction."""
        return self.backbone(self.standardize(x))[0]


def mc_dropout_passes(
    backbone: Classifier, x: torch.Tensor, passes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, n, K) log-softmax of T dropout passes over standardised inputs x, and (n, d) features of the
    pass without dropout. Dropout layers are switched on (seeded masks) and restored afterwards."""
    dropouts = [m for m in backbone.modules() if isinstance(m, SeededDropout)]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    saved = [(m.training, m.generator) for m in dropouts]
    try:
        _, features = backbone(x)  # dropout still off: the deterministic features
        for m in dropouts:
            m.train()
            m.generator = generator
        if isinstance(backbone, ResNet):  # features → dropout → head: repeat only the head
            outs = [backbone.head(backbone.dropout(features)) for _ in range(passes)]
        else:
            outs = [backbone(x)[0] for _ in range(passes)]
    finally:
        for m, (training, gen) in zip(dropouts, saved, strict=True):
            m.train(training)
            m.generator = gen
    return torch.stack(outs).log_softmax(dim=-1), features


# ----------------------------------------------------------------------------------------------------------
# SNGP


class SpectralNorm(nn.Module):
    """A linear or conv layer whose weight is divided by max(1, σ̂ / c) before use (Liu et al. 2020,
    eq. 7), so its spectral norm is at most c; σ̂ is the largest singular value of the weight reshaped to
    (out, in·kh·kw), estimated by one power iteration per training step (Miyato et al., "Spectral
    Normalization for GANs", ICLR 2018). For a conv layer this bounds the reshaped kernel, which bounds the
    conv operator's norm up to a factor √(kh·kw) (Tsuzuku et al. 2018). The power-iteration vector ``u``
    is a buffer, filled from the model's seed by :func:`tbal.models.init_parameters`."""

    u: torch.Tensor

    def __init__(self, layer: nn.Conv2d | nn.Linear, bound: float) -> None:
        super().__init__()
        self.layer = layer
        self.bound = float(bound)
        self.register_buffer("u", torch.empty(layer.weight.shape[0]))

    def init_from_generator(self, generator: torch.Generator) -> None:
        u = torch.randn(self.u.shape, generator=generator)
        self.u.copy_(u / u.norm().clamp_min(1e-12))

    def sigma(self) -> torch.Tensor:
        """σ̂ = uᵀ W v with v = Wᵀu / ‖Wᵀu‖; in training mode u takes one power-iteration step first.
        Gradients flow through W only (u, v are constants), as in Miyato et al."""
        w = self.layer.weight.reshape(self.layer.weight.shape[0], -1)  # (out, in·kh·kw)
        with torch.no_grad():
            u = self.u
            v = F.normalize(w.t() @ u, dim=0)
            if self.training:
                u = F.normalize(w @ v, dim=0)
                v = F.normalize(w.t() @ u, dim=0)
                self.u.copy_(u)
        return u @ w @ v

    def normalized_weight(self) -> torch.Tensor:
        factor = torch.clamp(self.sigma() / self.bound, min=1.0)
        return self.layer.weight / factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.normalized_weight()
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, self.layer.bias)
        return F.linear(x, weight, self.layer.bias)


def apply_spectral_norm(module: nn.Module, bound: float, skip: tuple[nn.Module, ...] = ()) -> None:
    """Replace, in place and recursively, every nn.Conv2d / nn.Linear child of ``module`` (except those in
    ``skip``) by :class:`SpectralNorm` of it."""
    for name, child in list(module.named_children()):
        if any(child is s for s in skip):
            continue
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, SpectralNorm(child, bound))
        else:
            apply_spectral_norm(child, bound, skip)


class RandomFeatureGP(nn.Module):
    """Random Fourier features of an RBF kernel (Rahimi & Recht 2007; the output layer of Liu et al. 2020):
    φ(h) = √(2/D) · cos(W·h / ℓ + b), W ~ N(0, 1) (d × D) and b ~ U(0, 2π) fixed, so that
    φ(h)ᵀφ(h') ≈ exp(−‖h − h'‖² / (2ℓ²)), ℓ = ``length_scale``. The features h are not normalised: the
    distances between them are what the spectral-normalised layers preserve (a layer norm here, tried
    first, mapped far-away inputs onto the data's directions: on a 2-d toy the posterior variance 6 units
    away from the data was 1.5× the variance on it, 2.1× without). Holds the Laplace covariance (D × D)."""

    projection: torch.Tensor
    offset: torch.Tensor
    covariance: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, in_dim: int, num_features: int, length_scale: float) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.num_features = num_features
        self.scale = float(length_scale)
        self.register_buffer("projection", torch.empty(in_dim, num_features))
        self.register_buffer("offset", torch.empty(num_features))
        self.register_buffer("covariance", torch.empty(num_features, num_features))
        self.register_buffer("fitted", torch.empty((), dtype=torch.bool))

    def init_from_generator(self, generator: torch.Generator) -> None:
        self.projection.copy_(torch.randn(self.projection.shape, generator=generator))
        self.offset.copy_(torch.rand(self.offset.shape, generator=generator) * 2.0 * math.pi)
        self.covariance.copy_(torch.eye(self.num_features))
        self.fitted.fill_(False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return math.sqrt(2.0 / self.num_features) * torch.cos(h @ self.projection / self.scale + self.offset)


class SNGPClassifier(Classifier):
    """SNGP (Liu et al. 2020): the backbone's hidden layers spectral-normalised (bound c), its output layer
    replaced by a random-feature GP: logits = β·φ(h) + b, β trained by the usual loss (the posterior mode).
    After training, :func:`fit_sngp_covariance` sets the Laplace covariance Σ of β; then the eval-mode
    logits are z / √(1 + π/8 · φᵀΣφ) (mean field). Features: the backbone's penultimate features h."""

    def __init__(self, backbone: Classifier, config: ModelConfig) -> None:
        super().__init__()
        head = backbone.head  # every tbal network has an nn.Linear output layer named head
        assert isinstance(head, nn.Module)
        apply_spectral_norm(backbone, config.sngp_norm_bound, skip=(head,))
        backbone.head = nn.Identity()  # the GP output layer below replaces it
        self.backbone = backbone
        self.gp = RandomFeatureGP(backbone.feature_dim, config.sngp_features, config.sngp_length_scale)
        self.head = nn.Linear(config.sngp_features, backbone.num_classes)
        self.ridge = config.sngp_ridge
        self.num_classes = backbone.num_classes
        self.feature_dim = backbone.feature_dim
        self.input_shape = backbone.input_shape
        self.network = backbone.network
        self.relu = backbone.relu

    def random_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ (n, D), h (n, d)) of prepared inputs x."""
        _, h = self.backbone(self.standardize(x))
        return self.gp(h), h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi, h = self.random_features(x)
        logits = self.head(phi)  # (n, K) posterior-mode logits
        if self.training or not bool(self.gp.fitted):
            return logits, h
        variance = ((phi @ self.gp.covariance) * phi).sum(dim=1, keepdim=True)  # (n, 1) φᵀΣφ
        return logits / torch.sqrt(1.0 + MEAN_FIELD_FACTOR * variance), h


@torch.no_grad()
def fit_sngp_covariance(
    model: SNGPClassifier, X: np.ndarray, *, batch_size: int = 512, device: torch.device | None = None
) -> SNGPClassifier:
    """Laplace covariance of the GP output weights from one pass over the training inputs X (Liu et al.
    2020, eq. 9): Σ⁻¹ = s·I + Σ_i p̂_i(1 − p̂_i) φ_i φ_iᵀ, with s = ``model.ridge`` (prior precision) and
    p̂_i the predicted class's probability (one covariance shared by the classes, a simplification of
    the paper's per-class matrices). Runs in eval mode; sets ``model.gp.covariance`` and ``fitted``."""
    if not isinstance(model, SNGPClassifier):
        raise TBALInputError(f"expected an SNGPClassifier, got {type(model).__name__}")
    device = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    d = model.gp.num_features
    precision = torch.eye(d, dtype=torch.float64) * model.ridge
    for start in range(0, X.shape[0], batch_size):
        batch = np.ascontiguousarray(X[start : start + batch_size], dtype=np.float32)
        xb = torch.from_numpy(batch).to(device)
        phi, _ = model.random_features(xb)  # (B, D)
        p = model.head(phi).softmax(dim=1).max(dim=1).values  # (B,)
        weighted = phi * (p * (1.0 - p))[:, None]
        precision += (weighted.t() @ phi).double().cpu()
    covariance = torch.linalg.inv(precision)
    model.gp.covariance.copy_(covariance.float())
    model.gp.fitted.fill_(True)
    model.train(was_training)
    return model


# ----------------------------------------------------------------------------------------------------------
# DUQ


class RBFCentroids(nn.Module):
    """DUQ's output layer (van Amersfoort et al. 2020): per class c a matrix W_c (m × d) and a centroid e_c
    (m,); K_c(h) = exp(−‖W_c h − e_c‖² / (2·m·σ²)) (the squared distance averaged over the m embedding
    dimensions). Centroids are exponential moving averages of their class's embeddings (:meth:`update`),
    kept as sums and counts (buffers), e_c = sums_c / counts_c."""

    weight: torch.Tensor
    sums: torch.Tensor
    counts: torch.Tensor

    INITIAL_COUNT = 13.0
    """Initial per-class count of the moving averages; the centroids start at N(0, 1) draws."""

    def __init__(self, in_dim: int, num_classes: int, embedding: int, length_scale: float, gamma: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(embedding, num_classes, in_dim))  # (m, K, d)
        self.register_buffer("sums", torch.empty(embedding, num_classes))  # (m, K)
        self.register_buffer("counts", torch.empty(num_classes))  # (K,)
        self.length_scale = float(length_scale)
        self.gamma = float(gamma)

    @torch.no_grad()
    def init_from_generator(self, generator: torch.Generator) -> None:
        bound = math.sqrt(3.0 / self.weight.shape[2])  # variance 1/d, as the output layers of tbal.models
        self.weight.copy_(torch.empty(self.weight.shape).uniform_(-bound, bound, generator=generator))
        self.counts.fill_(self.INITIAL_COUNT)
        self.sums.copy_(torch.randn(self.sums.shape, generator=generator) * self.INITIAL_COUNT)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        """(n, d) → (n, m, K): W_c h for every class."""
        return torch.einsum("nd,mkd->nmk", h, self.weight)

    def log_kernel(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(n, m, K) → (n, K) log K_c = −mean_m (W_c h − e_c)² / (2σ²)."""
        centroids = self.sums / self.counts  # (m, K)
        return -(embeddings - centroids).square().mean(dim=1) / (2.0 * self.length_scale**2)

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, targets: torch.Tensor) -> None:
        """counts_c ← γ·counts_c + (1 − γ)·Σ_i y_ic; sums_c ← γ·sums_c + (1 − γ)·Σ_i y_ic·W_c h_i, with
        targets y (n, K) one-hot rows (or distributions: an item counts towards each class by its share)."""
        g = self.gamma
        self.counts.mul_(g).add_((1.0 - g) * targets.sum(dim=0))
        self.sums.mul_(g).add_((1.0 - g) * torch.einsum("nmk,nk->mk", embeddings, targets))


class DUQClassifier(Classifier):
    """DUQ (van Amersfoort et al. 2020): backbone features h → :class:`RBFCentroids`; logits = log K_c(h)
    (≤ 0), features = h. Train with :func:`train_duq` (binary cross-entropy on K, gradient penalty,
    centroid updates); the model's confidence is max_c K_c."""

    def __init__(self, backbone: Classifier, config: ModelConfig) -> None:
        super().__init__()
        backbone.head = nn.Identity()
        self.backbone = backbone
        self.rbf = RBFCentroids(
            backbone.feature_dim,
            backbone.num_classes,
            config.duq_embedding,
            config.duq_length_scale,
            config.duq_gamma,
        )
        self.num_classes = backbone.num_classes
        self.feature_dim = backbone.feature_dim
        self.input_shape = backbone.input_shape
        self.network = backbone.network
        self.relu = backbone.relu

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log K (n, K), features h (n, d), embeddings (n, m, K)) of prepared inputs x."""
        _, h = self.backbone(self.standardize(x))
        embeddings = self.rbf.embed(h)
        return self.rbf.log_kernel(embeddings), h, embeddings

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_k, h, _ = self.embed(x)
        return log_k, h


def duq_loss(log_kernel: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every class's kernel value against the target (van Amersfoort et al.
    2020): −mean_{i,c} [y_ic log K_ic + (1 − y_ic) log(1 − K_ic)], from log K for stability."""
    log_not = torch.log1p(-log_kernel.exp().clamp(max=1.0 - 1e-6))  # log(1 − K)
    return -(targets * log_kernel + (1.0 - targets) * log_not).mean()


def gradient_penalty(x: torch.Tensor, log_kernel: torch.Tensor) -> torch.Tensor:
    """Two-sided penalty mean_i (‖∇_x Σ_c K_c(x_i)‖² − 1)² (van Amersfoort et al. 2020, eq. 5), which keeps
    the feature map sensitive to input changes (no feature collapse); x must require gradients."""
    (grad,) = torch.autograd.grad(log_kernel.exp().sum(), x, create_graph=True)
    return (grad.flatten(1).square().sum(dim=1) - 1.0).square().mean()


def train_duq(
    model: DUQClassifier,
    X: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    gradient_penalty_weight: float,
    device: torch.device | None = None,
    progress: Callable[[float], None] | None = None,
    epoch_hooks: Sequence[Callable[[Classifier, int], None]] = (),
) -> DUQClassifier:
    """Train DUQ on prepared inputs X (n, ...) and target distributions (n, K) (``config.targets``: hard =
    argmax, soft = the distributions as the per-class BCE targets, sampled = a class drawn each epoch).
    Loss = BCE on K + λ·gradient penalty (λ = ``gradient_penalty_weight``); after every step the batch's
    embeddings update the centroids. Optimiser, schedule, shuffling, standardisation and shifts as
    :func:`tbal.training.train.train_classifier` (SGD, momentum, weight decay, cosine learning rate).
    ``epoch_hooks``: each is called as hook(model, epoch) after every epoch, as in train_classifier."""
    if config.method != "vanilla":
        raise ConfigError(
            f"DUQ trains with its own loss: train.method must be 'vanilla', not {config.method!r}"
        )
    X32, T = _check_targets(model, X, targets)
    target_device = device if device is not None else resolve_device(config.device)
    init_seed, shuffle_seed, sample_seed, _, shift_seed = (
        int(s) for s in np.random.SeedSequence(seed).generate_state(5)
    )
    values = config.for_network(model.network, model.input_shape).for_rows(len(X), config.batch_size)
    init_parameters(model, init_seed)
    if values.standardize_inputs:
        set_input_statistics(model, X32)
    model.to(target_device)
    run = TrainingRun.start(X32, T, values, target_device, seeds=(shuffle_seed, shift_seed, sample_seed))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=values.lr, momentum=config.momentum, weight_decay=values.weight_decay
    )
    model.train()
    for epoch in range(values.epochs):
        loss = _duq_epoch(model, optimizer, run, config, gradient_penalty_weight)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"DUQ training diverged in epoch {epoch + 1}; lower train.lr")
        for hook in epoch_hooks:
            hook(model, epoch)
        if progress is not None:
            progress((epoch + 1) / values.epochs)
    model.eval()
    return model


def _duq_epoch(
    model: DUQClassifier,
    optimizer: torch.optim.Optimizer,
    run: TrainingRun,
    config: TrainConfig,
    gradient_penalty_weight: float,
) -> torch.Tensor:
    """One epoch of DUQ steps over a fresh permutation (drawn on the CPU); the last step's loss."""
    perm = torch.randperm(run.t_cpu.shape[0], generator=run.shuffle)  # (n,)
    epoch_targets = _duq_epoch_targets(run.t_cpu, config.targets, run.sample)  # (n, K)
    loss = torch.zeros(())
    for index in epoch_batches(run, optimizer, config, perm):  # (B,)
        y = epoch_targets[index].to(run.device)  # (B, K)
        loss = _duq_step(model, optimizer, run.inputs(index), y, gradient_penalty_weight)
    return loss


def _duq_epoch_targets(t_cpu: torch.Tensor, targets: str, sample_gen: torch.Generator) -> torch.Tensor:
    """(n, K) BCE targets of one epoch: the distributions (soft), or one-hot rows of the argmax (hard) or
    of a class drawn per row from its distribution (sampled)."""
    if targets == "soft":
        return t_cpu
    if targets == "sampled":
        classes = torch.multinomial(t_cpu, 1, generator=sample_gen)[:, 0]
    else:
        classes = t_cpu.argmax(dim=1)
    return F.one_hot(classes, t_cpu.shape[1]).float()


def _duq_step(
    model: DUQClassifier,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    gradient_penalty_weight: float,
) -> torch.Tensor:
    """One SGD step on BCE + λ·gradient penalty, then the batch's embeddings update the centroids."""
    x = x.requires_grad_(gradient_penalty_weight > 0)
    log_k, _, embeddings = model.embed(x)
    loss = duq_loss(log_k, y)
    if gradient_penalty_weight > 0:
        loss = loss + gradient_penalty_weight * gradient_penalty(x, log_k)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.rbf.update(embeddings.detach(), y)
    return loss


def _check_targets(model: Classifier, X: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(X, np.ndarray) or tuple(X.shape[1:]) != tuple(model.input_shape) or X.shape[0] == 0:
        shape = X.shape if isinstance(X, np.ndarray) else type(X).__name__
        expected = ", ".join(map(str, model.input_shape))
        raise TBALInputError(f"expected X of shape (n ≥ 1, {expected}), got {shape}")
    n, k = X.shape[0], model.num_classes
    if not isinstance(targets, np.ndarray) or targets.shape != (n, k):
        raise TBALInputError(f"expected targets of shape ({n}, {k})")
    T = np.array(targets, dtype=np.float32, copy=True)
    if (T < 0).any() or np.abs(T.sum(axis=1) - 1.0).max() > 1e-3:
        raise TBALInputError("expected target rows of non-negative probabilities summing to 1")
    return np.ascontiguousarray(X, dtype=np.float32).copy(), T


# ----------------------------------------------------------------------------------------------------------
# Building and training


def build_uncertainty_model(backbone: Classifier, config: ModelConfig) -> Classifier:
    """Wrap ``backbone`` as ``config.uncertainty`` says (``none`` returns it unchanged). Called by
    :func:`tbal.models.build_model` on the meta device, before the parameters are filled."""
    if config.uncertainty == "none":
        return backbone
    if config.uncertainty == "mc-dropout":
        return MCDropoutClassifier(backbone, config.mc_passes)
    if config.uncertainty == "sngp":
        return SNGPClassifier(backbone, config)
    if config.uncertainty == "duq":
        return DUQClassifier(backbone, config)
    raise ConfigError(f"model.uncertainty must be none, mc-dropout, sngp or duq; got {config.uncertainty!r}")


def train_uncertainty_model(
    model: Classifier,
    X: np.ndarray,
    targets: np.ndarray,
    train_config: TrainConfig,
    model_config: ModelConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    progress: Callable[[float], None] | None = None,
    epoch_hooks: Sequence[Callable[[Classifier, int], None]] = (),
) -> Classifier:
    """Train any classifier, uncertainty-aware or not: DUQ with :func:`train_duq`; the others with
    :func:`tbal.training.train.train_classifier`, followed for SNGP by :func:`fit_sngp_covariance` on X.
    ``epoch_hooks`` are called after every epoch (e.g. :class:`tbal.training.aum.AUMRecorder`)."""
    if isinstance(model, DUQClassifier):
        return train_duq(
            model,
            X,
            targets,
            train_config,
            seed=seed,
            gradient_penalty_weight=model_config.duq_gradient_penalty,
            device=device,
            progress=progress,
            epoch_hooks=epoch_hooks,
        )
    train_classifier(
        model,
        X,
        targets,
        train_config,
        seed=seed,
        device=device,
        progress=progress,
        epoch_hooks=epoch_hooks,
    )
    if isinstance(model, SNGPClassifier):
        fit_sngp_covariance(model, X)
    return model
