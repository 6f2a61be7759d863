"""Named training profiles: how much data, how many epochs, which hyper-parameters.

``default`` is the run whose report is committed under ``docs/results/`` and must finish within 45 minutes on
a 2-core CPU; ``quick`` trains on small subsets in under 3 minutes, for tests and the demo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Profile:
    name: str
    # text tasks
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 1
    sentiment_dev_fraction: float = 0.1
    review_split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    sentiment_train_limit: int | None = None
    review_train_limit: int | None = None
    reviews_per_epoch: int | None = None
    """Reviews are three times as many as news texts and twice as long: each epoch samples this many."""
    collapse_links: bool = True
    """Rewrite links to one placeholder word inside the tokenizer (:mod:`trainer.tokenizer`)."""
    eval_limit: int | None = None
    """Cap on dev/test examples per text task (quick runs only)."""
    distill_alpha: float = 0.0
    """Weight of the teacher's soft labels in the sentiment loss (0: hard labels only)."""
    distill_temperature: float = 2.0
    teacher_logits: str = "trainer/teacher_labels/teacher_logits.npz"
    """Written by ``streamscore teacher``; relative paths are from the repository root."""
    layer_lr_decay: float = 1.0
    """Layer-wise learning-rate decay: encoder layer i of L trains at lr · decay^(L − i), the embeddings at
    decay^(L + 1), the heads at lr (1: one rate for all)."""
    negative_class_weight: float = 1.0
    """Weight of the negative class in the sentiment head's hard cross-entropy."""
    rdrop_alpha: float = 0.0
    """Weight of R-Drop's consistency term on sentiment batches (0: off; on doubles a sentiment step's cost)."""
    precision: str = "auto"
    """``auto`` (bf16 autocast where the CPU or GPU supports it), ``bf16`` or ``fp32``."""
    sentiment_only: bool = False
    """Train and select epochs on the sentiment task alone: the recipe sweep (``streamscore sweep
    sentiment``), where review batches would only add cost to every variant alike."""
    soup: int = 1
    """Fine-tune this many copies of the text model and keep the mean of their weights (a uniform model soup,
    :mod:`trainer.weight_soup`): one model at serving, ``soup`` times the text training. The copies share the
    splits, the pretrained encoder and the initial heads; copy i shuffles its batches and draws its dropout
    from the training seed ``seed + i``, so copy 0 is the run without a soup."""
    lora: bool = False
    lora_rank: int = 16
    lora_lr: float = 5e-4
    # recommender
    movielens_users: int | None = None
    rec_dim: int = 64
    rec_epochs: int = 40
    rec_batch_size: int = 1024
    rec_lr: float = 3e-3
    rec_l2: float = 0.05
    rec_negatives: int = 512
    rec_patience: int = 10
    """Dev nDCG@10 is noisy from epoch to epoch (±0.005 on MovieLens-small): stop only after a long plateau."""

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **changes) -> Profile:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


PROFILES: dict[str, Profile] = {
    # distillation from the committed teacher logits: chosen on dev (0.887 / 0.852 against 0.877 / 0.841 without)
    "default": Profile(name="default", epochs=4, reviews_per_epoch=7000, distill_alpha=0.5, distill_temperature=2.0),
    "quick": Profile(
        name="quick",
        epochs=1,
        distill_alpha=0.5,
        sentiment_train_limit=3200,
        review_train_limit=480,
        eval_limit=400,
        movielens_users=80,
        rec_epochs=15,
        rec_patience=3,
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
