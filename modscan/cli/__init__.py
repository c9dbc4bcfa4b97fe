"""The ``modscan`` command: one module per command group. Light commands start fast:
TensorFlow loads only to score."""

from __future__ import annotations

import logging

import click

from modscan.cli.audit import audit
from modscan.cli.demo import demo
from modscan.cli.ingest import ingest
from modscan.cli.keys import keys
from modscan.cli.model import bench, evaluate, train
from modscan.cli.pipeline import api, export, migrate, requeue, scan, worker
from modscan.cli.policy import policy
from modscan.cli.relay import relay
from modscan.cli.rescan import rescan

__all__ = ["main"]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """modscan: tell AI-generated images from real ones, in bulk."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for command in (
    migrate,
    scan,
    worker,
    api,
    ingest,
    requeue,
    relay,
    export,
    bench,
    train,
    evaluate,
    demo,
    keys,
    audit,
    policy,
    rescan,
):
    main.add_command(command)
