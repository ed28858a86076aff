// The matrix products the CPU core runs, timed with each candidate kernel on one thread (bench/gemm_kernels.py
// builds and runs this program; see there). C [M,N] += A [M,K] B [K,N], row-major, B the weights (U or W):
//   eigen        the core's PackedLhsGemm (cpp/src/packed_gemm_cpu.hpp): Bᵀ packed once, Eigen's gebp kernel
//   mkl          MKL cblas_sgemm (sequential), B packed again every call
//   mkl-packed   MKL cblas_sgemm_compute with B packed once (cblas_sgemm_pack)
//   openblas     OpenBLAS cblas_sgemm (scipy-openblas32, 1 thread), B packed again every call
// Arguments: repeats, then M K N triples. Prints one line per shape and kernel: "M K N kernel GFLOP/s", the
// median over the repeats.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "packed_gemm_cpu.hpp"
#if LSTM_NATIVE_BENCH_MKL
#include <mkl.h>
#endif
#if LSTM_NATIVE_BENCH_OPENBLAS  // scipy-openblas32 prefixes its symbols with scipy_
extern "C" void scipy_cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                                  float*, int);
extern "C" void scipy_openblas_set_num_threads(int);
#endif

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Each kernel's median GFLOP/s over `repeats` rounds; a round times every kernel once, one after the other, so
// that a change in the machine's load falls on all of them alike. A repeat loops over calls for ~20 ms.
std::vector<double> median_gflops(const std::vector<std::function<void()>>& kernels, double flops, int repeats) {
  const int calls = std::max(1, static_cast<int>(20e6 / flops));  // at ~1 GFLOP/s per ms
  auto rate = [&](const std::function<void()>& call) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) call();
    return flops * calls / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 1e9;
  };
  for (const auto& call : kernels) rate(call);  // warm-up: first touch, packing buffers, the clock's frequency
  std::vector<std::vector<double>> rates(kernels.size());
  for (int r = 0; r < repeats; ++r)
    for (std::size_t k = 0; k < kernels.size(); ++k) rates[k].push_back(rate(kernels[k]));
  std::vector<double> medians;
  for (auto& kernel : rates) {
    std::sort(kernel.begin(), kernel.end());
    medians.push_back(kernel[kernel.size() / 2]);
  }
  return medians;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || (argc - 2) % 3 != 0) {
    std::fprintf(stderr, "usage: %s repeats M K N [M K N ...]\n", argv[0]);
    return 2;
  }
  const int repeats = std::atoi(argv[1]);
#if LSTM_NATIVE_BENCH_MKL
  mkl_set_num_threads(1);
#endif
#if LSTM_NATIVE_BENCH_OPENBLAS
  scipy_openblas_set_num_threads(1);
#endif
  for (int arg = 2; arg + 2 < argc; arg += 3) {
    const int M = std::atoi(argv[arg]), K = std::atoi(argv[arg + 1]), N = std::atoi(argv[arg + 2]);
    const double flops = 2.0 * M * K * N;
    const RowMajor A = RowMajor::Random(M, K), B = RowMajor::Random(K, N);
    RowMajor C = RowMajor::Zero(M, N);
    std::vector<const char*> names;
    std::vector<std::function<void()>> kernels;
    // The core's view: Cᵀ (N×M, column-major) += Bᵀ Aᵀ with Bᵀ the packed left factor.
    const lstm_native::detail::PackedLhsGemm<float, Eigen::ColMajor> packed(B.data(), N, N, K, M);
    names.push_back("eigen");
    kernels.push_back([&] { packed.multiply_add(A.data(), K, M, C.data(), N); });
#if LSTM_NATIVE_BENCH_MKL
    names.push_back("mkl");
    kernels.push_back([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A.data(), K, B.data(), N, 1.f, C.data(), N);
    });
    std::unique_ptr<float, decltype(&mkl_free)> B_packed(
        static_cast<float*>(mkl_malloc(cblas_sgemm_pack_get_size(CblasBMatrix, M, N, K), 64)), &mkl_free);
    cblas_sgemm_pack(CblasRowMajor, CblasBMatrix, CblasNoTrans, M, N, K, 1.f, B.data(), N, B_packed.get());
    names.push_back("mkl-packed");
    kernels.push_back([&] {
      cblas_sgemm_compute(CblasRowMajor, CblasNoTrans, CblasPacked, M, N, K, A.data(), K, B_packed.get(), N, 1.f,
                          C.data(), N);
    });
#endif
#if LSTM_NATIVE_BENCH_OPENBLAS
    constexpr int kRowMajor = 101, kNoTrans = 111;
    names.push_back("openblas");
    kernels.push_back([&] {
      scipy_cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, M, N, K, 1.f, A.data(), K, B.data(), N, 1.f, C.data(), N);
    });
#endif
    const std::vector<double> gflops = median_gflops(kernels, flops, repeats);
    for (std::size_t k = 0; k < names.size(); ++k) std::printf("%d %d %d %s %.2f\n", M, K, N, names[k], gflops[k]);
    std::fflush(stdout);
  }
  return 0;
}
