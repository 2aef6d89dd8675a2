"""``manage.py goodjob_supervisor [OPTIONS] [COMMAND]``: ``goodjob-supervisor`` itself (the
click group of ``goodjob_mp.cli``, every option and sub-command) with the project's settings.

Django has been set up by then, so ``GOOD_JOB`` is configured and every app's ``jobs`` module is
imported: no ``--app`` is needed (the children are forked with the jobs registered). Django's own
connections are closed first, so none crosses the fork.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

# manage.py's own options, which ManagementUtility reads but leaves in argv.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


def without_django_options(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept


class Command(BaseCommand):
    help = "Run goodjob-supervisor (all its options and sub-commands) with this project's settings."

    def run_from_argv(self, argv: list[str]) -> None:
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        code = self._invoke(without_django_options(argv[2:]), prog)
        if code:
            raise SystemExit(code)

    def print_help(self, prog_name: str, subcommand: str) -> None:
        self._invoke(["--help"], f"{os.path.basename(prog_name)} {subcommand}")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        # call_command() parses with this parser: everything that is not Django's own option
        # (--verbosity, ...) is goodjob-supervisor's, in order, for click to read.
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known_args = parser.parse_known_args

        def parse_args(args: Any = None, namespace: Any = None) -> argparse.Namespace:
            known, rest = parse_known_args(args, namespace)
            known.args = rest
            return known

        parser.parse_args = parse_args  # type: ignore[method-assign]
        return parser

    def handle(self, *args: str, **options: Any) -> None:
        # call_command("goodjob_supervisor", "--queues=mail:2", "migrate", "--check").
        code = self._invoke(list(args), "goodjob_supervisor")
        if code:
            raise CommandError(f"goodjob-supervisor exited with status {code}", returncode=code)

    def _invoke(self, args: list[str], prog: str) -> int:
        from goodjob_mp.cli import main

        connections.close_all()
        try:
            main.main(args=args, prog_name=prog, standalone_mode=True)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
