// lmlab error hierarchy and check macros (STYLE 2.6).
// Boundary code (I/O, config, public op validation) throws an lmlab::Error subtype with a
// message "[component] what failed: expected X, got Y"; kernels use LMLAB_ASSERT, which
// stays on in release builds and aborts with file:line (ggml's assert macro).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lmlab {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error { using Error::Error; };
struct DTypeError : Error { using Error::Error; };
struct IndexError : Error { using Error::Error; };
struct IoError : Error { using Error::Error; };
struct FormatError : Error { using Error::Error; };
struct ConfigError : Error { using Error::Error; };
struct AutogradError : Error { using Error::Error; };
struct ValueError : Error { using Error::Error; };
// A library kernel (oneDNN, BLAS) refused or failed an operation; the message names the op, the
// shapes and the dtypes.
struct BackendError : Error { using Error::Error; };

namespace detail {
inline void cat_to(std::ostringstream&) {}
template <class A, class... R>
void cat_to(std::ostringstream& os, const A& a, const R&... r) {
  os << a;
  cat_to(os, r...);
}
[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

// Concatenates its arguments with operator<< into a string.
template <class... A>
std::string str_cat(const A&... a) {
  std::ostringstream os;
  detail::cat_to(os, a...);
  return os.str();
}

}  // namespace lmlab

// Throws ErrType with the concatenated message when cond is false.
#define LMLAB_CHECK(cond, ErrType, ...)                          \
  do {                                                           \
    if (!(cond)) throw ErrType(::lmlab::str_cat(__VA_ARGS__));   \
  } while (0)

// Always-on invariant check for kernels; aborts with file:line. Never throws (safe in OpenMP).
#define LMLAB_ASSERT(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond)) ::lmlab::detail::assert_fail(#cond, __FILE__, __LINE__,                \
                                              ::lmlab::str_cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
