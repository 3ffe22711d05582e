// Kernel selection. In reference mode every op runs its `_ref` kernels (plain loops, double
// accumulation, no threads, no BLAS): the op table compares fast against reference this way.
#pragma once

namespace lmlab {

bool reference_mode();
void set_reference_mode(bool on);

class ReferenceMode {
 public:
  explicit ReferenceMode(bool on = true) : prev_(reference_mode()) { set_reference_mode(on); }
  ~ReferenceMode() { set_reference_mode(prev_); }
  ReferenceMode(const ReferenceMode&) = delete;
  ReferenceMode& operator=(const ReferenceMode&) = delete;

 private:
  bool prev_;
};

}  // namespace lmlab
