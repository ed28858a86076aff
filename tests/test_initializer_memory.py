"""Initializers fill an array of the layer's dtype without a full-size float64 temporary (Embedding(10**7, 64)
once allocated 4.8 GB in float64 before its cast to float32), and draw the same values as one float64 draw
of the whole shape would (a seed gives the same weights as before, in any dtype)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from lstm_native import initializers, layers, utils

SHAPE = (1_000_000, 8)  # 32 MB in float32, 64 MB in float64
SEEDED = ["uniform", "normal", "truncated_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
          "lecun_uniform", "lecun_normal", "variance_scaling"]


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", SEEDED + ["zeros", "ones", "constant"])
def test_initializers_need_little_more_than_their_result(name):
    initializer = initializers.get(name)
    result_bytes = np.prod(SHAPE) * 4
    peak = _peak_bytes(lambda: initializer(SHAPE, dtype=np.float32))
    # a float64 draw of the whole shape would make it 3x (the draw, then the cast); truncated_normal keeps the
    # indices and redraws of the ~4.6% outside [-2, 2]
    assert peak < 1.6 * result_bytes, f"{name}: peak {peak / 2**20:.0f} MiB for a {result_bytes / 2**20:.0f} MiB result"


def test_an_embedding_is_built_without_a_float64_table():
    layer = layers.Embedding(1_000_000, 16)  # 64 MB in float32
    peak = _peak_bytes(lambda: layer.build((None, 5)))
    assert layer.embeddings.value.dtype == np.float32
    assert peak < 1.4 * 64e6, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("name", SEEDED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_draws_equal_one_float64_draw(name, dtype, monkeypatch):
    monkeypatch.setattr(initializers, "_DRAW_CHUNK", 1000)  # many chunks, a partial last one
    shape = (2_345, 7)
    initializer = initializers.get({"class_name": initializers.get(name).__class__.__name__,
                                    "config": {**initializers.get(name).get_config(), "seed": 11}})
    got = initializer(shape, dtype=dtype)
    assert got.dtype == dtype and got.shape == shape
    # the same values as drawing the whole shape in float64 at once and casting (the former way)
    monkeypatch.setattr(initializers, "_DRAW_CHUNK", 10**9)
    np.testing.assert_array_equal(got, initializer(shape, dtype=np.float64).astype(dtype))


def test_truncated_normal_redraws_everything_beyond_two_deviations(monkeypatch):
    monkeypatch.setattr(initializers, "_DRAW_CHUNK", 999)
    utils.set_random_seed(0)
    values = initializers.TruncatedNormal(mean=1.0, stddev=0.5)((500, 40), dtype=np.float64)
    assert np.all(np.abs(values - 1.0) <= 2 * 0.5)
    assert abs(values.std() - 0.5 * 0.8796) < 0.01
