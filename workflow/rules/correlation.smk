# The correlation study (paper Fig. 3) and Table 1's trained models: one job per architecture for
# its proxies and one for its training, so a cluster runs them in parallel and raising
# correlation.architectures runs only the new ones.


use rule lookup as lookup_correlation with:
    output:
        "results/correlation/lookup/entropy_lookup.json",
    params:
        settings=lookup_settings("correlation"),
    log:
        "logs/correlation/lookup.log",
    threads: 1


use rule prepare_data as prepare_correlation_data with:
    output:
        tokenizer=directory("results/correlation/data/tokenizer"),
        tokens=directory("results/correlation/data/tokens"),
    params:
        data=config["correlation"].get("data", config["data"]),
    log:
        "logs/correlation/prepare_data.log",


rule correlation_architecture:
    output:
        "results/correlation/architectures/{candidate}.json",
    params:
        settings=lambda w: correlation_architecture_settings(w.candidate),
    log:
        "logs/correlation/architectures/{candidate}.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/correlation_architecture.py"


rule correlation_proxies:
    input:
        architecture="results/correlation/architectures/{candidate}.json",
        lookup=correlation_lookup(),
        **correlation_data(),
    output:
        "results/correlation/proxies/{candidate}.json",
    params:
        model=design("correlation")["model"],
        entropy=entropy_settings("correlation"),
        proxies=config["correlation"]["proxies"],
    log:
        "logs/correlation/proxies/{candidate}.log",
    threads: config["correlation"]["resources"]["cpus"]
    resources:
        runtime=config["correlation"]["resources"]["runtime"],
        mem_mb=config["correlation"]["resources"]["mem_mb"],  # the NTK holds a batch x parameters Jacobian
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/correlation_proxies.py"


use rule pretrain as correlation_train with:
    input:
        architecture="results/correlation/architectures/{candidate}.json",
        **correlation_data(),
    output:
        directory("results/correlation/models/{candidate}"),
    params:
        model=lambda w: correlation_model_convention(w.candidate),
        training=correlation_training(),
        checkpoints="results/correlation/checkpoints/{candidate}",
    log:
        "logs/correlation/train/{candidate}.log",
    threads: config["correlation"]["resources"]["cpus"]
    resources:
        gpu=config["correlation"]["resources"]["gpu"] * config["correlation"]["resources"]["nodes"],
        nodes=config["correlation"]["resources"]["nodes"],
        mem_mb=config["correlation"]["resources"]["mem_mb"],
        runtime=config["correlation"]["resources"]["runtime"],


rule correlation_study:
    input:
        proxies=expand("results/correlation/proxies/{candidate}.json", candidate=correlation_candidates()),
        models=expand("results/correlation/models/{candidate}", candidate=correlation_candidates()),
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
    params:
        entropy=entropy_settings("correlation"),
        bootstrap=config["correlation"]["bootstrap"],
        calibration=config["correlation"]["calibration"],
    log:
        "logs/correlation/study.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/correlation_study.py"


rule table1_complete:
    input:
        entropy=rules.table1.output[0],
        wide="results/correlation/models/table1-wide",
        deep="results/correlation/models/table1-deep",
    output:
        report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Correlation study",
        ),
    params:
        model=design("correlation")["model"],
        training=correlation_training(),
    log:
        "logs/table1_complete.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/table1_complete.py"
