"""The ``domainvit`` command line (also ``python -m domainvit``).

User errors (bad config, missing file, wrong checkpoint) print one line and exit 1;
only bugs produce a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from domainvit.errors import UserError


def _cmd_list(args: argparse.Namespace) -> int:
    from domainvit.registry import iter_tasks, unavailable_tasks

    tasks = list(iter_tasks())
    if not tasks:
        print("no tasks are registered")
    for task in tasks:
        print(f"{task.name}: {task.description}")
        for entry in task.models:
            print(f"  model  {entry.name}: {entry.description}")
        for name, path in task.bundled_configs().items():
            print(f"  config {task.name}/{name}  ({path})")
    for name, reason in unavailable_tasks().items():
        print(f"{name}: unavailable ({reason})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from domainvit.engine import train

    train(args.config, args.set, args.resume)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from domainvit.distributed import env_dist_info
    from domainvit.engine import evaluate

    metrics = evaluate(args.config, args.checkpoint, args.set, args.split)
    if not env_dist_info().is_main:
        return 0  # every rank holds the same scores (gathered); one prints them
    if args.json:
        print(json.dumps(metrics))
    else:
        for name, value in metrics.items():
            shown = (" ".join(f"{v:.4g}" for v in value) if isinstance(value, list)
                     else f"{value:.6g}")
            print(f"{name}: {shown}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from domainvit.engine import predict

    for path in predict(args.config, args.checkpoint, args.inputs, args.out, args.set,
                        force=args.force):
        # One write per line: torchrun ranks share stdout, and print() would write the
        # newline separately when output is unbuffered, letting ranks' lines interleave.
        sys.stdout.write(f"{path}\n")
        sys.stdout.flush()
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from domainvit.engine import record_data_info

    info = record_data_info(args.config, args.checkpoint, args.set)
    print(json.dumps(info, indent=1) if args.json else
          f"{args.checkpoint}: data_info recorded ({', '.join(sorted(info)) or 'nothing'})")
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from domainvit.datasets import registry
    from domainvit.files import cache_root
    from domainvit.registry import load_tasks

    load_tasks()
    entries = registry.sample_datasets()
    if not entries:
        print("no sample datasets are registered")
    print(f"data folder: {cache_root()}")
    for entry in entries:
        status = "prepared" if registry.is_prepared(entry.name) else "not prepared"
        print(f"{entry.name} [{status}] ({', '.join(entry.tasks)}): {entry.description}")
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from domainvit.datasets import registry
    from domainvit.registry import load_tasks

    load_tasks()
    print(registry.prepare(args.name, force=args.force))
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    from domainvit.dashboard.launch import MODELS_ENV, streamlit_command

    if importlib.util.find_spec("streamlit") is None:
        raise UserError("the dashboard needs Streamlit: pip install 'domainvit[dashboard]'")
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: expected a port number in 1..65535")
    env = dict(os.environ)
    if args.models is not None:
        if not os.path.isdir(args.models):
            raise UserError(f"--models {args.models}: not a folder")
        env[MODELS_ENV] = os.path.abspath(args.models)
    command = streamlit_command(args.port, args.address)
    print(f"starting the dashboard on http://{args.address}:{args.port} (Ctrl+C stops it)",
          file=sys.stderr)
    # the server takes this process's place, so signals (Ctrl+C, a service manager's
    # SIGTERM) reach it directly and nothing is left running behind it
    os.execve(command[0], command, env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domainvit",
        description="Vision transformers for medical imaging, remote sensing and 3D "
                    "perception: train, evaluate and predict from task configs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def config_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("config", metavar="CONFIG",
                         help="YAML config file, or TASK/NAME for a bundled config")
        sub.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                         help="override one config value (YAML syntax); repeatable")

    add("list", _cmd_list, "list registered tasks, their models and bundled configs")

    sub = add("train", _cmd_train, "train a model from a config")
    config_args(sub)
    sub.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last checkpoint")

    sub = add("eval", _cmd_eval, "evaluate a checkpoint")
    config_args(sub)
    sub.add_argument("--checkpoint", required=True, metavar="PATH",
                     help="a .safetensors checkpoint or a run directory")
    sub.add_argument("--split", help="dataset split (default: the task's test split)")
    sub.add_argument("--json", action="store_true",
                     help="print exactly one JSON object of metric name -> value")

    sub = add("predict", _cmd_predict,
              "predict input files into a folder (inputs are sharded across torchrun ranks)")
    config_args(sub)
    sub.add_argument("--checkpoint", required=True, metavar="PATH",
                     help="a .safetensors checkpoint or a run directory")
    sub.add_argument("inputs", nargs="+", metavar="INPUT", help="input files")
    sub.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sub.add_argument("--force", action="store_true",
                     help="predict inputs the model refuses as unlike its training data "
                          "(the output's sidecar records the override)")

    sub = add("data-info", _cmd_data_info,
              "record the training data's facts and distribution in a checkpoint (for "
              "checkpoints saved without them; the weights are kept)")
    config_args(sub)
    sub.add_argument("--checkpoint", required=True, metavar="PATH",
                     help="a .safetensors checkpoint or a run directory")
    sub.add_argument("--json", action="store_true", help="print the record as JSON")

    data = commands.add_parser("data", help="sample datasets",
                               description="sample datasets registered by the tasks")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub = data_commands.add_parser("list", help="list sample datasets and whether they are built",
                                   description="list sample datasets and whether they are built")
    sub.set_defaults(handler=_cmd_data_list)
    sub = data_commands.add_parser("prepare", help="build a sample dataset into the data folder",
                                   description="build a sample dataset into $DOMAINVIT_DATA "
                                               "(default ~/.cache/domainvit)")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    sub.set_defaults(handler=_cmd_data_prepare)

    from domainvit.dashboard.launch import DEFAULT_ADDRESS, DEFAULT_PORT

    sub = add("dashboard", _cmd_dashboard,
              "start the Streamlit dashboard (upload a scan, pick a model, look, download)")
    sub.add_argument("--port", type=int, default=DEFAULT_PORT,
                     help=f"port to serve on (default {DEFAULT_PORT})")
    sub.add_argument("--address", "--host", default=DEFAULT_ADDRESS, metavar="ADDRESS",
                     help=f"address to serve on (default {DEFAULT_ADDRESS}; 0.0.0.0 serves "
                          "every network interface)")
    sub.add_argument("--models", metavar="DIR",
                     help="a folder of extra checkpoints (*.safetensors with their .json "
                          "sidecars, searched recursively); default: $DOMAINVIT_MODELS")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"domainvit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("domainvit: interrupted", file=sys.stderr)
        return 130
    finally:
        # A command under torchrun joined a process group (domainvit.engine.setup_device);
        # leaving it here, where the command ends, frees its resources on every rank.
        from domainvit.distributed import shutdown_distributed

        shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
