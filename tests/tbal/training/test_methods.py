"""The train-time methods beyond vanilla / squentropy: each mechanism on a small synthetic problem.

Label smoothing, mixup, CutMix, AutoLabel (tbal.training.augment), AUM and saliency-guided mixup
(tbal.training.aum), CRL and FMFP (SAM), the hooks of train_classifier, and choosing a method from the
command.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tbal.cli import build_parser, config_from_args, main
from tbal.config import ConfigError, ModelConfig, TrainConfig
from tbal.errors import TBALInputError
from tbal.models import Classifier, build_model
from tbal.predictions import predict
from tbal.training.augment import AutoLabelTargets, autolabel_augment, bucket_of, cutmix, mix, smooth_labels
from tbal.training.aum import AUMRecorder, compute_aum, likely_mislabeled
from tbal.training.margins import easy_mask, margins, saliency, saliency_partners
from tbal.training.objectives import (
    CRL,
    FMFP,
    AutoLabel,
    Mixup,
    SaliencyMixup,
    TargetBatch,
    TrainContext,
    correctness_ranking_loss,
)
from tbal.training.train import one_hot, train_classifier

CPU = torch.device("cpu")


def _blobs(
    n: int, k: int = 3, d: int = 10, seed: int = 0, scale: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(100).normal(scale=scale, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def _mlp(d: int = 10, k: int = 3, hidden: tuple[int, ...] = (32,)) -> Classifier:
    return build_model(ModelConfig(name="mlp", hidden=hidden), (d,), k)


def _config(**changes: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 20, "lr": 0.05, "weight_decay": 0.0, "device": "cpu"}
    base.update(changes)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _context(
    X: np.ndarray,
    y: np.ndarray,
    k: int,
    config: TrainConfig,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> TrainContext:
    targets = torch.from_numpy(one_hot(y, k))
    return TrainContext(config, torch.from_numpy(X), targets, np.random.default_rng(0), validation)


def _batch(y: np.ndarray, index: np.ndarray | None = None) -> TargetBatch:
    idx = torch.arange(len(y)) if index is None else torch.from_numpy(index)
    return TargetBatch(classes=torch.from_numpy(y).long(), probs=None, index=idx)


# ---------------------------------------------------------------------------------------- label smoothing


def test_smooth_labels_known_values() -> None:
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    out = smooth_labels(t, 0.2)
    torch.testing.assert_close(out, torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.45, 0.45, 0.05, 0.05]]))
    with pytest.raises(TBALInputError, match=r"ε in \[0, 1\)"):
        smooth_labels(t, 1.0)


def test_label_smoothing_caps_the_confidence_at_the_smoothed_target() -> None:
    # separable blobs: vanilla drives p_max to ≈ 1, label smoothing to its target 1 − ε + ε/K
    X, y = _blobs(300)
    top: dict[str, float] = {}
    for method in ("vanilla", "label_smoothing"):
        model = train_classifier(
            _mlp(), X, one_hot(y, 3), _config(method=method, label_smoothing=0.3), seed=0, device=CPU
        )
        top[method] = float(predict(model, X).probs.max(axis=1).mean())
    assert top["vanilla"] > 0.98
    assert top["label_smoothing"] == pytest.approx(1 - 0.3 + 0.3 / 3, abs=0.03)


# ---------------------------------------------------------------------------------------- mixup, CutMix


def test_mix_is_a_convex_combination_per_row() -> None:
    x = torch.tensor([[0.0, 0.0], [10.0, 20.0], [4.0, 4.0]])
    t = torch.eye(3)
    partner = torch.tensor([1, 2, 0])
    mx, mt = mix(x, t, 0.75, partner)
    torch.testing.assert_close(mx[0], torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(mt[0], torch.tensor([0.75, 0.25, 0.0]))
    mx, mt = mix(x, t, torch.tensor([1.0, 0.5, 0.0]), partner)  # one λ a row
    torch.testing.assert_close(mx, torch.tensor([[0.0, 0.0], [7.0, 12.0], [0.0, 0.0]]))
    torch.testing.assert_close(mt.sum(dim=1), torch.ones(3))


def test_mixup_objective_trains_on_the_mixed_batch() -> None:
    # the loss equals the cross-entropy of the model on λ·x + (1 − λ)·x[π] against the mixed targets,
    # with λ and π the next draws of the method's generator
    X, y = _blobs(16)
    config = _config(method="mixup", mixup_alpha=0.4)
    objective = Mixup(_context(X, y, 3, config))
    model = _mlp()
    replay = np.random.default_rng(0)
    loss = objective(model, torch.from_numpy(X), _batch(y))
    lam = replay.beta(0.4, 0.4)
    perm = torch.from_numpy(replay.permutation(16))
    xt, tt = torch.from_numpy(X), torch.from_numpy(one_hot(y, 3))
    logits, _ = model(lam * xt + (1 - lam) * xt[perm])
    expected = -((lam * tt + (1 - lam) * tt[perm]) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(loss, expected)


def test_cutmix_pastes_a_box_and_mixes_targets_by_its_area() -> None:
    b = 6
    x = torch.arange(b, dtype=torch.float32).reshape(b, 1, 1, 1).expand(b, 1, 16, 16).clone()  # image i = i
    t = torch.eye(b)
    partner = torch.roll(torch.arange(b), 1)
    for seed in range(5):
        mixed, targets = cutmix(x, t, 0.6, partner, np.random.default_rng(seed))
        for i in range(b):
            from_partner = float((mixed[i] == float(partner[i])).float().mean())
            assert set(torch.unique(mixed[i]).tolist()) <= {float(i), float(partner[i])}
            assert targets[i, partner[i]].item() == pytest.approx(from_partner)
            assert targets[i, i].item() == pytest.approx(1 - from_partner)
    with pytest.raises(TBALInputError, match="images"):
        cutmix(torch.zeros(4, 3), torch.eye(4)[:, :3], 0.5, torch.arange(4), np.random.default_rng(0))


def test_cutmix_needs_images_and_runs_on_them() -> None:
    X, y = _blobs(20)
    with pytest.raises(TBALInputError, match=r"cutmix needs images"):
        train_classifier(_mlp(), X, one_hot(y, 3), _config(method="cutmix", epochs=1), seed=0, device=CPU)
    images = np.random.default_rng(0).random((32, 1, 28, 28)).astype(np.float32)
    model = build_model(ModelConfig(name="lenet5"), (1, 28, 28), 3)
    labels = np.arange(32) % 3
    train_classifier(
        model, images, one_hot(labels, 3), _config(method="cutmix", epochs=1), seed=0, device=CPU
    )


# ---------------------------------------------------------------------------------------- AutoLabel


def test_autolabel_target_moves_down_when_over_confident_and_up_when_under() -> None:
    labels = AutoLabelTargets(n_buckets=3, num_classes=4, step=1.0)
    rng = np.random.default_rng(0)
    m = 400
    y = rng.integers(0, 4, size=m)
    buckets = np.repeat([0, 1], m // 2)  # bucket 2 gets no points
    probs = np.full((m, 4), 0.02 / 3)
    pred = np.where(rng.random(m) < 0.7, y, (y + 1) % 4)  # 70 % right ...
    probs[np.arange(m), pred] = 0.98  # ... at confidence 0.98: over-confident
    labels.update(probs, y, buckets)
    acc = [float((pred == y)[buckets == b].mean()) for b in (0, 1)]
    for b in (0, 1):
        ece = 0.98 - acc[b]  # one confidence bin: ECE = conf − acc
        assert labels.confidence[b] == pytest.approx(max(1.0 - ece, acc[b]))  # ỹ − α·ECE, clipped at acc
        assert labels.confidence[b] < 1.0
    assert labels.confidence[2] == 1.0  # no points: unchanged
    labels.step = 10.0  # a big step is clipped at the bucket's accuracy
    labels.update(probs, y, buckets)
    assert labels.confidence[0] == pytest.approx(acc[0])
    # under-confident: right 90 % of the time at confidence 0.4 → ỹ moves up (and at least to acc)
    labels.confidence[:] = 0.5
    labels.step = 0.1
    probs_low = np.full((m, 4), 0.2)
    pred_low = np.where(rng.random(m) < 0.9, y, (y + 1) % 4)
    probs_low[np.arange(m), pred_low] = 0.4
    labels.update(probs_low, y, buckets)
    acc_low = float((pred_low == y)[buckets == 0].mean())
    assert labels.confidence[0] == pytest.approx(acc_low)  # 0.5 + 0.1·0.5 = 0.55 < acc: clipped up to acc


def test_autolabel_targets_put_the_bucket_confidence_on_the_class() -> None:
    labels = AutoLabelTargets(n_buckets=2, num_classes=3, step=1.0)
    labels.confidence[:] = [0.9, 0.6]
    out = labels.targets(torch.tensor([2, 0]), torch.tensor([0, 1]))
    torch.testing.assert_close(out, torch.tensor([[0.05, 0.05, 0.9], [0.6, 0.2, 0.2]]))


def test_autolabel_augment_distances_follow_the_strength() -> None:
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32))
    noisy = autolabel_augment(x, "noise", np.random.default_rng(1), noise_scale=2.0)
    size = (noisy.x - x).pow(2).mean(dim=1).sqrt()  # ≈ σ = 2·distance
    assert float(np.corrcoef(size.numpy(), noisy.distance.numpy())[0, 1]) > 0.95
    mixed = autolabel_augment(x, "mixup", np.random.default_rng(2), noise_scale=1.0)
    assert float(mixed.distance.min()) >= 0.0 and float(mixed.distance.max()) <= 1.0
    buckets = bucket_of(mixed.distance, 5)
    counts = torch.bincount(buckets, minlength=5)
    assert int(counts.min()) > 300  # λ ~ U: every bucket fills
    assert bucket_of(torch.tensor([0.0, 0.19, 0.2, 0.999, 1.0]), 5).tolist() == [0, 0, 1, 4, 4]
    with pytest.raises(TBALInputError, match="mixup or noise"):
        autolabel_augment(x, "blur", np.random.default_rng(0), noise_scale=1.0)


def test_autolabel_lowers_the_targets_of_far_buckets_for_an_over_confident_model() -> None:
    # an over-confident model (trained, then its logits scaled up 20×) on mixup-augmented held-out
    # points: far buckets (even blends) are right far less often than p_max says, so ỹ goes down there
    X, y = _blobs(400)
    model = train_classifier(_mlp(), X[:200], one_hot(y[:200], 3), _config(), seed=0, device=CPU)
    head = model.head
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.mul_(20.0)
        head.bias.mul_(20.0)
    val = (torch.from_numpy(X[200:]), torch.from_numpy(y[200:]))
    objective = AutoLabel(_context(X[:200], y[:200], 3, _config(method="autolabel"), validation=val))
    objective.end_epoch(model, 0)
    confidence = objective.history[-1]
    assert confidence[-1] < 0.9  # the even-blend bucket's target dropped well below one-hot
    assert confidence[-1] < confidence[0]  # and further than the near-clean bucket's
    assert np.all(confidence <= 1.0)


def test_autolabel_trains_with_given_or_held_out_validation() -> None:
    X, y = _blobs(300)
    for kind in ("mixup", "noise"):
        config = _config(method="autolabel", autolabel_augment=kind, epochs=5)
        model = train_classifier(_mlp(), X[:200], one_hot(y[:200], 3), config, seed=0, device=CPU)
        assert (predict(model, X[200:]).predicted == y[200:]).mean() > 0.9
    given = train_classifier(
        _mlp(), X[:200], one_hot(y[:200], 3), config, seed=0, device=CPU, validation=(X[200:], y[200:])
    )
    assert (predict(given, X[200:]).predicted == y[200:]).mean() > 0.9
    with pytest.raises(TBALInputError, match="validation labels"):
        train_classifier(_mlp(), X, one_hot(y, 3), config, seed=0, device=CPU, validation=(X[:5], y[:4]))
    with pytest.raises(TBALInputError, match="would train on none"):
        train_classifier(_mlp(), X[:1], one_hot(y[:1], 3), config, seed=0, device=CPU)


# ---------------------------------------------------------------------------------------- AUM


def test_margins_known_values() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    torch.testing.assert_close(margins(logits, torch.tensor([0, 0])), torch.tensor([1.0, -5.0]))


def test_aum_of_flipped_labels_is_below_the_median() -> None:
    X, y = _blobs(300, scale=1.0)  # overlapping blobs: the flipped labels can only be memorised
    noisy = y.copy()
    rng = np.random.default_rng(3)
    flipped = rng.choice(300, size=30, replace=False)
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, size=30)) % 3
    config = _config(epochs=30, lr=0.05)
    aum = compute_aum(_mlp(hidden=(64,)), X, one_hot(noisy, 3), config, seed=0, device=CPU)
    assert aum.shape == (300,)
    median = np.median(aum)
    assert (aum[flipped] < median).mean() >= 0.9
    assert np.median(aum[flipped]) < 0 < np.median(np.delete(aum, flipped))
    suspects = likely_mislabeled(aum)
    assert np.all(np.diff(aum[suspects]) >= 0)  # lowest first
    assert np.isin(suspects, flipped).mean() >= 0.8  # AUM < 0: nearly all suspects are flips ...
    assert np.isin(flipped, suspects).mean() >= 0.6  # ... and most flips are caught (here 23 / 30)
    assert np.isin(flipped, likely_mislabeled(aum, threshold=median)).mean() >= 0.9
    budget = likely_mislabeled(aum, fraction=0.1)  # review the lowest 10 %: 30 rows
    assert len(budget) == 30 and np.all(aum[budget] <= np.sort(aum)[29])
    assert np.isin(budget, flipped).mean() >= 0.8
    with pytest.raises(TBALInputError, match="fraction"):
        likely_mislabeled(aum, fraction=1.5)


def test_recording_margins_does_not_change_the_training() -> None:
    X, y = _blobs(80)
    config = _config(epochs=3)
    plain = train_classifier(_mlp(), X, one_hot(y, 3), config, seed=4, device=CPU)
    recorder = AUMRecorder(torch.from_numpy(X), torch.from_numpy(y))
    hooked = train_classifier(_mlp(), X, one_hot(y, 3), config, seed=4, device=CPU, epoch_hooks=[recorder])
    np.testing.assert_array_equal(predict(plain, X).logits, predict(hooked, X).logits)
    assert len(recorder.history) == 3
    last = margins(torch.from_numpy(predict(hooked, X).logits), torch.from_numpy(y)).double().numpy()
    np.testing.assert_allclose(recorder.history[-1], last, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------- saliency mixup


def test_saliency_is_the_logit_gradient_of_cross_entropy() -> None:
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    targets = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    loss = -(targets * F.log_softmax(logits, dim=1)).sum()  # summed: the per-point gradients
    (grad,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(saliency(logits.detach(), targets), grad.abs())


def test_saliency_partners_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    sal = torch.rand(40, 5, generator=g)
    easy = torch.from_numpy(easy_mask(np.random.default_rng(0).normal(size=40)))
    similar, dissimilar = saliency_partners(sal, easy, chunk=7)
    for i in range(40):
        others = [j for j in range(40) if bool(easy[j]) != bool(easy[i])]
        cos = [float(F.cosine_similarity(sal[i], sal[j], dim=0)) for j in others]
        assert int(similar[i]) == others[int(np.argmax(cos))]
        assert int(dissimilar[i]) == others[int(np.argmin(cos))]
    assert int(easy.sum()) == 20  # median split


def test_saliency_mixup_loss_is_the_weighted_sum_of_three_terms() -> None:
    X, y = _blobs(24)
    config = _config(method="saliency_mixup", saliency_mix_weights=(0.5, 0.3, 0.2), mixup_alpha=0.4)
    objective = SaliencyMixup(_context(X, y, 3, config))
    model = _mlp()
    index = np.arange(0, 24, 3)
    xb, batch = torch.from_numpy(X[index]), _batch(y[index], index)
    logits, _ = model(xb)
    t = torch.from_numpy(one_hot(y[index], 3))
    plain = -(t * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(objective(model, xb, batch), plain)  # epoch 1: no margins yet
    objective.end_epoch(model, 0)
    assert objective.partners is not None
    similar, dissimilar = objective.partners
    easy = easy_mask(objective.margin_sum.numpy())
    assert np.all(easy[similar.numpy()] != easy) and np.all(easy[dissimilar.numpy()] != easy)
    replay = copy.deepcopy(objective.rng)
    loss = objective(model, xb, batch)
    lam = replay.beta(0.4, 0.4)
    expected = 0.5 * plain
    for weight, partner in ((0.3, similar), (0.2, dissimilar)):
        j = partner[torch.from_numpy(index)]
        z, _ = model(lam * xb + (1 - lam) * torch.from_numpy(X)[j])
        tj = lam * t + (1 - lam) * torch.from_numpy(one_hot(y, 3))[j]
        expected = expected + weight * -(tj * F.log_softmax(z, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------------------------------- CRL


def test_correctness_ranking_loss_known_values() -> None:
    # pairs (0, 1), (1, 2), (2, 0)
    conf = torch.tensor([0.9, 0.6, 0.8])
    freq = torch.tensor([1.0, 0.5, 0.5])
    # (0,1): r = 1, margin 0.5: max(0, −0.3 + 0.5) = 0.2; (1,2): r = 0, margin 0: 0; (2,0): r = −1,
    # margin 0.5: max(0, (0.8 − 0.9) + 0.5) = 0.4
    assert correctness_ranking_loss(conf, freq).item() == pytest.approx((0.2 + 0.0 + 0.4) / 3)


def test_crl_counts_correctness_and_ranks_by_it() -> None:
    X, y = _blobs(6)
    objective = CRL(_context(X, y, 3, _config(method="crl")))
    model = _mlp()
    xb = torch.from_numpy(X)
    for _ in range(3):
        objective(model, xb, _batch(y))
    predicted = model(xb)[0].argmax(dim=1).numpy()
    assert objective.seen.tolist() == [3.0] * 6
    np.testing.assert_array_equal(objective.correct.numpy(), 3.0 * (predicted == y))
    # the ranking term pushes the confidence of the more-often-right point up relative to its pair
    conf = torch.tensor([0.5, 0.5], requires_grad=True)
    correctness_ranking_loss(conf, torch.tensor([1.0, 0.0])).backward()
    assert conf.grad is not None and conf.grad[0] < 0 < conf.grad[1]


# ---------------------------------------------------------------------------------------- FMFP (SAM)


def test_sam_step_uses_the_gradient_at_the_perturbed_weights() -> None:
    X, y = _blobs(32)
    config = _config(method="fmfp", sam_rho=0.5, lr=0.1, momentum=0.0)
    model = _mlp(hidden=(8,))
    reference = copy.deepcopy(model)
    objective = FMFP(_context(X, y, 3, config))
    xb, batch = torch.from_numpy(X), _batch(y)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)
    objective.optimizer_step(model, xb, batch, optimizer)
    # by hand: g at w, ε = ρ g / ‖g‖, w ← w − lr · ∇L(w + ε)
    params = list(reference.parameters())
    loss = F.cross_entropy(reference(xb)[0], batch.classes)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(torch.stack([(g**2).sum() for g in grads]).sum())
    with torch.no_grad():
        shifted = copy.deepcopy(reference)
        for p, g in zip(shifted.parameters(), grads, strict=True):
            p.add_(0.5 * g / norm)
    sharp = torch.autograd.grad(F.cross_entropy(shifted(xb)[0], batch.classes), list(shifted.parameters()))
    for p_new, p_old, g in zip(model.parameters(), params, sharp, strict=True):
        torch.testing.assert_close(p_new.detach(), p_old.detach() - 0.1 * g, rtol=1e-5, atol=1e-6)
    plain_step = [p.detach() - 0.1 * g for p, g in zip(params, grads, strict=True)]
    assert any(not torch.allclose(a.detach(), b) for a, b in zip(model.parameters(), plain_step, strict=True))


def test_fmfp_trains_through_train_classifier() -> None:
    X, y = _blobs(300)
    model = train_classifier(_mlp(), X[:200], one_hot(y[:200], 3), _config(method="fmfp"), seed=0, device=CPU)
    assert (predict(model, X[200:]).predicted == y[200:]).mean() > 0.95


# ---------------------------------------------------------------------------------------- hooks, seeds


def test_new_methods_are_seeded_and_leave_the_global_rng_alone() -> None:
    X, y = _blobs(60)
    for method in ("mixup", "autolabel", "saliency_mixup", "crl", "fmfp", "label_smoothing"):
        torch.manual_seed(0)
        before = torch.random.get_rng_state()
        runs = [
            predict(train_classifier(_mlp(), X, one_hot(y, 3), _config(method=method, epochs=2), seed=s), X)
            for s in (1, 1, 2)
        ]
        assert torch.equal(before, torch.random.get_rng_state()), method
        np.testing.assert_array_equal(runs[0].logits, runs[1].logits)
        assert not np.array_equal(runs[0].logits, runs[2].logits)


def test_epoch_hooks_run_after_every_epoch() -> None:
    X, y = _blobs(40)
    calls: list[tuple[int, bool]] = []
    train_classifier(
        _mlp(),
        X,
        one_hot(y, 3),
        _config(epochs=3),
        seed=0,
        device=CPU,
        epoch_hooks=[lambda model, epoch: calls.append((epoch, model.training))],
    )
    assert calls == [(0, True), (1, True), (2, True)]


# ---------------------------------------------------------------------------------------- the command


def test_methods_are_selectable_from_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--data", "x.npz", "--set", "train.method=autolabel", "--set", "train.autolabel_buckets=3"]
    )
    config = config_from_args(args)
    assert config.train.method == "autolabel" and config.train.autolabel_buckets == 3
    assert (
        config_from_args(parser.parse_args(["run", "--data", "x.npz", "--train", "crl"])).train.method
        == "crl"
    )
    with pytest.raises(ConfigError, match=r"train\.method must be one of .*'bogus'"):
        config_from_args(parser.parse_args(["run", "--data", "x.npz", "--set", "train.method=bogus"]))

    X, y = _blobs(400, d=4)
    data = tmp_path / "blobs.npz"
    np.savez(data, X=X, y=y)
    out = tmp_path / "run.json"
    argv = ["run", "--data", str(data), "--set", "train.method=mixup", "--epochs", "3", "--budget", "60"]
    argv += ["--seed-size", "40", "--batch", "20", "--validation-size", "100", "--json", str(out), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["config"]["train"]["method"] == "mixup"
    assert len(record["runs"][0]["rounds"]) == 2
