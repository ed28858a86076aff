#include "safetensors_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lstm_native/model.hpp"

namespace lstm_native::detail {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;  // the limit the safetensors format itself sets
constexpr int kMaxJsonDepth = 64;  // a header is two levels deep; deeper JSON is hostile (recursion in dump())

// At most 200 characters of a JSON value, for error messages.
std::string brief(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

// A float64 value as float32: out-of-range values become +-inf (a plain cast would be undefined behavior).
float to_float(double value) {
  if (std::isnan(value)) return std::numeric_limits<float>::quiet_NaN();
  if (value > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (value < std::numeric_limits<float>::lowest()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(value);
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw ModelFileError(path + ": " + problem);
}

// What a file that is not a regular file is, for messages.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

void require_regular(const std::string& path, mode_t mode) {
  if (!S_ISREG(mode)) fail(path, std::string("is ") + file_kind(mode) + ", not a regular file");
}

// Closes a descriptor when it goes out of scope.
struct Descriptor {
  int fd;
  ~Descriptor() { ::close(fd); }
};

// The whole file, read through one descriptor: opened without blocking (a FIFO would wait for a writer) and
// checked to be a regular file by fstat on that descriptor (no window between a check and the open). Read, not
// memory-mapped: a file truncated or rewritten meanwhile is an error, not a SIGBUS.
std::vector<char> read_all(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const std::string reason = std::strerror(errno);
    struct stat status {};
    if (::stat(path.c_str(), &status) == 0) require_regular(path, status.st_mode);  // a socket cannot be opened
    fail(path, "cannot open the file (" + reason + ")");
  }
  const Descriptor descriptor{fd};
  struct stat before {};
  if (::fstat(fd, &before) != 0) fail(path, std::string("cannot read the file's status (") + std::strerror(errno) + ")");
  require_regular(path, before.st_mode);
  std::vector<char> bytes(static_cast<std::size_t>(before.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path, std::string("cannot read the file (") + std::strerror(errno) + ")");
    if (got == 0) fail(path, "the file became shorter while it was read (written by another process?)");
    done += static_cast<std::size_t>(got);
  }
  struct stat after {};
  if (::fstat(fd, &after) != 0 || after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
    fail(path, "the file changed while it was read (written by another process?)");
  return bytes;
}

std::uint64_t little_endian_u64(const char* bytes) {
  std::uint64_t value = 0;
  for (int k = 7; k >= 0; --k) value = (value << 8) | static_cast<unsigned char>(bytes[k]);
  return value;
}

// Checks the entry of one tensor and returns its byte range; reads its values into `tensor` when given.
std::pair<std::uint64_t, std::uint64_t> read_tensor(const std::string& path, const std::string& name,
                                                    const nlohmann::json& entry, const char* data,
                                                    std::uint64_t data_size, StoredTensor* out) {
  const std::string where = "tensor \"" + name + "\": ";
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
    fail(path, where + "expected an object with dtype, shape and data_offsets");
  const auto& dtype = entry["dtype"];
  std::uint64_t item = 0;
  if (dtype == "F32") {
    item = 4;
  } else if (dtype == "F64") {
    item = 8;
  } else if (!out && dtype.is_string()) {  // a skipped tensor (training state) may hold any safetensors dtype
    static const std::map<std::string, std::uint64_t> sizes = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F16", 2}, {"BF16", 2}, {"I16", 2}, {"U16", 2},
        {"I32", 4}, {"U32", 4}, {"I64", 8}, {"U64", 8}};
    const auto found = sizes.find(dtype.get<std::string>());
    if (found != sizes.end()) item = found->second;
  }
  if (item == 0) fail(path, where + "expected dtype F32 or F64, got " + brief(dtype));
  StoredTensor tensor;
  std::uint64_t count = 1;
  if (!entry["shape"].is_array()) fail(path, where + "shape must be an array");
  if (entry["shape"].size() > 8) fail(path, where + "its shape has more than 8 dimensions");
  for (const auto& dim : entry["shape"]) {
    if (!dim.is_number_unsigned()) fail(path, where + "shape must hold non-negative integers");
    const std::uint64_t d = dim.get<std::uint64_t>();
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(path, where + "its shape holds a dimension beyond 2**63 - 1");
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / item / d)
      fail(path, where + "its shape's element count overflows");
    count *= d;
    tensor.shape.push_back(static_cast<std::int64_t>(d));
  }
  const auto& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail(path, where + "data_offsets must be two non-negative integers");
  const std::uint64_t begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
  if (begin > end || end > data_size) fail(path, where + "its data_offsets lie outside the file's data");
  if (end - begin != count * item) fail(path, where + "its byte range does not match its dtype and shape");
  if (out) {
    tensor.float64 = item == 8;
    tensor.values.resize(count);
    for (std::uint64_t k = 0; k < count; ++k) {
      if (item == 4) {
        std::memcpy(&tensor.values[k], data + begin + 4 * k, 4);
      } else {
        double value;
        std::memcpy(&value, data + begin + 8 * k, 8);
        tensor.values[k] = to_float(value);
      }
    }
    *out = std::move(tensor);
  }
  return {begin, end};
}

}  // namespace

nlohmann::json parse_json(const std::string& path, const std::string& what, const char* begin, const char* end) {
  // Nesting deeper than kMaxJsonDepth is refused before parsing, by one linear scan (outside strings): the
  // recursive parts of nlohmann_json, dump() and comparisons, then only ever see shallow values. (Its
  // parser's depth callback would do the same, but costs quadratic time on wide objects.)
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char* c = begin; c != end; ++c) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (*c == '\\') escaped = true;
      else if (*c == '"') in_string = false;
    } else if (*c == '"') {
      in_string = true;
    } else if (*c == '[' || *c == '{') {
      if (++depth > kMaxJsonDepth)
        fail(path, what + " nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (*c == ']' || *c == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(begin, end);
  } catch (const nlohmann::json::exception& error) {
    fail(path, what + " is not valid JSON (" + std::string(error.what()).substr(0, 300) + ")");
  }
}

SafetensorsFile read_safetensors(const std::string& path, const std::string& skip_prefix) {
  const std::vector<char> bytes = read_all(path);
  return parse_safetensors(path, bytes.data(), bytes.size(), skip_prefix);
}

SafetensorsFile parse_safetensors(const std::string& path, const char* bytes, std::size_t size,
                                  const std::string& skip_prefix) {
  if (size < 8) fail(path, "too short for a safetensors file");
  const std::uint64_t header_size = little_endian_u64(bytes);
  if (header_size > kMaxHeaderBytes || header_size > size - 8)
    fail(path, "its header length (" + std::to_string(header_size) + " bytes) runs past the end of the file");
  const nlohmann::json header = parse_json(path, "its header", bytes + 8, bytes + 8 + header_size);
  if (!header.is_object()) fail(path, "its header must be a JSON object");
  const char* data = bytes + 8 + header_size;
  const std::uint64_t data_size = size - 8 - header_size;
  SafetensorsFile file;
  std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::string>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(path, "__metadata__ entry \"" + key + "\" must be a string");
        file.metadata[key] = value.get<std::string>();
      }
    } else {
      // every tensor's entry is checked, also those skipped; only the others are read
      const bool skip = !skip_prefix.empty() && name.rfind(skip_prefix, 0) == 0;
      ranges.push_back({read_tensor(path, name, entry, data, data_size, skip ? nullptr : &file.tensors[name]), name});
    }
  }
  // As the safetensors format requires: the byte ranges tile the data, without gaps or overlaps.
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t covered = 0;
  for (const auto& [range, name] : ranges) {
    if (range.first != covered)
      fail(path, "tensor \"" + name + "\": its data_offsets " +
                     (range.first < covered ? "overlap another tensor's" : "leave a gap after the previous tensor's"));
    covered = range.second;
  }
  if (covered != data_size)
    fail(path, "the tensors cover " + std::to_string(covered) + " bytes of its " + std::to_string(data_size) +
                   " data bytes (a truncated or padded file)");
  return file;
}

}  // namespace lstm_native::detail
