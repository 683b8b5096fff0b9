# On-device latency (paper Table 3 protocol) and cached generation (TTFT, decode, KV memory) of every model,
# per-device latency lookup tables (latency budgets) and the predictor's check against measured architectures; for
# datasheet devices (latency.datasheets), the same latency and lookup tables predicted by a per-operator roofline
# (merino.roofline) instead of measured.


rule latency:
    """Every model's latency on one device with Table 3's protocol (batch 1, 128 tokens; random weights)."""
    input:
        architectures=[r["architecture"] for r in timed_models().values() if "architecture" in r],
    output:
        LATENCY,
    log:
        "logs/latency/{device}.log",
    conda:
        "../../envs/merino.yaml"
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        models=timed_models(),
        reference=config["latency"]["reference"],
    script:
        "../scripts/latency.py"


rule generation:
    """Every model's cached generation on one device (TTFT, decode time, KV memory); beyond the paper."""
    input:
        architectures=[r["architecture"] for r in timed_models().values() if "architecture" in r],
    output:
        GENERATION,
    log:
        "logs/latency/{device}_generation.log",
    conda:
        "../../envs/merino.yaml"
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    params:
        # generation runs through torch on every device (the ONNX decode graph is MeRino's only): the backend
        # is not a setting of this job, so changing it reruns only the forward-pass latency
        device=lambda w: {k: v for k, v in device_settings(w.device).items() if k != "backend"},
        generation=config["latency"]["generation"],
        models=timed_models(),
    script:
        "../scripts/generation.py"


rule latency_table:
    """A measured device's latency lookup table per layer shape, for latency budgets; beyond the paper."""
    output:
        LATENCY_TABLE,
    log:
        "logs/latency/{scale}/{device}/lookup.log",
    wildcard_constraints:
        device=names_pattern(config["latency"]["devices"]),
    conda:
        "../../envs/merino.yaml"
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=120,
        mem_mb=8000,
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        table=config["latency"]["table"],
        model=lambda w: scale_settings(w.scale)["model"],
        search_space=lambda w: scale_settings(w.scale)["search_space"],
    script:
        "../scripts/latency_table.py"


rule latency_check:
    """The latency lookup table's predictions checked against measured architectures; beyond the paper."""
    input:
        table=LATENCY_TABLE,
    output:
        PREDICTOR_CHECK,
    log:
        "logs/latency/{scale}/{device}/predictor_check.log",
    conda:
        "../../envs/merino.yaml"
    threads: lambda w: device_settings(w.device)["cpus"]
    resources:
        gpu=lambda w: device_settings(w.device).get("gpu", 0),
        runtime=60,
        mem_mb=8000,
    params:
        device=lambda w: device_settings(w.device),
        protocol=config["latency"]["protocol"],
        check=config["latency"]["check"],
        search_space=lambda w: scale_settings(w.scale)["search_space"],
        head_dim=lambda w: scale_settings(w.scale)["model"]["head_dim"],
    script:
        "../scripts/latency_check.py"


rule latency_table_predicted:
    """A datasheet device's latency lookup table predicted by a per-operator roofline (docs/roofline.md)."""
    output:
        LATENCY_TABLE,
    log:
        "logs/latency/{scale}/{device}/lookup.log",
    wildcard_constraints:
        device=names_pattern(config["latency"]["datasheets"]),
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        datasheet=lambda w: datasheet_settings(w.device),
        protocol=prediction_protocol(),
        model=lambda w: scale_settings(w.scale)["model"],
        search_space=lambda w: scale_settings(w.scale)["search_space"],
    script:
        "../scripts/latency_table_predicted.py"


rule latency_predicted:
    """Every model's latency on a datasheet device, predicted by the per-operator roofline (docs/roofline.md)."""
    input:
        architectures=[r["architecture"] for r in timed_models().values() if "architecture" in r],
    output:
        PREDICTED,
    log:
        "logs/latency/{device}/predicted.log",
    wildcard_constraints:
        device=names_pattern(config["latency"]["datasheets"]),
    conda:
        "../../envs/merino.yaml"
    resources:
        runtime=30,
        mem_mb=8000,
    params:
        datasheet=lambda w: datasheet_settings(w.device),
        protocol=prediction_protocol(),
        models=timed_models(),
        compare_with_paper=lambda w: w.device == config["latency"]["table3_datasheet"],
    script:
        "../scripts/latency_predicted.py"


rule table3_latency_prediction:
    """The roofline's predicted latencies against Table 3's Jetson Nano latencies: rho and errors."""
    input:
        predicted=PREDICTED.format(device=config["latency"]["table3_datasheet"]),
    output:
        report(
            "results/tables/table3_latency_prediction.csv",
            caption="../report/table3_latency_prediction.rst",
            category="Evaluation",
        ),
    log:
        "logs/table3_latency_prediction.log",
    conda:
        "../../envs/merino.yaml"
    script:
        "../scripts/table3_latency_prediction.py"
