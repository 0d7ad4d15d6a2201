"""Run at start-up by Python children of ``pytest --hide-linux-calls``, whose conftest puts
this directory first on PYTHONPATH: they see ``os`` and ``fcntl`` as macOS would (see
linux_calls.py). It replaces any other sitecustomize for those children only."""

from linux_calls import hide

hide()
