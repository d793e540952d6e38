// Structural canonicalization; mirrors _canon_list and the helpers under "structure" in
// seedgrpo/grading/reference.py. Recursion depth is bounded by kMaxNesting.
#include "structure.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "answers.h"
#include "latex_tokens.h"
#include "rational.h"

namespace seedgrpo {
namespace {

constexpr size_t npos = std::string_view::npos;

// (+1 opener / -1 closer / 0 other, token length) of the token at i; braces count as brackets.
std::pair<int, size_t> bracket_at(std::string_view s, size_t i) {
  const char c = s[i];
  if (c == '(' || c == '[' || c == '{') return {1, 1};
  if (c == ')' || c == ']' || c == '}') return {-1, 1};
  if (starts_at(s, i, "\\{")) return {1, 2};
  if (starts_at(s, i, "\\}")) return {-1, 2};
  return {0, token_end(s, i) - i};
}

// Split at `sep` outside every bracket / brace.
std::vector<std::string_view> split_top(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  size_t start = 0, i = 0;
  int depth = 0;
  while (i < s.size()) {
    auto [kind, length] = bracket_at(s, i);
    if (kind) {
      depth = kind > 0 ? depth + 1 : std::max(0, depth - 1);
    } else if (depth == 0 && starts_at(s, i, sep)) {
      parts.push_back(s.substr(start, i - start));
      start = i + sep.size();
      length = sep.size();
    }
    i += length;
  }
  parts.push_back(s.substr(start));
  return parts;
}

// s[i] opens a bracket: (index after the token that brings the depth back to 0, its length) or (npos, 0).
std::pair<size_t, size_t> matching_bracket(std::string_view s, size_t i) {
  int depth = 0;
  while (i < s.size()) {
    const auto [kind, length] = bracket_at(s, i);
    depth += kind;
    i += length;
    if (depth == 0) return {i, length};
  }
  return {npos, 0};
}

bool has_char(std::string_view s, char c) { return s.find(c) != npos; }

// Length of a leading `x=`, `x_{1}=`, `\theta=`, `f(x)=` or `x\in` (LHS and operator), or 0.
size_t lhs_end(std::string_view e) {
  const size_t n = e.size();
  size_t i = 0;
  if (n && is_letter(e[0])) {
    i = 1;
    if (i < n && e[i] == '(') {
      size_t k = i + 1;
      while (k < n && (is_letter(e[k]) || e[k] == ',')) ++k;
      if (k == i + 1 || k >= n || e[k] != ')') return 0;
      i = k + 1;
    }
  } else if (n > 1 && e[0] == '\\' && is_letter(e[1])) {
    i = token_end(e, 0);
    if (e.substr(1, i - 1) == "in") return 0;
  } else {
    return 0;
  }
  if (starts_at(e, i, "_{")) {
    const size_t close = e.find('}', i);
    if (close == npos || has_char(e.substr(i + 2, close - i - 2), '{')) return 0;
    i = close + 1;
  }
  if (starts_at(e, i, "=")) return has_char(e.substr(i + 1), '=') ? 0 : i + 1;
  if (is_word_at(e, i, "\\in")) return has_char(e.substr(i + 3), '=') ? 0 : i + 3;
  return 0;
}

std::string canon_element(std::string_view e, int depth, bool in_list);

std::string canon_bracketed(std::string_view e, size_t close_len, int depth) {
  const size_t open_len = e[0] == '\\' ? 2 : 1;
  std::string inner = canon_list(e.substr(open_len, e.size() - open_len - close_len), depth + 1);
  if (open_len == 2 && ends_with(e, "\\}") && close_len == 2) {  // a set: sorted, without duplicates
    std::vector<std::string_view> items = split_top(inner, ",");
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    std::string joined;
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) joined += ',';
      joined.append(items[k]);
    }
    inner = std::move(joined);
  }
  std::string out(e.substr(0, open_len));
  out += inner;
  out.append(e.substr(e.size() - close_len));
  return out;
}

std::string canon_groups_inside(std::string_view e, int depth) {
  std::string out;
  size_t i = 0;
  while (i < e.size()) {
    const auto [kind, length] = bracket_at(e, i);
    if (kind > 0) {
      const auto [close, close_len] = matching_bracket(e, i);
      if (close == npos) {
        out.append(e.substr(i));
        return out;
      }
      const std::string_view group = e.substr(i, close - i);
      if (e[i] == '{') {
        out.append(group);
      } else {
        out += canon_bracketed(group, close_len, depth);
      }
      i = close;
    } else {
      out.append(e.substr(i, length));
      i += length;
    }
  }
  return out;
}

std::optional<std::string> canon_matrix(std::string_view e, int depth) {
  static constexpr std::string_view kEnvironments[][2] = {{"\\begin{pmatrix}", "\\end{pmatrix}"},
                                                         {"\\begin{bmatrix}", "\\end{bmatrix}"}};
  for (const auto& [begin, end] : kEnvironments) {
    if (starts_at(e, 0, begin) && ends_with(e, end) && e.size() >= begin.size() + end.size()) {
      const std::string_view body = e.substr(begin.size(), e.size() - begin.size() - end.size());
      std::vector<std::string_view> rows = split_top(body, "\\\\");
      if (rows.size() > 1 && rows.back().empty()) rows.pop_back();
      std::string out = "\\begin{pmatrix}";
      for (size_t r = 0; r < rows.size(); ++r) {
        if (r) out += "\\\\";
        const std::vector<std::string_view> cells = split_top(rows[r], "&");
        for (size_t c = 0; c < cells.size(); ++c) {
          if (c) out += '&';
          out += canon_element(cells[c], depth + 1, true);
        }
      }
      return out + "\\end{pmatrix}";
    }
  }
  return std::nullopt;
}

std::string canon_element(std::string_view e, int depth, bool in_list) {
  if (e.size() > 1 && e[0] == '+') e.remove_prefix(1);
  if (e.size() == 3 && e[0] == '(' && e[2] == ')' && e[1] >= 'A' && e[1] <= 'Z') return std::string(1, e[1]);
  if (depth >= kMaxNesting) return std::string(e);
  if (auto matrix = canon_matrix(e, depth)) return *matrix;
  if (!e.empty() && bracket_at(e, 0).first > 0 && e[0] != '{') {
    const auto [close, close_len] = matching_bracket(e, 0);
    if (close == e.size()) return canon_bracketed(e, close_len, depth);
  }
  if (auto number = canonical_number(e, !in_list)) return *number;
  return canon_groups_inside(e, depth);
}

}  // namespace

std::string canon_list(std::string_view s, int depth) {
  std::vector<std::string_view> parts = split_top(s, ",");
  // `x=1,2` / `x=1,x=2` -> `1,2`; `x=1,y=2` keeps its names (dropping them would merge it with y=1,x=2).
  const size_t lhs = lhs_end(parts[0]);
  if (lhs) {
    const std::string_view name = parts[0].substr(0, lhs);
    bool same_name = true;
    for (size_t k = 1; k < parts.size(); ++k) {
      same_name = same_name && (starts_at(parts[k], 0, name) || lhs_end(parts[k]) == 0);
    }
    if (same_name) {
      for (auto& part : parts) {
        if (starts_at(part, 0, name)) part.remove_prefix(lhs);
      }
    }
  }
  const bool in_list = parts.size() > 1;
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out += ',';
    out += canon_element(parts[k], depth, in_list);
  }
  return out;
}

}  // namespace seedgrpo
