"""Convert OFA's ImageNet accuracy predictor (a torch state dict) to the numpy file linas ships.

    python experiments/convert_ofa_predictor.py [../shared/data/ofa/acc_predictor.pth]

Writes ``linas/data/ofa/acc_predictor.npz``: ``w0..w3`` (in x out, float32, the
transposed ``Linear`` weights, bit for bit) and ``b0..b3`` of
``Linear(128,400) ReLU Linear(400,400) ReLU Linear(400,400) ReLU Linear(400,1)``, plus the
SHA-256 of the source file. Needs torch once (``weights_only=True``: no code in the file runs);
linas itself evaluates the predictor in numpy.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

SOURCE = Path("../shared/data/ofa/acc_predictor.pth")
TARGET = Path("linas/data/ofa/acc_predictor.npz")


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    state = torch.load(source, map_location="cpu", weights_only=True)
    expected = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    if list(state) != expected:
        raise SystemExit(f"{source}: unexpected keys {list(state)}")
    arrays = {}
    for i, layer in enumerate((0, 2, 4, 6)):
        arrays[f"w{i}"] = state[f"{layer}.weight"].numpy().astype(np.float32).T.copy()
        arrays[f"b{i}"] = state[f"{layer}.bias"].numpy().astype(np.float32).copy()
    shapes = [arrays[f"w{i}"].shape for i in range(4)]
    assert shapes == [(128, 400), (400, 400), (400, 400), (400, 1)], shapes
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    np.savez_compressed(TARGET, source_sha256=np.array(digest), **arrays)
    print(f"{source} -> {TARGET} ({TARGET.stat().st_size} bytes), sha256 {digest}")


if __name__ == "__main__":
    main()
