// Thread-local kernel selection flag.
#include "lmlab/ops/mode.h"

namespace lmlab {
namespace {
thread_local bool g_ref = false;
}
bool reference_mode() { return g_ref; }
void set_reference_mode(bool on) { g_ref = on; }
}  // namespace lmlab
