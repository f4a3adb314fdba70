"""What each preset's certificate needs before it can auto-label anything (tbal.plan.certificate_needs):
the fewest clean D_th points a region needs, the D_th points the certifying round holds at most, and
whether a certificate (and, per class, one for a class of average size) is possible. From the settings
alone; BENCHMARKS.md, "Issue 11, thirty-second session".

Usage: .venv/bin/python bench/certificate_needs.py
"""

from __future__ import annotations

from tbal.config import preset, with_overrides
from tbal.plan import certificate_needs

PRESETS = (
    ("mnist-paper", 10),
    ("text-paper", 2),
    ("text-finetune", 2),
    ("vectors", 10),
    ("cifar10-paper", 10),
)


def main() -> None:
    print(
        "| preset (classes) | confidence | guarantee | clean points | D_th at most | possible | every class |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, classes in PRESETS:
        for confidence in ("softmax", "colander"):
            for guarantee in ("pooled", "per-class"):
                config = with_overrides(
                    preset(name), {"confidence.name": confidence, "thresholds.guarantee": guarantee}
                )
                needs = certificate_needs(config, classes)
                assert needs is not None  # valid bound, a guarantee on the auto-labels
                print(
                    f"| `{name}` ({classes}) | {confidence} | {guarantee} | {needs.clean_points} | "
                    f"{needs.validation_points} | {_yes(needs.can_certify)} | {_yes(needs.every_class_can)} |"
                )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


if __name__ == "__main__":
    main()
