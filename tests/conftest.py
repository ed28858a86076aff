"""Fixtures shared by the tests against the numpy reference (tests/reference.py)."""

import zlib

import numpy as np
import pytest

from reference import VARIANTS


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's id: reproducible, and different for every test case."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(params=VARIANTS, ids=lambda variant: f"{variant[0]}-{variant[1]}")
def variant(request):
    """(peephole, output_peephole_source): the six cell variants of docs/DESIGN.md §1."""
    return request.param
