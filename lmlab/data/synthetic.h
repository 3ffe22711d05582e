// Synthetic task generators. Adding one is a single file: define a SyntheticTask subclass and
// register it with LMLAB_REGISTER_SYNTHETIC(Class, "name") at namespace scope (the data library is
// linked whole-archive, so the registration is never dropped by the linker).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmlab/core/rng.h"

namespace lmlab {

struct SyntheticExample {
  std::string prompt;  // what the model sees
  std::string answer;  // what it should produce
};

class SyntheticTask {
 public:
  virtual ~SyntheticTask() = default;
  virtual std::string description() const = 0;
  // One example; deterministic given the generator state.
  virtual SyntheticExample sample(Generator& gen) const = 0;
  // Whether `output` answers `ex` correctly (default: exact match of the answer).
  virtual bool correct(const SyntheticExample& ex, const std::string& output) const { return output == ex.answer; }
};

using SyntheticFactory = std::function<std::unique_ptr<SyntheticTask>()>;
bool register_synthetic(const std::string& name, SyntheticFactory f);
std::unique_ptr<SyntheticTask> make_synthetic(const std::string& name);  // ConfigError lists known names
std::vector<std::string> synthetic_names();

}  // namespace lmlab

#define LMLAB_REGISTER_SYNTHETIC(Class, name)                                        \
  static const bool lmlab_synthetic_registered_##Class = ::lmlab::register_synthetic( \
      name, [] { return std::unique_ptr<::lmlab::SyntheticTask>(new Class()); })
