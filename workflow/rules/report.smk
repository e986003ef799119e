# Figures shown in docs/: copied from results/ so the teaching site shows what the pipeline made.


rule docs_figure:
    input:
        f"{FIGURES}/{{name}}.png",
    output:
        "docs/figures/{name}.png",
    log:
        f"{LOGS}/docs_figure/{{name}}.log",
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    conda:
        CONDA_ENV
    shell:
        "cp {input} {output} 2> {log}"
