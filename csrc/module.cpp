// pybind11 bindings of seedgrpo._C. The answer pipeline lives in extract.cpp, canonicalize.cpp,
// structure.cpp, rational.cpp and hash.cpp, the rollout sampler's noise in sampling.cpp; this file converts
// between Python objects and byte views.
//
// Converting a list of str is the cost that matters at batch level, so it copies nothing: the sequence
// is turned into a tuple (which keeps every item alive while the GIL is released) and each str lends
// its cached UTF-8 buffer (for ASCII str that buffer is the object's own data). A str holding lone
// surrogates has no UTF-8 form and is encoded with "surrogatepass" instead, the same bytes the Python
// reference hashes.
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>
#include <vector>

#include "answers.h"
#include "batch.h"
#include "sampling.h"

namespace py = pybind11;

namespace {

struct TextViews {
  py::object owner;                      // the tuple of items
  std::vector<py::object> encoded;       // surrogatepass bytes for str without a UTF-8 form
  std::vector<std::string_view> views;   // one per item
};

std::string_view utf8_view(PyObject* item, std::vector<py::object>& encoded) {
  Py_ssize_t size = 0;
  if (const char* data = PyUnicode_AsUTF8AndSize(item, &size)) return {data, static_cast<size_t>(size)};
  PyErr_Clear();
  PyObject* bytes = PyUnicode_AsEncodedString(item, "utf-8", "surrogatepass");
  if (!bytes) throw py::error_already_set();
  encoded.push_back(py::reinterpret_steal<py::object>(bytes));
  return {PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes))};
}

TextViews collect_texts(const py::handle& texts) {
  if (PyUnicode_Check(texts.ptr()) || PyBytes_Check(texts.ptr())) {
    throw py::value_error("texts must be a list of str, got a single " +
                          std::string(Py_TYPE(texts.ptr())->tp_name) + ": wrap it in a list");
  }
  TextViews out;
  PyObject* tuple = PySequence_Tuple(texts.ptr());
  if (!tuple) throw py::error_already_set();
  out.owner = py::reinterpret_steal<py::object>(tuple);
  const Py_ssize_t n = PyTuple_GET_SIZE(tuple);
  out.views.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PyTuple_GET_ITEM(tuple, i);
    if (PyUnicode_Check(item)) {
      out.views.push_back(utf8_view(item, out.encoded));
    } else if (PyBytes_Check(item)) {
      out.views.emplace_back(PyBytes_AS_STRING(item), static_cast<size_t>(PyBytes_GET_SIZE(item)));
    } else {
      throw py::value_error("texts[" + std::to_string(i) + "] must be str, got " +
                            std::string(Py_TYPE(item)->tp_name) + ": pass completions as a list of str");
    }
  }
  return out;
}

// Decode canonical bytes back to str: surrogatepass reverses the encoding above; bytes that were never
// UTF-8 (only possible for bytes input) come back with backslash escapes.
py::object to_str(const std::string& bytes) {
  PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "surrogatepass");
  if (!s) {
    PyErr_Clear();
    s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "backslashreplace");
    if (!s) throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(s);
}

std::string_view one_view(const py::handle& text, std::vector<py::object>& encoded, const char* name) {
  if (PyUnicode_Check(text.ptr())) return utf8_view(text.ptr(), encoded);
  throw py::value_error(std::string(name) + " must be str, got " + Py_TYPE(text.ptr())->tp_name);
}

void check_flags(int flags) {
  if (flags < 0 || flags > seedgrpo::kAllOptions) {
    throw py::value_error("flags must be in [0, " + std::to_string(seedgrpo::kAllOptions) + "], got " +
                          std::to_string(flags));
  }
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "seedgrpo compiled core: final-answer extraction, canonicalization and hashing; the sampler's noise";
  m.attr("MAX_ANSWER_BYTES") = seedgrpo::kMaxAnswerBytes;
  m.attr("MAX_NESTING") = seedgrpo::kMaxNesting;
  m.attr("MAX_DIGITS") = seedgrpo::kMaxDigits;
  m.attr("MAX_EXPONENT") = seedgrpo::kMaxExponent;

  m.def("fnv1a64", [](const py::bytes& b) { return seedgrpo::fnv1a64(std::string_view(b)); },
        "FNV-1a 64-bit hash of bytes (platform independent).");

  m.def("extract_answer",
        [](const py::handle& text) -> py::object {
          std::vector<py::object> encoded;
          const auto answer = seedgrpo::extract_answer(one_view(text, encoded, "text"));
          return answer ? to_str(*answer) : py::none();
        },
        py::arg("text"), "Final answer of one completion, or None.");

  m.def("canonicalize",
        [](const py::handle& answer, int flags) {
          check_flags(flags);
          std::vector<py::object> encoded;
          return to_str(seedgrpo::canonicalize(one_view(answer, encoded, "answer"), flags));
        },
        py::arg("answer"), py::arg("flags") = seedgrpo::kAllOptions,
        "Canonical form of one extracted answer.");

  // Raw-bytes entry points for the fuzzer and AddressSanitizer runs (any bytes, not only UTF-8).
  m.def("extract_answer_bytes",
        [](const py::bytes& text) -> py::object {
          const auto answer = seedgrpo::extract_answer(std::string_view(text));
          return answer ? py::object(py::bytes(*answer)) : py::none();
        },
        py::arg("text"));
  m.def("canonicalize_bytes",
        [](const py::bytes& answer, int flags) {
          check_flags(flags);
          return py::bytes(seedgrpo::canonicalize(std::string_view(answer), flags));
        },
        py::arg("answer"), py::arg("flags"));

  m.def("answer_hashes",
        [](const py::handle& texts, py::buffer out, int threads, int flags) {
          check_flags(flags);
          const TextViews input = collect_texts(texts);
          const py::buffer_info info = out.request(/*writable=*/true);
          const auto n = static_cast<py::ssize_t>(input.views.size());
          if (info.ndim != 1 || info.itemsize != 8 || info.shape[0] != n || info.strides[0] != 8 ||
              (info.format != "l" && info.format != "q")) {
            throw py::value_error("out must be a contiguous int64 buffer of len(texts) = " +
                                  std::to_string(input.views.size()) + " items");
          }
          auto* data = static_cast<int64_t*>(info.ptr);
          py::gil_scoped_release release;
          seedgrpo::answer_hashes(input.views, flags, threads, data);
        },
        py::arg("texts"), py::arg("out"), py::arg("threads"), py::arg("flags"),
        "Writes the answer hash of every text into out (int64); -1 - i when text i has no answer.");

  m.def("extract_and_canonicalize",
        [](const py::handle& texts, int threads, int flags) {
          check_flags(flags);
          const TextViews input = collect_texts(texts);
          std::vector<std::optional<std::string>> canonical;
          {
            py::gil_scoped_release release;
            canonical = seedgrpo::extract_and_canonicalize(input.views, flags, threads);
          }
          py::list result(canonical.size());
          for (size_t i = 0; i < canonical.size(); ++i) {
            result[i] = canonical[i] ? to_str(*canonical[i]) : py::none();
          }
          return result;
        },
        py::arg("texts"), py::arg("threads"), py::arg("flags"),
        "Canonical answer of every text (None where there is none).");

  m.def("sampling_uniforms",
        [](py::buffer row_hashes, py::buffer out, int threads) {
          const py::buffer_info keys = row_hashes.request();
          const py::buffer_info info = out.request(/*writable=*/true);
          if (keys.ndim != 1 || keys.itemsize != 8 || keys.strides[0] != 8 ||
              (keys.format != "l" && keys.format != "q")) {
            throw py::value_error("row_hashes must be a contiguous 1-D int64 buffer");
          }
          const auto rows = keys.shape[0];
          if (info.ndim != 2 || info.format != "d" || info.shape[0] != rows ||
              info.strides[1] != 8 || info.strides[0] != 8 * info.shape[1]) {
            throw py::value_error("out must be a contiguous float64 buffer [len(row_hashes), vocab]");
          }
          const auto* hashes = static_cast<const uint64_t*>(keys.ptr);
          auto* data = static_cast<double*>(info.ptr);
          py::gil_scoped_release release;
          seedgrpo::sampling_uniforms(hashes, static_cast<size_t>(rows), static_cast<size_t>(info.shape[1]),
                                      threads, data);
        },
        py::arg("row_hashes"), py::arg("out"), py::arg("threads"),
        "Writes the rollout sampler's uniform of every (row, token) into out [rows, vocab] (float64).");

  m.def("resolve_threads", &seedgrpo::resolve_threads, py::arg("threads"), py::arg("items"),
        "Worker threads a batch of `items` would use.");
}
