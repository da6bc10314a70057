"""A scripted pure-pursuit driver for Gymnasium's ``CarRacing-v3`` with discrete actions.

The expert reads the simulator's state, not the pixels: the car's position, heading and speed
(``env.unwrapped.car.hull``) and the track's centre-line waypoints (``env.unwrapped.track``, rows
``(alpha, beta, x, y)``, about 3.5 units apart, in driving order). Each step it

1. finds the waypoint nearest to the car (searched forward from the previous one, so the index only
   advances along the lap),
2. aims at the waypoint ``lookahead`` steps ahead (more at higher speed) and measures the angle
   between the car's heading and that target (pure pursuit),
3. sets a target speed from the bends ahead: each upcoming waypoint's radius (from the change
   of the track direction around it) gives a cornering speed ``sqrt(lateral_accel * radius)``,
   and the speed allowed now is the lowest ``sqrt(v_corner^2 + 2 * braking_decel * distance)``
   over the next ``preview`` waypoints (a braking curve),
4. maps that to one of the 5 discrete actions: steer when the heading error exceeds a dead band,
   else brake when too fast, gas when too slow, no-op otherwise.

Discrete actions are exclusive (steering releases the gas), so the dead band and the speed margins
are what keep the action mix balanced. Action indices follow Gymnasium: 0 no-op, 1 steer right,
2 steer left, 3 gas, 4 brake (:data:`ACTIONS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Gymnasium's discrete CarRacing actions, by index
ACTIONS = ("noop", "right", "left", "gas", "brake")
NOOP, RIGHT, LEFT, GAS, BRAKE = range(5)


def _wrap_array(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


@dataclass
class PurePursuitExpert:
    """Pure pursuit on the track waypoints, mapped to discrete actions (module docstring).

    Call :meth:`reset` after every ``env.reset`` and :meth:`act` with the (unwrapped or wrapped)
    environment each step.
    """

    lookahead: int = 5  #: waypoints ahead of the nearest one at standstill
    lookahead_per_speed: float = 0.0  #: extra waypoints per unit of speed
    preview: int = 40  #: waypoints ahead checked for bends
    steer_deadband: float = 0.25  #: heading error (rad) below which the expert does not steer
    max_speed: float = 110.0  #: speed cap on straights
    lateral_accel: float = 200.0  #: cornering speed = sqrt(lateral_accel * radius)
    braking_decel: float = 30.0  #: deceleration assumed for the braking curve (speed units / s)
    brake_margin: float = 5.0  #: brake when faster than the allowed speed by more than this

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._index = 0
        self._track_source = None  # the environment's waypoint list the arrays below come from
        self._track = self._corner = None
        self._spacing = 0.0

    def _track_arrays(self, unwrapped) -> np.ndarray:
        """The waypoints as an array, and each waypoint's cornering speed, computed once per track."""
        if unwrapped.track is not self._track_source:
            track = np.asarray(unwrapped.track, dtype=np.float64)
            n, betas = len(track), track[:, 1]
            self._spacing = float(np.linalg.norm(track[1, 2:4] - track[0, 2:4])) or 3.5
            everywhere = np.arange(n)
            turn = np.abs(_wrap_array(betas[(everywhere + 3) % n] - betas[(everywhere - 3) % n]))
            radius = 6 * self._spacing / np.maximum(turn, 1e-6)
            self._corner = np.minimum(self.max_speed, np.sqrt(self.lateral_accel * radius))
            self._track, self._track_source = track, unwrapped.track
        return self._track

    def _nearest(self, xy: np.ndarray, position: np.ndarray) -> int:
        n = len(xy)
        window = (self._index + np.arange(-5, 40)) % n
        best = window[int(np.argmin(np.linalg.norm(xy[window] - position, axis=1)))]
        self._index = int(best)
        return self._index

    def _allowed_speed(self, i: int) -> float:
        """The braking-curve speed limit at waypoint ``i`` (module docstring, step 3)."""
        k = np.arange(0, self.preview + 1)
        corner = self._corner[(i + k) % len(self._corner)]
        return float(np.min(np.sqrt(corner**2 + 2 * self.braking_decel * self._spacing * k)))

    def act(self, env) -> int:
        """The action for the environment's current state."""
        unwrapped = getattr(env, "unwrapped", env)
        xy = self._track_arrays(unwrapped)[:, 2:4]
        hull = unwrapped.car.hull
        position = np.array([hull.position[0], hull.position[1]])
        heading = hull.angle
        forward = np.array([-math.sin(heading), math.cos(heading)])
        speed = float(np.hypot(hull.linearVelocity[0], hull.linearVelocity[1]))

        n = len(xy)
        i = self._nearest(xy, position)
        ahead = int(round(self.lookahead + self.lookahead_per_speed * speed))
        target = xy[(i + ahead) % n] - position
        error = math.atan2(forward[0] * target[1] - forward[1] * target[0], float(forward @ target))

        target_speed = self._allowed_speed(i)

        if speed > target_speed + self.brake_margin:
            return BRAKE
        if abs(error) > self.steer_deadband:
            return LEFT if error > 0 else RIGHT
        if speed < target_speed:
            return GAS
        return NOOP
