// Canonicalization, structural step (docs/answers.md, step 12): comma lists, tuples, intervals, sets,
// matrices, `x=` prefixes, multiple-choice letters and exact numbers.
#pragma once

#include <string>
#include <string_view>

namespace seedgrpo {

std::string canon_list(std::string_view s, int depth);

}  // namespace seedgrpo
