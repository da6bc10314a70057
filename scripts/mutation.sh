#!/usr/bin/env bash
# Mutation testing of nac/layers/, nac/harness/metrics.py and the ncps baselines' time handling
# (baselines/_recurrent.py, ltc.py, cfc.py) with mutmut 3; what is mutated and which tests run are
# set in pyproject.toml, [tool.mutmut]. Needs: pip install -e ".[dev,mutation]".
#
#   bash scripts/mutation.sh              # the committed tree (HEAD), from scratch
#   bash scripts/mutation.sh --worktree   # the working tree as it is (tracked + untracked files)
#   bash scripts/mutation.sh --resume     # keep the verdicts of functions whose code did not change
#                                         # (mutmut does not retest them after a change to the tests)
#
# It runs in a copy (build/mutation/, or $MUTATION_DIR) so that edits made meanwhile never leak into
# a run, with one test process at low priority (MUTATION_JOBS=1, nice 10). At the end it prints the
# counts per module and writes build/mutation/summary.md and build/mutation/survivors.txt, the
# inputs of results/mutation.md and results/mutation_survivors.txt. A full run (~1,400 mutants)
# takes about 10 minutes on one core.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
work=${MUTATION_DIR:-$root/build/mutation}
source_tree=head resume=0
for arg in "$@"; do
    case $arg in
        --worktree) source_tree=worktree ;;
        --resume) resume=1 ;;
        *) echo "usage: bash scripts/mutation.sh [--worktree] [--resume]" >&2; exit 2 ;;
    esac
done
command -v mutmut >/dev/null || { echo 'mutmut is missing: pip install -e ".[dev,mutation]"' >&2; exit 1; }

# the work folder is emptied below: only one this script made (marker file) or a new, empty one
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.mutation-workdir" ]; then
    echo "refusing to empty $work: not a folder made by scripts/mutation.sh" >&2; exit 2
fi
mkdir -p "$work"
find "$work" -mindepth 1 -maxdepth 1 ! -name mutants -exec rm -rf {} +
touch "$work/.mutation-workdir"
[ "$resume" = 1 ] || rm -rf "$work/mutants"
if [ "$source_tree" = head ]; then
    git -C "$root" archive HEAD | tar -x -m -C "$work"   # -m: fresh mtimes, so --resume re-mutates edits
    commit=$(git -C "$root" rev-parse --short HEAD)
else
    (cd "$root" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -x -m -C "$work"
    commit="$(git -C "$root" rev-parse --short HEAD) + working tree"
fi

cd "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled
started=$(date -u +%Y-%m-%dT%H:%MZ)
nice -n 10 mutmut run --max-children "${MUTATION_JOBS:-1}" > run.log 2>&1 || {
    tail -n 40 run.log >&2; echo "mutmut run failed; full log: $work/run.log" >&2; exit 1; }
mutmut results --all true > results.txt
grep -E ': (survived|no tests|suspicious)$' results.txt | sed 's/^ *//; s/: .*//' | while read -r name; do
    echo "## $name"; mutmut show "$name" 2>/dev/null | grep -E '^[-+][^-+]' || true
done > survivors.txt
python - "$commit" "$started" > summary.md <<'PY'
"""Counts per module from mutmut's results.txt, and the kill rate of nac/layers/."""
import collections
import re
import sys

counts = collections.defaultdict(collections.Counter)
for line in open("results.txt"):
    m = re.match(r"\s*(\S+?)\.x[_\u01c1].*: (.+)$", line)
    if m:
        counts[m.group(1).replace(".", "/") + ".py"][m.group(2).strip()] += 1
kinds = ["killed", "timeout", "survived", "no tests", "suspicious", "skipped"]
kinds += sorted({k for c in counts.values() for k in c} - set(kinds))
print(f"commit {sys.argv[1]}, started {sys.argv[2]}\n")
print("| module | " + " | ".join(kinds) + " | total | killed or timeout |")
print("|---" * (len(kinds) + 3) + "|")
groups = {**counts, "nac/layers/ (all)": sum((c for f, c in counts.items() if f.startswith("nac/layers/")),
                                             collections.Counter())}
for name, c in groups.items():
    total = sum(c.values())
    rate = (c["killed"] + c["timeout"]) / total if total else float("nan")
    print(f"| {name} | " + " | ".join(str(c[k]) for k in kinds) + f" | {total} | {rate:.1%} |")
PY
cat summary.md
echo "survivors: $work/survivors.txt"
