"""Entry point of rule latent: bottleneck features, t-SNE/UMAP and separability of one model, at
three stages: a random-weight control, the start of fine-tuning, and the trained generators. With
several runs per model: those of fold 0, replicate 0 on the full training set, on its test patients."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

import torch  # noqa: E402

from mrct.evaluation.figures import save_figure  # noqa: E402
from mrct.evaluation.latent import (  # noqa: E402
    LatentSettings,
    analyse_stages,
    plot_stages,
    random_generators,
    save_latent,
    test_images,
)
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.io.device import resolve_device  # noqa: E402
from mrct.models.trained import load_trained_generator  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.training.loop import FAMILY_TRAINING  # noqa: E402
from mrct.training.settings import TrainSettings  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
inputs, params = snakemake.input, snakemake.params  # noqa: F821
model = snakemake.wildcards.model  # noqa: F821
settings = LatentSettings(seed=params.seed, **params.latent)
device = str(resolve_device(untracked_setting(snakemake, "train", "device")))  # noqa: F821
finetuned = {
    "mr2ct": load_trained_generator(snakemake.input.g_mr2ct, device),  # noqa: F821
    "ct2mr": load_trained_generator(snakemake.input.g_ct2mr, device),  # noqa: F821
}
# The start of fine-tuning, built by the function training builds it with (same settings, same
# start file or seeded random init), so the "pretrained" stage is exactly what training began from.
train_settings = TrainSettings(**snakemake.params.train)  # noqa: F821
build_networks, _ = FAMILY_TRAINING[train_settings.family]  # CycleGAN ResNets or pix2pix U-Nets
start = build_networks(train_settings, snakemake.input.pretrained or None)  # noqa: F821
generators = {
    "random": random_generators(finetuned, settings.seed),
    "pretrained": {"mr2ct": start.g_mr2ct.to(device).eval(), "ct2mr": start.g_ct2mr.to(device).eval()},
    "finetuned": finetuned,
}
rows, mr, ct = test_images(read_manifest(snakemake.input.manifest), settings.max_slices)  # noqa: F821
features, embeddings, table = analyse_stages(generators, mr, ct, rows["patient"].to_numpy(), settings, device)
save_latent(snakemake.output.features, rows, features, embeddings)  # noqa: F821
save_figure(plot_stages(embeddings, "tsne", len(rows), model), snakemake.output.tsne)  # noqa: F821
save_figure(plot_stages(embeddings, "umap", len(rows), model), snakemake.output.umap)  # noqa: F821
write_text_atomic(snakemake.output.separability, table.assign(model=model).to_csv(index=False))  # noqa: F821
