# The design stage (no training): entropy lookup table, searches, Tables 1 and 8, Figure 2.


rule entropy_lookup:
    """The entropy lookup table of the paper's search space: the expected entropy of every weight shape (Eq. 7)."""
    output:
        LOOKUP["paper"],
    log:
        "logs/entropy_lookup.log",
    priority: 2  # before training, where both cores are free; with --cores 2 Snakemake still fills a free core with
    conda:
        "../../envs/merino.yaml"
    threads: 2  # the paper space's large Gram matrices use both cores
    # a one-thread job, so locally this job mostly runs last (measured: 132 s at the end of the 19-min main job)
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        settings=lookup_settings(),
    script:
        "../scripts/entropy_lookup.py"


rule search:
    """One entropy-driven evolutionary search under one budget (Algorithms 1-2, Eqs. 11-15): its architecture."""
    input:
        unpack(latency_table_input("paper")),
        lookup=LOOKUP["paper"],
    output:
        SEARCH["paper"],
    log:
        "logs/search/{objective}/{budget}.log",
    wildcard_constraints:
        objective="|".join(ENTROPY_OBJECTIVES),  # proxy objectives: rule proxy_search (compare.smk)
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        model=scale_settings("paper")["model"],
        cost=scale_settings("paper")["cost"],
        search_space=scale_settings("paper")["search_space"],
        entropy=entropy_settings(),
        search=search_settings(),
    script:
        "../scripts/search.py"


rule design_fit:
    """The constants the paper does not publish (entropy scale, beta or kappa, alpha) fitted to Table 8's designs."""
    output:
        table=report(
            "results/tables/design_fit.csv",
            caption="../report/design_fit.rst",
            category="Design",
        ),
        summary="results/tables/design_fit_summary.csv",
        figure=report("figures/design_fit.pdf", caption="../report/design_fit.rst", category="Design"),
    log:
        "logs/design_fit.log",
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        model=scale_settings("paper")["model"],
        cost=scale_settings("paper")["cost"],
        search_space=scale_settings("paper")["search_space"],
        entropy=entropy_settings(),
        objective=config["search"]["objective"],
        fit={k: config["design_fit"][k] for k in ("draws", "grid")},
        presets=config["design_fit"]["presets"],
    script:
        "../scripts/design_fit.py"


rule table8:
    """Table 8: the searched structures at the 60G/110G/160G FLOPs budgets beside the paper's MeRino models."""
    input:
        lookup=LOOKUP["paper"],
        searches=[search_result(config["search"]["objective"], b) for b in PAPER_BUDGETS],
        fit=rules.design_fit.output.table,
    output:
        table=report(
            "results/tables/table8.csv",
            caption="../report/table8.rst",
            category="Design",
        ),
        provenance="results/tables/table8.provenance.json",
    log:
        "logs/table8.log",
    conda:
        "../../envs/merino.yaml"
    params:
        model=scale_settings("paper")["model"],
        cost=scale_settings("paper")["cost"],
        entropy=entropy_settings(),
        objective=config["search"]["objective"],
    script:
        "../scripts/table8.py"


rule table1_entropy:
    """Table 1's entropy columns (entropy, effectiveness gamma) of the wide and deep models; no training."""
    input:
        lookup=LOOKUP["paper"],
    output:
        table=report(
            TABLE1_ENTROPY,
            caption="../report/table1_entropy.rst",
            category="Design",
        ),
        provenance="results/tables/table1_entropy.provenance.json",
    log:
        "logs/table1_entropy.log",
    conda:
        "../../envs/merino.yaml"
    params:
        model=scale_settings("paper")["model"],
        cost=scale_settings("paper")["cost"],
        entropy=entropy_settings(),
    script:
        "../scripts/table1_entropy.py"


rule fig2:
    """Figure 2: the lookup table's entropy against exact entropies of sampled architectures, and its error."""
    input:
        lookup=LOOKUP["paper"],
    output:
        figure=report("figures/fig2_lookup_error.pdf", caption="../report/fig2.rst", category="Design"),
        table=report(
            "results/tables/fig2_lookup_error.csv",
            caption="../report/fig2_table.rst",
            category="Design",
        ),
        summary=report(
            "results/tables/fig2_lookup_error.json",
            caption="../report/fig2_summary.rst",
            category="Design",
        ),
    log:
        "logs/fig2.log",
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        search_space=scale_settings("paper")["search_space"],
        entropy=lookup_settings()["entropy"] | {"head_dim": scale_settings("paper")["model"]["head_dim"]},
        fig2=config["fig2"],
    script:
        "../scripts/fig2.py"
