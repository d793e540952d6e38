// Canonicalization, text passes (docs/answers.md §2, steps 0-11); mirrors canonicalize()
// and the helpers above "structure" in seedgrpo/grading/reference.py. The structural step (lists,
// tuples, sets, numbers) is in structure.cpp.
#include <string>
#include <string_view>
#include <vector>

#include "answers.h"
#include "latex_tokens.h"
#include "rational.h"
#include "structure.h"

namespace seedgrpo {
namespace {

constexpr size_t npos = std::string_view::npos;

struct Replacement {
  std::string_view from, to;
};

// Applied first; every target is plain LaTeX. u8 literals: the bytes are UTF-8 whatever the source charset.
constexpr Replacement kUnicode[] = {
    {u8"\u2212", "-"},           {u8"\u00d7", "\\times "},  {u8"\u00b7", "\\cdot "},
    {u8"\u22c5", "\\cdot "},     {u8"\u00b0", "^\\circ "},  {u8"\u03c0", "\\pi "},
    {u8"\u221e", "\\infty "},    {u8"\u221a", "\\sqrt "},   {u8"\u2264", "\\leq "},
    {u8"\u2265", "\\geq "},      {u8"\u2260", "\\neq "},    {u8"\u2208", "\\in "},
    {u8"\u222a", "\\cup "},      {u8"\u2229", "\\cap "},    {u8"\u00a0", " "},
    {u8"\u2009", " "},           {u8"\u202f", " "},         {u8"\u2002", " "},
    {u8"\u2003", " "},
};

template <size_t N>
bool in_set(std::string_view word, const std::string_view (&set)[N]) {
  for (const auto& w : set) {
    if (w == word) return true;
  }
  return false;
}

// Layout-only control words, dropped.
constexpr std::string_view kDropWords[] = {
    "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
    "Biggl", "Biggr", "displaystyle", "textstyle", "scriptstyle"};
constexpr std::string_view kSpaceWords[] = {"quad", "qquad"};
constexpr Replacement kRename[] = {
    {"dfrac", "frac"}, {"tfrac", "frac"}, {"cfrac", "frac"}, {"dbinom", "binom"}, {"tbinom", "binom"},
    {"le", "leq"},     {"ge", "geq"},     {"leqslant", "leq"}, {"geqslant", "geq"}, {"ne", "neq"}};
// Commands replaced by their argument.
constexpr std::string_view kUnwrap[] = {
    "text",   "textbf", "textit", "textrm", "textup",     "textnormal", "mbox",
    "mathrm", "mathbf", "mathit", "mathsf", "boldsymbol", "bm",         "operatorname"};
constexpr std::string_view kUnitCommands[] = {"\\text", "\\mbox", "\\mathrm", "\\textrm"};
constexpr std::string_view kUnitWords[] = {
    "cent", "cents", "cm", "cubic", "day", "days", "deg", "degree", "degrees", "dollar", "dollars", "feet",
    "foot", "ft", "gram", "grams", "hour", "hours", "hr", "hrs", "inch", "inches", "kg", "km", "liter",
    "liters", "litre", "litres", "meter", "meters", "metre", "metres", "mg", "mile", "miles", "min",
    "mins", "minute", "minutes", "ml", "mm", "month", "months", "mph", "per", "percent", "radian",
    "radians", "sec", "second", "seconds", "secs", "sq", "square", "unit", "units", "ways", "week",
    "weeks", "yard", "yards", "year", "years"};
constexpr std::string_view kShortUnits[] = {"h", "s", "m", "g", "l", "k"};  // only after a slash: km/h, m/s
constexpr std::string_view kPowerSuffixes[] = {"^{2}", "^{3}", "^2", "^3"};

std::string collapse_ws(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (is_ws(s[i])) {
      i = skip_ws(s, i);
      out += ' ';
    } else {
      out += s[i++];
    }
  }
  return std::string(strip_ws(out));
}

std::string replace_unicode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    bool replaced = false;
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      for (const auto& rule : kUnicode) {
        if (starts_at(s, i, rule.from)) {
          out += rule.to;
          i += rule.from.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += s[i++];
  }
  return out;
}

std::string clean_tokens(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const char c = s[i];
    if (c == '$') {
      ++i;
      continue;
    }
    if (c == '~') {
      out += ' ';
      ++i;
      continue;
    }
    if (c != '\\') {
      out += c;
      ++i;
      continue;
    }
    size_t j = token_end(s, i);
    const std::string_view tok = s.substr(i, j - i);
    const std::string_view word = tok.substr(1);
    if (tok == "\\(" || tok == "\\)" || tok == "\\[" || tok == "\\]" || tok == "\\$") {
      // math delimiters and currency: dropped
    } else if (tok == "\\!") {  // negative thin space, as in 10,\!080: whatever follows is glued on
      j = skip_ws(s, j);
    } else if (tok == "\\," || tok == "\\;" || tok == "\\:" || (tok.size() == 2 && is_ws(tok[1])) ||
               in_set(word, kSpaceWords)) {
      out += ' ';
    } else if (tok == "\\%") {
      out += '%';
    } else if (in_set(word, kDropWords)) {
      if (word == "left" || word == "right") {  // \left. and \right. are invisible delimiters
        const size_t k = skip_ws(s, j);
        if (k < n && s[k] == '.') j = k + 1;
      }
    } else {
      bool renamed = false;
      for (const auto& rule : kRename) {
        if (word == rule.from) {
          out += '\\';
          out += rule.to;
          renamed = true;
          break;
        }
      }
      if (!renamed) out += tok;
    }
    i = j;
  }
  return out;
}

bool ends_like_number(std::string_view prefix) {
  return !prefix.empty() && (is_digit(prefix.back()) || prefix.back() == '}' || ends_with(prefix, "\\pi"));
}

std::string_view strip_power(std::string_view t) {
  for (const auto& suffix : kPowerSuffixes) {
    if (ends_with(t, suffix)) return t.substr(0, t.size() - suffix.size());
  }
  return t;
}

// In place: most answers end in a digit or a brace and return at the first test.
void strip_unit_text(std::string& s) {
  const std::string_view t = strip_power(rstrip_ws(s));
  if (t.empty() || t.back() != '}') return;
  // k walks back from the character before the closing brace over letters, spaces, '/' and '.'.
  size_t k = t.size() - 1;
  while (k > 0 && (is_letter(t[k - 1]) || t[k - 1] == ' ' || t[k - 1] == '/' || t[k - 1] == '.')) --k;
  if (k == 0 || t[k - 1] != '{') return;
  const size_t open = k - 1;
  const std::string_view content = t.substr(open + 1, t.size() - open - 2);
  size_t letters = 0;
  for (char c : content) letters += is_letter(c) ? 1 : 0;
  if (letters == 0 || (letters < 2 && (content.empty() || content[0] != ' '))) return;
  const std::string_view before = t.substr(0, open);
  for (const auto& command : kUnitCommands) {
    if (ends_with(before, command)) {
      const std::string_view prefix = rstrip_ws(before.substr(0, before.size() - command.size()));
      if (ends_like_number(prefix)) s = std::string(prefix);
      return;
    }
  }
}

std::string unwrap_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::vector<bool> drop(s.size() + 1, false);
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (drop[i]) {
      ++i;
      continue;
    }
    size_t j = token_end(s, i);
    if (s[i] == '\\' && in_set(s.substr(i + 1, j - i - 1), kUnwrap)) {
      const size_t k = skip_ws(s, j);
      if (k < n && s[k] == '{') {
        const size_t end = group_end(s, k);
        if (end != npos) {
          drop[end - 1] = true;
          j = k + 1;
        }
      }
    } else {
      out.append(s.substr(i, j - i));
    }
    i = j;
  }
  return out;
}

bool is_unit_word(std::string_view word, bool allow_short) {
  std::string lower(word);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return in_set(lower, kUnitWords) || (allow_short && in_set(lower, kShortUnits));
}

void strip_unit_words(std::string& s) {
  std::string_view t = rstrip_ws(s);
  bool stripped = false;
  for (int round = 0; round < 4; ++round) {
    const std::string_view u = strip_power(t);
    size_t k = u.size();
    while (k > 0 && (is_letter(u[k - 1]) || u[k - 1] == '/')) --k;
    if (k == u.size() || (k > 0 && u[k - 1] == '\\')) break;
    const std::string_view word = u.substr(k);
    std::vector<std::string_view> segments;
    size_t start = 0;
    for (size_t p = 0; p <= word.size(); ++p) {
      if (p == word.size() || word[p] == '/') {
        segments.push_back(word.substr(start, p - start));
        start = p + 1;
      }
    }
    bool ok = true;
    if (segments.size() == 1) {
      ok = is_unit_word(segments[0], false);
    } else {
      for (const auto& segment : segments) ok = ok && is_unit_word(segment, true);
    }
    if (!ok) break;
    t = rstrip_ws(u.substr(0, k));
    stripped = true;
  }
  if (stripped && ends_like_number(t)) s = std::string(t);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (starts_at(s, i, from)) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::string join_thousands(std::string_view input) {
  const std::string replaced = replace_all(input, "{,}", ",");
  const std::string_view s = replaced;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  int depth = 0;
  while (i < n) {
    const char c = s[i];
    if (c == '\\') {
      const size_t j = token_end(s, i);
      const std::string_view tok = s.substr(i, j - i);
      if (tok == "\\{") {
        ++depth;
      } else if (tok == "\\}") {
        depth = depth > 0 ? depth - 1 : 0;
      }
      out.append(tok);
      i = j;
      continue;
    }
    if (c == '(' || c == '[') {
      ++depth;
    } else if (c == ')' || c == ']') {
      depth = depth > 0 ? depth - 1 : 0;
    }
    if (!is_digit(c) || depth > 0 || (i > 0 && (is_digit(s[i - 1]) || s[i - 1] == '.'))) {
      out += c;
      ++i;
      continue;
    }
    // A chain of digit runs joined by one separator (all ',' or all ' ').
    std::vector<std::string_view> runs;
    size_t j = i, k = i;
    char sep = 0;
    for (;;) {
      k = j;
      while (k < n && is_digit(s[k])) ++k;
      runs.push_back(s.substr(j, k - j));
      const bool separator = k + 1 < n && (s[k] == ',' || s[k] == ' ') && is_digit(s[k + 1]);
      if (separator && (runs.size() == 1 || s[k] == sep)) {
        sep = s[k];
        j = k + 1;
      } else {
        break;
      }
    }
    bool thousands = runs.size() > 1 && runs[0].size() >= 1 && runs[0].size() <= 3;
    for (size_t r = 1; thousands && r < runs.size(); ++r) thousands = runs[r].size() == 3;
    if (thousands) {
      for (const auto& run : runs) out.append(run);
    } else {
      out.append(s.substr(i, k - i));
    }
    i = k;
  }
  return out;
}

std::string remove_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  bool last_word = false;
  char last_char = 0;
  while (i < n) {
    if (is_ws(s[i])) {
      const size_t j = skip_ws(s, i);
      if (!out.empty() && j < n) {
        const char next = s[j];
        if ((last_word && is_letter(next)) || (is_digit(last_char) && is_digit(next))) {
          out += ' ';
          last_word = false;
          last_char = ' ';
        }
      }
      i = j;
      continue;
    }
    const size_t j = token_end(s, i);
    out.append(s.substr(i, j - i));
    last_word = j - i > 1 && s[i] == '\\' && is_letter(s[i + 1]);
    last_char = s[j - 1];
    i = j;
  }
  return out;
}

std::string remove_degrees(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '^' && is_word_at(s, i + 1, "\\circ")) {
      i += 6;
    } else if (starts_at(s, i, "^{") && is_word_at(s, i + 2, "\\circ") && starts_at(s, i + 7, "}")) {
      i += 8;
    } else if (is_word_at(s, i, "\\degree")) {
      i += 7;
    } else {
      const size_t j = token_end(s, i);
      out.append(s.substr(i, j - i));
      i = j;
    }
  }
  return out;
}

void normalize_args(std::string_view s, size_t i, size_t end, int depth, std::string& out);

void braced(std::string_view s, size_t open, size_t close, int depth, std::string& out) {
  if (depth >= kMaxNesting) {
    out.append(s.substr(open, close - open));
    return;
  }
  out += '{';
  normalize_args(s, open + 1, close - 1, depth + 1, out);
  out += '}';
}

void normalize_args(std::string_view s, size_t i, size_t end, int depth, std::string& out) {
  while (i < end) {
    const size_t j = token_end(s, i);
    const std::string_view tok = s.substr(i, j - i);
    if (tok == "{") {
      const size_t close = group_end(s, i);
      if (close != npos && close <= end) {
        braced(s, i, close, depth, out);
        i = close;
        continue;
      }
    }
    out.append(tok);
    i = j;
    int nargs = 0;
    if (tok == "\\frac" || tok == "\\binom") {
      nargs = 2;
    } else if (tok == "\\sqrt" || tok == "^" || tok == "_") {
      nargs = 1;
    }
    if (tok == "\\sqrt" && i < end && s[i] == '[') {
      const size_t close = s.substr(0, end).find(']', i);
      if (close != npos && close > 0) {
        out += '[';
        if (depth < kMaxNesting) {
          normalize_args(s, i + 1, close, depth + 1, out);
        } else {
          out.append(s.substr(i + 1, close - i - 1));
        }
        out += ']';
        i = close + 1;
      }
    }
    for (int arg = 0; arg < nargs; ++arg) {
      if (i < end && s[i] == ' ') ++i;
      if (i >= end || s[i] == '}') break;
      if (s[i] == '{') {
        const size_t close = group_end(s, i);
        if (close == npos || close > end) break;
        braced(s, i, close, depth, out);
        i = close;
      } else {
        const size_t k = token_end(s, i);
        out += '{';
        out.append(s.substr(i, k - i));
        out += '}';
        i = k;
      }
    }
  }
}

// A set of bytes, built at compile time: has_any() is one table lookup per byte.
struct ByteSet {
  bool member[256] = {};
  constexpr explicit ByteSet(std::string_view bytes) {
    for (char c : bytes) member[static_cast<unsigned char>(c)] = true;
  }
};

bool has_any(std::string_view s, const ByteSet& set) {
  for (char c : s) {
    if (set.member[static_cast<unsigned char>(c)]) return true;
  }
  return false;
}

bool has_non_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// A sign and 1-18 digits: every pass before the number step leaves such text unchanged.
bool is_plain_integer(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

// Trigger bytes of each pass (see canonicalize()).
constexpr ByteSet kCleanTriggers("$~\\");
constexpr ByteSet kBackslash("\\");
constexpr ByteSet kPercentSign("%");
constexpr ByteSet kThousandsTriggers(", ");
constexpr ByteSet kWhitespace(" \t\n\r\f\v");
constexpr ByteSet kDegreeTriggers("^\\");
constexpr ByteSet kArgumentTriggers("\\^_{");

}  // namespace

// The steps of docs/answers.md §2 (numbers in the comments), as in the Python reference. Each pass is the
// identity on text without its trigger bytes; skipping it then saves a copy (the typical answer, `42` or
// `\frac{3}{4}`, needs few of the passes), and the output is unchanged.
std::string canonicalize(std::string_view answer, int flags) {
  if (answer.size() > kMaxAnswerBytes) return collapse_ws(answer);                          // 0
  if (is_plain_integer(answer)) return *canonical_number(answer, true);  // the commonest answer, e.g. `42`
  std::string s = has_non_ascii(answer) ? replace_unicode(answer) : std::string(answer);    // 1
  if (has_any(s, kCleanTriggers)) s = clean_tokens(s);                                      // 2
  if (flags & kUnits) strip_unit_text(s);                                                    // 3
  if (has_any(s, kBackslash)) s = unwrap_text(s);                                           // 4
  if (flags & kUnits) strip_unit_words(s);                                                   // 5
  if ((flags & kPercent) && has_any(s, kPercentSign)) s = replace_all(s, "%", "");         // 6
  if (has_any(s, kThousandsTriggers)) s = join_thousands(s);                                // 7
  if (has_any(s, kWhitespace)) s = remove_whitespace(s);                                    // 8
  if ((flags & kDegrees) && has_any(s, kDegreeTriggers)) s = remove_degrees(s);            // 9
  if (s.size() > 1 && s.back() == '.' && s[s.size() - 2] != '.' && s[s.size() - 2] != '\\') {  // 10
    s.pop_back();
  }
  if (has_any(s, kArgumentTriggers)) {                                                      // 11
    std::string normalized;
    normalized.reserve(s.size() + 8);
    normalize_args(s, 0, s.size(), 0, normalized);
    s = std::move(normalized);
  }
  return canon_list(s, 0);                                                                  // 12, 13
}

}  // namespace seedgrpo
