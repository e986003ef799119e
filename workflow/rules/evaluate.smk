# avg@k / pass@k of the base model and of every final policy; every sample is kept.


rule evaluate_base:
    input:
        config=f"{RESULTS}/config/evaluate.yaml",
        base=f"{BASE}/base_summary.json",
    output:
        f"{BASE}/eval/summary.json",
    log:
        f"{LOGS}/evaluate/base{{base}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/base{{base}}.tsv"
    params:
        model=lambda wildcards, input: base_model_ref(os.path.dirname(input.base)),
        out=lambda wildcards, output: os.path.dirname(output[0]),
        benchmarks=BENCHMARK_LIST,
    threads: 1
    resources:
        mem_mb=config.get("resources", {}).get("evaluate_mem_mb", 2000),
        runtime=config.get("resources", {}).get("evaluate_runtime_min", 20),
        gpus=config.get("resources", {}).get("evaluate_gpus", 0),
    conda:
        CONDA_ENV
    shell:
        "entropy-rl evaluate --config {input.config:q} --model {params.model:q} --out {params.out:q}"
        " --benchmarks {params.benchmarks:q} > {log:q} 2>&1"


rule evaluate_run:
    input:
        config=f"{RESULTS}/config/evaluate.yaml",
        model=f"{LM_RUN}/model/config.json",  # sharded or not
    output:
        f"{LM_RUN}/eval/summary.json",
    log:
        f"{LOGS}/evaluate/{{method}}_base{{base}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/{{method}}_base{{base}}_seed{{seed}}.tsv"
    params:
        model=lambda wildcards, input: os.path.dirname(input.model),
        out=lambda wildcards, output: os.path.dirname(output[0]),
        benchmarks=BENCHMARK_LIST,
    threads: 1
    resources:
        mem_mb=config.get("resources", {}).get("evaluate_mem_mb", 2000),
        runtime=config.get("resources", {}).get("evaluate_runtime_min", 20),
        gpus=config.get("resources", {}).get("evaluate_gpus", 0),
    conda:
        CONDA_ENV
    shell:
        "entropy-rl evaluate --config {input.config:q} --model {params.model:q} --out {params.out:q}"
        " --benchmarks {params.benchmarks:q} > {log:q} 2>&1"


# Sampled responses of the same held-out prompts from the first base model and the first run of
# every method, each token shaded by its entropy, forks marked.
rule token_entropy:
    input:
        config=f"{RESULTS}/config/evaluate.yaml",
        base=base_files("base_summary.json")[0],
        models=lm_files("model/config.json", FIRST_RUNS),
    output:
        f"{RESULTS}/token_entropy.html",
    log:
        f"{LOGS}/token_entropy.log",
    benchmark:
        f"{BENCHMARKS}/token_entropy.tsv"
    params:
        policies=lambda wildcards, input: [f"base={base_model_ref(os.path.dirname(input.base))}"]
        + [f"{m}={os.path.dirname(path)}" for (m, _, _), path in zip(FIRST_RUNS, input.models)],
    threads: 1
    resources:
        mem_mb=config.get("resources", {}).get("evaluate_mem_mb", 2000),
        runtime=config.get("resources", {}).get("evaluate_runtime_min", 20),
        gpus=config.get("resources", {}).get("evaluate_gpus", 0),
    conda:
        CONDA_ENV
    shell:
        "entropy-rl token-entropy --config {input.config:q} --policy {params.policies:q} --out {output:q} > {log:q} 2>&1"
