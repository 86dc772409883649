"""Command line of the local stack: ``python -m local_stack up|down|status|env|check|backup|restore|gc|...``.

Errors a user can fix (a busy port, a missing binary, a service that would not start) print one line (plus the
service's log tail where that explains it) and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from local_stack import disk, health, tracking_server
from local_stack.errors import StackError
from local_stack.settings import (
    PORT_OPTIONS,
    REPO_ROOT,
    StackSettings,
    default_state_dir,
    parse_port,
    state_dir_problem,
)
from local_stack.stack import LocalStack

SECRET_VARS = {"AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"}


#: Bounds of `load`: more threads than this only measure the client's machine; a day is the longest sensible run.
MAX_LOGGERS = 256
MAX_SECONDS = 86400


def _load_options(args: argparse.Namespace) -> tuple[int, float]:
    """``--loggers`` and ``--seconds`` checked for type, NaN, infinity, sign and range, each named."""
    example = "(e.g. --loggers 16 --seconds 60)"
    try:
        loggers = int(str(args.loggers).strip())
    except ValueError:
        raise StackError(f"--loggers {args.loggers!r} is not a whole number; give 1-{MAX_LOGGERS} {example}") from None
    if not 1 <= loggers <= MAX_LOGGERS:
        raise StackError(f"--loggers {loggers} is not in 1-{MAX_LOGGERS} {example}")
    try:
        seconds = float(str(args.seconds).strip())
    except ValueError:
        raise StackError(f"--seconds {args.seconds!r} is not a number of seconds {example}") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        raise StackError(f"--seconds {args.seconds!r} must be above 0 and at most {MAX_SECONDS} {example}")
    return loggers, seconds


#: Commands that create, change or delete files in the state directory.
WRITING_COMMANDS = {"up", "down", "backup", "restore", "upgrade-check", "upgrade-db"}


def _settings(args: argparse.Namespace) -> StackSettings:
    if args.state_dir is not None and not args.state_dir.strip():
        raise StackError("--state-dir is empty; name a directory (default .stack/ in the repository)")
    state_dir = Path(args.state_dir or default_state_dir()).expanduser().resolve()
    problem = state_dir_problem(state_dir, writing=args.command in WRITING_COMMANDS)
    if problem:
        raise StackError(problem)
    overrides = {f.name: getattr(args, f.name) for f in fields(StackSettings) if getattr(args, f.name, None)}
    for field_name, (option, _env_var) in PORT_OPTIONS.items():
        # Parsed here, not by argparse, so that `--mlflow-port abc` (or 0) is our one line, not a usage dump.
        if getattr(args, field_name, None) is not None:
            overrides[field_name] = parse_port(field_name, getattr(args, field_name), option)
    return StackSettings.load(**overrides)


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _state_dir_named(args: argparse.Namespace) -> str:
    return args.state_dir or os.environ.get("LOCAL_STACK_DIR") or ".stack"


class _OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line naming the problem and where the options are listed (not a usage dump).

    Subcommand parsers are made by ``add_subparsers`` with the parent's class, so they answer the same way.
    """

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}; `{self.prog} --help` lists the options", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m local_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", dest="state_dir", help="state directory (default .stack/, LOCAL_STACK_DIR)")
    for field_name, (option, env_var) in PORT_OPTIONS.items():
        parser.add_argument(option, dest=field_name, metavar="PORT", help=f"port, 1-65535 (env {env_var})")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL, the S3 store and the MLflow server; wait until healthy")
    # MLflow's login is always on now; `--auth` stays accepted so that older scripts (`up --auth`) keep working.
    up.add_argument("--auth", action="store_true", help=argparse.SUPPRESS)
    down = sub.add_parser("down", help="stop the processes the stack started; keep data unless --wipe")
    down.add_argument("--wipe", action="store_true", help="also delete all data (database, bucket, credentials)")
    sub.add_parser(
        "status", help="one line per service: what runs, what answers, the fix; exit 1 unless all is healthy"
    )
    sub.add_parser("env", help='print `export NAME=value` lines for a client; use: eval "$(make env)"')
    sub.add_parser("check", help="log a run with a metric and an artifact and read both back")
    load = sub.add_parser("load", help="N concurrent MLflow loggers for S seconds: calls/s, latencies, errors, RSS")
    # Parsed by us, not argparse: `--loggers abc` must be our one line, not a usage dump.
    load.add_argument("--loggers", default="16", help=f"concurrent loggers (threads), 1-{MAX_LOGGERS}, default 16")
    load.add_argument("--seconds", default="60", help=f"duration in seconds, above 0 and at most {MAX_SECONDS}")
    serve = sub.add_parser("serve", help="serve the champion on 127.0.0.1:$SERVE_PORT (5050), following its alias")
    serve.add_argument("--model-name", default="airline-delay")
    serve.add_argument("--alias", default="champion")
    serve.add_argument("--poll-seconds", type=float, default=30.0, help="how often the alias is checked")
    serve.add_argument("--detach", action="store_true", help="return once it answers; it keeps running")
    serve.add_argument("--stop", action="store_true", help="stop the endpoint (make down stops it too)")
    _day_two_commands(sub)
    return parser


def _day_two_commands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("backup", help="pg_dump the MLflow database into <state dir>/backups; prints the backup's key last")
    sub.add_parser("backups", help="list the backups (in <state dir>/backups, apart from the bucket), oldest first")
    restore = sub.add_parser("restore", help="replace the MLflow database's contents by a backup")
    restore.add_argument("key", help="the backup's key, as `backup` printed it (backups/mlflow-...dump)")
    gc = sub.add_parser("gc", help="permanently remove runs deleted longer ago than --older-than, with artifacts")
    gc.add_argument("--older-than", default="30d", help="age such as 30d, 12h, 1d2h30m; 0 = all (default 30d)")
    gc.epilog = "An age that starts with '-' must be written --older-than=VALUE."
    upgrade = sub.add_parser("upgrade-check", help="rehearse `mlflow db upgrade` on a restored copy of a backup")
    upgrade.add_argument("--backup", dest="key", help="backup key (default: the latest)")
    upgrade.add_argument("--python", default=sys.executable, help="Python of the MLflow to upgrade to")
    sub.add_parser("upgrade-db", help="back up, then `mlflow db upgrade` the live database (server restarted)")


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _run_day_two(stack: LocalStack, args: argparse.Namespace) -> None:
    from local_stack import backup, garbage_collection, upgrade_check

    if args.command == "backup":
        print(backup.create_backup(stack, log=_log))
    elif args.command == "backups":
        keys = backup.list_backups(stack)
        _log(
            f"{len(keys)} backup(s) in {stack.settings.backup_dir} (apart from the artifact bucket; "
            "`down --wipe` deletes them too: copy them elsewhere to keep them)"
        )
        for key in keys:
            print(key)
    elif args.command == "restore":
        backup.check_key(args.key)
        backup.restore(stack, args.key, log=_log)
    elif args.command == "gc":
        removed = garbage_collection.collect(stack, args.older_than)
        print(f"removed {len(removed)} deleted run(s) older than {args.older_than}: {' '.join(removed) or '-'}")
    elif args.command == "upgrade-check":
        python = Path(args.python)
        if not (python.is_file() and os.access(python, os.X_OK)):
            raise StackError(f"--python {args.python!r} is not an executable Python; name one, e.g. .venv/bin/python")
        if args.key is not None:
            backup.check_key(args.key)
        report = upgrade_check.check_upgrade(stack, args.key, args.python, log=_log)
        print(
            f"upgrade check passed: MLflow {report.mlflow_version} upgraded a copy of {report.backup_key} and "
            f"served all {report.runs_served} runs ({report.seconds:.0f}s); the scratch database is removed"
        )
    elif args.command == "upgrade-db":
        key = upgrade_check.upgrade_live(stack, log=_log)
        print(f"database upgraded; the backup taken before is {key} (make restore BACKUP={key} to go back)")


def _require_healthy(stack: LocalStack) -> None:
    """``env`` prints nothing unless every service answers: a client must never fall back to a local store."""
    services = health.inspect(stack)
    down = [service for service in services if not service.ok]
    if len(down) == len(services) and all(service.line.startswith("stopped") for service in down):
        raise StackError("the local stack is not running; start it with `make up`")
    if down:
        problems = "; ".join(f"{service.name} {service.line}" for service in down)
        raise StackError(f"the local stack is not fully running, so no environment is printed: {problems}")


def _print_env(stack: LocalStack, mask: bool) -> None:
    for name, value in stack.client_env().items():
        shown = '<hidden: eval "$(make env)" sets it>' if mask and name in SECRET_VARS else shlex.quote(value)
        print(f"export {name}={shown}")


def _serve(stack: LocalStack, args: argparse.Namespace) -> int:
    from local_stack import model_serving

    if args.stop:
        print("model endpoint stopped" if model_serving.stop(stack.settings) else "no model endpoint was running")
        return 0
    if args.poll_seconds <= 0:
        raise StackError("--poll-seconds must be above 0 (e.g. 30)")
    config = model_serving.ServingConfig(
        args.model_name, args.alias, model_serving.serve_port(), args.poll_seconds, stack.settings.host
    )
    _require_healthy(stack)
    started = model_serving.start(stack.settings, stack.client_env(), config)
    state = "serving" if started else "already serving"
    detail = f"(POST /invocations; the alias is checked every {config.poll_seconds:g}s)"
    ask = (
        'every request needs the stack\'s login; after eval "$(make env)": curl -s -u '
        f'"$MLFLOW_TRACKING_USERNAME:$MLFLOW_TRACKING_PASSWORD" {config.url}/ping -i (docs/serving.md: /invocations)'
    )
    if args.detach:
        _log(f"{state} {config.model_uri} at {config.url} {detail}")
        _log(ask)
        _log("it keeps running: `python -m local_stack serve --stop` or `make down` stops it")
        print(config.url)  # last and alone on stdout, for scripts (make demo)
        return 0
    print(f"{state} {config.model_uri} at {config.url} {detail}; Ctrl-C stops it", flush=True)
    print(ask, flush=True)
    return model_serving.follow_log(stack.settings)


def _status(stack: LocalStack) -> int:
    """Print one line per service (and the disk's when it is full); 0 only when every service answers, its PID
    file is sound and the disk has room, so that scripts and supervisors can act on the exit status."""
    services = health.inspect(stack)
    for service in services:
        print(f"{service.name:8} {service.line}")
    full = stack.settings.state_dir.exists() and disk.full_disk(stack.settings.state_dir)
    if full:
        print(f"{'disk':8} FULL: {full}")
    print(f"state: {stack.settings.state_dir}")
    return 1 if full or not all(service.ok for service in services) else 0


def _ui_links():
    """The trainer's ``ui_links`` (every UI link the project prints is built there); ``python -m local_stack``
    runs from the repository root, where ``trainer/`` is not on the import path."""
    trainer = str(REPO_ROOT / "trainer")
    if trainer not in sys.path:
        sys.path.append(trainer)
    from airline_hpo import ui_links

    return ui_links


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        stack = LocalStack(_settings(args))
        if args.command == "up":
            stack.up()
            print(f"\nlocal stack is up: MLflow UI and API at {stack.settings.tracking_uri}")
            print('client environment (eval "$(make env)" to set it in your shell):')
            _print_env(stack, mask=True)
            print(
                f"every request needs a login: user {tracking_server.ADMIN_USERNAME}, password = "
                "MLFLOW_TRACKING_PASSWORD of `make env` (the browser asks for it once)"
            )
        elif args.command == "down":
            stopped = stack.down(wipe=args.wipe)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
            if args.wipe:
                print(f"deleted {stack.settings.state_dir}")
        elif args.command == "status":
            return _status(stack)
        elif args.command == "env":
            _require_healthy(stack)
            _print_env(stack, mask=False)
        elif args.command == "check":
            from local_stack.smoke_check import run_smoke_check

            disk.require_room(stack.settings.state_dir)
            os.environ.update(stack.client_env())  # the MLflow client reads its credentials from the environment
            # A hung server (full disk, stopped database) must fail the check in about a minute, not in ten.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            try:
                result = run_smoke_check(stack)
            except Exception as exc:
                raise StackError(
                    disk.full_disk(stack.settings.state_dir)
                    or f"the check failed: {_first_line(exc)}; `python -m local_stack status` names the service"
                ) from None
            print(f"run {result.run_id} in experiment {result.experiment_id}: metric answer={result.metric}")
            print(f"artifact read back through MLflow: {result.artifact_text.strip()!r}")
            print(f"artifact object in the bucket: s3://{stack.settings.bucket}/{result.object_key}")
            link = _ui_links().run_url(stack.settings.tracking_uri, result.experiment_id, result.run_id)
            print(f"see it in the UI: {link}")
        elif args.command == "load":
            from local_stack.load import run_load

            loggers, seconds = _load_options(args)
            _require_healthy(stack)
            report = run_load(stack, loggers, seconds)
            print("\n".join(report.lines()))
            if report.error_count:
                return 1
        elif args.command == "serve":
            return _serve(stack, args)
        else:
            _run_day_two(stack, args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {disk.describe_os_error(exc, _state_dir_named(args))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
