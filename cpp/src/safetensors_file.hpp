// Reading a safetensors file (https://huggingface.co/docs/safetensors): an 8-byte little-endian header size
// N, N bytes of JSON naming each tensor's dtype, shape and byte range, then the data. Everything is
// checked before use; problems throw ModelFileError naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lstm_native::detail {

struct StoredTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // F32 as stored, F64 rounded to float
  bool float64 = false;       // stored as F64
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, StoredTensor> tensors;
};

// Parses JSON text from the file at `path` (for messages: `what`, e.g. "its header"), refusing nesting deeper
// than 64 levels; problems throw ModelFileError.
nlohmann::json parse_json(const std::string& path, const std::string& what, const char* begin, const char* end);

// Reads the file; tensors whose names start with `skip_prefix` (when not empty) are left unread.
SafetensorsFile read_safetensors(const std::string& path, const std::string& skip_prefix = "");
// The same from the file's `size` bytes in memory; `path` names them in messages.
SafetensorsFile parse_safetensors(const std::string& path, const char* bytes, std::size_t size,
                                  const std::string& skip_prefix = "");

}  // namespace lstm_native::detail
