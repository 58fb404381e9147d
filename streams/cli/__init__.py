"""Kafka-side subcommands of the ``lowdose`` command line."""
