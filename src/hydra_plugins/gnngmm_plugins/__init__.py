"""gnngmm's Hydra plugins. Hydra accepts plugins only from the ``hydra_plugins`` namespace package,
so these are thin shells: the work is done in :mod:`gnngmm.sweeper` and :mod:`gnngmm.launchers`,
imported only when a plugin is used (Hydra imports every plugin module at start-up)."""
