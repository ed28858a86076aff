"""GPU throughput and latency: lstm_native's CUDA backend against cuDNN (PyTorch nn.LSTM) and a scripted
PyTorch peephole LSTM (a TorchScript cell in a per-step loop, diagonal peepholes), on the same GPU, in one
process, float32.

  training step (forward + backward): B=64, T=100, I=H=512 and I=H=1024, peephole None and diagonal
  inference latency:                  B=1, 2, 4, 8, 16, T=100, I=H=512 and 1024, with our persistent kernel and without

Ours is timed device-resident (lstm_native._cuda_bench.timings(repeats=N), a module of CUDA builds for this
benchmark: the data uploaded once, each call synchronized); PyTorch likewise with torch.cuda.synchronize(). Medians of --repeats runs after a warm-up. FLOPs
of a training step: 3 * 2*T*B*(I+H)*4H (docs/DESIGN.md §6); inference: a third of that.

Exits with a clear message (status 2) when there is no CUDA build, no GPU, or no CUDA-enabled PyTorch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def fail(message):
    print(f"bench/gpu.py: {message}", file=sys.stderr)
    sys.exit(2)


def median_seconds(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smaller shapes (a smoke run)")
    args = parser.parse_args()

    import lstm_native
    from lstm_native import cuda

    if not lstm_native.with_cuda:
        fail("this lstm_native build has no CUDA backend (build with -Ccmake.define.LSTM_NATIVE_CUDA=ON)")
    from lstm_native import _cuda_bench
    if not cuda.is_available():
        fail("no CUDA device usable (lstm_native.cuda.device_count() == 0)")
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed (pip install torch with CUDA support)")
    if not torch.cuda.is_available():
        fail("PyTorch has no CUDA device (a CPU-only torch build?)")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # like ours: full FP32 GEMMs
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    sync = torch.cuda.synchronize
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
          f"lstm_native {lstm_native.__version__}; float32, TF32 off; median of {args.repeats}")

    @torch.jit.script
    def peephole_cell(x_w: torch.Tensor, h: torch.Tensor, c: torch.Tensor, U: torch.Tensor, p: torch.Tensor):
        z = x_w + h @ U
        zi, zf, zg, zo = z.chunk(4, 1)
        i = torch.sigmoid(zi + p[0] * c)
        f = torch.sigmoid(zf + p[1] * c)
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + p[2] * c)
        return o * torch.tanh(c), c

    def scripted_peephole(x, W, U, b, p, h, c):
        xw = (x @ W + b).unbind(1)
        ys = []
        for t in range(len(xw)):
            h, c = peephole_cell(xw[t], h, c, U, p)
            ys.append(h)
        return torch.stack(ys, 1)

    rng = np.random.default_rng(0)

    def ours(B, T, I, H, peephole, training, repeats):
        s = 1 / np.sqrt(H)
        arrays = dict(x=rng.standard_normal((B, T, I), dtype=np.float32),
                      W=rng.uniform(-s, s, (I, 4 * H)).astype(np.float32),
                      U=rng.uniform(-s, s, (H, 4 * H)).astype(np.float32),
                      b=np.zeros(4 * H, np.float32),
                      p=None if peephole is None else rng.uniform(-0.5, 0.5, (3, H)).astype(np.float32))
        dy = rng.standard_normal((B, T, H), dtype=np.float32) if training else None
        seconds = _cuda_bench.timings(**arrays, peephole=peephole or "none", training=training, dy=dy, repeats=repeats)
        return statistics.median(seconds)

    def torch_lstm(B, T, I, H, training, repeats):
        lstm = torch.nn.LSTM(I, H, batch_first=True).to(device)
        x = torch.randn(B, T, I, device=device, requires_grad=training)
        if training:
            dy = torch.randn(B, T, H, device=device)
            fn = lambda: torch.autograd.backward(lstm(x)[0], dy)  # noqa: E731
        else:
            def fn():
                with torch.no_grad():
                    lstm(x)
        return median_seconds(fn, repeats, sync)

    def torch_peephole(B, T, I, H, training, repeats):
        s = 1 / np.sqrt(H)
        params = [torch.empty(shape, device=device).uniform_(-s, s).requires_grad_(training)
                  for shape in ((I, 4 * H), (H, 4 * H), (4 * H,), (3, H))]
        x = torch.randn(B, T, I, device=device, requires_grad=training)
        h = torch.zeros(B, H, device=device)
        c = torch.zeros(B, H, device=device)
        if training:
            dy = torch.randn(B, T, H, device=device)
            fn = lambda: torch.autograd.backward(scripted_peephole(x, *params, h, c), dy)  # noqa: E731
        else:
            def fn():
                with torch.no_grad():
                    scripted_peephole(x, *params, h, c)
        return median_seconds(fn, repeats, sync)

    sizes = [(64, 100, 512, 512), (64, 100, 1024, 1024)] if not args.quick else [(16, 20, 64, 64)]
    print("\ntraining step (forward + backward), ms and GFLOP/s; ratio = cuDNN time / ours (> 1: ours faster)")
    print(f"{'B,T,I,H':>18} {'cuDNN LSTM':>12} {'ours none':>12} {'ratio':>6} {'ours diag':>12} {'ratio':>6} "
          f"{'torch peep':>12} {'ours diag x':>11}")
    for B, T, I, H in sizes:
        flops = 3 * 2 * T * B * (I + H) * 4 * H
        ref = torch_lstm(B, T, I, H, True, args.repeats)
        none = ours(B, T, I, H, None, True, args.repeats)
        diag = ours(B, T, I, H, "diagonal", True, args.repeats)
        peep = torch_peephole(B, T, I, H, True, max(3, args.repeats // 3))
        gf = lambda s: f"{s * 1e3:6.2f} ({flops / s / 1e9:5.0f})"  # noqa: E731
        print(f"{str((B, T, I, H)):>18} {gf(ref):>12} {gf(none):>12} {ref / none:6.2f} {gf(diag):>12} {ref / diag:6.2f} "
              f"{gf(peep):>12} {peep / diag:10.1f}x")

    T = 100 if not args.quick else 20
    for I in ((512, 1024) if not args.quick else (64,)):
        H = I
        print(f"\ninference latency, T={T}, I=H={I}, ms; ratio = cuDNN time / ours (> 1: ours faster); ours: the "
              "persistent kernel where it applies (B <= 16, small enough), per-step: LSTM_NATIVE_CUDA_PERSISTENT=0")
        print(f"{'B':>4} {'cuDNN LSTM':>11} {'ours none':>10} {'ratio':>6} {'per-step':>9} {'ours diag':>10} {'ratio':>6} "
              f"{'per-step':>9} {'torch peep':>11} {'ours diag x':>11}")
        for B in (1, 2, 4, 8, 16):
            ref = torch_lstm(B, T, I, H, False, args.repeats)
            none = ours(B, T, I, H, None, False, args.repeats)
            diag = ours(B, T, I, H, "diagonal", False, args.repeats)
            os.environ["LSTM_NATIVE_CUDA_PERSISTENT"] = "0"
            none_steps = ours(B, T, I, H, None, False, args.repeats)
            diag_steps = ours(B, T, I, H, "diagonal", False, args.repeats)
            del os.environ["LSTM_NATIVE_CUDA_PERSISTENT"]
            peep = torch_peephole(B, T, I, H, False, max(3, args.repeats // 3))
            print(f"{B:>4} {ref * 1e3:11.3f} {none * 1e3:10.3f} {ref / none:6.2f} {none_steps * 1e3:9.3f} "
                  f"{diag * 1e3:10.3f} {ref / diag:6.2f} {diag_steps * 1e3:9.3f} {peep * 1e3:11.3f} {peep / diag:10.1f}x")
    print("\ntargets (issue 6): training ratio >= 1.0 (none), >= 0.9 (diag); latency ratio >= 1; >= 20x torch peep")


if __name__ == "__main__":
    main()
