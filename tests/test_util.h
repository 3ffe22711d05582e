// Helpers shared by the GoogleTest files: expecting an lmlab error with a given message, a
// per-test temporary folder, reading a file whole.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lmlab::test {

// Runs f and expects an exception of type E whose message contains `must_contain`.
template <class E, class F>
void expect_error(F&& f, const std::string& must_contain) {
  try {
    f();
    ADD_FAILURE() << "expected an exception containing '" << must_contain << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(must_contain), std::string::npos) << e.what();
  }
}

// A fresh folder named after the process and the running test, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "lmlab") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + (info ? info->name() : "global"));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Largest |a[i] - b[i]| and largest |a[i]| (tolerances relative to a logit range). Both are NaN
// when any value is NaN or infinite, and max_abs_diff is NaN when the sizes differ, so that every
// comparison with them (EXPECT_LE, EXPECT_GT, a tolerance scaled by max_abs) fails on garbage
// instead of skipping it (std::max drops a NaN).
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::nan("");
  double md = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::nan("");
    md = std::max(md, std::abs(double(a[i]) - double(b[i])));
  }
  return md;
}
inline double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float v : a) {
    if (!std::isfinite(v)) return std::nan("");
    m = std::max(m, double(std::abs(v)));
  }
  return m;
}

}  // namespace lmlab::test
