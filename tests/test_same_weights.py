"""Every game computes, bit for bit, what the stored reference computed (benchmarks/same_weights.py)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "same_weights.py"


def recorded_here() -> dict[str, str]:
    """The reference hashes recorded on this CPU and torch, by case (none: {})."""
    out = subprocess.run([sys.executable, "-c", "import benchmarks.same_weights as s; print(s.machine())"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    return json.loads((SCRIPT.with_suffix(".json")).read_text()).get(out.stdout.strip(), {})


def test_every_game_gives_the_reference_weights():
    recorded = recorded_here()
    if not recorded:
        pytest.skip("no reference recorded for this CPU and torch: `python benchmarks/same_weights.py "
                    "--record` on this machine from the commit before a refactoring, then check after it")
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count(" same") == len(recorded) >= 12
