"""Time Eq. 7's matrix entropy as the lookup table computes it (log det(I + G / eps^2) by Cholesky,
merino.entropy.matrix_entropy) against the eigendecomposition of the same Gram matrix (the baseline, measured in
the same run on the same draws), over shapes of the paper's search space (Table 7): rectangular ones, where the
Gram matrix dominates, and square ones, which need the most draws.  Prints per shape the two times, their ratio
and the largest relative difference of the values (rounding only), then the totals.

    python benchmarks/lookup_speed.py [--threads 2] [--draws 3]
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from merino.entropy import matrix_entropy, random_matrix

SHAPES = [(1024, 4096), (1024, 1024), (768, 3072), (512, 512), (256, 2048), (64, 1024)]


def eigen_entropy(w: torch.Tensor, epsilon: float) -> float:
    """The baseline: the s_j^2 as eigenvalues of the smaller Gram matrix."""
    w = w.double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return float((torch.linalg.eigvalsh(gram).clamp_min(0) / epsilon**2).log1p().sum() / math.log(math.e))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draws", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    total = {"cholesky": 0.0, "eigen": 0.0}
    for m, n in SHAPES:
        times, diff = {"cholesky": 0.0, "eigen": 0.0}, 0.0
        for draw in range(args.draws):  # interleaved, same matrices
            w = random_matrix(m, n, 0.02, seed=draw)
            values = {}
            for name, f in (("cholesky", matrix_entropy), ("eigen", eigen_entropy)):
                started = time.perf_counter()
                values[name] = f(w, 0.02)
                times[name] += time.perf_counter() - started
            diff = max(diff, abs(values["cholesky"] / values["eigen"] - 1))
        for k in total:
            total[k] += times[k]
        print(
            f"{m:5d} x {n:5d}: cholesky {times['cholesky']:.3f} s, eigen {times['eigen']:.3f} s, "
            f"ratio {times['eigen'] / times['cholesky']:.2f}x, max rel diff {diff:.1e}"
        )
    print(
        f"all shapes, {args.draws} draws each, {args.threads} threads: cholesky {total['cholesky']:.2f} s, "
        f"eigen {total['eigen']:.2f} s: {total['eigen'] / total['cholesky']:.2f}x faster"
    )


if __name__ == "__main__":
    main()
