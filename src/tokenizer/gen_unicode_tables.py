#!/usr/bin/env python3
"""Writes src/tokenizer/unicode_tables.cc: the Unicode data the BERT normalizer and pre-tokenizer
need, matched to what Hugging Face tokenizers itself uses (not to the newest Unicode):

  - categories Cc/Cf/Co, Mn and P*: tokenizers calls the `unicode_categories` crate 0.1.1, whose
    tables are Unicode 8.0. We take today's categories for code points present in 8.0, and the
    categories 8.0 gave the six characters that changed category since (OVERRIDES_8_0).
  - NFD for strip_accents: the `unicode-normalization-alignments` crate, Unicode 9.0, so only
    code points present in 9.0 decompose. The table stores each decomposition with the Mn marks
    already dropped, since strip_accents is the only user of NFD.
  - lowercase: Rust's char::to_lowercase (full mapping, no context), Unicode 17.0 in the Rust
    that builds tokenizers 0.23. Python's str.lower() on a single character is the same mapping
    but Unicode 14.0 on Debian 12; the case pairs 16.0 and 17.0 added are in LOWERCASE_AFTER_14.

Needs python3 (unicodedata) and perl (Unicode::UCD, for the Present_In property). Run from the
repository root:  python3 src/tokenizer/gen_unicode_tables.py > src/tokenizer/unicode_tables.cc
"""
import bisect
import subprocess
import sys
import unicodedata

# Category changes since Unicode 8.0 among characters that existed then (UnicodeData-8.0.0.txt).
OVERRIDES_8_0 = {0x1734: "Mn", 0x1885: "Lo", 0x1886: "Lo", 0xA9BD: "Mc", 0x111C9: "Po", 0x166D: "Po"}
# Lowercase mappings Unicode 16.0 and 17.0 added (UnicodeData.txt field 13), as (first, last,
# delta): Cyrillic TJE, Latin additions, Garay, Beria Erfe. Unicode 15.x added none.
LOWERCASE_AFTER_14 = [(0x1C89, 0x1C89, 1), (0xA7CB, 0xA7CB, 0x264 - 0xA7CB), (0xA7CC, 0xA7CC, 1),
                      (0xA7CE, 0xA7CE, 1), (0xA7D2, 0xA7D2, 1), (0xA7D4, 0xA7D4, 1), (0xA7DA, 0xA7DA, 1),
                      (0xA7DC, 0xA7DC, 0x19B - 0xA7DC), (0x10D50, 0x10D65, 0x20), (0x16EA0, 0x16EB8, 0x1B)]
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # decomposed algorithmically at run time
MAX_CODE_POINT = 0x10FFFF


def present_in(version):
    out = subprocess.run(["perl", "-MUnicode::UCD=prop_invlist", "-e",
                          f'print join(",", prop_invlist("Present_In={version}"))'],
                         check=True, capture_output=True, text=True).stdout
    bounds = [int(x) for x in out.split(",")]
    return lambda cp: bisect.bisect_right(bounds, cp) % 2 == 1


def code_points():
    return (cp for cp in range(MAX_CODE_POINT + 1) if not 0xD800 <= cp <= 0xDFFF)


def main():
    in_8_0 = present_in("8.0")
    in_9_0 = present_in("9.0")

    def category_8_0(cp):
        if cp in OVERRIDES_8_0:
            return OVERRIDES_8_0[cp]
        return unicodedata.category(chr(cp)) if in_8_0(cp) else "Cn"

    def ranges(pred):
        out = []
        for cp in code_points():
            if not pred(cp):
                continue
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
        return out

    def nfd(cp):
        decomposition = unicodedata.decomposition(chr(cp))
        if not decomposition or decomposition.startswith("<"):
            return [cp]
        return [x for part in decomposition.split() for x in nfd(int(part, 16))]

    other = ranges(lambda cp: category_8_0(cp) in ("Cc", "Cf", "Co"))
    marks = ranges(lambda cp: category_8_0(cp) == "Mn")
    punctuation = ranges(lambda cp: category_8_0(cp).startswith("P"))

    single, multi = [], []
    for cp in code_points():
        if HANGUL_FIRST <= cp <= HANGUL_LAST or not in_9_0(cp):
            continue
        full = nfd(cp)
        if full == [cp]:
            continue
        kept = [x for x in full if category_8_0(x) != "Mn"]
        assert len(kept) <= 3, hex(cp)
        (single if len(kept) == 1 else multi).append((cp, kept))

    # Lowercase as (first, last, delta, stride) runs: stride 2 covers the alternating upper/lower
    # blocks (Latin Extended-A and the like), stride 1 the shifted ones (A-Z, Greek, Cyrillic).
    added_later = {cp: chr(cp + delta) for first, last, delta in LOWERCASE_AFTER_14
                   for cp in range(first, last + 1)}
    case_runs = []
    for cp in code_points():
        lower = added_later.get(cp) or chr(cp).lower()
        if lower == chr(cp) or len(lower) != 1:
            continue  # the one multi-character lowercase (U+0130) is handled in code
        delta = ord(lower) - cp
        if case_runs:
            first, last, run_delta, stride = case_runs[-1]
            step = cp - last
            if run_delta == delta and step in (1, 2) and (stride in (0, step)):
                case_runs[-1] = [first, cp, delta, step]
                continue
        case_runs.append([cp, cp, delta, 0])
    for run in case_runs:
        run[3] = run[3] or 1

    emit(other, marks, punctuation, single, multi, case_runs)


def rows(items):
    # Greedy packing within the 110-column limit: the tables are data, read by the compiler.
    lines = []
    for item in items:
        if lines and len(lines[-1]) + 1 + len(item) <= 110:
            lines[-1] += " " + item
        else:
            lines.append("    " + item)
    return "\n".join(lines)


def emit(other, marks, punctuation, single, multi, case_runs):
    def hexs(x):
        return f"0x{x:X}"

    def code_ranges(name, values):
        items = [f"{{{hexs(a)},{hexs(b)}}}," for a, b in values]
        return (f"std::span<const CodeRange> {name}() {{\n  static constexpr CodeRange kTable[] = {{\n"
                f"{rows(items)}\n  }};\n  return kTable;\n}}\n")

    def padded(kept):
        return "{" + ",".join(hexs(x) for x in kept + [0] * (3 - len(kept))) + "}"

    print(f"""// Generated by src/tokenizer/gen_unicode_tables.py (Python unicodedata {unicodedata.unidata_version},
// Perl Unicode::UCD); do not edit by hand. unicode_tables.h says what each table holds and why
// its Unicode version is the one Hugging Face tokenizers uses.
// clang-format off
#include "tokenizer/unicode_tables.h"

namespace brisk::unicode_tables {{
""")
    print(code_ranges("other_ranges", other))
    print(code_ranges("nonspacing_mark_ranges", marks))
    print(code_ranges("punctuation_ranges", punctuation))
    items = [f"{{{hexs(a)},{hexs(kept[0])}}}," for a, kept in single]
    print("std::span<const SingleMapping> stripped_singles() {\n  static constexpr SingleMapping kTable[] = {\n"
          f"{rows(items)}\n  }};\n  return kTable;\n}}\n")
    items = [f"{{{hexs(a)},{padded(kept)}}}," for a, kept in multi]
    print("std::span<const MultiMapping> stripped_multiples() {\n  static constexpr MultiMapping kTable[] = {\n"
          f"{rows(items)}\n  }};\n  return kTable;\n}}\n")
    items = [f"{{{hexs(a)},{hexs(b)},{d},{s}}}," for a, b, d, s in case_runs]
    print("std::span<const CaseRange> lowercase_ranges() {\n  static constexpr CaseRange kTable[] = {\n"
          f"{rows(items)}\n  }};\n  return kTable;\n}}\n")
    print("}  // namespace brisk::unicode_tables")


if __name__ == "__main__":
    if unicodedata.unidata_version != "14.0.0":
        sys.exit(f"expected Python's Unicode 14.0.0 data (Debian 12), found {unicodedata.unidata_version}")
    main()
