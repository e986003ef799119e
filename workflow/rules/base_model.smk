# The base models, one per SFT seed (base_model.seeds): the toy world's (char tokenizer, tiny decoder, SFT on the synthetic task), or, with
# base_model.source: pretrained, a record of the pretrained model the GPU profiles start from.


rule base_model:
    input:
        config=f"{RESULTS}/config/base_model.yaml",
    output:
        summary=f"{BASE}/base_summary.json",
    log:
        f"{LOGS}/base_model/base{{base}}.log",
    benchmark:
        f"{BENCHMARKS}/base_model/base{{base}}.tsv"
    params:
        out=lambda wildcards, output: os.path.dirname(output.summary),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "entropy-rl sft --config {input.config:q} --seed {wildcards.base:q} --out {params.out:q} > {log:q} 2>&1"
