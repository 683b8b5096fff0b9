# Evaluation: naive-scaling GPT baselines, lm-eval tasks, one evaluation job per model, Tables 2 and 3.


rule naive:
    output:
        "results/naive/{scale}/{scaling}/{budget}.json",
    params:
        model=lambda w: design(w.scale)["model"],
        cost=lambda w: design(w.scale)["cost"],
        naive=config["baselines"]["naive_scaling"],
    log:
        "logs/naive/{scale}/{scaling}/{budget}.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/naive.py"


rule eval_tasks:
    output:
        directory("results/tasks"),
    params:
        tasks=config["evaluation"]["tasks"],
        corpus=config["data"]["corpus"],
        local_tasks=config["evaluation"]["local_tasks"],
        task_data=config["evaluation"]["task_data"],
    log:
        "logs/tasks.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/eval_tasks.py"


rule evaluate:
    input:
        unpack(lambda w: {"model": f"results/models/{w.model}"} if trained(w.model) else {}),
        tasks=rules.eval_tasks.output[0],
    output:
        directory("results/eval/{model}"),
    params:
        pretrained=lambda w, input: input.get("model") or PAPER_BASELINES[w.model].hub_id,   # a directory or Hub id
        evaluation=evaluation_settings(),
    log:
        "logs/eval/{model}.log",
    threads: config["evaluation"]["resources"]["cpus"]
    resources:
        gpu=config["evaluation"]["resources"]["gpu"],
        mem_mb=config["evaluation"]["resources"]["mem_mb"],
        runtime=config["evaluation"]["resources"]["runtime"],
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/evaluate.py"


rule table2:
    input:
        evals=expand("results/eval/{model}", model=evaluated_models()),
        architectures=[cost_entry(m)["architecture"] for m in evaluated_models() if trained(m)],
    output:
        report("results/tables/table2.csv", caption="../report/table2.rst", category="Evaluation"),
    params:
        models=evaluated_models(),
        costs={m: cost_entry(m) for m in evaluated_models()},
        paper_names=paper_names(),
        metric=config["evaluation"]["metric"],
    log:
        "logs/table2.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/table2.py"


rule table3:
    input:
        unpack(table3_predicted_input),
        evals=expand("results/eval/{model}", model=evaluated_models()),
        latency=f"results/latency/{config['latency']['table3_device']}/latency.json",
        generation=f"results/latency/{config['latency']['table3_device']}/generation.json",
        architectures=[r["architecture"] for r in table3_rows().values() if "architecture" in r],
    output:
        report("results/tables/table3.csv", caption="../report/table3.rst", category="Evaluation"),
    params:
        models=evaluated_models(),
        costs=table3_rows(),
        paper_names=paper_names(),
    log:
        "logs/table3.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/table3.py"


rule fig1:
    input:
        table2=rules.table2.output[0],
        table3=rules.table3.output[0],
    output:
        report("figures/fig1_accuracy_latency.pdf", caption="../report/fig1.rst", category="Evaluation"),
    params:
        device=config["latency"]["table3_device"],
    log:
        "logs/fig1.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/fig1.py"
