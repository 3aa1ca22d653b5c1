# Axial slices as square 16-bit PNGs, one job per patient; then the 70/30 split by patient.


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
        seed=config["seed"],
        keep_flagged=config["preprocess"]["registration_qa"]["keep_flagged"],
    script:
        "../scripts/split.py"
