// Out-of-line part of the check macros.
#include "lmlab/core/error.h"

#include <cstdio>
#include <cstdlib>

namespace lmlab::detail {
void assert_fail(const char* cond, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "lmlab: assertion failed at %s:%d: %s %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace lmlab::detail
