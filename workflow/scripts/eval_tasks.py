"""Rule eval_tasks: lm-eval tasks generated from the held-out split, and staged copies of built-in tasks."""

import sys
from pathlib import Path

from merino.corpus import load_corpus
from merino.evaluate import write_staged_tasks
from merino.provenance import provenance, write_json
from merino.tasks import LOCAL_TASKS, write_local_tasks

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, out = snakemake.params, Path(snakemake.output[0])
out.mkdir(parents=True, exist_ok=True)
summary, corpus_sha = {}, None
if any(t in LOCAL_TASKS for t in p.tasks):
    corpus = load_corpus(p.corpus)
    summary = write_local_tasks(corpus.splits["test"], p.local_tasks, out)
    corpus_sha = corpus.checksums["test"]
write_staged_tasks(p.task_data, out / "staged")
write_json(
    out / "tasks.json",
    {
        "tasks": summary,
        "staged": sorted(p.task_data),
        "provenance": provenance(
            {
                "corpus": p.corpus,
                "local_tasks": p.local_tasks,
                "task_data": p.task_data,
                "test_split_sha256": corpus_sha,
            },
            seed=p.local_tasks["multiple_choice"]["seed"],
        ),
    },
)
print(summary, file=sys.stderr)
