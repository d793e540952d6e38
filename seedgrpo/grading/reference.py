"""The readable Python reference of the answer pipeline: extraction, canonicalization, hashing.

docs/answers.md is the spec; this module implements it step by step, and csrc/ mirrors it function by
function in C++ (seedgrpo._C). Use the public API in seedgrpo.grading.answers (`backend="python"` selects this
module); tests/test_answers_equivalence.py asserts both implementations agree byte for byte.

Character classes are ASCII only (letters, digits, whitespace) and every rule matches ASCII text or one of
the few Unicode characters in _UNICODE, so working on code points here and on UTF-8 bytes in C++ gives the
same result. Work per item is bounded: answers over MAX_ANSWER_BYTES are only whitespace-collapsed,
nesting deeper than MAX_NESTING is copied verbatim, numbers have at most MAX_DIGITS digits per run and
|exponent| <= MAX_EXPONENT.
"""
from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["extract_answer", "canonicalize", "fnv1a64", "canonical_hash", "UNITS", "DEGREES", "PERCENT",
           "ALL_OPTIONS", "MAX_ANSWER_BYTES", "MAX_NESTING", "MAX_DIGITS", "MAX_EXPONENT"]

# Limits that bound the work per item; the C++ side (csrc/answers.h) uses the same values.
MAX_ANSWER_BYTES = 1024  # longer answers are not parsed: whitespace-collapsed, then hashed as they are
MAX_NESTING = 32  # deeper brace / bracket nesting is copied verbatim (no recursion without bound)
MAX_DIGITS = 100  # a longer digit run is not read as a number (keeps big-int work tiny)
MAX_EXPONENT = 300  # |e| above this in 1e…, \times10^{…}, 10^{…} is not read as a number

# Option bits shared with C++ (`flags` argument of the _C functions).
UNITS, DEGREES, PERCENT = 1, 2, 4
ALL_OPTIONS = UNITS | DEGREES | PERCENT

_WS = " \t\n\r\f\v"  # ASCII whitespace only: str.isspace() would differ from the C++ byte rules
_UNICODE = {  # applied first; every target is plain LaTeX
    "\u2212": "-", "\u00d7": "\\times ", "\u00b7": "\\cdot ", "\u22c5": "\\cdot ", "\u00b0": "^\\circ ",
    "\u03c0": "\\pi ", "\u221e": "\\infty ", "\u221a": "\\sqrt ", "\u2264": "\\leq ", "\u2265": "\\geq ",
    "\u2260": "\\neq ", "\u2208": "\\in ", "\u222a": "\\cup ", "\u2229": "\\cap ", "\u00a0": " ",
    "\u2009": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ",
}
_UNICODE_TABLE = str.maketrans(_UNICODE)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DROP_WORDS = {  # layout-only control words
    "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
    "Biggl", "Biggr", "displaystyle", "textstyle", "scriptstyle",
}
_SPACE_WORDS = {"quad", "qquad"}
_RENAME = {"dfrac": "frac", "tfrac": "frac", "cfrac": "frac", "dbinom": "binom", "tbinom": "binom",
           "le": "leq", "ge": "geq", "leqslant": "leq", "geqslant": "geq", "ne": "neq"}
_UNWRAP = {"text", "textbf", "textit", "textrm", "textup", "textnormal", "mbox", "mathrm", "mathbf",
           "mathit", "mathsf", "boldsymbol", "bm", "operatorname"}
_UNIT_COMMANDS = ("\\text", "\\mbox", "\\mathrm", "\\textrm")
_UNIT_WORDS = {
    "degree", "degrees", "deg", "radian", "radians", "cent", "cents", "dollar", "dollars", "unit", "units",
    "inch", "inches", "foot", "feet", "ft", "yard", "yards", "mile", "miles", "meter", "meters", "metre",
    "metres", "cm", "mm", "km", "kg", "mg", "gram", "grams", "liter", "liters", "litre", "litres", "ml",
    "hour", "hours", "hr", "hrs", "minute", "minutes", "min", "mins", "second", "seconds", "sec", "secs",
    "day", "days", "week", "weeks", "month", "months", "year", "years", "mph", "square", "sq", "cubic",
    "per", "ways", "percent",
}
_SHORT_UNITS = {"h", "s", "m", "g", "l", "k"}  # only after a slash, as in km/h or m/s
_POWER_SUFFIXES = ("^{2}", "^{3}", "^2", "^3")
_SENTENCE_END = re.compile(r"\.[ \t\r\f\v]")


# ----------------------------------------------------------------------------------------------- tokens
def _is_letter(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _token_end(s: str, i: int) -> int:
    """End of the token at i: a control word (backslash + letters), a control symbol (backslash + one
    character) or one character."""
    if s[i] != "\\":
        return i + 1
    j = i + 1
    if j < len(s) and _is_letter(s[j]):
        while j < len(s) and _is_letter(s[j]):
            j += 1
        return j
    return min(j + 1, len(s))


def _group_end(s: str, i: int, limit: int | None = None) -> int:
    """s[i] == '{': index after its matching '}' (scanning no further than `limit`), or -1 if it does not
    close (escaped braces do not count)."""
    depth, n = 0, len(s) if limit is None else min(limit, len(s))
    while i < n:
        c = s[i]
        if c == "\\":
            i = _token_end(s, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _collapse_ws(s: str) -> str:
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] in _WS:
            i = _skip_ws(s, i)
            out.append(" ")
        else:
            out.append(s[i])
            i += 1
    return "".join(out).strip(_WS)


# ------------------------------------------------------------------------------------------- extraction
def extract_answer(text: str) -> str | None:
    """The final answer of a completion: last \\boxed{}/\\fbox{}, else <answer>…</answer>, else the text
    after the last "answer:" / "answer is"; None if there is none."""
    answer = _last_boxed(text)
    if answer is None:
        answer = _answer_tag(text)
    if answer is None:
        answer = _answer_phrase(text)
    return answer


def _last_boxed(text: str) -> str | None:
    """Content of the last non-empty \\boxed{...} / \\fbox{...} (or `\\boxed 5`) with balanced braces.

    Candidates are tried from the last one backwards. A braced candidate that never closes also stops
    every earlier scan at its '{' (an earlier group cannot close past an unclosed later one), so the total
    work stays linear in len(text)."""
    n, limit = len(text), len(text)
    boxed, fbox = text.rfind("\\boxed"), text.rfind("\\fbox")
    while boxed >= 0 or fbox >= 0:
        if boxed > fbox:
            p, j = boxed, boxed + 6
            boxed = text.rfind("\\boxed", 0, p)
        else:
            p, j = fbox, fbox + 5
            fbox = text.rfind("\\fbox", 0, p)
        if j < n and _is_letter(text[j]):
            continue  # \boxedsomething is another command
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "{":
            end = _group_end(text, j, limit)
            if end < 0:
                limit = j
                continue
            content = text[j + 1:end - 1].strip(_WS)
        else:
            k = j
            while k < n and text[k] not in _WS and text[k] != "$":
                k += 1
            content = text[j:k] if k > j and text[j] != "}" else ""
        if content:
            return content
    return None


def _answer_tag(text: str) -> str | None:
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    if start < 0:
        return None
    return text[start + 8:end].strip(_WS) or None


def _answer_phrase(text: str) -> str | None:
    """Text after the last `answer:` / `answer is` (ASCII case-insensitive): "The final answer is $5$."."""
    low, n, pos = text.translate(_ASCII_LOWER), len(text), len(text)
    while True:
        p = low.rfind("answer", 0, pos)
        if p < 0:
            return None
        pos = p
        if p > 0 and _is_letter(low[p - 1]):
            continue
        j = _skip_ws(low, p + 6)
        if j < n and low[j] == ":":
            return _phrase_content(text, j + 1)
        if low.startswith("is", j) and (j + 2 == n or not _is_letter(low[j + 2])):
            j = _skip_ws(low, j + 2)
            return _phrase_content(text, j + 1 if j < n and low[j] == ":" else j)


def _phrase_content(text: str, j: int) -> str | None:
    n = len(text)
    while True:  # skip spaces and markdown bold; an empty rest of line means the answer is on the next one
        while j < n and (text[j] in " \t\r\f\v*"):
            j += 1
        if j < n and text[j] == "\n":
            j += 1
            continue
        break
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(open_, j):
            k = text.find(close, j + len(open_))
            content = text[j + len(open_):k if k >= 0 else n]
            return content.strip(_WS) or None
    eol = text.find("\n", j)
    line = text[j:eol if eol >= 0 else n]
    sentence_end = _SENTENCE_END.search(line)  # a sentence ends at '.' followed by whitespace
    if sentence_end:
        line = line[:sentence_end.start()]
    line = line.strip(_WS).rstrip("*").strip(_WS)
    if line.endswith("."):
        line = line[:-1].rstrip(_WS)
    return line or None


# ----------------------------------------------------------------------------------- canonicalization
def canonicalize(answer: str, flags: int = ALL_OPTIONS) -> str:
    """The canonical form of an extracted answer (docs/answers.md §2; the comments give the step numbers):
    equal answers written differently give the same string. `flags`: UNITS | DEGREES | PERCENT."""
    if len(answer.encode("utf-8", "surrogatepass")) > MAX_ANSWER_BYTES:  # 0
        return _collapse_ws(answer)
    s = answer.translate(_UNICODE_TABLE)  # 1
    s = _clean_tokens(s)  # 2
    if flags & UNITS:
        s = _strip_unit_text(s)  # 3
    s = _unwrap_text(s)  # 4
    if flags & UNITS:
        s = _strip_unit_words(s)  # 5
    if flags & PERCENT:
        s = s.replace("%", "")  # 6
    s = _join_thousands(s)  # 7
    s = _remove_whitespace(s)  # 8
    if flags & DEGREES:
        s = _remove_degrees(s)  # 9
    if len(s) > 1 and s[-1] == "." and s[-2] not in ".\\":  # 10
        s = s[:-1]
    s = _normalize_args(s, 0, len(s), 0)  # 11
    return _canon_list(s, 0)  # 12 and 13


def _clean_tokens(s: str) -> str:
    """Drop math delimiters, layout commands and currency signs; spacing commands become one space;
    rename synonyms (\\dfrac -> \\frac, \\le -> \\leq, ...)."""
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if c == "$":
            i += 1
        elif c == "~":
            out.append(" ")
            i += 1
        elif c != "\\":
            out.append(c)
            i += 1
        else:
            j = _token_end(s, i)
            tok = s[i:j]
            word = tok[1:]
            if tok in ("\\(", "\\)", "\\[", "\\]", "\\$"):
                pass
            elif tok == "\\!":  # negative thin space, as in 10,\!080: whatever follows is glued on
                j = _skip_ws(s, j)
            elif tok in ("\\,", "\\;", "\\:") or (len(tok) == 2 and tok[1] in _WS) or word in _SPACE_WORDS:
                out.append(" ")
            elif tok == "\\%":
                out.append("%")
            elif word in _DROP_WORDS:
                if word in ("left", "right"):  # \left. and \right. are invisible delimiters
                    k = _skip_ws(s, j)
                    if k < n and s[k] == ".":
                        j = k + 1
            elif word in _RENAME:
                out.append("\\" + _RENAME[word])
            else:
                out.append(tok)
            i = j
    return "".join(out)


def _ends_like_number(prefix: str) -> bool:
    return bool(prefix) and (_is_digit(prefix[-1]) or prefix[-1] == "}" or prefix.endswith("\\pi"))


def _strip_power(t: str) -> str:
    for suffix in _POWER_SUFFIXES:
        if t.endswith(suffix):
            return t[:-len(suffix)]
    return t


def _strip_unit_text(s: str) -> str:
    """`5.4\\text{ cents}`, `864\\mbox{ inches}^2`, `6.5\\mathrm{~m}` -> the number. The text group must be
    the last thing, hold only letters / spaces / '/' / '.', and follow something that ends like a number;
    a single letter counts only after a space (\\mathrm{~m} is metres, \\mathrm{i} is not)."""
    t = _strip_power(s.rstrip(_WS))
    if not t.endswith("}"):
        return s
    k = len(t) - 2
    while k >= 0 and (_is_letter(t[k]) or t[k] in " /."):
        k -= 1
    if k < 0 or t[k] != "{":
        return s
    content = t[k + 1:-1]
    letters = sum(_is_letter(c) for c in content)
    if letters == 0 or (letters < 2 and not content.startswith(" ")):
        return s
    for command in _UNIT_COMMANDS:
        if t.endswith(command, 0, k):
            prefix = t[:k - len(command)].rstrip(_WS)
            return prefix if _ends_like_number(prefix) else s
    return s


def _unwrap_text(s: str) -> str:
    """\\text{X}, \\mathrm{X}, \\textbf{X}, \\mbox{X}, ... -> X (nested ones too)."""
    out, i, n, drop = [], 0, len(s), set()
    while i < n:
        if i in drop:
            i += 1
            continue
        j = _token_end(s, i)
        if s[i] == "\\" and s[i + 1:j] in _UNWRAP:
            k = _skip_ws(s, j)
            if k < n and s[k] == "{":
                end = _group_end(s, k)
                if end > 0:
                    drop.add(end - 1)
                    j = k + 1
        else:
            out.append(s[i:j])
        i = j
    return "".join(out)


def _strip_unit_words(s: str) -> str:
    """`10 cm`, `60 miles per hour`, `5 square feet`, `120 km/h` -> the number (words from _UNIT_WORDS)."""
    t, stripped = s.rstrip(_WS), False
    for _ in range(4):
        u = _strip_power(t)
        k = len(u)
        while k > 0 and (_is_letter(u[k - 1]) or u[k - 1] == "/"):
            k -= 1
        segments = u[k:].translate(_ASCII_LOWER).split("/")
        if k == len(u) or (k > 0 and u[k - 1] == "\\"):
            break
        if len(segments) == 1:
            ok = segments[0] in _UNIT_WORDS
        else:
            ok = all(seg in _UNIT_WORDS or seg in _SHORT_UNITS for seg in segments)
        if not ok:
            break
        t, stripped = u[:k].rstrip(_WS), True
    return t if stripped and _ends_like_number(t) else s


def _join_thousands(s: str) -> str:
    """7,425,000 / 1 000 / 1{,}000 -> digits, outside brackets only: (1,000) stays a pair, and a chain
    whose groups are not 1-3 digits then exactly 3 digits (1,2 or 2500,7500) stays a list."""
    s = s.replace("{,}", ",")
    out, i, n, depth = [], 0, len(s), 0
    while i < n:
        c = s[i]
        if c == "\\":
            j = _token_end(s, i)
            tok = s[i:j]
            depth = depth + 1 if tok == "\\{" else max(0, depth - 1) if tok == "\\}" else depth
            out.append(tok)
            i = j
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        if not _is_digit(c) or depth > 0 or (i > 0 and (_is_digit(s[i - 1]) or s[i - 1] == ".")):
            out.append(c)
            i += 1
            continue
        runs, j, sep = [], i, ""  # sep: the separator of the first pair of runs, which the others must repeat
        while True:
            k = j
            while k < n and _is_digit(s[k]):
                k += 1
            runs.append(s[j:k])
            if k + 1 < n and s[k] in ", " and _is_digit(s[k + 1]) and (len(runs) == 1 or s[k] == sep):
                sep, j = s[k], k + 1
            else:
                break
        thousands = len(runs) > 1 and 1 <= len(runs[0]) <= 3 and all(len(r) == 3 for r in runs[1:])
        out.append("".join(runs) if thousands else s[i:k])
        i = k
    return "".join(out)


def _remove_whitespace(s: str) -> str:
    """Drop whitespace, except one space where it separates a control word from a letter (\\cot x) or
    two digits (1 2 is not 12)."""
    out, i, n, last_word, last_char = [], 0, len(s), False, ""
    while i < n:
        if s[i] in _WS:
            j = _skip_ws(s, i)
            if out and j < n:
                nxt = s[j]
                if (last_word and _is_letter(nxt)) or (_is_digit(last_char) and _is_digit(nxt)):
                    out.append(" ")
                    last_word, last_char = False, " "
            i = j
            continue
        j = _token_end(s, i)
        out.append(s[i:j])
        last_word = j - i > 1 and s[i] == "\\" and _is_letter(s[i + 1])
        last_char = s[j - 1]
        i = j
    return "".join(out)


def _is_word(s: str, i: int, word: str) -> bool:
    """The control word at i is exactly `word` (\\circ, not \\circle)."""
    return s.startswith(word, i) and _token_end(s, i) == i + len(word)


def _remove_degrees(s: str) -> str:
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] == "^" and _is_word(s, i + 1, "\\circ"):
            i += 6
        elif s.startswith("^{", i) and _is_word(s, i + 2, "\\circ") and s.startswith("}", i + 7):
            i += 8
        elif _is_word(s, i, "\\degree"):
            i += 7
        else:
            j = _token_end(s, i)
            out.append(s[i:j])
            i = j
    return "".join(out)


def _normalize_args(s: str, i: int, end: int, depth: int) -> str:
    """Brace every argument: \\frac12 -> \\frac{1}{2}, \\sqrt2 -> \\sqrt{2}, x^2 -> x^{2}, \\frac\\pi2 ->
    \\frac{\\pi}{2}; recurses into groups up to MAX_NESTING."""
    out = []
    while i < end:
        j = _token_end(s, i)
        tok = s[i:j]
        if tok == "{":
            close = _group_end(s, i)
            if 0 < close <= end:
                out.append(_braced(s, i, close, depth))
                i = close
                continue
        out.append(tok)
        i = j
        nargs = 2 if tok in ("\\frac", "\\binom") else 1 if tok in ("\\sqrt", "^", "_") else 0
        if tok == "\\sqrt" and i < end and s[i] == "[":
            close = s.find("]", i, end)
            if close > 0:
                inner = _normalize_args(s, i + 1, close, depth + 1) if depth < MAX_NESTING else s[i + 1:close]
                out.append("[" + inner + "]")
                i = close + 1
        for _ in range(nargs):
            if i < end and s[i] == " ":
                i += 1
            if i >= end or s[i] == "}":
                break
            if s[i] == "{":
                close = _group_end(s, i)
                if close < 0 or close > end:
                    break
                out.append(_braced(s, i, close, depth))
                i = close
            else:
                j = _token_end(s, i)
                out.append("{" + s[i:j] + "}")
                i = j
    return "".join(out)


def _braced(s: str, open_: int, close: int, depth: int) -> str:
    if depth >= MAX_NESTING:
        return s[open_:close]
    return "{" + _normalize_args(s, open_ + 1, close - 1, depth + 1) + "}"


# --------------------------------------------------------------------------- structure: lists, tuples
def _bracket_at(s: str, i: int) -> tuple[int, int]:
    """(+1 opener / -1 closer / 0 other, token length) of the token at i; braces count as brackets."""
    c = s[i]
    if c in "([{":
        return 1, 1
    if c in ")]}":
        return -1, 1
    if s.startswith("\\{", i):
        return 1, 2
    if s.startswith("\\}", i):
        return -1, 2
    return 0, _token_end(s, i) - i


def _split_top(s: str, sep: str) -> list[str]:
    """Split at `sep` outside every bracket / brace."""
    parts, start, depth, i, n = [], 0, 0, 0, len(s)
    while i < n:
        kind, length = _bracket_at(s, i)
        if kind:
            depth = depth + 1 if kind > 0 else max(0, depth - 1)
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start, length = i + len(sep), len(sep)
        i += length
    parts.append(s[start:])
    return parts


def _matching_bracket(s: str, i: int) -> tuple[int, int]:
    """s[i] opens a bracket: (index after the token that brings the depth back to 0, that token's length),
    or (-1, 0) if the depth never comes back."""
    depth, n = 0, len(s)
    while i < n:
        kind, length = _bracket_at(s, i)
        depth += kind
        i += length
        if depth == 0:
            return i, length
    return -1, 0


def _lhs_end(e: str) -> int:
    """Length of a leading `x=`, `x_{1}=`, `\\theta=`, `f(x)=` or `x\\in` (the LHS and the operator), or 0."""
    i, n = 0, len(e)
    if n and _is_letter(e[0]):
        i = 1
        if i < n and e[i] == "(":
            k = i + 1
            while k < n and (_is_letter(e[k]) or e[k] == ","):
                k += 1
            if k == i + 1 or k >= n or e[k] != ")":
                return 0
            i = k + 1
    elif e.startswith("\\") and n > 1 and _is_letter(e[1]):
        i = _token_end(e, 0)
        if e[1:i] == "in":
            return 0
    else:
        return 0
    if e.startswith("_{", i):
        close = e.find("}", i)
        if close < 0 or "{" in e[i + 2:close]:
            return 0
        i = close + 1
    if e.startswith("=", i):
        return i + 1 if "=" not in e[i + 1:] else 0
    if _is_word(e, i, "\\in"):
        return i + 3 if "=" not in e[i + 3:] else 0
    return 0


def _canon_list(s: str, depth: int) -> str:
    parts = _split_top(s, ",")
    # `x=1,2` / `x=1,x=2` -> `1,2`; `x=1,y=2` keeps its names (dropping them would merge it with y=1,x=2).
    lhs = _lhs_end(parts[0])
    if lhs and all(p.startswith(parts[0][:lhs]) or not _lhs_end(p) for p in parts[1:]):
        name = parts[0][:lhs]
        parts = [p[lhs:] if p.startswith(name) else p for p in parts]
    in_list = len(parts) > 1
    return ",".join(_canon_element(p, depth, in_list) for p in parts)


def _canon_element(e: str, depth: int, in_list: bool) -> str:
    if len(e) > 1 and e[0] == "+":
        e = e[1:]
    if len(e) == 3 and e[0] == "(" and e[2] == ")" and "A" <= e[1] <= "Z":
        return e[1]  # multiple-choice letter (B)
    if depth >= MAX_NESTING:
        return e
    matrix = _canon_matrix(e, depth)
    if matrix is not None:
        return matrix
    if e and _bracket_at(e, 0)[0] > 0 and e[0] != "{":
        close, close_len = _matching_bracket(e, 0)
        if close == len(e):
            return _canon_bracketed(e, close_len, depth)
    number = _parse_number(e, allow_leading_zero=not in_list)
    if number is not None:
        return _format_rational(number)
    return _canon_groups_inside(e, depth)


def _canon_bracketed(e: str, close_len: int, depth: int) -> str:
    """`(a,b)`, `[a,b)`, `\\{a,b\\}` (e is one bracket group): canonicalize the elements; a set's elements
    are sorted and duplicates dropped."""
    open_len = 2 if e[0] == "\\" else 1
    inner = _canon_list(e[open_len:len(e) - close_len], depth + 1)
    if open_len == 2 and e.endswith("\\}") and close_len == 2:
        inner = ",".join(sorted(set(_split_top(inner, ","))))
    return e[:open_len] + inner + e[len(e) - close_len:]


def _canon_groups_inside(e: str, depth: int) -> str:
    """Canonicalize the bracket groups inside an expression, e.g. `(0,9)\\cup(9,36)`; braces stay opaque."""
    out, i, n = [], 0, len(e)
    while i < n:
        kind, length = _bracket_at(e, i)
        if kind > 0:
            close, close_len = _matching_bracket(e, i)
            if close < 0:
                return "".join(out) + e[i:]
            group = e[i:close]
            out.append(group if e[i] == "{" else _canon_bracketed(group, close_len, depth))
            i = close
        else:
            out.append(e[i:i + length])
            i += length
    return "".join(out)


def _canon_matrix(e: str, depth: int) -> str | None:
    for env in ("pmatrix", "bmatrix"):
        begin, end = "\\begin{" + env + "}", "\\end{" + env + "}"
        if e.startswith(begin) and e.endswith(end) and len(e) >= len(begin) + len(end):
            rows = _split_top(e[len(begin):len(e) - len(end)], "\\\\")
            if len(rows) > 1 and rows[-1] == "":
                rows.pop()
            cells = ["&".join(_canon_element(c, depth + 1, True) for c in _split_top(r, "&")) for r in rows]
            return "\\begin{pmatrix}" + "\\\\".join(cells) + "\\end{pmatrix}"
    return None


# --------------------------------------------------------------------------------------------- numbers
def _parse_digits(s: str, i: int) -> int:
    while i < len(s) and _is_digit(s[i]):
        i += 1
    return i


def _parse_real(s: str, i: int, allow_leading_zero: bool) -> tuple[Fraction | None, int]:
    """Unsigned decimal with optional exponent at s[i:]: 12, 1.5, .5, 5., 1.5e3, 1.5\\times10^{3},
    1.5\\cdot10^{-3}, 10^{3}. Returns (value, end) or (None, i)."""
    if s.startswith("10^{", i):
        exp, k = _parse_exponent(s, i + 4)
        if exp is not None and s.startswith("}", k):
            return Fraction(10) ** exp, k + 1
    j = _parse_digits(s, i)
    int_digits = s[i:j]
    frac_digits = ""
    if j < len(s) and s[j] == ".":
        k = _parse_digits(s, j + 1)
        frac_digits, j = s[j + 1:k], k
    if not int_digits and not frac_digits:
        return None, i
    if len(int_digits) > MAX_DIGITS or len(frac_digits) > MAX_DIGITS:
        return None, i
    if not allow_leading_zero and len(int_digits) > 1 and int_digits[0] == "0":
        return None, i
    value = Fraction(int(int_digits + frac_digits or "0"), 10 ** len(frac_digits))
    exp, k = None, j
    if j < len(s) and s[j] in "eE":
        exp, k = _parse_exponent(s, j + 1)
    elif s.startswith("\\times10^{", j) or s.startswith("\\cdot10^{", j):
        exp, k = _parse_exponent(s, j + (10 if s[j + 1] == "t" else 9))
        if exp is not None and not s.startswith("}", k):
            exp = None
        k += 1
    if exp is None:
        return value, j
    return value * Fraction(10) ** exp, k


def _parse_exponent(s: str, i: int) -> tuple[int | None, int]:
    j = i + 1 if i < len(s) and s[i] in "+-" else i
    k = _parse_digits(s, j)
    if k == j or k - j > 4 or int(s[j:k]) > MAX_EXPONENT:
        return None, i
    return (-int(s[j:k]) if s[i] == "-" else int(s[j:k])), k


def _parse_signed_real(s: str, i: int, allow_leading_zero: bool) -> tuple[Fraction | None, int]:
    sign = -1 if s.startswith("-", i) else 1
    j = i + 1 if i < len(s) and s[i] in "+-" else i
    value, k = _parse_real(s, j, allow_leading_zero)
    return (None, i) if value is None else (sign * value, k)


def _parse_number(e: str, allow_leading_zero: bool) -> Fraction | None:
    """The exact value of e if the whole of e is a number: a real (see _parse_real), p/q, \\frac{p}{q}
    with real p, q, or a mixed number 1\\frac{4}{5} (proper fraction only); an optional leading sign."""
    sign = -1 if e.startswith("-") else 1
    i = 1 if e[:1] in ("-", "+") else 0
    if e.startswith("\\frac{", i):
        num, k = _parse_signed_real(e, i + 6, allow_leading_zero)
        if num is None or not e.startswith("}{", k):
            return None
        den, k = _parse_signed_real(e, k + 2, allow_leading_zero)
        if den is None or den == 0 or k != len(e) - 1 or e[k] != "}":
            return None
        return sign * num / den
    value, k = _parse_real(e, i, allow_leading_zero)
    if value is None:
        return None
    if k == len(e):
        return sign * value
    if e[k] == "/":
        den, m = _parse_real(e, k + 1, allow_leading_zero)
        if den is None or den == 0 or m != len(e):
            return None
        return sign * value / den
    if e.startswith("\\frac{", k) and _parse_digits(e, i) == k:  # mixed number: integer part, then p/q
        p_end = _parse_digits(e, k + 6)
        if p_end == k + 6 or not e.startswith("}{", p_end):
            return None
        q_end = _parse_digits(e, p_end + 2)
        if q_end == p_end + 2 or q_end != len(e) - 1 or e[q_end] != "}":
            return None
        p_digits, q_digits = e[k + 6:p_end], e[p_end + 2:q_end]
        if len(p_digits) > MAX_DIGITS or len(q_digits) > MAX_DIGITS:
            return None
        p, q = int(p_digits), int(q_digits)
        if q == 0 or p >= q:
            return None
        return sign * (value + Fraction(p, q))
    return None


def _format_rational(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


# --------------------------------------------------------------------------------------------- hashing
def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64-bit: fixed constants, so the value is the same on every platform and build."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def canonical_hash(canonical: str) -> int:
    """The answer hash: FNV-1a 64 of the canonical form's UTF-8 bytes with the top bit cleared (>= 0)."""
    return fnv1a64(canonical.encode("utf-8", "surrogatepass")) & 0x7FFFFFFFFFFFFFFF
