// Synthetic task registry.
#include "lmlab/data/synthetic.h"

#include <map>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {
std::map<std::string, SyntheticFactory>& registry() {
  static std::map<std::string, SyntheticFactory> r;
  return r;
}
}  // namespace

bool register_synthetic(const std::string& name, SyntheticFactory f) {
  registry()[name] = std::move(f);
  return true;
}

std::vector<std::string> synthetic_names() {
  std::vector<std::string> n;
  for (auto& [k, v] : registry()) n.push_back(k);
  return n;
}

std::unique_ptr<SyntheticTask> make_synthetic(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (auto& k : synthetic_names()) known += (known.empty() ? "" : ", ") + k;
    throw ConfigError(str_cat("[synthetic] unknown task '", name, "' (known: ", known, ")"));
  }
  return it->second();
}

}  // namespace lmlab
