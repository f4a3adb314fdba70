"""The machine and libraries a run ran on, recorded beside its numbers (``tbal run --json``,
``tbal bench --json``): on the CPU a run is bit-reproducible only for the same torch thread count,
library versions and CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def run_environment() -> dict[str, Any]:
    """What a run's numbers depend on beyond seed and config. Runs are bit-reproducible on the CPU only
    for the same torch thread count, library versions and CPU (its vector units change summation order):
    two machines with the same code gave different MNIST rounds."""
    import platform

    import scipy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_model() or platform.processor(),
        # the vector unit torch's CPU kernels use (AVX2, AVX512, ...): "AMD EPYC" alone names machines
        # whose runs differ (the same harder-image run certified 42.8 % on one and 0 % on another)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
