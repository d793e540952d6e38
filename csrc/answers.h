// The answer pipeline of seedgrpo._C: extraction, canonicalization and hashing of final answers.
// docs/answers.md is the spec and seedgrpo/grading/reference.py the readable reference; every function
// here mirrors the Python function of the same name, and tests/test_answers_equivalence.py checks that
// both give the same bytes. Inputs are arbitrary bytes (UTF-8 from Python, anything from the fuzzer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace seedgrpo {

// Limits that bound the work per item (same values as seedgrpo/grading/reference.py).
constexpr size_t kMaxAnswerBytes = 1024;  // longer answers are only whitespace-collapsed
constexpr int kMaxNesting = 32;           // deeper nesting is copied verbatim
constexpr size_t kMaxDigits = 100;        // longer digit runs are not numbers
constexpr int kMaxExponent = 300;         // larger |exponent| is not a number

// Option bits of canonicalize().
constexpr int kUnits = 1;    // strip trailing unit words and \text{ unit} groups
constexpr int kDegrees = 2;  // strip ^\circ, ^{\circ}, \degree
constexpr int kPercent = 4;  // strip % and \%
constexpr int kAllOptions = kUnits | kDegrees | kPercent;

// extract.cpp: last \boxed{}/\fbox{}, else <answer>...</answer>, else "answer:/answer is" forms.
std::optional<std::string> extract_answer(std::string_view text);

// canonicalize.cpp + structure.cpp: the canonical form of an extracted answer.
std::string canonicalize(std::string_view answer, int flags);

// hash.cpp: FNV-1a 64 of the bytes, and the answer hash (FNV-1a 64 with the top bit cleared).
uint64_t fnv1a64(std::string_view bytes);
int64_t canonical_hash(std::string_view canonical);

// extract + canonicalize; nullopt when there is no answer or the canonical form is empty.
std::optional<std::string> extract_and_canonicalize(std::string_view text, int flags);

}  // namespace seedgrpo
