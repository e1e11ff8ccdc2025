"""The `execnet` command: start interpreters and look at them, run code, sync trees, serve.

    execnet info popen popen//python=python3
    execnet exec popen "import sys; channel.send(sys.version)"
    execnet rsync ./src popen:/tmp/copy --delete
    execnet serve 127.0.0.1:8888 --loop
    execnet serve 0.0.0.0:8888 --loop --tls-cert s.pem --tls-key s.key --tls-client-ca ca.pem

Exit codes (scripts may rely on them):
    0  done
    1  the remote code failed (RemoteError), or an rsync failed
    2  usage error: bad arguments or a spec that does not parse
    3  a gateway could not be started (host not found, interpreter missing, ...)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from execnet_group import Group
    from execnet_transport import Gateway, XSpec

EXIT_OK = 0
EXIT_REMOTE_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_GATEWAY = 3
EXIT_INTERRUPTED = 130

TERMINATE_TIMEOUT = 5.0


class CommandError(Exception):
    """An error to report in one line, with the exit code to leave with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parse_spec(text: str) -> XSpec:
    from execnet_transport import XSpec

    try:
        return XSpec(text)
    except (ValueError, AttributeError) as exc:
        raise CommandError(f"bad spec {text!r}: {exc}", EXIT_USAGE) from None


def _open(group: Group, spec: XSpec) -> Gateway:
    from execnet_transport import HostNotFound

    try:
        return group.makegateway(spec)
    except HostNotFound as exc:
        reason = _first_line(exc, spec)
        raise CommandError(
            f"host not found for spec {str(spec)!r}: {reason}", EXIT_NO_GATEWAY
        ) from None
    except Exception as exc:  # every way a bootstrap fails: one line, naming the spec
        reason = _first_line(exc, spec)
        raise CommandError(
            f"cannot start gateway {str(spec)!r}: {reason}", EXIT_NO_GATEWAY
        ) from None


def _first_line(error: BaseException, spec: Optional[XSpec] = None) -> str:
    """The first line of an error's text, without a leading "gateway '<spec>': " we repeat."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if spec is not None:
        for prefix in (f"gateway {str(spec)!r}: ", f"gateway {spec.id!r}: "):
            if line.startswith(prefix):
                line = line[len(prefix) :]
    return line


# -- info -------------------------------------------------------------------------------

_INFO_SOURCE = """
import os, platform, sys
channel.send({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": platform.python_implementation(),
    "platform": sys.platform,
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "executable": sys.executable,
})
"""

INFO_COLUMNS = ("id", "spec", "python", "implementation", "platform", "pid", "cwd", "startup")


def _info_row(group: Group, spec: XSpec) -> Tuple[Optional[Dict[str, str]], Optional[CommandError]]:
    started = time.perf_counter()
    try:
        gateway = _open(group, spec)
    except CommandError as exc:
        return None, exc
    elapsed = time.perf_counter() - started
    from execnet_channel import RemoteError

    try:
        facts = gateway.remote_exec(_INFO_SOURCE).receive(60)
    except (RemoteError, EOFError, OSError) as exc:
        return None, CommandError(f"{spec}: {_first_line(exc)}", EXIT_NO_GATEWAY)
    row = {
        "id": gateway.id,
        "spec": str(spec),
        "python": facts["version"],
        "implementation": facts["implementation"],
        "platform": facts["platform"],
        "pid": str(facts["pid"]),
        "cwd": facts["cwd"],
        "startup": f"{elapsed * 1000:.0f}ms",
    }
    return row, None


def cmd_info(args: argparse.Namespace) -> int:
    from execnet_group import Group

    specs = [_parse_spec(text) for text in args.specs]
    group = Group()
    for spec in specs:
        group.allocate_id(spec)
    results: List[Tuple[Optional[Dict[str, str]], Optional[CommandError]]] = [(None, None)] * len(
        specs
    )

    def work(index: int) -> None:
        try:
            results[index] = _info_row(group, specs[index])
        except Exception as exc:
            results[index] = (
                None,
                CommandError(f"{specs[index]}: {_first_line(exc)}", EXIT_NO_GATEWAY),
            )

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(specs))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        group.terminate(TERMINATE_TIMEOUT)
    rows = [row for row, _ in results if row is not None]
    if rows:
        _print_table(rows)
    code = EXIT_OK
    for _, error in results:
        if error is not None:
            print(f"execnet: error: {error}", file=sys.stderr)
            code = max(code, error.code)
    return code


def _print_table(rows: List[Dict[str, str]]) -> None:
    """Aligned columns, one gateway per line: readable on a terminal, parseable when piped.

    (Long cwd or spec values stay whole rather than being folded or cut to fit.)
    """
    widths = {col: max(len(col), *(len(row[col]) for row in rows)) for col in INFO_COLUMNS}
    print("  ".join(col.ljust(widths[col]) for col in INFO_COLUMNS).rstrip())
    for row in rows:
        print("  ".join(row[col].ljust(widths[col]) for col in INFO_COLUMNS).rstrip())


# -- exec -------------------------------------------------------------------------------

# The user's code runs as compiled from its own file name, so remote tracebacks name the
# real file and line; --arg values become globals beside `channel`.
_EXEC_WRAPPER = """
globals().update(channel.receive())
__execnet_source, __execnet_filename = channel.receive()
exec(compile(__execnet_source, __execnet_filename, "exec"), globals())
"""


def _parse_args_option(pairs: Sequence[str]) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise CommandError(
                f"--arg wants NAME=VALUE with NAME an identifier, not {pair!r}", EXIT_USAGE
            )
        values[name] = value
    return values


def cmd_exec(args: argparse.Namespace) -> int:
    from execnet_channel import NotProperlyTerminated, RemoteError
    from execnet_group import Group

    if (args.code is None) == (args.file is None):
        raise CommandError("exec wants either CODE or -f FILE (one of them)", EXIT_USAGE)
    values = _parse_args_option(args.arg or [])
    if args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as handle:
                source = handle.read()
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}", EXIT_USAGE) from None
        filename = os.path.abspath(args.file)
    else:
        source, filename = textwrap.dedent(args.code), "<execnet exec>"
    spec = _parse_spec(args.spec)
    group = Group()
    try:
        gateway = _open(group, spec)
        channel = gateway.remote_exec(_EXEC_WRAPPER)
        channel.send(values)
        channel.send((source, filename))
        try:
            while True:
                item = channel.receive()
                print(item if isinstance(item, str) else repr(item), flush=True)
        except RemoteError as exc:
            print(_remote_text(exc), file=sys.stderr)
            return EXIT_REMOTE_ERROR
        except EOFError as exc:
            lost = channel._getremoteerror()  # set when the connection was lost
            if isinstance(lost, (EOFError, NotProperlyTerminated)):
                raise CommandError(
                    f"{spec}: connection lost: {_first_line(lost)}", EXIT_REMOTE_ERROR
                ) from None
            if not channel.isclosed():
                raise CommandError(f"{spec}: {_first_line(exc)}", EXIT_REMOTE_ERROR) from None
    finally:
        group.terminate(TERMINATE_TIMEOUT)
    return EXIT_OK


def _remote_text(error: BaseException) -> str:
    formatted = getattr(error, "formatted", None)
    return str(formatted if formatted is not None else error).rstrip()


# -- rsync ------------------------------------------------------------------------------


def _split_target(target: str) -> Tuple[str, str]:
    spec, sep, dest = target.rpartition(":")
    if not sep or not spec or not dest:
        raise CommandError(f"target must be SPEC:DEST, not {target!r}", EXIT_USAGE)
    return spec, dest


class _Progress:
    """Bytes and files sent, shown on a terminal; nothing when output is piped."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.files = 0
        self.bytes = 0
        self.total = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            try:
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    Progress,
                    TextColumn,
                    TransferSpeedColumn,
                )
            except ImportError:
                pass
            else:
                self._bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    transient=False,
                )
                self._bar.start()
                self._task = self._bar.add_task("rsync", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled:
            print(f"\r{self._text()}", flush=True)

    def _text(self) -> str:
        return f"{self.files} files, {self.bytes}/{self.total} bytes"

    def __call__(self, kind: str, number: int, channel: object) -> None:
        with self._lock:
            if kind == "list":
                self.total += number
            elif kind == "ack":
                self.files += 1
                self.bytes += number
            if not self.enabled:
                return
            if self._bar is not None:
                self._bar.update(
                    self._task,
                    total=self.total,
                    completed=self.bytes,
                    description=f"rsync {self.files} files",
                )
            else:
                print(f"\r{self._text()}", end="", flush=True)


def cmd_rsync(args: argparse.Namespace) -> int:
    from execnet_group import Group
    from execnet_rsync import RSync

    if not os.path.isdir(args.src):
        raise CommandError(f"source is not a directory: {args.src}", EXIT_USAGE)
    spec_text, dest = _split_target(args.target)
    spec = _parse_spec(spec_text)
    group = Group()
    try:
        gateway = _open(group, spec)
        with _Progress(sys.stdout.isatty()) as progress:
            rsync = RSync(args.src, callback=progress, verbose=False)
            rsync.add_target(gateway, dest, delete=args.delete)
            try:
                rsync.send()
            except Exception as exc:
                raise CommandError(
                    f"rsync to {args.target} failed: {exc}".splitlines()[0], EXIT_REMOTE_ERROR
                ) from None
    finally:
        group.terminate(TERMINATE_TIMEOUT)
    return EXIT_OK


# -- serve ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from execnet_transport import serve_socket
    from execnet_transport.socketserver import server_options

    address = args.address or "127.0.0.1:8888"
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise CommandError(f"address must be HOST:PORT, not {address!r}", EXIT_USAGE)
    host = (host or "127.0.0.1").strip("[]")
    try:
        options = server_options(args)
    except OSError as exc:
        raise CommandError(
            f"cannot read secret file {args.secret_file}: {exc.strerror}", EXIT_USAGE
        ) from None
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None

    def announce(bound_host: str, bound_port: int) -> None:
        print(f"listening on {bound_host}:{bound_port}", flush=True)

    try:
        serve_socket(host, int(port_text), loop=args.loop, on_listening=announce, **options)
    except KeyboardInterrupt:
        return EXIT_OK  # the way to stop a server
    except ValueError as exc:  # no authentication on an open address, a bad certificate
        raise CommandError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(
            f"cannot serve on {host}:{port_text}: {exc.strerror or exc}", EXIT_NO_GATEWAY
        ) from None
    return EXIT_OK


# -- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="execnet",
        description="Start Python interpreters on demand, run code there, sync trees, serve.",
        epilog=(
            "exit codes: 0 done, 1 remote code or rsync failed, 2 usage error or bad spec, "
            "3 gateway could not be started, 130 interrupted"
        ),
    )
    from .__about__ import __version__

    parser.add_argument("--version", action="version", version=f"execnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser(
        "info",
        help="start each spec (in parallel) and show what runs there",
        description="Bootstrap every SPEC at once and print a table: id, spec, python version, "
        "implementation, platform, pid, cwd, startup time. Exit 3 if one could not be started.",
    )
    info.add_argument(
        "specs", nargs="+", metavar="SPEC", help="e.g. popen, popen//python=python3, ssh=host"
    )
    info.set_defaults(func=cmd_info)

    exe = sub.add_parser(
        "exec",
        help="run code on a gateway and print what it sends",
        description="Run CODE (or the file given with -f) on SPEC with a global `channel`; print "
        "every item the remote sends until it closes the channel. A remote exception prints "
        "the remote traceback and exits 1.",
    )
    exe.add_argument("spec", metavar="SPEC")
    exe.add_argument("code", nargs="?", metavar="CODE", help="Python source to run remotely")
    exe.add_argument("-f", "--file", metavar="FILE", help="run this file instead of CODE")
    exe.add_argument(
        "--arg",
        action="append",
        metavar="NAME=VALUE",
        help="a global string NAME for the code (repeatable)",
    )
    exe.set_defaults(func=cmd_exec)

    rsync = sub.add_parser(
        "rsync",
        help="copy a directory tree to a gateway",
        description="Send the directory SRC to DEST on the gateway SPEC (only what changed). "
        "Shows progress (bytes and files) on a terminal, prints nothing when piped.",
    )
    rsync.add_argument("src", metavar="SRC")
    rsync.add_argument("target", metavar="SPEC:DEST")
    rsync.add_argument("--delete", action="store_true", help="delete files in DEST that SRC lacks")
    rsync.set_defaults(func=cmd_rsync)

    serve = sub.add_parser(
        "serve",
        help="run a socket server that socket=HOST:PORT gateways connect to",
        description="Listen on HOST:PORT (default 127.0.0.1:8888; port 0 picks a free one; "
        "'listening on HOST:PORT' is printed once bound) and serve one client (the first "
        "that completes the handshake: clients that fail do not count), or with --loop "
        "every client until interrupted. Anyone who can connect and authenticate runs "
        "code: on an address other than loopback the server refuses to start without "
        "--secret-file or --tls-client-ca (TLS with client certificates), unless "
        "--allow-unauthenticated says an open exec port is meant.",
    )
    serve.add_argument("address", nargs="?", metavar="HOST:PORT")
    serve.add_argument(
        "--loop",
        action="store_true",
        help="serve every client until interrupted (without it: one client, then exit)",
    )
    from execnet_transport.socketserver import add_server_options

    add_server_options(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `execnet` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CommandError as exc:
        print(f"execnet: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("execnet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
