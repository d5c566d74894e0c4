"""Sub-commands of ``cdc-bench``: one module each, exposing a click command named ``command``."""
