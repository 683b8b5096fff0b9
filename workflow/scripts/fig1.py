"""Rule fig1: average accuracy against latency, bubble area ~ FLOPs (paper Figure 1)."""

import sys

import pandas as pd

from merino.paper import load_reference, plot_accuracy_latency

sys.stderr = open(snakemake.log[0], "w", buffering=1)

plot_accuracy_latency(
    pd.read_csv(snakemake.input.table2),
    pd.read_csv(snakemake.input.table3),
    load_reference(),
    snakemake.output[0],
    snakemake.params.device,
)
