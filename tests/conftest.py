import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_backend(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m backend ARGS` as a real child process from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    path = SHARED / "data" / "assets"
    if not path.is_dir():
        pytest.skip("../shared/data/assets is not present")
    return path
