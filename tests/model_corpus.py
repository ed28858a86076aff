"""A corpus of hostile and corrupt model files, generated from a few valid ones (model.save of small models).

    python tests/model_corpus.py DIR      writes the corpus into DIR (and DIR/expectations.json)

Each case is (name, bytes, expected): expected is "ok" (a valid file that must load and predict), "error"
(must fail with a clean error), or None (either: random damage may leave a file valid). The cases:
truncations, bit and byte flips, header-length edits, out-of-range / reversed / overlapping data offsets,
shapes whose element count overflows, wrong dtypes, unknown layer types, wrong format and version, bad
config values (types, ranges, ranks), deeply nested JSON (100000 '[') in the header, the config and a
config value, and huge JSON; many-layer configs (up to and past the layer limit); every config key of every
layer kind (nested LSTMs, initializers and regularizers included) set to values of wrong types and ranges,
unknown keys and header entries, and non-finite weights. The seeds take inputs [2, 3, F] (F in 1..6) or [2, 3] token ids, the shapes
tests/cpp/fuzz_model_loader.cpp probes.
"""

from __future__ import annotations

import json
import random
import re
import struct
import sys
from pathlib import Path


def _seed_models():
    import numpy as np

    import lstm_native
    from lstm_native import layers as L
    from lstm_native.models import Sequential

    T = 3
    specs = {
        "stacked": [L.Input(shape=(T, 4)), L.LSTM(3, return_sequences=True), L.Dropout(0.2), L.LSTM(2),
                    L.Dense(2, activation="softmax")],
        "full-previous": [L.Input(shape=(T, 2)), L.LSTM(2, return_sequences=True, peephole="full",
                                                        output_peephole_source="previous",
                                                        peephole_initializer="glorot_uniform"),
                          L.Dense(2, activation="tanh")],
        "bidirectional": [L.Input(shape=(T, 3)), L.Bidirectional(L.LSTM(2, peephole=None)),
                          L.Dense(2, activation="sigmoid")],
        "masking": [L.Input(shape=(T, 5)), L.Masking(0.0), L.LSTM(2, go_backwards=True, zoneout_h=0.2, zoneout_c=0.3),
                    L.Dense(1, activation="relu")],
        "projected": [L.Input(shape=(T, 3)), L.LSTM(3, proj_size=2, return_sequences=True), L.Dense(2)],
        "embedding": [L.Input(shape=(T,)), L.Embedding(5, 3, mask_zero=True),
                      L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="ave"),
                      L.Dense(2, activation="softmax")],
        "float64": [L.LSTM(2, dtype="float64", input_shape=(T, 6)), L.Dense(2, dtype="float64")],
    }
    import tempfile

    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, spec) in enumerate(specs.items()):
            lstm_native.utils.set_random_seed(k)
            model = Sequential(spec)
            model.compile(loss="mse", optimizer="adam")
            if name == "stacked":  # one seed with optimizer state (tensors the C++ loader skips)
                x = np.random.default_rng(0).standard_normal((4, T, 4)).astype(np.float32)
                model.fit(x, np.zeros((4, 2), np.float32), epochs=1, verbose=0)
            else:  # builds the model
                features = {"full-previous": (2,), "bidirectional": (3,), "masking": (5,), "projected": (3,),
                            "embedding": (), "float64": (6,)}[name]
                model.predict(np.ones((2, T) + features, np.int64 if name == "embedding" else np.float32), verbose=0)
            path = Path(tmp) / f"{name}.safetensors"
            model.save(path, include_optimizer=(name == "stacked"))
            seeds[name] = path.read_bytes()
    return seeds


def split(data: bytes):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, payload: bytes, raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + payload


def tensor_names(header):
    return [k for k in header if k != "__metadata__"]


def with_config(data: bytes, edit) -> bytes:
    header, payload = split(data)
    config = json.loads(header["__metadata__"]["config"])
    edit(config)
    header["__metadata__"]["config"] = json.dumps(config)
    return join(header, payload)


# Values that every config key gets in turn: wrong types, out of range, odd strings, hostile entries.
KEY_VALUES = [None, 0, -1, 1, 0.5, 1.5, 2.0, 2**24, 2**24 + 1, 2**63, 1e300, "x", "", "relu", "tanh", "float16",
              "object", "float64", True, False, [], [3, 4], {}, {"class_name": "Zeros"},
              {"class_name": "GlorotUniform", "config": {"seed": "x"}}, {"class_name": "L1", "config": {"l1": -1}},
              {"class_name": "os.system", "config": {}}, {"class_name": "LSTM", "config": {"units": 2}}]


def _layer_configs(config: dict):
    """(label, the config of a layer or of a Bidirectional's sublayer) in a model config."""
    for k, layer in enumerate(config["layers"]):
        yield f"layer{k}", lambda c, k=k: c["layers"][k]["config"]
        if layer["class_name"] == "Bidirectional":
            for sub in ("layer", "backward_layer"):
                yield f"layer{k}.{sub}", lambda c, k=k, sub=sub: c["layers"][k]["config"][sub]["config"]


def _with_tensor_value(data: bytes, value: float) -> bytes:
    """The file with the first value of its first weight tensor replaced (F32 or F64)."""
    header, payload = split(data)
    name = next(n for n in tensor_names(header) if n.startswith("layers."))
    begin = header[name]["data_offsets"][0]
    import numpy as np

    with np.errstate(over="ignore"):  # 1e300 as F32: inf
        packed = np.array([value], "<f4" if header[name]["dtype"] == "F32" else "<f8").tobytes()
    return join(header, payload[:begin] + packed + payload[begin + len(packed):])


def many_layer_cases(seed: bytes, layer_limit: int) -> list:
    """The seed with Dropout layers appended: 20,000 (valid), and one past the loaders' layer limit."""
    out = []
    for count, expected in [(20_000, "ok"), (layer_limit + 1 - 5, "error")]:  # the seed holds 5 layers
        extra = [{"class_name": "Dropout", "config": {"rate": 0.5}}] * count
        out.append((f"many-layers.{count}", with_config(seed, lambda c: c["layers"].extend(extra)), expected))
    return out


def key_cases(seed_name: str, data: bytes) -> list:
    """Every key of every layer config (and of their initializers) set to each of KEY_VALUES, an unknown key per
    layer, and unknown or missing header entries: for the loaders' agreement (either answer is fine alone)."""
    header, _ = split(data)
    config = json.loads(header["__metadata__"]["config"])
    out = []
    for label, find in _layer_configs(config):
        for key in list(find(config)) + ["surprise", "device", "input_shape"]:
            for v, value in enumerate(KEY_VALUES):
                out.append((f"{seed_name}.{label}.{key}.{v}",
                            with_config(data, lambda c, key=key, value=value: find(c).__setitem__(key, value)), None))
        for key, value in [("kernel_initializer", {"class_name": "RandomNormal", "config": {"stddev": "1"}}),
                           ("kernel_initializer", {"class_name": "VarianceScaling", "config": {"mode": "x"}}),
                           ("kernel_initializer", {"class_name": "Constant", "config": {"value": 1e300}}),
                           ("kernel_initializer", {"class_name": "Orthogonal", "config": {"gain": 1, "bad": 2}}),
                           ("kernel_initializer", {"class_name": "Orthogonal", "extra": 1}),
                           ("kernel_initializer", {"class_name": "he_normal", "config": {"seed": 3}}),
                           ("kernel_regularizer", {"class_name": "L1L2", "config": {"l1": 0.1, "l2": 1e300}}),
                           ("kernel_regularizer", "l2"), ("kernel_regularizer", {"class_name": "L2"})]:
            if key in find(config):
                out.append((f"{seed_name}.{label}.{key}.{json.dumps(value)}"[:90],
                            with_config(data, lambda c, key=key, value=value: find(c).__setitem__(key, value)), None))
    for key, value in [("surprise", "1"), ("Config", "{}"), ("training_state", "{}"), ("compile", "{}")]:
        h = json.loads(json.dumps(header))
        h["__metadata__"][key] = value
        out.append((f"{seed_name}.meta.extra.{key}", join(h, split(data)[1]), None))
    for value, expected in [(float("nan"), "error"), (float("inf"), "error"), (-float("inf"), "error"),
                            (1e300, "error"), (0.5, "ok")]:
        out.append((f"{seed_name}.weight.{value}", _with_tensor_value(data, value), expected))
    return out


def cases(seeds: dict) -> list:
    rng = random.Random(20240607)
    out = []

    def add(name, data, expected):
        out.append((name, bytes(data), expected))

    for seed_name, data in seeds.items():
        add(f"{seed_name}.valid", data, "ok")
        header, payload = split(data)
        hlen = struct.unpack("<Q", data[:8])[0]
        names = tensor_names(header)
        # truncations: every point of the first 64 bytes, then spread over the file
        points = sorted(set(list(range(0, 64, 3)) + [rng.randrange(len(data)) for _ in range(40)] +
                            [8 + hlen - 1, 8 + hlen, 8 + hlen + 1, len(data) - 1]))
        for p in points:
            if p < len(data):
                add(f"{seed_name}.truncate.{p}", data[:p], "error")
        # bit flips and byte changes, anywhere, then in the header only
        for k in range(60):
            d = bytearray(data)
            for _ in range(rng.choice([1, 1, 2, 8])):
                pos = rng.randrange(len(d)) if k % 2 else rng.randrange(min(len(d), 8 + hlen))
                d[pos] ^= 1 << rng.randrange(8)
            add(f"{seed_name}.bitflip.{k}", d, None)
        for k in range(20):
            d = bytearray(data)
            pos = rng.randrange(8, 8 + hlen)
            d[pos] = rng.choice(b'[]{}",:0-9e\x00\xff\\')
            add(f"{seed_name}.byte.{k}", d, None)
        # header length edits
        for value in [0, 1, 2, hlen - 1, hlen + 1, hlen + len(payload), len(data) - 8, len(data) - 7, len(data),
                      100 << 20, (100 << 20) + 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1]:
            expect = "ok" if value == hlen else None if value < hlen + len(payload) else "error"
            if value in (0, 1, 2, hlen - 1):
                expect = "error"
            add(f"{seed_name}.hlen.{value}", struct.pack("<Q", value) + data[8:], expect)
        # data offsets: out of range, reversed, overlapping, shifted, wrong types
        for k, name in enumerate(names):
            begin, end = header[name]["data_offsets"]
            for label, offsets in [("past", [begin, len(payload) + 4]), ("far", [2**63, 2**63 + end - begin]),
                                   ("max", [2**64 - 1, 2**64 - 1]), ("reversed", [end, begin]),
                                   ("negative", [-4, end - begin - 4]), ("float", [float(begin), float(end)]),
                                   ("short", [begin]), ("string", ["0", str(end)]), ("null", None),
                                   ("shifted", [begin + 4, end + 4] if end + 4 <= len(payload) else [begin - 4, end - 4])]:
                h = json.loads(json.dumps(header))
                h[name]["data_offsets"] = offsets
                add(f"{seed_name}.offsets.{k}.{label}", join(h, payload), "error")
            if k:  # this tensor's range overlapping the previous one's
                prev_begin, prev_end = header[names[k - 1]]["data_offsets"]
                h = json.loads(json.dumps(header))
                h[name]["data_offsets"] = [prev_begin, prev_begin + end - begin]
                add(f"{seed_name}.offsets.{k}.overlap", join(h, payload), "error")
        # shapes: overflowing products, negative, non-integer, mismatched
        # a weight, not training state: the C++ loader reads no "optimizer." tensor (inference needs none)
        name = rng.choice([n for n in names if not n.startswith("optimizer.")])
        for label, shape in [("overflow64", [2**32, 2**32, 16]), ("overflow-bytes", [2**62, 2]),
                             ("huge-zero", [0, 2**64 - 1]), ("max", [2**64 - 1]), ("beyond64", [2**65]),
                             ("negative", [-1, 4]), ("float", [1.5, 2]), ("string", ["2"]), ("nested", [[2]]),
                             ("scalar", []), ("notlist", 4), ("extra", header[name]["shape"] + [1]),
                             ("many-dims", [1] * 100000)]:
            h = json.loads(json.dumps(header))
            h[name]["shape"] = shape
            add(f"{seed_name}.shape.{label}", join(h, payload), "error")
        # dtypes
        for dtype in ["F16", "BF16", "I64", "I32", "U8", "BOOL", "f32", "", 5, None, ["F32"], {"F32": 1}]:
            h = json.loads(json.dumps(header))
            h[name]["dtype"] = dtype
            add(f"{seed_name}.dtype.{dtype!r}"[:80], join(h, payload), "error")
        h = json.loads(json.dumps(header))  # the other float dtype, with this byte range: a size mismatch
        h[name]["dtype"] = "F32" if header[name]["dtype"] == "F64" else "F64"
        add(f"{seed_name}.dtype.F64-size", join(h, payload), "error")
        # the tensor table: missing, extra, renamed, not an object
        h = json.loads(json.dumps(header))
        del h[name]
        add(f"{seed_name}.tensor.missing", join(h, payload), "error")
        h = json.loads(json.dumps(header))
        h["layers.99.kernel"] = dict(h[name])
        add(f"{seed_name}.tensor.extra", join(h, payload), "error")
        for label, value in [("list", []), ("string", "x"), ("empty", {}), ("null", None)]:
            h = json.loads(json.dumps(header))
            h[name] = value
            add(f"{seed_name}.tensor.{label}", join(h, payload), "error")
        # metadata: format, version, types, missing keys
        for key, value, expect in [("format", "keras", "error"), ("format_version", "2", "error"),
                                   ("format_version", "", "error"), ("format_version", 1, "error"),
                                   ("format_version", "1.0", "error"), ("config", "", "error"),
                                   ("config", "[]", "error"), ("config", "{}", "error"), ("config", "null", "error"),
                                   ("build_input_shape", "[]", "error"), ("build_input_shape", "[null]", "error"),
                                   ("build_input_shape", "{}", "error"), ("build_input_shape", "7", "error"),
                                   ("build_input_shape", '"x"', "error"), ("build_input_shape", "[null, 3, 0]", "error"),
                                   ("build_input_shape", "[null, 3, -1]", "error"),
                                   ("build_input_shape", "[null, 3, 1e300]", "error"),
                                   ("build_input_shape", f"[null, 3, {2**62}]", "error"),
                                   ("build_input_shape", f"[null, 3, {2**64 - 1}]", "error"),
                                   ("build_input_shape", "[null, 3, 4, 5]", "error"),
                                   ("build_input_shape", "[null, 12]", None),
                                   ("build_input_shape", "[null, null, null]", "error"),
                                   ("compile", "not json", None)]:
            h = json.loads(json.dumps(header))
            h["__metadata__"][key] = value
            add(f"{seed_name}.meta.{key}.{value!r}"[:90], join(h, payload), expect)
        for key in ["format", "format_version", "config", "build_input_shape"]:
            h = json.loads(json.dumps(header))
            del h["__metadata__"][key]
            add(f"{seed_name}.meta.missing.{key}", join(h, payload), "error")
        h = json.loads(json.dumps(header))
        h["__metadata__"] = ["format", "lstm_native"]
        add(f"{seed_name}.meta.notobject", join(h, payload), "error")
        # config edits, layer by layer
        config = json.loads(header["__metadata__"]["config"])
        for k, layer in enumerate(config["layers"]):
            kind = layer["class_name"]
            for label, edit in [
                ("class-unknown", lambda c: c["layers"][k].update(class_name="GRU")),
                ("class-lambda", lambda c: c["layers"][k].update(class_name="Lambda")),
                ("class-number", lambda c: c["layers"][k].update(class_name=7)),
                ("class-missing", lambda c: c["layers"][k].pop("class_name")),
                ("config-missing", lambda c: c["layers"][k].pop("config")),
                ("config-list", lambda c: c["layers"][k].update(config=[1])),
                ("name-number", lambda c: c["layers"][k]["config"].update(name=5)),
                ("layer-string", lambda c: c["layers"].__setitem__(k, "LSTM")),
            ]:
                add(f"{seed_name}.layer{k}.{label}", with_config(data, edit),
                    None if label == "name-number" else "error")
            keys = {"LSTM": ["units", "peephole", "output_peephole_source", "return_sequences", "go_backwards",
                             "use_bias", "zoneout_h", "zoneout_c", "return_state", "zero_output_for_mask"],
                    "Dense": ["units", "activation", "use_bias"],
                    "Embedding": ["input_dim", "output_dim", "mask_zero"],
                    "Masking": ["mask_value"],
                    "Bidirectional": ["merge_mode", "layer", "backward_layer"]}.get(kind, [])
            for key in keys:
                for value in [None, 0, -1, 2**24 + 1, 2**40, 2**64, 1e300, -1e300, 2.5, "2", "bogus", True, [],
                              {"class_name": "LSTM"}, "[" * 50]:
                    add(f"{seed_name}.layer{k}.{key}.{value!r}"[:90],
                        with_config(data, lambda c: c["layers"][k]["config"].__setitem__(key, value)), None)
            if kind == "Bidirectional":  # the two directions disagree
                for key, value in [("units", 3), ("return_sequences", True), ("return_sequences", False),
                                   ("peephole", "full"), ("go_backwards", False)]:
                    def edit(c, key=key, value=value):
                        c["layers"][k]["config"]["backward_layer"]["config"][key] = value
                    add(f"{seed_name}.layer{k}.backward.{key}.{value}", with_config(data, edit), None)
                for sub in ("layer", "backward_layer"):
                    add(f"{seed_name}.layer{k}.{sub}.noconfig",
                        with_config(data, lambda c, sub=sub: c["layers"][k]["config"][sub].pop("config")), "error")
                    add(f"{seed_name}.layer{k}.{sub}.configlist",
                        with_config(data, lambda c, sub=sub: c["layers"][k]["config"][sub].update(config=[])), "error")
        # layer order: an LSTM fed a 2-D input, two LSTMs without return_sequences, etc.
        add(f"{seed_name}.layers.reversed",
            with_config(data, lambda c: c.update(layers=c["layers"][:1] + c["layers"][:0:-1])), None)
        add(f"{seed_name}.layers.doubled", with_config(data, lambda c: c.update(layers=c["layers"] * 2)), None)
        add(f"{seed_name}.layers.empty", with_config(data, lambda c: c.update(layers=[])), "error")
        add(f"{seed_name}.layers.notlist", with_config(data, lambda c: c.update(layers={"a": 1})), "error")
        # deeply nested JSON: in the config, in a config value, in a dtype, as the whole header
        deep = "[" * 100000 + "]" * 100000
        h = json.loads(json.dumps(header))
        h["__metadata__"]["config"] = deep
        add(f"{seed_name}.deep.config", join(h, payload), "error")
        h["__metadata__"]["config"] = "[" * 100000
        add(f"{seed_name}.deep.config-open", join(h, payload), "error")
        h = json.loads(json.dumps(header))
        h["__metadata__"]["build_input_shape"] = deep
        add(f"{seed_name}.deep.shape", join(h, payload), "error")
        for k, layer in enumerate(config["layers"]):
            if layer["class_name"] in ("LSTM", "Dense", "Embedding"):
                key = "input_dim" if layer["class_name"] == "Embedding" else "units"
                text = json.dumps(config).replace(f'"{key}": {layer["config"][key]}', f'"{key}": {deep}', 1)
                h = json.loads(json.dumps(header))
                h["__metadata__"]["config"] = text
                add(f"{seed_name}.deep.value{k}", join(h, payload), "error")
                break
        raw = json.dumps(header, separators=(",", ":"))
        add(f"{seed_name}.deep.dtype", join(None, payload, re.sub('"dtype":"F(32|64)"', '"dtype":' + deep, raw, count=1).encode()),
            "error")
        add(f"{seed_name}.deep.shape-entry",
            join(None, payload, raw.replace('"shape":[', '"shape":[' + deep + ",", 1).encode()), "error")
    out += [case for name, data in seeds.items() for case in key_cases(name, data)]
    from lstm_native import file_rules

    out += many_layer_cases(seeds["stacked"], file_rules.LIMITS["layers"])
    # whole-header cases, independent of the seeds
    any_seed = next(iter(seeds.values()))
    header, payload = split(any_seed)
    for label, text in [("deep-array", b"[" * 100000 + b"]" * 100000), ("deep-open", b"[" * 100000),
                        ("deep-object", b'{"a":' * 100000 + b"1" + b"}" * 100000),
                        ("huge-array", b"[" + b"0," * 5_000_000 + b"0]"),
                        ("huge-string", b'{"__metadata__":{"config":"' + b"x" * 20_000_000 + b'"}}'),
                        ("huge-keys", b"{" + b",".join(b'"k%d":{}' % i for i in range(300_000)) + b"}"),
                        ("empty", b""), ("spaces", b" " * 1000), ("null", b"null"), ("number", b"12"),
                        ("not-utf8", b'{"\xff\xfe":1}'), ("nul", b'{"a\x00":1}'), ("bom", b"\xef\xbb\xbf{}"),
                        ("empty-object", b"{}"), ("dup-keys", b'{"__metadata__":{},"__metadata__":{}}')]:
        add(f"header.{label}", join(None, payload, text), "error")
    for label, data in [("empty-file", b""), ("seven-bytes", b"\x01" * 7), ("zero-header", b"\x00" * 8),
                        ("only-length", struct.pack("<Q", 2)), ("random-1k", bytes(rng.randrange(256) for _ in range(1024)))]:
        add(f"file.{label}", data, "error")
    return out


def write_corpus(directory) -> dict:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    expectations = {}
    for k, (name, data, expected) in enumerate(cases(_seed_models())):
        file_name = f"{k:05d}"
        (directory / file_name).write_bytes(data)
        expectations[file_name] = {"case": name, "expected": expected}
    (directory.parent / f"{directory.name}.expectations.json").write_text(json.dumps(expectations, indent=0))
    return expectations


if __name__ == "__main__":
    print(len(write_corpus(sys.argv[1])), "files")
