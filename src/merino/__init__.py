"""merino: the library behind merino-workflow (MeRino, AAAI 2025).  It knows nothing of Snakemake;
workflow/scripts/*.py call it.  One concept per module (module: concept; where in the paper):

Design (training-free)
    ``space``        architecture encoding, block-wise search space, mutation; Table 7, Algorithm 2
    ``cost``         parameters, FLOPs, memory; compute budgets; Tables 3, 5, 8
    ``entropy``      transformer entropy, effectiveness gamma, the lookup table; Eqs. 7, 9/11, 12-15, Fig. 2
    ``search``       evolutionary search and the exact solver of the Eq. 15 programme; Algorithm 1
    ``proxies``      training-free proxies entropy is compared with (NTK, DSS-Score, ...); Sec. 4.1, Fig. 3
    ``correlation``  the correlation study: sampled architectures trained, rank correlations; Sec. 4.1, Fig. 3, Table 1
    ``design_fit``   the design stage's unpublished constants fitted to the published structures; Table 8
    ``baselines``    Pythia / OPT / GPT-2 / Cerebras architectures and naive-scaling GPTs; Tables 2, 3, Fig. 5

Data and training
    ``corpus``       corpora and their train/validation/test splits (embedded, local files, the Hub)
    ``tokenizer``    byte-level BPE trained on a corpus, or a Hub tokenizer (GPT-2, GPT-NeoX)
    ``token_cache``  a corpus tokenised once: packed sequences and the batch order training draws
    ``model``        MeRino as transformers classes (block-wise weight sharing); Fig. 4
    ``train``        pretraining (AdamW, warm-up, linear decay), one process or torchrun; resumable

Evaluation and compression
    ``tasks``        lm-evaluation-harness tasks: local generated ones offline, the paper's list; Tables 2, 3
    ``evaluate``     zero-shot evaluation through lm-evaluation-harness; Tables 2, 3
    ``quantize``     weight-only GPTQ and round-to-nearest; Fig. 6
    ``int_kernels``  GPTQ codes on ONNX Runtime's integer kernels (MatMulNBits); Fig. 6's latency and memory

Devices
    ``latency``      the latency protocol and per-device latency tables that price latency budgets; Table 3, Fig. 1
    ``memory``       peak memory on a device, and the check of the cost model's memory against it
    ``runtime``      runtimes a device runs models with (torch eager, ONNX Runtime)
    ``export``       ONNX export: a prefill graph and a cached decode step
    ``generation``   generation latency and memory (beyond the paper's single forward pass)
    ``datasheet``    a device known only from its datasheet (Jetson Nano); Table 3
    ``roofline``     latency predicted from a datasheet, operator by operator; Table 3

Results and infrastructure
    ``paper``        tables and figures, ours beside the published numbers (``reference/published.yaml``)
    ``comparisons``  NAS comparisons and ablations; Fig. 5, Tables 4, 5, 6
    ``verdicts``     a claim's verdict from the interval of its difference (holds, fails, undecided); Fig. 3
    ``plotting``     one style for every figure
    ``checks``       config checks a JSON schema cannot express
    ``hub``          the Hugging Face Hub resources a config reads, and the offline cache
    ``optional``     packages outside the base install, each behind an off-by-default config key
    ``provenance``   what every result file records (settings, versions, checksums, time)

Data files: ``reference/published.yaml`` (the paper's published numbers), ``lm_eval_tasks/`` (task YAML).
"""
