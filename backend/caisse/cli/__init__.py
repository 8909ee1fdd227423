"""The `caisse` command line: thin commands over the services, in French."""
