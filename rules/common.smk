"""Everything that is not a rule: config validation, the patient list, input functions."""

from pathlib import Path

from mrct.config import ConfigError, validate_config
from mrct.sources import local as local_source
from mrct.sources.demo import demo_patient_ids
from mrct.sources.synthrad import synthrad_patient_ids
from mrct.zoo import is_zoo_model

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

DATASET = config["dataset"]["source"]
MODELS = list(config["models"])
DIRECTIONS = ["mr2ct", "ct2mr"]


wildcard_constraints:
    patient=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model="|".join(MODELS),
    direction="mr2ct|ct2mr",


def _first(ids):
    """Keep the first ``dataset.max_patients`` patients (sorted), as the study took 18."""
    limit = config["dataset"].get("max_patients")
    ids = sorted(ids)
    return ids[:limit] if limit else ids


def get_patients():
    """Patient ids; for SynthRAD2023 they are read from the downloaded archive (checkpoint)."""
    if DATASET == "demo":
        return _first(demo_patient_ids(config["dataset"]["demo"]["n_patients"]))
    if DATASET == "local":
        return _first(local_source.find_patients(config["dataset"]["path"]))
    archive = checkpoints.download_dataset.get().output.archive
    return _first(synthrad_patient_ids(archive, config["dataset"]["synthrad2023"]["region"]))


def get_raw_image(modality):
    """Input function: the raw MR or CT of one patient (a file, or a DICOM folder)."""

    def inner(wildcards):
        if DATASET == "local":
            folder = Path(config["dataset"]["path"]) / wildcards.patient
            return str(local_source.find_modality(folder, modality))
        return f"data/raw/{DATASET}/{wildcards.patient}/{modality}.nii.gz"

    return inner


def get_slice_tables(wildcards):
    return expand("results/slices/{patient}/slices.csv", patient=get_patients())


def get_registration_qa(wildcards):
    return expand("results/preprocessed/{patient}/qa.png", patient=get_patients())


def get_pretrained(wildcards):
    """The starting weights of a model: none for scratch, a file for every other model."""
    if wildcards.model == "scratch":
        return []
    return f"resources/pretrained/{wildcards.model}.pth"


def get_metric_tables(wildcards):
    return expand("results/metrics/{model}.csv", model=MODELS)


def get_final_output():
    return [
        "results/slices/manifest.csv",
        *expand("results/models/{model}/G_{direction}.pth", model=MODELS, direction=DIRECTIONS),
        *expand("results/predictions/{model}/{direction}", model=MODELS, direction=DIRECTIONS),
        *expand("results/tables/metrics_{direction}.{ext}", direction=DIRECTIONS, ext=["csv", "md", "tex"]),
        "results/latent/separability.csv",
        "results/report.html",
    ]


# --- evaluation and report (issue 4) ---


def get_patient_metric_tables(wildcards):
    return expand("results/metrics/{model}_patients.csv", model=MODELS)


def get_prediction_dirs(wildcards):
    return expand("results/predictions/{model}/{direction}", model=MODELS, direction=DIRECTIONS)


def get_train_logs(wildcards):
    return expand("results/models/{model}/train_log.csv", model=MODELS)


def get_latent_features(wildcards):
    return expand("results/latent/{model}_features.npz", model=MODELS)


def get_latent_separability(wildcards):
    return expand("results/latent/{model}_separability.csv", model=MODELS)


def get_latent_plots(wildcards):
    return expand("results/latent/{model}_{method}.png", model=MODELS, method=["tsne", "umap"])
