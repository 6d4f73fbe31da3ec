"""Decoding speed of HAT SubTransformers with vs without the key/value cache.

Translates the same source sentences (Multi30k val when ../shared/data is present and a
trained checkpoint exists, random 20-token sources otherwise) with beam search and with
greedy search, once with incremental decoding (cached keys/values and encoder memory
projections) and once recomputing the whole prefix every step.

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_hat_kv_cache.py [--sentences 100]

Writes results/hat/kv_cache.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from supernets.transformer.arch import extreme_configs
from supernets.transformer.data import load_corpus, multi30k, pairs
from supernets.transformer.decoding import generate
from supernets.transformer.reporting import CHECKPOINT, RESULTS, supernet_or_random, write_json
from supernets.transformer.scoring import translate

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "kv_cache.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, tokenizer, weights = supernet_or_random(args.checkpoint)
    use_text = tokenizer is not None and DATA.is_dir()
    if use_text:
        sources = pairs(load_corpus(multi30k(DATA, "val")))[0][: args.sentences]
        inputs = "Multi30k val, first %d sentences" % len(sources)
    else:
        g = torch.Generator().manual_seed(0)
        src = torch.randint(4, net.arch.vocab_size, (args.sentences, 20), generator=g)
        src[:, -1] = net.eos_id
        inputs = "%d random 20-token sources" % args.sentences
    rows = []
    for name, config in zip(("largest", "smallest"), extreme_configs(net.space)):
        net.set_active_subnet(config)
        sub = net.get_active_subnet().eval()
        for beam in (4, 1):
            times = {}
            outputs = {}
            for cache in (True, False):
                start = time.perf_counter()
                if use_text:
                    outputs[cache] = translate(sub, tokenizer, sources, beam=beam, use_cache=cache)
                else:
                    with torch.no_grad():
                        outputs[cache] = [h for i in range(0, len(src), 25)
                                          for h in generate(sub, src[i: i + 25], beam=beam, use_cache=cache)]
                times[cache] = time.perf_counter() - start
            rows.append({"subnet": name, "beam": beam, "with_cache_s": times[True], "without_cache_s": times[False],
                         "speedup": times[False] / times[True], "same_output": outputs[True] == outputs[False]})
            print(rows[-1], flush=True)
    write_json(args.out, {"benchmark": "decoding with vs without the key/value cache", "weights": weights,
                          "inputs": inputs, "results": rows})


if __name__ == "__main__":
    main()
