"""The ``lowdose`` subcommands, one module each (registered in :data:`lowdose.main.COMMANDS`)."""
