"""Stage 7, publish: ranked boards -> a static site (Jinja2 pages, SVG plots, JSON and CSV exports).

Site only: the boards themselves come from :mod:`bench.ranking.board`.

Entry point: :func:`bench.leaderboard.site.build_leaderboard` (re-exported here).
"""

from bench.leaderboard.site import LeaderboardReport, build_leaderboard

__all__ = ["LeaderboardReport", "build_leaderboard"]
