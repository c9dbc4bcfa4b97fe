"""Model cards and the sha256 check on load (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.classifier.artifact import (
    ArtifactError,
    ModelCard,
    read_card,
    sha256_file,
    verify_weights,
)
from workers.classifier.artifact import write_card as save_card


def make_artifact(folder: Path) -> ModelCard:
    folder.mkdir()
    weights = folder / "model.weights.h5"
    weights.write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 8)
    card = ModelCard(name="m", version="1.0.0", weights_sha256=sha256_file(weights))
    save_card(folder, card)
    return card


def test_card_round_trip_and_verified_load(tmp_path: Path) -> None:
    card = make_artifact(tmp_path / "a")
    loaded = read_card(tmp_path / "a")
    assert loaded == card
    assert verify_weights(tmp_path / "a", loaded) == tmp_path / "a" / "model.weights.h5"


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    make_artifact(tmp_path / "a")
    weights = tmp_path / "a" / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        verify_weights(tmp_path / "a", read_card(tmp_path / "a"))


def test_missing_or_malformed_card(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"card\.json is missing"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text('{"name": "x", "unknown_field": 1}')
    with pytest.raises(ArtifactError, match="not a valid model card"):
        read_card(tmp_path)


def test_ai_score_follows_the_sigmoid_meaning() -> None:
    assert ModelCard(name="m", version="1", sigmoid="p_real").ai_score(0.8) == pytest.approx(0.2)
    assert ModelCard(name="m", version="1", sigmoid="p_ai").ai_score(0.8) == pytest.approx(0.8)
