# Downloads run on the submitting host: cluster nodes often have no internet access; so does the
# patient list (a table of seconds).


localrules:
    download_dataset,
    patient_list,


# SynthRAD Task 1 (dataset.source: synthrad2023 or synthrad2025). A checkpoint, because the
# patient list is only known once the archive is here (get_patients() in common.smk reads it).
# A local copy of the archive is used by placing it (or a symbolic link to it) at the output path.
# Only the URL is a param: Snakemake deletes a job's outputs before rerunning it, so a setting
# that does not change the content (retries, timeout, the md5 and sha256 pins) must not trigger
# a new download of many GB; the script reads those from the config. The lock file and the
# partial download (.Task1.zip.part, continued by a rerun) are not outputs, so that a failed or
# forced rerun deletes neither.
checkpoint download_dataset:
    output:
        archive=f"data/raw/{SYNTHRAD}/Task1.zip",
    log:
        f"logs/download_dataset/{SYNTHRAD}.log",
    benchmark:
        f"benchmarks/out/download_dataset/{SYNTHRAD}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        downloads=1,
    params:
        url=config["dataset"][SYNTHRAD]["url"],
        source=SYNTHRAD,
        lock_file=f"data/raw/{SYNTHRAD}.lock",
    script:
        "../scripts/download_dataset.py"


# The archive's published md5 (dataset.<source>.md5) and its sha256 against
# dataset.<source>.sha256, else against the one recorded in the lock file (recorded now when
# there is none: a file placed by hand), before anything is unpacked. Runs once per archive (a
# new or replaced archive reruns it); the output holds the verified digest. The pins are read
# from the config, not params: a param change would rerun every patient's unpacking and
# everything after it. To check a newly pinned checksum at once, without rerunning anything:
#   python -c "from mrct.io.download import verify_file; verify_file('data/raw/synthrad2023/Task1.zip', md5='<pin>')"
rule verify_dataset:
    input:
        archive=rules.download_dataset.output.archive,
    output:
        digest=f"data/raw/{SYNTHRAD}/Task1.zip.sha256",
    log:
        f"logs/verify_dataset/{SYNTHRAD}.log",
    benchmark:
        f"benchmarks/out/verify_dataset/{SYNTHRAD}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        url=config["dataset"][SYNTHRAD]["url"],
        source=SYNTHRAD,
        lock_file=f"data/raw/{SYNTHRAD}.lock",
    script:
        "../scripts/verify_dataset.py"


# One job per patient (MR, CT and the challenge's mask, in their published format), so that
# patients unpack in parallel, only from a verified archive; each member's CRC-32 is checked
# on extraction.
rule unpack_dataset:
    input:
        archive=rules.download_dataset.output.archive,
        digest=rules.verify_dataset.output.digest,
    output:
        mr=f"data/raw/{SYNTHRAD}/{{patient}}/mr{RAW_SUFFIX}",
        ct=f"data/raw/{SYNTHRAD}/{{patient}}/ct{RAW_SUFFIX}",
        # The challenge's evaluation mask: the mask of the HU metrics (see rule register).
        mask=f"data/raw/{SYNTHRAD}/{{patient}}/mask{RAW_SUFFIX}",
    log:
        "logs/unpack_dataset/{patient}.log",
    benchmark:
        "benchmarks/out/unpack_dataset/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        region=config["dataset"][SYNTHRAD]["region"],
        challenge=SYNTHRAD,
    script:
        "../scripts/unpack_dataset.py"


# The patients this run uses (dataset.patients, or a balanced sample of dataset.max_patients)
# and the centre of each, for the report and for anyone reading the results.
rule patient_list:
    input:
        get_patient_list_inputs,
    output:
        table=report(
            "results/preprocessed/patients.csv",
            caption="../report/patients.rst",
            category="Data",
        ),
    log:
        "logs/patient_list/patients.log",
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        patients=lambda wildcards: get_patients(),
        source=DATASET,
        centres=lambda wildcards: get_centres(),
    script:
        "../scripts/patient_list.py"


# The embedded demo: one job per patient, made offline from nilearn's MNI152 template.
rule make_demo_patient:
    output:
        mr="data/raw/demo/{patient}/mr.nii.gz",
        ct="data/raw/demo/{patient}/ct.nii.gz",
        bias_field="data/raw/demo/{patient}/true_bias_field.nii.gz",
        transform="data/raw/demo/{patient}/true_mr_to_ct.tfm",
        info="data/raw/demo/{patient}/synthetic.json",
    log:
        "logs/make_demo_patient/{patient}.log",
    benchmark:
        "benchmarks/out/make_demo_patient/{patient}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        seed=config["seed"],
        settings=get_demo_settings(),
        mixed_up=is_demo_mixup,
    script:
        "../scripts/make_demo_patient.py"
