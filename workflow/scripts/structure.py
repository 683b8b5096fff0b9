"""Rule structure: a paper Table 8 structure as an architecture file."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.paper import load_reference, paper_structures  # noqa: E402
from merino.provenance import provenance, write_json  # noqa: E402

name = snakemake.wildcards.structure
arch = paper_structures(load_reference())[name]
write_json(snakemake.output[0], {"architecture": arch.to_dict(), "source": "paper Table 8",
                                 "provenance": provenance({"structure": name})})
