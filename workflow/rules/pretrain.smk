# Pretraining: corpus + tokenizer, searches at scales.pretrain, paper structures,
# and one training job per model (GPUs -> torchrun processes).


use rule entropy_lookup as entropy_lookup_pretrain with:
    """The entropy lookup table (Eq. 7) of scales.pretrain's search space."""
    output:
        LOOKUP["pretrain"],
    log:
        "logs/pretrain/lookup.log",
    threads: 1  # small matrices: a second thread would idle
    params:
        settings=lookup_settings("pretrain"),


use rule search as search_pretrain with:
    """One entropy-driven search (Algorithms 1-2) at scales.pretrain: a model the default trains."""
    input:
        unpack(latency_table_input("pretrain")),
        lookup=LOOKUP["pretrain"],
    output:
        SEARCH["pretrain"],
    log:
        "logs/pretrain/search/{objective}/{budget}.log",
    params:
        model=scale_settings("pretrain")["model"],
        cost=scale_settings("pretrain")["cost"],
        search_space=scale_settings("pretrain")["search_space"],
        entropy=entropy_settings("pretrain"),
        search=search_settings(),


rule table8_architecture:
    """The architecture of one of the paper's MeRino structures as Table 8 lists it."""
    output:
        ARCHITECTURE,
    log:
        "logs/table8_architecture/{structure}.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/table8_architecture.py"


rule prepare_data:
    """The pretraining corpus: its tokenizer and token cache (config data)."""
    output:
        tokenizer=directory(DATA["tokenizer"]),
        tokens=directory(DATA["tokens"]),
    log:
        "logs/prepare_data.log",
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=120,
        mem_mb=8000,
    params:
        data=config["data"],
    script:
        "../scripts/prepare_data.py"


rule pretrain:
    """One model pretrained from its architecture (search result, Table 8 structure or naive GPT); Fig. 4's loss."""
    input:
        architecture=model_architecture,
        tokenizer=DATA["tokenizer"],
        tokens=DATA["tokens"],
    output:
        report(
            directory(MODEL),
            patterns=["{plot}.pdf"],
            caption="../report/loss.rst",
            category="Pretraining",
        ),
    log:
        "logs/pretrain/{model}.log",
    priority: 1  # long jobs first, so the last minutes are not one training job beside an idle core
    conda:
        "../../envs/merino.yaml"
    threads: config["pretrain"]["resources"]["cpus"]
    resources:
        gpu=config["pretrain"]["resources"]["gpu"] * config["pretrain"]["resources"]["nodes"],  # --gpus: the job's total
        nodes=config["pretrain"]["resources"]["nodes"],
        mem_mb=config["pretrain"]["resources"]["mem_mb"],
        runtime=config["pretrain"]["resources"]["runtime"],
    params:
        model=lambda w: model_convention(w.model),
        training=config["pretrain"]["training"],
        checkpoints="results/checkpoints/{model}",
    script:
        "../scripts/pretrain.py"
