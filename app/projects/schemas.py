"""Project schemas: what a client sends to create or change a project, and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator

from app.text import ClassName, ShortName, StorableText
from tbal.config import TRAIN_METHOD_PARAMS

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
BIG = 1_000_000_000
MAX_ITEM_VALUES = 1 << 24


def _count_or_share(value: Any) -> int | float:
    """A number as JSON gave it: 300 stays an int and 0.5 a float (the library reads an int as a count and
    a float as a share). A plain ``int | float`` field would name its union member in an error's field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number: a count of validation_size or a share of it in [0, 1)")
    return value


CountOrShare = Annotated[float, PlainValidator(_count_or_share, json_schema_input_type=float)]
"""``targeted_validation``: a count or a share; the library checks the range."""
MethodParam = (
    Annotated[float, Field(allow_inf_nan=False)]
    | ShortName
    | Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(max_length=16)]
)
"""One train-time method hyperparameter: a number, a name (autolabel_augment) or weights; the library
parses it to its field's type."""


class ProjectSettings(BaseModel):
    """A project's TBAL settings. Every field is optional: unset ones come from ``preset`` as it was when
    the project took it, pinned in the project: a new tbal release does not change it; PATCH ``preset`` to
    take the new one. A project created without ``preset`` gets its data kind's (texts ``text-finetune``,
    or ``text-paper`` where the settings choose a feature encoder, another model or a ``label_budget``
    under 1,000 without model ``minilm``; images ``mnist-paper``; feature vectors ``vectors``);
    ``"preset": null`` asks for the library's defaults. A preset's seed and validation floor follow the
    ``label_budget`` and ``validation_size`` a project sets (stored as ``seed_size`` and
    ``validation_floor``) unless it sets them too; what the service chose follows (``followed``). Values
    are checked by building the library's configuration; a bad one is a 422 naming it.

    ``min_validation_labels``: the fewest human validation labels a round may start with (default: the
    fewest that split into non-empty D_cal and D_th, at least 2). ``pixel_scale`` (images): the divisor
    that maps pixels to [0, 1] (default: 16 when no pixel exceeds 16, as in 4-bit digits, else 255).
    """

    model_config = ConfigDict(extra="forbid")

    preset: ShortName | None = Field(
        default=None,
        description="mnist-paper, cifar10-paper, text-paper, text-finetune or vectors: budgets and training "
        "tuned for images, text embeddings, texts (MiniLM fine-tuned on them; text projects only, encoder "
        "minilm-tokens), or feature vectors of any kind (the library's defaults with standardised inputs). "
        "Omitted at creation: the data kind's, text-finetune for texts (text-paper with a "
        "feature encoder such as minilm, another model or a label_budget under 1,000 without model "
        "minilm), mnist-paper for images, vectors for feature vectors. null: the library's defaults, "
        "which certified 0-19 % of hard grey images where mnist-paper certifies 50-62 %, and nothing on "
        "SST-2 where text-paper certifies 26-30 % and text-finetune 34-46 % (BENCHMARKS.md)",
    )
    epsilon: float | None = None
    delta: float | None = None
    bound: ShortName | None = None
    guarantee: ShortName | None = Field(
        default=None,
        description="pooled (default: the error of each round's auto-labels), per-class, or dataset "
        "(the error of the whole labeled set, human labels taken as correct)",
    )
    delta_schedule: ShortName | None = Field(
        default=None,
        description="how δ is spent over the rounds: final (default: the last planned round, the one that "
        "runs when label_budget is spent, certifies; earlier rounds auto-label nothing) or uniform (every "
        "planned round certifies at δ / rounds, covering less in total); rounds past the plan share a tail",
    )
    fallback_share: float | None = Field(
        default=None,
        description="share of a threshold walk's δ kept for restarts after early mistakes (0: plain walk)",
    )
    walk_start_share: float | None = Field(
        default=None,
        description="where a threshold walk starts: where the most mistakes could pass within the top "
        "share of the validation points (default 0.35; 0: where a pass is first possible)",
    )
    finite_pool: bool | None = Field(
        default=None,
        description="certify the error of the auto-labels themselves, the rest of the project's finite pool "
        "(an exact hypergeometric test), rather than the population error the Clopper–Pearson bound speaks "
        "of (default: true; projects pinned before the setting existed keep false)",
    )
    pseudo_label_share: float | None = Field(
        default=None,
        description="self-training in the rounds that may auto-label: the share of each predicted class's "
        "most confident unlabeled points (pool and validation alike) that train a second classifier with "
        "their predicted labels (0: off; unset: 0.9 for LeNet-5, as in mnist-paper, 0 for other networks)",
    )
    model: ShortName | None = None
    hidden: list[Annotated[int, Field(le=100_000)]] | None = Field(default=None, max_length=16)
    dropout: float | None = None
    uncertainty: ShortName | None = Field(
        default=None,
        description="uncertainty-aware model: none, mc-dropout (needs dropout > 0, e.g. 0.3), sngp or duq",
    )
    train_method: ShortName | None = None
    targets: ShortName | None = None
    epochs: int | None = Field(
        default=None,
        le=100_000,
        description="training epochs (unset: the preset's, else by network: 100 for LeNet-5, 50 otherwise)",
    )
    train_batch_size: int | None = Field(default=None, le=1_000_000)
    lr: float | None = Field(
        default=None,
        description="learning rate (unset: the preset's, else by network: 0.05 for LeNet-5, 0.01)",
    )
    weight_decay: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="weight decay (unset: the preset's, else by network: 0.01 for LeNet-5, 0.001)",
    )
    standardize_inputs: bool | None = Field(
        default=None,
        description="standardise every input feature with the training labels' mean and spread (unset: the "
        "preset's, else by network: on for LeNet-5, off otherwise)",
    )
    augment_shift: int | None = Field(
        default=None,
        le=64,
        description="images: random shifts of up to this many pixels while training (0: none; unset: the "
        "preset's, else by network: 2 pixels of a 28-pixel side for LeNet-5, at least 1, 0 otherwise)",
    )
    warm_start_epochs: int | None = Field(
        default=None,
        le=100_000,
        description="a round continues the previous round's classifier for this many epochs instead of "
        "training a fresh one (0: off, every round trains a fresh classifier; unset: the preset's)",
    )
    warm_start_rounds: ShortName | None = Field(
        default=None,
        description="which rounds continue with warm starts: 'every' round under a certifying bound, the "
        "certifying one included, or only the 'lean' ones that cannot auto-label (unset: the preset's, "
        "else 'every')",
    )
    confidence: ShortName | None = None
    query_strategy: ShortName | None = None
    label_budget: int | None = Field(default=None, le=BIG)
    validation_size: int | None = Field(default=None, le=BIG)
    seed_size: int | None = Field(default=None, le=BIG)
    batch_size: int | None = Field(default=None, le=BIG)
    calibration_fraction: float | None = None
    max_rounds: int | None = Field(default=None, le=1_000_000)
    validation_floor: int | None = Field(
        default=None,
        ge=0,
        le=BIG,
        description="keep at least this many validation items: when a round's removals leave fewer "
        "(labeled or queued), it queues the shortfall (at most its query batch) drawn uniformly from the "
        "pool with purpose 'validation', instead of as many training queries, paid from label_budget; "
        "0 (default) never tops up",
    )
    targeted_validation: CountOrShare | None = Field(
        default=None,
        description="validation drawn inside a stratum: this many of validation_size are not drawn at the "
        "start but by the round before the certifying one (the one before the last planned round, or the "
        "one whose queries spend the rest of label_budget), uniformly among the pool items its classifier "
        "is most sure of (the stratum: stratum_share of the pool left, decided without labels); they are "
        "queued with purpose 'validation', paid from validation_size, not label_budget, and every later "
        "round certifies and auto-labels inside the stratum only. An integer is a number of items (at most "
        "validation_size - 2; needs 2 planned rounds or more); a number in (0, 1) a share of "
        "validation_size, rounded down, so that it follows a changed validation_size (none with a single "
        "planned round). A confidence function fitted on labels (colander, temperature, ...) keeps "
        "ceil(calibration_fraction * validation_size) of the initial draw for its calibration set, so the "
        "stratum draws at most the rest. Default 0.5 (mnist-paper 0.9); 0: all of validation_size is drawn "
        "at the start",
    )
    stratum_share: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="share of the pool left (neither auto-labeled nor queried) that the stratum keeps, "
        "ranked by the classifier's probability of its class; in (0, 1], default 0.5",
    )
    stratum_error_factor: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="c ≥ 0: the stratum widens past stratum_share to the largest top share whose mean of "
        "1 - p (the classifier's own expected error, no label used) stays at most c·epsilon (default 2, "
        "mnist-paper 3); 0 keeps stratum_share",
    )
    train_outside_stratum: bool | None = Field(
        default=None,
        description="the rounds that certify inside a stratum also train their classifier on the validation "
        "items outside it, which none of their tests reads (with softmax; a confidence function fitted on "
        "labels draws its calibration set from those items). Default false",
    )
    colander: dict[ShortName, Annotated[float, Field(allow_inf_nan=False, le=1e6)]] | None = None
    method_params: dict[ShortName, MethodParam] | None = Field(
        default=None,
        max_length=64,
        description="hyperparameters of the train-time methods, each read only by its method: "
        + ", ".join(TRAIN_METHOD_PARAMS)
        + " (tbal.config.TrainConfig: ranges and defaults); replaced as a whole by a PATCH",
        examples=[{"label_smoothing": 0.05}, {"mixup_alpha": 0.4}, {"saliency_mix_weights": [0.8, 0.1, 0.1]}],
    )
    label_review_fraction: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="label review: share of the human training labels with the lowest AUM listed by "
        "GET /projects/{id}/label-review (default 0.05; labels with AUM < 0 are always listed)",
    )
    min_validation_labels: int | None = Field(default=None, ge=2, le=BIG)
    pixel_scale: float | None = Field(default=None, gt=0, le=65535)
    encoder: Annotated[str, StorableText] | None = Field(
        default=None,
        max_length=1024,
        description="text projects: what turns texts into features (tbal.encoders): minilm (the frozen "
        "sentence embedding: the default of a classifier other than minilm), minilm-tokens (word pieces: "
        "the default and the only one for model minilm, MiniLM fine-tuned, as in text-finetune), "
        "hashing, hashing:<dim>, sentence-transformers:<model directory on the server>; feature projects: "
        "image-backbone:<file.pt2> (with image_shape) turns uploaded image files into features; fixed "
        "once the project has items",
    )
    image_shape: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="feature projects with encoder image-backbone:<file>: the [H, W] or [H, W, C] that "
        "uploaded image files are decoded to before the backbone turns them into features",
    )
    audit_size: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="audit mode: auto-labels per round sampled uniformly for human review (purpose 'audit'"
        " in the queue); GET /rounds/{id}/audit compares their error with the round's bound",
    )


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_', '-'; 1–64 characters")
    classes: list[ClassName] = Field(min_length=2, max_length=10_000)
    data_kind: Literal["features", "image", "text"]
    input_shape: list[Annotated[int, Field(le=100_000)]] = Field(
        default_factory=list,
        max_length=3,
        description="features: [d]; images: [H, W] (grey) or [H, W, C], uint8 as uploaded; text: "
        "omit it (the encoder's size, e.g. [384] for minilm)",
    )
    settings: ProjectSettings = Field(default_factory=ProjectSettings)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes):
            raise ValueError("class names must be distinct")
        if any(not c for c in classes):
            raise ValueError("class names must not be empty")
        return classes

    @field_validator("input_shape")
    @classmethod
    def _positive_shape(cls, shape: list[int]) -> list[int]:
        if any(s <= 0 for s in shape):
            raise ValueError(f"dimensions must be positive, got {shape}")
        values = 1
        for s in shape:
            values *= s
        if values > MAX_ITEM_VALUES:
            raise ValueError(f"an item may hold at most {MAX_ITEM_VALUES} values, got {values}")
        return shape


class ProjectUpdate(BaseModel):
    """Settings given here replace those of the project one by one (unset ones stay)."""

    model_config = ConfigDict(extra="forbid")

    settings: ProjectSettings


class CertificateRead(BaseModel):
    """What the settings' certificate on the auto-labels needs (tbal.plan.certificate_needs): known before
    any label, so that a project whose validation points cannot hold one hears it before its first round
    instead of finding every round empty."""

    delta_round: float = Field(description="δ_k of the round that certifies with the largest share of δ")
    clean_points: int = Field(
        description="the fewest validation points (D_th), none of them wrong, a region needs to be "
        "certified (each class's own under the per-class guarantee)"
    )
    validation_points: int = Field(description="the D_th points the round that certifies holds at most")
    can_certify: bool = Field(
        description="validation_points ≥ clean_points: a certificate is possible at all"
    )
    every_class_can: bool = Field(
        description="false only under the per-class guarantee when a class of average size cannot hold one"
    )
    warnings: list[str]


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    classes: list[str]
    data_kind: str
    input_shape: list[int]
    seed: int
    settings: dict[str, Any]
    followed: list[str] | None = Field(
        default=None,
        description="the settings the service chose rather than the user (preset by the data kind, "
        "seed_size and validation_floor by the budgets, encoder by the model): they follow what they "
        "followed when it changes (a text project's preset while it has no item); null for projects "
        "created before tbal knew",
    )
    config: dict[str, Any] = Field(description="the effective library configuration of the settings")
    certificate: CertificateRead | None = Field(
        default=None,
        description="what the settings' certificate needs before it can auto-label anything (null under "
        "the papers' rule and the dataset guarantee, which have no such minimum); warnings say when the "
        "validation points cannot hold it",
    )
    sets_drawn_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ProjectCounts(BaseModel):
    items: int
    pool: int
    validation_labels: int
    training_labels: int
    human_labels: int
    auto_labels: int
    open_queries: int
    budget_used: int
    label_budget: int
    rounds: int


class ProjectDetail(ProjectRead):
    counts: ProjectCounts
