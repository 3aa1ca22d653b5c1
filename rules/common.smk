"""Everything that is not a rule: config validation, the patient list, input functions."""

from pathlib import Path

from mrct.config import ConfigError, validate_config
from mrct.models.inception_file import INCEPTION_FILE
from mrct.models.registry import downloadable_models, starts_from_file
from mrct.slices.manifest import DIRECTIONS as DIRECTION_TABLE
from mrct.training.settings import check_slice_size
from mrct.sources import local as local_source
from mrct.sources.demo import check_mixed_up, demo_patient_ids
from mrct.sources.patients import choose_patients
from mrct.sources.synthrad import CHALLENGES, synthrad_patient_ids

try:
    validate_config(config)
except ConfigError as error:
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


wildcard_constraints:
    patient=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model="|".join(MODELS),
    direction="|".join(DIRECTIONS),


def _choose(ids):
    """dataset.patients, else a seeded sample of dataset.max_patients balanced across centres."""
    try:
        return choose_patients(
            ids,
            DATASET,
            max_patients=config["dataset"].get("max_patients"),
            patients=config["dataset"].get("patients"),
            seed=config["seed"],
        )
    except ValueError as error:
        raise WorkflowError(str(error)) from None


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
    return expand(rules.extract_slices.output.table, patient=get_patients())


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

    from mrct.training.settings import RESULT_FREE, settings_from_config

    settings = dataclasses.asdict(settings_from_config(config, wildcards.model))
    return {k: v for k, v in settings.items() if k not in RESULT_FREE}


# Synthetic volume file name (sct, smr) -> the direction that makes it.
SYNTHETIC_DIRECTION = {f"s{d.target}": name for name, d in DIRECTION_TABLE.items()}


def get_translation_generator(wildcards):
    direction = SYNTHETIC_DIRECTION[wildcards.synthetic]
    return getattr(rules.train.output, f"g_{direction}").format(model=wildcards.model)


def get_translation_source(wildcards):
    """The registered volume a translation starts from: MR for the sCT, CT for the sMR."""
    modality = DIRECTION_TABLE[SYNTHETIC_DIRECTION[wildcards.synthetic]].source
    return getattr(rules.register.output, modality).format(patient=wildcards.patient)


def get_test_patients():
    """The test patients, from the same seeded function as rule split (slices.split.assign_split)
    less those registration QA leaves out, so that the per-patient volume jobs are known when the
    DAG is built; rule evaluate_volumes checks them against the manifest."""
    from mrct.slices.split import assign_split

    split = assign_split(
        get_patients(), config["split"]["train_fraction"], config["seed"]
    )
    excluded = get_excluded_patients()
    return sorted(
        p for p, side in split.items() if side == "test" and p not in excluded
    )


def get_volume_metric_inputs(wildcards):
    """Synthetic CT, registered CT and body mask of every test patient, in one patient order."""
    patients = get_test_patients()
    return {
        "sct": expand(
            rules.translate_volume.output.volume,
            model=wildcards.model,
            patient=patients,
            synthetic="sct",
        ),
        "ct": expand(rules.register.output.ct, patient=patients),
        "body_mask": expand(rules.register.output.body_mask, patient=patients),
    }


def get_volume_metric_tables(wildcards):
    return expand(rules.evaluate_volumes.output.volumes, model=MODELS)


def get_metric_tables(wildcards):
    return expand(rules.evaluate.output.slices, model=MODELS)


def get_final_output():
    """Every model, its predictions, the tables, the latent summary and joint embedding, the report."""
    return [
        rules.split.output.manifest,
        *expand(rules.train.output, model=MODELS),
        *get_prediction_dirs(None),
        *rules.tables.output,
        *rules.tables_volumes.output,
        rules.latent_summary.output.separability,
        rules.latent_joint.output.tsne,
        rules.latent_joint.output.umap,
        *rules.reader_study.output,
        rules.report.output.html,
    ]


def get_prediction_dirs(wildcards):
    return [
        path for model in MODELS for path in expand(rules.predict.output, model=model)
    ]


def get_train_logs(wildcards):
    return expand(rules.train.output.train_log, model=MODELS)


def get_latent_features(wildcards):
    return expand(rules.latent.output.features, model=MODELS)


def get_latent_separability(wildcards):
    return expand(rules.latent.output.separability, model=MODELS)


def get_latent_plots(wildcards):
    return expand([rules.latent.output.tsne, rules.latent.output.umap], model=MODELS)


# --- reader study and FID (issue 13) ---


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
