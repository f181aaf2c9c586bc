"""Shared test fixtures: the reference data in ``../shared/data`` and an untrained tiny LLaVA."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (clone with ../shared beside it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny LLaVA folder (:func:`vlreid.testing.llava.build_tiny_llava`, seed 0);
    tests read it, none may write into it."""
    from vlreid.testing.llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
