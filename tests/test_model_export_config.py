"""Each pattern's model-export step trains exactly the models its services serve."""

import pytest

from tests.compose_config import compose_config, patterns


def exported(pattern: str) -> set[str]:
    """The models named after ``--only`` in the pattern's model-export command (``name``
    or ``name:version``: the model's name either way)."""
    command = compose_config(pattern)["services"]["model-export"]["command"]
    assert "--only" in command, f"{pattern}'s model-export trains every model"
    return {key.partition(":")[0] for key in command[command.index("--only") + 1 :]}


def served(pattern: str) -> set[str]:
    """The models the pattern's services load: MODEL_NAME, MODELS (``name[:version]``) and
    PREDICTOR_URLS."""
    names: set[str] = set()
    for service in compose_config(pattern, profiles="")["services"].values():
        env = service.get("environment") or {}
        names.update(filter(None, [env.get("MODEL_NAME")]))
        models = (env.get("MODELS") or "").split(",")
        names.update(n.partition(":")[0].strip() for n in models if n.strip())
        urls = env.get("PREDICTOR_URLS") or ""
        names.update(item.split("=")[0].strip() for item in urls.split(",") if "=" in item)
    return names


@pytest.mark.parametrize("pattern", patterns())
def test_a_pattern_exports_only_the_models_it_serves(pattern: str) -> None:
    assert served(pattern), f"{pattern} names no model"
    assert exported(pattern) == served(pattern)
