// SVG plots for reports, drawn by gnuplot (Debian's gnuplot-nox; http://gnuplot.info/docs_5.4/).
// The data goes inline in the script as datablocks; gnuplot writes a temporary file that is
// renamed over the target, so a reader never sees half an SVG. No shell is involved.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace lmlab {

// One curve: y against x (same length; an empty x means 0, 1, 2, ...). Non-finite points, and non-positive ones on a log axis,
// are left out (gnuplot cannot place them).
// Optional band: lo and hi (both empty, or both as long as y) shade the spread around the curve, e.g.
// the range of an experiment's seeds around their mean.
struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> lo = {}, hi = {};
};

struct PlotSpec {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  std::vector<Series> series;
  // Labelled horizontal reference lines (baselines, the paper's number), drawn dashed.
  std::vector<std::pair<std::string, double>> hlines;
};

struct BarSpec {
  std::string title, ylabel;
  std::vector<std::string> labels;
  std::vector<double> values;  // one per label; a non-finite value draws no bar
  std::vector<double> lo = {}, hi = {};  // optional (empty, or one per label): an error bar from lo to hi
};

// Draws `spec` to `svg_path` (parent folders are created) and returns svg_path. Throws
// ValueError for inconsistent input (naming the series), IoError when gnuplot is missing
// (with the command that installs it) or fails (with its message).
std::string plot_svg(const PlotSpec& spec, const std::string& svg_path);
std::string plot_bars_svg(const BarSpec& spec, const std::string& svg_path);

// The gnuplot scripts plot_svg / plot_bars_svg run, for a given output file (exposed for tests
// and for reproducing a plot by hand).
std::string plot_script(const PlotSpec& spec, const std::string& output_path);
std::string bars_script(const BarSpec& spec, const std::string& output_path);

// Whether an executable `gnuplot` is on PATH.
bool gnuplot_available();

// `text` as a single-quoted gnuplot string literal that prints literally in the enhanced
// terminal (enhanced-text markup characters are escaped, control characters become spaces).
std::string gnuplot_quote(const std::string& text);

}  // namespace lmlab
