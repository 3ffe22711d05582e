// Reports: Markdown structure and relative plot references, a self-contained HTML page with the
// SVGs inlined (ids namespaced) and all user text escaped, atomic writes, and input errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "lmlab/core/error.h"
#include "tests/test_util.h"
#include "lmlab/lab/plot.h"
#include "lmlab/lab/report.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

using lmlab::test::TempDir;
using lmlab::test::slurp;

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

// A small hand-written SVG shaped like gnuplot's: prolog, ids, and references to them.
std::string fake_svg(const std::string& label) {
  return "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"no\"?>\n"
         "<svg viewBox=\"0 0 720 420\" xmlns=\"http://www.w3.org/2000/svg\">\n"
         "<defs><clipPath id=\"gnuplot_plot_1\"><rect width=\"10\" height=\"10\"/></clipPath></defs>\n"
         "<g clip-path=\"url(#gnuplot_plot_1)\" fill=\"#1f77b4\"><use xlink:href='#gnuplot_plot_1'/>"
         "<text>" + label + "</text></g>\n</svg>\n";
}

}  // namespace

TEST(Report, MarkdownStructure) {
  TempDir tmp;
  write_text(tmp.path / "loss.svg", fake_svg("loss"));
  Report r("AR vs DLM | data-constrained");
  r.add_kv("scale", "tiny");
  r.add_kv("git commit", "`abc123`");
  r.add_heading(2, "Claim");
  r.add_paragraph("Diffusion LMs keep improving\nafter AR saturates.\n\n- point one\n- point two\n");
  r.add_table({"model", "val loss", "epochs"}, {{"AR", "3.21", "16"}, {"DLM | masked", "3.05", "16"}});
  r.add_plot((tmp.path / "loss.svg").string(), "Validation loss over epochs");
  r.add_code("```\nnested fence\n```");
  std::string md = r.markdown();
  EXPECT_EQ(md.rfind("# AR vs DLM | data-constrained\n\n", 0), 0u) << md;
  EXPECT_NE(md.find("- **scale**: tiny\n- **git commit**: `abc123`\n"), std::string::npos) << md;
  EXPECT_NE(md.find("## Claim\n"), std::string::npos);
  EXPECT_NE(md.find("- point one\n- point two\n"), std::string::npos);
  EXPECT_NE(md.find("| model | val loss | epochs |\n| --- | ---: | ---: |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| DLM \\| masked | 3.05 | 16 |"), std::string::npos) << md;
  // The plot is referenced by its file name, relative to report.md.
  EXPECT_NE(md.find("![Validation loss over epochs](loss.svg)"), std::string::npos) << md;
  EXPECT_EQ(md.find(tmp.path.string()), std::string::npos);
  // A code block containing a fence gets a longer fence.
  EXPECT_NE(md.find("````\n```\nnested fence\n```\n````"), std::string::npos) << md;
  EXPECT_EQ(md.back(), '\n');
}

TEST(Report, HtmlInlinesSvgsAndEscapesText) {
  TempDir tmp;
  write_text(tmp.path / "a.svg", fake_svg("curve A"));
  write_text(tmp.path / "b.svg", fake_svg("curve B"));
  Report r("Results <script>alert('x')</script> & more");
  r.add_paragraph("Loss **fell** by `x<y` and <b>not bold</b>; see [docs](https://example.org/?a=1&b=2) "
                  "and [bad](javascript:alert(1)).");
  r.add_table({"k", "v"}, {{"<i>", "a & b"}});
  r.add_plot((tmp.path / "a.svg").string(), "First <plot>");
  r.add_plot((tmp.path / "b.svg").string(), "Second");
  r.add_code("if (a < b && c > d) {}");
  r.add_kv("note", "\"quoted\"");
  std::string h = r.html();

  EXPECT_EQ(h.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(h.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(h.find("<style>"), std::string::npos);
  // No raw user markup anywhere.
  EXPECT_EQ(h.find("<script>"), std::string::npos);
  EXPECT_EQ(h.find("<b>not bold"), std::string::npos);
  EXPECT_EQ(h.find("<i>"), std::string::npos);
  EXPECT_NE(h.find("<title>Results &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more</title>"), std::string::npos);
  EXPECT_NE(h.find("&lt;b&gt;not bold&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(h.find("<strong>fell</strong>"), std::string::npos);
  EXPECT_NE(h.find("<code>x&lt;y</code>"), std::string::npos);
  EXPECT_NE(h.find("<a href=\"https://example.org/?a=1&amp;b=2\">docs</a>"), std::string::npos) << h;
  EXPECT_EQ(h.find("href=\"javascript"), std::string::npos);
  EXPECT_NE(h.find("<td>a &amp; b</td>"), std::string::npos);
  EXPECT_NE(h.find("<pre><code>if (a &lt; b &amp;&amp; c &gt; d) {}</code></pre>"), std::string::npos);
  EXPECT_NE(h.find("&quot;quoted&quot;"), std::string::npos);
  EXPECT_NE(h.find("<figcaption>First &lt;plot&gt;</figcaption>"), std::string::npos);

  // Both SVGs inlined, without their XML prologs, ids and references namespaced per figure.
  EXPECT_NE(h.find("<text>curve A</text>"), std::string::npos);
  EXPECT_NE(h.find("<text>curve B</text>"), std::string::npos);
  EXPECT_EQ(h.find("<?xml"), std::string::npos);
  EXPECT_NE(h.find("id=\"fig1-gnuplot_plot_1\""), std::string::npos);
  EXPECT_NE(h.find("url(#fig1-gnuplot_plot_1)"), std::string::npos);
  EXPECT_NE(h.find("href='#fig2-gnuplot_plot_1'"), std::string::npos);
  EXPECT_NE(h.find("fill=\"#1f77b4\""), std::string::npos);  // colours are not ids
  EXPECT_EQ(h.find("id=\"gnuplot_plot_1\""), std::string::npos);
}

TEST(Report, WriteProducesBothFilesAndCopiesOutsidePlots) {
  TempDir tmp;
  fs::path out = tmp.path / "exp/out";
  write_text(tmp.path / "elsewhere/curve.svg", fake_svg("c"));
  Report r("r");
  r.add_plot((tmp.path / "elsewhere/curve.svg").string(), "cap");
  r.write(out.string());
  EXPECT_EQ(slurp(out / "report.md"), r.markdown());
  EXPECT_EQ(slurp(out / "report.html"), r.html());
  EXPECT_EQ(slurp(out / "curve.svg"), fake_svg("c"));
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(out)) n += e.is_regular_file();
  EXPECT_EQ(n, 3u);  // no temporary files left behind

  // Writing again into the folder the plot already lives in does not copy it onto itself.
  Report again("again");
  again.add_plot((out / "curve.svg").string(), "same folder");
  again.write(out.string());
  EXPECT_NE(slurp(out / "report.md").find("](curve.svg)"), std::string::npos);
}

TEST(Report, WithARealGnuplotPlot) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not installed (apt-get install gnuplot-nox)";
  TempDir tmp;
  PlotSpec spec;
  spec.title = "loss";
  spec.series = {{"train <AR>", {1, 2, 3, 4}, {4, 3, 2.5, 2.2}}};
  std::string svg = plot_svg(spec, (tmp.path / "loss.svg").string());
  Report r("Real plot");
  r.add_plot(svg, "Training loss");
  r.write(tmp.path.string());
  std::string h = slurp(tmp.path / "report.html");
  EXPECT_NE(h.find("<svg"), std::string::npos);
  EXPECT_NE(h.find("train &lt;AR"), std::string::npos);
  EXPECT_EQ(h.find("<?xml"), std::string::npos);
}

TEST(Report, BadInputIsRefused) {
  TempDir tmp;
  Report r("r");
  EXPECT_THROW(r.add_heading(0, "x"), ValueError);
  EXPECT_THROW(r.add_heading(7, "x"), ValueError);
  EXPECT_THROW(r.add_table({}, {}), ValueError);
  try {
    r.add_table({"a", "b"}, {{"1", "2"}, {"3"}});
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 has 1 cells, expected 2"), std::string::npos) << e.what();
  }
  std::string missing = (tmp.path / "nope.svg").string();
  try {
    r.add_plot(missing, "x");
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
  }
  write_text(tmp.path / "a/p.svg", fake_svg("1"));
  write_text(tmp.path / "b/p.svg", fake_svg("2"));
  r.add_plot((tmp.path / "a/p.svg").string(), "one");
  EXPECT_THROW(r.add_plot((tmp.path / "b/p.svg").string(), "two"), ValueError);  // same file name

  // A plot that vanished or is not SVG fails the write before any report file exists.
  write_text(tmp.path / "c/notsvg.svg", "hello");
  Report bad("bad");
  bad.add_plot((tmp.path / "c/notsvg.svg").string(), "x");
  EXPECT_THROW(bad.write((tmp.path / "out").string()), FormatError);
  EXPECT_FALSE(fs::exists(tmp.path / "out/report.md"));
  fs::remove(tmp.path / "a/p.svg");
  EXPECT_THROW(r.html(), IoError);
}
