"""``python -m nac.bench speed [options]``: the training-speed benchmark (see :mod:`nac.bench.speed`)."""

import sys

from nac.bench import speed

COMMANDS = {"speed": speed.main}

if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    given = repr(sys.argv[1]) if len(sys.argv) > 1 else "nothing"
    print(f"nac.bench: error: expected a command ({', '.join(COMMANDS)}), got {given}", file=sys.stderr)
    raise SystemExit(2)
raise SystemExit(COMMANDS[sys.argv[1]](sys.argv[2:], prog=f"-m nac.bench {sys.argv[1]}"))
