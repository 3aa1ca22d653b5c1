# Axial slices as square 16-bit PNGs, one job per patient; then the split by patient (train/test or
# k folds), and the manifest of each run of the sweep.


# Table steps of a few seconds: on a cluster they run where Snakemake runs, not through the queue.
localrules:
    split,
    run_manifest,


rule extract_slices:
    input:
        mr=rules.register.output.mr,
        ct=rules.register.output.ct,
        mask=rules.register.output.mask,
    output:
        pngs=directory("results/slices/{patient}/png"),
        table="results/slices/{patient}/slices.csv",
    log:
        "logs/extract_slices/{patient}.log",
    benchmark:
        "benchmarks/out/extract_slices/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        settings=config["slices"],
        synthetic=DATASET == "demo",
    script:
        "../scripts/extract_slices.py"


rule split:
    input:
        tables=get_slice_tables,
        registration_qa=rules.registration_qa_table.output.table,
    output:
        manifest=report(
            "results/slices/manifest.csv",
            caption="../report/manifest.rst",
            category="Data",
        ),
    log:
        "logs/split/split.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        train_fraction=config["split"]["train_fraction"],
        folds=config["split"]["folds"],
        seed=config["seed"],
        keep_flagged=config["preprocess"]["registration_qa"]["keep_flagged"],
        images_per_modality=config["reader_study"]["images_per_modality"],
        selection_patients=get_selection_patient_count(),
    script:
        "../scripts/split.py"


# The manifest of one run (mrct.slices.sweep): its fold's test patients as test, its training
# patients (all, or a nested subset) as train. A single-run study reads the split's manifest.
rule run_manifest:
    input:
        manifest=rules.split.output.manifest,
    output:
        manifest="results/slices/runs{run}/manifest.csv",
    log:
        "logs/run_manifest/run{run}.log",
    wildcard_constraints:
        run=TAG_PATTERN,
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        run=get_run_params,
        seed=config["seed"],
    script:
        "../scripts/run_manifest.py"
