#!/usr/bin/env python3
"""Generate filters/core/src/pii/phone_metadata.rs from libphonenumber's metadata.

The per-region facts (country calling code, national trunk prefix, which national significant
numbers are valid, how numbers are grouped when written) come from the `phonenumbers` package
(the Python port of Google's libphonenumber, Apache-2.0), pinned in requirements.txt. They are
compressed into small tables instead of shipping libphonenumber's regexes:

- validity: for each region and each length of national significant number (NSN), the ranges of
  its first three digits that some valid number of that length starts with. This is computed
  exactly from the region's general pattern (its parse tree, walked symbolically), so the table
  accepts every number libphonenumber accepts and a superset of them (digits after the third are
  not checked).
- shapes: the digit-group lengths of the region's national formats (`(\\d{3})(\\d{2})(\\d{2})` ->
  3-3, 2-2, 2-2), and whether the format writes the trunk prefix (`0\\1`: Germany always, Brazil
  and India for some numbers only), used to tell a written phone number from other grouped digits.

    .venv/bin/python scripts/generate-phone-metadata.py

Deterministic: the output depends only on the phonenumbers version.
"""

import os
import re
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import sre_constants as C  # noqa: E402
import sre_parse  # noqa: E402

import phonenumbers  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "filters", "core", "src", "pii", "phone_metadata.rs")
MAX_LEN = 17
DIGITS = "0123456789"


def chars_of_in(items):
    out = set()
    negate = False
    for op, av in items:
        if op == C.LITERAL:
            out.add(chr(av))
        elif op == C.RANGE:
            out.update(chr(c) for c in range(av[0], av[1] + 1))
        elif op == C.CATEGORY and av == C.CATEGORY_DIGIT:
            out.update(DIGITS)
        elif op == C.NEGATE:
            negate = True
        else:
            raise ValueError(f"class item {op}")
    if negate:
        out = set(DIGITS) - out
    return out & set(DIGITS)


def concat(a, b):
    """Languages as sets of (first <= 3 characters, length)."""
    out = set()
    b_lengths = {lb for _, lb in b}
    for pa, la in a:
        if len(pa) >= 3:
            for lb in b_lengths:
                if la + lb <= MAX_LEN:
                    out.add((pa, la + lb))
        else:
            for pb, lb in b:
                if la + lb <= MAX_LEN:
                    out.add(((pa + pb)[:3], la + lb))
    return out


def summarize(tree):
    lang = {("", 0)}
    for op, av in tree:
        lang = concat(lang, node(op, av))
    return lang


def node(op, av):
    if op == C.LITERAL:
        return {(chr(av), 1)}
    if op == C.IN:
        return {(c, 1) for c in chars_of_in(av)}
    if op == C.BRANCH:
        out = set()
        for sub in av[1]:
            out |= summarize(sub)
        return out
    if op == C.SUBPATTERN:
        return summarize(av[-1])
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, sub = av
        hi = min(hi, MAX_LEN)
        inner = summarize(sub)
        acc = {("", 0)}
        out = set(acc) if lo == 0 else set()
        for i in range(1, hi + 1):
            acc = concat(acc, inner)
            if i >= lo:
                out |= acc
        return out
    raise ValueError(f"op {op}")


def ranges(values):
    values = sorted(values)
    out = []
    for v in values:
        if out and out[-1][1] + 1 == v:
            out[-1][1] = v
        else:
            out.append([v, v])
    return out


def group_lengths(pattern):
    """Each capture group's (min, max) digit count in a format pattern like (\\d{3})(\\d{2,4})."""
    tree = sre_parse.parse(pattern)
    out = []
    for op, av in tree:
        if op != C.SUBPATTERN:
            return None
        lang = summarize(av[-1])
        lengths = [length for _, length in lang]
        out.append((min(lengths), max(lengths)))
    return out


def shapes_of(meta):
    shapes = set()
    for f in list(meta.number_format):
        groups = group_lengths(f.pattern)
        if not groups:
            continue
        # The format may glue groups together ("\\1 \\2\\3"): glued ones are one written group.
        refs = re.findall(r"\\(\d)|([^\\\d]+)", f.format)
        merged, current, last_was_ref = [], None, False
        for ref, sep in refs:
            if ref:
                lo, hi = groups[int(ref) - 1]
                if current is not None and last_was_ref:
                    current = (current[0] + lo, current[1] + hi)
                else:
                    if current is not None:
                        merged.append(current)
                    current = (lo, hi)
                last_was_ref = True
            else:
                last_was_ref = False
        if current is not None:
            merged.append(current)
        if 1 <= len(merged) <= 6:
            rule = f.national_prefix_formatting_rule or ""
            written = bool(meta.national_prefix) and meta.national_prefix in rule.split("\\1")[0]
            shapes.add((written, tuple(merged)))
    return sorted(shapes)


def main():
    regions = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        pattern = meta.general_desc.national_number_pattern
        lang = summarize(sre_parse.parse(pattern))
        lengths = set(meta.general_desc.possible_length)
        by_len = {}
        for prefix, length in lang:
            if length < 4 or len(prefix) < 3 or (lengths and length not in lengths):
                continue
            by_len.setdefault(length, set()).add(int(prefix))
        trunk = meta.national_prefix or ""
        regions.append((region, meta.country_code, trunk, by_len, shapes_of(meta)))

    lines = [
        "//! Generated by scripts/generate-phone-metadata.py from libphonenumber's metadata",
        f"//! (`phonenumbers` {phonenumbers.__version__}, Apache-2.0). Do not edit.",
        "",
        "use super::phone::Region;",
        "",
        "#[rustfmt::skip]",
        "pub(super) static REGIONS: &[Region] = &[",
    ]
    for region, cc, trunk, by_len, shapes in regions:
        lens = ", ".join(
            f"({length}, &[{', '.join(f'({lo}, {hi})' for lo, hi in ranges(by_len[length]))}])"
            for length in sorted(by_len)
        )
        shp = ", ".join(
            f"({'true' if written else 'false'}, &[" + ", ".join(f"({lo}, {hi})" for lo, hi in s) + "])"
            for written, s in shapes
        )
        lines.append(
            f'    Region {{ code: *b"{region}", country_code: {cc}, trunk: b"{trunk}", '
            f"lengths: &[{lens}], shapes: &[{shp}] }},"
        )
    lines.append("];")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(OUT, len(regions), "regions", os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
