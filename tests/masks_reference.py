"""An independent numpy implementation of the regularization masks' contract (regularization.hpp):
Philox4x32-10, its 16-bit lanes, and how each regularizer indexes its elements."""

from __future__ import annotations

import numpy as np

STREAMS = {"input": 1, "recurrent": 2, "zoneout_h": 3, "zoneout_c": 4, "U": 5}
_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counters, key):
    """counters (n, 4) uint32-valued, key (k0, k1) -> (n, 4) uint64 holding 32-bit outputs."""
    c = [np.asarray(counters, dtype=np.uint64)[:, k] for k in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0, p1 = np.uint64(_M0) * c[0], np.uint64(_M1) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & _MASK32]
        k0, k1 = (k0 + np.uint64(_W0)) & _MASK32, (k1 + np.uint64(_W1)) & _MASK32
    return np.stack(c, axis=1)


def uniforms16(seed, stream, count):
    """The 16-bit uniforms of elements 0..count-1 of a stream."""
    blocks = np.arange((count + 7) // 8, dtype=np.uint64)
    counters = np.stack([blocks & _MASK32, blocks >> np.uint64(32), np.full_like(blocks, STREAMS[stream]),
                         np.zeros_like(blocks)], axis=1)
    words = philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32))  # (n, 4) 32-bit
    lanes = np.stack([words & np.uint64(0xFFFF), words >> np.uint64(16)], axis=2).reshape(-1)  # lane order
    return lanes[:count]


def threshold(rate):
    return int(rate * 65536.0 + 0.5)


def draw(seed, B, T, I, H, dropout=0.0, recurrent_dropout=0.0, zoneout_h=0.0, zoneout_c=0.0, weight_drop=0.0,
         P=None):
    """The multipliers a training call with these rates applies, as reference_forward's `masks` (P: the
    projection size, which sizes h)."""
    masks = {}
    Ho = H if P is None else P

    def dropout_mask(stream, shape, rate):
        keep = uniforms16(seed, stream, int(np.prod(shape))) >= threshold(rate)
        return keep.reshape(shape) / (1.0 - rate)

    if dropout:
        masks["input"] = dropout_mask("input", (B, I), dropout)
    if recurrent_dropout:
        masks["recurrent"] = dropout_mask("recurrent", (B, Ho), recurrent_dropout)
    if weight_drop:
        masks["U"] = dropout_mask("U", (Ho, 4 * H), weight_drop)
    if zoneout_h or zoneout_c:
        for name, rate in (("zoneout_h", zoneout_h), ("zoneout_c", zoneout_c)):
            masks[name] = (uniforms16(seed, name, T * B * H) < threshold(rate)).reshape(T, B, H).astype(float)
    return masks
