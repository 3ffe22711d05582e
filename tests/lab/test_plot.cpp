// gnuplot SVG plots: output is an SVG holding the labels (escaped), edge cases (log axes with
// non-positive values, empty data) still draw, bad input and a missing gnuplot give clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "lmlab/core/error.h"
#include "tests/test_util.h"
#include "lmlab/lab/plot.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

using lmlab::test::TempDir;
using lmlab::test::slurp;

// Only the SVG itself is left: no temporary scripts, logs or partial files.
size_t files_in(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

#define REQUIRE_GNUPLOT() \
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not installed (apt-get install gnuplot-nox)"

}  // namespace

TEST(Plot, QuoteEscapesGnuplotAndEnhancedText) {
  EXPECT_EQ(gnuplot_quote("loss"), "'loss'");
  EXPECT_EQ(gnuplot_quote("it's"), "'it''s'");
  EXPECT_EQ(gnuplot_quote("a_b^c{d}@~\\"), "'a\\_b\\^c\\{d\\}\\@\\~\\\\'");
  EXPECT_EQ(gnuplot_quote("two\nlines"), "'two lines'");
  EXPECT_EQ(gnuplot_quote("x&y").find('&'), std::string::npos);  // travels as a placeholder
}

TEST(Plot, LinePlotIsAnSvgWithItsLabels) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  PlotSpec spec;
  spec.title = "Validation loss";
  spec.xlabel = "step";
  spec.ylabel = "loss (nats)";
  Series ar{"autoregressive", {}, {}}, dlm{"diffusion", {}, {}};
  for (int i = 1; i <= 60; ++i) {
    ar.x.push_back(i * 10);
    ar.y.push_back(4.0 / std::sqrt(i));
    dlm.x.push_back(i * 10);
    dlm.y.push_back(4.5 / std::pow(i, 0.4));
  }
  spec.series = {ar, dlm};
  spec.hlines = {{"unigram baseline", 3.2}};
  std::string out = (tmp.path / "plots/loss.svg").string();  // parent folder is created
  EXPECT_EQ(plot_svg(spec, out), out);
  std::string svg = slurp(out);
  EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.find("<svg") != std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  for (const char* s : {"autoregressive", "diffusion", "unigram baseline", "Validation loss", "loss (nats)"})
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  EXPECT_EQ(files_in(tmp.path), 1u);
}

TEST(Plot, UserTextIsEscapedAndTheSvgStaysWellFormed) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  PlotSpec spec;
  spec.title = "AT&T's <loss> ^2";
  spec.series = {{"train_loss {x}", {1, 2, 3}, {3, 2, 1}}};
  std::string out = (tmp.path / "esc.svg").string();
  plot_svg(spec, out);
  std::string svg = slurp(out);
  EXPECT_NE(svg.find("train_loss {x}"), std::string::npos);
  EXPECT_NE(svg.find("AT&amp;T's &lt;loss"), std::string::npos);
  EXPECT_NE(svg.find("^2"), std::string::npos);
  // Every '&' left in the file starts an entity (no raw '&' from user text).
  for (size_t p = svg.find('&'); p != std::string::npos; p = svg.find('&', p + 1)) {
    size_t semi = svg.find(';', p);
    ASSERT_NE(semi, std::string::npos);
    EXPECT_LT(semi - p, 8u) << svg.substr(p, 20);
  }
}

TEST(Plot, LogAxesSkipUnplottablePointsAndEmptyPlotsStillDraw) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  PlotSpec spec;
  spec.title = "log-log";
  spec.logx = spec.logy = true;
  // y given without x: plotted against 0, 1, 2... (0 is dropped on the log x axis).
  spec.series = {{"with zeros", {}, {0.0, 1.0, 10.0, -1.0, NAN, 100.0}}, {"nothing usable", {1, 2}, {0.0, -3.0}}};
  spec.hlines = {{"negative line", -1.0}, {"one", 1.0}};
  std::string svg = slurp(plot_svg(spec, (tmp.path / "log.svg").string()));
  EXPECT_NE(svg.find("with zeros"), std::string::npos);
  EXPECT_NE(svg.find("nothing usable (no data)"), std::string::npos);

  PlotSpec empty;
  empty.title = "nothing yet";
  empty.series = {{"loss", {}, {}}};
  svg = slurp(plot_svg(empty, (tmp.path / "empty.svg").string()));
  EXPECT_NE(svg.find("no data"), std::string::npos);
}

TEST(Plot, BarChart) {
  REQUIRE_GNUPLOT();
  TempDir tmp;
  BarSpec bars{"Accuracy by sampler", "accuracy", {"greedy", "temp 0.5", "power MCMC", "failed"}, {0.41, 0.45, 0.52, NAN}};
  std::string svg = slurp(plot_bars_svg(bars, (tmp.path / "bars.svg").string()));
  for (const char* s : {"greedy", "power MCMC", "Accuracy by sampler", "0.52"}) EXPECT_NE(svg.find(s), std::string::npos) << s;
  BarSpec negative{"delta", "", {"a", "b"}, {-2.0, 1.0}};
  EXPECT_NE(slurp(plot_bars_svg(negative, (tmp.path / "neg.svg").string())).find("<svg"), std::string::npos);
  BarSpec zeros{"zeros", "", {"a", "b"}, {0.0, 0.0}};
  EXPECT_NE(slurp(plot_bars_svg(zeros, (tmp.path / "zeros.svg").string())).find("<svg"), std::string::npos);
  BarSpec missing{"all missing", "", {"a"}, {NAN}};
  std::string svg_missing = slurp(plot_bars_svg(missing, (tmp.path / "missing.svg").string()));
  EXPECT_NE(svg_missing.find("no data"), std::string::npos);
  EXPECT_NE(svg_missing.find("n/a"), std::string::npos);
  EXPECT_NE(slurp(plot_bars_svg(BarSpec{}, (tmp.path / "empty.svg").string())).find("no data"), std::string::npos);
  EXPECT_EQ(files_in(tmp.path), 5u);
}

TEST(Plot, InconsistentInputNamesTheSeriesAndWritesNothing) {
  TempDir tmp;
  PlotSpec spec;
  spec.title = "bad";
  spec.series = {{"ok", {1, 2}, {1, 2}}, {"short x", {1}, {1, 2, 3}}};
  std::string out = (tmp.path / "bad.svg").string();
  try {
    plot_svg(spec, out);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'short x'"), std::string::npos) << e.what();
  }
  BarSpec bars{"bars", "", {"a", "b"}, {1.0}};
  EXPECT_THROW(plot_bars_svg(bars, out), ValueError);
  EXPECT_EQ(files_in(tmp.path), 0u);
}

TEST(Plot, MissingGnuplotSaysHowToInstallIt) {
  TempDir tmp;
  std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", tmp.path.c_str(), 1);  // an empty folder: no gnuplot anywhere
  EXPECT_FALSE(gnuplot_available());
  std::string msg;
  try {
    plot_svg(PlotSpec{"t", "", "", false, false, {{"s", {1, 2}, {1, 2}}}, {}}, (tmp.path / "x.svg").string());
  } catch (const IoError& e) {
    msg = e.what();
  }
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(msg.find("gnuplot"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install gnuplot-nox"), std::string::npos) << msg;
  EXPECT_EQ(files_in(tmp.path), 0u);
}

// Seeds' spreads: a curve's band (lo..hi) is shaded, a bar's range is an error bar; a band whose length
// differs from the curve's is an error naming the series.
TEST(Plot, BandsAndErrorBars) {
  PlotSpec spec;
  spec.title = "seeds";
  Series s{"mean", {0, 1, 2}, {1, 2, 3}};
  s.lo = {0.5, 1.5, 2.5};
  s.hi = {1.5, 2.5, 3.5};
  spec.series = {s};
  std::string script = plot_script(spec, "out.svg");
  EXPECT_NE(script.find("0 1 0.5 1.5"), std::string::npos) << script;
  EXPECT_NE(script.find("using 1:3:4 with filledcurves"), std::string::npos) << script;
  BarSpec bars{"bars", "", {"a", "b"}, {1.0, 2.0}};
  bars.lo = {0.8, 1.5};
  bars.hi = {1.25, 2.5};
  std::string bs = bars_script(bars, "out.svg");
  EXPECT_NE(bs.find("yerrorbars"), std::string::npos) << bs;
  EXPECT_NE(bs.find("1 2 1.5 2.5"), std::string::npos) << bs;
  spec.series[0].hi.pop_back();
  try {
    plot_script(spec, "out.svg");
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'mean'"), std::string::npos) << e.what();
  }
  bars.lo.pop_back();
  EXPECT_THROW(bars_script(bars, "out.svg"), ValueError);
  if (!gnuplot_available()) return;
  TempDir tmp;
  spec.series[0].hi.push_back(3.5);
  EXPECT_NE(slurp(plot_svg(spec, (tmp.path / "band.svg").string())).find("<svg"), std::string::npos);
  bars.lo.push_back(1.5);
  EXPECT_NE(slurp(plot_bars_svg(bars, (tmp.path / "err.svg").string())).find("<svg"), std::string::npos);
}
