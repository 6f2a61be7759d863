"""GPU stand-in measurement for the text model, for machines where the bundle cannot travel.

The bundle (90 MB fp32 ONNX) and the checkpoint are larger than what the lent GPU machine accepts per call,
and its own onnxruntime may lack the CUDA provider. Throughput of a transformer does not depend on the
values of its weights, so this script builds the same architecture as the bundle's encoder (MiniLM-L6:
6 layers, hidden 384, 12 heads, FFN 1536) with random weights and measures, on the GPU, PyTorch fp32 and
fp16 — and ONNX Runtime's CUDA provider when that machine's onnxruntime offers it — at the batch sizes and
lengths of `streamscore bench model`. Results are a stand-in for the CUDA rows, and say so.

Run: python3 streamscore/bench/gpu_standin.py OUT_DIR   (needs torch with CUDA and transformers)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

BATCH_SIZES = (1, 8, 32, 128, 512)
SEQ_LENGTHS = (64, 128)


def main(out_dir: Path) -> dict:
    import onnxruntime as ort
    import torch
    from transformers import BertConfig, BertModel

    report: dict = {
        "benchmark": "gpu-standin",
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "ort_available_providers": ort.get_available_providers(),
        "gpu": torch.cuda.get_device_name(0),
        "results": [],
    }
    config = BertConfig(
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        vocab_size=30522,
        max_position_embeddings=512,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = BertModel(config).cuda().eval()

    def measure(fn, batch: int) -> float:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0 or runs < 10:
            fn()
            runs += 1
        torch.cuda.synchronize()
        return batch * runs / (time.perf_counter() - start)

    for dtype, name in ((torch.float32, "torch-cuda-fp32"), (torch.float16, "torch-cuda-fp16")):
        m = model.to(dtype)
        for length in SEQ_LENGTHS:
            for batch in BATCH_SIZES:
                ids = torch.randint(1000, 30000, (batch, length), device="cuda")
                mask = torch.ones_like(ids)
                with torch.inference_mode():
                    rate = measure(lambda: m(input_ids=ids, attention_mask=mask), batch)
                report["results"].append(
                    {"engine": name, "batch_size": batch, "seq_len": length, "seq_per_s": round(rate, 1)}
                )
                print(name, batch, length, round(rate, 1), flush=True)

    if "CUDAExecutionProvider" in ort.get_available_providers():
        path = out_dir / "minilm_random.onnx"
        model.float()
        ids = torch.randint(1000, 30000, (2, 16), device="cuda")
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
            opset_version=17,
            dynamo=False,
        )
        session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        report["ort_session_providers"] = session.get_providers()
        for length in SEQ_LENGTHS:
            for batch in BATCH_SIZES:
                feeds = {"input_ids": ids.new_zeros(0).cpu().numpy()}
                import numpy as np

                feeds = {
                    "input_ids": np.random.randint(1000, 30000, (batch, length)).astype(np.int64),
                    "attention_mask": np.ones((batch, length), dtype=np.int64),
                }
                rate = measure(lambda: session.run(None, feeds), batch)
                report["results"].append(
                    {"engine": "ort-cuda-fp32", "batch_size": batch, "seq_len": length, "seq_per_s": round(rate, 1)}
                )
                print("ort-cuda-fp32", batch, length, round(rate, 1), flush=True)
        path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_standin.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(Path(sys.argv[1]))
