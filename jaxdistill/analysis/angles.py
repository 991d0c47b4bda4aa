"""Angles between vectors, batched over leading axes.

``signed_angle`` is alpha of eq. 28 (in [0, pi], the sign of u.v counts);
``unsigned_angle`` is alpha-bar of eq. 16 (in [0, pi/2]).  Both use
2 atan2(||u^ - v^||, ||u^ + v^||), accurate for tiny and near-pi angles
where arccos of a cosine loses half the digits.  They are defined in
``jaxdistill.tasks.riskmath`` (tasks need them for their exact risk) and
re-exported here.
"""

from __future__ import annotations

from ..tasks.riskmath import signed_angle, unsigned_angle

__all__ = ["signed_angle", "unsigned_angle"]
