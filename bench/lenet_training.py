"""The LeNet-5 training that bench/augment_calibration.py and bench/aum_label_noise.py measured with."""

from __future__ import annotations

from tbal.config import TrainConfig


def measured_lenet_training(epochs: int) -> TrainConfig:
    """SGD lr 0.05, weight decay 1e-3, standardised inputs, no shifts, on the CPU: set in full, because
    LeNet-5's own defaults (tbal.config.network_training) have changed since these were measured."""
    return TrainConfig(
        epochs=epochs,
        batch_size=32,
        lr=0.05,
        weight_decay=1e-3,
        standardize_inputs=True,
        augment_shift=0,
        device="cpu",
    )
