"""Where a Snakemake run spent its time: job seconds per rule, from the run's log.

    python benchmarks/job_times.py [.snakemake/log/<run>.snakemake.log]   # default: the newest log here

prints, per rule, the number of jobs and their summed wall seconds (start to finish of each job, so jobs that ran
side by side both count), then the run's wall time from its first start to its last finish.  docs/benchmarks.md
quotes it for the main job.
"""

import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISH = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_times(text: str) -> tuple[dict[str, list[float]], float]:
    """rule -> the wall seconds of each of its jobs, and the run's wall seconds (first start to last finish)."""
    now = first = last = None
    started, pending, per_rule = {}, None, defaultdict(list)
    for line in text.splitlines():
        if m := STAMP.match(line):
            now = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or now
        elif m := START.match(line):
            pending = m.group(1)
        elif (m := JOBID.match(line)) and pending:
            started[m.group(1)], pending = now, None
        elif m := FINISH.match(line):
            per_rule[m.group(2)].append((now - started.pop(m.group(1))).total_seconds())
            last = now
    return per_rule, (last - first).total_seconds() if first and last else float("nan")


def main() -> None:
    logs = sorted(Path(".snakemake/log").glob("*.snakemake.log"))
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (logs[-1] if logs else None)
    if path is None or not path.is_file():
        sys.exit("no Snakemake log: give its path (.snakemake/log/<run>.snakemake.log)")
    per_rule, wall = job_times(path.read_text())
    print(f"{'rule':28} {'jobs':>5} {'job s':>8}")
    for rule, times in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:28} {len(times):5d} {sum(times):8.0f}")
    total = sum(map(sum, per_rule.values()))
    print(f"{'all jobs':28} {sum(map(len, per_rule.values())):5d} {total:8.0f}   run wall {wall:.0f} s ({path.name})")


if __name__ == "__main__":
    main()
