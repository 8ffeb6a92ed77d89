"""Application services: load facts, call the domain, write the change and its audit row
in one transaction. Routers, workers and the CLI call these; none of them holds a rule."""
