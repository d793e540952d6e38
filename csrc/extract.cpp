// Final-answer extraction (docs/answers.md §1); mirrors extract_answer() and its helpers in
// seedgrpo/grading/reference.py. Linear in the length of the text whatever it holds.
#include <string.h>  // memrchr (glibc, musl)

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <string>
#include <string_view>

#include "answers.h"
#include "latex_tokens.h"

namespace seedgrpo {
namespace {

constexpr size_t npos = std::string_view::npos;

// Python's text.rfind(needle, 0, end): the last occurrence lying entirely inside text[0:end]. memrchr
// finds candidates for the first byte (std::string_view::rfind compares at every position, ~5x slower).
size_t rfind_before(std::string_view text, std::string_view needle, size_t end) {
  end = std::min(end, text.size());
  if (end < needle.size()) return npos;
  size_t limit = end - needle.size() + 1;  // candidates start before limit
  while (limit > 0) {
    const void* found = memrchr(text.data(), needle[0], limit);
    if (!found) return npos;
    const size_t p = static_cast<size_t>(static_cast<const char*>(found) - text.data());
    if (text.compare(p, needle.size(), needle) == 0) return p;
    limit = p;
  }
  return npos;
}

// Start p of the last pair text[p] == a, text[p + 1] == b lying before `end`, or npos. With `fold`, ASCII
// case is ignored: OR-ing a byte with 0x20 maps exactly the two cases of a letter to the lower one, and a
// and b must be lower-case letters. The keywords are found through such a rare pair ("bo" of \boxed and
// \fbox, "sw" of answer), 16 positions per step with SSE2; this scan is most of the cost of extraction.
size_t last_pair(std::string_view text, size_t end, char a, char b, bool fold) {
  size_t hi = std::min(end, text.size());  // candidates p satisfy p + 1 < hi
  if (hi < 2) return npos;
  --hi;  // now candidates are p < hi
  const char mask = fold ? 0x20 : 0;
#if defined(__SSE2__)
  const __m128i want_a = _mm_set1_epi8(a), want_b = _mm_set1_epi8(b), fold_bits = _mm_set1_epi8(mask);
  while (hi >= 16) {
    const size_t base = hi - 16;  // positions base..hi-1, reading bytes base..hi
    const char* at = text.data() + base;
    const __m128i first = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)), fold_bits);
    const __m128i second = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at + 1)), fold_bits);
    const __m128i both = _mm_and_si128(_mm_cmpeq_epi8(first, want_a), _mm_cmpeq_epi8(second, want_b));
    const int hits = _mm_movemask_epi8(both);  // bit k: a pair starts at base + k
    if (hits) return base + static_cast<size_t>(31 - __builtin_clz(static_cast<unsigned>(hits)));
    hi = base;
  }
#endif
  while (hi > 0) {
    --hi;
    if (static_cast<char>(text[hi] | mask) == a && static_cast<char>(text[hi + 1] | mask) == b) return hi;
  }
  return npos;
}

std::optional<std::string> last_boxed(std::string_view text) {
  const size_t n = text.size();
  size_t limit = n;  // '{' of the earliest later candidate that never closed: no earlier group closes past it
  // Candidates in decreasing position, as the reference's merged rfind("\\boxed") / rfind("\\fbox") give.
  for (size_t q = last_pair(text, n, 'b', 'o', false); q != npos;
       q = last_pair(text, q + 1, 'b', 'o', false)) {
    size_t j;
    if (q >= 1 && starts_at(text, q - 1, "\\boxed")) {
      j = q + 5;
    } else if (q >= 2 && starts_at(text, q - 2, "\\fbox")) {
      j = q + 3;
    } else {
      continue;
    }
    if (j < n && is_letter(text[j])) continue;  // \boxedsomething is another command
    while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
    std::string_view content;
    if (j < n && text[j] == '{') {
      const size_t end = group_end(text, j, limit);
      if (end == npos) {
        limit = j;
        continue;
      }
      content = strip_ws(text.substr(j + 1, end - j - 2));
    } else {
      size_t k = j;
      while (k < n && !is_ws(text[k]) && text[k] != '$') ++k;
      if (k > j && text[j] != '}') content = text.substr(j, k - j);
    }
    if (!content.empty()) return std::string(content);
  }
  return std::nullopt;
}

std::optional<std::string> answer_tag(std::string_view text) {
  const size_t end = rfind_before(text, "</answer>", text.size());
  if (end == npos) return std::nullopt;
  const size_t start = rfind_before(text, "<answer>", end);
  if (start == npos) return std::nullopt;
  const std::string_view content = strip_ws(text.substr(start + 8, end - start - 8));
  if (content.empty()) return std::nullopt;
  return std::string(content);
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool matches_lower(std::string_view text, size_t i, std::string_view lower) {
  if (i > text.size() || text.size() - i < lower.size()) return false;
  for (size_t k = 0; k < lower.size(); ++k) {
    if (ascii_lower(text[i + k]) != lower[k]) return false;
  }
  return true;
}

std::optional<std::string> phrase_content(std::string_view text, size_t j) {
  const size_t n = text.size();
  for (;;) {  // skip spaces and markdown bold; an empty rest of line means the answer is on the next one
    while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\f' ||
                     text[j] == '\v' || text[j] == '*')) {
      ++j;
    }
    if (j < n && text[j] == '\n') {
      ++j;
      continue;
    }
    break;
  }
  static constexpr std::string_view kMath[][2] = {{"$$", "$$"}, {"$", "$"}, {"\\(", "\\)"}, {"\\[", "\\]"}};
  for (const auto& delims : kMath) {
    if (starts_at(text, j, delims[0])) {
      const size_t from = j + delims[0].size();
      const size_t close = text.find(delims[1], from);
      const std::string_view content = strip_ws(text.substr(from, (close == npos ? n : close) - from));
      if (content.empty()) return std::nullopt;
      return std::string(content);
    }
  }
  const size_t eol = text.find('\n', j);
  std::string_view line = text.substr(j, (eol == npos ? n : eol) - j);
  for (size_t k = 0; k + 1 < line.size(); ++k) {  // a sentence ends at '.' followed by whitespace
    const char next = line[k + 1];
    if (line[k] == '.' && (next == ' ' || next == '\t' || next == '\r' || next == '\f' || next == '\v')) {
      line = line.substr(0, k);
      break;
    }
  }
  line = strip_ws(line);
  while (!line.empty() && line.back() == '*') line.remove_suffix(1);
  line = strip_ws(line);
  if (!line.empty() && line.back() == '.') line = rstrip_ws(line.substr(0, line.size() - 1));
  if (line.empty()) return std::nullopt;
  return std::string(line);
}

std::optional<std::string> answer_phrase(std::string_view text) {
  const size_t n = text.size();
  // Occurrences of "answer" in any case, last first (the reference's rfind loop), through their "sw".
  for (size_t q = last_pair(text, n, 's', 'w', true); q != npos; q = last_pair(text, q + 1, 's', 'w', true)) {
    if (q < 2 || !matches_lower(text, q - 2, "answer")) continue;
    const size_t p = q - 2;
    if (p > 0 && is_letter(text[p - 1])) continue;
    size_t j = skip_ws(text, p + 6);
    if (j < n && text[j] == ':') return phrase_content(text, j + 1);
    if (matches_lower(text, j, "is") && (j + 2 == n || !is_letter(text[j + 2]))) {
      j = skip_ws(text, j + 2);
      return phrase_content(text, (j < n && text[j] == ':') ? j + 1 : j);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> extract_answer(std::string_view text) {
  if (auto boxed = last_boxed(text)) return boxed;
  if (auto tagged = answer_tag(text)) return tagged;
  return answer_phrase(text);
}

}  // namespace seedgrpo
