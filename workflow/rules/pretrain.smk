# Pretraining: corpus + tokenizer, searches at the pretraining design scale, paper structures,
# and one training job per model (GPUs -> torchrun processes).


use rule lookup as lookup_pretrain with:
    output:
        "results/pretrain/lookup/entropy_lookup.json",
    params:
        settings=lookup_settings("pretrain"),
    log:
        "logs/pretrain/lookup.log",
    threads: 1   # small matrices: a second thread would idle


use rule search as search_pretrain with:
    input:
        unpack(latency_table_input("pretrain")),
        lookup=rules.lookup_pretrain.output[0],
    output:
        "results/pretrain/search/{objective}/{budget}.json",
    params:
        model=design("pretrain")["model"],
        cost=design("pretrain")["cost"],
        search_space=design("pretrain")["search_space"],
        entropy=entropy_settings("pretrain"),
        search=search_settings(),
    log:
        "logs/pretrain/search/{objective}/{budget}.log",


rule structure:
    output:
        "results/architectures/{structure}.json",
    log:
        "logs/structure/{structure}.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/structure.py"


rule prepare_data:
    output:
        tokenizer=directory("results/data/tokenizer"),
        tokens=directory("results/data/tokens"),
    params:
        data=config["data"],
    log:
        "logs/prepare_data.log",
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/prepare_data.py"


rule pretrain:
    input:
        architecture=model_architecture,
        tokenizer=rules.prepare_data.output.tokenizer,
        tokens=rules.prepare_data.output.tokens,
    output:
        report(
            directory("results/models/{model}"),
            patterns=["{plot}.pdf"],
            caption="../report/loss.rst",
            category="Pretraining",
        ),
    params:
        model=lambda w: model_convention(w.model),
        training=config["pretrain"]["training"],
        checkpoints="results/checkpoints/{model}",
    priority: 1   # long jobs first, so the last minutes are not one training job beside an idle core
    log:
        "logs/pretrain/{model}.log",
    threads: config["pretrain"]["resources"]["cpus"]
    resources:
        gpu=config["pretrain"]["resources"]["gpu"] * config["pretrain"]["resources"]["nodes"],  # --gpus: the job's total
        nodes=config["pretrain"]["resources"]["nodes"],
        mem_mb=config["pretrain"]["resources"]["mem_mb"],
        runtime=config["pretrain"]["resources"]["runtime"],
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/pretrain.py"
