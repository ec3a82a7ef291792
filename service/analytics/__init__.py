"""Analytics: KPIs, charts and correlations over a person's own completed attempts."""

from service.analytics.views import bp

__all__ = ["bp"]
