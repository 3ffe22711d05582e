// Experiment reports (DESIGN.md "Results"): one document model rendered twice, as report.md
// (plots referenced by file name, CommonMark) and as a self-contained report.html (CSS, tables and
// the SVG plots inlined, so the page is a single file that opens anywhere).
#pragma once
#include <string>
#include <vector>

namespace lmlab {

class Report {
 public:
  explicit Report(std::string title);

  // level 1..6 (the title is the only level-1 heading by convention; sections use 2).
  void add_heading(int level, const std::string& text);
  // Markdown-ish text: blank lines separate paragraphs; a paragraph whose lines all start with
  // "- " is a bullet list; inline `code`, **bold**, *italic* and [text](url) are rendered in HTML.
  void add_paragraph(const std::string& text);
  // Every row must have headers.size() cells; columns whose cells are all numbers align right.
  void add_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
  // An SVG file (e.g. from plot_svg) with a caption. The file must exist now and its name must be
  // unique within the report: Markdown refers to it by file name, HTML inlines its content.
  void add_plot(const std::string& svg_path, const std::string& caption);
  void add_code(const std::string& text);
  // One fact of a key/value list; consecutive calls build one list (config, seed, git commit...).
  void add_kv(const std::string& key, const std::string& value);

  const std::string& title() const { return title_; }
  std::string markdown() const;
  // Reads the plot files; throws IoError naming a plot that has gone or FormatError for one
  // that is not SVG.
  std::string html() const;
  // Writes dir/report.md and dir/report.html atomically (creating dir); plots that live
  // elsewhere are copied into dir so the Markdown's relative references resolve.
  void write(const std::string& dir) const;

 private:
  enum class Kind { Heading, Paragraph, Table, Plot, Code, Facts };
  struct Block {
    explicit Block(Kind k) : kind(k) {}
    Kind kind;
    int level = 0;
    std::string text;     // heading, paragraph, code, plot path
    std::string caption;  // plot
    std::vector<std::string> headers;
    std::vector<std::vector<std::string>> rows;  // table rows; facts as {key, value}
  };
  std::string title_;
  std::vector<Block> blocks_;
};

// HTML text/attribute escaping (& < > " ').
std::string html_escape(const std::string& text);

}  // namespace lmlab
