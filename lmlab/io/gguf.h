// GGUF (llama.cpp ggml/docs/gguf.md, versions 2 and 3): header, typed metadata key/values, tensor
// infos (dims innermost first), then an aligned data section. The reader memory-maps the file and
// validates every length, count and offset (STYLE 2.6), errors naming the file, key or tensor and
// byte offset; the writer writes version 3 atomically via write_file_atomic.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "lmlab/core/tensor.h"
#include "lmlab/core/quant.h"

namespace lmlab {

// GGUF metadata value types (the numbers are the on-disk type tags).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12
};
const char* gguf_type_name(GgufType t);

struct GgufValue;
// An array: its element type and elements (each of that type; nested arrays allowed).
struct GgufArray {
  GgufType elem = GgufType::U8;
  std::vector<GgufValue> items;
  bool operator==(const GgufArray& o) const;
};

// A metadata value; the variant index equals the GgufType tag.
struct GgufValue {
  using Variant = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               GgufArray, uint64_t, int64_t, double>;
  Variant v;

  GgufValue() = default;
  template <class T>
    requires std::is_constructible_v<Variant, T> && (!std::is_same_v<std::decay_t<T>, const char*>)
  GgufValue(T x) : v(std::move(x)) {}  // NOLINT: implicit by design
  GgufValue(const char* s) : v(std::string(s)) {}  // NOLINT
  GgufType type() const { return GgufType(v.index()); }
  // Builds an array of `elem` from values of matching type (throws ValueError otherwise).
  static GgufValue array(GgufType elem, std::vector<GgufValue> items);
  bool operator==(const GgufValue& o) const;
};

struct GgufTensorInfo {
  std::string name;
  Shape shape;          // lmlab order: outermost first (the reverse of GGUF's dims)
  GgmlType type;
  size_t nbytes;        // bytes of data
  uint64_t offset;      // relative to the start of the data section
};

class GgufFile {
 public:
  // Opens and validates `path`. Throws IoError (cannot read) or FormatError (invalid content).
  static GgufFile open(const std::string& path);
  // Parses an in-memory buffer (copied); for tests and fuzzing.
  static GgufFile from_bytes(const std::string& bytes, const std::string& name = "<memory>");

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed getters; throw FormatError naming the key when it is missing or of another type.
  // get_int accepts any integer type (and rejects u64 values above INT64_MAX); get_float accepts
  // f32 and f64.
  const GgufValue& get(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const GgufArray& get_array(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return infos_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const GgufTensorInfo& info(const std::string& name) const;
  // The tensor as `want` (F32, F16 or BF16): stored data of that type is returned as is (a
  // zero-copy view when aligned); anything else is dequantized to f32 and converted.
  Tensor get_tensor(const std::string& name, DType want = DType::F32) const;
  // The stored bytes of a tensor (any type, quantized blocks included).
  std::span<const uint8_t> raw(const std::string& name) const;
  // The same bytes as a pointer that keeps the file mapping alive (zero-copy weights).
  std::shared_ptr<const uint8_t> raw_shared(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  void parse(const char* data, size_t size);
  std::string path_;
  std::shared_ptr<void> map_;
  const char* data_ = nullptr;  // start of the data section
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

class GgufWriter {
 public:
  // Sets metadata `key` (any GgufValue; "general.alignment" must be a u32 power of two).
  void set(const std::string& key, GgufValue value);
  // Adds a tensor (F32/F16/BF16 stored as is; written contiguous), or converted/quantized to `as`
  // (its innermost dim must then be a multiple of the block size).
  void add_tensor(const std::string& name, const Tensor& t, std::optional<GgmlType> as = std::nullopt);
  // Adds already-encoded data of `type` for `shape` (lmlab order); bytes.size() must match.
  void add_quantized(const std::string& name, const Shape& shape, GgmlType type, std::string bytes);
  // Adds a tensor whose encoded data `produce` returns only when the file is written, one tensor at
  // a time, so converting or quantizing a model never holds more than one output tensor in memory.
  // The result's size is checked then (ValueError naming the tensor; nothing is written).
  void add_lazy(const std::string& name, const Shape& shape, GgmlType type, std::function<std::string()> produce);
  // encode(t, as): the bytes add_tensor(name, t, as) stores (for lazy producers).
  static std::string encode(const std::string& name, const Tensor& t, std::optional<GgmlType> as = std::nullopt);
  // The file image in memory, and writing it atomically (streamed: header, then each tensor).
  std::string bytes() const;
  void write(const std::string& path) const;

 private:
  struct Item {
    std::string name;
    Shape shape;
    GgmlType type;
    std::string data;
    std::function<std::string()> produce;  // set for lazy items (data stays empty)
    size_t nbytes = 0;
  };
  std::string header(uint64_t alignment) const;
  uint64_t alignment() const;
  std::string data_of(const Item& it) const;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Item> tensors_;
};

}  // namespace lmlab
