"""Train a diagonal-peephole LSTM classifier with lstm_native's functional API on real data.

scikit-learn's handwritten digits (1,797 images of 8×8 pixels, shipped with the package, no download) are
read row by row as sequences of T = 8 steps of I = 8 features. The LSTM's forward and backward passes run in
the native core; the softmax read-out and the Adam update are a few lines of numpy.

    python examples/quickstart.py [--epochs 12] [--units 64] [--peephole diagonal|full|none]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

from lstm_native import ops


def load_data(rng: np.random.Generator):
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8): 8 steps of 8 pixels
    order = rng.permutation(len(x))
    split = int(0.8 * len(x))
    train, test = order[:split], order[split:]
    return x[train], digits.target[train], x[test], digits.target[test]


def init_params(rng: np.random.Generator, input_size: int, units: int, classes: int, peephole):
    """Keras' defaults: glorot-uniform W, orthogonal U, zero bias with the forget gate's set to 1."""
    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    q, _ = np.linalg.qr(rng.normal(size=(4 * units, units)))
    bias = np.zeros(4 * units, np.float32)
    bias[units : 2 * units] = 1.0
    params = {"W": glorot(input_size, 4 * units), "U": q.T.astype(np.float32), "b": bias,
              "V": glorot(units, classes), "c": np.zeros(classes, np.float32)}
    if peephole == "diagonal":
        params["p"] = np.zeros((3, units), np.float32)
    elif peephole == "full":
        params["p"] = np.zeros((3, units, units), np.float32)
    return params


def logits(params, x, peephole, training):
    out = ops.lstm_forward(x, params["W"], params["U"], params["b"], params.get("p"), peephole=peephole,
                           training=training)
    return out.h @ params["V"] + params["c"], out


def loss_and_grads(params, x, labels, peephole):
    z, out = logits(params, x, peephole, training=True)
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    batch = len(x)
    loss = -np.log(probs[np.arange(batch), labels]).mean()
    dz = probs
    dz[np.arange(batch), labels] -= 1.0
    dz /= batch
    lstm = ops.lstm_backward(out.context, dh=dz @ params["V"].T)
    grads = {"W": lstm.dW, "U": lstm.dU, "b": lstm.db, "V": out.h.T @ dz, "c": dz.sum(axis=0)}
    if "p" in params:
        grads["p"] = lstm.dp
    return loss, grads


class Adam:
    def __init__(self, params, learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-7):
        self.lr, self.b1, self.b2, self.eps, self.t = learning_rate, beta1, beta2, epsilon, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def update(self, params, grads):
        self.t += 1
        step = self.lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            params[k] -= (step * self.m[k] / (np.sqrt(self.v[k]) + self.eps)).astype(params[k].dtype)


def accuracy(params, x, labels, peephole) -> float:
    z, _ = logits(params, x, peephole, training=False)
    return float((z.argmax(axis=1) == labels).mean())


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--peephole", choices=["diagonal", "full", "none"], default="diagonal")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    peephole = None if args.peephole == "none" else args.peephole

    rng = np.random.default_rng(args.seed)
    x_train, y_train, x_test, y_test = load_data(rng)
    params = init_params(rng, x_train.shape[2], args.units, 10, peephole)
    optimizer = Adam(params)
    for epoch in range(1, args.epochs + 1):
        start, order, losses = time.perf_counter(), rng.permutation(len(x_train)), []
        for first in range(0, len(order), args.batch_size):
            batch = order[first : first + args.batch_size]
            loss, grads = loss_and_grads(params, x_train[batch], y_train[batch], peephole)
            optimizer.update(params, grads)
            losses.append(loss)
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  "
              f"test accuracy {accuracy(params, x_test, y_test, peephole):.4f}  ({time.perf_counter() - start:.2f} s)")
    final = accuracy(params, x_test, y_test, peephole)
    print(f"final test accuracy: {final:.4f}")
    return final


if __name__ == "__main__":
    main()
