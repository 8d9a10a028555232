"""The command-line programs (``tools/*.py`` are three-line wrappers of these; ``pip install``
makes them the console scripts ``ppcls-train``, ``ppcls-eval``, ``ppcls-export``,
``ppcls-infer`` and ``ppcls-convert``). Each module sets the CPU environment before anything
imports paddle, parses its arguments and calls the library; user errors print one ``error:``
line and exit 2 (``ppcls.utils.cli.run_cli``)."""
