# Reader study: the model shown, chosen on patients the readers never see; the blinded
# questionnaire for radiologists and its key.


# Table steps of a few seconds: on a cluster they run where Snakemake runs, not through the queue.
localrules:
    select_model,


# The model per direction: the best reader_study.metric over the selection patients (a seeded
# subset of the tested patients, out of fold), or reader_study.model when named.
rule select_model:
    input:
        slices=get_metric_tables,
    output:
        selection="results/reader_study/selection.csv",
    log:
        "logs/reader_study/select_model.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
        metric=config["reader_study"]["metric"],
        model=config["reader_study"]["model"],
        n_patients=get_selection_patient_count(),
        seed=config["seed"],
    script:
        "../scripts/select_model.py"


# Slices of the tested patients less the selection patients (selection.csv), from the out-of-fold
# predictions (replicate 0, full training set).
rule reader_study:
    input:
        manifest=rules.split.output.manifest,
        selection=rules.select_model.output.selection,
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
    benchmark:
        "benchmarks/out/reader_study/reader_study.tsv"
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
