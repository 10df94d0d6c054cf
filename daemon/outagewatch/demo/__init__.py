"""The simulated world and the seed day replayed for ``outagewatch demo``."""
