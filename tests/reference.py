"""The float64 numpy oracle of docs/DESIGN.md §1, written from the equations alone, plus shared test helpers.

    z_t = x_t W + h_{t-1} U + b                     gate blocks [i, f, g, o]
    i_t = sigmoid(z_i + peep_i(c_{t-1}))
    f_t = sigmoid(z_f + peep_f(c_{t-1}))
    g_t = tanh(z_g)
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigmoid(z_o + peep_o(c_t))                 c_{t-1} with output_peephole_source="previous"
    h_t = o_t * tanh(c_t)                            (o_t * tanh(c_t)) @ W_hr with a projection W_hr (H, P)

peep_k(c) = p[k] * c ("diagonal", p (3, H)), c @ p[k] ("full", p (3, H, H)), 0 (None); k: 0=i, 1=f, 2=o.
At a masked step (mask False) h and c are carried unchanged; the output is the carried h, or 0 with
zero_output_for_mask=True.

Regularization (`masks`, optional, as drawn by tests/masks_reference.py): z_t = (x_t ⊙ m_x) W +
(h_{t-1} ⊙ m_h)(U ⊙ M_U) + b, and zoneout h_t = d_h ⊙ h_{t-1} + (1-d_h) ⊙ h̃_t, c_t likewise, where h̃_t, c̃_t
are the values above (the output gate peeking at c̃_t).
"""

from __future__ import annotations

import numpy as np

VARIANTS = [(peephole, source) for peephole in ("diagonal", "full", None) for source in ("current", "previous")]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _peep(c, p, k, peephole):
    if peephole is None:
        return 0.0
    if peephole == "diagonal":
        return p[k] * c
    if peephole == "full":
        return c @ p[k]
    raise ValueError(f"unknown peephole {peephole!r}")


def _f64(array):
    return None if array is None else np.asarray(array, dtype=np.float64)


def reference_forward(x, W, U, b, p, peephole, output_peephole_source, h0=None, c0=None, mask=None,
                      zero_output_for_mask=False, masks=None, W_hr=None):
    """One LSTM layer over x (B, T, I) in float64 -> (y (B, T, Ho), h (B, Ho), c (B, H)), Ho = P with a
    projection W_hr (H, P) (then U is (P, 4H)), else H.

    masks: optional dict of regularization multipliers, each optional: "input" (B, I), "recurrent" (B, Ho),
    "U" (Ho, 4H), "zoneout_h" and "zoneout_c" (T, B, H)."""
    if output_peephole_source not in ("current", "previous"):
        raise ValueError(f"unknown output_peephole_source {output_peephole_source!r}")
    x, W, U, b, p, W_hr = map(_f64, (x, W, U, b, p, W_hr))
    batch, time, _ = x.shape
    hidden, out_size = W.shape[1] // 4, U.shape[0]
    h = np.zeros((batch, out_size)) if h0 is None else _f64(h0).copy()
    c = np.zeros((batch, hidden)) if c0 is None else _f64(c0).copy()
    valid = np.ones((batch, time), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    y = np.empty((batch, time, out_size))
    masks = masks or {}
    m_x, m_h, m_U = (masks.get(k, 1.0) for k in ("input", "recurrent", "U"))
    for t in range(time):
        z = (x[:, t] * m_x) @ W + (h * m_h) @ (U * m_U)
        if b is not None:
            z = z + b
        z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)
        i = _sigmoid(z_i + _peep(c, p, 0, peephole))
        f = _sigmoid(z_f + _peep(c, p, 1, peephole))
        g = np.tanh(z_g)
        c_new = f * c + i * g
        o = _sigmoid(z_o + _peep(c_new if output_peephole_source == "current" else c, p, 2, peephole))
        h_new = o * np.tanh(c_new)
        if W_hr is not None:
            h_new = h_new @ W_hr
        if "zoneout_h" in masks:
            h_new = masks["zoneout_h"][t] * h + (1 - masks["zoneout_h"][t]) * h_new
            c_new = masks["zoneout_c"][t] * c + (1 - masks["zoneout_c"][t]) * c_new
        keep = valid[:, t, None]
        h = np.where(keep, h_new, h)
        c = np.where(keep, c_new, c)
        y[:, t] = np.where(keep, h, 0.0) if zero_output_for_mask else h
    return y, h, c


def random_params(rng, I, H, peephole, dtype=np.float64, P=None):
    """Random W, U, b, p (and W_hr (H, P) given P) for a variant, uniform in +-1/sqrt(fan-in) (p: +-0.5
    when diagonal; W_hr: +-1, so that a projection does not shrink h)."""
    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    p_shape = {"diagonal": (3, H), "full": (3, H, H), None: None}[peephole]
    params = dict(
        W=uniform((I, 4 * H), I),
        U=uniform((H if P is None else P, 4 * H), H if P is None else P),
        b=uniform(4 * H, 4),
        p=None if p_shape is None else uniform(p_shape, H if peephole == "full" else 4),
    )
    if P is not None:
        params["W_hr"] = uniform((H, P), 1)
    return params


def random_inputs(rng, B, T, I, H, dtype=np.float64, P=None):
    """Random x (B, T, I), h0 (B, P or H) and c0 (B, H): x and c0 standard normal, h0 uniform in +-0.9."""
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.uniform(-0.9, 0.9, (B, H if P is None else P)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    return x, h0, c0


def random_mask(rng, B, T):
    """Random (B, T) bool mask (B >= 3, T >= 2): row 0 fully masked, row 1 masked at t=0 and valid at t=1,
    row 2 valid at t=0 and masked at the last step; the rest random, holes included."""
    mask = rng.random((B, T)) < 0.6
    mask[0] = False
    mask[1, :2] = (False, True)
    mask[2, 0], mask[2, -1] = True, False
    return mask


def max_rel_error(actual, expected):
    """max |actual - expected| / max |expected| (max-abs error over the reference's max-abs scale)."""
    expected = np.asarray(expected, dtype=np.float64)
    error = np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected), initial=0.0)
    return error / max(np.max(np.abs(expected), initial=0.0), np.finfo(np.float64).tiny)
