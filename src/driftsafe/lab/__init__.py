"""The lab: the staging/prod stack scaffold and the drill that walks it."""
