"""Shared fixtures. Tests run from the repository root; MNIST is cached under resources/."""

from __future__ import annotations

from pathlib import Path

import pytest

from compactbnn import data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def resources():
    return REPO / "resources"


@pytest.fixture(scope="session")
def digits():
    return data.load("digits")


@pytest.fixture(scope="session")
def mnist(resources):
    return data.load("mnist", resources)
