"""Start one program of the stack: read its spec file, then exec its command.

supervisord runs ``python -m opsctl._launch SPEC``. The spec (JSON, mode 0600) holds the
argument list, the working directory and the environment, so that no value has to survive
supervisord's own config syntax and secrets never appear in supervisord.conf. It is
re-read at every start, so a restart picks up a changed ``.env``. This module imports only
the standard library: it runs before every program start.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    """Exec the program described by the spec file named in ``argv``; return 127 on failure."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m opsctl._launch SPEC\n")
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        spec = json.load(handle)

    environment = dict(os.environ)
    environment.update(spec["environment"])
    os.chdir(spec["directory"])
    sys.stdout.flush()
    try:
        os.execvpe(spec["argv"][0], spec["argv"], environment)  # noqa: S606
    except OSError as error:
        sys.stderr.write(f"opsctl: cannot start {spec['argv'][0]!r}: {error}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
