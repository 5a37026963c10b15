"""The domain specification: pydantic models of a ``domains/<name>.yaml`` file, and its loader.

``parse_domain(text, file, project_root)`` is pure: it turns the text of a domain file into a
``DomainSpec`` or raises ``SpecError`` listing every problem with ``file:line:column`` and the field.
``load_domain(path)`` reads the file and calls it. Paths inside a domain file are resolved relative to
the file and must stay inside the project or under an ``allowed_roots`` directory of the project's
``graduation.yaml`` (a domain file cannot allow itself more).

One module on purpose (over 400 lines): the models are the sections of one file format, read together
and validated as one document, and the JSON Schema of domain files is generated from them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from graduation.errors import Problem, SpecError
from graduation.prompts import template_problem
from graduation.yamlsource import Located, format_path, load_yaml

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$"
SCHEMA_URL = "https://graduation.dev/schema/domain.json"


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Provenance(StrEnum):
    authoritative = "authoritative"
    expert = "expert"
    human_verified = "human_verified"
    verifier_checked = "verifier_checked"
    model_generated = "model_generated"
    unknown = "unknown"


TRUSTED_PROVENANCE = frozenset({Provenance.authoritative, Provenance.expert, Provenance.human_verified,
                                Provenance.verifier_checked})
EXTERNAL_PROVENANCE = frozenset({Provenance.authoritative, Provenance.expert})


class Role(StrEnum):
    substance = "substance"
    format = "format"


class DeployMode(StrEnum):
    sandbox = "sandbox"
    shadow = "shadow"
    assisted = "assisted"
    autonomous = "autonomous"


DEPLOY_ORDER = [DeployMode.sandbox, DeployMode.shadow, DeployMode.assisted, DeployMode.autonomous]


def _check_relative_path(value: str, info: ValidationInfo) -> str:
    """Resolve a path relative to the domain file; refuse one that leaves the project."""
    ctx = info.context or {}
    base: Path | None = ctx.get("base_dir")
    root: Path | None = ctx.get("project_root")
    if not value or "\x00" in value:
        raise ValueError("a path must be a non-empty string without NUL characters")
    if base is None or root is None:
        return value
    resolved = (base / value).resolve()
    allowed = [root.resolve(), *ctx.get("allowed_roots", ())]
    if not any(resolved.is_relative_to(r) for r in allowed):
        raise ValueError(
            f"path {value!r} resolves to {resolved}, outside the project {root.resolve()}; keep data inside "
            f"the project or list its directory under allowed_roots in the project's {PROJECT_CONFIG}"
        )
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


ProjectPath = Annotated[str, AfterValidator(_check_relative_path),
                        Field(description="A path relative to the domain file; stored relative to the project.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              use_enum_values=False)


class GeneratedBy(Strict):
    """The model that wrote a model-generated source."""

    model: str = Field(min_length=1, description="The registered model (NAME, NAME@V or sha256:HEX) that wrote "
                                                 "the data; whether it graduated in this domain is looked up.")
    graduated: Any = Field(None, exclude=True, json_schema_extra={"deprecated": True},
                           description="No longer accepted: graduation is computed, never declared.")
    job: str | None = Field(None, description="The graduation job that produced the generator, if any.")

    @field_validator("graduated")
    @classmethod
    def _not_declared(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("graduated is no longer declared: whether the generator graduated in this domain is "
                             "looked up in the registry; delete this key and register the model (`registry models "
                             "register NAME --path DIR`)")
        return value


class GroundTruthSource(Strict):
    """A dataset of prompts and reference answers, with where it came from."""

    name: str = Field(pattern=NAME, description="Name of the source, unique within the domain.")
    path: ProjectPath
    provenance: Provenance
    generated_by: GeneratedBy | None = Field(None, description="Required when provenance is model_generated.")
    derived_from: str | None = Field(
        None, description="Name of another source of this domain that this one was generated from (lineage)."
    )
    split: Literal["train", "eval", "all"] = Field(
        "all", description="train: SFT/GRPO prompts; eval: held-out prompts; all: both."
    )
    audited: bool = Field(False, description="Whether the source was audited by people (external route).")
    description: str = ""

    @model_validator(mode="after")
    def _generator_matches_provenance(self) -> "GroundTruthSource":
        if self.provenance == Provenance.model_generated and self.generated_by is None:
            raise ValueError("a model_generated source needs generated_by: {model: NAME} (a registered model)")
        if self.provenance != Provenance.model_generated and self.generated_by is not None:
            raise ValueError(f"generated_by is only for model_generated sources, not {self.provenance.value}")
        return self


MUTATION_FAMILIES = ("perturbed_number", "dropped_term", "swapped_sign", "injected_symbol")


class MutationOptions(Strict):
    """Generated wrong answers, minus the families that do not apply to a domain."""

    exclude: list[Literal["perturbed_number", "dropped_term", "swapped_sign", "injected_symbol"]] = Field(
        default_factory=list, description="Families of generated wrong answers not to use: perturbed_number, "
                                          "dropped_term, swapped_sign, injected_symbol.")


class VerifierSpec(Strict):
    """A programmatic check of one output against one reference."""

    name: str = Field(pattern=NAME, description="Name of the verifier, unique within the domain.")
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                      description="exact, regex, numeric, math, json_schema, python, command, reasoning_gym, "
                                  "or a kind added by a plugin.")
    role: Role = Field(description="substance: is it correct? format: does it look right?")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of the verifier kind.")
    controls: ProjectPath | None = Field(
        None, description="A file of known-wrong outputs this verifier must reject (JSONL with 'output').")
    mutations: bool | MutationOptions = Field(
        True, description="Also test the verifier against generated mutations of references (true), not at all "
                          "(false: it is then held only to its declared controls), or all but some families "
                          "({exclude: [injected_symbol]}).")
    weight: float = Field(1.0, ge=0, le=100, description="Reward weight when used in GRPO.")
    version: str = Field("1", min_length=1, description="Bump when the verifier's behaviour changes.")
    description: str = ""


class TaskSpec(Strict):
    """Which fields of a data row hold the prompt, the reference answer and the model's output."""

    prompt_field: str = "prompt"
    answer_field: str = "answer"
    output_field: str = "output"
    id_field: str | None = Field(None, description="A stable row id; defaults to the prompt's hash.")
    system_prompt: str | None = Field(None, description="Text before every prompt (the system message when chat).")
    template: str | None = Field(None, description="Jinja2 template over the row's fields that builds the prompt "
                                                   "the model sees, e.g. '{{ schema }}\n\n{{ question }}'.")
    chat: bool = Field(False, description="Conversational prompts: system and user messages, formatted with the "
                                          "tokenizer's chat template in training and evaluation.")

    def canonical(self) -> dict[str, Any]:
        """The task as hashed: prompt settings left at their defaults are left out, so that domains written
        before they existed keep their content and basis hashes (and their evidence)."""
        data = self.model_dump(mode="json")
        for key, default in (("system_prompt", None), ("template", None), ("chat", False)):
            if data.get(key) == default:
                data.pop(key, None)
        return data

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            problem = template_problem(value)
            if problem:
                raise ValueError(f"{problem}; see Jinja2's template syntax")
        return value


class SliceSpec(Strict):
    """A subset of rows on which every metric is also reported, and must meet the bar on its own."""

    name: str = Field(pattern=NAME)
    field: str | None = Field(None, description="Row field to compare (with equals).")
    equals: str | int | float | bool | None = None
    when: str | None = Field(None, description="A CEL predicate over the row, e.g. 'at_crosswalk == false'.")

    @model_validator(mode="after")
    def _one_selector(self) -> "SliceSpec":
        if (self.field is None) == (self.when is None):
            raise ValueError("a slice needs either field (with equals) or when (a CEL predicate), not both")
        if self.when is not None and not self.when.strip():
            raise ValueError("when must be a non-empty CEL expression")
        return self


class TrainingDefaults(Strict):
    base_model: str | None = Field(None, description="Local path or cached hub id of the model to train.")
    grpo: dict[str, Any] = Field(default_factory=dict, description="GRPOConfig overrides.")
    sft: dict[str, Any] = Field(default_factory=dict, description="SFTConfig overrides.")
    format_reward_weight: float = Field(0.1, ge=0, le=1, description="Weight of format verifiers in GRPO reward.")


class DeploymentSpec(Strict):
    target: DeployMode = Field(DeployMode.sandbox, description="The deployment mode the team is aiming for.")


class DomainSpec(Strict):
    """A domain: a task area with its ground truth, verifiers and stakes."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              title="graduation domain", populate_by_name=True)

    schema_: str | None = Field(None, alias="$schema", description="Optional JSON Schema URL for editors.")
    domain: str = Field(pattern=SLUG, description="The domain's name: lowercase letters, digits and dashes.")
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    risk: Risk
    owners: list[str] = Field(min_length=1, description="People or teams responsible for the domain.")
    task: TaskSpec = Field(default_factory=TaskSpec)
    ground_truth: list[GroundTruthSource] = Field(default_factory=list)
    verifiers: list[VerifierSpec] = Field(default_factory=list)
    slices: list[SliceSpec] = Field(default_factory=list)
    allowed_symbols: list[str] = Field(
        default_factory=list, description="Identifiers that outputs and data may use although trusted ground truth "
        "never does (notation labels such as d_i); never flagged as unsupported symbols.")
    training: TrainingDefaults = Field(default_factory=TrainingDefaults)
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)
    allow_paths_outside_project: bool = False

    @field_validator("owners")
    @classmethod
    def _owners_nonempty(cls, owners: list[str]) -> list[str]:
        for owner in owners:
            if not owner.strip():
                raise ValueError("an owner must be a non-empty string")
        return owners

    @model_validator(mode="after")
    def _names_unique_and_linked(self) -> "DomainSpec":
        for label, items in (("ground_truth", self.ground_truth), ("verifiers", self.verifiers),
                             ("slices", self.slices)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{label}: the name {item.name!r} is used twice")
                seen.add(item.name)
        names = {s.name for s in self.ground_truth}
        for source in self.ground_truth:
            if source.derived_from is not None and source.derived_from not in names:
                raise ValueError(f"ground_truth {source.name!r}: derived_from {source.derived_from!r} "
                                 f"is not a source of this domain (have: {sorted(names)})")
        lineage_depths(self.ground_truth)  # raises on cycles
        return self

    # -- derived views ---------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The spec as canonical data: what its content hash is computed over."""
        data = self.model_dump(mode="json", exclude={"schema_"}, by_alias=True)
        data["task"] = self.task.canonical()
        if not data.get("allowed_symbols"):
            data.pop("allowed_symbols", None)  # absent and empty hash alike (and as before the field existed)
        return data

    def content_hash(self, data_hashes: dict[str, str] | None = None) -> str:
        """SHA-256 over the canonical spec and the hashes of the files it references."""
        payload = {"spec": self.canonical(), "files": dict(sorted((data_hashes or {}).items()))}
        return sha256_json(payload)

    def basis_hash(self, data_hashes: dict[str, str] | None = None) -> str:
        """Hash of what evidence depends on: verifiers, ground truth, task fields and their files.

        When it changes, earlier evidence no longer speaks for the domain and counting starts afresh.
        """
        payload = {
            # the stakes: a new version with a lower risk (or any other) keeps no evidence from before
            "risk": self.risk.value,
            "task": self.task.canonical(),
            "ground_truth": [s.model_dump(mode="json") for s in self.ground_truth],
            "verifiers": [v.model_dump(mode="json") for v in self.verifiers],
            "slices": [s.model_dump(mode="json") for s in self.slices],
            "files": dict(sorted((data_hashes or {}).items())),
        }
        if self.allowed_symbols:
            payload["allowed_symbols"] = sorted(self.allowed_symbols)
        return sha256_json(payload)

    def referenced_paths(self) -> list[str]:
        paths = [s.path for s in self.ground_truth]
        paths += [v.controls for v in self.verifiers if v.controls]
        return sorted(set(paths))

    def substance_verifiers(self) -> list[VerifierSpec]:
        return [v for v in self.verifiers if v.role == Role.substance]

    def format_verifiers(self) -> list[VerifierSpec]:
        return [v for v in self.verifiers if v.role == Role.format]


def lineage_depths(sources: list[GroundTruthSource]) -> dict[str, int]:
    """Generations of model-written copies between each source and a trusted one (0 = trusted)."""
    by_name = {s.name: s for s in sources}
    depths: dict[str, int] = {}

    def depth(name: str, trail: tuple[str, ...]) -> int:
        if name in trail:
            raise ValueError(f"ground_truth: derived_from forms a cycle: {' -> '.join(trail + (name,))}")
        if name in depths:
            return depths[name]
        source = by_name[name]
        own = 1 if source.provenance in (Provenance.model_generated, Provenance.unknown) else 0
        parent = depth(source.derived_from, trail + (name,)) if source.derived_from else 0
        depths[name] = parent + own
        return depths[name]

    for s in sources:
        depth(s.name, ())
    return depths


#: The canonical JSON text of a value, what every hash of data covers: keys sorted, no spaces, characters
#: as they are, anything else as its ``str``. Exactly ``json.dumps`` with those options, whose encoder is
#: built once here rather than on every call (a status hashes thousands of small values).
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                  default=str).encode


def sha256_json(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


# -- loading ---------------------------------------------------------------------------------------

def parse_domain(text: str, file: str, project_root: Path | None = None, base_dir: Path | None = None,
                 allowed: list[Path] | None = None) -> DomainSpec:
    """Parse and validate a domain file's text. Raises ``SpecError`` with every problem located."""
    located = load_yaml(text, file)
    if not isinstance(located.data, dict):
        raise SpecError([located.problem((), "a domain file must be a YAML mapping (key: value lines)",
                                         "start from `registry init` or the JSON Schema (`registry schema`)")])
    if located.data.get("allow_paths_outside_project") is True:
        # a domain file cannot widen its own reach: where data may live is the project's decision
        raise SpecError([located.problem(("allow_paths_outside_project",),
                                         "a domain file cannot allow itself paths outside the project",
                                         f"remove it and list the directory under allowed_roots in {PROJECT_CONFIG} "
                                         "at the project root")])
    roots = allowed_roots(project_root) if allowed is None else allowed
    context = {"base_dir": base_dir, "project_root": project_root, "allowed_roots": roots}
    return validate_located(DomainSpec, located, context)


PROJECT_CONFIG = "graduation.yaml"


def allowed_roots(project_root: Path | None) -> list[Path]:
    """Directories outside the project that domain files may reference: ``allowed_roots`` in
    ``<project>/graduation.yaml`` (paths relative to the project root). Bad config is a located error."""
    if project_root is None:
        return []
    path = Path(project_root) / PROJECT_CONFIG
    if not path.is_file():
        return []
    located = load_yaml(read_text(path), PROJECT_CONFIG)
    data = located.data if isinstance(located.data, dict) else None
    roots = data.get("allowed_roots", []) if data is not None else None
    if data is None or set(data) - {"allowed_roots"} or not isinstance(roots, list) \
            or not all(isinstance(r, str) and r.strip() and "\x00" not in r for r in roots):
        raise SpecError([located.problem((), "the project configuration must be a mapping with allowed_roots: "
                                              "a list of directories", "e.g. allowed_roots: [../shared-data]")])
    return [(Path(project_root) / r).resolve() for r in roots]


def load_domain(path: Path | str, project_root: Path | None = None) -> DomainSpec:
    """Read and parse a domain file; paths are resolved against the file and kept inside the project."""
    path = Path(path)
    root = Path(project_root) if project_root is not None else Path.cwd()
    return parse_domain(read_text(path), display_path(path, root), root, path.resolve().parent)


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([Problem("file not found", str(path), hint="check the path")]) from None
    except IsADirectoryError:
        raise SpecError([Problem("is a directory, not a file", str(path))]) from None
    except OSError as exc:
        raise SpecError([Problem(f"cannot read: {exc.strerror}", str(path))]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([Problem(f"not valid UTF-8 (byte {exc.start})", str(path), line,
                                 hint="save the file as UTF-8")]) from None


def display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def validate_located(model: type[BaseModel], located: Located, context: dict[str, Any]):
    """Validate data with a pydantic model; map every error back to its YAML position."""
    try:
        return model.model_validate(located.data, context=context)
    except ValidationError as exc:
        raise SpecError([_problem_from(err, located, model) for err in exc.errors(include_url=False)]) from None


def _problem_from(err: dict[str, Any], located: Located, model: type[BaseModel]) -> Problem:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p in
                                                                    {"str", "int", "float", "bool", "none"})))
    kind = err["type"]
    message = err["msg"]
    hint = None
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(model, loc[:-1], located.data)
        close = difflib.get_close_matches(key, allowed, n=1)
        message = f"unknown key {key!r}"
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif allowed:
            hint = "allowed keys: " + ", ".join(sorted(allowed))
        if loc[:1] == ("verifiers",) and not close:
            hint = "verifier-specific settings go under options:"
    elif kind == "missing":
        message = "required field is missing"
        hint = f"add {loc[-1]}: ..."
    elif kind in ("enum", "literal_error"):
        expected = err.get("ctx", {}).get("expected", "")
        message = f"{err.get('input')!r} is not one of {expected}"
        close = difflib.get_close_matches(str(err.get("input")), re.findall(r"'([^']+)'", expected), n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
    elif kind == "string_pattern_mismatch":
        message = f"{err.get('input')!r} is not valid here"
        hint = "use lowercase letters, digits and dashes" if loc[-1:] == ("domain",) else \
            "use letters, digits, '.', '_' and '-'"
    elif kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    elif "input" in err and kind.endswith("_type"):
        message = f"{message}, got {type(err['input']).__name__} {_short(err['input'])}"
    return located.problem(loc, message, hint)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(model: type[BaseModel], loc: tuple, data: Any) -> list[str]:
    """The field names (and aliases) of the model found at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of domain files, for editors and CI."""
    schema = DomainSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL
    return schema


__all__ = [
    "DEPLOY_ORDER", "DeployMode", "DomainSpec", "EXTERNAL_PROVENANCE", "GeneratedBy", "GroundTruthSource",
    "Provenance", "Risk", "Role", "SliceSpec", "TRUSTED_PROVENANCE", "TaskSpec", "TrainingDefaults",
    "VerifierSpec", "canonical_json", "format_path", "json_schema", "lineage_depths", "load_domain",
    "parse_domain", "sha256_json",
]
