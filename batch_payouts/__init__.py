"""batch-payouts: pay a spreadsheet of recipients through Kotani Pay, exactly once."""

# The one place the version is written: pyproject.toml reads it from here (hatch dynamic version),
# so the installed metadata (read by ``batch-payouts --version``) and the client's User-Agent agree.
__version__ = "0.1.0"
