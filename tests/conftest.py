"""Shared fixtures: corpus location, crafted captures, rulebook."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.* helpers importable without installing the tests

CORPUS = Path(os.environ.get("PCAPAUDIT_CORPUS", ROOT.parent / "shared" / "corpus"))
SEEDS = Path(os.environ.get("PCAPAUDIT_SEEDS", ROOT.parent / "shared" / "seeds"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared real-capture corpus; tests using it are skipped when it is absent."""
    if not (CORPUS / "expected").is_dir():
        pytest.skip(f"corpus not found at {CORPUS} (set PCAPAUDIT_CORPUS)")
    return CORPUS


@pytest.fixture(scope="session")
def seeds() -> Path:
    """The vendor seed documents; tests using them are skipped when absent."""
    if not (SEEDS / "SUMMARY.md").is_file():
        pytest.skip(f"seed documents not found at {SEEDS} (set PCAPAUDIT_SEEDS)")
    return SEEDS


@pytest.fixture(scope="session")
def book():
    """The built-in rulebook."""
    from pcapaudit.rules.loader import load_rulebook

    return load_rulebook()
