"""Refresh the README's admin page screenshots (docs/admin-ui-users.png, docs/admin-ui-profile.png).

    .venv/bin/python bench/admin_ui_screenshots.py [--out docs]

They are taken by the browser test itself, on the state it has just made through real chat
turns, so a screenshot never shows a page the test did not check. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/browser/test_admin_ui.py::test_admin_page_manages_a_user_from_search_to_erasure"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RLPA_ADMIN_UI_SCREENSHOTS": str(args.out.resolve())}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    for name in ("admin-ui-users.png", "admin-ui-profile.png"):
        print(args.out / name)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
