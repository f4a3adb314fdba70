"""Train-time methods as objectives: the loss of one batch, with optional per-epoch and per-step hooks
(:func:`tbal.training.train.train_classifier` runs them).

The train-time method (``TrainConfig.method``) is an :class:`Objective` looked up by name in
:data:`OBJECTIVES` and built once per run from a :class:`TrainContext` (the config, all training inputs and
targets, the method's own seeded generator, held-out data). It gets the model, the batch inputs and the
batch targets and returns the loss, so methods that change the inputs (mixup), the targets (label
smoothing) or keep per-sample state (CRL) fit the same slot. Two optional hooks: an objective with
``end_epoch(model, epoch)`` (:class:`EpochEndHook`) is called after every epoch (AutoLabel re-targets,
saliency mixup re-pairs), and one with ``optimizer_step(model, x, target, optimizer)``
(:class:`StepOverride`) replaces zero_grad / backward / step (SAM). Callers can add their own epoch hooks
(``train_classifier(..., epoch_hooks=[...])``; :func:`tbal.training.aum.compute_aum` records margins so).
Every method draws from its own generator, seeded after the five the reference path uses, so adding methods
changed nothing in ``vanilla`` and ``squentropy`` runs. The methods (hyperparameters in TrainConfig):

- ``vanilla``: cross-entropy alone.
- ``squentropy`` (Hui, Belkin, Wright, ICML 2023): cross-entropy + the mean squared off-class logit.
- ``label_smoothing`` (Szegedy et al. 2016): cross-entropy against (1 − ε)·t + ε/K; ``label_smoothing`` ε.
- ``mixup`` (Zhang et al., ICLR 2018): one λ ~ Beta(α, α) a batch, inputs and targets mixed with a
  random permutation of the batch; ``mixup_alpha`` α.
- ``cutmix`` (Yun et al., ICCV 2019; images only): a box of area share 1 − λ, λ ~ Beta(α, α), pasted from
  a permuted batch, targets mixed by the box's area; ``cutmix_alpha``.
- ``autolabel`` (Qin et al. 2023, arXiv 2302.11188): every training point augmented (``autolabel_augment``:
  mixup with λ ~ U, or Gaussian noise up to ``autolabel_noise`` input sd) and put in one of
  ``autolabel_buckets`` buckets by strength; target ỹ_b on the class, the rest uniform; after each epoch
  ỹ_b ← clip(ỹ_b − α·ECE_b·sign(conf_b − acc_b), acc_b, 1) from the same augmentation of held-out data
  (``validation=`` or ``autolabel_holdout`` of the training rows, which are then not trained on);
  ``autolabel_step`` α. See :mod:`tbal.training.augment`.
- ``saliency_mixup`` (Park & Caragea, ACL 2022): AUM over the epochs so far, median split into easy / hard,
  saliency |∂L/∂z|, each point mixed with its most similar and most dissimilar partner of the other half;
  loss β·L + γ·L′ + δ·L″ (``saliency_mix_weights``, λ ~ Beta(``mixup_alpha``)); plain L in epoch 1.
  See :mod:`tbal.training.aum`.
- ``crl`` (Moon et al., ICML 2020): cross-entropy + w·correctness ranking loss between the max-softmax
  confidences of batch pairs, ordered by each point's running frequency of correct predictions;
  ``crl_weight`` w.
- ``fmfp`` (Zhu et al. 2022, flat minima via SAM: Foret et al., ICLR 2021): cross-entropy, each step taken
  with the gradient at w + ρ·g/‖g‖; ``sam_rho`` ρ. Two forward / backward passes a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from tbal.config import ConfigError, TrainConfig
from tbal.errors import TBALInputError
from tbal.networks import Classifier
from tbal.training.augment import AutoLabelTargets, autolabel_augment, bucket_of, cutmix, mix, smooth_labels
from tbal.training.margins import easy_mask, eval_logits, margins, saliency, saliency_partners


@dataclass(frozen=True)
class TargetBatch:
    """The targets of one mini-batch of B rows.

    classes: (B,) int64 target class (argmax of the target row; the drawn class in ``sampled`` mode).
    probs: (B, K) float32 target distributions in ``soft`` mode, else None (the target is ``classes``).
    index: (B,) int64 rows of the training set (for methods that keep per-sample state).
    """

    classes: torch.Tensor
    probs: torch.Tensor | None
    index: torch.Tensor


@dataclass(frozen=True)
class TrainContext:
    """What a method may use beyond one batch; built once per training run.

    inputs: (n, ...) all training inputs and targets: (n, K) their target distributions, on the training
    device; rng: the method's own generator (seeded from the run's seed after the shuffling, sampling,
    dropout and shift generators); validation: held-out (inputs (m, ...), labels (m,)) on the device for
    methods that tune on them (autolabel), else None.
    """

    config: TrainConfig
    inputs: torch.Tensor
    targets: torch.Tensor
    rng: np.random.Generator
    validation: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_classes(self) -> int:
        return int(self.targets.shape[1])


class Objective(Protocol):
    """A train-time method: the loss of one mini-batch (a scalar tensor to minimise)."""

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor: ...


@runtime_checkable
class EpochEndHook(Protocol):
    """An objective that acts after every epoch (the model is in train mode and must be left so)."""

    def end_epoch(self, model: Classifier, epoch: int) -> None: ...


@runtime_checkable
class StepOverride(Protocol):
    """An objective that takes the optimiser step itself (gradients, ``optimizer.step()``) and returns the
    batch loss, instead of the default zero_grad / backward / step."""

    def optimizer_step(
        self, model: Classifier, x: torch.Tensor, target: TargetBatch, optimizer: torch.optim.Optimizer
    ) -> torch.Tensor: ...


def soft_cross_entropy(logits: torch.Tensor, target: TargetBatch) -> torch.Tensor:
    """Mean cross-entropy of logits (B, K): −(1/B) Σ_i Σ_k t_ik · log softmax(z_i)_k, with t the target
    distribution in soft mode and the one-hot row of ``target.classes`` otherwise."""
    if target.probs is None:
        return F.cross_entropy(logits, target.classes)
    return -(target.probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def target_probs(target: TargetBatch, num_classes: int) -> torch.Tensor:
    """The batch's target distributions (B, K): ``target.probs`` in soft mode, else one-hot rows."""
    if target.probs is not None:
        return target.probs
    return F.one_hot(target.classes, num_classes).float()


def _cross_entropy_to(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(1/B) Σ_i Σ_k t_ik · log softmax(z_i)_k for logits (B, K) and target distributions (B, K)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def correctness_ranking_loss(confidence: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
    """Correctness ranking loss (Moon et al., "Confidence-Aware Learning for Deep Neural Networks", ICML
    2020) over the pairs (i, i + 1 mod B) of a batch: mean max(0, −r·(κ_i − κ_j) + |f_i − f_j|) with κ the
    confidences (B,), f the correctness frequencies (B,) and r = sign(f_i − f_j): a point that was right
    more often must be more confident by at least the difference of the frequencies."""
    other_conf = torch.roll(confidence, -1)
    other_freq = torch.roll(frequency, -1)
    order = torch.sign(frequency - other_freq)
    return F.relu(-order * (confidence - other_conf) + (frequency - other_freq).abs()).mean()


def squentropy_penalty(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(1/(B·K)) Σ_i Σ_{k ≠ y_i} z_ik²: the mean over all B·K entries of the squared off-class logits
    (the target class's entry counts as 0). Squentropy (Hui, Belkin, Wright, ICML 2023) as the Colander
    paper's reference code uses it; the original paper averages over the K − 1 off-class entries instead,
    a constant factor K / (K − 1)."""
    off_class = logits.scatter(1, classes[:, None], 0.0)  # (B, K), target entries zeroed
    return off_class.square().mean()


class Vanilla:
    """Cross-entropy alone (see :func:`soft_cross_entropy`)."""

    def __init__(self, context: TrainContext | None = None) -> None:
        pass  # stateless; the context argument lets every method be built the same way

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        logits, _ = model(x)  # (B, K)
        return soft_cross_entropy(logits, target)


class Squentropy:
    """Cross-entropy + the mean squared off-class logit (:func:`squentropy_penalty`); the off-class
    entries are all classes but ``target.classes`` (the argmax of a soft row)."""

    def __init__(self, context: TrainContext | None = None) -> None:
        pass

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        logits, _ = model(x)  # (B, K)
        return soft_cross_entropy(logits, target) + squentropy_penalty(logits, target.classes)


class LabelSmoothing:
    """Cross-entropy against (1 − ε)·t + ε/K (Szegedy et al. 2016), ε = ``label_smoothing``."""

    def __init__(self, context: TrainContext) -> None:
        self.epsilon = context.config.label_smoothing

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        logits, _ = model(x)  # (B, K)
        return _cross_entropy_to(logits, smooth_labels(target_probs(target, logits.shape[1]), self.epsilon))


class Mixup:
    """Mixup (Zhang et al. 2018): one λ ~ Beta(α, α) per batch (α = ``mixup_alpha``), each row mixed with
    the row a random permutation of the batch gives it, inputs and target distributions alike."""

    def __init__(self, context: TrainContext) -> None:
        self.alpha = context.config.mixup_alpha
        self.rng = context.rng

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        partner = torch.from_numpy(self.rng.permutation(x.shape[0])).to(x.device)  # (B,)
        mixed_x, mixed_t = mix(x, target_probs(target, model.num_classes), lam, partner)
        logits, _ = model(mixed_x)
        return _cross_entropy_to(logits, mixed_t)


class CutMix:
    """CutMix (Yun et al. 2019) on images: λ ~ Beta(α, α) per batch (α = ``cutmix_alpha``), see
    :func:`tbal.training.augment.cutmix`."""

    def __init__(self, context: TrainContext) -> None:
        if context.inputs.ndim != 4:
            raise TBALInputError(
                "train.method cutmix needs images (n, C, H, W), "
                f"got inputs of shape {tuple(context.inputs.shape)}"
            )
        self.alpha = context.config.cutmix_alpha
        self.rng = context.rng

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        partner = torch.from_numpy(self.rng.permutation(x.shape[0])).to(x.device)  # (B,)
        mixed_x, mixed_t = cutmix(x, target_probs(target, model.num_classes), lam, partner, self.rng)
        logits, _ = model(mixed_x)
        return _cross_entropy_to(logits, mixed_t)


AUTOLABEL_POINTS_PER_BUCKET = 50
"""AutoLabel augments each held-out point several times (at most 20) to get about this many a bucket."""


class AutoLabel:
    """AutoLabel (Qin et al. 2023): learned target confidences for augmented data, one per distance bucket.

    Each training batch is augmented (``autolabel_augment``: mixup with λ ~ U(0, 1) folded to the dominant
    image, or Gaussian noise with σ ~ U(0, ``autolabel_noise``·sd of the inputs)); a row in bucket b gets
    the target ỹ_b on its class and (1 − ỹ_b)/(K − 1) elsewhere. The held-out points (the context's
    validation) are augmented once the same way; after each epoch :meth:`end_epoch` measures per bucket
    conf, acc and ECE of the model on them and moves ỹ_b (:class:`tbal.training.augment.AutoLabelTargets`).
    ``history`` holds ỹ after each epoch. The class a row keeps is ``target.classes`` (the argmax of a
    soft row, the drawn class in sampled mode): AutoLabel replaces the target distribution by its own.
    """

    def __init__(self, context: TrainContext) -> None:
        if context.validation is None:
            raise TBALInputError("train.method autolabel needs held-out validation inputs and labels")
        config = context.config
        self.kind = config.autolabel_augment
        self.rng = context.rng
        self.n_buckets = config.autolabel_buckets
        self.noise_scale = config.autolabel_noise * float(context.inputs.std())
        self.labels = AutoLabelTargets(self.n_buckets, context.num_classes, config.autolabel_step)
        self.history: list[np.ndarray] = []
        x_val, y_val = context.validation
        m = x_val.shape[0]
        copies = min(20, -(-AUTOLABEL_POINTS_PER_BUCKET * self.n_buckets // m))
        x_rep = x_val.repeat(copies, *([1] * (x_val.ndim - 1)))  # (copies·m, ...)
        y_rep = y_val.repeat(copies)  # (copies·m,)
        # one fixed augmentation of the held-out points: ỹ then moves with the model, not with the draws
        aug = autolabel_augment(x_rep, self.kind, self.rng, noise_scale=self.noise_scale)
        self.val_x = aug.x
        self.val_labels = y_rep[aug.primary].cpu().numpy()
        self.val_buckets = bucket_of(aug.distance, self.n_buckets).cpu().numpy()

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        aug = autolabel_augment(x, self.kind, self.rng, noise_scale=self.noise_scale)
        buckets = bucket_of(aug.distance, self.n_buckets)  # (B,)
        logits, _ = model(aug.x)
        return _cross_entropy_to(logits, self.labels.targets(target.classes[aug.primary], buckets))

    def end_epoch(self, model: Classifier, epoch: int) -> None:
        probs = F.softmax(eval_logits(model, self.val_x), dim=1).cpu().numpy()
        self.labels.update(probs, self.val_labels, self.val_buckets)
        self.history.append(self.labels.confidence.copy())


class SaliencyMixup:
    """AUM- and saliency-guided mixup (Park & Caragea 2022): after each epoch, AUM so far (the mean margin
    of every training point over the finished epochs), the median split into easy / hard, the saliency
    |softmax(z) − t| and each point's most similar and most dissimilar partner of the other half
    (:func:`tbal.training.margins.saliency_partners`). A batch's loss is β·L(x, t) + γ·L(mix with the
    similar partner) + δ·L(mix with the dissimilar one), one λ ~ Beta(``mixup_alpha``) a batch; in the
    first epoch, with no margins yet, it is L alone."""

    def __init__(self, context: TrainContext) -> None:
        config = context.config
        self.alpha = config.mixup_alpha
        self.weights = tuple(float(w) for w in config.saliency_mix_weights)
        self.rng = context.rng
        self.inputs = context.inputs
        self.classes = context.targets.argmax(dim=1)  # (n,)
        soft = config.targets == "soft"
        # partners' targets: the distributions in soft mode, else the one-hot argmax rows (hard, sampled)
        self.targets = context.targets if soft else F.one_hot(self.classes, context.num_classes).float()
        self.margin_sum = torch.zeros(self.inputs.shape[0], dtype=torch.float64, device=self.inputs.device)
        self.epochs = 0
        self.partners: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        logits, _ = model(x)
        t = target_probs(target, logits.shape[1])
        loss = _cross_entropy_to(logits, t)
        if self.partners is None:
            return loss
        beta, gamma, delta = self.weights
        lam = float(self.rng.beta(self.alpha, self.alpha))
        total = beta * loss
        for weight, partner in ((gamma, self.partners[0]), (delta, self.partners[1])):
            j = partner[target.index]  # (B,) rows of the training set
            mixed_logits, _ = model(lam * x + (1 - lam) * self.inputs[j])
            total = total + weight * _cross_entropy_to(mixed_logits, lam * t + (1 - lam) * self.targets[j])
        return total

    def end_epoch(self, model: Classifier, epoch: int) -> None:
        logits = eval_logits(model, self.inputs)  # (n, K)
        self.margin_sum += margins(logits, self.classes).double()
        self.epochs += 1
        aum = (self.margin_sum / self.epochs).cpu().numpy()
        easy = torch.from_numpy(easy_mask(aum)).to(logits.device)
        self.partners = saliency_partners(saliency(logits, self.targets), easy)


class CRL:
    """Correctness ranking loss (Moon et al. 2020): cross-entropy + w·:func:`correctness_ranking_loss`,
    w = ``crl_weight``. Every point keeps counts of how often it was seen and predicted right in the
    training forward passes (updated after its loss, so a batch ranks by the history before it)."""

    def __init__(self, context: TrainContext) -> None:
        n = context.inputs.shape[0]
        self.weight = context.config.crl_weight
        self.correct = torch.zeros(n, device=context.inputs.device)
        self.seen = torch.zeros(n, device=context.inputs.device)

    def __call__(self, model: Classifier, x: torch.Tensor, target: TargetBatch) -> torch.Tensor:
        logits, _ = model(x)  # (B, K)
        confidence = F.softmax(logits, dim=1).max(dim=1).values  # (B,)
        frequency = self.correct[target.index] / self.seen[target.index].clamp(min=1.0)  # (B,)
        loss = soft_cross_entropy(logits, target) + self.weight * correctness_ranking_loss(
            confidence, frequency
        )
        with torch.no_grad():
            self.correct[target.index] += (logits.argmax(dim=1) == target.classes).float()
            self.seen[target.index] += 1.0
        return loss


class FMFP(Vanilla):
    """Flat minima (Zhu et al. 2022) by sharpness-aware minimisation (SAM, Foret et al., ICLR 2021):
    cross-entropy, each step with the gradient taken at the worst nearby weights w + ρ·g/‖g‖₂
    (g the batch gradient, ‖·‖₂ over all parameters, ρ = ``sam_rho``), then applied at w by the optimiser
    (momentum and weight decay as usual). The second pass draws its own dropout masks and, in models with
    batch normalisation, updates the running statistics a second time."""

    def __init__(self, context: TrainContext) -> None:
        self.rho = context.config.sam_rho

    def optimizer_step(
        self, model: Classifier, x: torch.Tensor, target: TargetBatch, optimizer: torch.optim.Optimizer
    ) -> torch.Tensor:
        loss = self(model, x, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in model.parameters() if p.grad is not None]
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            scale = self.rho / (norm + 1e-12)
            ascent = [p.grad * scale for p in params]  # ε = ρ·g/‖g‖
            for p, e in zip(params, ascent, strict=True):
                p.add_(e)
        optimizer.zero_grad(set_to_none=True)
        self(model, x, target).backward()  # the gradient at w + ε
        with torch.no_grad():
            for p, e in zip(params, ascent, strict=True):
                p.sub_(e)
        optimizer.step()
        return loss.detach()


OBJECTIVES: dict[str, Callable[[TrainContext], Objective]] = {
    "vanilla": Vanilla,
    "squentropy": Squentropy,
    "label_smoothing": LabelSmoothing,
    "mixup": Mixup,
    "cutmix": CutMix,
    "autolabel": AutoLabel,
    "saliency_mixup": SaliencyMixup,
    "crl": CRL,
    "fmfp": FMFP,
}
"""Train-time methods by name; each entry makes a fresh objective for one training run from its context."""

VALIDATION_METHODS = frozenset({"autolabel"})
"""Methods that tune on held-out labeled data (``train_classifier(validation=...)`` or a hold-out)."""


def make_objective(name: str, context: TrainContext) -> Objective:
    """A fresh :class:`Objective` for the method ``name``; raises ConfigError listing the valid names."""
    check_method(name)
    return OBJECTIVES[name](context)


def check_method(name: str) -> None:
    if name not in OBJECTIVES:
        raise ConfigError(f"train.method must be one of {', '.join(OBJECTIVES)}; got {name!r}")


# ----------------------------------------------------------------------------------------------------------
# Training and prediction
