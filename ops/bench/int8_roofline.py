"""``streamscore bench roofline``: what this CPU's matrix units give, and where the served int8 model stands.

Measured here, never quoted from a datasheet, in one process and one run:

1. **which units there are**: the CPU flags the kernel exposes (``/proc/cpuinfo``: AVX-512 VNNI, AVX-512 BF16,
   AVX-VNNI, AMX tile/int8/bf16), and the ISA oneDNN dispatches for a bf16 ``torch.nn.functional.linear``
   (its own verbose log, in a child process);
2. **the roofline**: operations per second of one matrix product, with the worker's thread count, at the
   model's own shapes (2 000 tokens × 384 → 384 / 1 536, 1 536 → 384) and at a large square shape, for ONNX
   Runtime's int8 GEMM (``MatMulInteger``, u8 × s8 → s32, what MLAS runs for every int8 layer), the same GEMM
   behind dynamic quantisation of its float input (``DynamicQuantizeMatMul``, the fused op the model runs),
   ONNX Runtime fp32 and PyTorch fp32 / bf16, and bf16 again in a child process with oneDNN held below AMX
   (``ONEDNN_MAX_CPU_ISA``), which is what the tile unit gives a bf16 layer. The int8 roofline is the best int8
   figure, and its operations per cycle per core say which unit ran it (``int8_unit``);
3. **the model against it**: the int8 GEMM work of one call (Σ K·N of the quantised layers × tokens, from the
   bundle's graph) over the call's time and over the time ORT's profiler puts in those ops;
4. **ORT's own remedies** for the time outside the GEMMs: the four graph-optimisation levels on the int8
   model, at the worker's call shape.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ops.bench.output import pyplot, write_json

TOKENS = 2000
"""Rows of every GEMM: the tokens of one worker call (about 100 headlines of 20 tokens)."""
SHAPES = {
    "attention projection 384→384": (TOKENS, 384, 384),
    "feed-forward in 384→1536": (TOKENS, 384, 1536),
    "feed-forward out 1536→384": (TOKENS, 1536, 384),
    "square 2048³": (2048, 2048, 2048),
}
UNITS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
INT8_GEMM_OPS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QLinearMatMul")
OPT_LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
VNNI_OPS_PER_CYCLE = 256
"""int8 operations per cycle per core of AVX-512 VNNI at best: two 512-bit ``vpdpbusd`` (64 multiply-adds each)
a cycle. 256-bit AVX-VNNI, or AVX-512 without VNNI (three instructions a product), give at most half."""
AMX_OPS_PER_CYCLE = 2048
"""int8 operations per cycle per core of AMX at best: one ``tdpbusd`` (16 × 16 × 64 multiply-adds) every 16
cycles."""
CLOCK_MARGIN = 1.5
"""How far above the nominal clock /proc/cpuinfo shows a core may really run (turbo is invisible in a VM): a
unit is credited with a figure only beyond what the slower one gives even at 1.5× the nominal clock."""
NO_AMX_ISA = "AVX512_CORE_BF16"
"""oneDNN's ``ONEDNN_MAX_CPU_ISA`` for the same CPU with AMX left out: AVX-512 with its bf16 dot products."""


def cpu_units() -> dict[str, bool]:
    """The matrix and vector units the kernel says this CPU has (and lets processes use)."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {unit: unit in flags for unit in UNITS}


def nominal_mhz() -> float | None:
    """The clock ``/proc/cpuinfo`` reports (nominal in a VM; turbo is not visible from inside)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1])
    return None


def onednn_isa(threads: int) -> str:
    """The ISA line oneDNN logs when it runs a bf16 linear layer here (a child process, so its verbose mode
    stays out of this one)."""
    code = (
        f"import torch; torch.set_num_threads({threads}); x = torch.randn(256, 384).bfloat16(); "
        "w = torch.randn(1536, 384).bfloat16(); torch.nn.functional.linear(x, w)"
    )
    env = os.environ | {"ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    isa = [line.split("isa:", 1)[1].strip() for line in out.splitlines() if "isa:" in line]
    kernels = sorted({m.group(1) for m in re.finditer(r",(brg[^,]*|jit[^,]*|gemm[^,]*|ref[^,]*),", out)})
    return "; ".join(isa[:1] + ([f"kernels: {', '.join(kernels)}"] if kernels else [])) or "oneDNN logged nothing"


def int8_unit(ops_per_cycle_per_core: float | None, units: dict[str, bool]) -> str:
    """Which unit ran an int8 GEMM, judged from what it achieved: only AMX's tiles go beyond what AVX-512 VNNI
    can give, and only VNNI beyond what AVX2 can. Measured, because a library may hold a unit back (small
    shapes, a kernel it was not built with, a process the kernel did not grant the tile state)."""
    if ops_per_cycle_per_core is None:
        return "unknown (no clock figure)"
    if ops_per_cycle_per_core > VNNI_OPS_PER_CYCLE * CLOCK_MARGIN:
        return "AMX (beyond what AVX-512 VNNI can reach)"
    if ops_per_cycle_per_core > VNNI_OPS_PER_CYCLE / 2 * CLOCK_MARGIN:
        held = "; AMX is there but not used" if units.get("amx_int8") else ""
        return f"AVX-512 VNNI (beyond 256-bit AVX-VNNI or AVX-512 without VNNI){held}"
    held = "; AMX is there but not used" if units.get("amx_int8") else ""
    return f"AVX-512 VNNI or narrower (within what 256-bit units reach){held}"


def torch_gops(dtype_name: str, threads: int, min_seconds: float) -> dict[str, float]:
    """PyTorch GOPS of ``torch.nn.functional.linear`` in ``dtype_name`` at every shape: one function for this
    process and for the child that runs it with AMX held back."""
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    gops = {}
    for label, (m, k, n) in SHAPES.items():
        x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        with torch.inference_mode():
            seconds = _best_seconds(lambda x=x, w=w: torch.nn.functional.linear(x, w), min_seconds)
        gops[label] = 2 * m * k * n / seconds / 1e9
    return gops


def bf16_gops_without_amx(threads: int, min_seconds: float) -> dict[str, float]:
    """:func:`torch_gops` in bf16 with oneDNN held to AVX-512 (``ONEDNN_MAX_CPU_ISA``), in a child process
    because oneDNN reads the cap once: beside ``torch-bf16`` it is what AMX gives a bf16 layer, on one CPU."""
    code = (
        "import json; from ops.bench.int8_roofline import torch_gops; "
        f"print(json.dumps(torch_gops('bfloat16', {threads}, {min_seconds})))"
    )
    env = os.environ | {"ONEDNN_MAX_CPU_ISA": NO_AMX_ISA}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ort_options(threads: int, level: str = "ORT_ENABLE_ALL"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3
    return options


def _gemm_session(kind: str, m: int, k: int, n: int, threads: int):
    """A one-node ONNX graph: ``kind`` of an (m, k) input by a constant (k, n) weight."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "MatMulInteger":
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w"),
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero"),
        ]
        node = helper.make_node("MatMulInteger", ["a", "w", "a_zero"], ["y"])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])
        feed = {"a": rng.integers(0, 256, (m, k), dtype=np.uint8)}
        opset = [helper.make_opsetid("", 17)]
    elif kind == "DynamicQuantizeMatMul":
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
        inits = [
            numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w"),
            numpy_helper.from_array(np.array([0.01], dtype=np.float32), "w_scale"),
            numpy_helper.from_array(np.array([0], dtype=np.int8), "w_zero"),
        ]
        node = helper.make_node("DynamicQuantizeMatMul", ["a", "w", "w_scale", "w_zero"], ["y"], domain="com.microsoft")
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
        feed = {"a": rng.standard_normal((m, k), dtype=np.float32)}
        opset = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    else:
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
        inits = [numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")]
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
        feed = {"a": rng.standard_normal((m, k), dtype=np.float32)}
        opset = [helper.make_opsetid("", 17)]
    graph = helper.make_graph([node], kind, [a], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=opset, ir_version=9)
    session = ort.InferenceSession(model.SerializeToString(), _ort_options(threads), providers=["CPUExecutionProvider"])
    return session, feed


def _best_seconds(run, min_seconds: float) -> float:
    """The fastest of repeated runs for at least ``min_seconds``: the roofline is what the unit can do."""
    run()
    best, began = float("inf"), time.perf_counter()
    while time.perf_counter() - began < min_seconds:
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_sweep(threads: int, min_seconds: float) -> list[dict]:
    torch_figures = {
        "torch-fp32": torch_gops("float32", threads, min_seconds),
        "torch-bf16": torch_gops("bfloat16", threads, min_seconds),
        "torch-bf16-no-amx": bf16_gops_without_amx(threads, min_seconds),
    }
    rows = []
    for label, (m, k, n) in SHAPES.items():
        ops = 2 * m * k * n
        figures: dict[str, float] = {}
        for kind, name in (
            ("MatMulInteger", "ort-int8-gemm"),
            ("DynamicQuantizeMatMul", "ort-int8-dynamic"),
            ("MatMul", "ort-fp32"),
        ):
            session, feed = _gemm_session(kind, m, k, n, threads)
            figures[name] = ops / _best_seconds(lambda s=session, f=feed: s.run(None, f), min_seconds) / 1e9
        figures |= {name: by_shape[label] for name, by_shape in torch_figures.items()}
        rows.append({"shape": label, "m": m, "k": k, "n": n} | {e: round(g, 1) for e, g in figures.items()})
    return rows


def int8_gemm_macs_per_token(model_path: Path) -> int:
    """Σ K·N over the int8 products with a constant weight in the bundle's graph: the multiply-adds one token
    costs in the quantised layers (attention's two activation × activation products are fp32, not counted)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type in INT8_GEMM_OPS and len(node.input) > 1 and len(shapes.get(node.input[1], [])) == 2:
            k, n = shapes[node.input[1]]
            macs += k * n
    return macs


def model_position(bundle_path: Path, threads: int, ids: np.ndarray, roofline_gops: float) -> dict:
    """The int8 model's call at the worker's shape: GEMM work over the whole call and over the GEMM ops'
    own time (ORT's profiler, the scorer's fusions)."""
    from ops.bench.model_bench import op_profile

    profile = op_profile(bundle_path, threads, ids, None)
    macs = int8_gemm_macs_per_token(bundle_path / "model.int8.onnx")
    tokens = int(ids.size)
    gemm_share = sum(share for op, share in profile["op_shares"].items() if op in INT8_GEMM_OPS)
    call_s = profile["ms_per_call"] / 1000
    gops_call = 2 * macs * tokens / call_s / 1e9
    gops_in_gemm = gops_call / max(gemm_share, 1e-9)
    return {
        "shape": list(ids.shape),
        "int8_macs_per_token": macs,
        "ms_per_call": profile["ms_per_call"],
        "int8_gemm_share_of_time": round(gemm_share, 3),
        "gops_over_whole_call": round(gops_call, 1),
        "gops_inside_int8_ops": round(gops_in_gemm, 1),
        "share_of_roofline_whole_call": round(gops_call / roofline_gops, 3),
        "share_of_roofline_inside_int8_ops": round(gops_in_gemm / roofline_gops, 3),
        "op_shares": profile["op_shares"],
    }


def opt_levels(bundle_path: Path, threads: int, ids: np.ndarray, min_seconds: float) -> list[dict]:
    """The int8 model under each ORT graph-optimisation level (every fusion the level includes), median ms
    per call at the worker's shape; ``ORT_ENABLE_ALL`` is what the scorer uses, less SkipLayerNormFusion."""
    import onnxruntime as ort

    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    rows = []
    for level in OPT_LEVELS:
        session = ort.InferenceSession(
            str(bundle_path / "model.int8.onnx"), _ort_options(threads, level), providers=["CPUExecutionProvider"]
        )
        session.run(None, feed)
        times, began = [], time.perf_counter()
        while time.perf_counter() - began < min_seconds or len(times) < 5:
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        rows.append({"level": level, "ms_per_call": round(float(np.median(times)) * 1000, 2)})
    base = rows[-1]["ms_per_call"]
    for row in rows:
        row["vs_enable_all"] = round(row["ms_per_call"] / base, 2)
    return rows


def run_roofline_bench(bundle_path: Path, threads: int, texts: list[str], out_dir: Path, quick: bool = False) -> dict:
    import onnxruntime as ort

    from ops.bench.model_bench import OP_PROFILE_SHAPE, fixed_shape_batches
    from streamscore.scorer import Scorer

    scorer = Scorer(bundle_path, variant="int8", device="cpu", threads=threads)
    tokenizer, version = scorer.tokenizer, scorer.version
    del scorer
    tokenizer.no_truncation()
    ids = [e.ids for e in tokenizer.encode_batch(list(texts))]
    call = fixed_shape_batches(ids, tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"), *OP_PROFILE_SHAPE)
    seconds = 0.2 if quick else 2.0
    sweep = gemm_sweep(threads, seconds)
    roofline = max(row["ort-int8-gemm"] for row in sweep)
    units, mhz = cpu_units(), nominal_mhz()
    per_cycle = round(roofline * 1e3 / (threads * mhz), 1) if mhz else None
    report = {
        "benchmark": "roofline",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "threads": threads,
        "onnxruntime": ort.__version__,
        "bundle": version,
        "cpu_units": units,
        "onednn_bf16_linear": onednn_isa(threads),
        "gemm_gops": sweep,
        "int8_roofline_gops": roofline,
        "nominal_mhz": mhz,
        "int8_ops_per_cycle_per_core": per_cycle,
        "int8_unit": int8_unit(per_cycle, units),
        "model": model_position(bundle_path, threads, call, roofline),
        "opt_levels": opt_levels(bundle_path, threads, call, seconds),
    }
    write_roofline_report(report, out_dir)
    return report


def write_roofline_report(report: dict, out_dir: Path) -> None:
    write_json(out_dir, "roofline", report)
    units = ", ".join(f"{u} {'yes' if v else 'no'}" for u, v in report["cpu_units"].items())
    engines = [k for k in report["gemm_gops"][0] if k not in ("shape", "m", "k", "n")]
    model = report["model"]
    lines = [
        "# The int8 GEMM roofline of this CPU, and where the served model stands",
        "",
        f"{report['machine']['cpus']} CPUs, {report['threads']} threads, ONNX Runtime {report['onnxruntime']}, "
        f"bundle `{report['bundle']}`; one run of `streamscore bench roofline`.",
        "",
        f"CPU units the kernel exposes: {units}.",
        "",
        f"oneDNN on a bf16 linear layer: {report['onednn_bf16_linear']}.",
        "",
        "GOPS (10⁹ multiply-or-add per second, best of repeated runs) of one matrix product:",
        "",
        "| shape (M×K → N) | " + " | ".join(engines) + " |",
        "|---|" + "---|" * len(engines),
    ]
    for row in report["gemm_gops"]:
        lines.append(
            f"| {row['shape']} ({row['m']}×{row['k']}→{row['n']}) | " + " | ".join(str(row[e]) for e in engines) + " |"
        )
    amx_gain = [row["torch-bf16"] / row["torch-bf16-no-amx"] for row in report["gemm_gops"]]
    lines += [
        "",
        f"What oneDNN's AMX kernels give a bf16 product (`torch-bf16` ÷ `torch-bf16-no-amx`, "
        f"`ONEDNN_MAX_CPU_ISA={NO_AMX_ISA}`): {min(amx_gain):.2f}–{max(amx_gain):.2f}× over these shapes.",
    ]
    lines += [
        "",
        f"**int8 roofline (best `MatMulInteger`): {report['int8_roofline_gops']} GOPS**: "
        f"{report['int8_ops_per_cycle_per_core']} int8 operations per cycle per core at the nominal "
        f"{report['nominal_mhz']} MHz. AVX-512 VNNI gives at most {VNNI_OPS_PER_CYCLE} (two 512-bit `vpdpbusd` a "
        f"cycle), 256-bit AVX-VNNI or AVX-512 without VNNI half of that, AMX {AMX_OPS_PER_CYCLE} (one `tdpbusd` "
        f"of 16 × 16 × 64 every 16 cycles). **The unit that ran it: {report['int8_unit']}.**",
        "",
        f"The model, one call of {model['shape'][0]} × {model['shape'][1]} tokens: {model['int8_macs_per_token']:,} "
        f"int8 multiply-adds per token, {model['ms_per_call']} ms per call (profiled), "
        f"{model['int8_gemm_share_of_time']:.0%} of it in the int8 ops: "
        f"{model['gops_over_whole_call']} GOPS over the whole call "
        f"({model['share_of_roofline_whole_call']:.0%} of the roofline), {model['gops_inside_int8_ops']} GOPS "
        f"inside the int8 ops ({model['share_of_roofline_inside_int8_ops']:.0%}).",
        "",
        "ORT graph-optimisation levels on the int8 model at that shape:",
        "",
        "| level | ms per call | ÷ ENABLE_ALL |",
        "|---|---|---|",
    ]
    lines += [f"| {r['level']} | {r['ms_per_call']} | {r['vs_enable_all']} |" for r in report["opt_levels"]]
    (out_dir / "roofline.md").write_text("\n".join(lines) + "\n")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        ax.bar(
            [x + i * width for x in range(len(report["gemm_gops"]))],
            [row[engine] for row in report["gemm_gops"]],
            width,
            label=engine,
        )
    ax.axhline(model["gops_over_whole_call"], color="black", ls="--", lw=1, label="int8 model, whole call")
    ax.axhline(model["gops_inside_int8_ops"], color="grey", ls=":", lw=1, label="int8 model, inside its int8 ops")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(report["gemm_gops"]))])
    ax.set_xticklabels([row["shape"] for row in report["gemm_gops"]], fontsize=7)
    ax.set_ylabel("GOPS")
    ax.set_title("One matrix product by engine, and the served int8 model")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(out_dir / "roofline.png", dpi=120)
    plt.close(fig)
