# Evaluation: naive-scaling GPT baselines, lm-eval tasks, one evaluation job per model, Tables 2 and 3.


rule naive_scaling:
    """A naive-scaling GPT baseline (Tables 2-3): a standard GPT scaled in depth or width only to the budget."""
    output:
        NAIVE,
    log:
        "logs/naive_scaling/{scale}/{scaling}/{budget}.log",
    conda:
        "../../envs/merino.yaml"
    params:
        model=lambda w: scale_settings(w.scale)["model"],
        cost=lambda w: scale_settings(w.scale)["cost"],
        naive=config["baselines"]["naive_scaling"],
    script:
        "../scripts/naive_scaling.py"


rule eval_tasks:
    """The zero-shot tasks (Table 2's columns) as lm-eval task definitions, with our Penn Treebank task."""
    output:
        directory(TASKS),
    log:
        "logs/tasks.log",
    conda:
        "../../envs/merino.yaml"
    params:
        tasks=config["evaluation"]["tasks"],
        corpus=config["data"]["corpus"],
        local_tasks=config["evaluation"]["local_tasks"],
        task_data=config["evaluation"]["task_data"],
    script:
        "../scripts/eval_tasks.py"


rule evaluate:
    """One model's zero-shot accuracies with lm-eval (Table 2): trained here or a paper baseline from the Hub."""
    input:
        unpack(lambda w: {"model": MODEL.format(model=w.model)} if trained(w.model) else {}),
        tasks=TASKS,
    output:
        directory(EVALUATION),
    log:
        "logs/eval/{model}.log",
    conda:
        "../../envs/merino.yaml"
    threads: config["evaluation"]["resources"]["cpus"]
    resources:
        gpu=config["evaluation"]["resources"]["gpu"],
        mem_mb=config["evaluation"]["resources"]["mem_mb"],
        runtime=config["evaluation"]["resources"]["runtime"],
    params:
        pretrained=lambda w, input: input.get("model") or PAPER_BASELINES[w.model].hub_id,  # a directory or Hub id
        evaluation=evaluation_settings(),
    script:
        "../scripts/evaluate.py"


rule table2:
    """Table 2: zero-shot accuracy of the evaluated models beside the paper's MeRino and baseline rows."""
    input:
        evals=expand(EVALUATION, model=evaluated_models()),
        architectures=[cost_entry(m)["architecture"] for m in evaluated_models() if trained(m)],
    output:
        report("results/tables/table2.csv", caption="../report/table2.rst", category="Evaluation"),
    log:
        "logs/table2.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=evaluated_models(),
        costs={m: cost_entry(m) for m in evaluated_models()},
        paper_names=paper_names(),
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/table2.py"


rule table3:
    """Table 3: parameters, FLOPs, latency and WikiText-2/PTB perplexity of every model beside the paper's."""
    input:
        unpack(table3_predicted_input),
        evals=expand(EVALUATION, model=evaluated_models()),
        latency=LATENCY.format(device=config["latency"]["table3_device"]),
        generation=GENERATION.format(device=config["latency"]["table3_device"]),
        architectures=[r["architecture"] for r in table3_rows().values() if "architecture" in r],
    output:
        report("results/tables/table3.csv", caption="../report/table3.rst", category="Evaluation"),
    log:
        "logs/table3.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=evaluated_models(),
        costs=table3_rows(),
        paper_names=paper_names(),
    script:
        "../scripts/table3.py"


rule fig1:
    """Figure 1: average accuracy against latency of the Table 2 and Table 3 models."""
    input:
        table2=rules.table2.output[0],
        table3=rules.table3.output[0],
    output:
        report("figures/fig1_accuracy_latency.pdf", caption="../report/fig1.rst", category="Evaluation"),
    log:
        "logs/fig1.log",
    conda:
        "../../envs/merino.yaml"
    params:
        device=config["latency"]["table3_device"],
    script:
        "../scripts/fig1.py"
