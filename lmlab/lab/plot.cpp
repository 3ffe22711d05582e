// gnuplot-driven SVG plots (http://gnuplot.info/docs_5.4/): build a script with inline
// datablocks, run `gnuplot -d script` through posix_spawnp (no shell, output captured to a log),
// then post-process and atomically move the SVG into place.
#include "lmlab/lab/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/io/safetensors.h"

extern char** environ;

namespace lmlab {
namespace fs = std::filesystem;

namespace {

// gnuplot's SVG terminal writes a literal '&' unescaped (invalid XML), and in enhanced text a
// bare '&' starts markup. So user '&' travels through gnuplot as this private-use character
// (U+E000) and becomes "&amp;" in the finished SVG.
constexpr const char* kAmpPlaceholder = "\xEE\x80\x80";

constexpr const char* kInstallHint =
    "install it with `sudo apt-get install gnuplot-nox` (or run scripts/install-deps.sh)";

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void header(std::ostringstream& s, const std::string& output_path, const std::string& title) {
  s << "set encoding utf8\n"
    << "set terminal svg size 720,420 dynamic enhanced font 'sans,11'\n"
    // The output path is a plain string (not enhanced text): only the quote needs doubling.
    << "set output '";
  for (char c : output_path) s << (c == '\'' ? std::string("''") : std::string(1, c));
  s << "'\n";
  if (!title.empty()) s << "set title " << gnuplot_quote(title) << "\n";
  s << "set grid back lc rgb '#dddddd'\n"
    << "set border lc rgb '#555555'\n";
}

bool usable(double x, double y, const PlotSpec& spec) {
  if (!std::isfinite(x) || !std::isfinite(y)) return false;
  if (spec.logx && x <= 0) return false;
  if (spec.logy && y <= 0) return false;
  return true;
}

std::string plot_name(const std::string& title) { return title.empty() ? std::string("(untitled)") : "'" + title + "'"; }

void validate(const PlotSpec& spec) {
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const Series& s = spec.series[i];
    LMLAB_CHECK(s.x.empty() || s.x.size() == s.y.size(), ValueError, "[plot] ", plot_name(spec.title), ": series ", i,
                " '", s.label, "' has ", s.x.size(), " x values and ", s.y.size(), " y values (expected equal, or no x)");
    LMLAB_CHECK(s.lo.size() == s.hi.size() && (s.lo.empty() || s.lo.size() == s.y.size()), ValueError, "[plot] ",
                plot_name(spec.title), ": series ", i, " '", s.label, "' has a band of ", s.lo.size(), " lo and ",
                s.hi.size(), " hi values for ", s.y.size(), " points (expected none, or one each per point)");
  }
}

void validate(const BarSpec& spec) {
  LMLAB_CHECK(spec.lo.size() == spec.hi.size() && (spec.lo.empty() || spec.lo.size() == spec.values.size()),
              ValueError, "[plot] bar chart ", plot_name(spec.title), ": ", spec.lo.size(), " lo and ", spec.hi.size(),
              " hi error values for ", spec.values.size(), " bars (expected none, or one each per bar)");
  LMLAB_CHECK(spec.labels.size() == spec.values.size(), ValueError, "[plot] bar chart ", plot_name(spec.title), ": ",
              spec.labels.size(), " labels but ", spec.values.size(), " values (expected one value per label)");
}

// Unique temporary names next to the target (same filesystem, so the final rename is atomic).
std::string temp_stem(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return str_cat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

[[noreturn]] void gnuplot_missing() {
  throw IoError(str_cat("[plot] gnuplot was not found on PATH; it draws the SVG plots of reports: ", kInstallHint));
}

// Runs gnuplot on a script rendering to a temporary file, then installs the result at svg_path.
std::string render(const std::string& svg_path, const std::string& what,
                   const std::function<std::string(const std::string&)>& make_script) {
  LMLAB_CHECK(!svg_path.empty(), ValueError, "[plot] ", what, ": output path is empty");
  std::error_code ec;
  fs::path parent = fs::path(svg_path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    LMLAB_CHECK(!ec, IoError, "[plot] cannot create folder '", parent.string(), "' for '", svg_path, "': ", ec.message());
  }
  std::string stem = temp_stem(svg_path);
  std::string script_path = stem + ".gp", log_path = stem + ".log", tmp_svg = stem + ".svg";
  {
    std::ofstream f(script_path, std::ios::binary);
    f << make_script(tmp_svg);
    LMLAB_CHECK(f.good(), IoError, "[plot] cannot write gnuplot script '", script_path, "'");
  }
  auto cleanup = [&](bool keep_script) {
    fs::remove(log_path, ec);
    fs::remove(tmp_svg, ec);
    if (!keep_script) fs::remove(script_path, ec);
  };

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // gnuplot prints warnings; library code must not write to our stdout/stderr, so both go to a log.
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::string arg0 = "gnuplot", arg1 = "-d";  // -d: ignore ~/.gnuplot so output is reproducible
  char* argv[] = {arg0.data(), arg1.data(), script_path.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "gnuplot", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == ENOENT) {
    cleanup(false);
    gnuplot_missing();
  }
  if (rc != 0) {
    cleanup(false);
    throw IoError(str_cat("[plot] cannot start gnuplot for ", what, ": ", std::strerror(rc)));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      cleanup(false);
      throw IoError(str_cat("[plot] waiting for gnuplot failed: ", std::strerror(errno)));
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      cleanup(false);
      gnuplot_missing();
    }
    std::string log = read_file(log_path);
    if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
    cleanup(true);
    throw IoError(str_cat("[plot] gnuplot failed drawing ", what, " to '", svg_path, "' (",
                          WIFEXITED(status) ? str_cat("exit code ", WEXITSTATUS(status)) : std::string("killed by a signal"),
                          "); script kept at '", script_path, "'; gnuplot said:\n", log));
  }
  std::string svg = read_file(tmp_svg);
  if (svg.find("<svg") == std::string::npos) {
    cleanup(true);
    throw IoError(str_cat("[plot] gnuplot produced no SVG for ", what, " (script kept at '", script_path, "')"));
  }
  for (size_t p = svg.find(kAmpPlaceholder); p != std::string::npos; p = svg.find(kAmpPlaceholder, p + 5))
    svg.replace(p, std::strlen(kAmpPlaceholder), "&amp;");
  write_file_atomic(svg_path, svg);
  cleanup(false);
  return svg_path;
}

}  // namespace

std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += ' ';
    } else if (c == '\'') {
      out += "''";  // the only escape inside a single-quoted gnuplot string
    } else if (c == '&') {
      out += kAmpPlaceholder;
    } else if (std::strchr("^_@~{}\\", c)) {
      out += '\\';  // enhanced-text markup: a backslash makes it literal
      out += c;
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool gnuplot_available() {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string exe = (dir.empty() ? std::string(".") : dir) + "/gnuplot";
    if (::access(exe.c_str(), X_OK) == 0) return true;
  }
  return false;
}

std::string plot_script(const PlotSpec& spec, const std::string& output_path) {
  validate(spec);
  std::ostringstream s;
  header(s, output_path, spec.title);
  if (!spec.xlabel.empty()) s << "set xlabel " << gnuplot_quote(spec.xlabel) << "\n";
  if (!spec.ylabel.empty()) s << "set ylabel " << gnuplot_quote(spec.ylabel) << "\n";
  s << "set key top right opaque\n";

  // One datablock per series holding only the points gnuplot can place.
  std::vector<size_t> counts(spec.series.size(), 0);
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const Series& ser = spec.series[i];
    s << "$D" << i << " << EOD\n";
    for (size_t j = 0; j < ser.y.size(); ++j) {
      double x = ser.x.empty() ? double(j) : ser.x[j];
      if (!usable(x, ser.y[j], spec)) continue;
      s << num(x) << ' ' << num(ser.y[j]);
      if (!ser.lo.empty()) {  // a band point gnuplot cannot place collapses onto the curve
        double lo = usable(x, ser.lo[j], spec) ? ser.lo[j] : ser.y[j], hi = usable(x, ser.hi[j], spec) ? ser.hi[j] : ser.y[j];
        s << ' ' << num(lo) << ' ' << num(hi);
      }
      s << '\n';
      ++counts[i];
    }
    s << "EOD\n";
  }
  std::vector<std::pair<std::string, double>> hlines;
  for (const auto& h : spec.hlines)
    if (std::isfinite(h.second) && !(spec.logy && h.second <= 0)) hlines.push_back(h);
  size_t total = 0;
  for (size_t c : counts) total += c;

  if (total == 0 && hlines.empty()) {
    // Nothing to draw: an empty frame that says so beats a failed report.
    s << "set xrange [0:1]\nset yrange [0:1]\nunset xtics\nunset ytics\n"
      << "set label 1 'no data' at graph 0.5, graph 0.5 center\n"
      << "plot NaN notitle\nunset output\n";
    return s.str();
  }
  if (spec.logx) s << "set logscale x\n";
  if (spec.logy) s << "set logscale y\n";

  std::vector<std::string> items;
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const Series& ser = spec.series[i];
    std::string color = kPalette[i % kPaletteSize];
    if (counts[i] == 0) {
      // Keep the series in the legend so its absence is visible.
      items.push_back(str_cat("NaN with lines lc rgb '", color, "' title ", gnuplot_quote(ser.label + " (no data)")));
      continue;
    }
    // Markers only while they stay readable; long curves are plain lines.
    std::string style = counts[i] <= 40 ? "linespoints pt 7 ps 0.6" : "lines";
    if (!ser.lo.empty())
      items.push_back(str_cat("$D", i, " using 1:3:4 with filledcurves fc rgb '", color,
                              "' fs transparent solid 0.18 noborder notitle"));
    items.push_back(str_cat("$D", i, " using 1:2 with ", style, " lw 2 lc rgb '", color, "' title ",
                            gnuplot_quote(ser.label)));
  }
  for (size_t i = 0; i < hlines.size(); ++i)
    items.push_back(str_cat(num(hlines[i].second), " with lines lw 1.5 dt ", 2 + i % 4, " lc rgb '#444444' title ",
                            gnuplot_quote(hlines[i].first)));
  s << "plot ";
  for (size_t i = 0; i < items.size(); ++i) s << (i ? ", \\\n     " : "") << items[i];
  s << "\nunset output\n";
  return s.str();
}

std::string bars_script(const BarSpec& spec, const std::string& output_path) {
  validate(spec);
  std::ostringstream s;
  header(s, output_path, spec.title);
  if (!spec.ylabel.empty()) s << "set ylabel " << gnuplot_quote(spec.ylabel) << "\n";
  size_t n = spec.labels.size();
  if (n == 0) {
    s << "set xrange [0:1]\nset yrange [0:1]\nunset xtics\nunset ytics\n"
      << "set label 1 'no data' at graph 0.5, graph 0.5 center\n"
      << "plot NaN notitle\nunset output\n";
    return s.str();
  }
  // Bars grow from zero, so the y range must include it (gnuplot's autoscale would not).
  double lo = 0, hi = 0;
  size_t longest = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(spec.values[i])) {
      lo = std::min(lo, spec.values[i]);
      hi = std::max(hi, spec.values[i]);
      if (!spec.lo.empty() && std::isfinite(spec.lo[i]) && std::isfinite(spec.hi[i])) {
        lo = std::min(lo, spec.lo[i]);
        hi = std::max(hi, spec.hi[i]);
      }
    }
    longest = std::max(longest, spec.labels[i].size());
  }
  double pad = (hi - lo) * 0.12;
  if (pad == 0) pad = 1;
  // All zero or all missing: a unit range, since gnuplot refuses an empty one.
  s << "set yrange [" << num(lo < 0 ? lo - pad : 0) << ":" << num(hi > 0 ? hi + pad : (lo < 0 ? 0 : 1)) << "]\n"
    << "set xrange [-0.6:" << num(double(n) - 0.4) << "]\n"
    << "set style fill solid 0.85 border rgb '#333333'\n"
    << "set boxwidth 0.7\n"
    << "set grid noxtics\n"
    << "set xzeroaxis lt -1\n"
    << "set xtics (";
  for (size_t i = 0; i < n; ++i) s << (i ? ", " : "") << gnuplot_quote(spec.labels[i]) << " " << i;
  s << ") scale 0";
  // Long or many labels would overlap horizontally.
  if (longest * n > 60) s << " rotate by -30 left";
  s << "\n";
  // A missing value is marked, not silently shown as an empty slot.
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(spec.values[i]))
      s << "set label " << i + 1 << " 'n/a' at " << i << ", first 0 center offset 0,0.7 tc rgb '#777777'\n";
  s << "$D << EOD\n";
  size_t drawn = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(spec.values[i])) continue;
    s << i << ' ' << num(spec.values[i]) << '\n';
    ++drawn;
  }
  s << "EOD\n";
  bool errors = !spec.lo.empty();
  if (errors) {
    s << "$E << EOD\n";
    for (size_t i = 0; i < n; ++i)
      if (std::isfinite(spec.values[i]) && std::isfinite(spec.lo[i]) && std::isfinite(spec.hi[i]))
        s << i << ' ' << num(spec.values[i]) << ' ' << num(spec.lo[i]) << ' ' << num(spec.hi[i]) << '\n';
    s << "EOD\n";
  }
  if (drawn == 0) {
    s << "set label " << n + 1 << " 'no data' at graph 0.5, graph 0.5 center\nplot NaN notitle\nunset output\n";
    return s.str();
  }
  s << "plot $D using 1:2 with boxes lc rgb '" << kPalette[0] << "' notitle, \\\n"
    << "     $D using 1:2:(sprintf('%.4g', $2)) with labels offset 0,0.7 notitle";
  if (errors) s << ", \\\n     $E using 1:2:3:4 with yerrorbars lc rgb '#222222' pt 0 lw 1.5 notitle";
  s << "\nunset output\n";
  return s.str();
}

std::string plot_svg(const PlotSpec& spec, const std::string& svg_path) {
  validate(spec);  // before any file is touched
  return render(svg_path, "plot " + plot_name(spec.title),
                [&](const std::string& out) { return plot_script(spec, out); });
}

std::string plot_bars_svg(const BarSpec& spec, const std::string& svg_path) {
  validate(spec);  // before any file is touched
  return render(svg_path, "bar chart " + plot_name(spec.title),
                [&](const std::string& out) { return bars_script(spec, out); });
}

}  // namespace lmlab
