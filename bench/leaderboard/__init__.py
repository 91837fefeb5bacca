"""The static leaderboard: boards from the results store, SVG plots, a Jinja2 site.

Entry point: :func:`bench.leaderboard.site.build_leaderboard` (re-exported here).
"""

from bench.leaderboard.site import LeaderboardReport, build_leaderboard

__all__ = ["LeaderboardReport", "build_leaderboard"]
