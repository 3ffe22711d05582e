// safetensors reader (mmap, full validation) and atomic writer.
#include "lmlab/io/safetensors.h"

#include "lmlab/core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace lmlab {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MB, the reference implementation's bound

const char* st_dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

bool st_dtype_from(const std::string& s, DType& out) {
  static const std::map<std::string, DType> m = {{"F32", DType::F32}, {"F64", DType::F64}, {"BF16", DType::BF16},
                                                 {"F16", DType::F16}, {"I32", DType::I32}, {"I64", DType::I64},
                                                 {"U8", DType::U8},   {"BOOL", DType::U8}};
  auto it = m.find(s);
  if (it == m.end()) return false;
  out = it->second;
  return true;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  MappedFile m = map_file(path, "safetensors");
  SafetensorsFile f;
  f.path_ = path;
  f.map_ = m.owner;
  f.parse(m.data, m.size);
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(const std::string& bytes, const std::string& name) {
  MappedFile m = map_bytes(bytes);
  SafetensorsFile f;
  f.path_ = name;
  f.map_ = m.owner;
  f.parse(m.data, m.size);
  return f;
}

void SafetensorsFile::parse(const char* data, size_t size) {
  const std::string& P = path_;
  LMLAB_CHECK(size >= 8, FormatError, "[safetensors] '", P, "': file of ", size,
              " bytes is too short for the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, data, 8);  // little-endian hosts only (x86_64, aarch64)
  LMLAB_CHECK(n <= kMaxHeader, FormatError, "[safetensors] '", P, "': header length ", n, " exceeds the limit of ",
              kMaxHeader, " bytes");
  LMLAB_CHECK(n <= size - 8, FormatError, "[safetensors] '", P, "': header length ", n, " runs past the end of the ",
              size, "-byte file (truncated?)");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[safetensors] '", P, "': header is not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(h.is_object(), FormatError, "[safetensors] '", P, "': header must be a JSON object");
  size_t data_size = size - 8 - size_t(n);
  base_ = data + 8 + n;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "__metadata__") {
      LMLAB_CHECK(v.is_object(), FormatError, "[safetensors] '", P, "': __metadata__ must be an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        LMLAB_CHECK(m.value().is_string(), FormatError, "[safetensors] '", P, "': metadata value for '", m.key(),
                    "' must be a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    LMLAB_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), FormatError,
                "[safetensors] '", P, "': tensor '", key, "' needs dtype, shape and data_offsets");
    LMLAB_CHECK(v["dtype"].is_string(), FormatError, "[safetensors] '", P, "': tensor '", key, "' dtype not a string");
    Entry e;
    std::string ds = v["dtype"].get<std::string>();
    LMLAB_CHECK(st_dtype_from(ds, e.dtype), FormatError, "[safetensors] '", P, "': tensor '", key,
                "' has unsupported dtype '", ds, "' (supported: F32 F64 BF16 F16 I32 I64 U8 BOOL)");
    LMLAB_CHECK(v["shape"].is_array(), FormatError, "[safetensors] '", P, "': tensor '", key, "' shape not an array");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      LMLAB_CHECK(d.is_number_unsigned(), FormatError, "[safetensors] '", P, "': tensor '", key,
                  "' shape entries must be non-negative integers");
      uint64_t dv = d.get<uint64_t>();
      LMLAB_CHECK(dv <= (uint64_t(1) << 48) && (dv == 0 || numel <= (uint64_t(1) << 62) / dv), FormatError,
                  "[safetensors] '", P, "': tensor '", key, "' shape overflows");
      numel *= dv;
      e.shape.push_back(int64_t(dv));
    }
    const auto& off = v["data_offsets"];
    LMLAB_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                FormatError, "[safetensors] '", P, "': tensor '", key, "' data_offsets must be [begin, end]");
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    LMLAB_CHECK(b <= en && en <= data_size, FormatError, "[safetensors] '", P, "': tensor '", key, "' data_offsets [",
                b, ", ", en, "] outside the ", data_size, "-byte data section");
    LMLAB_CHECK(en - b == numel * dtype_size(e.dtype), FormatError, "[safetensors] '", P, "': tensor '", key, "' has ",
                en - b, " bytes but shape ", shape_str(e.shape), " x ", ds, " needs ", numel * dtype_size(e.dtype));
    e.begin = size_t(b);
    e.end = size_t(en);
    ranges.emplace_back(e.begin, e.end);
    entries_[key] = e;
    names_.push_back(key);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    LMLAB_CHECK(ranges[i].first >= ranges[i - 1].second, FormatError, "[safetensors] '", P,
                "': tensor data ranges overlap at byte ", ranges[i].first);
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  LMLAB_CHECK(it != entries_.end(), FormatError, "[safetensors] '", path_, "': no tensor named '", name, "'");
  const Entry& e = it->second;
  const char* p = base_ + e.begin;
  size_t es = dtype_size(e.dtype);
  if (reinterpret_cast<uintptr_t>(p) % es == 0) {
    auto st = std::make_shared<Storage>(const_cast<char*>(p), e.end - e.begin, map_);
    return Tensor::from_storage(st, e.shape, contiguous_strides(e.shape), 0, e.dtype);
  }
  Tensor t = Tensor::empty(e.shape, e.dtype);
  if (e.end > e.begin) std::memcpy(t.raw_data(), p, e.end - e.begin);
  return t;
}

std::string safetensors_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  size_t off = 0;
  std::vector<Tensor> conts;
  for (const auto& [name, t] : tensors) {
    LMLAB_CHECK(t.defined(), ValueError, "[safetensors] tensor '", name, "' is undefined");
    LMLAB_CHECK(name != "__metadata__" && !h.contains(name), ValueError, "[safetensors] duplicate or reserved name '",
                name, "'");
    Tensor c = t.is_contiguous() ? t : t.detach().contiguous();
    size_t nb = c.nbytes();
    h[name] = {{"dtype", st_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {off, off + nb}}};
    off += nb;
    conts.push_back(c);
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');
  std::string out;
  out.reserve(8 + hs.size() + off);
  uint64_t n = hs.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += hs;
  for (const auto& c : conts) out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, safetensors_bytes(tensors, metadata));
}

std::map<std::string, Tensor> load_safetensors(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, Tensor> out;
  for (const auto& n : f.names()) {
    Tensor v = f.get(n);
    Tensor c = Tensor::empty(v.shape(), v.dtype());
    copy_into(c, v);
    out[n] = c;
  }
  return out;
}

}  // namespace lmlab
