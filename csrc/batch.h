// Threaded batch versions of the answer pipeline (hash.cpp). Callers must not hold the GIL-protected
// Python objects only through the views: module.cpp keeps them alive for the duration of the call.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrpo {

constexpr size_t kMinItemsPerThread = 64;  // below this a batch is not worth another thread
constexpr size_t kBlockSize = 16;          // items a worker takes at a time

// threads <= 0 means one per hardware thread; never more than items / kMinItemsPerThread.
int resolve_threads(int threads, size_t items);
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

// out[i] = canonical_hash(canonical answer of texts[i]), or -1 - i when texts[i] has no answer.
void answer_hashes(const std::vector<std::string_view>& texts, int flags, int threads, int64_t* out);
std::vector<std::optional<std::string>> extract_and_canonicalize(const std::vector<std::string_view>& texts,
                                                                 int flags, int threads);

}  // namespace seedgrpo
