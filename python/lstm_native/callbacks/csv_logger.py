"""CSVLogger."""

from __future__ import annotations

import collections.abc
import csv
import os
from typing import IO, List, Optional, Union

import numpy as np

from .. import _arguments
from .callback import Callback, Logs


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the logs' keys in sorted order (the first epoch's keys;
    without validation keys, ``val_<key>`` columns are added for each, holding "NA"). ``append=True``
    continues an existing file (writing the header only if the file is empty)."""

    def __init__(self, filename: Union[str, os.PathLike], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not (isinstance(separator, str) and len(separator) == 1):
            raise ValueError(f"separator: expected a string of one character, got {separator!r}")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = _arguments.boolean("append", append)
        self.writer: Optional[csv.DictWriter] = None
        self.keys: Optional[List[str]] = None
        self.append_header = True
        self.csv_file: Optional[IO[str]] = None

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not f.readline()
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.csv_file is None:
            raise RuntimeError(f"CSVLogger({self.filename!r}): on_epoch_end before on_train_begin opened the file")
        csv_file = self.csv_file
        logs = logs or {}

        def handle_value(value):
            if isinstance(value, str):
                return value
            if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
                return f'"[{", ".join(map(str, value))}]"'
            return value

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        keys = self.keys
        if not self.writer:
            dialect = type("CustomDialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(csv_file, fieldnames=["epoch"] + keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, handle_value(logs.get(key, "NA"))) for key in keys)
        self.writer.writerow(row)
        csv_file.flush()

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
