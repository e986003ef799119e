# entropy-rl: the whole study behind one command, `snakemake --cores all`.
# Thin by design: load and validate the config, include one rule file per stage, define `all`.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/tabular.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
