# One RL run per method and seed, from the base model. A killed run resumes from its checkpoint.


rule train_run:
    input:
        config=f"{RESULTS}/config/train.yaml",
        base=f"{MODEL_DIR}/base/model.safetensors",
    output:
        metrics=f"{MODEL_DIR}/{{method}}/seed{{seed}}/metrics.jsonl",
        summary=f"{MODEL_DIR}/{{method}}/seed{{seed}}/summary.json",
        model=f"{MODEL_DIR}/{{method}}/seed{{seed}}/model/model.safetensors",
    log:
        f"{LOGS}/train/{{method}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{method}}_seed{{seed}}.tsv"
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        base=lambda wildcards, input: os.path.dirname(input.base),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl train --config {input.config} --method {wildcards.method} --seed {wildcards.seed}"
        " --model {params.base} --out {params.out} --resume > {log} 2>&1"
