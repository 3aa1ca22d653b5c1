# Downloads run on the submitting host: cluster nodes often have no internet access.


localrules:
    download_dataset,


# SynthRAD2023 Task 1 (dataset.source: synthrad2023). A checkpoint, because the patient list is
# only known once the archive is here (get_patients() in common.smk reads it).
# Only the URL is a param: Snakemake deletes a job's outputs before rerunning it, so a setting
# that does not change the content (retries, timeout, the sha256 pin) must not trigger a new
# download of many GB; the script reads those from the config. The lock file is not an output,
# so that a failed or forced rerun does not delete the record.
checkpoint download_dataset:
    output:
        archive="data/raw/synthrad2023/Task1.zip",
    log:
        "logs/download_dataset/synthrad2023.log",
    benchmark:
        "benchmarks/out/download_dataset/synthrad2023.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        downloads=1,
    params:
        url=config["dataset"]["synthrad2023"]["url"],
        lock_file="data/raw/synthrad2023.lock",
    script:
        "../scripts/download_dataset.py"


# The archive's sha256 against dataset.synthrad2023.sha256, else against the one recorded in the
# lock file (recorded now when there is none: a file placed by hand). Runs once per archive (a
# new or replaced archive reruns it); the output holds the verified digest. The pin is read from
# the config, not a param: a param change would rerun every patient's unpacking and everything
# after it. To check a newly pinned sha256 at once, without rerunning anything:
#   python -c "from mrct.io.download import verify_file; verify_file('data/raw/synthrad2023/Task1.zip', sha256='<pin>')"
rule verify_dataset:
    input:
        archive="data/raw/synthrad2023/Task1.zip",
    output:
        digest="data/raw/synthrad2023/Task1.zip.sha256",
    log:
        "logs/verify_dataset/synthrad2023.log",
    benchmark:
        "benchmarks/out/verify_dataset/synthrad2023.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        lock_file="data/raw/synthrad2023.lock",
    script:
        "../scripts/verify_dataset.py"


# One job per patient (MR, CT and the challenge's mask), so that patients unpack in parallel,
# only from a verified archive; each member's CRC-32 is checked on extraction.
rule unpack_dataset:
    input:
        archive="data/raw/synthrad2023/Task1.zip",
        digest="data/raw/synthrad2023/Task1.zip.sha256",
    output:
        mr="data/raw/synthrad2023/{patient}/mr.nii.gz",
        ct="data/raw/synthrad2023/{patient}/ct.nii.gz",
        # The challenge's evaluation mask: the mask of the HU metrics (see rule register).
        mask="data/raw/synthrad2023/{patient}/mask.nii.gz",
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
        region=config["dataset"]["synthrad2023"]["region"],
    script:
        "../scripts/unpack_dataset.py"


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
