"""Does an ensemble of self-trained classifiers certify more? A probe on tuning seeds, before any library
change (BENCHMARKS.md, "Issue 11, twelfth session").

Runs ``tbal run`` in process with the loop's self-training replaced by ``--members`` M classifiers, each
trained as the loop's one is (the same pseudo-labels of the first classifier; seeds differ, so do their
initialisation, batch order and shifts), and scored by the mean of their probabilities. Rounds that do
not self-train are unchanged. Every other argument goes to ``tbal run``.

Usage: .venv/bin/python bench/ensemble_probe.py --members 3 -- --data X.npz --preset mnist-paper ...
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import tbal.loop as loop
from tbal.cli import main as tbal_main
from tbal.networks import Classifier


class MeanOfMembers(Classifier):
    """Logits log(mean of the members' softmax); features the members' side by side."""

    def __init__(self, members: list[Classifier]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        first = members[0]
        self.num_classes = first.num_classes
        self.input_shape = first.input_shape
        self.feature_dim = sum(m.feature_dim for m in members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x) for member in self.members]
        probs = torch.stack([torch.softmax(z, dim=1) for z, _ in outputs]).mean(0)
        return torch.log(probs.clamp_min(1e-12)), torch.cat([h for _, h in outputs], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("run_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    self_trained = loop._self_trained

    def ensemble(
        first: Classifier, inputs: Any, config: Any, seed: int, device: Any, progress: Any
    ) -> Classifier:
        members = [
            self_trained(first, inputs, config, seed + 7919 * i, device, progress)
            for i in range(args.members)
        ]
        return MeanOfMembers(members)

    loop._self_trained = ensemble  # type: ignore[assignment]
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    tbal_main(["run", *run_args])


if __name__ == "__main__":
    main()
