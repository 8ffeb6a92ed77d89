"""Background work: worker processes running job handlers, and the self-healing loops."""
