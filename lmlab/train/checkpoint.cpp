// Atomic HF-layout checkpoints.
#include "lmlab/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmlab/io/safetensors.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {
void fsync_dir(const std::string& d) {
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}
std::vector<std::string> complete_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0 && n.find(".partial") == std::string::npos &&
        fs::exists(e.path() / "lmlab.json"))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::string save_checkpoint(const std::string& dir, int64_t step, const CheckpointData& d, int keep_last) {
  LMLAB_CHECK(d.model != nullptr, ValueError, "[checkpoint] no model to save");
  fs::create_directories(dir);
  std::string final_dir = (fs::path(dir) / step_name(step)).string();
  std::string tmp = final_dir + ".partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_file_atomic(tmp + "/config.json", d.model->cfg.to_json());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [n, t] : d.model->named_parameters()) tensors.emplace_back(n, t);
  for (auto& [n, t] : d.model->named_buffers()) tensors.emplace_back(n, t);  // e.g. MoE routing biases
  save_safetensors(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
  if (!d.tokenizer_json.empty()) write_file_atomic(tmp + "/tokenizer.json", d.tokenizer_json);
  if (d.optimizer) d.optimizer->save(tmp + "/optimizer.safetensors");
  write_file_atomic(tmp + "/lmlab.json", d.lmlab_json);
  fsync_dir(tmp);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_dir(dir);
  auto all = complete_checkpoints(dir);
  for (size_t i = 0; keep_last > 0 && i + size_t(keep_last) < all.size(); ++i) fs::remove_all(all[i]);
  return final_dir;
}

std::string latest_checkpoint(const std::string& dir) {
  if (!fs::exists(dir)) return "";
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (e.is_directory() && n.size() > 8 && n.substr(n.size() - 8) == ".partial") fs::remove_all(e.path());
  }
  auto all = complete_checkpoints(dir);
  return all.empty() ? "" : all.back();
}

void load_model_weights(Transformer& model, const std::string& folder) {
  std::string path = folder + "/model.safetensors";
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, Tensor> sd;
  for (const auto& n : f.names()) sd[n] = f.get(n);
  try {
    model.load_state_dict(sd, true);
  } catch (const Error& e) {
    throw FormatError(str_cat("[checkpoint] '", path, "': ", e.what()));
  }
}

}  // namespace lmlab
