"""The planning protocol library: one TOML file per treatment site in ``protocols/sites``."""
