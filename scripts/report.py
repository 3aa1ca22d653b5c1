"""Entry point of rule report: the single self-contained HTML report."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

from mrct.report import ReportInputs, write_report  # noqa: E402

inputs = snakemake.input  # noqa: F821
given = inputs.get("replicates")  # the table's path, or nothing where no rule writes it
replicates = given if isinstance(given, str) else (given[0] if given else None)
report_inputs = ReportInputs(
    manifest=Path(inputs.manifest),
    metric_tables={"MR → CT": Path(inputs.mr2ct), "CT → MR": Path(inputs.ct2mr)},
    significance=Path(inputs.significance),
    replicates=Path(replicates) if replicates else None,
    forest_plots={"mr2ct": Path(inputs.forest_mr2ct), "ct2mr": Path(inputs.forest_ct2mr)},
    volumes=Path(inputs.volumes),
    qa_images=[Path(p) for p in inputs.qa],
    registration_qa=Path(inputs.registration_qa),
    figures=[Path(p) for p in inputs.figures],
    latent_grid=Path(inputs.latent_grid),
    latent_plots=[Path(p) for p in inputs.latent_plots],
    latent_joint=[Path(p) for p in inputs.latent_joint],
    separability=Path(inputs.separability),
    benchmark_dir=Path(snakemake.params.benchmark_dir),  # noqa: F821
    reader_study_key=Path(inputs.reader_study_key),
    reader_study_screenshots=[Path(p) for p in inputs.reader_study_screenshots],
    config=dict(snakemake.params.config),  # noqa: F821
    alpha=snakemake.params.alpha,  # noqa: F821
    fid=Path(inputs.fid),
    patients=Path(inputs.patients),
    # present once the questionnaire kit's rule is in the workflow (rules/common.smk)
    design={
        "training_table": Path(inputs.training),
        "replicates_table": Path(replicates),
        "selection_table": Path(inputs.selection),
        "learning_curve": Path(inputs.learning_curve) if inputs.learning_curve else None,
        **snakemake.params.design,  # noqa: F821
    },
    reader_analysis={
        name: Path(inputs.get(f"reader_{name}")) for name in ("table_v", "table_vi", "classification", "agreement", "note")
    }
    if inputs.get("reader_note")
    else None,
)
write_report(report_inputs, snakemake.output.html)  # noqa: F821
