// Device queries, memory helpers, the per-thread cuBLAS handles and the row-major GEMM wrappers.
#include <climits>
#include <map>
#include <type_traits>
#include <utility>

#include "common_cuda.cuh"

namespace lstm_native::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return count;
}

void* device_malloc(std::size_t bytes) {
  void* pointer = nullptr;
  LSTM_NATIVE_CUDA_CHECK(cudaMalloc(&pointer, bytes == 0 ? 1 : bytes));
  return pointer;
}

void device_free(void* pointer) noexcept {
  if (pointer) cudaFree(pointer);
}

void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  if (bytes) LSTM_NATIVE_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* host_dst, const void* device_src, std::size_t bytes) {
  if (bytes) LSTM_NATIVE_CUDA_CHECK(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost));
}

void synchronize(void* stream) { LSTM_NATIVE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }

namespace detail {

namespace {

int checked_int(std::int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX)
    throw std::invalid_argument(std::string(what) + ": a GEMM dimension exceeds INT_MAX: " + std::to_string(value));
  return int(value);
}

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }
}  // namespace

cublasHandle_t cublas_handle(cudaStream_t stream) {
  // Never destroyed: a handle destroyed at exit could run after the CUDA runtime has shut down.
  thread_local std::map<int, cublasHandle_t> handles;
  int device = 0;
  LSTM_NATIVE_CUDA_CHECK(cudaGetDevice(&device));
  auto found = handles.find(device);
  if (found == handles.end()) {
    cublasHandle_t handle = nullptr;
    LSTM_NATIVE_CUDA_CHECK(cublasCreate(&handle));
    // Full-precision FP32 GEMMs (no TF32): results match the CPU to ~1e-6.
    LSTM_NATIVE_CUDA_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    found = handles.emplace(device, handle).first;
  }
  LSTM_NATIVE_CUDA_CHECK(cublasSetStream(found->second, stream));
  return found->second;
}

template <class T>
void gemm(cublasHandle_t handle, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  const auto call = [&](auto cublas_gemm) {
    LSTM_NATIVE_CUDA_CHECK(cublas_gemm(handle, op(trans_b), op(trans_a), checked_int(N, "N"), checked_int(M, "M"),
                                       checked_int(K, "K"), &alpha, B, checked_int(ldb, "ldb"), A,
                                       checked_int(lda, "lda"), &beta, C, checked_int(ldc, "ldc")));
  };
  if constexpr (std::is_same_v<T, float>)
    call(cublasSgemm);
  else
    call(cublasDgemm);
}

template void gemm<float>(cublasHandle_t, bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(cublasHandle_t, bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double, double*, std::int64_t);

}  // namespace detail
}  // namespace lstm_native::cuda
