"""Shared fixtures of the Python suite (run by ctest as python.pytest, with PYTHONPATH at the
build tree's package and INFIELD_CLI at the command-line program)."""

import os
import pathlib

import numpy as np
import pytest

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def source_dir():
    return SOURCE_DIR


@pytest.fixture
def cli():
    path = os.environ.get("INFIELD_CLI")
    if not path:
        pytest.skip("INFIELD_CLI is not set (ctest sets it)")
    return path
