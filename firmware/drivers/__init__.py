"""One module per chip of the reference terminal (hardware/README.md); see docs/drivers.md."""
