"""Run the groups of runs behind a reproduction report, resumably, and collect their records.

    python scripts/campaign.py --list                        # every campaign, its groups and commands
    python scripts/campaign.py emnist --dry-run              # the commands, nothing run
    NAC_JOBS=2 python scripts/campaign.py emnist --output-root ../campaign_out
    python scripts/campaign.py emnist --only ltc ode_rnn     # some groups
    python scripts/campaign.py emnist --collect --output-root ../campaign_out   # records -> results/records

Each group is a ``nac-bench`` multirun (NAC_JOBS runs at a time, one thread each); finished runs are
skipped and stopped ones resume, so the same command continues a campaign after a stop. The runner
refuses a checkout with uncommitted code (its records would be ``-dirty``): run it from a
``git worktree`` of a committed revision. The groups are in nac/harness/campaigns.py.
"""

import sys
from pathlib import Path

# this checkout's code, not an installed copy's: a campaign run from a worktree must run the worktree
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nac.harness.campaigns import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
