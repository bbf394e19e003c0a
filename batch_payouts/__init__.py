"""batch-payouts: pay a spreadsheet of recipients through Kotani Pay, exactly once."""

__version__ = "0.1.0"
