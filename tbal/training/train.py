"""Training classifiers on target distributions (hard labels are one-hot rows).

Training follows the reference runs of Vishwakarma et al. (NeurIPS 2023, 2024; ``../shared/PAPERS.md``):
SGD with momentum and weight decay, a cosine learning-rate schedule over all steps, mini-batches drawn by
a seeded permutation each epoch.

How the target distributions T (n, K) are used (``TrainConfig.targets``):

- ``hard``: cross-entropy with the class argmax_k T[i, k];
- ``soft``: cross-entropy against the distribution, −Σ_k T[i, k] · log softmax(z_i)_k;
- ``sampled``: each epoch draws one class per row from T[i] (seeded) and uses it as a hard label.

The train-time method (``TrainConfig.method``) is an objective of :mod:`tbal.training.objectives`. This
module runs the loop: seeded streams, the SGD steps, the epoch hooks; one run's streams and batches are
:mod:`tbal.training.run`, and a trained model's outputs come from :func:`tbal.predictions.predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from tbal.config import NetworkTraining, TrainConfig
from tbal.errors import TBALInputError
from tbal.networks import Classifier, init_parameters, resolve_device
from tbal.predictions import check_inputs
from tbal.training.objectives import (
    VALIDATION_METHODS,
    EpochEndHook,
    Objective,
    StepOverride,
    TargetBatch,
    TrainContext,
    check_method,
    make_objective,
)
from tbal.training.run import TrainingRun, epoch_batches

__all__ = ["one_hot", "set_input_statistics", "train_classifier"]

TARGET_ROW_TOLERANCE = 1e-3
"""Largest accepted |Σ_k T[i, k] − 1| of a target row."""


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """(n,) int labels -> (n, K) float32 one-hot target distributions."""
    out = np.zeros((y.shape[0], num_classes), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


# ----------------------------------------------------------------------------------------------------------
# Train-time methods


def train_classifier(
    model: Classifier,
    X: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | None = None,
    progress: Callable[[float], None] | None = None,
    reinitialize: bool = True,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    epoch_hooks: Sequence[Callable[[Classifier, int], None]] = (),
) -> Classifier:
    """Train ``model`` in place on prepared inputs X (n, ...) and target distributions (n, K)
    (rows sum to 1; ``config.targets`` says how they are used: hard = argmax, soft, sampled).

    The fields that depend on the network and are left None in ``config`` (epochs, lr, weight decay,
    standardisation, shifts) take the values tuned for ``model.network`` (:meth:`TrainConfig.for_network`).
    SGD(lr, momentum, weight decay) for ``epochs`` epochs of ⌈n / batch_size⌉ steps; the learning
    rate at step s of S is lr · ½(1 + cos(π s / S)). Everything random comes from ``seed``: the initial
    parameters (when ``reinitialize``, the default: a fresh classifier, as every round of the papers
    trains one), the shuffling, the ``sampled`` labels, the dropout masks and the image shifts, each from
    its own generator.

    Two additions to the reference training, both off except for LeNet-5:
    ``config.standardize_inputs`` sets the model's input standardisation to the mean and standard
    deviation of all values of X (one scalar each, label-free; only when ``reinitialize``), so the network
    sees inputs of mean 0 and sd 1 (LeCun et al. 1998, "Efficient BackProp"); predictions apply the same
    statistics, which are saved with the model. ``config.augment_shift`` = s > 0 translates every training
    image (n, C, H, W inputs only; feature vectors are left alone) by its own random whole-pixel offset
    in [−s, s]² at each step (:func:`random_shift`), the usual augmentation for small image data sets.
    Measured on MNIST (LeNet-5, 200 random labels, 3 seeds, 50 epochs, lr 0.05): accuracy 86.8% with
    neither, 92.0% with shifts of 2 pixels, 93.6% with shifts, standardisation and 100 epochs; at 500
    labels 92.5% with neither, 96.1% with both and 100 epochs (bench/tune_mnist.py).
    On the CPU the same seed gives bit-identical weights. ``device``: None uses ``config.device``; the
    model is moved there. ``progress(fraction)`` is called after each epoch. Returns the model in eval mode.

    ``validation``: held-out (inputs (m, ...), int labels (m,)) for the methods that tune on them
    (``autolabel``); without it they hold out ``config.autolabel_holdout`` of the rows, which are then not
    trained on. Other methods ignore it. ``epoch_hooks``: each is called as hook(model, epoch) after every
    epoch (model in train mode; it must leave it so), e.g. :class:`tbal.training.aum.AUMRecorder`.
    """
    X32, T = _check_training_inputs(model, X, targets)
    check_method(config.method)
    target_device = device if device is not None else resolve_device(config.device)
    values = config.for_network(model.network, model.input_shape).for_rows(len(X), config.batch_size)
    run, objective = _set_up(model, X32, T, config, values, seed, target_device, reinitialize, validation)
    hooks: list[Callable[[Classifier, int], None]] = list(epoch_hooks)
    if isinstance(objective, EpochEndHook):
        hooks.insert(0, objective.end_epoch)
    _train_epochs(model, objective, run, config, values, hooks, progress)
    return model


def _set_up(
    model: Classifier,
    X32: np.ndarray,
    T: np.ndarray,
    config: TrainConfig,
    values: NetworkTraining,
    seed: int,
    target_device: torch.device,
    reinitialize: bool,
    validation: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[TrainingRun, Objective]:
    """The run's random streams (one seed each, from ``seed``), the rows held out for the methods that
    tune on them, the model's initial parameters and device, and the objective of ``config.method``."""
    # generate_state(n) is prefix-stable: adding the shift and method seeds kept the earlier ones as they were
    init_seed, shuffle_seed, sample_seed, dropout_seed, shift_seed, method_seed = (
        int(s) for s in np.random.SeedSequence(seed).generate_state(6)
    )
    method_rng = np.random.default_rng(method_seed)
    held_out: tuple[np.ndarray, np.ndarray] | None = None
    if config.method in VALIDATION_METHODS:
        X32, T, held_out = _held_out_data(model, X32, T, validation, config.autolabel_holdout, method_rng)
    if reinitialize:
        init_parameters(model, init_seed)
        if values.standardize_inputs:
            set_input_statistics(model, X32)
    model.to(target_device)
    run = TrainingRun.start(X32, T, values, target_device, seeds=(shuffle_seed, shift_seed, sample_seed))
    model.set_dropout_generator(torch.Generator(device=target_device).manual_seed(dropout_seed))
    val_tensors = None
    if held_out is not None:
        val_tensors = (
            torch.from_numpy(held_out[0]).to(target_device),
            torch.from_numpy(held_out[1]).to(target_device),
        )
    context = TrainContext(config, run.x_all, run.t_all, method_rng, val_tensors)
    return run, make_objective(config.method, context)


def _train_epochs(
    model: Classifier,
    objective: Objective,
    run: TrainingRun,
    config: TrainConfig,
    values: NetworkTraining,
    hooks: Sequence[Callable[[Classifier, int], None]],
    progress: Callable[[float], None] | None,
) -> None:
    """SGD over ``values.epochs`` epochs, the hooks and ``progress`` after each; the model left in eval
    mode and without its dropout generator, whatever happens."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=values.lr, momentum=config.momentum, weight_decay=values.weight_decay
    )
    model.train()
    try:
        for epoch in range(values.epochs):
            loss = _train_epoch(model, objective, optimizer, run, config, epoch)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(
                    f"training diverged: the loss became {float(loss.detach())} in epoch {epoch + 1}; "
                    f"lower train.lr (now {values.lr:g})"
                )
            for hook in hooks:
                hook(model, epoch)
            if progress is not None:
                progress((epoch + 1) / values.epochs)
    finally:
        model.set_dropout_generator(None)
    model.eval()


def _train_epoch(
    model: Classifier,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    run: TrainingRun,
    config: TrainConfig,
    epoch: int,
) -> torch.Tensor:
    """One epoch of ⌈n / batch_size⌉ SGD steps over a fresh permutation (cosine learning rate over all the
    run's steps); the last step's loss."""
    step_override = objective if isinstance(objective, StepOverride) else None
    soft = config.targets == "soft"
    perm = torch.randperm(run.x_all.shape[0], generator=run.shuffle).to(run.device)  # (n,)
    classes_all = run.argmax_all
    if config.targets == "sampled":
        classes_all = torch.multinomial(run.t_cpu, 1, generator=run.sample)[:, 0].to(run.device)
    loss = torch.zeros(())
    for index in epoch_batches(run, optimizer, config, perm):  # (B,)
        batch = TargetBatch(classes=classes_all[index], probs=run.t_all[index] if soft else None, index=index)
        x = run.inputs(index)  # (B, ...)
        if step_override is None:
            loss = objective(model, x, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            loss = step_override.optimizer_step(model, x, batch, optimizer)
    return loss


def _held_out_data(
    model: Classifier,
    X32: np.ndarray,
    T: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(training inputs, training targets, (held-out inputs, held-out labels)): the given validation data
    after checks, or a random ``fraction`` of the rows (at least one; one row at least stays for training)
    with the argmax of their targets as labels."""
    if validation is not None:
        X_val = check_inputs(model, validation[0])
        y_val = np.asarray(validation[1])
        if (
            y_val.shape != (X_val.shape[0],)
            or not np.issubdtype(y_val.dtype, np.integer)
            or X_val.shape[0] == 0
        ):
            raise TBALInputError(
                f"expected validation labels as ({X_val.shape[0]},) integers for {X_val.shape[0]} inputs, "
                f"got shape {y_val.shape}, dtype {y_val.dtype}"
            )
        if y_val.min() < 0 or y_val.max() >= model.num_classes:
            raise TBALInputError(
                f"expected validation labels in [0, {model.num_classes}), got {y_val.min()}..{y_val.max()}"
            )
        return X32, T, (X_val, y_val.astype(np.int64))
    n = X32.shape[0]
    n_held = max(1, round(fraction * n))
    if n_held >= n:
        raise TBALInputError(f"autolabel holds out {n_held} of {n} labeled points and would train on none")
    order = rng.permutation(n)
    held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])
    return X32[kept], T[kept], (X32[held], T[held].argmax(axis=1).astype(np.int64))


def set_input_statistics(model: Classifier, X: np.ndarray) -> None:
    """Set the model's input standardisation to the mean and sd of all values of X (sd 1 if X is
    constant), computed in float64."""
    mean = float(X.mean(dtype=np.float64))
    std = float(X.std(dtype=np.float64))
    with torch.no_grad():
        model.input_mean.fill_(mean)
        model.input_std.fill_(std if std > 1e-8 else 1.0)


def _check_training_inputs(
    model: Classifier, X: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    X32 = check_inputs(model, X)
    n, k = X32.shape[0], model.num_classes
    if n == 0:
        raise TBALInputError("training needs at least one labeled point, got none")
    if not np.isfinite(X32).all():
        raise TBALInputError("expected finite inputs X, got NaN or inf")
    if not isinstance(targets, np.ndarray) or targets.shape != (n, k):
        shape = targets.shape if isinstance(targets, np.ndarray) else type(targets).__name__
        raise TBALInputError(f"expected targets of shape ({n}, {k}) (one distribution a row), got {shape}")
    T = np.array(targets, dtype=np.float32, order="C", copy=True)  # (n, K), writable for torch
    if not np.isfinite(T).all() or (T < 0).any():
        raise TBALInputError("expected targets as non-negative finite probabilities, got NaN, inf or < 0")
    off = np.abs(T.sum(axis=1, dtype=np.float64) - 1.0)
    if off.max() > TARGET_ROW_TOLERANCE:
        row = int(np.argmax(off))
        raise TBALInputError(
            f"expected target rows summing to 1 (tolerance {TARGET_ROW_TOLERANCE:g}), "
            f"got row {row} summing to {T[row].sum():.6g}"
        )
    return X32, T
