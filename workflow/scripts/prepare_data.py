"""Rule prepare_data: corpus -> tokenizer -> packed token cache (shared by every model)."""

import sys
from pathlib import Path

from merino.provenance import provenance, write_json
from merino.token_cache import prepare_data

sys.stderr = open(snakemake.log[0], "w", buffering=1)

meta = prepare_data(snakemake.params.data, snakemake.output.tokenizer, snakemake.output.tokens)
write_json(Path(snakemake.output.tokens) / "provenance.json", provenance(snakemake.params.data))
print(meta, file=sys.stderr)
