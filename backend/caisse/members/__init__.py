"""Member households: the draw, invitations, means and household size, leaving, personal data."""
