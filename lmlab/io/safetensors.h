// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then raw data.
// The reader memory-maps the file and returns zero-copy tensors when a tensor's data is aligned
// for its dtype; every rule of the format is validated with an error naming the file and tensor.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/core/file.h"  // write_file_atomic, read_text_file
#include "lmlab/core/tensor.h"

namespace lmlab {

class SafetensorsFile {
 public:
  // Opens and validates `path`. Throws IoError (cannot read) or FormatError (invalid content).
  static SafetensorsFile open(const std::string& path);
  // Parses an in-memory buffer (copied); used by the fuzz target and tests.
  static SafetensorsFile from_bytes(const std::string& bytes, const std::string& name = "<memory>");

  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // The tensor `name` (zero-copy view of the mapping when aligned). Throws FormatError when missing.
  Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    size_t begin, end;
  };
  void parse(const char* data, size_t size);
  std::string path_;
  std::shared_ptr<void> map_;  // keeps the mapping alive while tensors view it
  const char* base_ = nullptr;  // start of the data section
  std::map<std::string, Entry> entries_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any layout; written contiguous) atomically: temp file, fsync, rename.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Serialises to bytes (same layout as save_safetensors).
std::string safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
// Loads every tensor (as owning copies) into a name -> tensor map.
std::map<std::string, Tensor> load_safetensors(const std::string& path);


}  // namespace lmlab
