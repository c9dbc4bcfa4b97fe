"""`modscan rescan`: score stored images with another model version, report the flips,
keep the old verdicts; and the export row that answers who decided what, and when."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Scan, Verdict
from db.session import session_scope
from tests.support.cli import run_cli
from tests.support.images import jpeg_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another untrained B0 (other seed, so other scores) under its own version."""
    from workers.classifier.runner import create_untrained_artifact

    folder = tmp_path_factory.mktemp("model2") / "untrained-b0-seed1"
    create_untrained_artifact(folder, backbone="EfficientNetB0", input_size=32, seed=1)
    card = json.loads((folder / "card.json").read_text())
    card["version"] = "untrained-seed1"
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.slow(seconds=50)
def test_rescan_reports_flips_and_keeps_old_verdicts(
    tmp_path: Path, small_model: Path, second_model: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        (folder / f"img{i:02d}.jpg").write_bytes(jpeg_bytes(i))
    db = tmp_path / "modscan.db"
    env = {
        "MODSCAN_DATABASE_URL": f"sqlite:///{db}",
        "MODSCAN_MODEL_PATH": str(small_model),
        # Two small batch shapes to trace, as for the suite's other scans (the defaults trace
        # 16, 64 and 256 for a dozen images, in both the scan and the rescan process).
        "MODSCAN_BATCH_SIZES": "[4]",
        "MODSCAN_MAX_BATCH": "16",
    }
    assert run_cli(["migrate"], tmp_path, env).returncode == 0
    first = run_cli(["scan", str(folder)], tmp_path, env)
    assert first.returncode == 0, first.stderr[-2000:]

    rescan = run_cli(
        ["rescan", "--model", str(second_model), "--scan", "1", "--json"], tmp_path, env
    )
    assert rescan.returncode == 0, rescan.stderr[-2000:]
    report = json.loads(rescan.stdout)

    url = env["MODSCAN_DATABASE_URL"]
    with session_scope(url) as session:
        verdicts = session.scalars(select(Verdict)).all()
        rescan_scan = session.get(Scan, report["rescan_id"])
        assert rescan_scan is not None and rescan_scan.kind == "rescan"
        assert rescan_scan.status == "completed"
    by_model: dict[str, dict[str, Verdict]] = {}
    for v in verdicts:
        by_model.setdefault(v.model_version, {})[v.image_sha256] = v
    old, new = by_model["untrained"], by_model["untrained-seed1"]
    assert len(old) == len(new) == 12  # the old verdicts stay
    expected = sorted(sha for sha in old if old[sha].label != new[sha].label)
    assert report["compared"] == 12 and report["errors"] == 0
    assert report["label_flips"] == len(expected) > 0  # seeds 0 and 1 disagree on most
    assert sorted(f["sha256"] for f in report["flips"] if f["old_label"] != f["new_label"]) == (
        expected
    )
    assert all(f["old_model"].endswith("untrained") for f in report["flips"])
    assert {v.policy_version for v in new.values()} == {1}

    # Every image of the original scan, with its verdict's policy version and action.
    exported = run_cli(["export", "--format", "csv", "--scan", "1"], tmp_path, env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 12
    assert {r["policy_version"] for r in rows} == {"1"}
    assert {r["action"] for r in rows} <= {"flagged", "cleared", "needs_review"}
    for r in rows:
        review = r["review_state"]
        assert (review == "open") == (r["action"] == "needs_review"), r
