// Synthetic task "addition": "a+b=" -> "c" for non-negative integers of up to `digits` digits.
// The smallest example of a registered generator (arithmetic tasks in DESIGN.md's data layer).
#include <string>

#include "lmlab/data/synthetic.h"

namespace lmlab {
namespace {

class AdditionTask : public SyntheticTask {
 public:
  std::string description() const override { return "integer addition a+b= with up to 4-digit operands"; }
  SyntheticExample sample(Generator& gen) const override {
    int64_t a = gen.randint(0, 10000), b = gen.randint(0, 10000);
    return {std::to_string(a) + "+" + std::to_string(b) + "=", std::to_string(a + b)};
  }
};

}  // namespace
}  // namespace lmlab

using lmlab::AdditionTask;
LMLAB_REGISTER_SYNTHETIC(AdditionTask, "addition");
