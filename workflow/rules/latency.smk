# On-device latency (paper Table 3 protocol) and cached generation (TTFT, decode, KV memory) of every model, per-device latency lookup tables (latency budgets)
# and the predictor's check against measured architectures.


rule latency:
    input:
        architectures=[r["architecture"] for r in timed_models().values() if "architecture" in r],
    output:
        "results/latency/{device}/latency.json",
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        models=timed_models(),
        reference=config["latency"]["reference"],
    log:
        "logs/latency/{device}.log",
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/latency.py"


rule generation:
    input:
        architectures=[r["architecture"] for r in timed_models().values() if "architecture" in r],
    output:
        "results/latency/{device}/generation.json",
    params:
        device=lambda w: device_settings(w.device),
        generation=config["latency"]["generation"],
        models=timed_models(),
    log:
        "logs/latency/{device}_generation.log",
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/generation.py"


rule latency_table:
    output:
        "results/{scale}/latency/{device}/lookup.json",
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        table=config["latency"]["table"],
        model=lambda w: design(w.scale)["model"],
        search_space=lambda w: design(w.scale)["search_space"],
    log:
        "logs/latency/{scale}/{device}/lookup.log",
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=120,
        mem_mb=8000,
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/latency_table.py"


rule latency_check:
    input:
        table="results/{scale}/latency/{device}/lookup.json",
    output:
        "results/{scale}/latency/{device}/predictor_check.json",
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        check=config["latency"]["check"],
        search_space=lambda w: design(w.scale)["search_space"],
        head_dim=lambda w: design(w.scale)["model"]["head_dim"],
    log:
        "logs/latency/{scale}/{device}/predictor_check.log",
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/latency_check.py"
