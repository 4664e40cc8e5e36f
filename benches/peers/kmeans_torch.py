"""The indexer peer: PQ codebook training and encoding as a PyTorch user writes them.

Per (kv head, sub-space), batched over all of them: k-means with sampled initialization, 10
iterations, distances by the matmul expansion |x|^2 - 2 x.c + |c|^2 (fp32, the PyTorch default
precision), nearest by argmin, means by scatter_add (an empty cluster keeps its centroid); and
encoding as one such argmin. Shapes as `benches/indexer.rs`: keys [1, 8, 32768, 128] f16 around
64 centers per kv head, (m, c) = (2, 64) and (16, 256).

Timed like the peers in ../shared/peers (triton.testing.do_bench: CUDA events, L2 flushed, median).
Writes JSON with --out DIR.

    python3 kmeans_torch.py [--out DIR]
"""

import argparse
import json
import os

import torch
import triton.testing

B, HKV, N, D = 1, 8, 32768, 128
ITERATIONS = 10


def make_keys(generator):
    centers = torch.rand(HKV, 64, D, device="cuda", generator=generator) * 4 - 2
    pick = torch.randint(0, 64, (HKV, B * N), device="cuda", generator=generator)
    noise = torch.rand(HKV, B * N, D, device="cuda", generator=generator) * 2 - 1
    keys = torch.gather(centers, 1, pick[..., None].expand(-1, -1, D)) + noise
    return keys.half().reshape(HKV, B, N, D).permute(1, 0, 2, 3).contiguous()  # [b, hkv, n, d]


def subvectors(keys, m):
    # [b, hkv, n, d] -> [hkv * m, b * n, d / m] f32
    b, hkv, n, d = keys.shape
    x = keys.float().reshape(b, hkv, n, m, d // m).permute(1, 3, 0, 2, 4)
    return x.reshape(hkv * m, b * n, d // m)


def nearest(x, centroids):
    distances = (x * x).sum(-1, keepdim=True) - 2 * torch.bmm(x, centroids.transpose(1, 2)) \
        + (centroids * centroids).sum(-1)[:, None, :]
    return distances.argmin(-1)


def train(keys, m, c, generator):
    x = subvectors(keys, m)
    s, pooled, ds = x.shape
    first = torch.randperm(pooled, device="cuda", generator=generator)[:c]
    centroids = x[:, first].clone()
    for _ in range(ITERATIONS):
        assignment = nearest(x, centroids)
        sums = torch.zeros(s, c, ds, device="cuda").scatter_add_(1, assignment[..., None].expand(-1, -1, ds), x)
        counts = torch.zeros(s, c, device="cuda").scatter_add_(1, assignment, torch.ones_like(assignment, dtype=torch.float))
        centroids = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], centroids)
    return centroids.reshape(HKV, m, c, ds)


def encode(keys, centroids):
    hkv, m, c, ds = centroids.shape
    x = subvectors(keys, m)
    codes = nearest(x, centroids.reshape(hkv * m, c, ds))  # [hkv * m, b * n]
    return codes.reshape(hkv, m, B, N).permute(2, 0, 3, 1).to(torch.uint8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    generator = torch.Generator(device="cuda").manual_seed(7)
    keys = make_keys(generator)
    rows = []
    for m, c in [(2, 64), (16, 256)]:
        centroids = train(keys, m, c, generator)
        train_ms = triton.testing.do_bench(lambda: train(keys, m, c, generator), warmup=25, rep=200)
        encode_ms = triton.testing.do_bench(lambda: encode(keys, centroids), warmup=25, rep=200)
        row = {"name": f"m{m}_c{c}", "m": m, "c": c, "iterations": ITERATIONS,
               "train_us": train_ms * 1e3, "encode_us": encode_ms * 1e3}
        print(f"torch k-means m{m}_c{c}: train 10 it {row['train_us']:.1f} µs, encode {row['encode_us']:.1f} µs",
              flush=True)
        rows.append(row)
    with open(os.path.join(args.out, "kmeans_torch.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
