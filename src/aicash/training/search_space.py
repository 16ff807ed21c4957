"""The model search's space as data: which families to try and, per family, each parameter's choices, and how the
trials are drawn from it.

The space (YAML, `pipelines/search_space.yaml` or `--space FILE`)::

    sampler: random          # or grid: every combination (at most --trials of them, evenly spread)
    families:
      gru:
        hidden_size: [16, 32, 64]                        # a list: one of these values
        learning_rate: {low: 0.001, high: 0.01, log: true}  # a range: int or float, from the field's type
        max_epochs: 10                                   # a constant

Parameters are TrainingConfig fields the family uses (`FAMILY_PARAMETERS`); data settings (horizon, window,
folds) are not searchable, so every trial is scored on the same purged walk-forward folds (they come from the
base config, `--config`). Every value is checked against the field's bounds before anything runs. Random
sampling is Optuna's seeded `RandomSampler` (the family first, then that family's parameters, through
`study.ask()`, a configuration drawn twice counted once): the same space, seed and trials give the same trials.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from aicash.training.config import FAMILY_PARAMETERS, TrainingConfig

Sampler = Literal["random", "grid"]
SAMPLERS: tuple[str, ...] = ("random", "grid")
RANGE_KEYS = ("low", "high", "log")
MAX_DRAWS_PER_TRIAL = 50  # random draws per wanted trial before a small space counts as exhausted
DATA_SETTINGS_HINT = ("data settings (horizon_bars, window_bars, n_folds, ...) are not searched, so that every trial "
                      "is scored on the same folds: set them with --config")


class SearchSpaceError(ValueError):
    """The space file, or the number of trials, cannot make a search; the message names the field and the fix."""


@dataclass(frozen=True)
class Choice:
    """One of `values` (a constant is a choice of one)."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A value between `low` and `high` (both included), on a log scale with `log`; `kind` is the field's type."""

    low: float
    high: float
    log: bool
    kind: type


Parameter = Choice | Range


@dataclass(frozen=True)
class SearchSpace:
    """The families to try, each with its parameters (in the file's order), and the sampler."""

    families: dict[str, dict[str, Parameter]]
    sampler: Sampler = "random"

    def grid(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (family, parameters) combination, families in the file's order."""
        combos: list[tuple[str, dict[str, Any]]] = []
        for family, params in self.families.items():
            names = list(params)
            lists = [self._choices(family, n, params[n]) for n in names]
            combos += [(family, dict(zip(names, values, strict=True))) for values in itertools.product(*lists)]
        return combos

    @staticmethod
    def _choices(family: str, name: str, parameter: Parameter) -> tuple[Any, ...]:
        if isinstance(parameter, Range):
            raise SearchSpaceError(f"space: {family}.{name} is a range, which grid sampling cannot enumerate: list "
                                   f"its values (e.g. {name}: [{parameter.low}, {parameter.high}]), or use "
                                   "`sampler: random`")
        return parameter.values


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: its 1-based number, family, the parameters drawn for it, and its whole config
    (the base config with the family and those parameters)."""

    number: int
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    config: TrainingConfig = field(default_factory=TrainingConfig)

    def to_json(self) -> str:
        return json.dumps({"number": self.number, "family": self.family, "params": self.params,
                           "config": self.config.model_dump(mode="json")}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrialSpec:
        data = json.loads(text)
        return cls(int(data["number"]), str(data["family"]), dict(data["params"]),
                   TrainingConfig.model_validate(data["config"]))


def read_space(source: str | Path) -> Any:
    """The parsed space, unchecked, from a YAML file (a Path) or YAML or JSON text (a str)."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    try:
        return json.loads(text)  # JSON first: YAML 1.1 would read its `1e-05` as text
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"space: not valid YAML: {exc}") from None


def space_json(source: str | Path) -> str:
    """The space as one line of JSON, checked (what the pipeline's `space` parameter carries: KFP's compiled file
    cannot hold a multi-line default)."""
    data = read_space(source)
    parse_space(data)
    return json.dumps(data)


def load_space(source: str | Path) -> SearchSpace:
    """A space from a YAML file (a Path) or YAML or JSON text (a str), validated; `SearchSpaceError` naming the
    field."""
    return parse_space(read_space(source))


def parse_space(data: object) -> SearchSpace:
    """A space from its parsed YAML (a mapping with `families` and an optional `sampler`), validated."""
    if not isinstance(data, Mapping):
        raise SearchSpaceError("space: expected a mapping with `families:` (and optionally `sampler:`); "
                               "see pipelines/search_space.yaml")
    unknown = sorted(set(data) - {"families", "sampler"})
    if unknown:
        raise SearchSpaceError(f"space: unknown key(s) {', '.join(map(str, unknown))}: the space has `families` and "
                               "`sampler` only")
    sampler = data.get("sampler", "random")
    if sampler not in SAMPLERS:
        raise SearchSpaceError(f"space: sampler {sampler!r} is unknown: use one of {', '.join(SAMPLERS)}")
    families = data.get("families")
    if not families:
        raise SearchSpaceError("space: it is empty (no family under `families:`): add one, e.g. "
                               "`families: {lstm: {hidden_size: [16, 32]}}`")
    if not isinstance(families, Mapping):
        raise SearchSpaceError("space: `families` must map each family to its parameters, e.g. "
                               "`families: {lstm: {hidden_size: [16, 32]}}`")
    parsed = {str(family): _family(str(family), params) for family, params in families.items()}
    return SearchSpace(parsed, sampler)


def _family(family: str, params: object) -> dict[str, Parameter]:
    if family not in FAMILY_PARAMETERS:
        raise SearchSpaceError(f"space: unknown family {family!r} under `families`: use one of "
                               f"{', '.join(FAMILY_PARAMETERS)}")
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise SearchSpaceError(f"space: {family} must map its parameters to values, e.g. `{family}: "
                               "{learning_rate: [0.001, 0.01]}` (or `{}` for the family's defaults)")
    allowed = FAMILY_PARAMETERS[family]
    parsed: dict[str, Parameter] = {}
    for name, spec in params.items():
        if name not in allowed:
            raise SearchSpaceError(f"space: {family}.{name} is not a parameter of the {family} family: use "
                                   f"{', '.join(allowed)} ({DATA_SETTINGS_HINT})")
        parsed[str(name)] = _parameter(family, str(name), spec)
    return parsed


def _parameter(family: str, name: str, spec: object) -> Parameter:
    where = f"{family}.{name}"
    if isinstance(spec, Mapping):
        unknown = sorted(set(map(str, spec)) - set(RANGE_KEYS))
        if unknown or "low" not in spec or "high" not in spec:
            raise SearchSpaceError(f"space: {where} is a range, which takes `low`, `high` and optionally `log`, "
                                   f"e.g. {{low: 0.001, high: 0.01, log: true}}"
                                   + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        kind = TrainingConfig.model_fields[name].annotation
        if kind not in (int, float):
            raise SearchSpaceError(f"space: {where} is not numeric, so it takes a list of values, not a range")
        low, high = (_check(family, name, _number(where, spec[k], kind), k) for k in ("low", "high"))
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise SearchSpaceError(f"space: {where}.log must be true or false, got {log!r}")
        if low >= high:
            raise SearchSpaceError(f"space: {where} has low {low} >= high {high}: make low smaller, or give one "
                                   f"value as a constant ({name}: {low})")
        if log and low <= 0:
            raise SearchSpaceError(f"space: {where} is on a log scale, so low must be above 0 (got {low})")
        return Range(low, high, log, int if kind is int else float)
    values = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not values:
        raise SearchSpaceError(f"space: {where} is an empty list: give at least one value")
    kind = TrainingConfig.model_fields[name].annotation
    return Choice(tuple(_check(family, name, _number(where, v, kind) if kind in (int, float) else v, "value")
                        for v in values))


def _number(where: str, value: object, kind: object) -> object:
    """YAML reads `1e-3` as text (YAML 1.1 wants `1.0e-3`): such text is taken as the number it spells."""
    if isinstance(value, str) and kind is float:
        try:
            return float(value)
        except ValueError:
            raise SearchSpaceError(f"space: {where}: {value!r} is not a number") from None
    return value


def _check(family: str, name: str, value: Any, what: str) -> Any:
    """`value` as TrainingConfig stores field `name` (of `family`), or the field's refusal with its bound."""
    try:
        config = TrainingConfig.model_validate({"family": family, name: value})
    except ValidationError as exc:
        problem = "; ".join(e["msg"] for e in exc.errors())
        raise SearchSpaceError(f"space: {family}.{name} {what} {value!r} is refused by TrainingConfig: {problem}: "
                               "pick a value within the field's bounds") from None
    return getattr(config, name)


def plan_trials(space: SearchSpace, trials: int, seed: int = 0, base: TrainingConfig | None = None
                ) -> list[TrialSpec]:  # fmt: skip
    """The trials of a search: `trials` distinct configurations drawn at random (seeded; fewer when the space holds
    fewer) or, with the grid sampler, every combination (at most `trials` of them, evenly spread over the grid).
    Each trial's config is `base` (its data settings shared by all) with the family and the drawn parameters."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SearchSpaceError(f"trials must be at least 1 (--trials), got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SearchSpaceError(f"seed must be 0 or more (--seed), got {seed!r}")
    base = base or TrainingConfig()
    if space.sampler == "grid":
        combos = space.grid()
        if len(combos) > trials:
            step = (len(combos) - 1) / (trials - 1) if trials > 1 else 0.0
            combos = [combos[round(i * step)] for i in range(trials)]
    else:
        combos = _random(space, trials, seed)
    return [_spec(number, family, params, base) for number, (family, params) in enumerate(combos, start=1)]


def _random(space: SearchSpace, trials: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    combos: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for _ in range(trials * MAX_DRAWS_PER_TRIAL):  # a small discrete space may hold fewer distinct configurations
        if len(combos) == trials:
            break
        trial = study.ask()
        family = trial.suggest_categorical("family", list(space.families))
        params: dict[str, Any] = {}
        for name, parameter in space.families[str(family)].items():
            key = f"{family}.{name}"
            if isinstance(parameter, Range) and parameter.kind is int:
                params[name] = trial.suggest_int(key, int(parameter.low), int(parameter.high), log=parameter.log)
            elif isinstance(parameter, Range):
                params[name] = trial.suggest_float(key, parameter.low, parameter.high, log=parameter.log)
            elif len(parameter.values) == 1:
                params[name] = parameter.values[0]
            else:
                params[name] = trial.suggest_categorical(key, list(parameter.values))
        drawn = json.dumps([family, params], sort_keys=True)
        if drawn not in seen:  # a configuration drawn again would only repeat a trial
            seen.add(drawn)
            combos.append((str(family), params))
    return combos


def _spec(number: int, family: str, params: dict[str, Any], base: TrainingConfig) -> TrialSpec:
    try:
        config = TrainingConfig.model_validate({**base.model_dump(), **params, "family": family})
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SearchSpaceError(f"trial {number} ({family} {params}) is not a valid training config: {problem}"
                               ) from None
    return TrialSpec(number, family, params, config)


def plan_from_text(space_text: str, trials: int, seed: int = 0, config_json: str = "{}") -> list[TrialSpec]:
    """`plan_trials` from the space's YAML text and the base config's JSON (what the pipeline is given)."""
    try:
        base = TrainingConfig.model_validate_json(config_json or "{}")
    except ValidationError as exc:
        raise SearchSpaceError(f"config: not a valid training config: {exc}") from None
    return plan_trials(load_space(space_text), trials, seed, base)
