"""`python -m backend serve`: bind, print where (one JSON line), serve until stopped or the parent dies."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from backend.protocol import LISTENING, Limits

if TYPE_CHECKING:  # the server's libraries load when it starts: the CLI's parser imports this module
    import uvicorn

MIN_TOKEN_LENGTH = 16


def default_jobs_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lim4d" / "jobs"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_or_make_token(token_file: str | None) -> tuple[str, bool]:
    """(token, made_here). A token file is read, or created (mode 0600) with a fresh token when absent."""
    if token_file is None:
        return secrets.token_urlsafe(32), True
    path = Path(token_file)
    if path.is_file():
        token = path.read_text().strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise SystemExit(f"{path}: a token needs at least {MIN_TOKEN_LENGTH} characters")
        return token, False
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token, False


def watch_parent(pid: int, server: uvicorn.Server, grace_s: float = 10.0) -> None:
    """Stop the server as soon as the process that started us (Blender) is gone; exit hard if stopping hangs."""
    try:
        parent: psutil.Process | None = psutil.Process(pid)  # remembers its start time, so a reused pid is not it
    except psutil.NoSuchProcess:
        parent = None

    def gone() -> bool:
        try:
            return parent is None or not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:  # it vanished between the checks
            return True

    def watch() -> None:
        while not gone():
            time.sleep(0.5)
        server.should_exit = True
        time.sleep(grace_s)  # a clean stop ends the process before this wakes
        os._exit(0)

    threading.Thread(target=watch, name="lim4d-parent", daemon=True).start()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless --allow-remote)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on the first line)")
    parser.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    parser.add_argument("--token-file", default=None, help="read the token from here (created when absent)")
    parser.add_argument("--jobs", default=None, help=f"job folders (default {default_jobs_folder()})")
    parser.add_argument("--checkpoints", default="backend/checkpoints")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where jobs run (auto: the GPU when there is one)")
    parser.add_argument("--allowed-root", action="append", default=[], help="only read inputs under these folders")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    parser.add_argument("--max-frames", type=int, default=Limits.max_frames)
    parser.add_argument("--max-resolution", type=int, default=Limits.max_resolution)
    parser.add_argument("--max-upload-mb", type=int, default=Limits.max_upload_bytes // 2**20)


def resolve_device(choice: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error that says so."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine's torch sees no CUDA GPU (use --device cpu or auto)")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.server.app import ServerConfig, create_app
    from backend.server.jobs import JobRunner, JobStore

    device = resolve_device(args.device)
    if not is_loopback(args.host) and not (args.allow_remote and args.token_file):
        print(f"refusing to bind {args.host}: other machines could reach the backend. Pass --allow-remote and "
              "--token-file (the token the remote add-on will use) to serve beyond this machine.", file=sys.stderr)
        return 2
    token, made_here = read_or_make_token(args.token_file)
    store = JobStore(Path(args.jobs) if args.jobs else default_jobs_folder())
    checkpoints = Path(args.checkpoints).resolve()
    runner = JobRunner(store, checkpoints, device)
    limits = Limits(max_frames=args.max_frames, max_resolution=args.max_resolution,
                    max_upload_bytes=args.max_upload_mb * 2**20)
    config = ServerConfig(store.root, checkpoints, token, limits, [Path(r).resolve() for r in args.allowed_root],
                          device)
    app = create_app(config, runner)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    line = {"lim4d": LISTENING, "address": address, "url": f"http://{address}", "pid": os.getpid(), "jobs": str(store.root),
            "device": device}
    if made_here:
        line["token"] = token
    print(json.dumps(line), flush=True)

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    if args.parent_pid:
        watch_parent(args.parent_pid, server)
    runner.start()
    try:
        server.run(sockets=[sock])
    finally:
        runner.shutdown()
    return 0
