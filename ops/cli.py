"""The ``streamscore`` command: one entry point for every stage.

Stage code is imported inside each command so that, for example, ``streamscore worker`` never loads torch.
Results go to stdout, everything else (errors, progress, summaries of a file being written) to stderr, so
``score --output -`` and ``--json`` stay parseable. Exit codes are :class:`ExitCode`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streamscore.errors import StreamscoreError
from streamscore.logs import configure_logging
from streamscore.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fine-tune, export and serve the streamscore model.")
console = Console()
err_console = Console(stderr=True)


class ExitCode(IntEnum):
    """What a ``streamscore`` command's exit status means (documented in docs/operations.md)."""

    OK = 0
    FAILURE = 1
    """A runtime failure: a service unreachable, a file unreadable, a stage that could not finish."""
    USAGE = 2
    """The command line itself is wrong (click's own code for unknown options and bad values)."""
    REFUSED = 3
    """A model was refused: the export's parity or int8 gate, or the retrain gate."""
    NOTHING_TO_LEARN = 4
    """``retrain``: too little new data since the champion was trained."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def _print_version(value: bool) -> None:
    if value:
        from streamscore import __version__

        typer.echo(f"streamscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level", case_sensitive=False, help="Log level of this command (default: STREAMSCORE_LOG_LEVEL)."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The one log control: ``--log-level`` here, else STREAMSCORE_LOG_LEVEL; a worker's Faust logs follow it."""
    import os

    settings = get_settings()
    if log_level is not None and log_level.value != settings.log_level:
        os.environ["STREAMSCORE_LOG_LEVEL"] = log_level.value  # child processes (demo workers) inherit it
        get_settings.cache_clear()
        settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _fail(exc: BaseException, code: ExitCode | None = None) -> None:
    """Say why on stderr and exit: a refused model gets its own code, anything else is a runtime failure."""
    from export.errors import ToleranceExceeded

    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
    if code is None:
        code = ExitCode.REFUSED if isinstance(exc, ToleranceExceeded) else ExitCode.FAILURE
    raise typer.Exit(code=int(code))


def print_summary(metrics: dict) -> None:
    """The headline figures of an evaluation, beside their baselines."""
    s, r, mr = metrics["sentiment"], metrics["review_rating"], metrics["movielens_rating"]
    table = Table(title=f"Evaluation ({metrics['profile']} profile)")
    for column in ("task", "metric", "model", "baseline"):
        table.add_column(column)
    table.add_row(
        "sentiment",
        "accuracy / macro-F1",
        f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}",
        f"majority {s['majority_class_accuracy']:.3f}",
    )
    table.add_row(
        "review rating",
        "MAE / RMSE",
        f"{r['model']['mae']:.3f} / {r['model']['rmse']:.3f}",
        f"mean {r['baseline_mean']['mae']:.3f} / {r['baseline_mean']['rmse']:.3f}",
    )
    table.add_row(
        "movielens rating",
        "RMSE",
        f"{mr['model']['rmse']:.4f}",
        f"bias {mr['user_item_bias']['rmse']:.4f} · MF {mr['matrix_factorisation']['rmse']:.4f} · mean "
        f"{mr['global_mean']['rmse']:.4f}",
    )
    rec = metrics["recommender"]
    baselines = rec.get("baselines", {})
    table.add_row(
        "movielens top-10",
        "nDCG@10 / HR@10",
        f"{rec['model']['ndcg@10']:.4f} / {rec['model']['hr@10']:.3f}",
        " · ".join(f"{name.split(' ')[0]} {b['ndcg@10']:.4f}" for name, b in baselines.items()),
    )
    console.print(table)


class TrainProfile(StrEnum):
    default = "default"
    quick = "quick"


@app.command()
def train(
    profile: Annotated[TrainProfile, typer.Option(help="Training profile.")] = TrainProfile.default,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<profile>-<timestamp>).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run in --out from its last finished epoch.")
    ] = False,
    lora: Annotated[
        bool, typer.Option(help="Parameter-efficient fine-tuning: LoRA adapters on the encoder (peft).")
    ] = False,
    epochs: Annotated[int | None, typer.Option(help="Override the profile's epoch count.")] = None,
    distill_alpha: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Weight of the teacher's soft labels in the sentiment loss (0: none)."),
    ] = None,
    distill_temperature: Annotated[
        float | None, typer.Option(min=0.1, help="Softmax temperature of the distillation term.")
    ] = None,
    keep_links: Annotated[
        bool,
        typer.Option(
            help="Tokenize links as they are instead of as one placeholder word (for texts whose links carry meaning)."
        ),
    ] = False,
    soup: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Fine-tune this many copies (training seeds seed, seed+1, …) and keep the mean of their weights: "
            "one model at serving, that many times the text training.",
        ),
    ] = None,
    sentiment_file: Annotated[
        Path | None, typer.Option(help="Your own text,label file instead of the news set.")
    ] = None,
    reviews_file: Annotated[
        Path | None, typer.Option(help="Your own text,rating file instead of the clothing reviews.")
    ] = None,
    interactions_file: Annotated[
        Path | None, typer.Option(help="Your own user_id,item_id,rating,timestamp file.")
    ] = None,
    items_file: Annotated[
        Path | None, typer.Option(help="item_id,text file that goes with --interactions-file.")
    ] = None,
) -> None:
    """Fine-tune the multi-task model, then evaluate it and write the report into the run folder."""
    from trainer.datasets import DataSources
    from trainer.evaluation import evaluate_checkpoint
    from trainer.profiles import get_profile
    from trainer.report import write_report
    from trainer.training import run_training

    settings = get_settings()
    try:
        chosen = get_profile(profile.value).with_overrides(
            epochs=epochs,
            lora=lora or None,
            collapse_links=False if keep_links else None,
            distill_alpha=distill_alpha,
            distill_temperature=distill_temperature,
            soup=soup,
        )
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    run_dir = out or settings.runs_dir / f"{chosen.name}{'-lora' if chosen.lora else ''}-{datetime.now():%Y%m%d-%H%M%S}"
    if resume and out is None:
        raise typer.BadParameter("--resume needs --out pointing at the interrupted run")
    sources = DataSources(settings.data_dir, sentiment_file, reviews_file, interactions_file, items_file)
    try:
        checkpoint = run_training(settings, chosen, sources, run_dir, resume=resume)
        evaluation = evaluate_checkpoint(checkpoint, settings)
    except StreamscoreError as exc:
        _fail(exc)
        return
    files = write_report(evaluation, run_dir / "report")
    print_summary(evaluation.metrics)
    console.print(f"checkpoint: {checkpoint}\nreport: {files[1]}")


@app.command()
def teacher(
    out: Annotated[Path, typer.Option(help="Where the teacher's logits and provenance go.")] = Path(
        "trainer/teacher_labels"
    ),
    epochs: Annotated[int, typer.Option(min=1, help="Fine-tuning epochs.")] = 3,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear warm-up, then decay).")] = 2e-5,
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast for the matmuls (fp32 master weights).")] = True,
) -> None:
    """One-off (about 25 minutes on 2 cores, never in CI): fine-tune the all-mpnet-base-v2 teacher on the
    sentiment train split and write its logits on every training headline, for distilling the served student."""
    from trainer.teacher import TeacherRecipe, train_teacher

    settings = get_settings()
    try:
        report = train_teacher(
            settings.data_dir, settings.cache_dir, out, TeacherRecipe(epochs=epochs, lr=lr, bf16=bf16)
        )
    except StreamscoreError as exc:
        _fail(exc)
        return
    test = report["test"]
    console.print(
        f"teacher test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}, negative F1 "
        f"{test['per_class']['negative']['f1']:.4f}; written: {out}"
    )


@app.command()
def sweep(
    variant: Annotated[
        list[str] | None,
        typer.Option(help="A variant to run (repeat; default: every one, see trainer/sentiment_recipes.py)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where each variant's result and the report go.")] = Path(
        "docs/results/sentiment-sweep"
    ),
) -> None:
    """One-off (about 12 minutes a variant on 2 cores, R-Drop and fp32 longer; never in CI): train each sentiment
    recipe for the served MiniLM-L6 on the sentiment task alone, choose one on dev, and report dev, test and
    alert quality for all.
    Finished variants are kept in --out and not trained again."""
    from ops.sentiment_sweep import run_sweep

    try:
        report = run_sweep(get_settings(), out, variant or None)
    except (StreamscoreError, KeyError) as exc:
        _fail(exc)
        return
    for r in report["variants"]:
        console.print(
            f"{r['variant']:<18} dev acc {r['dev']['accuracy']:.4f} macro-F1 {r['dev']['macro_f1']:.4f}  "
            f"test acc {r['test']['accuracy']:.4f} neg F1 {r['test']['per_class']['negative']['f1']:.4f}"
        )
    console.print(f"chosen on dev: {report['chosen']}; written: {out / 'sweep.md'}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder written by `streamscore train`.")],
    out: Annotated[Path | None, typer.Option(help="Report folder (default: <checkpoint>/../report).")] = None,
) -> None:
    """Rerun the evaluation of a checkpoint and rewrite metrics.json, report.md and the plots."""
    from trainer.evaluation import evaluate_checkpoint
    from trainer.report import write_report

    try:
        evaluation = evaluate_checkpoint(checkpoint, get_settings())
    except StreamscoreError as exc:
        _fail(exc)
        return
    files = write_report(evaluation, out or checkpoint.parent / "report")
    print_summary(evaluation.metrics)
    console.print(f"report: {files[1]}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder written by `streamscore train`.")],
    out: Annotated[
        Path, typer.Option(help="Models folder: the bundle goes to <out>/<version>, the pointer to <out>/current.")
    ] = Path("models"),
    current: Annotated[bool, typer.Option(help="Point <out>/current at the new bundle.")] = True,
    max_accuracy_drop: Annotated[float, typer.Option(help="Refuse int8 if sentiment accuracy drops by more.")] = 0.01,
    max_rmse_increase: Annotated[float, typer.Option(help="Refuse int8 if a rating RMSE rises by more.")] = 0.02,
    atol: Annotated[float, typer.Option(help="Max |ONNX − PyTorch| on held-out texts.")] = 1e-4,
) -> None:
    """Export a checkpoint to a validated ONNX bundle (fp32 + int8 + user–item head) with a manifest."""
    from export.exporter import ExportLimits, export_bundle, sizes_mb

    try:
        bundle = export_bundle(
            checkpoint, out, ExportLimits(atol, max_accuracy_drop, max_rmse_increase), make_current=current
        )
    except StreamscoreError as exc:
        _fail(exc)
        return
    validation = bundle.manifest["validation"]
    fp32, int8 = validation["metrics"]["fp32"], validation["metrics"]["int8"]
    console.print(f"bundle {bundle.version} at {bundle.path} (sizes MB: {sizes_mb(bundle)})")
    console.print(
        f"parity max |diff| {validation['parity']['text']['max_abs_diff']:.2e}; providers {validation['providers']}"
    )
    console.print(
        f"fp32: accuracy {fp32['sentiment_accuracy']:.4f}, review RMSE {fp32['review_rmse']:.4f}, MovieLens RMSE "
        f"{fp32['movielens_rmse']:.4f}\n"
        f"int8: accuracy {int8['sentiment_accuracy']:.4f}, review RMSE {int8['review_rmse']:.4f}, MovieLens RMSE "
        f"{int8['movielens_rmse']:.4f}"
    )


class ScoreTask(StrEnum):
    sentiment = "sentiment"
    review_rating = "review-rating"
    embed = "embed"


class Variant(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    int8 = "int8"


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="A bundle folder, or a models folder with a `current` pointer.")] = Path(
        "models/current"
    ),
    task: Annotated[ScoreTask, typer.Option(help="What to compute for each row.")] = ScoreTask.sentiment,
    input: Annotated[
        str, typer.Option("--input", help="CSV or JSONL file with a `text` column; - for JSONL on stdin.")
    ] = "-",
    output: Annotated[str, typer.Option("--output", help="CSV or JSONL file; - for JSONL on stdout.")] = "-",
    variant: Annotated[Variant, typer.Option(help="auto is int8 on CPU, fp32 on GPU.")] = Variant.auto,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    id_column: Annotated[str, typer.Option(help="Column copied to the output as `id`.")] = "id",
) -> None:
    """Score a file with a bundle: one output row per input row, errors as rows with their reason."""
    from ops.file_scoring import score_file
    from streamscore.scorer import Scorer

    try:
        scorer = Scorer(model, variant=variant.value)  # type: ignore[arg-type]
        counts = score_file(scorer, task.value, input, output, text_column, id_column)
    except (StreamscoreError, ValueError, OSError) as exc:
        _fail(exc)
        return
    err_console.print(
        f"{counts['scored']} scored, {counts['errors']} error rows; model {scorer.version}, providers "
        f"{scorer.providers}"
    )


@app.command("worker")
def run_worker(
    web_port: Annotated[
        int | None, typer.Option(help="Port of /metrics, /health and /ready (default: STREAMSCORE_WORKER_WEB_PORT).")
    ] = None,
) -> None:
    """Run one streaming worker (the Faust app `worker.app`); start several and they share the partitions."""
    import os

    if web_port is not None:
        os.environ["STREAMSCORE_WORKER_WEB_PORT"] = str(web_port)
        get_settings.cache_clear()
    settings = get_settings()
    port = settings.worker_web_port
    from worker.app import app as faust_app

    faust_level = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}.get(
        settings.log_level, "warn"
    )
    sys.argv = ["streamscore worker", "worker", "--loglevel", faust_level, "--web-port", str(port)]
    faust_app.main()


@app.command()
def replay(
    news: Annotated[
        int, typer.Option(help="Financial news headlines (held-out set), stamped news-spacing apart.")
    ] = 300,
    clicks: Annotated[int, typer.Option(help="Most recent MovieLens ratings, as clicks in time order.")] = 300,
    cold_users: Annotated[int, typer.Option(help="New users (unknown to the model) clicking popular movies.")] = 2,
    surge: Annotated[
        str | None, typer.Option(help="Ticker that gets a burst of real negative headlines mid-stream.")
    ] = None,
    surge_size: Annotated[int, typer.Option(help="Headlines in the surge.")] = 30,
    bad: Annotated[bool, typer.Option(help="Add one record of every kind of bad input.")] = False,
    all_items: Annotated[
        bool, typer.Option(help="Replay the whole MovieLens catalog, not only the clicked and popular movies.")
    ] = False,
    rate: Annotated[float, typer.Option(help="Events per second; 0 sends as fast as possible.")] = 0.0,
    news_spacing: Annotated[float, typer.Option(help="Seconds between generated news timestamps.")] = 30.0,
    run: Annotated[
        str | None,
        typer.Option(help="Id prefix of this replay (default: from the clock, so a rerun is new events)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the news order and the surge's headlines.")] = 13,
    catalog_wait: Annotated[
        float, typer.Option(help="Seconds to wait after the items, so clicks find them embedded.")
    ] = 10.0,
) -> None:
    """Produce real-data streams from the shared datasets to Kafka: items, clicks, news (and a surge)."""
    import time

    from ops.replay import Scenario, produce
    from streamscore.security import kafka_python_options
    from streamscore.topics import Topics

    settings = get_settings()
    scenario = Scenario(
        news=news,
        clicks=clicks,
        cold_users=cold_users,
        surge_ticker=surge,
        surge_size=surge_size,
        news_spacing_s=news_spacing,
        bad=bad,
        all_items=all_items,
        seed=seed,
        run=run or f"r{int(time.time())}",
    )
    try:
        scenario.build(settings.data_dir, Topics.from_settings(settings))
    except OSError as exc:
        _fail(OSError(f"{exc} (set STREAMSCORE_DATA_DIR)"))
        return
    security = kafka_python_options(settings)
    catalog = scenario.catalog()
    counts = produce(settings.kafka_bootstrap, catalog, rate=rate, **security)
    if catalog:
        time.sleep(catalog_wait)
    counts.update(produce(settings.kafka_bootstrap, scenario.stream(), rate=rate, **security))
    console.print(f"produced {sum(counts.values())} records: {counts}")


@app.command()
def demo(
    news: Annotated[int, typer.Option(help="News headlines to replay.")] = 1200,
    clicks: Annotated[int, typer.Option(help="MovieLens clicks to replay.")] = 2000,
    rate: Annotated[float, typer.Option(help="Replay rate, events per second (0: as fast as possible).")] = 400.0,
    surge: Annotated[
        str | None,
        typer.Option(
            help="Ticker of the injected negative-news surge [default: ACME, or ACME2, ACME3… once the database "
            "has news about it: an earlier surge is in its baseline]."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    timeout: Annotated[float, typer.Option(help="Give up waiting for the results after this many seconds.")] = 600.0,
) -> None:
    """The whole system on one machine: stack, model (quick training unless a bundle exists), workers,
    a real-data replay with a surge, and a live summary; stops what it started."""
    from ops.demo import run_demo

    try:
        snap = run_demo(get_settings(), news, clicks, rate, surge, workers, timeout)
    except StreamscoreError as exc:
        _fail(exc)
        return
    raised = [a for a in snap.alerts if a["status"] == "raised"]
    console.print(f"alerts raised: {len(raised)} ({', '.join(sorted({a['entity'] for a in raised})) or 'none'})")


BENCH_OUT = Path("bench-results")
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks (JSON, markdown, PNG) written to --out (default: bench-results/)."
)
app.add_typer(bench_app, name="bench")


@bench_app.command("model")
def bench_model_command(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint for the PyTorch eager side.")] = Path(
        "runs/default/checkpoint"
    ),
    model: Annotated[Path, typer.Option(help="Bundle exported from that checkpoint (or a models folder).")] = Path(
        "models/current"
    ),
    threads: Annotated[int, typer.Option(help="Threads for every engine.")] = 2,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
    texts: Annotated[int, typer.Option(help="News texts used to build the batches.")] = 2000,
) -> None:
    """PyTorch eager fp32 and bf16 vs ONNX Runtime fp32 vs int8 at batch 1/8/32/128 and length 64/128."""
    from ops.bench.model_bench import run_model_bench
    from trainer.data.financial_news import load_financial_news

    settings = get_settings()
    try:
        _, test = load_financial_news(settings.data_dir)
        report = run_model_bench(checkpoint, model, threads, test.texts[:texts], out)
    except StreamscoreError as exc:
        _fail(exc)
        return
    key = {(s["engine"], s["batch_size"], s["seq_len"]): s["ratio"] for s in report["speedup_vs_eager"]}
    console.print(
        f"ORT int8 ÷ eager at batch 32, length 64: {key[('ort-int8', 32, 64)]:.2f}×; fp32 ÷ eager: "
        f"{key[('ort-fp32', 32, 64)]:.2f}×"
    )
    console.print(f"written: {out / 'model.json'}, {out / 'model.md'}, {out / 'model.png'}")


@bench_app.command("roofline")
def bench_roofline_command(
    model: Annotated[Path, typer.Option(help="Bundle to place against the roofline (or a models folder).")] = Path(
        "models/current"
    ),
    threads: Annotated[int, typer.Option(help="Threads for every engine (the worker's default uses every core).")] = 2,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
    quick: Annotated[
        bool, typer.Option(help="Short timings (a smoke test of the harness, not figures to quote).")
    ] = False,
) -> None:
    """This CPU's matrix units and int8 GEMM roofline, measured; the served int8 model against it; ORT's
    graph-optimisation levels on it (JSON, markdown, PNG)."""
    from ops.bench.int8_roofline import run_roofline_bench
    from trainer.data.financial_news import load_financial_news

    try:
        _, test = load_financial_news(get_settings().data_dir)
        report = run_roofline_bench(model, threads, test.texts[:2000], out, quick)
    except StreamscoreError as exc:
        _fail(exc)
        return
    position = report["model"]
    console.print(
        f"int8 roofline {report['int8_roofline_gops']} GOPS; the model: {position['gops_over_whole_call']} GOPS "
        f"per call ({position['share_of_roofline_whole_call']:.0%}), {position['gops_inside_int8_ops']} inside its "
        f"int8 ops; written: {out / 'roofline.md'}"
    )


@bench_app.command("e2e")
def bench_e2e_command(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint for the naive PyTorch-eager baseline consumer.")] = Path(
        "runs/default/checkpoint"
    ),
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
    quick: Annotated[bool, typer.Option(help="Tiny runs (a smoke test of the harness, not figures to quote).")] = False,
) -> None:
    """The whole pipeline on this machine: capacity, rate ladder, latency, batch-policy sweep, efficiency,
    naive baseline and scaling, side by side in one run (JSON, markdown, PNG)."""
    from ops.bench.pipeline_bench import run_e2e_bench

    try:
        report = run_e2e_bench(get_settings(), out, checkpoint, quick)
    except StreamscoreError as exc:
        _fail(exc)
        return
    news, clicks = report["paths"]["news"], report["paths"]["clicks"]
    console.print(
        f"news {news['capacity']['events_per_s']} ev/s ({report['efficiency']['share_of_model_only']:.0%} of "
        "model-only, "
        f"{report['naive_baseline']['pipeline_ratio']}× naive); clicks {clicks['capacity']['events_per_s']} ev/s; "
        f"written: {out / 'e2e.md'}"
    )


@bench_app.command("overlap")
def bench_overlap_command(
    rounds: Annotated[int, typer.Option(min=1, help="Drains per mode (interleaved; medians reported).")] = 3,
    events: Annotated[int, typer.Option(min=100, help="Headlines per drain.")] = 1500,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """The news path with its agent waiting for each batch or gathering while the model scores, and the store
    overlap off and on, beside the same scorer alone (JSON, markdown, PNG)."""
    from ops.bench.store_overlap import run_overlap_bench

    try:
        report = run_overlap_bench(get_settings(), out, rounds, events)
    except StreamscoreError as exc:
        _fail(exc)
        return
    figures = ", ".join(
        f"{label} {row['events_per_s']} ({row['share_of_model_only']:.0%})" for label, row in report["modes"].items()
    )
    ceiling = report["model_only"]["events_per_s"]
    console.print(f"news path: {figures}; model-only: {ceiling}; written: {out / 'store_overlap.md'}")


class ProfiledPath(StrEnum):
    news = "news"
    clicks = "clicks"


@bench_app.command("profile")
def bench_profile_command(
    path: Annotated[ProfiledPath, typer.Option(help="The worker path to profile.")] = ProfiledPath.news,
    label: Annotated[
        str, typer.Option(help="Name of this run in the report (e.g. before / after a change).")
    ] = "current",
    seconds: Annotated[float, typer.Option(help="How long py-spy samples the worker.")] = 20.0,
    events: Annotated[int, typer.Option(help="Backlog drained for the unprofiled capacity figure.")] = 1500,
    note: Annotated[
        str, typer.Option(help="What this run measures (the code or settings it differs by), shown in the report.")
    ] = "",
    rate: Annotated[
        float, typer.Option(help="0: profile a drain; else events arrive at this many per second (latency measured).")
    ] = 0.0,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """Where one worker's CPU goes on a path (py-spy), by pipeline stage and by function; labelled runs of
    the same path are laid side by side in profile.md / profile.png."""
    from ops.bench.profile import run_profile

    try:
        report = run_profile(get_settings(), path.value, label, out, events, seconds, note, rate)
    except StreamscoreError as exc:
        _fail(exc)
        return
    stages = ", ".join(f"{name} {share:.0%}" for name, share in list(report["stages"].items())[:4])
    console.print(
        f"{path} [{label}]: {report['capacity_events_per_s']} ev/s unprofiled; {stages}; written: {out / 'profile.md'}"
    )


@bench_app.command("soak")
def bench_soak_command(
    minutes: Annotated[float, typer.Option(help="How long to keep the load on.")] = 10.0,
    rate: Annotated[float, typer.Option(help="Events per second (news and clicks from the shared datasets).")] = 150.0,
    sample_s: Annotated[float, typer.Option(help="Seconds between samples of memory and progress.")] = 5.0,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """One worker under steady load: memory after warm-up must stay flat (< 10 %) and the backlog bounded."""
    from ops.bench.soak import run_soak

    try:
        report = run_soak(get_settings(), minutes, rate, out, sample_s)
    except StreamscoreError as exc:
        _fail(exc)
        return
    console.print(
        f"memory growth after warm-up {report['memory_growth']:.1%} (RSS {report['rss_after_warmup_mb']} → "
        f"{report['rss_end_mb']} MB); "
        f"backlog max {report['max_backlog_first_half']} / {report['max_backlog_second_half']} events (first / "
        "second half); "
        f"written: {out / 'soak.md'}"
    )


@bench_app.command("clicks")
def bench_clicks_command(
    against: Annotated[
        str, typer.Option(help="The git revision to run beside this checkout (default: before the ranker).")
    ] = "c218dd2",
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """The click path of this checkout beside another revision's, in one run: capacity, sustained rate and
    latency of one worker (JSON, markdown, PNG)."""
    from ops.bench.clicks_bench import run_clicks_bench

    try:
        report = run_clicks_bench(get_settings(), out, against)
    except StreamscoreError as exc:
        _fail(exc)
        return
    for name, row in report["revisions"].items():
        console.print(
            f"{name}: capacity {row['capacity']['events_per_s']} clicks/s, sustained {row['sustained_events_per_s']}"
        )
    console.print(f"ratio {report['ratio_capacity']}×; written: {out / 'clicks.md'}")


@bench_app.command("retrain")
def bench_retrain_command(
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """Wall time and peak memory of one retrain (dry run) at three sizes of stored interactions."""
    from ops.bench.retrain_bench import run_retrain_bench

    try:
        report = run_retrain_bench(get_settings(), out)
    except StreamscoreError as exc:
        _fail(exc)
        return
    for row in report["sizes"]:
        console.print(f"{row['stored_clicks']:>7,} clicks: {row['wall_s']} s, peak {row['peak_rss_mb']:.0f} MB")
    console.print(f"written: {out / 'retrain.md'}")


@bench_app.command("alerts")
def bench_alerts_command(
    bundle: Annotated[
        list[str],
        typer.Option(
            help="label=PATH of a bundle to compare (repeat; e.g. --bundle old=models/a --bundle new=models/b)."
        ),
    ],
    tickers: Annotated[int, typer.Option(min=2, help="Surge tickers (and as many calm ones).")] = 20,
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
) -> None:
    """Precision and recall of raised alerts on a labelled surge scenario, the same replay for every bundle."""
    from ops.bench.alert_quality import run_alert_quality

    bundles = {}
    for entry in bundle:
        label, sep, path = entry.partition("=")
        if not sep or not label or not path:
            raise typer.BadParameter(f"--bundle wants label=PATH, not {entry!r}")
        bundles[label] = Path(path)
    try:
        report = run_alert_quality(get_settings(), bundles, out, tickers)
    except (StreamscoreError, ValueError, TimeoutError) as exc:
        _fail(exc)
        return
    for label, r in report["results"].items():
        console.print(f"{label}: precision {r['precision']:.3f}, recall {r['recall']:.3f} ({r['model_version']})")
    console.print(f"written: {out / 'alerts.md'}")


@bench_app.command("recommender")
def bench_recommender_command(
    out: Annotated[
        Path, typer.Option(help="Output folder (the repository's own figures: docs/benchmarks).")
    ] = BENCH_OUT,
    dense_items: Annotated[int, typer.Option(help="Largest catalog part fit by dense inversion.")] = 10_000,
) -> None:
    """The served ranker's fit time, peak memory, bundle size and per-click latency at the real catalog
    and at ~30 k and ~100 k items (MovieLens replicated)."""
    from ops.bench.recommender_bench import run_recommender_bench

    try:
        report = run_recommender_bench(get_settings().data_dir, out, dense_items=dense_items)
    except StreamscoreError as exc:
        _fail(exc)
        return
    for row in report["sizes"]:
        console.print(
            f"{row['items']:>7,} items: fit {row['fit_seconds']} s, peak {row['peak_rss_mb']:.0f} MB, "
            f"per click p50 {row['per_click_ms_p50']} ms"
        )
    console.print(f"written: {out / 'recommender.md'}")


@app.command()
def retrain(
    since: Annotated[
        str | None, typer.Option(help="Learn from stored events from this time on (ISO-8601, or a look-back: 30d).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build and judge the challenger, publish nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
    every: Annotated[
        str | None, typer.Option(help="Run again at this interval until stopped (e.g. 1h); serving never pauses.")
    ] = None,
    keep_refused: Annotated[bool, typer.Option(help="Keep a refused challenger's bundle for inspection.")] = False,
    public: Annotated[
        bool, typer.Option(help="Join the public training sets to the stored events (else the stored events alone).")
    ] = True,
) -> None:
    """Retrain from what the workers stored; publish the challenger only if it beats the gate.

    Exit codes: 0 published (or, with --dry-run, would be), 3 refused, 4 nothing to learn, 1 error."""
    import json as json_module
    import time

    from ops.retrain import retrain as run_retrain
    from ops.time_windows import parse_interval, parse_since

    settings = get_settings()
    try:
        start = parse_since(since) if since else None
        interval = parse_interval(every) if every else None
    except StreamscoreError as exc:
        _fail(exc)
        return
    while True:
        try:
            result = run_retrain(settings, since=start, dry_run=dry_run, keep_refused=keep_refused, public=public)
        except StreamscoreError as exc:
            if interval is None:
                _fail(exc)
                return
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        else:
            if as_json:
                typer.echo(json_module.dumps(result.to_dict(), default=str))
            else:
                console.print(
                    f"{result.decision}: {escape(result.reason)} (champion {result.champion}, challenger "
                    f"{result.challenger or '—'})",
                    soft_wrap=True,
                    highlight=False,
                )
            if interval is None:
                raise typer.Exit(code=result.exit_code)
        time.sleep(interval)


@app.command("event-schemas")
def event_schemas(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schema files.")] = Path("docs/schemas"),
) -> None:
    """Write the JSON Schema of every topic's events (generated from the pydantic models)."""
    import json

    from streamscore.events import json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / f"{name}.schema.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {len(json_schemas())} schemas to {out}")


@app.command("config-doc")
def config_doc(
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("docs/configuration.md"),
) -> None:
    """Write the configuration reference, generated from the settings' descriptions."""
    from streamscore.settings import configuration_markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(configuration_markdown())
    console.print(f"wrote {out}")


stack_app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker and PostgreSQL cluster.")
db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL schema.")
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")


@stack_app.command("up")
def stack_up_command(
    topics: Annotated[bool, typer.Option(help="Create the topics.")] = True,
    migrations: Annotated[bool, typer.Option(help="Apply the SQL migrations.")] = True,
    brokers: Annotated[
        int | None,
        typer.Option(min=1, max=9, help="Kafka brokers to run (default STREAMSCORE_KAFKA_BROKERS, 1)."),
    ] = None,
) -> None:
    """Start Kafka (KRaft) and PostgreSQL unless already running, create topics, migrate the schema."""
    from ops.stack.manager import stack_up

    try:
        report = stack_up(get_settings(), with_topics=topics, with_migrations=migrations, brokers=brokers)
    except StreamscoreError as exc:
        _fail(exc)
        return
    for key, value in report.items():
        console.print(f"{key}: {value}")


@stack_app.command("down")
def stack_down_command() -> None:
    """Stop the processes that `stack up` started (and only those)."""
    from ops.stack.manager import stack_down

    for key, stopped in stack_down(get_settings()).items():
        console.print(f"{key}: {'stopped' if stopped else 'not started by stack up'}")


@stack_app.command("status")
def stack_status_command() -> None:
    """Show whether each service answers, with its PID and data folder."""
    from ops.stack.manager import stack_status

    for service, fields in stack_status(get_settings()).items():
        console.print(f"[bold]{service}[/]: " + ", ".join(f"{k}={v}" for k, v in fields.items()))


@db_app.command("migrate")
def db_migrate_command(
    schema: Annotated[str | None, typer.Option(help="Target schema (default: the connection's).")] = None,
) -> None:
    """Apply pending migrations from sql/ with yoyo-migrations."""
    from streamscore.db.connection import READER_ROLE, RETRAINER_ROLE, WRITER_ROLE, admin_url
    from streamscore.db.migrate import migrate, set_role_passwords

    settings = get_settings()
    try:
        applied = migrate(admin_url(settings), schema)
    except StreamscoreError as exc:
        _fail(exc)
        return
    console.print(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")
    passwords = {
        role: secret.get_secret_value()
        for role, secret in (
            (WRITER_ROLE, settings.writer_password),
            (READER_ROLE, settings.reader_password),
            (RETRAINER_ROLE, settings.retrainer_password),
        )
        if secret is not None
    }
    if passwords:
        console.print(f"passwords set for: {', '.join(set_role_passwords(admin_url(settings), passwords))}")


@db_app.command("status")
def db_status_command(
    schema: Annotated[str | None, typer.Option(help="Target schema (default: the connection's).")] = None,
) -> None:
    """Every shipped migration: applied or pending, and whether it has a rollback file."""
    from streamscore.db.connection import admin_url
    from streamscore.db.migrate import migration_status

    try:
        rows = migration_status(admin_url(get_settings()), schema)
    except StreamscoreError as exc:
        _fail(exc)
        return
    table = Table("migration", "state", "rollback file")
    for row in rows:
        table.add_row(row["id"], "applied" if row["applied"] else "pending", "yes" if row["rollback"] else "no")
    console.print(table)


@db_app.command("rollback")
def db_rollback_command(
    steps: Annotated[int, typer.Option(min=1, help="How many of the newest applied migrations to undo.")] = 1,
    schema: Annotated[str | None, typer.Option(help="Target schema (default: the connection's).")] = None,
) -> None:
    """Undo the newest applied migrations with their shipped .rollback.sql files (newest first)."""
    from streamscore.db.connection import admin_url
    from streamscore.db.migrate import rollback

    try:
        rolled = rollback(admin_url(get_settings()), steps, schema)
    except StreamscoreError as exc:
        _fail(exc)
        return
    console.print(f"rolled back: {', '.join(rolled) if rolled else 'nothing (none applied)'}")


@db_app.command("prune")
def db_prune_command(
    older_than: Annotated[
        str, typer.Option(help="Delete history stored longer ago than this (30d, 12h) or before an ISO-8601 time.")
    ],
    dry_run: Annotated[bool, typer.Option(help="Only count what would be deleted.")] = False,
    batch: Annotated[int, typer.Option(min=100, help="Rows per delete transaction.")] = 10_000,
) -> None:
    """Retention: delete results, clicks, served lists, alert changes, dead letters and feedback stored before
    the cutoff (in batches, safe while workers run). The catalog, users' state and model lineage are kept."""
    from rich.progress import Progress

    from ops.time_windows import parse_since
    from streamscore.db.connection import admin_url, make_engine
    from streamscore.db.retention import HISTORY, count_older, prune

    try:
        cutoff = parse_since(older_than)
    except StreamscoreError as exc:
        _fail(exc)
        return
    engine = make_engine(admin_url(get_settings()))
    try:
        if dry_run:
            counts = count_older(engine, cutoff)
        else:
            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task("pruning", total=len(HISTORY))
                counts = prune(engine, cutoff, batch, lambda table, n: progress.update(task, description=table))
    except Exception as exc:  # noqa: BLE001 - a database error is reported, not a traceback
        _fail(exc)
        return
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} (stored before {cutoff:%Y-%m-%d %H:%M} UTC): " + ", ".join(f"{t} {n}" for t, n in counts.items())
    )


alerts_app = typer.Typer(no_args_is_help=True, help="Alert delivery.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("forward")
def alerts_forward_command(
    once: Annotated[bool, typer.Option(help="Deliver what is waiting on the topic, then exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON on exit.")] = False,
) -> None:
    """Deliver every alert state change on the `alerts` topic to STREAMSCORE_ALERT_WEBHOOK_URL (Alertmanager
    or Slack), once each, committing an offset only after its delivery succeeded."""
    import json as json_module

    from ops.alert_forwarder import AlertForwarder

    try:
        report = AlertForwarder(get_settings()).run(once=once)
    except StreamscoreError as exc:
        _fail(exc)
        return
    except KeyboardInterrupt:
        raise typer.Exit(code=int(ExitCode.OK)) from None
    if as_json:
        typer.echo(json_module.dumps(report.to_dict()))
    else:
        console.print(
            f"delivered {report.delivered}, duplicates skipped {report.duplicates}, dead-lettered "
            f"{report.dead_lettered} ({report.attempts} attempts)"
        )


topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def topics_create_command() -> None:
    """Create the configured topics that do not exist yet (partitions, compaction of the item catalog)."""
    from streamscore.security import kafka_python_options
    from streamscore.topics import Topics, create_topics

    settings = get_settings()
    created = create_topics(
        settings.kafka_bootstrap,
        Topics.from_settings(settings).specs_for(settings),
        **kafka_python_options(settings),
    )
    console.print(f"created: {', '.join(created) if created else 'nothing (all exist)'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
