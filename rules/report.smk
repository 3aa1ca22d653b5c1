# Report stage: figures and the single self-contained HTML report.


# The report is quick and only reads files: on a cluster it runs on the submitting host
# instead of waiting in the queue (see profiles/slurm).
localrules:
    report,


rule figures:
    input:
        manifest="results/slices/manifest.csv",
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
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        models=MODELS,
        n_figure_slices=config["evaluate"]["n_figure_slices"],
    script:
        "../scripts/figures.py"


rule report:
    input:
        manifest="results/slices/manifest.csv",
        mr2ct="results/tables/metrics_mr2ct.csv",
        ct2mr="results/tables/metrics_ct2mr.csv",
        significance="results/tables/significance.csv",
        qa=get_registration_qa,
        figures=[
            "results/figures/translation_mr2ct.png",
            "results/figures/translation_ct2mr.png",
            "results/figures/metric_distributions.png",
            "results/figures/loss_curves.png",
        ],
        latent_grid="results/latent/grid.png",
        latent_plots=get_latent_plots,
        separability="results/latent/separability.csv",
    output:
        html=report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
            labels={"file": "report.html"},
        ),
    log:
        "logs/report/report.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        benchmark_dir="benchmarks/out",
    script:
        "../scripts/report.py"
