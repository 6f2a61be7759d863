"""The ONNX Runtime scorer shared by the worker, the ``score`` command and the benchmarks.

It never imports torch. Provider choice: CUDA (with IO binding) when the CUDA provider really initialises on
a GPU, else CPU with explicit thread settings. onnxruntime-gpu *lists* CUDAExecutionProvider even on a machine
without a GPU and then silently runs on CPU, so the providers reported here are always the ones the session
actually uses (``session.get_providers()``), never the ones requested.

Texts are tokenised with the fast tokenizer, truncated per task, and cut into ONNX Runtime calls of texts of
similar length under a token budget (:mod:`streamscore.call_plan` chooses the cut that wastes the least
compute on padding and per-call cost), each padded only to its longest text; results come back in input
order. On CPU the calls run single-threaded, as many at once as there are threads (``parallel_calls``), from
a small pool of this scorer's own: one ORT session serves concurrent calls, and each call releases the GIL.

The tokenizer comes from the bundle and carries the trainer's text normalisation (links become one
placeholder word, :mod:`trainer.tokenizer`), so nothing here needs to repeat it. CPU sessions skip one ORT
fusion whose CPU kernel is slower than what it replaces (:data:`CPU_SKIPPED_FUSIONS`).

The budget is per ONNX Runtime call and depends on the provider. On CPU, calls of about 2 048 padded tokens
run 1.5× faster per text than calls of 8 192 (measured on MiniLM-L6 int8, two cores): a smaller call's
activations stay in the L2 cache. A GPU wants the opposite, calls large enough to fill it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streamscore.bundle import Bundle, BundleError
from streamscore.call_plan import CALL_COST_TOKENS, CallPlan, cut_into_calls, spread_calls
from streamscore.neighbour_ranker import RANKER_FILE, NeighbourRanker

logger = logging.getLogger(__name__)

Variant = Literal["auto", "fp32", "int8"]
TASK_MAX_LENGTH = {
    "sentiment": "max_length_sentiment",
    "review-rating": "max_length_review",
    "embed": "max_length_item",
}
SENTIMENT_LABELS = ("negative", "neutral", "positive")
TOKENS_PER_CALL = {"CPUExecutionProvider": 2048, "CUDAExecutionProvider": 16384}
CPU_SKIPPED_FUSIONS = ("SkipLayerNormFusion",)
"""ONNX Runtime graph fusions that CPU sessions skip. ORT fuses each residual Add + LayerNormalization of
the int8 graph into one SkipLayerNormalization, and its CPU kernel (ORT 1.31) is 3.7× slower than the two
ops it replaces (2 000 × 384 floats, two threads: 1 776 µs against 185 + 298 µs). MiniLM-L6 has 12 of them.
Skipping the fusion makes the int8 model 1.02–1.31× faster across `streamscore bench model`'s shapes in
two runs (it keeps both side by side, with ORT's own op profile of each). The fp32 graph is not fused that
way and runs the same. CUDA keeps every fusion: the GPU kernel is the fast one there."""


def gpu_present() -> bool:
    """A CUDA device node exists; the CUDA provider listed by onnxruntime-gpu proves nothing by itself."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def load_cuda_libraries() -> None:
    """Load CUDA and cuDNN from NVIDIA's pip wheels when they are installed (the ``cuda`` extra, the worker-gpu
    image); without them onnxruntime-gpu looks on the system library path, as before. Whether CUDA was really
    used is still read from the session's providers, never assumed."""
    import importlib.util

    import onnxruntime as ort

    if importlib.util.find_spec("nvidia") is None or not hasattr(ort, "preload_dlls"):
        return
    try:
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
    except Exception as exc:  # noqa: BLE001 - a partial install must not stop a CPU fallback
        logger.warning("CUDA libraries from the nvidia wheels did not load: %s", exc)


@dataclass
class CallUsage:
    """Running totals of what the text model has been fed: real tokens, tokens with the padding, and calls.
    real ÷ padded is the share of the model's compute that did useful work."""

    calls: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0

    def __add__(self, other: CallUsage) -> CallUsage:
        return CallUsage(
            self.calls + other.calls, self.real_tokens + other.real_tokens, self.padded_tokens + other.padded_tokens
        )


@dataclass(frozen=True)
class TextScores:
    """Outputs for a list of texts, in input order, plus how many tokens each text was cut to."""

    outputs: dict[str, np.ndarray]
    lengths: np.ndarray
    truncated: np.ndarray
    usage: CallUsage
    """What scoring these texts fed the model."""


class TextJob:
    """One batch of texts whose ONNX Runtime calls have been started (:meth:`Scorer.start_texts`).

    ``result()`` waits for the calls and assembles their outputs in input order. ``wait_for_room()`` returns
    once no more than ``queued_ahead`` of its calls still wait for a pool thread (one per thread): the moment
    to prepare and queue the next batch. Any later and the threads run dry while the next batch is
    tokenised and planned (they waited 22 % of a drain when the next batch was handed over only after this
    one's last call had started, since the longest-first order leaves the shortest calls for last); any
    earlier and batches pile up in the pool."""

    def __init__(
        self,
        size: int,
        lengths: np.ndarray,
        truncated: np.ndarray,
        calls: list[np.ndarray],
        output_names: list[str],
        queued_ahead: int,
    ):
        self.size = size
        self.lengths = lengths
        self.truncated = truncated
        self.calls = calls
        self.output_names = output_names
        self.usage = CallUsage()
        """What this batch feeds the model (counted as its calls start)."""
        self.pending: list[Future | list[np.ndarray]] = []
        """Per call, its outputs, or the future of them when it runs in the pool."""
        self._waiting = len(calls)
        self._queued_ahead = queued_ahead
        self._lock = threading.Lock()
        self._room = threading.Event()
        if self._waiting <= queued_ahead:
            self._room.set()

    def run_call(self, run: Callable[[np.ndarray, np.ndarray], list[np.ndarray]], *feeds: np.ndarray) -> list:
        """A pool thread's call of this job: counts itself started, then runs."""
        with self._lock:
            self._waiting -= 1
            if self._waiting <= self._queued_ahead:
                self._room.set()
        return run(*feeds)

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until no more than ``queued_ahead`` of this job's calls wait for a pool thread (at once
        without a pool)."""
        return self._room.wait(timeout)

    def result(self) -> TextScores:
        """Every output of every call, in input order (raises what a call raised)."""
        outputs: dict[str, np.ndarray] = {}
        for call, pending in zip(self.calls, self.pending):
            result = pending.result() if isinstance(pending, Future) else pending
            for name, value in zip(self.output_names, result):
                if name not in outputs:
                    outputs[name] = np.zeros((self.size, *value.shape[1:]), dtype=np.float32)
                outputs[name][call] = value
        return TextScores(outputs, self.lengths, self.truncated, self.usage)


def sentiment_labels(scores: TextScores) -> list[dict]:
    """Per text: the sentiment label, each class's probability, and whether the text was cut."""
    probs = softmax(scores.outputs["sentiment_logits"])
    return [
        {
            "label": SENTIMENT_LABELS[int(p.argmax())],
            **{f"p_{name}": float(v) for name, v in zip(SENTIMENT_LABELS, p)},
            "truncated": bool(t),
        }
        for p, t in zip(probs, scores.truncated)
    ]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def session_options(ort: Any, threads: int, spin: bool) -> Any:
    """CPU session options: ``threads`` intra-op threads, no inter-op pool, ORT's own logging quiet."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle ORT threads spin by default; in a worker that shares two cores with its event loop, the
    # database driver and Kafka, spinning starves them and shows up as latency spikes, not speed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


class Scorer:
    """Scores texts and user–item pairs with a verified bundle."""

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        variant: Variant = "auto",
        device: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int = 0,
        parallel_calls: int = 0,
        token_budget: int = 0,
        call_cost_tokens: int = -1,
        call_plan: CallPlan = "least-cost",
        warm_up: bool = True,
        spin: bool = False,
        skipped_fusions: Sequence[str] | None = None,
        profile_prefix: str | None = None,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.manifest
        self.version = self.bundle.version
        self.embedding_space = str(manifest.get("embedding_space") or self.version)
        """Which vectors ``embed`` returns: a bundle's own version, or the version whose encoder it shares
        (a retrain that froze the encoder), so stored item embeddings stay valid across the swap."""
        self.limits = manifest["text_model"]["max_lengths"]
        self.collapses_links = bool(manifest["text_model"].get("collapses_links", False))
        want_cuda = device == "cuda" or (
            device == "auto" and gpu_present() and "CUDAExecutionProvider" in ort.get_available_providers()
        )
        if variant == "auto":
            variant = "fp32" if want_cuda or "model.int8.onnx" not in manifest["files"] else "int8"
        self.variant = variant
        threads = threads or (os.cpu_count() or 1)
        self.parallel_calls = 1 if want_cuda else min(parallel_calls or threads, threads)
        """Text-model calls run at once, each on ``threads // parallel_calls`` intra-op threads (CPU only)."""
        self.intra_op_threads = max(1, threads // self.parallel_calls)
        options = session_options(ort, self.intra_op_threads, spin)
        providers: list = ["CPUExecutionProvider"]
        if want_cuda:
            load_cuda_libraries()
            providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
        text_file = "model.int8.onnx" if variant == "int8" else "model.onnx"
        self.skipped_fusions = list(
            skipped_fusions if skipped_fusions is not None else () if want_cuda else CPU_SKIPPED_FUSIONS
        )
        # ORT's own profiler, on the text model only (``bench model`` reads where its time goes)
        options.enable_profiling = profile_prefix is not None
        if profile_prefix is not None:
            options.profile_file_prefix = profile_prefix
        try:
            self.text_session = ort.InferenceSession(
                str(self.bundle.file(text_file)), options, providers=providers, disabled_optimizers=self.skipped_fusions
            )
            self.rec_session = ort.InferenceSession(
                str(self.bundle.file("recommender.onnx")),
                session_options(ort, threads, spin),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors on a corrupt graph
            raise BundleError(self.bundle.path, f"ONNX Runtime could not load {text_file}: {exc}") from exc
        self.providers = self.text_session.get_providers()
        self.on_cuda = self.providers[0] == "CUDAExecutionProvider"
        provider = self.providers[0] if self.providers[0] in TOKENS_PER_CALL else "CPUExecutionProvider"
        self.token_budget = token_budget or TOKENS_PER_CALL[provider]
        self.call_cost_tokens = call_cost_tokens if call_cost_tokens >= 0 else CALL_COST_TOKENS[provider]
        self.call_plan = call_plan
        if want_cuda and not self.on_cuda:
            logger.warning("CUDA requested but ONNX Runtime runs on CPU", extra={"providers": ",".join(self.providers)})
        self.output_names = [o.name for o in self.text_session.get_outputs()]
        self.call_pool: ThreadPoolExecutor | None = None
        if self.parallel_calls > 1:
            self.call_pool = ThreadPoolExecutor(self.parallel_calls, thread_name_prefix="streamscore-ort")
            weakref.finalize(self, self.call_pool.shutdown, wait=False)  # a hot-reloaded scorer frees its threads
        self.usage = CallUsage()
        self.tokenizer = Tokenizer.from_file(str(self.bundle.file("tokenizer.json")))
        # set once here, never per call: encoding only reads the tokenizer, so two threads may score at once
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = int(manifest["text_model"].get("pad_token_id", 0))
        rec = json.loads(self.bundle.file("recommender.json").read_text())
        self.user_ids: dict[str, int] = {u: i + 1 for i, u in enumerate(rec["users"])}
        self.item_ids: dict[str, int] = {u: i + 1 for i, u in enumerate(rec["items"])}
        self.popular_items: list[str] = rec["popular_items"]
        if RANKER_FILE not in manifest["files"]:
            raise BundleError(self.bundle.path, "no ranker in this bundle (exported before it existed): export again")
        self.ranker = NeighbourRanker.load(self.bundle.file(RANKER_FILE).parent)
        logger.info(
            "scorer ready", extra={key: ",".join(v) if isinstance(v, list) else v for key, v in self.describe().items()}
        )
        if warm_up:
            self.score_texts(["warm-up"], "sentiment")

    # -- text ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], task: str) -> tuple[list[list[int]], np.ndarray]:
        """Token ids per text, cut to the task's maximum length; also whether each text was cut."""
        limit = int(self.limits[TASK_MAX_LENGTH[task]])
        encodings = self.tokenizer.encode_batch_fast(list(texts))  # ids only: no offsets to compute
        ids = [e.ids for e in encodings]
        truncated = np.array([len(x) > limit for x in ids])
        return [x if len(x) <= limit else x[: limit - 1] + [x[-1]] for x in ids], truncated

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if not self.on_cuda:
            return self.text_session.run(None, feeds)
        import onnxruntime as ort

        binding = self.text_session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        self.text_session.run_with_iobinding(binding)
        return [o.numpy() for o in binding.get_outputs()]

    def score_texts(self, texts: Sequence[str], task: str) -> TextScores:
        """Every text-model output for ``texts`` (the task picks the truncation length)."""
        return self.start_texts(texts, task).result()

    def start_texts(self, texts: Sequence[str], task: str) -> TextJob:
        """Tokenise, plan and start the calls for ``texts``; the job's ``result()`` collects them.

        With a call pool the calls are queued to it and this returns at once, so a caller can prepare its next
        batch (decode, tokenise, plan) while these calls run, and queue that batch's calls before this one's
        last call ends: the pool's threads then never wait for the Python between batches
        (:meth:`TextJob.wait_for_room` says when). Without a pool, or for a single call, the calls run here."""
        ids, truncated = self.encode(texts, task)
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        calls = cut_into_calls(lengths, self.call_plan, self.token_budget, self.call_cost_tokens)
        if self.call_pool is not None:
            calls = spread_calls(lengths, calls, self.parallel_calls)
        pool = self.call_pool if len(calls) > 1 else None
        ahead = self.parallel_calls if pool is not None else len(calls)
        job = TextJob(len(texts), lengths, truncated, calls, self.output_names, ahead)
        for call in calls:  # each call starts as soon as it is padded, so padding the next overlaps it
            input_ids, mask = self._padded(ids, lengths, call)
            job.usage.calls += 1
            job.usage.real_tokens += int(lengths[call].sum())
            job.usage.padded_tokens += mask.size
            if pool is not None:
                job.pending.append(pool.submit(job.run_call, self._run, input_ids, mask))
            else:
                job.pending.append(self._run(input_ids, mask))
        self.usage.calls += job.usage.calls
        self.usage.real_tokens += job.usage.real_tokens
        self.usage.padded_tokens += job.usage.padded_tokens
        return job

    def _padded(self, ids: list[list[int]], lengths: np.ndarray, call: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One call's ``input_ids`` and ``attention_mask``, padded to its longest text."""
        width = int(lengths[call].max())
        batch = np.full((len(call), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(call), width), dtype=np.int64)
        for row, index in enumerate(call):
            seq = ids[index]
            batch[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return batch, mask

    def sentiment(self, texts: Sequence[str]) -> list[dict]:
        return sentiment_labels(self.score_texts(texts, "sentiment"))

    def review_rating(self, texts: Sequence[str]) -> list[dict]:
        scores = self.score_texts(texts, "review-rating")
        probs = softmax(scores.outputs["review_logits"])
        return [
            {"rating": float(r), "stars": int(p.argmax()) + 1, "truncated": bool(t)}
            for r, p, t in zip(scores.outputs["review_rating"], probs, scores.truncated)
        ]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.score_texts(texts, "embed").outputs["embedding"]

    # -- user–item -----------------------------------------------------------------------------------
    def user_index(self, user_id: str) -> int:
        return self.user_ids.get(str(user_id), 0)

    def item_index(self, item_id: str) -> int:
        return self.item_ids.get(str(item_id), 0)

    def score_items(
        self, user_indices: np.ndarray, user_profiles: np.ndarray, item_indices: np.ndarray, item_embeddings: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(score, predicted_rating)``, each ``(n_users, n_items)``: every candidate for every user."""
        score, rating = self.rec_session.run(
            ["score", "predicted_rating"],
            {
                "user_index": np.asarray(user_indices, dtype=np.int64),
                "user_profile": np.asarray(user_profiles, dtype=np.float32),
                "item_index": np.asarray(item_indices, dtype=np.int64),
                "item_embedding": np.asarray(item_embeddings, dtype=np.float32),
            },
        )
        return score, rating

    def describe(self) -> dict:
        return {
            "version": self.version,
            "variant": self.variant,
            "providers": list(self.providers),
            "parallel_calls": self.parallel_calls,
            "intra_op_threads": self.intra_op_threads,
            "tokens_per_call": self.token_budget,
            "call_plan": self.call_plan,
            "call_cost_tokens": self.call_cost_tokens,
            "skipped_fusions": list(self.skipped_fusions),
            "collapses_links": self.collapses_links,
        }
