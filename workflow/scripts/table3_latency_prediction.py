"""Rule table3_latency_prediction: predicted (datasheet roofline) vs the paper's Jetson Nano latency: rho, % error."""

import json
import sys
from pathlib import Path

from merino.paper import latency_prediction_table
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

predicted = json.loads(Path(snakemake.input.predicted).read_text())
df = latency_prediction_table(predicted)
write_table(
    df,
    snakemake.output[0],
    provenance({"datasheet": predicted["protocol"]["datasheet"]}, {"predicted": snakemake.input.predicted}),
)
print(df.to_string(), file=sys.stderr)
