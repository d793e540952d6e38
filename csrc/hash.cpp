// Answer hashing and the threaded batch pipeline (extract -> canonicalize -> hash) behind
// seedgrpo.grading.canonical.answer_hashes / extract_and_canonicalize. The batch functions run without the GIL
// (module.cpp releases it) and split the items over std::thread workers.
#include "batch.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "answers.h"

namespace seedgrpo {

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis and prime: fixed, platform independent
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

int64_t canonical_hash(std::string_view canonical) {
  return static_cast<int64_t>(fnv1a64(canonical) & 0x7fffffffffffffffULL);
}

std::optional<std::string> extract_and_canonicalize(std::string_view text, int flags) {
  const std::optional<std::string> answer = extract_answer(text);
  if (!answer) return std::nullopt;
  std::string canonical = canonicalize(*answer, flags);
  if (canonical.empty()) return std::nullopt;
  return canonical;
}

int resolve_threads(int threads, size_t items) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // A thread costs tens of microseconds to start: give each at least kMinItemsPerThread items.
  const size_t useful = std::max<size_t>(1, items / kMinItemsPerThread);
  return static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), useful));
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn) {
  threads = resolve_threads(threads, n);
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Items differ a lot in length (a 1 MB text next to a 200-byte one): hand out small blocks on demand.
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&]() {
    try {
      for (;;) {
        const size_t begin = next.fetch_add(kBlockSize);
        if (begin >= n) return;
        const size_t end = std::min(n, begin + kBlockSize);
        for (size_t i = begin; i < end; ++i) fn(i);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

void answer_hashes(const std::vector<std::string_view>& texts, int flags, int threads, int64_t* out) {
  parallel_for(texts.size(), threads, [&](size_t i) {
    const std::optional<std::string> canonical = extract_and_canonicalize(texts[i], flags);
    out[i] = canonical ? canonical_hash(*canonical) : -1 - static_cast<int64_t>(i);
  });
}

std::vector<std::optional<std::string>> extract_and_canonicalize(const std::vector<std::string_view>& texts,
                                                                 int flags, int threads) {
  std::vector<std::optional<std::string>> out(texts.size());
  parallel_for(texts.size(), threads, [&](size_t i) { out[i] = extract_and_canonicalize(texts[i], flags); });
  return out;
}

}  // namespace seedgrpo
