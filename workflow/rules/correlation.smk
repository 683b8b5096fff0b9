# The correlation study (paper Fig. 3) and Table 1's trained models: one job per architecture for
# its proxies and one for its training, so a cluster runs them in parallel and raising
# correlation.architectures runs only the new ones.


use rule entropy_lookup as entropy_lookup_correlation with:
    """The entropy lookup table (Eq. 7) of the correlation study's space, when it is not the paper's."""
    output:
        LOOKUP["correlation"],
    log:
        "logs/correlation/lookup.log",
    threads: 1
    params:
        settings=lookup_settings("correlation"),


use rule prepare_data as prepare_correlation_data with:
    """The correlation study's own corpus, tokenizer and token cache (config correlation.data)."""
    output:
        tokenizer=directory(CORRELATION_DATA["tokenizer"]),
        tokens=directory(CORRELATION_DATA["tokens"]),
    log:
        "logs/correlation/prepare_data.log",
    params:
        data=config["correlation"].get("data", config["data"]),


rule correlation_architecture:
    """One architecture of the correlation study (Sec. 4.1): sampled a000, a001, ... or Table 1's wide or deep."""
    output:
        CORRELATION_ARCHITECTURE,
    log:
        "logs/correlation/architectures/{candidate}.log",
    conda:
        "../../envs/merino.yaml"
    params:
        settings=lambda w: correlation_architecture_settings(w.candidate),
    script:
        "../scripts/correlation_architecture.py"


rule correlation_proxies:
    """Every training-free proxy's score of one study architecture (Fig. 3's x axes: entropy, NTK, DSS, ...)."""
    input:
        **correlation_data(),
        architecture=CORRELATION_ARCHITECTURE,
        lookup=correlation_lookup(),
    output:
        CORRELATION_PROXIES,
    log:
        "logs/correlation/proxies/{candidate}.log",
    conda:
        "../../envs/merino.yaml"
    threads: config["correlation"]["resources"]["cpus"]
    resources:
        runtime=config["correlation"]["resources"]["runtime"],
        mem_mb=config["correlation"]["resources"]["mem_mb"],  # the NTK holds a batch x parameters Jacobian
    params:
        model=scale_settings("correlation")["model"],
        entropy=entropy_settings("correlation"),
        proxies=config["correlation"]["proxies"],
    script:
        "../scripts/correlation_proxies.py"


use rule pretrain as correlation_train with:
    """One study architecture trained on the study's budget: its perplexity, Fig. 3's y axis and Table 1's."""
    input:
        **correlation_data(),
        architecture=CORRELATION_ARCHITECTURE,
    output:
        directory(CORRELATION_MODEL),
    log:
        "logs/correlation/train/{candidate}.log",
    threads: config["correlation"]["resources"]["cpus"]
    resources:
        gpu=config["correlation"]["resources"]["gpu"] * config["correlation"]["resources"]["nodes"],
        nodes=config["correlation"]["resources"]["nodes"],
        mem_mb=config["correlation"]["resources"]["mem_mb"],
        runtime=config["correlation"]["resources"]["runtime"],
    params:
        model=lambda w: correlation_model_convention(w.candidate),
        training=correlation_training(),
        checkpoints="results/correlation/checkpoints/{candidate}",


rule correlation_study:
    """Figure 3: each proxy's rank correlation with the trained perplexities (Sec. 4.1), with bootstrap intervals."""
    input:
        proxies=expand(CORRELATION_PROXIES, candidate=correlation_candidates()),
        models=expand(CORRELATION_MODEL, candidate=correlation_candidates()),
    output:
        table=report(
            "results/tables/fig3_correlation.csv",
            caption="../report/fig3_table.rst",
            category="Correlation study",
        ),
        summary=report(
            "results/tables/fig3_summary.csv",
            caption="../report/fig3_summary.rst",
            category="Correlation study",
        ),
        figure=report(
            "figures/fig3_correlation.pdf",
            caption="../report/fig3.rst",
            category="Correlation study",
        ),
    log:
        "logs/correlation/study.log",
    conda:
        "../../envs/merino.yaml"
    params:
        entropy=entropy_settings("correlation"),
        bootstrap=config["correlation"]["bootstrap"],
        calibration=config["correlation"]["calibration"],
    script:
        "../scripts/correlation_study.py"


rule table1:
    """Table 1: the entropy columns (rule table1_entropy) with the trained wide and deep models' perplexities."""
    input:
        entropy=TABLE1_ENTROPY,
        wide=CORRELATION_MODEL.format(candidate="table1-wide"),
        deep=CORRELATION_MODEL.format(candidate="table1-deep"),
    output:
        report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Correlation study",
        ),
    log:
        "logs/table1.log",
    conda:
        "../../envs/merino.yaml"
    params:
        model=scale_settings("correlation")["model"],
        training=correlation_training(),
    script:
        "../scripts/table1.py"
