// GGUF reader (mmap, full validation) and writer, following llama.cpp's ggml/docs/gguf.md and
// the bounds llama.cpp's gguf.cpp enforces (n_dims <= 4, known types, aligned offsets).
#include "lmlab/io/gguf.h"

#include "lmlab/core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "lmlab/io/safetensors.h"

namespace lmlab {

namespace {

constexpr uint64_t kMaxTensors = 1000000, kMaxKv = 1000000;
constexpr uint64_t kMaxString = 1ull << 30;  // 1 GiB
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxArray = 1ull << 24;  // elements per array (vocabularies are ~10^5..10^6)

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    default: return 0;
  }
}

// Smallest on-disk size of one value of `t` (bounds array counts by the remaining bytes).
size_t min_size(GgufType t) {
  if (t == GgufType::STRING) return 8;
  if (t == GgufType::ARRAY) return 12;
  return scalar_size(t);
}

// Bounds-checked little-endian cursor; every error names the file, the context and the offset.
struct Cursor {
  const char* p;
  size_t size;
  size_t pos = 0;
  const std::string& file;
  std::string ctx;  // "header", "key 'x'", "tensor info #3 'w'"

  [[noreturn]] void fail(const std::string& what, size_t at) const {
    throw FormatError(str_cat("[gguf] '", file, "': ", ctx, " at offset ", at, ": ", what));
  }
  size_t remaining() const { return size - pos; }
  void need(size_t n, const char* what) const {
    if (n > remaining())
      fail(str_cat("expected ", n, " bytes of ", what, " but only ", remaining(), " remain (truncated?)"), pos);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    size_t at = pos;
    uint64_t n = read<uint64_t>(what);
    if (n > kMaxString) fail(str_cat(what, " length ", n, " exceeds the limit of ", kMaxString), at);
    need(size_t(n), what);
    std::string s(p + pos, size_t(n));
    pos += size_t(n);
    return s;
  }
};

GgufValue read_value(Cursor& c, GgufType t, int depth);

GgufType read_type(Cursor& c, const char* what) {
  size_t at = c.pos;
  uint32_t t = c.read<uint32_t>(what);
  if (t > uint32_t(GgufType::F64)) c.fail(str_cat("unknown ", what, " ", t, " (expected 0..12)"), at);
  return GgufType(t);
}

GgufValue read_value(Cursor& c, GgufType t, int depth) {
  switch (t) {
    case GgufType::U8: return c.read<uint8_t>("u8 value");
    case GgufType::I8: return c.read<int8_t>("i8 value");
    case GgufType::U16: return c.read<uint16_t>("u16 value");
    case GgufType::I16: return c.read<int16_t>("i16 value");
    case GgufType::U32: return c.read<uint32_t>("u32 value");
    case GgufType::I32: return c.read<int32_t>("i32 value");
    case GgufType::F32: return c.read<float>("f32 value");
    case GgufType::U64: return c.read<uint64_t>("u64 value");
    case GgufType::I64: return c.read<int64_t>("i64 value");
    case GgufType::F64: return c.read<double>("f64 value");
    case GgufType::BOOL: {
      size_t at = c.pos;
      uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail(str_cat("bool value ", int(b), " (expected 0 or 1)"), at);
      return b != 0;
    }
    case GgufType::STRING: return c.read_string("string value");
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) c.fail(str_cat("arrays nested deeper than ", kMaxArrayDepth), c.pos);
      GgufArray a;
      a.elem = read_type(c, "array element type");
      size_t at = c.pos;
      uint64_t n = c.read<uint64_t>("array length");
      if (n > kMaxArray) c.fail(str_cat("array of ", n, " values exceeds the limit of ", kMaxArray), at);
      if (n > c.remaining() / min_size(a.elem))
        c.fail(str_cat("array of ", n, " ", gguf_type_name(a.elem), " values needs at least ", min_size(a.elem),
                       " bytes each but only ", c.remaining(), " bytes remain"),
               at);
      a.items.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(c, a.elem, depth + 1));
      return GgufValue(std::move(a));
    }
  }
  c.fail("unknown value type", c.pos);
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void put_bytes(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
template <class T>
void put(std::string& out, T v) {
  put_bytes(out, &v, sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_value(std::string& out, const GgufValue& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          put_string(out, x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          put<uint32_t>(out, uint32_t(x.elem));
          put<uint64_t>(out, x.items.size());
          for (const auto& it : x.items) put_value(out, it);
        } else if constexpr (std::is_same_v<T, bool>) {
          put<uint8_t>(out, x ? 1 : 0);
        } else {
          put<T>(out, x);
        }
      },
      v.v);
}

void check_array_types(const GgufValue& v, const std::string& key) {
  if (v.type() != GgufType::ARRAY) return;
  const GgufArray& a = std::get<GgufArray>(v.v);
  LMLAB_CHECK(uint32_t(a.elem) <= uint32_t(GgufType::F64), ValueError, "[gguf] key '", key,
              "': unknown array element type ", uint32_t(a.elem));
  for (const auto& it : a.items) {
    LMLAB_CHECK(it.type() == a.elem, ValueError, "[gguf] key '", key, "': array of ", gguf_type_name(a.elem),
                " holds a ", gguf_type_name(it.type()));
    check_array_types(it, key);
  }
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "unknown";
}

GgufValue GgufValue::array(GgufType elem, std::vector<GgufValue> items) {
  GgufArray a;
  a.elem = elem;
  a.items = std::move(items);
  GgufValue v(std::move(a));
  check_array_types(v, "<array>");
  return v;
}

bool GgufArray::operator==(const GgufArray& o) const { return elem == o.elem && items == o.items; }

bool GgufValue::operator==(const GgufValue& o) const { return v == o.v; }

GgufFile GgufFile::open(const std::string& path) {
  MappedFile m = map_file(path, "gguf");
  GgufFile f;
  f.path_ = path;
  f.map_ = m.owner;
  f.parse(m.data, m.size);
  return f;
}

GgufFile GgufFile::from_bytes(const std::string& bytes, const std::string& name) {
  MappedFile m = map_bytes(bytes);
  GgufFile f;
  f.path_ = name;
  f.map_ = m.owner;
  f.parse(m.data, m.size);
  return f;
}

void GgufFile::parse(const char* data, size_t size) {
  Cursor c{data, size, 0, path_, "header"};
  c.need(4, "magic");
  if (std::memcmp(data, "GGUF", 4) != 0) c.fail("bad magic (expected \"GGUF\")", 0);
  c.pos = 4;
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) c.fail(str_cat("unsupported version ", version_, " (expected 2 or 3)"), 4);
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  if (n_tensors > kMaxTensors) c.fail(str_cat("tensor count ", n_tensors, " exceeds the limit of ", kMaxTensors), 8);
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > kMaxKv) c.fail(str_cat("metadata count ", n_kv, " exceeds the limit of ", kMaxKv), 16);

  for (uint64_t i = 0; i < n_kv; ++i) {
    c.ctx = str_cat("metadata entry #", i);
    size_t at = c.pos;
    std::string key = c.read_string("key");
    c.ctx = str_cat("key '", key, "'");
    if (metadata_.count(key)) c.fail("duplicate key", at);
    GgufType t = read_type(c, "value type");
    metadata_[key] = read_value(c, t, 0);
  }
  auto al = metadata_.find("general.alignment");
  if (al != metadata_.end()) {
    c.ctx = "key 'general.alignment'";
    if (al->second.type() != GgufType::U32)
      c.fail(str_cat("expected a u32, got ", gguf_type_name(al->second.type())), c.pos);
    uint32_t a = std::get<uint32_t>(al->second.v);
    if (a == 0 || (a & (a - 1)) != 0) c.fail(str_cat("alignment ", a, " is not a power of two"), c.pos);
    alignment_ = a;
  }

  struct Raw {
    uint64_t offset;
    size_t info_at;
  };
  std::vector<Raw> raws;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.ctx = str_cat("tensor info #", i);
    size_t at = c.pos;
    GgufTensorInfo ti;
    ti.name = c.read_string("tensor name");
    c.ctx = str_cat("tensor '", ti.name, "'");
    if (index_.count(ti.name)) c.fail("duplicate tensor name", at);
    size_t dims_at = c.pos;
    uint32_t nd = c.read<uint32_t>("n_dims");
    if (nd > kMaxDims) c.fail(str_cat("n_dims ", nd, " (expected at most ", kMaxDims, ")"), dims_at);
    std::vector<uint64_t> ne(nd);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      size_t dat = c.pos;
      ne[d] = c.read<uint64_t>("dimension");
      if (ne[d] == 0 || ne[d] > uint64_t(std::numeric_limits<int64_t>::max()) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()) / ne[d])
        c.fail(str_cat("dimension ", d, " = ", ne[d], " is zero or makes the element count overflow"), dat);
      numel *= ne[d];
    }
    size_t type_at = c.pos;
    uint32_t ty = c.read<uint32_t>("ggml type");
    if (!ggml_type_known(ty))
      c.fail(str_cat("unsupported ggml type ", ty,
                     " (supported: f32=0 f16=1 q4_0=2 q8_0=8 q4_K=12 q6_K=14 bf16=30)"),
             type_at);
    ti.type = GgmlType(ty);
    int64_t bs = ggml_block_size(ti.type);
    uint64_t ne0 = nd ? ne[0] : 1;
    if (ne0 % uint64_t(bs) != 0)
      c.fail(str_cat("innermost dimension ", ne0, " is not a multiple of the ", ggml_type_name(ti.type),
                     " block size ", bs),
             dims_at);
    uint64_t blocks = numel / uint64_t(bs);
    if (blocks > std::numeric_limits<uint64_t>::max() / ggml_type_size(ti.type))
      c.fail("byte size overflows", type_at);
    ti.nbytes = size_t(blocks * ggml_type_size(ti.type));
    size_t off_at = c.pos;
    ti.offset = c.read<uint64_t>("data offset");
    if (ti.offset % alignment_ != 0)
      c.fail(str_cat("data offset ", ti.offset, " is not a multiple of the alignment ", alignment_), off_at);
    for (uint32_t d = 0; d < nd; ++d) ti.shape.push_back(int64_t(ne[nd - 1 - d]));
    raws.push_back({ti.offset, off_at});
    index_[ti.name] = infos_.size();
    infos_.push_back(std::move(ti));
  }

  c.ctx = "data section";
  uint64_t data_start = align_up(c.pos, alignment_);
  if (data_start > size)
    c.fail(str_cat("data section starts at ", data_start, " (aligned to ", alignment_, ") past the end of the ",
                   size, "-byte file (truncated?)"),
           c.pos);
  data_ = data + data_start;
  uint64_t data_size = size - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 0; i < infos_.size(); ++i) {
    const auto& ti = infos_[i];
    c.ctx = str_cat("tensor '", ti.name, "'");
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      c.fail(str_cat("data [", ti.offset, ", ", ti.offset + ti.nbytes, ") runs past the end of the ", data_size,
                     "-byte data section (truncated?)"),
             raws[i].info_at);
    ranges.emplace_back(ti.offset, ti.offset + ti.nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    LMLAB_CHECK(ranges[i].first >= ranges[i - 1].second, FormatError, "[gguf] '", path_,
                "': tensor data ranges overlap at data offset ", ranges[i].first);
}

const GgufValue& GgufFile::get(const std::string& key) const {
  auto it = metadata_.find(key);
  LMLAB_CHECK(it != metadata_.end(), FormatError, "[gguf] '", path_, "': missing metadata key '", key, "'");
  return it->second;
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  LMLAB_CHECK(v.type() == GgufType::STRING, FormatError, "[gguf] '", path_, "': key '", key,
              "' expected a string, got ", gguf_type_name(v.type()));
  return std::get<std::string>(v.v);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  switch (v.type()) {
    case GgufType::U8: return std::get<uint8_t>(v.v);
    case GgufType::I8: return std::get<int8_t>(v.v);
    case GgufType::U16: return std::get<uint16_t>(v.v);
    case GgufType::I16: return std::get<int16_t>(v.v);
    case GgufType::U32: return std::get<uint32_t>(v.v);
    case GgufType::I32: return std::get<int32_t>(v.v);
    case GgufType::I64: return std::get<int64_t>(v.v);
    case GgufType::U64: {
      uint64_t u = std::get<uint64_t>(v.v);
      LMLAB_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), FormatError, "[gguf] '", path_, "': key '",
                  key, "' value ", u, " does not fit in an int64");
      return int64_t(u);
    }
    default: break;
  }
  throw FormatError(str_cat("[gguf] '", path_, "': key '", key, "' expected an integer, got ",
                            gguf_type_name(v.type())));
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  if (v.type() == GgufType::F32) return std::get<float>(v.v);
  if (v.type() == GgufType::F64) return std::get<double>(v.v);
  throw FormatError(str_cat("[gguf] '", path_, "': key '", key, "' expected a float, got ",
                            gguf_type_name(v.type())));
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  LMLAB_CHECK(v.type() == GgufType::BOOL, FormatError, "[gguf] '", path_, "': key '", key, "' expected a bool, got ",
              gguf_type_name(v.type()));
  return std::get<bool>(v.v);
}

const GgufArray& GgufFile::get_array(const std::string& key) const {
  const GgufValue& v = get(key);
  LMLAB_CHECK(v.type() == GgufType::ARRAY, FormatError, "[gguf] '", path_, "': key '", key,
              "' expected an array, got ", gguf_type_name(v.type()));
  return std::get<GgufArray>(v.v);
}

const GgufTensorInfo& GgufFile::info(const std::string& name) const {
  auto it = index_.find(name);
  LMLAB_CHECK(it != index_.end(), FormatError, "[gguf] '", path_, "': no tensor named '", name, "'");
  return infos_[it->second];
}

std::span<const uint8_t> GgufFile::raw(const std::string& name) const {
  const GgufTensorInfo& ti = info(name);
  return {reinterpret_cast<const uint8_t*>(data_ + ti.offset), ti.nbytes};
}

std::shared_ptr<const uint8_t> GgufFile::raw_shared(const std::string& name) const {
  return std::shared_ptr<const uint8_t>(map_, raw(name).data());
}

Tensor GgufFile::get_tensor(const std::string& name, DType want) const {
  const GgufTensorInfo& ti = info(name);
  LMLAB_CHECK(want == DType::F32 || want == DType::F16 || want == DType::BF16, FormatError, "[gguf] '", path_,
              "': tensor '", name, "' requested as ", dtype_name(want), " (expected f32, f16 or bf16)");
  const char* p = data_ + ti.offset;
  std::optional<DType> stored;
  if (ti.type == GgmlType::F32) stored = DType::F32;
  if (ti.type == GgmlType::F16) stored = DType::F16;
  if (ti.type == GgmlType::BF16) stored = DType::BF16;
  if (stored && *stored == want) {
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(want) == 0) {
      auto st = std::make_shared<Storage>(const_cast<char*>(p), ti.nbytes, map_);
      return Tensor::from_storage(st, ti.shape, contiguous_strides(ti.shape), 0, want);
    }
    Tensor t = Tensor::empty(ti.shape, want);
    if (ti.nbytes) std::memcpy(t.raw_data(), p, ti.nbytes);
    return t;
  }
  Tensor t = Tensor::empty(ti.shape, DType::F32);
  ggml_dequantize(ti.type, p, static_cast<float*>(t.raw_data()), t.numel());
  if (want == DType::F32) return t;
  Tensor c = Tensor::empty(ti.shape, want);  // core's copy_into converts; io links core only
  copy_into(c, t);
  return c;
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  check_array_types(value, key);
  if (key == "general.alignment") {
    LMLAB_CHECK(value.type() == GgufType::U32, ValueError, "[gguf] general.alignment must be a u32, got ",
                gguf_type_name(value.type()));
    uint32_t a = std::get<uint32_t>(value.v);
    LMLAB_CHECK(a != 0 && (a & (a - 1)) == 0, ValueError, "[gguf] general.alignment ", a,
                " is not a power of two");
  }
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

namespace {
// Shape and type checks shared by every way of adding a tensor; returns the encoded size.
size_t check_item(const std::string& name, const Shape& shape, GgmlType type) {
  LMLAB_CHECK(ggml_type_known(uint32_t(type)), ValueError, "[gguf] tensor '", name, "': unknown ggml type ",
              uint32_t(type));
  LMLAB_CHECK(shape.size() <= kMaxDims, ValueError, "[gguf] tensor '", name, "': ", shape.size(),
              " dims (at most 4)");
  for (int64_t d : shape)
    LMLAB_CHECK(d > 0, ValueError, "[gguf] tensor '", name, "': shape ", shape_str(shape), " has a non-positive dim");
  int64_t inner = shape.empty() ? 1 : shape.back();
  LMLAB_CHECK(inner % ggml_block_size(type) == 0, ValueError, "[gguf] tensor '", name, "': innermost dim ", inner,
              " is not a multiple of the ", ggml_type_name(type), " block size ", ggml_block_size(type));
  return ggml_row_size(type, numel_of(shape));
}
}  // namespace

void GgufWriter::add_quantized(const std::string& name, const Shape& shape, GgmlType type, std::string bytes) {
  size_t need = check_item(name, shape, type);
  for (const auto& it : tensors_)
    LMLAB_CHECK(it.name != name, ValueError, "[gguf] duplicate tensor name '", name, "'");
  LMLAB_CHECK(bytes.size() == need, ValueError, "[gguf] tensor '", name, "': ", bytes.size(), " bytes but ",
              shape_str(shape), " x ", ggml_type_name(type), " needs ", need);
  tensors_.push_back({name, shape, type, std::move(bytes), nullptr, need});
}

void GgufWriter::add_lazy(const std::string& name, const Shape& shape, GgmlType type,
                          std::function<std::string()> produce) {
  size_t need = check_item(name, shape, type);
  for (const auto& it : tensors_)
    LMLAB_CHECK(it.name != name, ValueError, "[gguf] duplicate tensor name '", name, "'");
  LMLAB_CHECK(produce != nullptr, ValueError, "[gguf] tensor '", name, "': no producer");
  tensors_.push_back({name, shape, type, std::string(), std::move(produce), need});
}

namespace {
// The ggml type a tensor is stored in as is.
GgmlType native_type(const std::string& name, const Tensor& t) {
  LMLAB_CHECK(t.defined(), ValueError, "[gguf] tensor '", name, "' is undefined");
  switch (t.dtype()) {
    case DType::F32: return GgmlType::F32;
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    default:
      throw ValueError(str_cat("[gguf] tensor '", name, "' has dtype ", dtype_name(t.dtype()),
                               " (expected f32, f16 or bf16)"));
  }
}
}  // namespace

std::string GgufWriter::encode(const std::string& name, const Tensor& t, std::optional<GgmlType> as) {
  const GgmlType native = native_type(name, t);
  const GgmlType type = as.value_or(native);
  if (type == native) {
    Tensor c = t;
    if (!t.is_contiguous()) {
      c = Tensor::empty(t.shape(), t.dtype());
      copy_into(c, t);
    }
    return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  check_item(name, t.shape(), type);
  Tensor f = t;
  if (t.dtype() != DType::F32 || !t.is_contiguous()) {
    f = Tensor::empty(t.shape(), DType::F32);
    copy_into(f, t);
  }
  std::string bytes(ggml_row_size(type, f.numel()), '\0');
  ggml_quantize(type, static_cast<const float*>(f.raw_data()), bytes.data(), f.numel());
  return bytes;
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t, std::optional<GgmlType> as) {
  std::string bytes = encode(name, t, as);
  add_quantized(name, t.shape(), as.value_or(native_type(name, t)), std::move(bytes));
}

uint64_t GgufWriter::alignment() const {
  for (const auto& kv : kv_)
    if (kv.first == "general.alignment") return std::get<uint32_t>(kv.second.v);
  return 32;
}

// Everything before the data section, padded to the alignment.
std::string GgufWriter::header(uint64_t alignment) const {
  std::string out = "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_string(out, k);
    put<uint32_t>(out, uint32_t(v.type()));
    put_value(out, v);
  }
  uint64_t off = 0;
  for (const auto& it : tensors_) {
    put_string(out, it.name);
    put<uint32_t>(out, uint32_t(it.shape.size()));
    for (auto d = it.shape.rbegin(); d != it.shape.rend(); ++d) put<uint64_t>(out, uint64_t(*d));
    put<uint32_t>(out, uint32_t(it.type));
    put<uint64_t>(out, off);
    off = align_up(off + it.nbytes, alignment);
  }
  out.resize(size_t(align_up(out.size(), alignment)), '\0');
  return out;
}

std::string GgufWriter::data_of(const Item& it) const {
  if (!it.produce) return it.data;
  std::string d = it.produce();
  LMLAB_CHECK(d.size() == it.nbytes, ValueError, "[gguf] tensor '", it.name, "': produced ", d.size(),
              " bytes but ", shape_str(it.shape), " x ", ggml_type_name(it.type), " needs ", it.nbytes);
  return d;
}

std::string GgufWriter::bytes() const {
  const uint64_t a = alignment();
  std::string out = header(a);
  for (const auto& it : tensors_) {
    out += data_of(it);
    out.resize(size_t(align_up(out.size(), a)), '\0');
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t a = alignment();
  AtomicFile f(path, "gguf");
  f.write(header(a));
  const std::string pad(size_t(a), '\0');
  for (const auto& it : tensors_) {
    if (it.produce) {
      f.write(data_of(it));  // one produced tensor alive at a time
    } else {
      f.write(it.data);
    }
    f.write(pad.data(), size_t(align_up(f.written(), a) - f.written()));
  }
  f.commit();
}

}  // namespace lmlab
