# Reader study: the blinded questionnaire for radiologists and its key.


rule reader_study:
    input:
        manifest=rules.split.output.manifest,
        mr2ct=rules.tables.output.mr2ct_csv,
        ct2mr=rules.tables.output.ct2mr_csv,
        predictions=get_prediction_dirs,
    output:
        questionnaire=report(
            "results/reader_study/questionnaire.html",
            caption="../report/reader_study.rst",
            category="Reader study",
            labels={"file": "questionnaire.html"},
        ),
        # The key stays out of the Snakemake report: it would unblind the readers.
        key="results/reader_study/key.csv",
    log:
        "logs/reader_study/reader_study.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        settings=config["reader_study"],
        seed=config["seed"],
    script:
        "../scripts/reader_study.py"
