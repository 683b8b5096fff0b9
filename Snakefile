# merino-workflow: MeRino (AAAI 2025) as one Snakemake DAG.  See README.md.
from snakemake.utils import min_version

min_version("9.0")


# The configuration: config/config.yaml (the embedded default) unless --configfile is given. Then the
# first --configfile is the base, a complete configuration that replaces the default (config/paper.yaml,
# or your copy of either), and each further --configfile and every --config is layered over it, key by
# key: `snakemake --configfile config/paper.yaml my-site.yaml`. README "Configuration".
if not workflow.overwrite_configfiles:

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
