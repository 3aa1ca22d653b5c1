"""Entry point of rule latent: bottleneck features, t-SNE/UMAP and separability of one model.

With several runs per model, each tested slice goes through the generators of the fold that tested
it (replicate 0, full training set: the out-of-fold pool, see rules/common.smk).
"""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

import torch  # noqa: E402

from mrct.evaluation.figures import save_figure  # noqa: E402
from mrct.evaluation.latent import LatentSettings, analyse, plot_embeddings, save_latent, test_images  # noqa: E402
from mrct.evaluation.runs import pooled_features  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.models.trained import load_trained_generator  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.io.device import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
inputs, params = snakemake.input, snakemake.params  # noqa: F821
model = snakemake.wildcards.model  # noqa: F821
settings = LatentSettings(seed=params.seed, **params.latent)
device = str(resolve_device(untracked_setting(snakemake, "train", "device")))  # noqa: F821
generators = {
    fold: {"mr2ct": load_trained_generator(g_mr2ct, device), "ct2mr": load_trained_generator(g_ct2mr, device)}
    for fold, g_mr2ct, g_ct2mr in zip(params.folds, inputs.g_mr2ct, inputs.g_ct2mr, strict=True)
}
rows, mr, ct = test_images(read_manifest(inputs.manifest), settings.max_slices)
features = pooled_features(generators, rows["fold"].to_numpy(), mr, ct, settings.batch_size, device)
embeddings, table = analyse(features, rows["patient"].to_numpy(), settings)
save_latent(snakemake.output.features, rows, features, embeddings)  # noqa: F821
save_figure(plot_embeddings(embeddings, "tsne", len(rows), model), snakemake.output.tsne)  # noqa: F821
save_figure(plot_embeddings(embeddings, "umap", len(rows), model), snakemake.output.umap)  # noqa: F821
write_text_atomic(snakemake.output.separability, table.assign(model=model).to_csv(index=False))  # noqa: F821
