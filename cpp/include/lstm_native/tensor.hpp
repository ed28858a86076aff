// Non-owning views of dense, C-contiguous tensors, and the shape checks every entry point runs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace lstm_native {

// A view of caller-owned memory: `data` points at prod(shape) elements in row-major order.
// An empty view (data == nullptr) stands for an omitted optional argument.
template <class T>
struct Tensor {
  T* data = nullptr;
  std::vector<std::int64_t> shape;

  Tensor() = default;
  Tensor(T* d, std::vector<std::int64_t> s) : data(d), shape(std::move(s)) {}
  // A view of mutable data is also a view of const data.
  template <class U>
  Tensor(const Tensor<U>& other) : data(other.data), shape(other.shape) {}

  bool empty() const { return data == nullptr; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
};

// "[2, 3, 4]"
std::string shape_to_string(const std::vector<std::int64_t>& shape);

namespace detail {
void check_shape(const char* name, bool present, const std::vector<std::int64_t>& shape,
                 std::initializer_list<std::int64_t> expected);
}  // namespace detail

// Throws std::invalid_argument("<name>: expected shape [..], got [..]") unless t has exactly `expected`
// (or "<name>: required" when the view is empty).
template <class T>
void require_shape(const char* name, const Tensor<T>& t, std::initializer_list<std::int64_t> expected) {
  detail::check_shape(name, !t.empty(), t.shape, expected);
}

// As require_shape, but an empty view is accepted (an omitted optional argument).
template <class T>
void require_shape_or_empty(const char* name, const Tensor<T>& t,
                            std::initializer_list<std::int64_t> expected) {
  if (!t.empty()) require_shape(name, t, expected);
}

}  // namespace lstm_native
