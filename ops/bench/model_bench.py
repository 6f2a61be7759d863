"""``streamscore bench model``: PyTorch eager fp32 / bf16 vs ONNX Runtime fp32 vs ONNX Runtime int8, side by side.

All engines score the same fixed-shape batches built from real news texts (token ids of consecutive tweets
cut to exactly the sequence length), with the same thread count, in one process and one run, interleaved per
configuration so that machine drift hits all engines alike. Figures are medians of repeated runs.

PyTorch bf16 is the AMX path in bf16: on a CPU with AMX, oneDNN runs a bf16 linear layer on the tile unit
(the ISA it dispatches is recorded beside the figures). ONNX Runtime's int8 engines are the int8 path: MLAS
picks its own kernel (AMX, AVX-512 VNNI or AVX2) for the CPU, which ``bench roofline`` tells apart.
"""

from __future__ import annotations

import copy
import json
import platform
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.bench.output import pyplot, write_json
from streamscore.scorer import Scorer

EAGER = "pytorch-eager-fp32"
"""The reference every other engine's speed is divided by."""
BF16 = "pytorch-bf16"
BATCH_SIZES = (1, 8, 32, 128)
SEQ_LENGTHS = (64, 128)
WHOLE_CALL = {"parallel_calls": 1}
"""Every ORT engine here times one fixed-shape call on all ``threads`` at once, as PyTorch eager runs it. The
scorer's own default (since 2026-12-03) runs a batch as several single-threaded calls side by side; timing
its ``_run`` with that default measured one thread against eager's two (model-only in ``bench e2e`` and
``bench overlap`` is where that batch policy is measured)."""
OP_PROFILE_SHAPE = (100, 20)
"""The call that ORT's profiler times: about what the worker feeds the model on real headlines (2 000
tokens a call, about 20 per headline once links are collapsed)."""


@dataclass(frozen=True)
class Measurement:
    engine: str
    batch_size: int
    seq_len: int
    seconds_per_batch: float
    runs: int

    @property
    def sequences_per_second(self) -> float:
        return self.batch_size / self.seconds_per_batch


def fixed_shape_batches(
    tokenizer_ids: list[list[int]], cls_id: int, sep_id: int, batch: int, length: int
) -> np.ndarray:
    """``(batch, length)`` token ids from real text: body tokens of consecutive texts, framed by CLS/SEP."""
    body = [t for ids in tokenizer_ids for t in ids[1:-1]]
    need = batch * (length - 2)
    while len(body) < need:
        body = body + body
    rows = np.array(body[:need], dtype=np.int64).reshape(batch, length - 2)
    return np.hstack([np.full((batch, 1), cls_id), rows, np.full((batch, 1), sep_id)]).astype(np.int64)


def op_shares(events: list[dict]) -> dict[str, float]:
    """Share of the kernel time per ONNX op type in an ORT profile (the JSON list ``end_profiling`` writes),
    largest first."""
    totals: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += int(event["dur"])
    whole = sum(totals.values()) or 1
    return {op: round(total / whole, 4) for op, total in totals.most_common()}


def op_profile(
    bundle_path: Path, threads: int, input_ids: np.ndarray, skipped_fusions: list[str] | None, runs: int = 10
) -> dict:
    """Where one int8 call's time goes, by op type, with the given fusions skipped (None: the scorer's own
    choice), and the median milliseconds per call under the profiler."""
    mask = np.ones_like(input_ids)
    with tempfile.TemporaryDirectory() as folder:
        scorer = Scorer(
            bundle_path,
            variant="int8",
            device="cpu",
            threads=threads,
            **WHOLE_CALL,
            skipped_fusions=skipped_fusions,
            profile_prefix=str(Path(folder) / "ort"),
            warm_up=False,
        )
        for _ in range(runs + 1):
            scorer._run(input_ids, mask)
        events = json.loads(Path(scorer.text_session.end_profiling()).read_text())
    runs_us = [int(e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    return {
        "skipped_fusions": scorer.skipped_fusions,
        "ms_per_call": round(float(np.median(runs_us)) / 1000, 2),
        "op_shares": op_shares(events),
    }


def attention_int8_bundle(bundle_path: Path, folder: Path) -> Path:
    """A copy of the bundle in ``folder`` whose int8 graph also quantizes the attention products (query × key,
    attention × value) from the same fp32 graph: one of ONNX Runtime's own remedies for the fp32 work around
    the int8 GEMMs, measured beside the served graph rather than shipped."""
    from export.quantize import quantize_int8
    from streamscore.bundle import Bundle, write_manifest

    source = Bundle.load(bundle_path)
    for name in source.manifest["files"]:
        if name != "model.int8.onnx":
            shutil.copy2(source.file(name), folder / name)
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", attention_products=True)
    fields = {k: v for k, v in source.manifest.items() if k not in {"format", "version", "files"}}
    fields["text_model"] = {**fields["text_model"], "int8_attention_products": True}
    write_manifest(folder, fields)
    return folder


def label_agreement(labels: dict[str, list[str]], reference: str = "ort-fp32") -> dict[str, float]:
    """Share of texts each engine labels as the ``reference`` engine does: what an int8 graph or the bf16 path
    changes, on real headlines, without needing their labels."""
    return {
        name: round(float(np.mean([a == b for a, b in zip(got, labels[reference], strict=True)])), 4)
        for name, got in labels.items()
        if name != reference
    }


def torch_sentiment_labels(model, tokenizer, texts: list[str], batch: int = 64) -> list[str]:
    """The sentiment label a PyTorch copy of the model gives each text (dynamic padding per batch, as the
    scorer pads): what the bf16 path changes, measured the way ``label_agreement`` measures the int8 graphs."""
    import torch

    from streamscore.scorer import SENTIMENT_LABELS

    labels: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch], truncation=True, max_length=256, padding=True, return_tensors="pt"
            )
            logits = model(enc["input_ids"], enc["attention_mask"])["sentiment_logits"]
            labels += [SENTIMENT_LABELS[int(i)] for i in logits.float().argmax(dim=-1)]
    return labels


def _repeats(batch: int) -> int:
    return {1: 30, 8: 10, 32: 5, 128: 3}.get(batch, 3)


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up (allocations, kernel choice)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def run_model_bench(
    checkpoint: Path,
    bundle_path: Path,
    threads: int,
    texts: list[str],
    out_dir: Path,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    seq_lengths: tuple[int, ...] = SEQ_LENGTHS,
) -> dict:
    import torch

    from ops.bench.int8_roofline import onednn_isa
    from trainer.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.text_model.eval()
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    variant_dir = tempfile.TemporaryDirectory(prefix="streamscore-int8-attention-")
    engines = {
        "ort-fp32": Scorer(bundle_path, variant="fp32", device="cpu", threads=threads, **WHOLE_CALL),
        "ort-int8": Scorer(bundle_path, variant="int8", device="cpu", threads=threads, **WHOLE_CALL),
        # the same int8 graph with every ORT fusion, SkipLayerNormalization included: what the scorer skips and why
        "ort-int8-all-fusions": Scorer(
            bundle_path, variant="int8", device="cpu", threads=threads, skipped_fusions=(), **WHOLE_CALL
        ),
        # the attention products in int8 too (dynamic quantization of both operands)
        "ort-int8-attention-int8": Scorer(
            attention_int8_bundle(bundle_path, Path(variant_dir.name)),
            variant="int8",
            device="cpu",
            threads=threads,
            **WHOLE_CALL,
        ),
    }
    tok = ckpt.tokenizer
    ids = tok(texts, truncation=True, max_length=256)["input_ids"]
    results: list[Measurement] = []
    for length in seq_lengths:
        for batch in batch_sizes:
            input_ids = fixed_shape_batches(ids, tok.cls_token_id, tok.sep_token_id, batch, length)
            mask = np.ones_like(input_ids)
            t_ids, t_mask = torch.from_numpy(input_ids), torch.from_numpy(mask)

            def eager(m=model) -> None:
                with torch.inference_mode():
                    m(t_ids, t_mask)

            reps = _repeats(batch)
            results.append(Measurement(EAGER, batch, length, _median_seconds(eager, reps), reps))
            results.append(Measurement(BF16, batch, length, _median_seconds(lambda: eager(bf16_model), reps), reps))
            for name, scorer in engines.items():
                results.append(
                    Measurement(
                        name, batch, length, _median_seconds(lambda s=scorer: s._run(input_ids, mask), reps), reps
                    )
                )
    profiled = fixed_shape_batches(ids, tok.cls_token_id, tok.sep_token_id, *OP_PROFILE_SHAPE)
    manifest = engines["ort-int8"].bundle.manifest
    report = {
        "benchmark": "model",
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "threads": threads,
        },
        "providers": {name: s.providers for name, s in engines.items()},
        "onednn_bf16_linear": onednn_isa(threads),
        "bundle": manifest["version"],
        "batch_sizes": list(batch_sizes),
        "seq_lengths": list(seq_lengths),
        "accuracy": manifest.get("validation", {}).get("metrics", {}),
        "results": [
            {
                "engine": m.engine,
                "batch_size": m.batch_size,
                "seq_len": m.seq_len,
                "seq_per_s": round(m.sequences_per_second, 1),
                "ms_per_batch": round(m.seconds_per_batch * 1000, 2),
                "runs": m.runs,
            }
            for m in results
        ],
    }
    report["speedup_vs_eager"] = _speedups(report["results"])
    labels = {name: [p["label"] for p in scorer.sentiment(texts)] for name, scorer in engines.items()}
    labels[BF16] = torch_sentiment_labels(bf16_model, tok, texts)
    report["label_agreement_with_fp32"] = {"texts": len(texts), **label_agreement(labels)}
    variant_dir.cleanup()
    report["op_profile"] = {
        "shape": list(OP_PROFILE_SHAPE),
        "all_fusions": op_profile(bundle_path, threads, profiled, []),
        "scorer": op_profile(bundle_path, threads, profiled, None),
    }
    write_model_report(report, out_dir)
    return report


def _speedups(rows: list[dict]) -> list[dict]:
    eager = {(r["batch_size"], r["seq_len"]): r["seq_per_s"] for r in rows if r["engine"] == EAGER}
    return [
        {
            "engine": r["engine"],
            "batch_size": r["batch_size"],
            "seq_len": r["seq_len"],
            "ratio": round(r["seq_per_s"] / eager[(r["batch_size"], r["seq_len"])], 2),
        }
        for r in rows
        if r["engine"] != EAGER
    ]


def write_model_report(report: dict, out_dir: Path) -> None:
    plt = pyplot()
    write_json(out_dir, "model", report)
    rows = report["results"]
    engines = sorted({r["engine"] for r in rows}, key=lambda e: (e != EAGER, "pytorch" not in e, e))
    ratio = {(s["engine"], s["batch_size"], s["seq_len"]): s["ratio"] for s in report["speedup_vs_eager"]}
    lines = [
        "# Model benchmark: PyTorch eager fp32 / bf16 vs ONNX Runtime fp32 vs ONNX Runtime int8",
        "",
        f"Bundle `{report['bundle']}`; {report['machine']['threads']} threads on {report['machine']['cpus']} CPUs; "
        f"providers {report['providers']}. Sequences per second (median of repeated runs, fixed-shape batches of real "
        "news tokens) and the ratio to PyTorch eager at the same shape. Regenerate with `streamscore bench model`.",
        "",
        f"oneDNN on a bf16 linear layer (the {BF16} engine): {report.get('onednn_bf16_linear', 'not recorded')}.",
        "",
        "| seq len | batch | "
        + " | ".join(engines)
        + " | "
        + " | ".join(f"{e} ÷ eager" for e in engines if e != EAGER)
        + " |",
        "|---|---|" + "---|" * (2 * len(engines) - 1),
    ]
    by_key = {(r["engine"], r["batch_size"], r["seq_len"]): r for r in rows}
    for length in report["seq_lengths"]:
        for batch in report["batch_sizes"]:
            cells = [f"{by_key[(e, batch, length)]['seq_per_s']:.1f}" for e in engines]
            ratios = [f"{ratio[(e, batch, length)]:.2f}×" for e in engines if e != EAGER]
            lines.append(f"| {length} | {batch} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    agreement = report.get("label_agreement_with_fp32")
    if agreement:
        lines += [
            "",
            f"Sentiment labels equal to ORT fp32's on the {agreement['texts']} news texts: "
            + ", ".join(f"{name} {share:.2%}" for name, share in agreement.items() if name != "texts")
            + ".",
        ]
    accuracy = report.get("accuracy") or {}
    if accuracy:
        lines += [
            "",
            "Accuracy of the same bundle on the held-out sets (from its manifest):",
            "",
            "| variant | sentiment accuracy | review RMSE | MovieLens RMSE |",
            "|---|---|---|---|",
        ]
        for variant, m in accuracy.items():
            lines.append(
                f"| {variant} | {m['sentiment_accuracy']:.4f} | {m['review_rmse']:.4f} | {m['movielens_rmse']:.4f} |"
            )
    profile = report.get("op_profile")
    if profile:
        fused, ours = profile["all_fusions"], profile["scorer"]
        ops = list(dict.fromkeys([*fused["op_shares"], *ours["op_shares"]]))[:14]
        lines += [
            "",
            f"Where the int8 model's time goes: ORT's profiler on one call of {profile['shape'][0]} headlines × "
            f"{profile['shape'][1]} tokens, share of kernel time by op type. With every ORT fusion, and as the "
            "scorer runs it "
            f"(skipping {', '.join(ours['skipped_fusions']) or 'nothing'}):",
            "",
            "| op type | all fusions | scorer |",
            "|---|---|---|",
        ]
        lines += [f"| {op} | {fused['op_shares'].get(op, 0):.1%} | {ours['op_shares'].get(op, 0):.1%} |" for op in ops]
        lines.append(f"| **ms per call (profiled)** | {fused['ms_per_call']} | {ours['ms_per_call']} |")
    (out_dir / "model.md").write_text("\n".join(lines) + "\n")

    sizes, lengths = report["batch_sizes"], report["seq_lengths"]
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths) + 2, 4), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], lengths):
        for engine in engines:
            ys = [by_key[(engine, b, length)]["seq_per_s"] for b in sizes]
            ax.plot(sizes, ys, "o-", label=engine)
        ax.set(
            xscale="log", yscale="log", title=f"sequence length {length}", xlabel="batch size", ylabel="sequences / s"
        )
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"MiniLM-L6 multi-task model, {report['machine']['threads']} threads")
    fig.tight_layout()
    fig.savefig(out_dir / "model.png", dpi=110)
    plt.close(fig)
