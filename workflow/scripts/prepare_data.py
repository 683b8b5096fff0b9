"""Rule prepare_data: corpus -> tokenizer -> packed token cache (shared by every model)."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.data import prepare_data  # noqa: E402
from merino.provenance import provenance, write_json  # noqa: E402

meta = prepare_data(snakemake.params.data, snakemake.output.tokenizer, snakemake.output.tokens)
write_json(Path(snakemake.output.tokens) / "provenance.json", provenance(snakemake.params.data))
print(meta, file=sys.stderr)
