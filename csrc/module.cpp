// pybind11 entry point of seedgrpo._C. The answer pipeline (extraction, canonicalization, hashing) lives
// in its own translation units; this file only binds them.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace py = pybind11;

namespace seedgrpo {

// FNV-1a 64-bit over raw bytes: fixed constants, so the value is the same on every platform and build.
uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace seedgrpo

PYBIND11_MODULE(_C, m) {
  m.doc() = "seedgrpo compiled core: answer extraction, canonicalization and hashing";
  m.def("fnv1a64", [](const py::bytes& b) { return seedgrpo::fnv1a64(std::string(b)); },
        "FNV-1a 64-bit hash of bytes (platform independent).");
}
