"""Entry point of rule latent_joint: one t-SNE and one UMAP of every model's latent features together."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.figures import save_figure  # noqa: E402
from mrct.evaluation.latent import LatentSettings  # noqa: E402
from mrct.evaluation.latent_joint import joint_embedding, plot_joint  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402

settings = LatentSettings(seed=snakemake.params.seed, **snakemake.params.latent)  # noqa: F821
files = dict(zip(snakemake.params.models, snakemake.input.features, strict=True))  # noqa: F821
frame = joint_embedding(files, settings)
write_text_atomic(snakemake.output.points, frame.to_csv(index=False))  # noqa: F821
save_figure(plot_joint(frame, "tsne"), snakemake.output.tsne)  # noqa: F821
save_figure(plot_joint(frame, "umap"), snakemake.output.umap)  # noqa: F821
