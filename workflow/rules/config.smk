# Each stage's CLI reads a YAML file holding only the config sections it needs.


rule stage_config:
    output:
        f"{RESULTS}/config/{{stage}}.yaml",
    params:
        sections=lambda wildcards: stage_config(wildcards.stage),
    log:
        f"{LOGS}/config/{{stage}}.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    run:
        import yaml

        with open(output[0], "w") as f:
            yaml.safe_dump(params.sections, f, sort_keys=False)
