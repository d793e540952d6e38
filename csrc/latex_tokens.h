// Byte-level LaTeX tokens shared by extraction and canonicalization.
//
// A token is a control word (backslash + ASCII letters), a control symbol (backslash + one character) or
// one character, where a character is one UTF-8 sequence: for text that came from a Python str this is
// exactly one code point, so token boundaries agree with the Python reference. Stray bytes count as one
// character each; every helper stays inside the view whatever the bytes are.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace seedgrpo {

inline bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline size_t char_end(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  size_t len = 1;
  if (lead >= 0xF0 && lead < 0xF8) {
    len = 4;
  } else if (lead >= 0xE0 && lead < 0xF0) {
    len = 3;
  } else if (lead >= 0xC0 && lead < 0xE0) {
    len = 2;
  }
  return std::min(s.size(), i + len);
}

inline size_t token_end(std::string_view s, size_t i) {
  if (s[i] != '\\') return char_end(s, i);
  size_t j = i + 1;
  if (j < s.size() && is_letter(s[j])) {
    while (j < s.size() && is_letter(s[j])) ++j;
    return j;
  }
  return j < s.size() ? char_end(s, j) : j;
}

// s[i] == '{': index after its matching '}' scanning no further than `limit`, or npos.
inline size_t group_end(std::string_view s, size_t i, size_t limit = std::string_view::npos) {
  limit = std::min(limit, s.size());
  int depth = 0;
  while (i < limit) {
    const char c = s[i];
    if (c == '\\') {
      i = token_end(s, i);
      continue;
    }
    if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) return i + 1;
    }
    ++i;
  }
  return std::string_view::npos;
}

inline size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

inline bool starts_at(std::string_view s, size_t i, std::string_view prefix) {
  return i <= s.size() && s.substr(i, prefix.size()) == prefix;
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

inline std::string_view rstrip_ws(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string_view strip_ws(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  return rstrip_ws(s);
}

// The control word at i is exactly `word` (\circ, not \circle).
inline bool is_word_at(std::string_view s, size_t i, std::string_view word) {
  return starts_at(s, i, word) && token_end(s, i) == i + word.size();
}

}  // namespace seedgrpo
