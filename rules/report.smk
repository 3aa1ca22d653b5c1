# Report stage: figures and the single self-contained HTML report.


# The report is quick and only reads files: on a cluster it runs on the submitting host
# instead of waiting in the queue (see profiles/slurm).
localrules:
    report,
    forest_plots,


rule figures:
    input:
        manifest=rules.split.output.manifest,
        predictions=get_prediction_dirs,
        slices=get_metric_tables,
        train_logs=get_train_logs,
    output:
        translation_mr2ct=report(
            "results/figures/translation_mr2ct.png",
            caption="../report/translation.rst",
            category="Figures",
            labels={"figure": "translations MR to CT"},
        ),
        translation_ct2mr=report(
            "results/figures/translation_ct2mr.png",
            caption="../report/translation.rst",
            category="Figures",
            labels={"figure": "translations CT to MR"},
        ),
        distributions=report(
            "results/figures/metric_distributions.png",
            caption="../report/distributions.rst",
            category="Figures",
            labels={"figure": "metric distributions"},
        ),
        losses=report(
            "results/figures/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Figures",
            labels={"figure": "training losses"},
        ),
    log:
        "logs/figures/figures.log",
    benchmark:
        "benchmarks/out/figures/figures.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
        n_figure_slices=config["evaluate"]["n_figure_slices"],
        n_figure_models=config["evaluate"]["n_figure_models"],
        control=get_control(),
    script:
        "../scripts/figures.py"


rule forest_plots:
    input:
        significance=rules.tables.output.significance_csv,
        replicates=get_replicates_table,
    output:
        mr2ct=report(
            "results/figures/forest_mr2ct.png",
            caption="../report/forest.rst",
            category="Figures",
            labels={"figure": "forest plot MR to CT"},
        ),
        ct2mr=report(
            "results/figures/forest_ct2mr.png",
            caption="../report/forest.rst",
            category="Figures",
            labels={"figure": "forest plot CT to MR"},
        ),
    log:
        "logs/forest_plots/forest_plots.log",
    benchmark:
        "benchmarks/out/forest_plots/forest_plots.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    script:
        "../scripts/forest_plots.py"


rule report:
    input:
        unpack(get_reader_study_report_inputs),
        manifest=rules.split.output.manifest,
        patients=rules.patient_list.output.table,
        mr2ct=rules.tables.output.mr2ct_csv,
        ct2mr=rules.tables.output.ct2mr_csv,
        significance=rules.tables.output.significance_csv,
        replicates=get_replicates_table,
        forest_mr2ct=rules.forest_plots.output.mr2ct,
        forest_ct2mr=rules.forest_plots.output.ct2mr,
        volumes=rules.tables_volumes.output.csv,
        qa=get_registration_qa,
        registration_qa=rules.registration_qa_table.output.table,
        figures=rules.figures.output,
        latent_grid=rules.latent_summary.output.grid,
        latent_joint=[
            rules.latent_joint.output.tsne,
            rules.latent_joint.output.umap,
        ],
        latent_plots=get_latent_plots,
        separability=rules.latent_summary.output.separability,
        fid=rules.fid.output.table,
        reader_study_key=rules.reader_study.output.key,
        reader_study_screenshots=get_reader_study_screenshots,
        training=rules.training_table.output.table,
        selection=rules.select_model.output.selection,
        learning_curve=get_learning_curve_figure,
    output:
        html=report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
            labels={"file": "report.html"},
        ),
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/out/report/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        benchmark_dir="benchmarks/out",
        # The report prints the whole configuration (provenance), so any change reruns it.
        config=config,
        alpha=config["evaluate"]["alpha"],
        design={
            "folds": SWEEP.folds,
            "replicates": SWEEP.replicates,
            "train_sizes": list(SWEEP.train_sizes),
            "control": get_control(),
        },
    script:
        "../scripts/report.py"
