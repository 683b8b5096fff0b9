# GPTQ weight-only quantization of trained models, their evaluation with the same tasks, Figure 6.


rule quantize:
    """One model GPTQ weight-quantized with one scheme (Fig. 6: INT8, INT4)."""
    input:
        # a model trained here, or a paper baseline from the Hub whose calibration text is re-tokenized
        unpack(
            lambda w: {"model": MODEL.format(model=w.model)} if trained(w.model) else {"tokenizer": DATA["tokenizer"]}
        ),
        tokens=DATA["tokens"],
    output:
        directory("results/quantized/{model}/{scheme}"),
    log:
        "logs/quantize/{model}/{scheme}.log",
    conda:
        "../../envs/merino.yaml"
    threads: config["quantization"]["resources"]["cpus"]
    resources:
        gpu=config["quantization"]["resources"]["gpu"],
        mem_mb=config["quantization"]["resources"]["mem_mb"],
        runtime=config["quantization"]["resources"]["runtime"],
    params:
        pretrained=lambda w, input: input.get("model") or PAPER_BASELINES[w.model].hub_id,  # a directory or Hub id
        quantization=lambda w: quantization_settings(w.scheme),
    script:
        "../scripts/quantize.py"


use rule evaluate as evaluate_quantized with:
    """One quantized model's zero-shot accuracies with the same tasks as rule evaluate (Fig. 6)."""
    input:
        quantized="results/quantized/{model}/{scheme}",
        tasks=TASKS,
    output:
        directory("results/eval_quantized/{model}/{scheme}"),
    log:
        "logs/eval_quantized/{model}/{scheme}.log",
    params:
        pretrained=lambda w, input: input.quantized,
        evaluation=evaluation_settings(),
        kernels={
            k: v
            for k, v in config["quantization"]["kernels"].items()  # integer kernels or dequantized
            if k in ("evaluate", "compute", "row_block_size")
        },


rule quantized_latency:
    """Fig. 6 beyond the paper: latency and weight bytes of each quantized model on integer kernels against fp32."""
    input:
        checkpoints=expand("results/quantized/{{model}}/{scheme}", scheme=list(config["quantization"]["schemes"])),
    output:
        "results/quantized_latency/{model}.json",
    log:
        "logs/quantized_latency/{model}.log",
    conda:
        "../../envs/merino.yaml"
    threads: config["quantization"]["kernels"]["threads"]
    params:
        schemes=list(config["quantization"]["schemes"]),
        kernels={k: v for k, v in config["quantization"]["kernels"].items() if k != "evaluate"},  # what it runs
        protocol=config["latency"]["protocol"],  # the paper's: batch 1, 128 tokens, mean of 16
    script:
        "../scripts/quantized_latency.py"


rule fig6:
    """Figure 6: accuracy of the full-precision and quantized models per scheme."""
    input:
        full=expand(EVALUATION, model=config["quantization"]["models"]),
        quantized=expand(
            "results/eval_quantized/{model}/{scheme}",
            model=config["quantization"]["models"],
            scheme=list(config["quantization"]["schemes"]),
        ),
        checkpoints=expand(
            "results/quantized/{model}/{scheme}",
            model=config["quantization"]["models"],
            scheme=list(config["quantization"]["schemes"]),
        ),
        latency=expand("results/quantized_latency/{model}.json", model=config["quantization"]["models"]),
    output:
        table=report(
            "results/tables/fig6_quantization.csv", caption="../report/fig6_table.rst", category="Quantization"
        ),
        figure=report("figures/fig6_quantization.pdf", caption="../report/fig6.rst", category="Quantization"),
    log:
        "logs/fig6.log",
    conda:
        "../../envs/merino.yaml"
    params:
        models=config["quantization"]["models"],
        schemes=list(config["quantization"]["schemes"]),
        metric=config["evaluation"]["metric"],
    script:
        "../scripts/fig6.py"
