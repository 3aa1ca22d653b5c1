from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/slices.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"
include: "rules/reader_study.smk"
include: "rules/reader_study_analysis.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
