"""The read side: the one checker of the invariants, which reads every concept's books, and the
queries behind the console and the CLI lists (directories, search, flows, waiting items)."""
