"""Moving data in and out: export everything as the old app's CSV files, import a folder."""

from service.transfer.views import bp

__all__ = ["bp"]
