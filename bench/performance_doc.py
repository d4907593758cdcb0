"""performance_doc.py — the part of docs/performance.md each benchmark owns.

Each bench replaces its own "## bench/NAME — <date>, <machine>" section with its latest figures and
keeps the others (imported by bench/*/bench.py and bench/soak/soak.py)."""

import os

HEADER = "# Performance\n\nFigures measured by the benchmarks in `bench/` (`make bench`).\n"


def replace_section(doc: str, heading_prefix: str, section: str) -> None:
    """Writes `section` at the end of `doc` in place of the section whose heading starts with `heading_prefix`."""
    text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else HEADER
    out, skipping = [], False
    for line in text.split("\n"):
        if line.startswith("## "):
            skipping = line.startswith(heading_prefix)
        if not skipping:
            out.append(line)
    with open(doc, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip("\n") + "\n\n" + section)
