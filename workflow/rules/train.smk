# One RL run per method, base model and seed, from that base model. A killed run resumes from its checkpoint.


rule train_run:
    input:
        config=f"{RESULTS}/config/train.yaml",
        base=f"{BASE}/base_summary.json",
    output:
        metrics=f"{LM_RUN}/metrics.jsonl",
        summary=f"{LM_RUN}/summary.json",
        model=f"{LM_RUN}/model/config.json",  # sharded or not
    log:
        f"{LOGS}/train/{{method}}_base{{base}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{method}}_base{{base}}_seed{{seed}}.tsv"
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
        base=lambda wildcards, input: base_model_ref(os.path.dirname(input.base)),
        launcher=train_launcher,
        run_name=lambda wildcards: f"{config['profile']}/{wildcards.method}/base{wildcards.base}/seed{wildcards.seed}",
        tracking=TRACKING,
    threads: 1
    resources:
        mem_mb=config.get("resources", {}).get("train_mem_mb", 3000),
        runtime=config.get("resources", {}).get("train_runtime_min", 30),
        gpus=TRAIN_GPUS,
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} train --config {input.config:q} --method {wildcards.method:q} --seed {wildcards.seed:q}"
        " --model {params.base:q} --out {params.out:q} --resume --restart-if-changed"
        " --run-name {params.run_name:q} --tracking-dir {params.tracking:q} > {log:q} 2>&1"
