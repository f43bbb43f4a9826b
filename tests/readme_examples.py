"""Run a README's marked curl examples against a running stack; compare each answer's shape.

A README marks the examples a test runs with a fenced block whose info string is
``console e2e`` (GitHub still colours it as ``console``)::

    ```console e2e
    $ curl -s http://127.0.0.1:8000/predict -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    {"predictions": [{"label": "setosa", ...}], "model_name": "iris", "model_version": "1"}
    ```

Each ``$ `` line is a command (a line ending in ``\\`` continues on the next); the lines
after it, up to the next ``$ `` line, are the answer the README quotes, as JSON. The
command's address ``http://127.0.0.1:8000`` is swapped for the stack's, and the request
it makes is sent from the project's root (the nearest folder above the README with a
Makefile: the repository, or a starter), where a user types it, so ``@file`` paths resolve
as they do for the user. The command is not handed to a curl binary but read: its options
(``-s``, ``-X``, ``-H``, ``-d``/``--data``, ``--data-binary``, ``-F``) become the request curl
would send (``-d`` without a Content-Type header sends curl's form type, ``-d @file`` drops the
file's newlines as curl does), made with httpx. So the check needs nothing but Python, like
the rest of ``make test``; an option outside that set is an error, so a README cannot use one
the check does not understand. The answer must
have the quoted answer's shape: the same keys and the same JSON types all the way down
(numbers of any kind are one type; every element of a list is compared with the quoted
elements' shapes), not the same values, which may differ from run to run. A string
or integer field of an earlier answer can be named in a later command as ``$FIELD``
(upper case), e.g. ``$JOB_ID`` after an answer with ``"job_id"``, and the first element
of a list as ``$FIELD_0`` (``$IDS_0`` after ``"ids": [7, 8]``). A command whose answer does not yet
have the quoted shape (a job still running) is repeated until it has, or until the
timeout.
"""

import json
import mimetypes
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MARKER = "console e2e"
QUOTED_BASE_URL = "http://127.0.0.1:8000"
_FENCE = re.compile(r"^```\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Example:
    """One command of a marked block and the answer the README quotes for it."""

    command: str
    quoted_answer: str


def marked_examples(markdown: str) -> list[Example]:
    """The examples of every ``console e2e`` block of ``markdown``, in order."""
    examples: list[Example] = []
    in_marked = in_other = False
    command: list[str] = []
    answer: list[str] = []

    def flush() -> None:
        if command:
            examples.append(Example(" ".join(command), "\n".join(answer).strip()))
        command.clear()
        answer.clear()

    for line in markdown.splitlines():
        fence = _FENCE.match(line.strip())
        if fence and not in_marked and not in_other:
            in_marked = fence["info"].strip() == MARKER
            in_other = not in_marked
            continue
        if fence and line.strip() == "```":
            if in_marked:
                flush()
            in_marked = in_other = False
            continue
        if not in_marked:
            continue
        if line.startswith("$ "):
            flush()
            command.append(line[2:].strip())
        elif command and command[-1].endswith("\\") and not answer:
            command[-1] = command[-1].removesuffix("\\").rstrip()
            command.append(line.strip())
        else:
            answer.append(line)
    return examples


def shape(value: Any) -> Any:
    """What a JSON value looks like, values left out: keys and types all the way down."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if shape(item) not in shapes:
                shapes.append(shape(item))
        return shapes
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def _captured_fields(answer: Any) -> dict[str, str]:
    """An answer's top-level strings and integers by upper-case name, and the first
    element of each list of them as NAME_0 (``"ids": [7, 8]`` gives ``$IDS_0``)."""
    if not isinstance(answer, dict):
        return {}
    fields: dict[str, str] = {}
    for key, item in answer.items():
        name, value = (f"{key}_0", item[0]) if isinstance(item, list) and item else (key, item)
        if isinstance(value, str | int) and not isinstance(value, bool):
            fields[name.upper()] = str(value)
    return fields


def _argv(command: str, base_url: str, fields: dict[str, str]) -> list[str]:
    argv = shlex.split(command.replace(QUOTED_BASE_URL, base_url))
    if not argv or argv[0] != "curl":
        raise ValueError(f"a marked example must be a curl command: {command}")
    named = re.compile(r"\$([A-Z][A-Z0-9_]*)")
    unknown = {name for arg in argv for name in named.findall(arg)} - fields.keys()
    if unknown:
        raise ValueError(f"{command}: no earlier answer has {sorted(unknown)}")
    return [named.sub(lambda m: fields[m[1]], arg) for arg in argv]


def _curl_request(argv: list[str], cwd: Path) -> httpx.Request:
    """The request curl would send for ``argv`` (the options the module docstring lists)."""
    method, url, data = "", "", None
    headers: dict[str, str] = {}
    files: dict[str, tuple[str | None, bytes, str]] = {}
    options = iter(argv[1:])
    for option in options:
        if option == "-s":
            continue
        if option == "-X":
            method = next(options)
        elif option == "-H":
            name, _, value = next(options).partition(":")
            headers[name.strip()] = value.strip()
        elif option in ("-d", "--data", "--data-binary"):
            value = next(options)
            body = (cwd / value[1:]).read_bytes() if value.startswith("@") else value.encode()
            if option != "--data-binary" and value.startswith("@"):
                body = body.replace(b"\r", b"").replace(b"\n", b"")
            data = body if data is None else data + b"&" + body
        elif option == "-F":
            name, _, value = next(options).partition("=")
            if value.startswith("@"):
                path = cwd / value[1:]
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                files[name] = (path.name, path.read_bytes(), kind)
            else:
                files[name] = (None, value.encode(), "text/plain")
        elif option.startswith("-"):
            raise ValueError(f"{shlex.join(argv)}: the README check does not read curl's {option}")
        else:
            url = option
    if data is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    method = method or ("POST" if data is not None or files else "GET")
    return httpx.Request(method, url, headers=headers, content=data, files=files or None)


def _answer_of(argv: list[str], cwd: Path) -> Any:
    try:
        with httpx.Client(timeout=10) as client:
            answer = client.send(_curl_request(argv, cwd))
    except httpx.HTTPError as exc:
        raise AssertionError(f"{shlex.join(argv)} failed: {exc!r}") from exc
    try:
        return json.loads(answer.text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{shlex.join(argv)} answered no JSON: {answer.text[:500]}") from exc


def readme_example_problems(readme: Path, base_url: str, timeout_s: float = 30) -> list[str]:
    """Run ``readme``'s marked examples against ``base_url``; what differs, empty if nothing.

    Raises ValueError when the README marks no example or quotes an answer that is not
    JSON, so that a README cannot pass by having nothing to check.
    """
    examples = marked_examples(readme.read_text())
    if not examples:
        raise ValueError(f"{readme} has no ```{MARKER} block")
    root = next(p for p in readme.resolve().parents if (p / "Makefile").is_file())
    problems: list[str] = []
    fields: dict[str, str] = {}
    for example in examples:
        try:
            quoted = json.loads(example.quoted_answer)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{readme}: the answer quoted for {example.command} is not JSON"
            ) from exc
        argv = _argv(example.command, base_url, fields)
        deadline = time.monotonic() + timeout_s
        answer = _answer_of(argv, root)
        while shape(answer) != shape(quoted) and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = _answer_of(argv, root)
        if shape(answer) != shape(quoted):
            problems.append(
                f"{example.command}\n  quoted shape: {shape(quoted)}\n  answer: {answer}"
            )
        fields.update(_captured_fields(answer))
    return problems
