"""The fund: allowances, contributions, state matching, grants, fees, the month's and the year's budget."""
