"""Read-side queries for the console and the CLI lists: directories, search, flows, waiting items."""
