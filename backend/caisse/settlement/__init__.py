"""Vendor payouts: settlement runs, the SEPA file, statements, the bank's answers."""
