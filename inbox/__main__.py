"""Serve the approval inbox, or manage its accounts.

uv run python -m inbox [--host HOST] [--port PORT]
uv run python -m inbox add-user NAME      # asks for the password (stdin when not a terminal)
uv run python -m inbox add-token NAME     # prints a new API token, once
uv run python -m inbox remove-user NAME   # ends their sessions and tokens at once
"""

import argparse
import getpass
import sys

import uvicorn

from console_exit import exit_process
from console_logging import configure_logging
from inbox.accounts import (
    AccountsError,
    new_token,
    remove_user,
    set_password,
    users_file,
    valid_name,
)
from inbox.app import create_app
from inbox.server import server_config
from inbox.settings import InboxSettings, SettingsError, listen_defaults
from slack_approvals.settings import SlackEndpoint, SlackSettingsError

MIN_PASSWORD_LENGTH = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    try:
        host, port = listen_defaults()
    except SettingsError as err:
        sys.exit(str(err))
    parser = argparse.ArgumentParser(prog="inbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=host, help="listen address (default %(default)s)")
    parser.add_argument("--port", type=int, default=port, help="port (default %(default)s)")
    commands = parser.add_subparsers(dest="command")
    add_user = commands.add_parser("add-user", help="create a user or set their password")
    add_user.add_argument("name")
    add_token = commands.add_parser("add-token", help="print a new API token for a user")
    add_token.add_argument("name")
    remove = commands.add_parser("remove-user", help="remove a user; their sessions end at once")
    remove.add_argument("name")
    args = parser.parse_args(argv)
    if args.command is not None and (problem := valid_name(args.name)):
        parser.error(f"the user name {problem}")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise AccountsError("The passwords differ; nothing was changed.")
        return first
    return sys.stdin.readline().rstrip("\n")


def add_user(name: str) -> int:
    password = read_password()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountsError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    set_password(users_file(), name, password)
    print(f"User {name} can now sign in ({users_file()}).")
    return 0


def serve(host: str, port: int) -> int:
    settings = InboxSettings.from_env()
    slack = SlackEndpoint.from_env()
    configure_logging()
    print(f"Approval inbox on http://{host}:{port}/ (accounts: {settings.users_file})", flush=True)
    app = create_app(settings, slack=slack)
    uvicorn.Server(server_config(app, host, port, log_level="info")).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "add-user":
            return add_user(args.name)
        if args.command == "remove-user":
            remove_user(users_file(), args.name)
            print(f"User {args.name} is removed; their sessions and tokens no longer work.")
            return 0
        if args.command == "add-token":
            print(new_token(users_file(), args.name))
            return 0
        return serve(args.host, args.port)
    except (AccountsError, SettingsError, SlackSettingsError) as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    exit_process(main())
