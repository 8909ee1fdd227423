"""What the backend and the technician's tools share, and nothing else of either.

    protocol     the record layout, hash chain and signatures (docs/protocol.md)
    sun          NTAG 424 DNA SUN messages and key diversification (docs/cards.md)
    cli_french   Typer in French: help, errors, confirmations (docs/backend.md)

It imports neither `caisse` nor `caisse_provisioning` (pyproject's [tool.importlinter] checks it
in `make test`), so either side can change without dragging the other along.
"""
