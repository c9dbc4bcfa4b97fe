"""``modscan train``, ``evaluate`` and ``bench``: making, measuring and timing detectors."""

from __future__ import annotations

from pathlib import Path

import click

from db.policy import CHECKS
from modscan.cli.common import load_settings


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Folder with train/ and val/ (or train.tar.gz and val.tar.gz) in the CIFAKE layout.",
)
@click.option("--backbone", default="EfficientNetB6", show_default=True)
@click.option("--image-size", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--learning-rate", type=float, default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models/efficientnetb6-cifake"),
    show_default=True,
)
@click.option(
    "--time-budget",
    type=float,
    default=None,
    help="Stop after this many minutes, checkpointed; run the command again to resume.",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start from this artifact's weights instead of a random initialisation.",
)
@click.option("--steps-per-epoch", type=int, default=None, help="Default: the whole train split.")
@click.option("--float32-weights", is_flag=True, help="Ship float32 weights (twice the size).")
@click.option(
    "--export-only",
    is_flag=True,
    help="Write the artifact from the checkpoints' best weights without training further.",
)
@click.option(
    "--no-recompute-bn",
    is_flag=True,
    help="Keep BatchNorm's moving averages instead of recomputing them on training images.",
)
@click.option(
    "--rescale-augment",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of training images blurred by an up-and-down rescale.",
)
def train(
    data: Path,
    backbone: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    out: Path,
    time_budget: float | None,
    init_from: Path | None,
    steps_per_epoch: int | None,
    float32_weights: bool,
    export_only: bool,
    no_recompute_bn: bool,
    rescale_augment: float,
) -> None:
    """Train a detector (resumable), calibrate it on validation and write an artifact."""
    from modscan.training.augment import Augmentation
    from modscan.training.run import run_training
    from modscan.training.trainer import TrainConfig

    config = TrainConfig(
        augmentation=Augmentation(rescale_probability=rescale_augment),
        backbone=backbone,
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        time_budget_s=time_budget * 60 if time_budget else None,
        steps_per_epoch=steps_per_epoch,
    )
    try:
        run_training(
            load_settings(),
            data,
            out,
            config,
            echo=lambda line: click.echo(line, err=False),
            init_from=init_from,
            float16=not float32_weights,
            export_only=export_only,
            recompute_bn=not no_recompute_bn,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model artifact folder. Default: the one scans use.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="A labelled set (REAL/ and FAKE/ folders, or a .tar.gz), or a dataset folder.",
)
@click.option("--split", default="val", show_default=True, help="Split to use in a dataset folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--limit", type=int, default=None, help="Evaluate a stratified sample of N images.")
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a report folder (tables, JSON, plots) here.",
)
@click.option("--no-robustness", is_flag=True, help="Skip the re-encoded, rescaled, flipped sets.")
@click.option(
    "--update-card", is_flag=True, help="Record these figures in the artifact's card.json."
)
def evaluate(
    model_path: Path | None,
    data: Path,
    split: str,
    as_json: bool,
    limit: int | None,
    report: Path | None,
    no_robustness: bool,
    update_card: bool,
) -> None:
    """Measure a model on labelled images: metrics, robustness, calibration and plots."""
    from modscan.evaluation.run import run_evaluation

    try:
        run_evaluation(
            load_settings(),
            model_path,
            data,
            split=split,
            as_json=as_json,
            limit=limit,
            report=report,
            robustness=not no_robustness,
            update_card=update_card,
            echo=click.echo,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--images", type=int, default=4096, show_default=True)
@click.option("--skip-s3", is_flag=True, help="Leave out the S3 measurements.")
@click.option(
    "--check",
    type=click.Choice(CHECKS),
    default="hflip",
    show_default=True,
    help="The policy's robustness check during the pipeline runs (hflip is the default policy).",
)
def bench(as_json: bool, images: int, skip_s3: bool, check: str) -> None:
    """Measure ceiling, naive, pipeline and S3 throughput on this machine."""
    from modscan.bench import run_bench

    run_bench(load_settings(), images=images, as_json=as_json, skip_s3=skip_s3, check=check)
