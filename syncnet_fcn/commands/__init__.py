"""CLI subcommands beyond ``detect``: one module each, exposing ``add_parser(subparsers)``.

``syncnet_fcn.cli.build_parser`` calls each module's ``add_parser``; a module parses arguments, calls the
library and prints. User errors raise :class:`syncnet_fcn.errors.SyncNetError` (exit code 2).
"""
