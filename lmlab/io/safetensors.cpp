// safetensors reader (mmap, full validation) and atomic writer.
#include "lmlab/io/safetensors.h"

#include "lmlab/core/file.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>
#include <tuple>

namespace lmlab {

namespace fs = std::filesystem;

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

// Parses JSON rejecting duplicate object keys: nlohmann keeps the last of two equal keys silently,
// and a header that two readers understand differently is a malformed file, not a choice.
nlohmann::json parse_json_strict(const char* first, const char* last, const std::string& what) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto cb = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) {
      keys.emplace_back();
    } else if (ev == E::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == E::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      LMLAB_CHECK(keys.back().insert(k).second, FormatError, what, " has the key '", k, "' twice");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(first, last, cb);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(what, " is not valid JSON: ", e.what()));
  }
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
  nlohmann::json h = parse_json_strict(data + 8, data + 8 + n, str_cat("[safetensors] '", P, "': header"));
  LMLAB_CHECK(h.is_object(), FormatError, "[safetensors] '", P, "': header must be a JSON object");
  size_t data_size = size - 8 - size_t(n);
  base_ = data + 8 + n;
  std::vector<std::tuple<size_t, size_t, const std::string*>> ranges;  // for the layout check
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "__metadata__") {
      LMLAB_CHECK(v.is_object(), FormatError, "[safetensors] '", P, "': __metadata__ must be an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        LMLAB_CHECK(m.value().is_string(), FormatError, "[safetensors] '", P, "': __metadata__ value for '", m.key(),
                    "' must be a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    LMLAB_CHECK(v.is_object(), FormatError, "[safetensors] '", P, "': tensor '", key, "' must be a JSON object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      LMLAB_CHECK(v.contains(field), FormatError, "[safetensors] '", P, "': tensor '", key, "' has no ", field);
    LMLAB_CHECK(v["dtype"].is_string(), FormatError, "[safetensors] '", P, "': tensor '", key,
                "' dtype must be a string");
    SafetensorsTensorInfo e;
    std::string ds = v["dtype"].get<std::string>();
    LMLAB_CHECK(st_dtype_from(ds, e.dtype), FormatError, "[safetensors] '", P, "': tensor '", key,
                "' has unsupported dtype '", ds, "' (supported: F32 F64 BF16 F16 I32 I64 U8 BOOL)");
    LMLAB_CHECK(v["shape"].is_array(), FormatError, "[safetensors] '", P, "': tensor '", key,
                "' shape must be an array");
    const uint64_t es = dtype_size(e.dtype);
    bool zero = false;
    for (const auto& d : v["shape"]) {
      LMLAB_CHECK(d.is_number_unsigned(), FormatError, "[safetensors] '", P, "': tensor '", key,
                  "' shape entries must be non-negative integers, got ", d.dump());
      uint64_t dv = d.get<uint64_t>();
      LMLAB_CHECK(dv <= uint64_t(INT64_MAX), FormatError, "[safetensors] '", P, "': tensor '", key, "' shape entry ",
                  dv, " overflows");
      e.shape.push_back(int64_t(dv));
      zero = zero || dv == 0;
    }
    // The bytes are bounded by the data section, so a larger element count is an error whatever the
    // offsets say; bounding each step keeps the product from wrapping (2^61 f64 elements = 0 bytes).
    uint64_t numel = zero ? 0 : 1;
    for (int64_t dv : e.shape) {
      if (zero) break;
      LMLAB_CHECK(numel <= data_size / es / uint64_t(dv), FormatError, "[safetensors] '", P, "': tensor '", key,
                  "' shape ", shape_str(e.shape), " x ", ds, " needs more bytes than the ", data_size,
                  "-byte data section");
      numel *= uint64_t(dv);
    }
    const auto& off = v["data_offsets"];
    LMLAB_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                FormatError, "[safetensors] '", P, "': tensor '", key,
                "' data_offsets must be [begin, end] of non-negative integers, got ", off.dump());
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    LMLAB_CHECK(b <= en, FormatError, "[safetensors] '", P, "': tensor '", key, "' data_offsets [", b, ", ", en,
                "] end before begin");
    LMLAB_CHECK(en <= data_size, FormatError, "[safetensors] '", P, "': tensor '", key, "' data_offsets [", b, ", ",
                en, "] outside the ", data_size, "-byte data section");
    LMLAB_CHECK(en - b == numel * es, FormatError, "[safetensors] '", P, "': tensor '", key, "' data_offsets hold ",
                en - b, " bytes but shape ", shape_str(e.shape), " x ", ds, " needs ", numel * es);
    e.begin = size_t(b);
    e.end = size_t(en);
    auto [pos, fresh] = entries_.emplace(key, e);
    (void)fresh;  // keys are unique: parse_json_strict rejects duplicates
    ranges.emplace_back(e.begin, e.end, &pos->first);
    names_.push_back(key);
  }
  // The reference implementation requires the tensors to tile the data section exactly: no
  // overlaps (two tensors aliasing bytes) and no holes (bytes no tensor accounts for).
  std::sort(ranges.begin(), ranges.end());
  size_t covered = 0;
  const std::string* prev = nullptr;
  for (const auto& [begin, end, name] : ranges) {
    LMLAB_CHECK(begin >= covered, FormatError, "[safetensors] '", P, "': tensor '", *name, "' data_offsets [", begin,
                ", ", end, "] overlap tensor '", prev ? *prev : std::string(), "' (which ends at ", covered, ")");
    LMLAB_CHECK(begin == covered, FormatError, "[safetensors] '", P, "': bytes [", covered, ", ", begin,
                ") of the data section belong to no tensor (hole before tensor '", *name, "')");
    covered = end;
    prev = name;
  }
  LMLAB_CHECK(covered == data_size, FormatError, "[safetensors] '", P, "': the data section has ", data_size,
              " bytes but the tensors cover only ", covered, " (trailing bytes belong to no tensor)");
  data_bytes_ = covered;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = entries_.find(name);
  LMLAB_CHECK(it != entries_.end(), FormatError, "[safetensors] '", path_, "': no tensor named '", name, "'");
  return it->second;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const SafetensorsTensorInfo& e = info(name);
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
  std::vector<Tensor> conts;
  for (const auto& [name, t] : tensors) {
    LMLAB_CHECK(t.defined(), ValueError, "[safetensors] tensor '", name, "' is undefined");
    LMLAB_CHECK(name != "__metadata__" && !h.contains(name), ValueError, "[safetensors] duplicate or reserved name '",
                name, "'");
    h[name] = nullptr;
    Tensor c = t;
    if (!t.is_contiguous()) {  // core's copy_into, not Tensor::contiguous (ops): io links core only
      c = Tensor::empty(t.shape(), t.dtype());
      copy_into(c, t);
    }
    conts.push_back(c);
  }
  // Widest elements first: the data section starts 8-aligned, so every tensor lands aligned for its
  // dtype and the reader can view it in place.
  std::vector<size_t> order(conts.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(conts[a].dtype()) > dtype_size(conts[b].dtype());
  });
  size_t off = 0;
  for (size_t i : order) {
    const Tensor& c = conts[i];
    size_t nb = c.nbytes();
    h[tensors[i].first] = {{"dtype", st_dtype_name(c.dtype())}, {"shape", c.shape()}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');
  std::string out;
  out.reserve(8 + hs.size() + off);
  uint64_t n = hs.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += hs;
  for (size_t i : order) out.append(static_cast<const char*>(conts[i].raw_data()), conts[i].nbytes());
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

// ---- sharded checkpoints ----------------------------------------------------------------------

namespace {

// Why `file` cannot be a shard name, or "" when it can.
std::string bad_shard_name(const std::string& file) {
  if (file.empty()) return "is empty";
  if (file.find('\0') != std::string::npos) return "contains a NUL byte";
  if (file.find('\\') != std::string::npos) return "contains a backslash";
  if (file.front() == '/') return "is an absolute path";
  size_t start = 0;
  while (true) {
    size_t slash = file.find('/', start);
    std::string part = file.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..")
      return "has an empty, '.' or '..' path component (shards must stay inside the folder)";
    if (slash == std::string::npos) return "";
    start = slash + 1;
  }
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i, n);
  return buf;
}

}  // namespace

SafetensorsIndex SafetensorsIndex::parse(const std::string& text, const std::string& source) {
  const std::string P = str_cat("[safetensors] '", source, "'");
  nlohmann::json j = parse_json_strict(text.data(), text.data() + text.size(), P);
  LMLAB_CHECK(j.is_object(), FormatError, P, ": the index must be a JSON object");
  SafetensorsIndex idx;
  if (j.contains("metadata") && !j["metadata"].is_null()) {
    const auto& m = j["metadata"];
    LMLAB_CHECK(m.is_object(), FormatError, P, ": metadata must be an object, got ", m.type_name());
    if (m.contains("total_size") && !m["total_size"].is_null()) {
      const auto& t = m["total_size"];
      // Some exporters write the byte count as a float (1.5e10); accept it when it is a whole number.
      if (t.is_number_unsigned()) {
        idx.total_size = t.get<uint64_t>();
      } else if (t.is_number_float() && t.get<double>() >= 0 && t.get<double>() < 0x1p63 &&
                 t.get<double>() == std::floor(t.get<double>())) {
        idx.total_size = uint64_t(t.get<double>());
      } else {
        throw FormatError(str_cat(P, ": metadata.total_size must be a non-negative integer, got ", t.dump()));
      }
    }
  }
  LMLAB_CHECK(j.contains("weight_map"), FormatError, P, ": no weight_map");
  const auto& wm = j["weight_map"];
  LMLAB_CHECK(wm.is_object(), FormatError, P, ": weight_map must be an object, got ", wm.type_name());
  LMLAB_CHECK(!wm.empty(), FormatError, P, ": weight_map is empty");
  for (auto it = wm.begin(); it != wm.end(); ++it) {
    LMLAB_CHECK(it.value().is_string(), FormatError, P, ": weight_map entry for tensor '", it.key(),
                "' must be a file name string, got ", it.value().dump());
    const std::string& file = it.value().get_ref<const std::string&>();
    std::string why = bad_shard_name(file);
    LMLAB_CHECK(why.empty(), FormatError, P, ": weight_map entry for tensor '", it.key(), "' names file '", file,
                "', which ", why);
    idx.weight_map[it.key()] = file;
  }
  return idx;
}

std::string SafetensorsIndex::to_json() const {
  nlohmann::json j;
  j["metadata"] = nlohmann::json::object();
  if (total_size) j["metadata"]["total_size"] = *total_size;
  j["weight_map"] = weight_map;
  return j.dump(2) + "\n";
}

std::vector<std::string> SafetensorsIndex::files() const {
  std::set<std::string> s;
  for (const auto& kv : weight_map) s.insert(kv.second);
  return {s.begin(), s.end()};
}

SafetensorsShards SafetensorsShards::open_file(const std::string& path) {
  SafetensorsShards s;
  s.source_ = path;
  s.files_.push_back(SafetensorsFile::open(path));
  s.names_ = s.files_[0].names();
  std::sort(s.names_.begin(), s.names_.end());
  for (const auto& n : s.names_) s.where_[n] = 0;
  s.total_bytes_ = s.files_[0].data_bytes();
  return s;
}

SafetensorsShards SafetensorsShards::open_index(const std::string& index_path) {
  SafetensorsIndex idx = SafetensorsIndex::parse(read_text_file(index_path, "safetensors"), index_path);
  fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, SafetensorsFile> shards;
  for (const auto& file : idx.files()) {
    fs::path p = dir / file;
    if (!fs::exists(p)) {
      std::string example;
      for (const auto& [t, f] : idx.weight_map)
        if (f == file) {
          example = t;
          break;
        }
      throw IoError(str_cat("[safetensors] '", index_path, "': shard '", file, "' (holding tensor '", example,
                            "') does not exist"));
    }
    shards.emplace(file, SafetensorsFile::open(p.string()));
  }
  return assemble(index_path, idx, shards);
}

SafetensorsShards SafetensorsShards::assemble(const std::string& source, const SafetensorsIndex& index,
                                              const std::map<std::string, SafetensorsFile>& shards) {
  const std::string P = str_cat("[safetensors] '", source, "'");
  SafetensorsShards s;
  s.source_ = source;
  const std::vector<std::string> files = index.files();
  std::map<std::string, size_t> file_pos;
  for (const auto& file : files) {
    auto it = shards.find(file);
    LMLAB_CHECK(it != shards.end(), FormatError, P, ": shard '", file, "' was not given");
    file_pos[file] = s.files_.size();
    s.files_.push_back(it->second);
  }
  for (const auto& [tensor, file] : index.weight_map)
    LMLAB_CHECK(s.files_[file_pos.at(file)].contains(tensor), FormatError, P, ": weight_map puts tensor '", tensor,
                "' in '", file, "' but that shard has no such tensor");
  for (size_t i = 0; i < s.files_.size(); ++i) {
    const SafetensorsFile& f = s.files_[i];
    const std::string& file = files[i];
    for (const auto& t : f.names()) {
      auto [it, fresh] = s.where_.emplace(t, i);
      LMLAB_CHECK(fresh, FormatError, P, ": tensor '", t, "' is in two shards, '", files[it->second],
                  "' and '", file, "'");
      // Mapped tensors were checked above; a tensor the index does not list would be silently
      // loaded from a shard the index does not mean it to come from.
      LMLAB_CHECK(index.weight_map.count(t), FormatError, P, ": shard '", file, "' holds tensor '", t,
                  "', which weight_map does not list");
    }
    s.total_bytes_ += f.data_bytes();
  }
  if (index.total_size)
    LMLAB_CHECK(*index.total_size == s.total_bytes_, FormatError, P, ": metadata.total_size is ", *index.total_size,
                " but the shards' tensors hold ", s.total_bytes_, " bytes");
  for (const auto& kv : s.where_) s.names_.push_back(kv.first);
  return s;
}

SafetensorsShards SafetensorsShards::open_folder(const std::string& folder) {
  fs::path single = fs::path(folder) / kSafetensorsSingleName, index = fs::path(folder) / kSafetensorsIndexName;
  if (fs::exists(single)) return open_file(single.string());
  if (fs::exists(index)) return open_index(index.string());
  throw IoError(str_cat("[safetensors] '", folder, "' has neither ", kSafetensorsSingleName, " nor ",
                        kSafetensorsIndexName));
}

const SafetensorsFile& SafetensorsShards::file_of(const std::string& name) const {
  auto it = where_.find(name);
  LMLAB_CHECK(it != where_.end(), FormatError, "[safetensors] '", source_, "': no tensor named '", name, "'");
  return files_[it->second];
}

Tensor SafetensorsShards::get(const std::string& name) const { return file_of(name).get(name); }

const SafetensorsTensorInfo& SafetensorsShards::info(const std::string& name) const {
  return file_of(name).info(name);
}

std::vector<std::string> save_safetensors_shards(const std::string& folder,
                                                 const std::vector<std::pair<std::string, Tensor>>& tensors,
                                                 uint64_t max_shard_bytes,
                                                 const std::map<std::string, std::string>& metadata) {
  LMLAB_CHECK(max_shard_bytes > 0, ValueError, "[safetensors] max_shard_bytes must be positive");
  std::set<std::string> seen;
  std::vector<std::vector<std::pair<std::string, Tensor>>> groups(1);
  uint64_t cur = 0, total = 0;
  for (const auto& nt : tensors) {
    LMLAB_CHECK(nt.second.defined(), ValueError, "[safetensors] tensor '", nt.first, "' is undefined");
    LMLAB_CHECK(seen.insert(nt.first).second && nt.first != "__metadata__", ValueError,
                "[safetensors] duplicate or reserved name '", nt.first, "'");
    uint64_t nb = nt.second.nbytes();
    if (!groups.back().empty() && cur + nb > max_shard_bytes) {  // same greedy split as transformers
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(nt);
    cur += nb;
    total += nb;
  }
  std::error_code ec;
  fs::create_directories(folder, ec);
  LMLAB_CHECK(fs::is_directory(folder), IoError, "[safetensors] cannot create folder '", folder, "': ", ec.message());
  std::vector<std::string> written;
  if (groups.size() == 1) {
    save_safetensors((fs::path(folder) / kSafetensorsSingleName).string(), groups[0], metadata);
    written.push_back(kSafetensorsSingleName);
  } else {
    SafetensorsIndex idx;
    idx.total_size = total;
    for (size_t i = 0; i < groups.size(); ++i) {
      std::string name = shard_name(i + 1, groups.size());
      save_safetensors((fs::path(folder) / name).string(), groups[i], metadata);
      for (const auto& nt : groups[i]) idx.weight_map[nt.first] = name;
      written.push_back(name);
    }
    // Last: a reader that finds the index finds every shard it names complete.
    write_file_atomic((fs::path(folder) / kSafetensorsIndexName).string(), idx.to_json(), "safetensors");
    written.push_back(kSafetensorsIndexName);
  }
  // Leftovers of an earlier save would shadow (model.safetensors wins over an index) or confuse the new one.
  static const std::regex stale(R"(model-\d{5}-of-\d{5}\.safetensors|model\.safetensors(\.index\.json)?)");
  std::set<std::string> keep(written.begin(), written.end());
  for (const auto& e : fs::directory_iterator(folder)) {
    std::string n = e.path().filename().string();
    if (!keep.count(n) && std::regex_match(n, stale)) {
      fs::remove(e.path(), ec);
      LMLAB_CHECK(!ec, IoError, "[safetensors] cannot remove stale '", e.path().string(), "': ", ec.message());
    }
  }
  return written;
}

}  // namespace lmlab
