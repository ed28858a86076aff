"""Run by tests/test_torch_ddp.py: lstm_native.torch.LSTM in DistributedDataParallel on 2 CPU processes (gloo),
each on half of a global batch, against one process on the whole batch. Prints one JSON object of the largest
gradient and parameter differences per dtype.

    python tests/ddp_script.py RENDEZVOUS_FILE
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import lstm_native.torch

WORLD, B, T, I, H, CLASSES = 2, 8, 6, 3, 5, 4
STEPS = 2  # SGD steps: the second step's gradients are taken at the parameters the first step left


def model(dtype):
    torch.manual_seed(0)  # the same initial parameters in every process
    return nn.Sequential(lstm_native.torch.LSTM(I, H, batch_first=True, peephole="diagonal", dtype=dtype),
                         _LastStep(), nn.Linear(H, CLASSES, dtype=dtype))


class _LastStep(nn.Module):
    def forward(self, output_and_state):
        return output_and_state[0][:, -1]


def data(dtype):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=generator, dtype=dtype)
    return x, torch.randint(0, CLASSES, (B,), generator=generator)


def train(network, x, labels):
    """STEPS SGD steps on the mean cross-entropy: every step's gradients and the final parameters."""
    optimizer = torch.optim.SGD(network.parameters(), lr=0.5)
    gradients = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        nn.functional.cross_entropy(network(x), labels).backward()
        gradients.append([p.grad.clone() for p in network.parameters()])
        optimizer.step()
    return gradients, [p.detach().clone() for p in network.parameters()]


def largest_difference(first, second):
    return max(float((a - b).abs().max()) for a, b in zip(first, second))


def worker(rank, rendezvous, results):
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        for dtype in (torch.float32, torch.float64):
            x, labels = data(dtype)
            share = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
            gradients, parameters = train(DistributedDataParallel(model(dtype)), x[share], labels[share])
            if rank == 0:
                whole_gradients, whole_parameters = train(model(dtype), x, labels)
                results[str(dtype)] = {
                    "gradients": max(largest_difference(g, w) for g, w in zip(gradients, whole_gradients)),
                    "parameters": largest_difference(parameters, whole_parameters),
                    "gradient_scale": max(float(g.abs().max()) for g in whole_gradients[0]),
                    "count": len(whole_gradients[0])}
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(sys.argv[1], results), nprocs=WORLD, join=True)
        print("RESULT " + json.dumps(dict(results)))
