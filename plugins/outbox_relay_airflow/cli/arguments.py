"""The CLI's arguments of one operation, read from its request model (``outbox_relay.requests``)."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

from pydantic.fields import FieldInfo

from outbox_relay.requests import OperatorRequest
from outbox_relay.requests.base import option_of


def _help(field: FieldInfo) -> str:
    text = (field.description or "").rstrip(".")
    default = None if field.is_required() else field.get_default()
    if default in (None, False) or isinstance(default, tuple):
        return text
    return f"{text} (default {default:g})" if isinstance(default, float) else f"{text} (default {default})"


def add_request_arguments(parser: argparse.ArgumentParser, request: type[OperatorRequest]) -> None:
    """One argument per field the model offers the CLI; values are checked by the model, not argparse, so
    the CLI, the DAG's Params and the page refuse the same values with the same words."""
    for name, field in request.cli_fields().items():
        option = option_of(field)
        if option.positional:
            parser.add_argument(name, help=_help(field))
        elif option.choice_flags:
            for choice in option.choice_flags:
                flag = f"--{choice.replace('_', '-')}"
                parser.add_argument(
                    flag, action="append_const", const=choice, dest=name, help=f"{name}: {choice}"
                )
        elif field.annotation is bool:
            parser.add_argument(request.flag_of(name), dest=name, action="store_true", help=_help(field))
        else:
            action = "append" if option.repeat else "store"
            required = field.is_required()
            parser.add_argument(
                request.flag_of(name), dest=name, action=action, required=required, help=_help(field)
            )


def request_from_args(request: type[OperatorRequest], args: argparse.Namespace) -> Any:
    return request.parse({name: getattr(args, name, None) for name in request.cli_fields()}, "cli")


def add_requested_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", default=getpass.getuser(), help="who asks (default: this OS user)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def service_arguments(
    request: type[OperatorRequest], *extra: Callable[[argparse.ArgumentParser], None]
) -> Callable[[argparse.ArgumentParser], None]:
    """A command's arguments: the service, the request's fields, then ``extra`` (``add_json``, ...)."""

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("service", help="the service's name (its file in the services folder)")
        add_request_arguments(parser, request)
        for more in extra:
            more(parser)

    return add
