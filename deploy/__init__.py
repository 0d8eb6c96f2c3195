"""The deploy driver: runs the project's ``__main__.py`` through the Pulumi engine (Automation API).

``python -m deploy up|preview|destroy|outputs [--stack dev]`` (behind ``make up`` & co. and
``scripts/stack``). It needs no ``pulumi-language-python``: the program runs inline, in this
process, and the CLI talks to it over a local gRPC port.
"""
