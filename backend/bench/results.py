"""Benchmark bookkeeping: the device a figure was measured on, and rows in benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch


def device_description(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, torch {torch.__version__}"


def append_row(results: Path, section: str, header: list[str], row: list[str]) -> None:
    """Append ``row`` to the table under ``## section`` in ``results`` (created if missing)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    text = results.read_text() if results.exists() else "# Benchmark results\n\nWritten by `python -m backend bench ...`.\n"
    line = "| " + " | ".join(row) + " |"
    heading = f"## {section}"
    if heading not in text:
        table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{table}{line}\n"
    else:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        end = len(text) if end < 0 else end
        lines = text[start:end].split("\n")
        # after the section's first table, not after the prose or any table the prose holds
        last_row = next(i for i, existing in enumerate(lines) if existing.startswith("|"))
        while last_row + 1 < len(lines) and lines[last_row + 1].startswith("|"):
            last_row += 1
        lines.insert(last_row + 1, line)
        text = text[:start] + "\n".join(lines) + text[end:]
    results.write_text(text)


def today() -> str:
    return datetime.date.today().isoformat()
