#include "lstm_native/tensor.hpp"

#include <sstream>
#include <stdexcept>

namespace lstm_native {

std::string shape_to_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream text;
  text << '[';
  for (std::size_t k = 0; k < shape.size(); ++k) text << (k ? ", " : "") << shape[k];
  text << ']';
  return text.str();
}

namespace detail {

void check_shape(const char* name, bool present, const std::vector<std::int64_t>& shape,
                 std::initializer_list<std::int64_t> expected) {
  const std::vector<std::int64_t> want(expected);
  if (!present)
    throw std::invalid_argument(std::string(name) + ": required, expected shape " + shape_to_string(want));
  if (shape != want)
    throw std::invalid_argument(std::string(name) + ": expected shape " + shape_to_string(want) + ", got " +
                                shape_to_string(shape));
}

}  // namespace detail
}  // namespace lstm_native
