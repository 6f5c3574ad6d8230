"""``python -m tools.github_fixtures``: install the pinned GitHub contract fixtures (CI runs this before the tests)."""

from __future__ import annotations

import sys

from . import FixturesError, fixtures_dir


def main() -> int:
    try:
        print(fixtures_dir())
    except FixturesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
