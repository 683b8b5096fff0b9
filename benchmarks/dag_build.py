"""Time the paper-scale dry run as README.md and config/README.md print it,
`snakemake --configfile config/paper.yaml -n`, run from
the root of a fresh clone of this repository (every job pending: the largest DAG; config/config.yaml present, as
for a user), and split it into Snakemake's start-up, parsing the workflow (`--list-rules`, which loads the same
config and runs its checks) and building the DAG.  Target: the whole dry run <= 5 s.  Rounds are interleaved;
medians are printed.

    python benchmarks/dag_build.py [--configfile config/paper.yaml] [--rounds 3]

Where Slurm is installed but its controller does not answer, importing the Slurm executor plugin
waits on `scontrol show config` (retries, ~9 s) in every Snakemake call; the first line says so.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return wall, out.stdout + out.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default=ROOT / "config/paper.yaml")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "merino-workflow"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        base = [sys.executable, "-m", "snakemake"]  # in the clone's root, as a user types it
        configfile = Path(args.configfile).resolve()
        commands = {
            "plugin import": [sys.executable, "-c", "import snakemake_executor_plugin_slurm"],
            "parse": [*base, "--list-rules", "--configfile", str(configfile)],
            "dry run": [*base, "--quiet", "rules", "-n", "--configfile", str(configfile)],
        }
        walls = {name: [] for name in commands}
        jobs = None
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                wall, log = timed(cmd, clone)
                walls[name].append(wall)
                if name == "dry run":
                    jobs = int(re.search(r"^total\s+(\d+)$", log, re.M).group(1))
        median = {name: statistics.median(w) for name, w in walls.items()}
    print(
        f"Slurm executor plugin import: {median['plugin import']:.2f} s"
        + (
            " (Slurm installed but not answering: every Snakemake call waits this long)"
            if median["plugin import"] > 2
            else ""
        )
    )
    print(f"parse the workflow (start-up, config checks): {median['parse']:.2f} s")
    print(
        f"dry run of the whole DAG ({jobs} jobs): {median['dry run']:.2f} s (target <= 5 s), "
        f"of which building the DAG {median['dry run'] - median['parse']:.2f} s"
    )


if __name__ == "__main__":
    main()
