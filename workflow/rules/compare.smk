# NAS comparisons and ablations (paper Fig. 5, Tables 4, 5 and 6): searches driven by the training-free
# proxies (NTK of TE-NAS, DSS-Score of TF-TAS, decoder params of LTS) under the same budgets, and tables
# over models of pretrain.models, each trained and evaluated by the rules every model goes through.


rule proxy_search:
    """One search driven by a training-free proxy (NTK, DSS-Score or decoder params) under one budget (Fig. 5)."""
    input:
        unpack(latency_table_input("paper")),
        lookup=LOOKUP["paper"],
        tokenizer=DATA["tokenizer"],  # proxies score models built like the trained ones
        tokens=DATA["tokens"],  # the NTK's batch: training sequences
    output:
        SEARCH["paper"],
    log:
        "logs/search/{objective}/{budget}.log",
    wildcard_constraints:
        objective="|".join(PROXY_OBJECTIVES),
    conda:
        "../../envs/merino.yaml"
    threads: config["comparisons"]["resources"]["cpus"]
    resources:
        gpu=config["comparisons"]["resources"]["gpu"],
        mem_mb=config["comparisons"]["resources"]["mem_mb"],
        runtime=config["comparisons"]["resources"]["runtime"],
    params:
        model=scale_settings("paper")["model"],
        cost=scale_settings("paper")["cost"],
        search_space=scale_settings("paper")["search_space"],
        entropy=entropy_settings(),
        search=proxy_search_settings(),
    script:
        "../scripts/search.py"


use rule proxy_search as proxy_search_pretrain with:
    """One proxy-driven search at scales.pretrain: a compared model the default trains (Fig. 5)."""
    input:
        unpack(latency_table_input("pretrain")),
        lookup=LOOKUP["pretrain"],
        tokenizer=DATA["tokenizer"],
        tokens=DATA["tokens"],
    output:
        SEARCH["pretrain"],
    log:
        "logs/pretrain/search/{objective}/{budget}.log",
    params:
        model=scale_settings("pretrain")["model"],
        cost=scale_settings("pretrain")["cost"],
        search_space=scale_settings("pretrain")["search_space"],
        entropy=entropy_settings("pretrain"),
        search=proxy_search_settings(),


rule fig5:
    """Figure 5: accuracy per FLOPs budget of entropy-, proxy-searched and naive-scaled models, all trained here."""
    input:
        evals=comparison_evaluations("fig5"),
        architectures=comparison_architectures("fig5"),
    output:
        figure=report("figures/fig5_nas_comparison.pdf", caption="../report/fig5.rst", category="Comparisons"),
        table=report(
            "results/tables/fig5_nas_comparison.csv", caption="../report/fig5_table.rst", category="Comparisons"
        ),
    log:
        "logs/fig5.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=comparison_models("fig5"),
        methods=config["comparisons"]["fig5"],
        budgets={m: model_budget(m) for m in comparison_models("fig5")},
        costs=comparison_costs("fig5"),
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/fig5.py"


rule table4:
    """Table 4: search cost (time, energy) and accuracy of the entropy search against the NTK-driven one."""
    input:
        evals=comparison_evaluations("table4"),
        searches=comparison_architectures("table4"),
    output:
        report("results/tables/table4.csv", caption="../report/table4.rst", category="Comparisons"),
    log:
        "logs/table4.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=comparison_models("table4"),
        rows=config["comparisons"]["table4"],
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/table4.py"


rule table5:
    """Table 5: the block-wise parameter sharing ablation, each structure trained without and with sharing."""
    input:
        evals=comparison_evaluations("table5"),
        architectures=comparison_architectures("table5"),
    output:
        report("results/tables/table5.csv", caption="../report/table5.rst", category="Comparisons"),
    log:
        "logs/table5.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=comparison_models("table5"),
        rows=config["comparisons"]["table5"],
        costs=comparison_costs("table5"),
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/table5.py"


rule table6:
    """Table 6: the objective ablation: plain entropy, with the penalty gamma, with gamma and the weights alpha."""
    input:
        evals=comparison_evaluations("table6"),
        architectures=comparison_architectures("table6"),
    output:
        report("results/tables/table6.csv", caption="../report/table6.rst", category="Comparisons"),
    log:
        "logs/table6.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=comparison_models("table6"),
        rows=config["comparisons"]["table6"],
        costs=comparison_costs("table6"),
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/table6.py"
