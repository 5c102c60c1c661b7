"""benchmarks/RESULTS.md bookkeeping: rows land in their table, never after the prose below it."""

from pathlib import Path

from backend.bench.results import append_row


def test_rows_join_their_table_above_the_prose(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    append_row(results, "A", ["x", "y"], ["1", "2"])
    results.write_text(results.read_text() + "\nwhat the rows mean\n\n| a table in the prose |\n|---|\n\n## B\n\n| z |\n|---|\n| 9 |\n")
    append_row(results, "A", ["x", "y"], ["3", "4"])
    append_row(results, "B", ["z"], ["10"])
    append_row(results, "C", ["w"], ["5"])
    text = results.read_text()
    assert "| 1 | 2 |\n| 3 | 4 |\n\nwhat the rows mean" in text
    assert "| 9 |\n| 10 |\n" in text and text.rstrip().endswith("## C\n\n| w |\n|---|\n| 5 |")


def test_every_benchmark_has_its_section_with_rows() -> None:
    """The results page keeps a table with at least one row for every `bench` that writes one.

    Hand edits lost five sections once (speed, interp, import, service, canonical) without notice.
    """
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "benchmarks" / "RESULTS.md").read_text()
    sources = "\n".join(p.read_text() for p in (root / "backend" / "bench").glob("*.py"))
    sections = re.findall(r'append_row\(\s*results,\s*"([^"]+)"', sources)
    assert len(sections) >= 9
    for section in sections:
        heading = f"## {section}\n"
        assert heading in page, f"RESULTS.md lost the section {section!r}"
        body = page[page.index(heading):].split("\n## ")[0]
        rows = [line for line in body.splitlines() if re.match(r"\| \d{4}-\d\d-\d\d |\| [^-|]", line)]
        assert len(rows) >= 2, f"{section!r} has a header but no results"
