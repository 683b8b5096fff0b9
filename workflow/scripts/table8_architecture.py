"""Rule table8_architecture: a paper Table 8 structure as an architecture file."""

import sys

from merino.paper import load_reference, paper_structures
from merino.provenance import provenance, write_json

sys.stderr = open(snakemake.log[0], "w", buffering=1)

name = snakemake.wildcards.structure
arch = paper_structures(load_reference())[name]
write_json(
    snakemake.output[0],
    {"architecture": arch.to_dict(), "source": "paper Table 8", "provenance": provenance({"structure": name})},
)
