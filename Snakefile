# merino-workflow: MeRino (AAAI 2025) as one Snakemake DAG.  See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/design.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/correlation.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/latency.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/compare.smk"


rule all:
    input:
        all_targets(),
    default_target: True
