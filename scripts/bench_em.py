"""EM speed and memory: gnngmm's GaussianMixture against scikit-learn, same data, same init.

    python scripts/bench_em.py                      # Reddit-sized: N=232,965, d=64, K=41, full
    python scripts/bench_em.py --n 20000 --iters 3  # quick
    python scripts/bench_em.py --device cuda        # ours on the GPU (scikit-learn stays on CPU)

Both fits start from identical parameters (weights, means, precisions) and run exactly ``--iters``
EM iterations (tol=0). Peak memory is the largest resident-set growth during each fit (sampled
every 2 ms; on CUDA also torch's peak allocated GPU memory). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from gnngmm.mixture import GaussianMixture  # noqa: E402


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the (monotone) high-water mark
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Largest RSS growth over the ``with`` block, sampled on a thread."""

    def __enter__(self):
        self.base = rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.extra_mb = self.peak - self.base


def make_data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """A mixture of k anisotropic Gaussians (random per-component linear maps)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    centers = rng.normal(scale=3.0, size=(k, d))
    maps = rng.normal(scale=1.0 / np.sqrt(d), size=(k, d, d)) + np.eye(d)[None] * 0.5
    x = np.empty((n, d))
    noise = rng.normal(size=(n, d))
    for j in range(k):
        rows = labels == j
        x[rows] = centers[j] + noise[rows] @ maps[j]
    return x


def initial_parameters(x: np.ndarray, k: int, seed: int):
    rng = np.random.default_rng(seed + 1)
    means = x[rng.choice(x.shape[0], size=k, replace=False)]
    precision = np.linalg.inv(np.cov(x, rowvar=False) + 1e-6 * np.eye(x.shape[1]))
    return np.full(k, 1.0 / k), means, np.repeat(precision[None], k, axis=0)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=232_965)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--k", type=int, default=41)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--covariance-type", default="full")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    x = make_data(args.n, args.d, args.k, args.seed)
    weights, means, precisions = initial_parameters(x, args.k, args.seed)
    if args.covariance_type != "full":
        raise SystemExit("the benchmark compares full covariances")
    init = dict(weights_init=weights, means_init=means, precisions_init=precisions, max_iter=args.iters, tol=0.0)
    print(
        f"N={args.n} d={args.d} K={args.k} full covariance, {args.iters} EM iterations, "
        f"{torch.get_num_threads()} torch threads",
        flush=True,
    )

    device = torch.device(args.device)
    x_t = torch.as_tensor(x, dtype=getattr(torch, args.dtype), device=device)
    ours = GaussianMixture(args.k, covariance_type="full", device=device, chunk_size=args.chunk_size, **init)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(), PeakRSS() as mem_ours:
        warnings.simplefilter("ignore")  # tol=0 runs exactly --iters iterations: no ConvergenceWarning wanted
        start = time.perf_counter()
        ours.fit(x_t)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_ours = time.perf_counter() - start
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(
        f"gnngmm : {t_ours:8.2f} s  ({t_ours / args.iters:.3f} s/iter)  lower bound {ours.lower_bound_:.10f}  "
        f"peak +{mem_ours.extra_mb:.0f} MB RSS" + (f", {peak_gpu:.0f} MB GPU" if peak_gpu else ""),
        flush=True,
    )

    result = {
        "n": args.n,
        "d": args.d,
        "k": args.k,
        "iters": args.iters,
        "device": str(device),
        "dtype": args.dtype,
        "seconds_ours": round(t_ours, 3),
        "peak_mb_ours": round(mem_ours.extra_mb, 1),
        "peak_gpu_mb_ours": None if peak_gpu is None else round(peak_gpu, 1),
        "lower_bound_ours": ours.lower_bound_,
    }
    if not args.skip_sklearn:
        from sklearn.mixture import GaussianMixture as SkGMM

        ref = SkGMM(args.k, covariance_type="full", **init)
        with warnings.catch_warnings(), PeakRSS() as mem_sk:
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            ref.fit(x)
            t_sk = time.perf_counter() - start
        print(
            f"sklearn: {t_sk:8.2f} s  ({t_sk / args.iters:.3f} s/iter)  lower bound {ref.lower_bound_:.10f}  "
            f"peak +{mem_sk.extra_mb:.0f} MB RSS",
            flush=True,
        )
        rel = abs(ours.lower_bound_ - ref.lower_bound_) / abs(ref.lower_bound_)
        mean_rel = float(np.abs(ours.means_.cpu().numpy() - ref.means_).max() / np.abs(ref.means_).max())
        result.update(
            seconds_sklearn=round(t_sk, 3),
            peak_mb_sklearn=round(mem_sk.extra_mb, 1),
            speedup=round(t_sk / t_ours, 2),
            ll_rel_diff=float(f"{rel:.3e}"),
            means_rel_diff=float(f"{mean_rel:.3e}"),
        )
        print(f"speedup {t_sk / t_ours:.2f}x at log-likelihood relative difference {rel:.1e}", flush=True)
    else:
        result.update(seconds_sklearn=None, peak_mb_sklearn=None, speedup=None, ll_rel_diff=None)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
