"""Rule fig1: average accuracy against latency, bubble area ~ FLOPs (paper Figure 1)."""
import sys
from pathlib import Path

import pandas as pd

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.paper import load_reference, plot_accuracy_latency  # noqa: E402

plot_accuracy_latency(pd.read_csv(snakemake.input.table2), pd.read_csv(snakemake.input.table3), load_reference(),
                      snakemake.output[0], snakemake.params.device)
