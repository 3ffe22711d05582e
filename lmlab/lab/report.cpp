// Report rendering: CommonMark for report.md (https://spec.commonmark.org/), and one
// self-contained HTML page whose SVG plots are inlined with their ids namespaced per figure
// (gnuplot reuses ids such as "gnuplot_plot_1" in every file it writes).
#include "lmlab/lab/report.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/io/safetensors.h"

namespace lmlab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kCss = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.5; color: #1a1a1a;
       max-width: 920px; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3, h4 { line-height: 1.25; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
code { background: #f3f3f3; padding: .1em .3em; border-radius: 3px; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: #f6f8fa; font-weight: 600; }
figure { margin: 1.5rem 0; }
figure .plot svg { width: 100%; max-width: 720px; height: auto; display: block; }
figcaption { color: #555; font-size: .95em; margin-top: .3rem; }
)css";

std::string one_line(const std::string& s) {
  std::string out = s;
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

std::string trim_newlines(const std::string& s) {
  size_t a = s.find_first_not_of('\n');
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of("\n \t");
  return s.substr(a, b - a + 1);
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  const char* p = s.c_str();
  char* end = nullptr;
  std::strtod(p, &end);
  while (*end == ' ' || *end == '%') ++end;  // "12.5 %" still reads as a number column
  return end != p && *end == '\0';
}

std::vector<bool> numeric_columns(size_t n, const std::vector<std::vector<std::string>>& rows) {
  std::vector<bool> num(n, !rows.empty());
  for (const auto& r : rows)
    for (size_t c = 0; c < n; ++c) num[c] = num[c] && is_number(r[c]);
  return num;
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : one_line(s)) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

// Percent-encodes the characters that would end or break a Markdown link destination.
std::string md_link_target(const std::string& name) {
  std::string out;
  const char* hex = "0123456789ABCDEF";
  for (unsigned char c : name) {
    if (c <= 0x20 || c == '(' || c == ')' || c == '<' || c == '>' || c == '%') {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

// Links are only rendered for schemes that cannot run code when clicked.
bool safe_url(const std::string& url) {
  size_t colon = url.find(':');
  size_t slash = url.find_first_of("/?#");
  if (colon == std::string::npos || (slash != std::string::npos && slash < colon)) return true;  // relative
  std::string scheme = url.substr(0, colon);
  return scheme == "http" || scheme == "https" || scheme == "mailto";
}

// Inline Markdown subset -> HTML. Markers without a closing partner are kept as literal text.
std::string inline_html(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '`') {
      size_t e = s.find('`', i + 1);
      if (e != std::string::npos) {
        out += "<code>" + html_escape(s.substr(i + 1, e - i - 1)) + "</code>";
        i = e + 1;
        continue;
      }
    } else if (c == '*' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t e = s.find("**", i + 2);
      if (e != std::string::npos && e > i + 2) {
        out += "<strong>" + inline_html(s.substr(i + 2, e - i - 2)) + "</strong>";
        i = e + 2;
        continue;
      }
    } else if (c == '*' && i + 1 < s.size() && s[i + 1] != ' ') {
      size_t e = s.find('*', i + 1);
      if (e != std::string::npos && s[e - 1] != ' ') {
        out += "<em>" + inline_html(s.substr(i + 1, e - i - 1)) + "</em>";
        i = e + 1;
        continue;
      }
    } else if (c == '[') {
      size_t close = s.find("](", i + 1);
      size_t end = close == std::string::npos ? close : s.find(')', close + 2);
      if (end != std::string::npos) {
        std::string text = s.substr(i + 1, close - i - 1), url = s.substr(close + 2, end - close - 2);
        if (safe_url(url) && text.find('[') == std::string::npos) {
          out += "<a href=\"" + html_escape(url) + "\">" + inline_html(text) + "</a>";
          i = end + 1;
          continue;
        }
      }
    }
    out += html_escape(std::string(1, c));
    ++i;
  }
  return out;
}

bool is_bullet(const std::string& line) { return line.rfind("- ", 0) == 0 || line.rfind("* ", 0) == 0; }

std::string paragraph_html(const std::string& text) {
  std::vector<std::vector<std::string>> paras(1);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!paras.back().empty()) paras.emplace_back();
    } else {
      paras.back().push_back(line);
    }
  }
  std::string out;
  for (const auto& p : paras) {
    if (p.empty()) continue;
    if (std::all_of(p.begin(), p.end(), is_bullet)) {
      out += "<ul>\n";
      for (const auto& l : p) out += "<li>" + inline_html(l.substr(2)) + "</li>\n";
      out += "</ul>\n";
    } else {
      std::string joined;
      for (size_t k = 0; k < p.size(); ++k) joined += (k ? "\n" : "") + p[k];
      out += "<p>" + inline_html(joined) + "</p>\n";
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LMLAB_CHECK(f.good(), IoError, "[report] cannot read plot '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':';
}

// The <svg> element of an SVG file, ready to inline: the XML prolog and doctype dropped, and
// every id (and each "#id" reference to it) prefixed, so figures cannot capture each other's
// clip paths or markers.
std::string inline_svg(const std::string& path, const std::string& prefix) {
  std::string svg = read_file(path);
  size_t a = svg.find("<svg");
  size_t b = svg.rfind("</svg>");
  LMLAB_CHECK(a != std::string::npos && b != std::string::npos && b > a, FormatError, "[report] plot '", path,
              "' is not an SVG file (no <svg> element)");
  svg = svg.substr(a, b + 6 - a);

  std::set<std::string> ids;
  for (size_t p = svg.find("id="); p != std::string::npos; p = svg.find("id=", p + 3)) {
    if (p == 0 || !std::isspace(static_cast<unsigned char>(svg[p - 1])) || p + 3 >= svg.size()) continue;
    char q = svg[p + 3];
    if (q != '"' && q != '\'') continue;
    size_t e = svg.find(q, p + 4);
    if (e != std::string::npos) ids.insert(svg.substr(p + 4, e - p - 4));
  }
  if (ids.empty()) return svg;
  std::string out;
  out.reserve(svg.size() + ids.size() * 8);
  for (size_t i = 0; i < svg.size();) {
    bool def = i > 0 && svg.compare(i, 3, "id=") == 0 && std::isspace(static_cast<unsigned char>(svg[i - 1])) &&
               i + 3 < svg.size() && (svg[i + 3] == '"' || svg[i + 3] == '\'');
    if (def) {
      out += svg.substr(i, 4) + prefix;
      i += 4;
      continue;
    }
    if (svg[i] == '#') {
      size_t e = i + 1;
      while (e < svg.size() && id_char(svg[e])) ++e;
      if (e < svg.size() && (svg[e] == '"' || svg[e] == '\'' || svg[e] == ')') && ids.count(svg.substr(i + 1, e - i - 1))) {
        out += "#" + prefix;
        ++i;
        continue;
      }
    }
    out += svg[i++];
  }
  return out;
}

std::string code_fence(const std::string& text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return std::string(std::max<size_t>(3, longest + 1), '`');
}

bool same_dir(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  fs::path ca = fs::weakly_canonical(a.empty() ? fs::path(".") : a, ec);
  if (ec) return false;
  fs::path cb = fs::weakly_canonical(b.empty() ? fs::path(".") : b, ec);
  return !ec && ca == cb;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Report::Report(std::string title) : title_(std::move(title)) {}

void Report::add_heading(int level, const std::string& text) {
  LMLAB_CHECK(level >= 1 && level <= 6, ValueError, "[report] heading level must be 1..6, got ", level, " for '", text, "'");
  Block b(Kind::Heading);
  b.level = level;
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Report::add_paragraph(const std::string& text) {
  Block b(Kind::Paragraph);
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Report::add_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  LMLAB_CHECK(!headers.empty(), ValueError, "[report] add_table: a table needs at least one header");
  for (size_t r = 0; r < rows.size(); ++r)
    LMLAB_CHECK(rows[r].size() == headers.size(), ValueError, "[report] add_table: row ", r, " has ", rows[r].size(),
                " cells, expected ", headers.size(), " (one per header: ", headers.front(), ", ...)");
  Block b(Kind::Table);
  b.headers = headers;
  b.rows = rows;
  blocks_.push_back(std::move(b));
}

void Report::add_plot(const std::string& svg_path, const std::string& caption) {
  std::error_code ec;
  LMLAB_CHECK(fs::is_regular_file(svg_path, ec), IoError, "[report] add_plot: plot file '", svg_path, "' does not exist");
  std::string name = fs::path(svg_path).filename().string();
  for (const Block& b : blocks_)
    LMLAB_CHECK(b.kind != Kind::Plot || fs::path(b.text).filename().string() != name, ValueError,
                "[report] add_plot: two plots named '", name, "' ('", b.text, "' and '", svg_path,
                "'); the Markdown refers to plots by file name, so names must be unique");
  Block b(Kind::Plot);
  b.text = svg_path;
  b.caption = caption;
  blocks_.push_back(std::move(b));
}

void Report::add_code(const std::string& text) {
  Block b(Kind::Code);
  b.text = text;
  blocks_.push_back(std::move(b));
}

void Report::add_kv(const std::string& key, const std::string& value) {
  if (blocks_.empty() || blocks_.back().kind != Kind::Facts) blocks_.emplace_back(Kind::Facts);
  blocks_.back().rows.push_back({key, value});
}

std::string Report::markdown() const {
  std::ostringstream md;
  md << "# " << one_line(title_) << "\n\n";
  for (const Block& b : blocks_) {
    switch (b.kind) {
      case Kind::Heading:
        md << std::string(size_t(b.level), '#') << ' ' << one_line(b.text) << "\n\n";
        break;
      case Kind::Paragraph:
        md << trim_newlines(b.text) << "\n\n";
        break;
      case Kind::Table: {
        auto num = numeric_columns(b.headers.size(), b.rows);
        md << '|';
        for (const auto& h : b.headers) md << ' ' << md_cell(h) << " |";
        md << "\n|";
        for (size_t c = 0; c < b.headers.size(); ++c) md << (num[c] ? " ---: |" : " --- |");
        md << '\n';
        for (const auto& r : b.rows) {
          md << '|';
          for (const auto& cell : r) md << ' ' << md_cell(cell) << " |";
          md << '\n';
        }
        md << '\n';
        break;
      }
      case Kind::Plot: {
        std::string alt = one_line(b.caption);
        for (char& c : alt)
          if (c == '[' || c == ']') c = ' ';
        md << "![" << alt << "](" << md_link_target(fs::path(b.text).filename().string()) << ")\n\n";
        if (!b.caption.empty()) md << '*' << one_line(b.caption) << "*\n\n";
        break;
      }
      case Kind::Code: {
        std::string fence = code_fence(b.text);
        md << fence << '\n' << b.text << (b.text.empty() || b.text.back() != '\n' ? "\n" : "") << fence << "\n\n";
        break;
      }
      case Kind::Facts:
        for (const auto& kv : b.rows) md << "- **" << one_line(kv[0]) << "**: " << one_line(kv[1]) << '\n';
        md << '\n';
        break;
    }
  }
  std::string s = md.str();
  while (s.size() > 1 && s[s.size() - 1] == '\n' && s[s.size() - 2] == '\n') s.pop_back();
  return s;
}

std::string Report::html() const {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>" << html_escape(title_) << "</title>\n<style>" << kCss << "</style>\n</head>\n<body>\n<main>\n"
    << "<h1>" << html_escape(title_) << "</h1>\n";
  int figure = 0;
  for (const Block& b : blocks_) {
    switch (b.kind) {
      case Kind::Heading:
        h << "<h" << b.level << '>' << inline_html(b.text) << "</h" << b.level << ">\n";
        break;
      case Kind::Paragraph:
        h << paragraph_html(b.text);
        break;
      case Kind::Table: {
        auto num = numeric_columns(b.headers.size(), b.rows);
        h << "<table>\n<thead><tr>";
        for (const auto& x : b.headers) h << "<th>" << inline_html(x) << "</th>";
        h << "</tr></thead>\n<tbody>\n";
        for (const auto& r : b.rows) {
          h << "<tr>";
          for (size_t c = 0; c < r.size(); ++c) h << (num[c] ? "<td class=\"num\">" : "<td>") << inline_html(r[c]) << "</td>";
          h << "</tr>\n";
        }
        h << "</tbody>\n</table>\n";
        break;
      }
      case Kind::Plot:
        ++figure;
        h << "<figure>\n<div class=\"plot\">" << inline_svg(b.text, str_cat("fig", figure, "-")) << "</div>\n";
        if (!b.caption.empty()) h << "<figcaption>" << inline_html(b.caption) << "</figcaption>\n";
        h << "</figure>\n";
        break;
      case Kind::Code:
        h << "<pre><code>" << html_escape(b.text) << "</code></pre>\n";
        break;
      case Kind::Facts:
        h << "<table class=\"facts\">\n";
        for (const auto& kv : b.rows) h << "<tr><th>" << html_escape(kv[0]) << "</th><td>" << inline_html(kv[1]) << "</td></tr>\n";
        h << "</table>\n";
        break;
    }
  }
  h << "</main>\n</body>\n</html>\n";
  return h.str();
}

void Report::write(const std::string& dir) const {
  LMLAB_CHECK(!dir.empty(), ValueError, "[report] write: output folder is empty");
  std::error_code ec;
  fs::create_directories(dir, ec);
  LMLAB_CHECK(!ec, IoError, "[report] cannot create report folder '", dir, "': ", ec.message());
  // Render everything before writing anything: a missing plot must not leave a half-written report.
  std::string md = markdown(), page = html();
  for (const Block& b : blocks_) {
    if (b.kind != Kind::Plot || same_dir(fs::path(b.text).parent_path(), dir)) continue;
    write_file_atomic((fs::path(dir) / fs::path(b.text).filename()).string(), read_file(b.text));
  }
  write_file_atomic((fs::path(dir) / "report.md").string(), md);
  write_file_atomic((fs::path(dir) / "report.html").string(), page);
}

}  // namespace lmlab
