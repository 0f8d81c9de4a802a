"""The mutation round: each mutant of ``mutants.py`` applied alone to a scratch copy of the
repository, the tests covering its file run there (``-x``), the file restored; one JSON line per
mutant (killed_by: the failing tests, or null for a survivor).

    python scripts/mutation/run.py                 # every mutant (about 40 min on 2 cores)
    python scripts/mutation/run.py C11 P7          # some
    EXTRA=tests/test_mutants.py python scripts/mutation/run.py C11 P7   # the survivors vs their pins
    python scripts/mutation/run.py --dry           # check that every mutant's text occurs once

The scratch copy (``$MUT_DIR``, default /tmp/bayeslora-mut) is made fresh, without .venv and
results/runs; the tests import it first (PYTHONPATH), not the editable install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import M  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MUT = Path(os.environ.get("MUT_DIR", "/tmp/bayeslora-mut"))
CLI_TEST = "tests/test_evaluate.py::test_cli_evaluates_prints_the_rows_and_refuses_bad_input_in_one_line"


def main(only: list[str]) -> None:
    dry = only == ["--dry"]
    if not dry:
        shutil.rmtree(MUT, ignore_errors=True)
        shutil.copytree(ROOT, MUT, ignore=shutil.ignore_patterns(".venv", "runs", ".git", "__pycache__"))
    extra = os.environ.get("EXTRA", "")
    env = dict(os.environ, PYTHONPATH=str(MUT))
    for mid, f, fn, desc, old, new, tests in M:
        if only and not dry and mid not in only:
            continue
        src = (ROOT / f).read_text()
        if dry:
            print(mid, src.count(old))
            continue
        assert src.count(old) == 1, (mid, src.count(old))
        (MUT / f).write_text(src.replace(old, new))
        base = f"{sys.executable} -m pytest -q -x -p no:cacheprovider "
        if extra:
            cmds = [base + extra]
        elif tests == "MAIN":
            cmds = [base + 'tests/test_evaluate.py -m "not slow"', base + CLI_TEST]
        else:
            cmds = [base + tests]
        t0, killed_by = time.time(), None
        for c in cmds:
            r = subprocess.run(c, shell=True, capture_output=True, text=True, cwd=MUT, env=env)
            if r.returncode != 0:
                failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout + r.stderr, re.M)
                killed_by = " ".join(x.split("::")[-1] for x in failed) if failed else f"rc={r.returncode}"
                break
        shutil.copy(ROOT / f, MUT / f)
        print(
            json.dumps(
                dict(id=mid, file=f, fn=fn, desc=desc, killed_by=killed_by, secs=round(time.time() - t0))
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
