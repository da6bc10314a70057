"""Driving in Gymnasium's CarRacing: the scripted expert and closed-loop evaluation.

Gymnasium (with Box2D) is an optional extra (``pip install -e '.[carracing]'``); it is imported
only when an environment is made, so this package imports without it.
"""

from nac.driving.expert import ACTIONS, PurePursuitExpert

__all__ = ["ACTIONS", "PurePursuitExpert"]
