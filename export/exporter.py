"""``streamscore export``: checkpoint → validated, versioned bundle, and (optionally) the new current one.

Everything is written into a staging folder first; only a bundle that passed every check is renamed to
``models/<version>``, and only then is ``models/current`` switched. A failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from export.onnx_config import StreamscoreTextModel, StreamscoreTextOnnxConfig
from export.quantize import quantize_int8
from export.recommender_graph import INPUTS as REC_INPUTS
from export.recommender_graph import OUTPUTS as REC_OUTPUTS
from export.recommender_graph import export_recommender
from export.torchscript_warnings import quiet_torchscript_export
from export.validation import HeldOut, check_int8, check_recommender_parity, check_text_parity, task_metrics
from streamscore.bundle import Bundle, point_current, write_manifest
from streamscore.neighbour_ranker import RANKER_FILE, RANKER_PARAMS_FILE
from streamscore.scorer import Scorer
from trainer.checkpoint import Checkpoint, load_checkpoint
from trainer.datasets import SplitRecipe
from trainer.rec_evaluation import ranker_for
from trainer.tokenizer import collapses_links
from trainer.training import popular_items, recommender_data

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportLimits:
    parity_atol: float = 1e-4
    max_accuracy_drop: float = 0.01
    max_rmse_increase: float = 0.02


def held_out_sets(ckpt: Checkpoint, data_dir: Path | None = None) -> HeldOut:
    """The checkpoint's own test sets, rebuilt from its config (same sources, profile and seed); the sentiment
    test set whole, even where the profile's report used a sample of it (``eval_limit``).

    The int8 gate compares fp32 and int8 accuracy on it, and dynamic int8 moves about 1.5 % of the labels
    either way (quick model, this repository's test set): on a 400-headline sample the net drop's standard
    error is about 0.006, so the 0.01 limit is 1.6 of them and refused a retrained head as good as its fp32
    graph in one CI run (6 of 400 headlines); on the whole 2 388-headline test set it is about 0.0025."""
    recipe = SplitRecipe.from_checkpoint_config(ckpt.config, data_dir)
    text, ml = recipe.text_splits(), recipe.interaction_splits()
    if recipe.profile.eval_limit is not None:
        whole = replace(recipe, profile=replace(recipe.profile, eval_limit=None))
        text.sentiment_test = whole.text_splits().sentiment_test
    *_, test = recommender_data(ml, ckpt.users, ckpt.items, ckpt.item_embeddings[1:])
    return HeldOut(
        sentiment_texts=text.sentiment_test.texts,
        sentiment_labels=text.sentiment_test.labels,
        review_texts=text.review_test.texts,
        review_ratings=text.review_test.ratings,
        item_texts=ckpt.item_texts,
        rec_test=test,
    )


def _export_text_model(ckpt: Checkpoint, output: Path) -> dict:
    from optimum.exporters.onnx.convert import export, validate_model_outputs

    wrapper = StreamscoreTextModel.wrap(ckpt.text_model)
    onnx_config = StreamscoreTextOnnxConfig(wrapper.config, task="feature-extraction")
    with quiet_torchscript_export():
        inputs, outputs = export(wrapper, onnx_config, output, opset=onnx_config.DEFAULT_ONNX_OPSET, device="cpu")
    # Optimum's own check on its dummy inputs (raises AtolError / ShapeError on a mismatch); ours on real
    # held-out texts follows in check_text_parity.
    validate_model_outputs(
        onnx_config, wrapper, output, outputs, atol=onnx_config.ATOL_FOR_VALIDATION, use_subprocess=False
    )
    return {
        "inputs": {name: {"dtype": "int64", "shape": ["batch_size", "sequence_length"]} for name in inputs},
        "outputs": {
            "embedding": {"dtype": "float32", "shape": ["batch_size", ckpt.text_model.embedding_dim]},
            "sentiment_logits": {
                "dtype": "float32",
                "shape": ["batch_size", ckpt.text_model.config.n_sentiment],
                "labels": ["negative", "neutral", "positive"],
            },
            "review_logits": {
                "dtype": "float32",
                "shape": ["batch_size", ckpt.text_model.config.n_stars],
                "labels": [1, 2, 3, 4, 5],
            },
            "review_rating": {"dtype": "float32", "shape": ["batch_size"]},
        },
        "opset": onnx_config.DEFAULT_ONNX_OPSET,
    }


def _checkpoint_metrics(ckpt: Checkpoint) -> dict:
    report = ckpt.path.parent / "report" / "metrics.json"
    if not report.is_file():
        return {}
    m = json.loads(report.read_text())
    return {
        "sentiment_accuracy": m["sentiment"]["accuracy"],
        "sentiment_macro_f1": m["sentiment"]["macro_f1"],
        "review_mae": m["review_rating"]["model"]["mae"],
        "review_rmse": m["review_rating"]["model"]["rmse"],
        "movielens_rmse": m["movielens_rating"]["model"]["rmse"],
        "movielens_ndcg@10": m["movielens_ranking"]["model"]["ndcg@10"],
    }


def export_bundle(
    checkpoint: Path,
    models_dir: Path,
    limits: ExportLimits = ExportLimits(),
    make_current: bool = True,
    data_dir: Path | None = None,
) -> Bundle:
    """Export, validate and publish one bundle; raises :class:`~export.errors.ToleranceExceeded` on a breach."""
    import onnxruntime
    import optimum
    import transformers

    ckpt = load_checkpoint(checkpoint)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        text_io = _export_text_model(ckpt, staging / "model.onnx")
        export_recommender(ckpt.recommender, staging / "recommender.onnx", ckpt.text_model.embedding_dim)
        quantize_int8(staging / "model.onnx", staging / "model.int8.onnx")
        ckpt.tokenizer.save_pretrained(str(staging))
        held_out = held_out_sets(ckpt, data_dir)
        popular = ckpt.popular_items or popular_items(held_out.rec_test.history, ckpt.items)
        splits = SplitRecipe.from_checkpoint_config(ckpt.config, data_dir).interaction_splits()
        ranker, ranker_record = ranker_for(
            ckpt.path, splits.train, splits.dev, list(ckpt.items.ids), ckpt.item_embeddings[1:]
        )
        ranker.save(staging)
        (staging / "recommender.json").write_text(
            json.dumps({"users": ckpt.users.ids, "items": ckpt.items.ids, "popular_items": popular})
        )
        cfg = ckpt.text_model.config
        fields = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source_checkpoint": str(ckpt.path.resolve()),
            "text_model": {
                **text_io,
                "max_lengths": {
                    k: getattr(cfg, k) for k in ("max_length_sentiment", "max_length_review", "max_length_item")
                },
                "pad_token_id": int(ckpt.tokenizer.pad_token_id or 0),
                "collapses_links": collapses_links(ckpt.tokenizer.backend_tokenizer),
            },
            "recommender": {
                "inputs": list(REC_INPUTS),
                "outputs": {name: {"dtype": "float32", "shape": ["users", "items"]} for name in REC_OUTPUTS},
                "users": len(ckpt.users),
                "items": len(ckpt.items),
                "embedding_dim": ckpt.text_model.embedding_dim,
            },
            "ranker": {
                "files": [RANKER_FILE, RANKER_PARAMS_FILE],
                "items": len(ranker),
                "params": ranker_record["params"],
                "fit": ranker_record["fit"],
                "dev": ranker_record["dev"],
            },
            "checkpoint_metrics": _checkpoint_metrics(ckpt),
            "software": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "optimum": getattr(optimum, "__version__", "?"),
                "onnxruntime": onnxruntime.__version__,
            },
        }
        write_manifest(staging, fields)
        fp32 = Scorer(staging, variant="fp32", device="cpu")
        parity = {
            "text": check_text_parity(ckpt, fp32, held_out, limits.parity_atol),
            "recommender": check_recommender_parity(ckpt, fp32, held_out, limits.parity_atol),
        }
        metrics_fp32 = task_metrics(fp32, held_out)
        int8 = Scorer(staging, variant="int8", device="cpu")
        metrics_int8 = task_metrics(int8, held_out)
        int8_check = check_int8(metrics_fp32, metrics_int8, limits.max_accuracy_drop, limits.max_rmse_increase)
        manifest = write_manifest(
            staging,
            {
                **fields,
                "validation": {
                    "parity": parity,
                    "metrics": {"fp32": metrics_fp32, "int8": metrics_int8},
                    "int8": int8_check,
                    "providers": fp32.providers,
                },
            },
        )
        final = models_dir / manifest["version"]
        if final.exists():
            shutil.rmtree(staging)  # identical content was exported before: keep the published copy
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_current:
        point_current(models_dir, final.name)
    logger.info("bundle exported", extra={"version": final.name, "current": make_current})
    return Bundle.load(final)


def sizes_mb(bundle: Bundle) -> dict[str, float]:
    return {
        name: round(meta["bytes"] / 1e6, 1) for name, meta in bundle.manifest["files"].items() if name.endswith(".onnx")
    }
