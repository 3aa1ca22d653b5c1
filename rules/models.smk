# Models stage: pretrained starts, one training job per model, predictions, volume translation.


# Downloads run on the submitting host: cluster nodes often have no internet access.
localrules:
    download_pretrained,


# One job per zoo model. Only the URL is a param (a retries/timeout change must not re-download);
# the per-model lock file records the sha256 on first download and is not an output, so a failed
# or forced rerun keeps the record. The file is validated (strict load into the zoo
# architecture) before the job succeeds.
rule download_pretrained:
    output:
        weights="resources/pretrained/{model}.pth",
    log:
        "logs/download_pretrained/{model}.log",
    benchmark:
        "benchmarks/out/download_pretrained/{model}.tsv"
    wildcard_constraints:
        model="|".join(ZOO_MODELS),
    retries: 2
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        downloads=1,
    params:
        url=get_zoo_url,
        lock_file="resources/pretrained/{model}.lock",
    script:
        "../scripts/download_pretrained.py"


# The offline stand-in for a zoo model: a generator pretrained here on scikit-image's sample
# photographs (generic grayscale photo restoration). Not a zoo model; labelled so in its file.
rule pretrain_photos:
    output:
        weights="resources/pretrained/skimage_photos.pth",
    log:
        "logs/pretrain_photos/skimage_photos.log",
    benchmark:
        "benchmarks/out/pretrain_photos/skimage_photos.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        ngf=config["network"]["ngf"],
        n_blocks=config["network"]["n_blocks"],
        settings=config["pretrain_photos"],
        seed=config["seed"],
    script:
        "../scripts/pretrain_photos.py"


# One (GPU) job per model and run of the sweep (fold, replicate, training-set size: {run}, see
# rules/common.smk), resumable: a checkpoint in the run's folder resume/ (not an output, so it
# survives a killed job) is picked up by the rerun when the settings are unchanged.
# train.device and train.checkpoint_minutes are read through mrct.io.joblog.untracked_setting:
# they do not change the result, so they are no params (a change must not retrain).
rule train:
    input:
        manifest=get_run_manifest,
        pretrained=get_pretrained,
    output:
        g_mr2ct="results/models/{model}{run}/G_mr2ct.pth",
        g_ct2mr="results/models/{model}{run}/G_ct2mr.pth",
        train_log=report(
            "results/models/{model}{run}/train_log.csv",
            caption="../report/train_log.rst",
            category="Training",
            labels={"model": "{model}", "run": "{run}"},
        ),
        summary="results/models/{model}{run}/training.json",
    log:
        "logs/train/{model}{run}.log",
    benchmark:
        "benchmarks/out/train/{model}{run}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
    params:
        settings=get_train_settings,
        checkpoint="results/models/{model}{run}/resume/checkpoint.pt",
    script:
        "../scripts/train.py"


# train.device is read through mrct.io.joblog.untracked_setting (see rule train).
rule predict:
    input:
        manifest=get_run_manifest,
        g_mr2ct=rules.train.output.g_mr2ct,
        g_ct2mr=rules.train.output.g_ct2mr,
    output:
        mr2ct=directory("results/predictions/{model}{run}/mr2ct"),
        ct2mr=directory("results/predictions/{model}{run}/ct2mr"),
    log:
        "logs/predict/{model}{run}.log",
    benchmark:
        "benchmarks/out/predict/{model}{run}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        batch_size=8,
    script:
        "../scripts/predict.py"


# With several runs per model: the out-of-fold predictions (replicate 0, full training set) in
# the short paths, for the figures, FID and the reader study. A single-run study predicts there.
if not SWEEP.single:

    rule pool_predictions:
        input:
            unpack(get_pooled_run_predictions),
        output:
            mr2ct=directory("results/predictions/{model}/mr2ct"),
            ct2mr=directory("results/predictions/{model}/ct2mr"),
        log:
            "logs/pool_predictions/{model}.log",
        conda:
            "../envs/data.yaml"
        threads: 1
        script:
            "../scripts/pool_predictions.py"


# A whole registered volume translated slice by slice, with the CT's grid and geometry: the
# synthetic CT in HU (sct, mr2ct) of every tested patient is made, by the run that tested it,
# for the volume metrics (rule evaluate_volumes, in rule all); the synthetic MR (smr, ct2mr) only
# on demand, e.g.
#   snakemake results/translations/scratch/demo01/smr.nii.gz
# The intensity windows are those of the patient in the manifest.
# train.device is read through mrct.io.joblog.untracked_setting (see rule train).
rule translate_volume:
    input:
        manifest=rules.split.output.manifest,
        generator=get_translation_generator,
        volume=get_translation_source,
    output:
        volume="results/translations/{model}{run}/{patient}/{synthetic}.nii.gz",
    log:
        "logs/translate_volume/{model}{run}/{patient}_{synthetic}.log",
    benchmark:
        "benchmarks/out/translate_volume/{model}{run}/{patient}_{synthetic}.tsv"
    wildcard_constraints:
        synthetic="sct|smr",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        direction=lambda wildcards: SYNTHETIC_DIRECTION[wildcards.synthetic],
        batch_size=8,
    script:
        "../scripts/translate_volume.py"
