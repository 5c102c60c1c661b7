"""benchmarks/RESULTS.md bookkeeping: rows land in their table, never after the prose below it."""

from pathlib import Path

from backend.bench.results import append_row


def test_rows_join_their_table_above_the_prose(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    append_row(results, "A", ["x", "y"], ["1", "2"])
    results.write_text(results.read_text() + "\nwhat the rows mean\n\n## B\n\n| z |\n|---|\n| 9 |\n")
    append_row(results, "A", ["x", "y"], ["3", "4"])
    append_row(results, "B", ["z"], ["10"])
    append_row(results, "C", ["w"], ["5"])
    text = results.read_text()
    assert "| 1 | 2 |\n| 3 | 4 |\n\nwhat the rows mean" in text
    assert "| 9 |\n| 10 |\n" in text and text.rstrip().endswith("## C\n\n| w |\n|---|\n| 5 |")
