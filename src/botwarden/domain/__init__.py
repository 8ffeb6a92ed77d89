"""The functional core: pure rules and frozen values. Nothing here does I/O or imports
other Botwarden packages."""
