# Evaluation stage: per-model metrics, summary tables with significance, latent space.


# Table steps of a few seconds: on a cluster they run where Snakemake runs, not through the queue.
localrules:
    tables,
    tables_volumes,
    training_table,
    learning_curve,


# Per slice over every run of the sweep: one table per model, with fold, replicate and
# n_train_patients columns (each test slice once per run that tested it).
rule evaluate:
    input:
        unpack(get_evaluation_inputs),
    output:
        slices="results/metrics/{model}.csv",
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "benchmarks/out/evaluate/{model}.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        hu_clip=config["evaluate"]["hu_clip"],
        runs=run_dicts(SWEEP.runs()),
    script:
        "../scripts/evaluate.py"


# SynthRAD2023 HU metrics, SynthRAD2025's MS-SSIM and tissue overlap of each tested patient's whole
# synthetic CT volume (float HU, CT grid, body mask), from the run that tested it (replicate 0, full
# training set). The tested patients are known when the DAG is built (get_test_patients); the
# script checks them against the manifest.
rule evaluate_volumes:
    input:
        unpack(get_volume_metric_inputs),
        manifest=rules.split.output.manifest,
    output:
        volumes="results/metrics/{model}_volumes.csv",
    log:
        "logs/evaluate_volumes/{model}.log",
    benchmark:
        "benchmarks/out/evaluate_volumes/{model}.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        hu_clip=config["evaluate"]["hu_clip"],
        tissue_hu=config["evaluate"]["tissue_hu"],
    script:
        "../scripts/evaluate_volumes.py"


rule tables_volumes:
    input:
        volumes=get_volume_metric_tables,
    output:
        csv=report(
            "results/tables/metrics_volumes.csv",
            caption="../report/metrics_volumes.rst",
            category="Tables",
            labels={"direction": "mr2ct volumes"},
        ),
        md="results/tables/metrics_volumes.md",
    log:
        "logs/tables_volumes/tables_volumes.log",
    benchmark:
        "benchmarks/out/tables_volumes/tables_volumes.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
    script:
        "../scripts/tables_volumes.py"


rule tables:
    input:
        slices=get_metric_tables,
        volumes=get_volume_metric_tables,
    output:
        mr2ct_csv=report(
            "results/tables/metrics_mr2ct.csv",
            caption="../report/metrics_table.rst",
            category="Tables",
            labels={"direction": "mr2ct"},
        ),
        mr2ct_md="results/tables/metrics_mr2ct.md",
        mr2ct_tex="results/tables/metrics_mr2ct.tex",
        ct2mr_csv=report(
            "results/tables/metrics_ct2mr.csv",
            caption="../report/metrics_table.rst",
            category="Tables",
            labels={"direction": "ct2mr"},
        ),
        ct2mr_md="results/tables/metrics_ct2mr.md",
        ct2mr_tex="results/tables/metrics_ct2mr.tex",
        significance_csv=report(
            "results/tables/significance.csv",
            caption="../report/significance.rst",
            category="Tables",
            labels={"direction": "both"},
        ),
        significance_md="results/tables/significance.md",
        replicates=report(
            "results/tables/replicates.csv",
            caption="../report/replicates.rst",
            category="Tables",
            labels={"direction": "replicates"},
        ),
        learning_curve="results/tables/learning_curve.csv",
    log:
        "logs/tables/tables.log",
    benchmark:
        "benchmarks/out/tables/tables.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
        control=get_control(),
        alpha=config["evaluate"]["alpha"],
        n_bootstrap=config["evaluate"]["n_bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tables.py"


# The learning curve (split.train_sizes): in rule all only when smaller training sets are asked for.
rule learning_curve:
    input:
        table=rules.tables.output.learning_curve,
    output:
        figure=report(
            "results/figures/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Figures",
            labels={"figure": "learning curve"},
        ),
    log:
        "logs/learning_curve/learning_curve.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        metric=config["reader_study"]["metric"],
    script:
        "../scripts/learning_curve.py"


# What was trained: one row per model and run, gathered from each run's training.json.
rule training_table:
    input:
        unpack(get_training_summaries),
    output:
        table=report(
            "results/tables/training.csv",
            caption="../report/training_table.rst",
            category="Tables",
            labels={"direction": "training runs"},
        ),
    log:
        "logs/training_table/training_table.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        runs=get_training_runs,
    script:
        "../scripts/training_table.py"


# train.device is read through mrct.io.joblog.untracked_setting (see rule train). Each model is
# analysed at three stages: a random-weight control, the start of fine-tuning (its start file, or
# its seeded random init rebuilt from the training settings) and the trained generators; with
# several runs, those of the first pooled run (fold 0, replicate 0) on its own test patients.
rule latent:
    input:
        manifest=get_latent_manifest,
        g_mr2ct=get_latent_generator("mr2ct"),
        g_ct2mr=get_latent_generator("ct2mr"),
        pretrained=get_pretrained,
    output:
        features="results/latent/{model}_features.npz",
        tsne=report(
            "results/latent/{model}_tsne.png",
            caption="../report/latent.rst",
            category="Latent space",
            labels={"model": "{model}", "method": "t-SNE"},
        ),
        umap=report(
            "results/latent/{model}_umap.png",
            caption="../report/latent.rst",
            category="Latent space",
            labels={"model": "{model}", "method": "UMAP"},
        ),
        separability="results/latent/{model}_separability.csv",
    log:
        "logs/latent/{model}.log",
    benchmark:
        "benchmarks/out/latent/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        latent=config["latent"],
        seed=config["seed"],
        train=get_latent_train_settings,
    script:
        "../scripts/latent.py"


rule latent_summary:
    input:
        features=get_latent_features,
        separability=get_latent_separability,
    output:
        grid=report(
            "results/latent/grid.png",
            caption="../report/latent_grid.rst",
            category="Latent space",
            labels={"model": "all", "method": "t-SNE and UMAP"},
        ),
        separability=report(
            "results/latent/separability.csv",
            caption="../report/separability.rst",
            category="Latent space",
            labels={"model": "all", "method": "separability"},
        ),
    log:
        "logs/latent_summary/latent_summary.log",
    benchmark:
        "benchmarks/out/latent_summary/latent_summary.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
    script:
        "../scripts/latent_summary.py"


# The standard FID Inception weights, downloaded once (fid.download_inception: true) on the
# submitting host, like the zoo weights: sha256 pinned, atomic, place-by-hand message offline.
localrules:
    download_inception,


rule download_inception:
    output:
        weights=INCEPTION_WEIGHTS,
    log:
        "logs/download_inception/download_inception.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        downloads=1,
    script:
        "../scripts/download_inception.py"


# FID per model and direction: with the Inception weights when present (else a "not computed"
# note, never a number), and always in a fixed random network's feature space (no download, no
# compared model's weights).
# The device (train.device) is read as an untracked setting: moving to a GPU reruns nothing.
rule fid:
    input:
        manifest=rules.split.output.manifest,
        predictions=get_prediction_dirs,
        inception=get_inception_weights,
    output:
        table=report(
            "results/tables/fid.csv",
            caption="../report/fid.rst",
            category="Distribution distance",
            labels={"table": "FID"},
        ),
    log:
        "logs/fid/fid.log",
    benchmark:
        "benchmarks/out/fid/fid.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
    params:
        inception_weights=INCEPTION_WEIGHTS,
        batch_size=config["fid"]["batch_size"],
    script:
        "../scripts/fid.py"


rule latent_joint:
    input:
        features=get_latent_features,
    output:
        tsne=report(
            "results/latent/joint_tsne.png",
            caption="../report/latent_joint.rst",
            category="Latent space",
            labels={"model": "all (joint)", "method": "t-SNE"},
        ),
        umap=report(
            "results/latent/joint_umap.png",
            caption="../report/latent_joint.rst",
            category="Latent space",
            labels={"model": "all (joint)", "method": "UMAP"},
        ),
        points="results/latent/joint_embedding.csv",
    log:
        "logs/latent_joint/latent_joint.log",
    benchmark:
        "benchmarks/out/latent_joint/latent_joint.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        models=MODELS,
        latent=config["latent"],
        seed=config["seed"],
    script:
        "../scripts/latent_joint.py"
