"""Helpers of the HAT benchmark and report scripts: loading a supernet to measure, writing results."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from linas.spaces import get_space
from supernets.transformer.checkpoint import WEIGHTS, load_supernet
from supernets.transformer.model import SuperTransformer

RESULTS = Path(__file__).resolve().parents[2] / "results" / "hat"
CHECKPOINT = RESULTS / "multi30k"


def supernet_or_random(checkpoint: str | Path | None, space: str = "hat_cpu", vocab_size: int = 8000,
                       qkv_dim: int = 192) -> tuple[SuperTransformer, Any, str]:
    """The trained supernet when ``checkpoint`` holds one, else random weights (fine for timing)."""
    if checkpoint is not None and (Path(checkpoint) / WEIGHTS).is_file():
        net, tokenizer, meta = load_supernet(checkpoint)
        return net, tokenizer, f"{checkpoint} (update {meta['step']}, sha256 {meta['sha256']})"
    torch.manual_seed(0)
    return SuperTransformer(get_space(space), vocab_size, qkv_dim).eval(), None, "random weights"


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with the machine, thread count and versions alongside."""
    import sacrebleu
    import tokenizers
    import transformers

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload,
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "load_average_1m": os.getloadavg()[0]},
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "tokenizers": tokenizers.__version__, "sacrebleu": sacrebleu.__version__},
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    p.write_text(json.dumps(payload, indent=2) + "\n")
    return p
