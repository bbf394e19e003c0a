"""Reading payout spreadsheets and writing reports and results."""
