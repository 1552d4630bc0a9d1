"""Benchmark 4: inference speed and size of the model with k layers kept, against the ideal from FLOPs.

For every k the classifier (encoder + pooler + head) is pruned to its first k layers with prunetune's
surgery and timed on real IndicNews headlines: latency of one sentence (median of many calls) and
throughput of batches. The ideal speed-up is the FLOPs ratio, embeddings and head included:

    per token, one layer:  2 * (4 h^2 + 2 h f) + 4 s h      (QKV + output projections, FFN, attention)
    per sequence, head:    2 * (h^2 + h c)                    (pooler, classifier)
    embeddings:            lookups and a LayerNorm, ~ 10 h per token

    bench/speed.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def flops(num_layers: int, hidden: int, ffn: int, seq: int, labels: int) -> float:
    per_layer = 2 * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * seq * hidden
    return seq * (10 * hidden + num_layers * per_layer) + 2 * (hidden * hidden + hidden * labels)


def timed(fn: Any, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--data", default="indicnews:english:shc")
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import torch
    import transformers
    from prunetune.trainables.data import sample_texts
    from prunetune.trainables.models import load_classifier, load_tokenizer
    from prunetune.trainables.surgery import keep_layers, num_layers, parameter_count

    from prunetune.config import DataConfig

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    texts = list(sample_texts(DataConfig(source=args.data, on_bad_row="skip"), args.batch_size))
    tokenizer = load_tokenizer(args.model)
    labels = tuple(str(i) for i in range(12))
    full = load_classifier(args.model, labels)
    total = num_layers(full)
    config = full.config
    one = tokenizer(texts[:1], truncation=True, max_length=args.max_length, padding="max_length", return_tensors="pt")
    batch = tokenizer(texts, truncation=True, max_length=args.max_length, padding="max_length", return_tensors="pt")
    print(
        f"{args.model}: {total} layers, hidden {config.hidden_size}; sequences padded to {args.max_length} tokens; "
        f"{args.threads} threads; torch {torch.__version__}"
    )
    print(
        "| layers kept | parameters | size MB | latency ms (1 sentence) | speed-up | throughput sent/s "
        f"(batch {args.batch_size}) | speed-up | ideal (FLOPs) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base_latency = base_throughput = None
    full_flops = flops(total, config.hidden_size, config.intermediate_size, args.max_length, len(labels))
    for kept in range(total, 0, -1):
        model = load_classifier(args.model, labels)
        keep_layers(model, range(kept))
        model.eval()
        with torch.inference_mode():
            latency = statistics.median(timed(lambda m=model: m(**one), args.repeats * 3)) * 1000
            seconds = statistics.median(timed(lambda m=model: m(**batch), args.repeats))
        throughput = len(texts) / seconds
        base_latency = base_latency or latency
        base_throughput = base_throughput or throughput
        ideal = full_flops / flops(kept, config.hidden_size, config.intermediate_size, args.max_length, len(labels))
        params = parameter_count(model)
        size = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        print(
            f"| {kept} | {params:,} | {size:.1f} | {latency:.2f} | {base_latency / latency:.2f}x | "
            f"{throughput:.0f} | {throughput / base_throughput:.2f}x | {ideal:.2f}x |"
        )


if __name__ == "__main__":
    main()
