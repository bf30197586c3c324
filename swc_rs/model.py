"""Patch classifier models: save/load with skops, the shipped default."""

from __future__ import annotations

from pathlib import Path

from swc_rs.errors import ModelError

_REPO_MODEL = Path(__file__).resolve().parent / "data" / "qtype_model.skops"


def default_model_path() -> Path | None:
    """The shipped model, when there is one; None means the documented rules."""
    return _REPO_MODEL if _REPO_MODEL.exists() else None


def load_model(path: str | Path):
    raise ModelError("no model format is supported yet", path=path, fix="run without --model to use the rules")
