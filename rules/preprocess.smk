# MR bias-field correction inside the MR head mask, then rigid MR -> CT registration.


# Table steps of a few seconds: on a cluster they run where Snakemake runs, not through the queue.
localrules:
    registration_qa_table,


rule bias_correct:
    input:
        mr=get_raw_image("mr"),
    output:
        mr="results/preprocessed/{patient}/mr_biascorrected.nii.gz",
        field="results/preprocessed/{patient}/bias_field.nii.gz",
        mask="results/preprocessed/{patient}/mr_headmask.nii.gz",
        qa=report(
            "results/preprocessed/{patient}/bias_qa.png",
            caption="../report/bias_qa.rst",
            category="Preprocessing QA",
            subcategory="Bias field",
            labels={"patient": "{patient}"},
        ),
    log:
        "logs/bias_correct/{patient}.log",
    benchmark:
        "benchmarks/out/bias_correct/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        method=config["preprocess"]["bias_correction"],
        settings=lambda wildcards: get_bias_settings(),
    script:
        "../scripts/bias_correct.py"


rule register:
    input:
        mr=rules.bias_correct.output.mr,
        mr_mask=rules.bias_correct.output.mask,
        ct=get_raw_image("ct"),
        evaluation_mask=get_evaluation_mask,
    output:
        mr="results/preprocessed/{patient}/mr.nii.gz",
        ct="results/preprocessed/{patient}/ct.nii.gz",
        mask="results/preprocessed/{patient}/mask.nii.gz",
        body_mask="results/preprocessed/{patient}/body_mask.nii.gz",
        transform="results/preprocessed/{patient}/mr_to_ct.tfm",
        qa=report(
            "results/preprocessed/{patient}/qa.png",
            caption="../report/registration_qa.rst",
            category="Preprocessing QA",
            subcategory="Registration",
            labels={"patient": "{patient}"},
        ),
    log:
        "logs/register/{patient}.log",
    benchmark:
        "benchmarks/out/register/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    # The metric runs on one thread whatever is given, to be reproducible (see
    # mrct/preprocess/threads.py); more patients run side by side instead.
    threads: 1
    resources:
        mem_mb=4000,
    params:
        settings=config["preprocess"]["registration"],
        head_threshold_hu=config["preprocess"]["head_threshold_hu"],
        seed=config["seed"],
    script:
        "../scripts/register.py"


# Registration quality in numbers (head-mask Dice and normalised MI in the MR's field of view,
# and how sharply NMI peaks at the found alignment), computed from what register wrote, so it
# never reruns the registration.
rule registration_qa:
    input:
        ct=rules.register.output.ct,
        mr=rules.register.output.mr,
        ct_mask=rules.register.output.mask,
        mr_mask=rules.bias_correct.output.mask,
        mr_native=rules.bias_correct.output.mr,
        transform=rules.register.output.transform,
    output:
        json="results/preprocessed/{patient}/registration_qa.json",
    log:
        "logs/registration_qa/{patient}.log",
    benchmark:
        "benchmarks/out/registration_qa/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/registration_qa.py"


# One table of every patient's figures and decision against the bounds (tuning a bound reruns
# only this and what reads it); stops, saying how to go on, when too few patients would pass. A checkpoint, so that input functions which must name the
# test patients when the DAG is built can leave out the flagged ones (get_excluded_patients).
checkpoint registration_qa_table:
    input:
        records=get_registration_qa_records,
    output:
        table=report(
            "results/preprocessed/registration_qa.csv",
            caption="../report/registration_qa_table.rst",
            category="Preprocessing QA",
            subcategory="Registration",
        ),
    log:
        "logs/registration_qa/table.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        bounds=get_registration_qa_bounds(),
        keep_flagged=config["preprocess"]["registration_qa"]["keep_flagged"],
    script:
        "../scripts/registration_qa_table.py"
