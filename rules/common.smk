"""Everything that is not a rule: config validation, the patient list, input functions."""

from argparse import Namespace
from pathlib import Path

from mrct.config import ConfigError, validate_config
from mrct.models.inception_file import INCEPTION_FILE
from mrct.models.registry import downloadable_models, starts_from_file
from mrct.reader_study.selection import check_selection_metric
from mrct.slices.manifest import DIRECTIONS as DIRECTION_TABLE
from mrct.slices.sweep import TAG_PATTERN, Run, Sweep
from mrct.training.settings import check_slice_size
from mrct.sources import local as local_source
from mrct.sources.demo import check_mixed_up, demo_patient_ids
from mrct.sources.patients import choose_patients
from mrct.sources.centres import centres_in_folder as local_centres
from mrct.sources.synthrad import CHALLENGES, overview_centres, synthrad_patient_ids

try:
    validate_config(config)
    check_selection_metric(config["reader_study"]["metric"])
except (ConfigError, ValueError) as error:
    raise WorkflowError(str(error)) from None

try:
    check_slice_size(config)  # U-Nets halve slices.size num_downs times
except ValueError as error:
    raise WorkflowError(str(error)) from None

DATASET = config["dataset"]["source"]
MODELS = list(config["models"])
DIRECTIONS = list(DIRECTION_TABLE)
# The SynthRAD challenge whose archive rules/data.smk fetches and unpacks (synthrad2023 when
# the source is another: those rules are then defined but unused), and its files' suffix.
SYNTHRAD = DATASET if DATASET in CHALLENGES else "synthrad2023"
RAW_SUFFIX = CHALLENGES[SYNTHRAD].suffix if DATASET in CHALLENGES else ".nii.gz"
# Fold, replicate and training-set size: the runs of every model (mrct.slices.sweep). A run's
# path segment is its tag ({run} below): empty for a single-run study, else fold, replicate and
# training-set size below the model's folder (mrct.slices.sweep.Sweep.tag).
SWEEP = Sweep.from_config(config)


wildcard_constraints:
    patient=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model="|".join(MODELS),
    direction="|".join(DIRECTIONS),
    run=SWEEP.tag_pattern,


def _choose(ids):
    """dataset.patients, else a seeded sample of dataset.max_patients balanced across centres."""
    try:
        return choose_patients(
            ids,
            DATASET,
            max_patients=config["dataset"].get("max_patients"),
            patients=config["dataset"].get("patients"),
            seed=config["seed"],
            centres=get_centres(),
        )
    except ValueError as error:
        raise WorkflowError(str(error)) from None


def get_centres():
    """Patient -> centre from a table that comes with the data (mrct.sources.centres); {} if none."""
    if DATASET == "local":
        return local_centres(config["dataset"]["path"])
    if DATASET in CHALLENGES:
        archive = checkpoints.download_dataset.get().output.archive
        return overview_centres(archive, config["dataset"][DATASET]["region"], DATASET)
    return {}


def get_patients():
    """Patient ids; for SynthRAD they are read from the downloaded archive (checkpoint)."""
    if DATASET == "demo":
        return _choose(demo_patient_ids(config["dataset"]["demo"]["n_patients"]))
    if DATASET == "local":
        return _choose(local_source.find_patients(config["dataset"]["path"]))
    archive = checkpoints.download_dataset.get().output.archive
    return _choose(
        synthrad_patient_ids(archive, config["dataset"][DATASET]["region"], DATASET)
    )


def get_patient_list_inputs(wildcards):
    """The archive the SynthRAD patient list is read from (so the list waits for it); none else."""
    if DATASET in CHALLENGES:
        return rules.download_dataset.output.archive
    return []


def get_raw_image(modality):
    """Input function: the raw MR or CT of one patient (a file, or a DICOM folder)."""

    def inner(wildcards):
        if DATASET == "local":
            folder = Path(config["dataset"]["path"]) / wildcards.patient
            return str(local_source.find_modality(folder, modality))
        return f"data/raw/{DATASET}/{wildcards.patient}/{modality}{RAW_SUFFIX}"

    return inner


def get_evaluation_mask(wildcards):
    """SynthRAD's own mask (the challenge's evaluation mask); none for other sources."""
    if DATASET in CHALLENGES:
        return f"data/raw/{DATASET}/{wildcards.patient}/mask{RAW_SUFFIX}"
    return []


def get_bias_settings():
    """Settings of the chosen bias-correction method only, so tuning N3 does not rerun N4."""
    method = config["preprocess"]["bias_correction"]
    return config["preprocess"].get(method, {})


def get_slice_tables(wildcards):
    """The per-patient slice tables; first the checks of the design against the patient count
    (mrct.slices.split.check_design), so a config that cannot finish fails before any job.
    """
    from mrct.slices.split import check_design

    patients = get_patients()
    check_design(
        patients,
        SWEEP.folds,
        config["split"]["train_fraction"],
        config["seed"],
        SWEEP.train_sizes,
        config["reader_study"],
        config["slices"]["per_patient"],
    )
    return expand(rules.extract_slices.output.table, patient=patients)


def get_selection_patient_count():
    """Selection patients of the reader study's model; none when reader_study.model is named."""
    section = config["reader_study"]
    return 0 if section["model"] else section["selection_patients"]


def run_tags(runs):
    return [SWEEP.tag(run) for run in runs]


def run_dicts(runs):
    """Runs as rule params (plain values), in the order of the input lists built from them."""
    return [
        {"fold": r.fold, "replicate": r.replicate, "n_train": r.n_train} for r in runs
    ]


def run_manifest_path(tag):
    """The manifest a run trains and predicts with: the split's own for a single-run study."""
    if tag == "":
        return rules.split.output.manifest
    return expand(rules.run_manifest.output.manifest, run=tag)[0]


def get_run_manifest(wildcards):
    return run_manifest_path(wildcards.run)


def get_run_params(wildcards):
    return run_dicts([SWEEP.parse(wildcards.run)])[0]


def get_registration_qa(wildcards):
    return expand(rules.register.output.qa, patient=get_patients())


def get_registration_qa_records(wildcards):
    return expand(
        "results/preprocessed/{patient}/registration_qa.json", patient=get_patients()
    )


def get_demo_settings():
    """The demo generator's settings but the mix-up list, so listing a patient remakes only it."""
    check_mixed_up(config["dataset"]["demo"])
    return {k: v for k, v in config["dataset"]["demo"].items() if k != "mixed_up"}


def is_demo_mixup(wildcards):
    """Whether this demo patient's MR is to be another head's (dataset.demo.mixed_up)."""
    return wildcards.patient in config["dataset"]["demo"].get("mixed_up", [])


def get_registration_qa_bounds():
    """The bounds of the registration-QA decision (every key but keep_flagged)."""
    settings = config["preprocess"]["registration_qa"]
    return {key: value for key, value in settings.items() if key != "keep_flagged"}


def get_excluded_patients():
    """Patients that rule split leaves out (registration flagged, keep_flagged false).

    For input functions that name test patients while the DAG is built: the split is drawn
    over all patients (slices.split.assign_split), then these have no rows in the manifest.
    Reading the checkpoint's table defers those jobs until registration QA has run.
    """
    from mrct.preprocess.registration_qa import (
        excluded_patients,
        read_registration_qa,
    )

    keep = config["preprocess"]["registration_qa"]["keep_flagged"]
    if keep:
        # Nothing is left out: no need to wait for the QA table (nor to read it).
        return set()
    table = checkpoints.registration_qa_table.get().output.table
    return set(excluded_patients(read_registration_qa(table), keep))


def get_pretrained(wildcards):
    """The starting weights of a model: a file, unless the registry says it starts at random."""
    if not starts_from_file(wildcards.model):
        return []
    # Made by download_pretrained (zoo models) or pretrain_photos (skimage_photos).
    return f"resources/pretrained/{wildcards.model}.pth"


# Both zoos (CycleGAN and pix2pix): the models whose start file is downloaded.
ZOO_MODELS = sorted(downloadable_models())


def get_zoo_url(wildcards):
    return downloadable_models()[wildcards.model]


def get_train_settings(wildcards):
    """The training settings of one model as a dict: a param, so any change reruns training.

    Built by the same function the training script uses; zoo models do not depend on the
    `network` section. The result-free settings (checkpoint_minutes, device) are left out: a
    change of either must neither rerun training nor discard its checkpoint (the script reads
    them with mrct.io.joblog.untracked_setting).
    """
    import dataclasses

    from mrct.training.settings import settings_from_config, tracked_settings

    settings = dataclasses.asdict(settings_from_config(config, wildcards.model))
    settings["seed"] = SWEEP.seed(SWEEP.parse(wildcards.run), config["seed"])
    return tracked_settings(settings)


# Synthetic volume file name (sct, smr) -> the direction that makes it.
SYNTHETIC_DIRECTION = {f"s{d.target}": name for name, d in DIRECTION_TABLE.items()}


def get_translation_generator(wildcards):
    direction = SYNTHETIC_DIRECTION[wildcards.synthetic]
    output = getattr(rules.train.output, f"g_{direction}")
    return expand(output, model=wildcards.model, run=wildcards.run)[0]


def get_translation_source(wildcards):
    """The registered volume a translation starts from: MR for the sCT, CT for the sMR."""
    modality = DIRECTION_TABLE[SYNTHETIC_DIRECTION[wildcards.synthetic]].source
    return getattr(rules.register.output, modality).format(patient=wildcards.patient)


def get_test_patients():
    """Tested patient -> the fold that tests it, from the same seeded function as rule split
    (mrct.slices.split.patient_folds) less those registration QA leaves out, so that the
    per-patient volume jobs are known when the DAG is built; rule evaluate_volumes checks them
    against the manifest."""
    from mrct.slices.split import patient_folds
    from mrct.slices.sweep import NEVER_TESTED

    folds = patient_folds(
        get_patients(), SWEEP.folds, config["split"]["train_fraction"], config["seed"]
    )
    excluded = get_excluded_patients()
    return {
        p: fold
        for p, fold in sorted(folds.items())
        if fold != NEVER_TESTED and p not in excluded
    }


def get_volume_metric_inputs(wildcards):
    """Synthetic CT (from the run that tested the patient: replicate 0, full training set),
    registered CT and body mask of every tested patient, in one patient order."""
    tested = get_test_patients()
    return {
        "sct": [
            expand(
                rules.translate_volume.output.volume,
                model=wildcards.model,
                run=SWEEP.tag(Run(fold, 0, None)),
                patient=patient,
                synthetic="sct",
            )[0]
            for patient, fold in tested.items()
        ],
        "ct": expand(rules.register.output.ct, patient=list(tested)),
        "body_mask": expand(rules.register.output.body_mask, patient=list(tested)),
    }


def get_volume_metric_tables(wildcards):
    return expand(rules.evaluate_volumes.output.volumes, model=MODELS)


def get_metric_tables(wildcards):
    return expand(rules.evaluate.output.slices, model=MODELS)


def get_evaluation_inputs(wildcards):
    """Every run's manifest and prediction folders, in the order of SWEEP.runs() (params.runs)."""
    tags = run_tags(SWEEP.runs())
    return {
        "manifests": [run_manifest_path(tag) for tag in tags],
        "mr2ct": expand(rules.predict.output.mr2ct, model=wildcards.model, run=tags),
        "ct2mr": expand(rules.predict.output.ct2mr, model=wildcards.model, run=tags),
    }


def get_training_summaries(wildcards):
    """training.json and the manifest of every model and run, model by model (params.runs)."""
    tags = run_tags(SWEEP.runs())
    return {
        "summaries": [
            s
            for model in MODELS
            for s in expand(rules.train.output.summary, model=model, run=tags)
        ],
        "manifests": [run_manifest_path(tag) for _ in MODELS for tag in tags],
    }


def get_training_runs(wildcards):
    return [
        {"model": model, **run} for model in MODELS for run in run_dicts(SWEEP.runs())
    ]


def get_pooled_generators(model, direction):
    """The generators of the out-of-fold pool (replicate 0, full training set), fold by fold."""
    output = getattr(rules.train.output, f"g_{direction}")
    return expand(output, model=model, run=run_tags(SWEEP.pooled_runs()))


def get_latent_generator(direction):
    """The latent space's generator: the first pooled run's (fold 0, replicate 0, full set)."""

    def inner(wildcards):
        return get_pooled_generators(wildcards.model, direction)[0]

    return inner


def get_latent_manifest(wildcards):
    """The manifest of the first pooled run: its test patients are the ones its generators never saw."""
    return run_manifest_path(SWEEP.tag(SWEEP.pooled_runs()[0]))


def get_latent_train_settings(wildcards):
    """The training settings of the first pooled run (the start the pretrained stage rebuilds)."""
    tag = SWEEP.tag(SWEEP.pooled_runs()[0])
    return get_train_settings(Namespace(model=wildcards.model, run=tag))


def get_pooled_run_predictions(wildcards):
    """Prediction folders of the runs that rule pool_predictions gathers, fold by fold."""
    tags = run_tags(SWEEP.pooled_runs())
    return {
        "mr2ct": expand(rules.predict.output.mr2ct, model=wildcards.model, run=tags),
        "ct2mr": expand(rules.predict.output.ct2mr, model=wildcards.model, run=tags),
    }


def get_final_output():
    """Every model and run, its predictions, the tables, the latent summary and joint embedding,
    the reader study, the report."""
    tags = run_tags(SWEEP.runs())
    return [
        rules.split.output.manifest,
        *expand(rules.train.output, model=MODELS, run=tags),
        *get_prediction_dirs(None),
        *rules.tables.output,
        *rules.tables_volumes.output,
        rules.training_table.output.table,
        *([rules.learning_curve.output.figure] if SWEEP.train_sizes else []),
        rules.latent_summary.output.separability,
        rules.latent_joint.output.tsne,
        rules.latent_joint.output.umap,
        *rules.reader_study.output,
        rules.report.output.html,
    ]


def get_prediction_dirs(wildcards):
    """One folder per model and direction, in the short paths: the run's own for a single-run
    study, else the out-of-fold pool (rule pool_predictions)."""
    source = rules.predict if SWEEP.single else rules.pool_predictions
    return [
        path
        for model in MODELS
        for path in expand(
            [source.output.mr2ct, source.output.ct2mr], model=model, run=""
        )
    ]


def get_train_logs(wildcards):
    """The loss curves shown: the first pooled run's (fold 0, replicate 0, full training set)."""
    tag = SWEEP.tag(SWEEP.pooled_runs()[0])
    return expand(rules.train.output.train_log, model=MODELS, run=tag)


def get_latent_features(wildcards):
    return expand(rules.latent.output.features, model=MODELS)


def get_latent_separability(wildcards):
    return expand(rules.latent.output.separability, model=MODELS)


def get_latent_plots(wildcards):
    return expand([rules.latent.output.tsne, rules.latent.output.umap], model=MODELS)


def get_learning_curve_figure(wildcards):
    """The learning-curve figure for the report, when split.train_sizes asks for one."""
    return rules.learning_curve.output.figure if SWEEP.train_sizes else []


def get_control():
    """evaluate.control, or random_init when configured (the like-for-like control), else scratch."""
    control = config["evaluate"]["control"]
    if control is None:
        return "random_init" if "random_init" in MODELS else "scratch"
    return control


# --- reader study and FID ---


INCEPTION_WEIGHTS = f"resources/inception/{INCEPTION_FILE}"


def get_inception_weights(wildcards):
    """The FID Inception weights when they are to be downloaded or were placed by hand; else
    none, and the FID table says that Inception FID was not computed."""
    if config["fid"]["download_inception"] or Path(INCEPTION_WEIGHTS).is_file():
        return rules.download_inception.output.weights
    return []


def get_reader_answers(wildcards):
    """Every answers CSV in reader_study.answers_dir when the DAG is built (none is fine)."""
    folder = Path(config["reader_study"]["answers_dir"])
    return sorted(str(p) for p in folder.glob("*.csv")) if folder.is_dir() else []


def get_reader_study_report_inputs(wildcards):
    """The reader-study tables for the report, once the questionnaire kit's rule (it writes the
    key) is part of the workflow; without it the report leaves the section out."""
    if not rules.has("reader_study"):
        return {}
    analysis = rules.reader_study_analysis.output
    return {
        "reader_table_v": analysis.table_v,
        "reader_table_vi": analysis.table_vi,
        "reader_classification": analysis.classification,
        "reader_agreement": analysis.agreement,
        "reader_note": analysis.note,
    }


def get_reader_study_screenshots(wildcards):
    """Screenshots of the questionnaire shown in the report (the repository's docs/img/, made by
    tests/test_reader_study_browser.py with MRCT_READER_STUDY_SCREENSHOTS set)."""
    folder = Path(workflow.basedir) / "docs" / "img"
    return sorted(str(p) for p in folder.glob("reader_study_*.png"))


REPLICATES_TABLE = "results/tables/replicates.csv"


def get_replicates_table(wildcards):
    """The seed-to-seed spread per model (results/tables/replicates.csv) where a rule of the
    workflow writes it; else none, and the summary and the forest plots show no seed spread.
    """
    produced = any(REPLICATES_TABLE in rule.output for rule in workflow.rules)
    return REPLICATES_TABLE if produced else []
