// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then raw data.
// The reader memory-maps the file and returns zero-copy tensors when a tensor's data is aligned
// for its dtype; every rule of the format is validated with an error naming the file and tensor.
//
// Sharded checkpoints (Hugging Face `save_pretrained`): a folder holding
// model-00001-of-0000N.safetensors ... and model.safetensors.index.json,
//   {"metadata": {"total_size": bytes}, "weight_map": {"tensor.name": "model-00001-of-0000N.safetensors"}}.
// SafetensorsShards opens every shard once and cross-checks the index against the shards.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/core/file.h"  // write_file_atomic, read_text_file
#include "lmlab/core/tensor.h"

namespace lmlab {

// One tensor's header entry: dtype, shape and its byte range [begin, end) in the data section.
struct SafetensorsTensorInfo {
  DType dtype = DType::F32;
  Shape shape;
  size_t begin = 0, end = 0;
  size_t nbytes() const { return end - begin; }
};

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
  // dtype, shape and byte range of `name`. Throws FormatError when missing.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // Sum of every tensor's bytes (the data section's size: the format allows no holes).
  size_t data_bytes() const { return data_bytes_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  void parse(const char* data, size_t size);
  std::string path_;
  std::shared_ptr<void> map_;  // keeps the mapping alive while tensors view it
  const char* base_ = nullptr;  // start of the data section
  size_t data_bytes_ = 0;
  std::map<std::string, SafetensorsTensorInfo> entries_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any layout; written contiguous) atomically: temp file, fsync, rename. Data is laid
// out by decreasing element size so that every tensor is aligned for its dtype (zero-copy reads).
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Serialises to bytes (same layout as save_safetensors).
std::string safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
// Loads every tensor (as owning copies) into a name -> tensor map.
std::map<std::string, Tensor> load_safetensors(const std::string& path);

// File names inside a model folder.
inline constexpr const char* kSafetensorsSingleName = "model.safetensors";
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

// model.safetensors.index.json. Shard names are relative to the index's folder and may not leave it
// (no absolute paths, no "." / ".." / empty components, no backslashes); the check is lexical, so
// shards that are symlinks elsewhere (the HF hub cache) still open.
struct SafetensorsIndex {
  std::optional<uint64_t> total_size;             // metadata.total_size: sum of tensor bytes
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name

  // Validates structure and shard names; errors name `source` and the field or tensor.
  static SafetensorsIndex parse(const std::string& text, const std::string& source = "<memory>");
  std::string to_json() const;
  std::vector<std::string> files() const;  // distinct shard names, sorted
};

// The tensors of a model folder, sharded or not, behind one interface.
class SafetensorsShards {
 public:
  // `folder`/model.safetensors when present (Hugging Face's precedence), else
  // `folder`/model.safetensors.index.json and its shards. IoError naming the folder when neither exists.
  static SafetensorsShards open_folder(const std::string& folder);
  // An index file; its shards are opened from the index's folder.
  static SafetensorsShards open_index(const std::string& index_path);
  // One plain safetensors file.
  static SafetensorsShards open_file(const std::string& path);
  // Cross-checks `index` against opened shards (shard name -> file): every mapped file is given,
  // every mapped tensor is in its shard, every shard tensor is mapped to that shard (so none is in
  // two shards), and total_size, when given, equals the sum of tensor bytes. `source` names the index.
  static SafetensorsShards assemble(const std::string& source, const SafetensorsIndex& index,
                                    const std::map<std::string, SafetensorsFile>& shards);

  const std::vector<std::string>& names() const { return names_; }  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  Tensor get(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  size_t total_bytes() const { return total_bytes_; }
  const std::string& source() const { return source_; }  // the index or the single file

 private:
  std::string source_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor -> index into files_
  std::vector<std::string> names_;
  size_t total_bytes_ = 0;
};

// Writes `tensors` into `folder` as Hugging Face shards of at most `max_shard_bytes` of tensor data
// each (a larger tensor gets a shard of its own), in order: model-00001-of-0000N.safetensors ... then
// model.safetensors.index.json last, each atomically. One shard is written as model.safetensors with
// no index. Files of an earlier save that the new one does not use (a stale index, single file or
// shard) are removed after the new files are in place. Returns the written file names.
std::vector<std::string> save_safetensors_shards(const std::string& folder,
                                                 const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                 uint64_t max_shard_bytes,
                                                 const std::map<std::string, std::string>& metadata = {});

}  // namespace lmlab
